"""The httpx side of ``open_client``: the client class and its transport.

Imported by :func:`trio_lifespan.open_client` when it is called, never by
the package itself: this is the one module that imports httpx (and httpx-ws,
when it is installed and a client is opened).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic

import httpx

from ._backend import current_backend
from ._client import EXTRA
from ._compat import ki_protected
from ._errors import LifespanUnavailable
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


class _HTTPOnlyTransport(httpx.ASGITransport):
    """httpx's ASGI transport, with a clear error for websockets."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if _is_websocket(request):
            raise ModuleNotFoundError(
                f"a websocket request ({request.url}) needs httpx-ws, which is "
                f"not installed: {EXTRA}",
                name="httpx_ws",
            )
        return await super().handle_async_request(request)


def _transport(*, raise_app_exceptions: bool) -> httpx.ASGITransport:
    """httpx-ws's transport (HTTP and websocket) if installed, else HTTP only."""
    try:
        from httpx_ws.transport import ASGIWebSocketTransport  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "httpx_ws":
            raise
        return _HTTPOnlyTransport(
            app=_not_open, raise_app_exceptions=raise_app_exceptions
        )
    return ASGIWebSocketTransport(
        app=_not_open, raise_app_exceptions=raise_app_exceptions
    )


class OpenClient:
    """What :func:`open_client` returns: the lifespan, then the client, as one.

    The client is made when ``open_client`` is called, so that a wrong client
    option is a :exc:`TypeError` there and then.
    """

    __slots__ = ("_app", "_client", "_lifespan", "_options", "_transport")

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

    @ki_protected
    async def __aenter__(self) -> LifespanClient[Any]:
        __tracebackhide__ = True
        if self._lifespan is not None:
            raise RuntimeError(
                "this open_client() context manager was already entered; "
                "call open_client() again for each `async with`"
            )
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
            raise RuntimeError(
                "__aexit__ was called on an open_client() context manager that "
                "was never entered: call __aenter__ first (`async with "
                "open_client(...)` does both)"
            )
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
