"""The httpx side of ``open_client``: the client class and its transport.

Imported by :func:`trio_lifespan.open_client` when it is called, never by
the package itself: this is the one module that imports httpx (and httpx-ws,
when it is installed and a client is opened).
"""

from __future__ import annotations

import functools
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic

import httpx

from ._backend import current_backend
from ._client import EXTRA
from ._compat import ki_protected
from ._errors import LifespanUnavailable
from ._open import entered_twice, exited_twice, never_entered
from ._state import AppT_co

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from ._options import Options
    from ._state import LifespanApp
    from ._types import AnyASGIApp, Receive, Scope, Send


class LifespanClient(httpx.AsyncClient, Generic[AppT_co]):
    """The ``httpx.AsyncClient`` that :func:`open_client` yields.

    It is an ``AsyncClient`` in every way; its transport sends each request
    to the app through :attr:`lifespan`, so requests see the lifespan state.
    """

    _lifespan: LifespanApp[AppT_co] | None = None

    @property
    def lifespan(self) -> LifespanApp[AppT_co]:
        """The :class:`LifespanApp` that requests go through.

        Raises:
            RuntimeError: The client has not been entered yet.
        """
        if self._lifespan is None:
            raise RuntimeError(
                "this client's lifespan is not open yet: use the client inside "
                "`async with open_client(app) as client:`"
            )
        return self._lifespan

    async def send(
        self, request: httpx.Request, **kwargs: Any
    ) -> httpx.Response:  # (every request method comes here)
        """Send ``request``, as httpx does; once the lifespan has failed and
        closed the client, say so rather than that the client is closed."""
        lifespan = self._lifespan
        if self.is_closed and lifespan is not None:
            failure: BaseException | None = getattr(lifespan, "failure", None)
            if failure is not None:
                raise LifespanUnavailable(failure)
        return await super().send(request, **kwargs)


# Reprs and tracebacks name it where users find it.
LifespanClient.__module__ = "trio_lifespan"


async def _not_open(scope: Scope, receive: Receive, send: Send) -> None:
    """The transport's app until the lifespan is open."""
    raise RuntimeError(
        "this client's lifespan is not open yet: send requests inside "
        "`async with open_client(app) as client:`"
    )


def _is_websocket(request: httpx.Request) -> bool:
    return (
        request.url.scheme in ("ws", "wss")
        or request.headers.get("upgrade", "").lower() == "websocket"
    )


class _ReadTimeout(httpx.ASGITransport):
    """httpx's ASGI transport, which ignores timeouts, with the read timeout
    kept: an app that does not answer within it raises
    ``httpx.ReadTimeout``, as a server that does not would."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        seconds = timeouts.get("read")
        if seconds is None or _is_websocket(request):
            return await super().handle_async_request(request)
        import anyio  # noqa: PLC0415 - httpx's own dependency

        with anyio.move_on_after(seconds):
            return await super().handle_async_request(request)
        raise httpx.ReadTimeout(
            f"the app did not answer {request.method} {request.url} within the "
            f"client's read timeout ({seconds} s): pass timeout= to open_client, "
            "or to the request, for a longer one (None for no limit)",
            request=request,
        )


class _HTTPOnlyTransport(_ReadTimeout):
    """The transport without httpx-ws: a clear error for websockets."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if _is_websocket(request):
            raise ModuleNotFoundError(
                f"a websocket request ({request.url}) needs httpx-ws, which is "
                f"not installed: {EXTRA}",
                name="httpx_ws",
            )
        return await super().handle_async_request(request)


def _transport(*, raise_app_exceptions: bool) -> httpx.ASGITransport:
    """httpx-ws's transport (HTTP and websocket) if installed, else HTTP only;
    either keeps the read timeout."""
    try:
        from httpx_ws.transport import ASGIWebSocketTransport  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "httpx_ws":
            raise
        return _HTTPOnlyTransport(
            app=_not_open, raise_app_exceptions=raise_app_exceptions
        )

    return _with_read_timeout(ASGIWebSocketTransport)(
        app=_not_open, raise_app_exceptions=raise_app_exceptions
    )


@functools.cache
def _with_read_timeout(
    transport: type[httpx.ASGITransport],
) -> type[httpx.ASGITransport]:
    """httpx-ws's transport (its websockets untouched), read timeout kept;
    made once, when httpx-ws is first used."""
    return type("_WebSocketTransport", (_ReadTimeout, transport), {})


class OpenClient:
    """What :func:`open_client` returns: the lifespan, then the client, as one.

    The client is made when ``open_client`` is called, so that a wrong client
    option is a :exc:`TypeError` there and then.
    """

    __slots__ = ("_app", "_client", "_exited", "_lifespan", "_options", "_transport")

    def __init__(
        self,
        app: AnyASGIApp,
        options: Options,
        base_url: str,
        client_options: dict[str, Any],
        *,
        raise_app_exceptions: bool = True,
    ) -> None:
        self._app = app
        self._options = options
        self._transport = _transport(raise_app_exceptions=raise_app_exceptions)
        client: LifespanClient[Any] = LifespanClient(
            transport=self._transport, base_url=base_url, **client_options
        )
        self._client = client
        self._lifespan: AbstractAsyncContextManager[LifespanApp[Any]] | None = None
        self._exited = False

    @ki_protected
    async def __aenter__(self) -> LifespanClient[Any]:
        __tracebackhide__ = True
        if self._lifespan is not None:
            raise entered_twice("open_client")
        backend = current_backend("open_client")
        lifespan = self._lifespan = backend.open_one(self._app, self._options)
        app = await lifespan.__aenter__()
        self._transport.app = app
        self._client._lifespan = app
        try:
            await self._client.__aenter__()
        except BaseException as exc:
            # The lifespan closes, and decides what comes out (it never
            # swallows an exception: its exit returns False or raises).
            await lifespan.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self._client

    def _bound_the_websockets(self) -> None:
        """Give websocket sessions still open ``shutdown_timeout`` to end.

        Closing the client tells each session's app that the client went
        away, then waits for their tasks, in httpx-ws's task group: an app
        that never reads again (or whose handshake a cancellation cut short)
        would keep that wait going for ever. The group's deadline ends it.
        """
        group = getattr(self._transport, "_task_group", None)
        if group is None:  # HTTP only, or an httpx-ws of another shape
            return
        import anyio  # noqa: PLC0415 - httpx-ws runs on it: loaded already

        scope = group.cancel_scope
        limit = anyio.current_time() + self._options.shutdown_timeout
        scope.deadline = min(scope.deadline, limit)

    @ki_protected
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        __tracebackhide__ = True
        lifespan = self._lifespan
        if lifespan is None:
            raise never_entered("open_client")
        if self._exited:
            raise exited_twice("open_client")
        self._exited = True
        self._bound_the_websockets()
        try:
            # Not told of the block's exception: httpx-ws would hand it to its
            # task group, which would wrap it in a group.
            await self._client.__aexit__(None, None, None)
        except BaseException as close_error:
            # Closing the client failed (its websocket task group, say): the
            # lifespan still closes, and decides what comes out.
            await lifespan.__aexit__(
                type(close_error), close_error, close_error.__traceback__
            )
            raise
        return await lifespan.__aexit__(exc_type, exc, tb)
