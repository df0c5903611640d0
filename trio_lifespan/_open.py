"""``open_lifespan``: check the arguments, then hand over to a driver."""

from __future__ import annotations

import math
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Generic, Protocol

import sniffio

from ._state import AppT, LifespanApp

SUPPORTED_LIBRARIES = ("trio", "asyncio")


class _Driver(Protocol):
    """What a backend module offers: ``open_lifespan`` for one library."""

    def __call__(
        self,
        app: AppT,
        startup_timeout: float | None,
        shutdown_timeout: float | None,
        allow_unsupported: bool,
        /,
    ) -> AbstractAsyncContextManager[LifespanApp[AppT]]: ...


def _check_timeout(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be a number of seconds or None, not {type(value).__name__}"
        )
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be non-negative or None, not {value!r}")
    return float(value)


def _driver() -> _Driver:
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        raise RuntimeError(
            "open_lifespan() found no running async library: use it inside an "
            f"async function run by one of: {', '.join(SUPPORTED_LIBRARIES)}"
        ) from None
    if library == "trio":
        from ._trio import trio_lifespan  # noqa: PLC0415 - trio only if used

        return trio_lifespan
    if library == "asyncio":
        from ._asyncio import asyncio_lifespan  # noqa: PLC0415 - only if used

        return asyncio_lifespan
    raise RuntimeError(
        f"open_lifespan() is running under {library!r}, which trio_lifespan does "
        f"not support; supported: {', '.join(SUPPORTED_LIBRARIES)}"
    )


class _LifespanContext(Generic[AppT]):
    """The object ``open_lifespan`` returns; picks the driver on entry."""

    __slots__ = (
        "_allow_unsupported",
        "_app",
        "_cm",
        "_shutdown_timeout",
        "_startup_timeout",
    )

    def __init__(
        self,
        app: AppT,
        startup_timeout: float | None,
        shutdown_timeout: float | None,
        allow_unsupported: bool,
    ) -> None:
        self._app = app
        self._startup_timeout = startup_timeout
        self._shutdown_timeout = shutdown_timeout
        self._allow_unsupported = allow_unsupported
        self._cm: AbstractAsyncContextManager[LifespanApp[AppT]] | None = None

    async def __aenter__(self) -> LifespanApp[AppT]:
        __tracebackhide__ = True
        if self._cm is not None:
            raise RuntimeError(
                "this open_lifespan() context manager was already entered; "
                "call open_lifespan() again for each `async with`"
            )
        self._cm = _driver()(
            self._app,
            self._startup_timeout,
            self._shutdown_timeout,
            self._allow_unsupported,
        )
        return await self._cm.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        __tracebackhide__ = True
        assert self._cm is not None
        return await self._cm.__aexit__(exc_type, exc, tb)


def open_lifespan(
    app: AppT,
    *,
    startup_timeout: float | None = 5.0,
    shutdown_timeout: float | None = 5.0,
    allow_unsupported: bool = False,
) -> AbstractAsyncContextManager[LifespanApp[AppT]]:
    """Run an ASGI app's lifespan around a block of code.

    On entry the app's startup has completed. The value bound by ``as`` is a
    :class:`LifespanApp`: send requests through it and each one sees a shallow
    copy of the state the startup filled in. On exit the app's shutdown has
    completed and no task of ours is left running.

    Args:
        app: The ASGI app (Starlette, FastAPI, Litestar, Quart, ...).
        startup_timeout: Seconds the startup may take, or ``None`` for no
            limit.
        shutdown_timeout: Seconds the shutdown may take, or ``None`` for no
            limit.
        allow_unsupported: Run an app that does not support the lifespan
            protocol (a Django project, say) instead of raising
            :exc:`LifespanNotSupported`. The body then runs with requests
            passed through unchanged, and exit sends nothing.

    Returns:
        An async context manager that yields a :class:`LifespanApp`.

    Raises:
        TypeError: ``app`` is not callable, or a timeout is not a number.
        ValueError: A timeout is negative or NaN.
        RuntimeError: No supported async library is running.
        LifespanStartupFailed: The app sent ``lifespan.startup.failed`` and
            then returned or waited on. An app that raises instead comes out
            as its own exception, unwrapped, with the message it sent (if
            any) added as a note. The body never runs.
        LifespanShutdownFailed: The same for the shutdown.
        LifespanNotSupported: The app raised before its first ``receive()``,
            called ``send()`` first, or returned without receiving.
        LifespanTimeout: The startup or shutdown took too long; the app was
            cancelled. It is a :exc:`TimeoutError` too.
        LifespanProtocolError: The app sent a message it should not have.

    What comes out when several things fail at once. Never an exception
    group: one exception, the one that matters, unchanged:

    - The body raises: a graceful shutdown is still run (shielded from
      cancellation, bounded by ``shutdown_timeout``) so the app's cleanup
      runs; then the body's exception comes out. If the shutdown failed too,
      that error is attached to the body's exception as a note
      (``exc.__notes__``), naming its type and message.
    - The enclosing scope is cancelled during the body: the same shielded
      shutdown, then the cancellation goes on. If the shutdown failed, its
      error comes out instead, so it is not lost to the cancel scope.
    - The app crashes while the body runs: the body is cancelled at once and
      the app's exception comes out; the shutdown is not sent, as the app is
      gone. An exception the body raised meanwhile wins, with the app's error
      as a note.
    - The app raises again while it is being stopped after a failure: the
      first error comes out with a note about the second.

    Example::

        async with open_lifespan(app) as app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport) as client:
                response = await client.get("http://test/")
    """
    if not callable(app):
        raise TypeError(
            f"app must be an ASGI app (an async callable taking scope, receive "
            f"and send), not {type(app).__name__}"
        )
    return _LifespanContext(
        app,
        _check_timeout("startup_timeout", startup_timeout),
        _check_timeout("shutdown_timeout", shutdown_timeout),
        bool(allow_unsupported),
    )
