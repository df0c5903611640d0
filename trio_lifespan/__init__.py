"""Run an ASGI app's lifespan without a server, the structured-concurrency way.

::

    async with trio_lifespan.open_lifespan(app) as app:
        ...  # the app's startup has run; requests through `app` see its state
"""

from ._errors import (
    LifespanError as LifespanError,
    LifespanNotSupported as LifespanNotSupported,
    LifespanProtocolError as LifespanProtocolError,
    LifespanShutdownFailed as LifespanShutdownFailed,
    LifespanStartupFailed as LifespanStartupFailed,
    LifespanTimeout as LifespanTimeout,
)
from ._open import open_lifespan as open_lifespan
from ._state import LifespanApp as LifespanApp
from ._version import __version__ as __version__

__all__ = [
    "LifespanApp",
    "LifespanError",
    "LifespanNotSupported",
    "LifespanProtocolError",
    "LifespanShutdownFailed",
    "LifespanStartupFailed",
    "LifespanTimeout",
    "__version__",
    "open_lifespan",
]


def _publish() -> None:
    # Tracebacks and reprs name trio_lifespan.X, not the private module.
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith(__name__ + "."):
            obj.__module__ = __name__


_publish()
del _publish
