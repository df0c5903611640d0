"""The client :func:`open_client` yields, whichever httpx it is made from.

:class:`ClientMixin` is what the client adds to an ``AsyncClient`` (the
lifespan, websockets, a failed lifespan named); :class:`OpenClient` opens the
lifespan, then the client, as one. ``_httpx.py`` and ``_httpx2.py`` make the
client classes of httpx and httpx2 from them; this module imports neither.
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import AsyncGenerator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeGuard, TypeVar

from ._backend import current_backend
from ._compat import ki_protected
from ._errors import LifespanUnavailable
from ._exceptions import combine, only_cancellations, reraise
from ._open import entered_twice, exited_twice, never_entered
from ._state import AppT_co
from ._transport import (
    READ_HERE,
    READING,
    STREAMED,
    WHOLE,
    read_timeout,
    websocket_scope,
)
from ._websocket import WebSocketSession

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from ._options import Options
    from ._state import LifespanApp
    from ._types import AnyASGIApp

#: The most URL strings a client remembers the merge of (and base URLs
#: remembered). Once full, they are forgotten at once: a suite goes on to
#: the paths of its next tests, and a dict kept in order of use would cost
#: every request.
MAX_URLS = 256

#: The longest URL string remembered: a long one (a query of data) costs
#: its merge alone, and a few hundred of them would keep megabytes.
MAX_URL_LENGTH = 2048

#: Base URLs as the client classes parsed them, by class and string: a
#: client made with a parsed base URL skips parsing it twice (about 7 us of
#: opening a client).
BASE_URLS: dict[tuple[type[Any], str], object] = {}

K = TypeVar("K")
V = TypeVar("V")


def rememberable(url: object) -> TypeGuard[str]:
    """Whether a parse of ``url`` is remembered: a string (not a URL or
    another type), and not a long one."""
    return type(url) is str and len(url) <= MAX_URL_LENGTH


def remember(store: dict[K, V], key: K, value: V) -> None:
    """Keep ``value`` in ``store`` (URLs parsed), forgetting all it holds
    once it holds ``MAX_URLS``."""
    if len(store) >= MAX_URLS:
        store.clear()
    store[key] = value


class ClientMixin(Generic[AppT_co]):
    """What :func:`open_client`'s client adds to an ``AsyncClient`` (of httpx
    or httpx2, whichever it is made from): :attr:`lifespan`,
    :meth:`websocket_connect`, and ``send`` that names a failed lifespan."""

    _lifespan: LifespanApp[AppT_co] | None = None
    #: httpx's merges of URL strings with the base URL, by string (see
    #: ``_merge_url``); made at the first request.
    _merged: dict[str, tuple[object, object]] | None = None

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

    def websocket_connect(
        self,
        url: Any,
        *,
        subprotocols: Sequence[str] = (),
        headers: Any = None,
    ) -> WebSocketSession:
        """A websocket session with the app at ``url``: ``async with`` it.

        ::

            async with client.websocket_connect("/ws") as websocket:
                await websocket.send_text("hello")
                assert await websocket.receive_text() == "hello, you"

        The client's base URL, headers and cookies apply, as to a request.
        Messages go to and from the app as ASGI messages, in-process; the
        app's handler sees the lifespan state. Entering the session waits
        for the app to accept; a refusal raises :exc:`WebSocketDisconnect`
        (the app closed) or :exc:`WebSocketDenied` (it answered with an HTTP
        response). What the app raises is raised in the test, as for HTTP
        requests (``raise_app_exceptions``).

        Args:
            url: The websocket's path (or URL): ``"/ws"``.
            subprotocols: The subprotocols to offer.
            headers: More headers for the handshake.
        """
        client: Any = self  # (an AsyncClient too: its methods, untyped here)
        transport = client._transport
        app = getattr(transport, "app", None)
        if client.is_closed and app is not None:
            failure: BaseException | None = getattr(app, "failure", None)
            if failure is not None:
                raise LifespanUnavailable(failure)
            raise RuntimeError(
                "this client has been closed: connect inside "
                "`async with open_client(app) as client:`"
            )
        if app is None:
            raise RuntimeError(
                "this client's lifespan is not open yet: connect inside "
                "`async with open_client(app) as client:`"
            )
        request = client.build_request("GET", url, headers=headers)
        scope = websocket_scope(request, list(subprotocols))
        scope["headers"] += [
            (b"connection", b"upgrade"),
            (b"upgrade", b"websocket"),
            (b"sec-websocket-version", b"13"),
            (b"sec-websocket-key", base64.b64encode(os.urandom(16))),
        ]
        if subprotocols:
            offered = ", ".join(subprotocols).encode()
            scope["headers"].append((b"sec-websocket-protocol", offered))
        return WebSocketSession(
            app,
            scope,
            transport.apps,
            read_timeout=read_timeout(client.timeout.read),
            raise_app_exceptions=transport.raise_app_exceptions,
        )

    def _merge_url(self, url: object) -> Any:
        """httpx's merge of ``url`` with the base URL, remembered by string.

        A test's requests go to the same few paths, and httpx parses each
        URL twice to merge it: about 15 us of a request's hundred. The merge
        depends on the string and the base URL alone, and a URL is immutable:
        a new base URL (a new object) merges afresh.
        """
        if not rememberable(url):  # (a URL, or a long string)
            return self._httpx_merge(url)
        client: Any = self  # (an AsyncClient too: its base URL, untyped here)
        base: object = client.base_url
        merged = self._merged
        if merged is None:
            merged = self._merged = {}
        known = merged.get(url)
        if known is not None and known[0] is base:
            return known[1]
        result = self._httpx_merge(url)
        remember(merged, url, (base, result))
        return result

    def _httpx_merge(self, url: object) -> object:
        """httpx's own merge of ``url`` with the base URL."""
        return super()._merge_url(url)  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownVariableType]

    @contextlib.asynccontextmanager
    async def stream(self, *args: Any, **kwargs: Any) -> AsyncGenerator[Any]:
        """httpx's ``stream()``: an error of its block comes out as it is,
        what the app's handler raised meanwhile noted on it (not raised in
        its place)."""
        async with super().stream(*args, **kwargs) as response:  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownVariableType]
            try:
                yield response
            except (Exception, KeyboardInterrupt, SystemExit) as exc:
                # (not a cancellation: that gives way to the app's error; ours
                # is inside the client's, httpx's BoundAsyncStream)
                ours = getattr(response.stream, "_stream", None)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
                told = getattr(ours, "reader_raised", None)
                if told is not None:
                    told(exc)
                raise

    async def send(self, request: Any, **kwargs: Any) -> Any:
        """Send ``request``, as httpx does; once the lifespan has failed and
        closed the client, say so rather than that the client is closed.
        (Every request method comes here.)"""
        failure: BaseException | None = getattr(self._lifespan, "failure", None)
        if failure is not None and getattr(
            self, "is_closed", False
        ):  # (an AsyncClient's)
            raise LifespanUnavailable(failure)
        client: Any = self  # (an AsyncClient too: its hooks, untyped here)
        if kwargs.get("stream", False):
            reading = STREAMED
        elif client.event_hooks["response"]:  # (httpx's own dict, not a copy)
            reading = WHOLE
        else:
            reading = READ_HERE
        token = READING.set(reading)
        try:
            return await super().send(request, **kwargs)  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType, reportUnknownVariableType]
        finally:
            try:  # noqa: SIM105 - no context manager on every request's path
                READING.reset(token)
            except ValueError:  # (closed unfinished by the garbage collector, in
                pass  # another context: its task's loop closed under it)


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
        client_class: type[Any],
        transport_class: type[Any],
    ) -> None:
        self._app = app
        self._options = options
        self._transport = transport_class(
            raise_app_exceptions=raise_app_exceptions,
            grace=options.shutdown_timeout,
        )
        known = (
            BASE_URLS.get((client_class, base_url)) if rememberable(base_url) else None
        )
        client: Any = client_class(
            transport=self._transport,
            base_url=base_url if known is None else known,
            **client_options,
        )
        if known is None and rememberable(base_url):
            # (a URL is immutable: clients can share it)
            remember(BASE_URLS, (client_class, base_url), client.base_url)
        self._client = client
        self._lifespan: AbstractAsyncContextManager[LifespanApp[Any]] | None = None
        self._exited = False

    @ki_protected
    async def __aenter__(self) -> Any:
        __tracebackhide__ = True
        if self._lifespan is not None:
            raise entered_twice("open_client")
        backend = current_backend("open_client")
        lifespan = self._lifespan = backend.open_one(self._app, self._options)
        app = await lifespan.__aenter__()
        self._transport.app = app
        self._transport.backend = backend
        self._transport.cancel_mark = backend.cancel_mark()
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
            raise never_entered("open_client")
        if self._exited:
            raise exited_twice("open_client")
        self._exited = True
        try:
            # (closes the transport: every response still open is closed,
            # each app given its grace)
            await self._client.__aexit__(None, None, None)
        except BaseException as close_error:  # noqa: BLE001 - raised again below
            # Closing the client failed (an app's handler raised, its
            # websocket task group): the body's own exception still comes
            # out, the handler's error noted on it (a cancellation gives way
            # to it); the lifespan still closes, and decides what comes out.
            chosen: BaseException | None = close_error
            if exc is not None and exc is not close_error:
                cancelled = self._transport.backend.cancelled
                chosen = combine(
                    exc,
                    close_error,
                    raised_gives_way=only_cancellations(exc, cancelled),
                    what="a request's handler failed too",
                )
            assert chosen is not None  # (of two exceptions, one)
            if chosen is exc:
                return await lifespan.__aexit__(exc_type, exc, tb)
            await lifespan.__aexit__(type(chosen), chosen, chosen.__traceback__)
            reraise(chosen)  # (the handler's error; its Ctrl-C, which wins)
        return await lifespan.__aexit__(exc_type, exc, tb)
