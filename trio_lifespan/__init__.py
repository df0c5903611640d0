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
from ._manager import LifespanManager as LifespanManager
from ._open import open_lifespan as open_lifespan, open_lifespans as open_lifespans
from ._serve import (
    TASK_STATUS_IGNORED as TASK_STATUS_IGNORED,
    TaskStatus as TaskStatus,
    serve_lifespan as serve_lifespan,
)
from ._state import LifespanApp as LifespanApp
from ._version import __version__ as __version__

__all__ = [
    "TASK_STATUS_IGNORED",
    "LifespanApp",
    "LifespanError",
    "LifespanManager",
    "LifespanNotSupported",
    "LifespanProtocolError",
    "LifespanShutdownFailed",
    "LifespanStartupFailed",
    "LifespanTimeout",
    "TaskStatus",
    "__version__",
    "open_lifespan",
    "open_lifespans",
    "serve_lifespan",
]


def _publish() -> None:
    # Tracebacks and reprs name trio_lifespan.X, not the private module.
    for name in __all__:
        obj = globals()[name]
        # Classes and functions only (they have a __qualname__), not instances.
        if hasattr(obj, "__qualname__") and obj.__module__.startswith(__name__ + "."):
            obj.__module__ = __name__


_publish()
del _publish
