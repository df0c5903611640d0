"""Run an ASGI app's lifespan without a server, the structured-concurrency way.

::

    async with trio_lifespan.open_lifespan(app) as app:
        ...  # the app's startup has run; requests through `app` see its state

Which module holds what: ``_open``, ``_serve``, ``_manager`` (the entry
points); ``_backend`` (which driver), ``_options`` (argument checks);
``_trio``, ``_asyncio`` (the drivers: I/O only); ``_protocol`` (every
decision, no I/O), ``_exceptions`` (composing exceptions); ``_state`` (the
yielded app), ``_errors``, ``_types``, ``_compat``; ``_cli`` (the command
line); ``_client`` and ``_httpx`` (``open_client``: the one module that
imports httpx), ``_transport`` and ``_websocket`` (its requests and sessions:
a whole read in the caller's task, the rest in a task of its own),
``_exchange`` (their ASGI rules, no I/O), ``_wsproto`` (httpx-ws through the
client), ``_pytest_plugin`` (the fixtures). docs/design.rst says more.
"""

from importlib import import_module as _import_module
from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._errors import (
    LifespanCancelled as LifespanCancelled,
    LifespanCrashed as LifespanCrashed,
    LifespanError as LifespanError,
    LifespanNotASGIApp as LifespanNotASGIApp,
    LifespanNotSupported as LifespanNotSupported,
    LifespanProtocolError as LifespanProtocolError,
    LifespanShutdownFailed as LifespanShutdownFailed,
    LifespanStartupFailed as LifespanStartupFailed,
    LifespanStateConflict as LifespanStateConflict,
    LifespanTimeout as LifespanTimeout,
    LifespanUnavailable as LifespanUnavailable,
    RequestProtocolError as RequestProtocolError,
    WebSocketDenied as WebSocketDenied,
    WebSocketDisconnect as WebSocketDisconnect,
)
from ._open import open_lifespan as open_lifespan, open_lifespans as open_lifespans
from ._state import LifespanApp as LifespanApp
from ._version import __version__ as __version__

if _TYPE_CHECKING:
    from ._client import open_client as open_client
    from ._httpx import LifespanClient as LifespanClient
    from ._httpx2 import LifespanClient2 as LifespanClient2
    from ._manager import LifespanManager as LifespanManager
    from ._mounts import (
        lifespan_of as lifespan_of,
        with_lifespans as with_lifespans,
    )
    from ._serve import (
        TASK_STATUS_IGNORED as TASK_STATUS_IGNORED,
        TaskStatus as TaskStatus,
        serve_lifespan as serve_lifespan,
    )
    from ._websocket import WebSocketSession as WebSocketSession

# Loaded on first use: a program that only opens lifespans does not pay for
# the drop-in manager, the nursery.start helper or the client (and httpx,
# which may not even be installed) when it imports us.
_LAZY = {
    "LifespanClient": "._httpx",
    "LifespanClient2": "._httpx2",
    "LifespanManager": "._manager",
    "TASK_STATUS_IGNORED": "._serve",
    "TaskStatus": "._serve",
    "lifespan_of": "._mounts",
    "open_client": "._client",
    "serve_lifespan": "._serve",
    "with_lifespans": "._mounts",
    "WebSocketSession": "._websocket",
}

__all__ = [
    "TASK_STATUS_IGNORED",
    "LifespanApp",
    "LifespanCancelled",
    "LifespanClient2",
    "LifespanCrashed",
    "LifespanError",
    "LifespanManager",
    "LifespanNotASGIApp",
    "LifespanNotSupported",
    "LifespanProtocolError",
    "LifespanShutdownFailed",
    "LifespanStartupFailed",
    "LifespanStateConflict",
    "LifespanTimeout",
    "LifespanUnavailable",
    "RequestProtocolError",
    "TaskStatus",
    "WebSocketDenied",
    "WebSocketDisconnect",
    "WebSocketSession",
    "__version__",
    "lifespan_of",
    "open_client",
    "open_lifespan",
    "open_lifespans",
    "serve_lifespan",
    "with_lifespans",
]


def _publish(obj: object) -> None:
    # Tracebacks and reprs name trio_lifespan.X, not the private module.
    # Classes and functions only (they have a __qualname__), not instances.
    if hasattr(obj, "__qualname__") and obj.__module__.startswith(__name__ + "."):
        obj.__module__ = __name__


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_import_module(_LAZY[name], __name__), name)
    _publish(value)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def _publish_eager() -> None:
    # Every eager public name; the lazy ones are published as they load.
    for name in __all__:
        if name not in _LAZY:
            _publish(globals()[name])


_publish_eager()
