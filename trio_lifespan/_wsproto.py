"""httpx-ws through ``open_client``'s transport: ``aconnect_ws(url, client)``.

httpx-ws sends the handshake as a request through the client and frames
every message itself, with wsproto, over the ``network_stream`` of the 101
response. This module is that stream: what httpx-ws writes is unframed (a
wsproto server connection) into ASGI messages for a
:class:`._websocket.WebSocketSession`, and what the app sends is framed for
httpx-ws to read. Imported only when such a request comes (httpx-ws brings
wsproto). ``client.websocket_connect`` needs none of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import wsproto
import wsproto.events as ev
from wsproto.utilities import LocalProtocolError

from ._errors import WebSocketDenied, WebSocketDisconnect
from ._websocket import DROPPED, WebSocketSession

if TYPE_CHECKING:
    from types import ModuleType


async def upgrade(transport: Any, httpx: ModuleType, request: Any) -> Any:
    """Connect a websocket session for an upgrade ``request``; the 101
    response with its ``network_stream``, or the app's refusal as a
    response (httpx-ws raises ``WebSocketUpgradeError`` with it)."""
    from ._transport import read_timeout, websocket_scope  # noqa: PLC0415 - (it imports us lazily)

    offered = request.headers.get("sec-websocket-protocol", "")
    subprotocols = [p.strip() for p in offered.split(",") if p.strip()]
    scope = websocket_scope(request, subprotocols)
    timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
    session = WebSocketSession(
        transport.app,
        scope,
        transport.apps,
        read_timeout=read_timeout(timeouts.get("read")),
        raise_app_exceptions=transport.raise_app_exceptions,
    )
    try:
        await session.__aenter__()
    except WebSocketDenied as denied:
        return httpx.Response(
            denied.status_code, headers=denied.headers, content=denied.body
        )
    except WebSocketDisconnect:  # closed before accepting: as a server, 403
        return httpx.Response(403, request=request)
    connection = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    connection.initiate_upgrade_connection(scope["headers"], scope["path"])
    handshake = connection.send(
        ev.AcceptConnection(
            subprotocol=session.accepted_subprotocol,
            extra_headers=session.extra_headers,
        )
    )
    head = handshake.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    headers = [tuple(line.split(b": ", 1)) for line in head]
    return httpx.Response(
        101,
        headers=headers,
        extensions={"network_stream": NetworkStream(session, connection)},
        request=request,
    )


class NetworkStream:
    """What httpx-ws reads and writes: wsproto frames, to and from a session."""

    def __init__(
        self, session: WebSocketSession, connection: wsproto.WSConnection
    ) -> None:
        self.session = session
        self.connection = connection
        self._out = b""  # frames for httpx-ws to read
        self._closed = False  # a close frame went out, or the app is gone
        self._text: list[str] = []
        self._bytes: list[bytes] = []

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """The app's next messages, framed (``b""`` once the session is over)."""
        while not self._out and not self._closed:
            try:
                message = await self.session.receive()
            except WebSocketDisconnect as closed:
                code = 1000 if closed.code == DROPPED else closed.code
                self._frame(ev.CloseConnection(code=code, reason=closed.reason or None))
                self._closed = True
                break
            except Exception as error:
                if not self.session.hold(error):
                    raise
                # The handler raised: as a server, a close with 1011; its
                # error comes out of the client's exit, bare (out of here it
                # would reach the test in httpx-ws's task group's group).
                self._frame(ev.CloseConnection(code=1011))
                self._closed = True
                break
            if "text" in message:
                self._frame(ev.TextMessage(data=message["text"]))
            else:
                self._frame(ev.BytesMessage(data=message["bytes"]))
        out, self._out = self._out[:max_bytes], self._out[max_bytes:]
        return out

    def _frame(self, event: ev.Event) -> None:
        try:
            self._out += self.connection.send(event)
        except LocalProtocolError:  # (closed already)
            self._closed = True

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Frames from httpx-ws: each message goes to the app as it completes."""
        self.connection.receive_data(buffer)
        for event in self.connection.events():
            if isinstance(event, ev.TextMessage):
                self._text.append(event.data)
                if event.message_finished:
                    await self.session.send_text("".join(self._text))
                    self._text.clear()
            elif isinstance(event, ev.BytesMessage):
                self._bytes.append(bytes(event.data))
                if event.message_finished:
                    await self.session.send_bytes(b"".join(self._bytes))
                    self._bytes.clear()
            elif isinstance(event, ev.Ping):
                self._frame(event.response())
            elif isinstance(event, ev.CloseConnection):
                self._frame(event.response())
                self._closed = True
                self.session.leave(event.code, event.reason or "")

    async def aclose(self) -> None:
        """httpx-ws is done: the app hears that the client went, and gets the
        grace to end (then is cancelled), as a session closed by
        ``websocket_connect`` does; what it raised comes out of the client's
        exit (out of httpx-ws, it would come in its task group's group)."""
        await self.session.settle()

    def get_extra_info(self, info: str) -> Any:
        return None
