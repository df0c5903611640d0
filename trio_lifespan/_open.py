"""``open_lifespan`` and ``open_lifespans``: check the arguments, then hand over.

The context managers returned here pick the driver for the running async
library when they are entered, not when they are made.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from ._backend import current_backend
from ._compat import ki_protected
from ._options import check_app, check_options
from ._state import AppT, LifespanApp

if TYPE_CHECKING:
    from ._backend import Backend
    from ._types import AnyASGIApp

A1 = TypeVar("A1", bound="AnyASGIApp")
A2 = TypeVar("A2", bound="AnyASGIApp")
A3 = TypeVar("A3", bound="AnyASGIApp")


# What an opener's context manager raises when misused: one wording for every
# opener (open_lifespan, open_lifespans, open_client), said here.


def entered_twice(opener: str) -> RuntimeError:
    """The error for entering an ``opener()`` context manager a second time."""
    return RuntimeError(
        f"this {opener}() context manager was already entered; "
        f"call {opener}() again for each `async with`"
    )


def never_entered(opener: str) -> RuntimeError:
    """The error for exiting an ``opener()`` context manager never entered."""
    return RuntimeError(
        f"__aexit__ was called on an {opener}() context manager that was never "
        f"entered: call __aenter__ first (`async with {opener}(...)` does both)"
    )


def exited_twice(opener: str) -> RuntimeError:
    """The error for exiting an ``opener()`` context manager a second time."""
    return RuntimeError(
        f"__aexit__ was called twice on an {opener}() context manager: "
        f"call {opener}() again for each `async with`"
    )


class _Deferred:
    """An async context manager that picks its driver on entry.

    It adds no coroutine of its own: ``__aenter__`` and ``__aexit__`` hand back
    the driver's awaitables, so entering costs what the driver's entry costs.
    Not generic at run time (that costs import time); ``open_lifespan`` and
    ``open_lifespans`` declare what it yields.
    """

    __slots__ = ("_caller", "_cm", "_exited", "_open")

    def __init__(
        self, caller: str, open_: Callable[[Backend], AbstractAsyncContextManager[Any]]
    ) -> None:
        self._caller = caller
        self._open = open_
        self._cm: AbstractAsyncContextManager[Any] | None = None
        self._exited = False

    @ki_protected
    def __aenter__(self) -> Awaitable[Any]:
        __tracebackhide__ = True
        if self._cm is not None:
            raise entered_twice(self._caller)
        self._cm = self._open(current_backend(self._caller))
        return self._cm.__aenter__()

    @ki_protected
    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[bool | None]:
        __tracebackhide__ = True
        cm = self._cm
        if cm is None:
            raise never_entered(self._caller)
        if self._exited:
            raise exited_twice(self._caller)
        self._exited = True
        return cm.__aexit__(exc_type, exc, tb)


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
        TypeError: A timeout is not a number, or ``allow_unsupported`` is not
            a bool.
        LifespanNotASGIApp: ``app`` is not callable (raised at the call), or
            calling it as ``app(scope, receive, send)`` fails before any of its
            code runs: a plain ``def``, a WSGI or an ASGI 2 app. A
            :exc:`TypeError` too.
        ValueError: A timeout is negative, NaN, or an int too large for a
            float.
        RuntimeError: No supported async library is running, or the context
            manager is entered twice or exited without being entered.
        LifespanStartupFailed: The app sent ``lifespan.startup.failed`` and
            then returned or waited on. An app that raises instead comes out
            as its own exception, unwrapped, with the message it sent (if
            any) added as a note, unless that message is a traceback that
            already shows the exception. The body never runs.
        LifespanShutdownFailed: The same for the shutdown.
        LifespanNotSupported: The app raised before its first ``receive()``,
            called ``send()`` first, or returned without receiving.
        LifespanTimeout: The startup or shutdown took too long; the app was
            cancelled. It is a :exc:`TimeoutError` too.
        LifespanProtocolError: The app sent a message it should not have.

    What comes out when several things fail at once: one exception, the one
    that matters, unchanged. No group of ours ever comes out; an app whose
    own task group raised a group of one comes out as that one exception,
    and an app's own group of several as it is:

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
    check_app(app)
    options = check_options(startup_timeout, shutdown_timeout, allow_unsupported)
    deferred = _Deferred(
        "open_lifespan", lambda backend: backend.open_one(app, options)
    )
    # Its methods return the driver's awaitables, not coroutines of their
    # own, which typeshed's protocol does not spell: hence the cast.
    return cast("AbstractAsyncContextManager[LifespanApp[AppT]]", deferred)


@overload
def open_lifespans(
    app1: A1,
    /,
    *,
    startup_timeout: float | None = 5.0,
    shutdown_timeout: float | None = 5.0,
    allow_unsupported: bool = False,
) -> AbstractAsyncContextManager[tuple[LifespanApp[A1]]]: ...


@overload
def open_lifespans(
    app1: A1,
    app2: A2,
    /,
    *,
    startup_timeout: float | None = 5.0,
    shutdown_timeout: float | None = 5.0,
    allow_unsupported: bool = False,
) -> AbstractAsyncContextManager[tuple[LifespanApp[A1], LifespanApp[A2]]]: ...


@overload
def open_lifespans(
    app1: A1,
    app2: A2,
    app3: A3,
    /,
    *,
    startup_timeout: float | None = 5.0,
    shutdown_timeout: float | None = 5.0,
    allow_unsupported: bool = False,
) -> AbstractAsyncContextManager[
    tuple[LifespanApp[A1], LifespanApp[A2], LifespanApp[A3]]
]: ...


@overload
def open_lifespans(
    *apps: AnyASGIApp,
    startup_timeout: float | None = 5.0,
    shutdown_timeout: float | None = 5.0,
    allow_unsupported: bool = False,
) -> AbstractAsyncContextManager[tuple[LifespanApp[Any], ...]]: ...


def open_lifespans(
    *apps: AnyASGIApp,
    startup_timeout: float | None = 5.0,
    shutdown_timeout: float | None = 5.0,
    allow_unsupported: bool = False,
) -> AbstractAsyncContextManager[tuple[LifespanApp[Any], ...]]:
    """Run several ASGI apps' lifespans at once, for programs that host them all.

    The startups run concurrently and all must complete before the block
    runs; the value bound by ``as`` is a tuple of :class:`LifespanApp`, one per
    app, in the order given. On exit the shutdowns run concurrently, each
    bounded by ``shutdown_timeout``. The options apply to every app and mean
    what they mean for :func:`open_lifespan`.

    Args:
        *apps: The ASGI apps.
        startup_timeout: Seconds each startup may take, or ``None``.
        shutdown_timeout: Seconds each shutdown may take, or ``None``.
        allow_unsupported: Run apps that do not support lifespan.

    Returns:
        An async context manager that yields a tuple of :class:`LifespanApp`.

    Raises:
        TypeError: A timeout is not a number, or ``allow_unsupported`` is not
            a bool.
        LifespanNotASGIApp: An app is not callable.
        ValueError: A timeout is negative, NaN, or an int too large for a
            float.

    What comes out when things fail:

    - An app's startup fails: the apps whose startup completed are shut down
      gracefully (their cleanup runs), those still starting are cancelled,
      and the failure comes out as :func:`open_lifespan` would raise it, bare.
    - An app crashes while the block runs: the block is cancelled, the other
      apps are shut down gracefully, and the app's exception comes out.
    - Several apps fail: an :exc:`ExceptionGroup` (or
      :exc:`BaseExceptionGroup`) of their errors, in the order they happened.
      A group only ever comes out when more than one app really failed.
    - The block raises: every app is still shut down gracefully, then the
      block's exception comes out, with the apps' errors (if any) as notes.

    Example::

        async with open_lifespans(users_app, billing_app) as (users, billing):
            ...
    """
    for index, app in enumerate(apps):
        check_app(app, f"apps[{index}]")
    options = check_options(startup_timeout, shutdown_timeout, allow_unsupported)
    deferred = _Deferred(
        "open_lifespans", lambda backend: backend.open_many(apps, options)
    )
    return cast("AbstractAsyncContextManager[tuple[LifespanApp[Any], ...]]", deferred)
