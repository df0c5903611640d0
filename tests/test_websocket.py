"""``client.websocket_connect`` (trio_lifespan/_websocket.py), and httpx-ws's
``aconnect_ws`` through the client (trio_lifespan/_wsproto.py), against raw
ASGI apps, on each backend, on fake time."""

from __future__ import annotations

import enum
from http import HTTPStatus
from typing import Any, cast

import anyio
import httpx_ws
import pytest
import wsproto
import wsproto.connection
import wsproto.events as ev

import trio_lifespan
from trio_lifespan import WebSocketDenied, WebSocketDisconnect
from trio_lifespan._compat import BaseExceptionGroup
from trio_lifespan._errors import RequestProtocolError
from trio_lifespan._exchange import ACCEPT, WebSocketRules
from trio_lifespan._types import Message, Receive, Scope, Send
from trio_lifespan._wsproto import NetworkStream

from .backends import Backend, forever, tasks
from .test_transport import a_control_in, lifespan, not_a_token
from .typed import approx


def chat(backend: Backend, heard: list[Message]) -> Any:
    """An app that accepts with the first subprotocol offered and echoes;
    ``close`` closes (4001), ``boom`` raises, ``bytes`` answers in bytes.
    What it receives after it stops echoing goes in ``heard``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        assert await receive() == {"type": "websocket.connect"}
        offered = scope["subprotocols"]
        await send(
            {
                "type": "websocket.accept",
                "subprotocol": offered[0] if offered else None,
                "headers": [(b"x-room", scope["state"]["db"].encode())],
            }
        )
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                heard.append(message)
                return
            text = message.get("text")
            if text == "close":
                await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
                heard.append(await receive())
                return
            if text == "boom":
                raise KeyError("boom")
            if text == "json":
                await send({"type": "websocket.send", "text": '{"ok": true}'})
                continue
            if text == "json-bytes":
                await send({"type": "websocket.send", "bytes": b'{"ok": 1}'})
                continue
            if text == "bytes":
                await send({"type": "websocket.send", "bytes": b"\x00\x01"})
                continue
            if message.get("bytes") is not None:
                await send({"type": "websocket.send", "bytes": message["bytes"] * 2})
                continue
            await send({"type": "websocket.send", "text": f"{text}!"})

    return app


async def test_a_session_talks_in_asgi_messages(backend: Backend) -> None:
    heard: list[Message] = []
    async with trio_lifespan.open_client(chat(backend, heard)) as client:
        async with client.websocket_connect(
            "/ws?room=1", subprotocols=["chat", "other"]
        ) as websocket:
            assert websocket.accepted_subprotocol == "chat"
            assert websocket.extra_headers == [(b"x-room", b"ready")]
            await websocket.send_text("hello")
            assert await websocket.receive_text() == "hello!"
            await websocket.send_bytes(b"ab")
            assert await websocket.receive_bytes() == b"abab"
            await websocket.send_json({"a": [1]})
            assert await websocket.receive_text() == '{"a":[1]}!'
            await websocket.send_json({"b": 2}, mode="binary")
            assert await websocket.receive_bytes() == b'{"b":2}{"b":2}'
            await websocket.send_text("json")
            assert await websocket.receive_json() == {"ok": True}
            await websocket.send_text("json-bytes")
            assert await websocket.receive_json(mode="binary") == {"ok": 1}
        assert heard == [{"type": "websocket.disconnect", "code": 1000, "reason": ""}]


async def test_the_app_closing_is_a_disconnect_with_its_code(backend: Backend) -> None:
    heard: list[Message] = []
    async with trio_lifespan.open_client(chat(backend, heard)) as client:
        async with client.websocket_connect("/ws") as websocket:
            await websocket.send_text("close")
            with pytest.raises(WebSocketDisconnect) as caught:
                await websocket.receive_text()
            assert (caught.value.code, caught.value.reason) == (4001, "bye")
            assert (websocket.close_code, websocket.close_reason) == (4001, "bye")
            with pytest.raises(WebSocketDisconnect):
                await websocket.send_text("anyone?")
    assert str(caught.value) == (
        "the app closed the websocket with code 4001 ('bye'). Catch "
        "trio_lifespan.WebSocketDisconnect where the test expects the close; its "
        ".code is the close code."
    )
    assert heard == [{"type": "websocket.disconnect", "code": 4001, "reason": "bye"}]


async def test_the_client_closing_is_heard_with_its_code(backend: Backend) -> None:
    heard: list[Message] = []
    async with trio_lifespan.open_client(chat(backend, heard)) as client:
        async with client.websocket_connect("/ws") as websocket:
            await websocket.close(4321, "done")
    assert heard == [{"type": "websocket.disconnect", "code": 4321, "reason": "done"}]


async def test_a_handlers_exception_is_raised_in_the_test(backend: Backend) -> None:
    async with trio_lifespan.open_client(chat(backend, [])) as client:
        with pytest.raises(KeyError, match="boom"):
            async with client.websocket_connect("/ws") as websocket:
                await websocket.send_text("boom")  # a test that only sends
        with pytest.raises(KeyError, match="boom"):
            async with client.websocket_connect("/ws") as websocket:
                await websocket.send_text("boom")
                await websocket.receive_text()


async def test_text_and_bytes_are_not_taken_for_each_other(backend: Backend) -> None:
    async with trio_lifespan.open_client(chat(backend, [])) as client:
        async with client.websocket_connect("/ws") as websocket:
            await websocket.send_text("bytes")
            with pytest.raises(TypeError, match="the app sent bytes on websocket /ws"):
                await websocket.receive_text()
            await websocket.send_text("hi")
            with pytest.raises(TypeError, match="the app sent text on websocket /ws"):
                await websocket.receive_bytes()


def refusing(how: str) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        if how == "close":
            await send({"type": "websocket.close", "code": 1008})
        elif how == "close with a list":
            reason = [{"msg": "Field required"}]
            await send({"type": "websocket.close", "code": 1008, "reason": reason})
        elif how == "raise":
            raise RuntimeError("the handler failed")
        elif how == "deny":
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 401,
                    "headers": [(b"www-authenticate", b"Bearer")],
                }
            )
            await send(
                {
                    "type": "websocket.http.response.body",
                    "body": b"no ",
                    "more_body": True,
                }
            )
            await send({"type": "websocket.http.response.body", "body": b"token"})

    return app


async def test_a_refused_handshake_says_how(backend: Backend) -> None:
    async with trio_lifespan.open_client(refusing("close")) as client:
        with pytest.raises(WebSocketDisconnect) as closed:
            async with client.websocket_connect("/ws"):
                raise AssertionError("not accepted")
        assert closed.value.code == 1008
    async with trio_lifespan.open_client(refusing("deny")) as client:
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket_connect("/ws"):
                raise AssertionError("not accepted")
        assert denied.value.status_code == 401
        assert denied.value.headers == [(b"www-authenticate", b"Bearer")]
        assert denied.value.body == b"no token"
        assert str(denied.value) == (
            "the app refused the websocket handshake with a 401 response: "
            "'no token'. Catch trio_lifespan.WebSocketDenied where the test "
            "expects the refusal; it has the status_code, headers and body."
        )
    async with trio_lifespan.open_client(refusing("return")) as client:
        with pytest.raises(WebSocketDenied) as returned:
            async with client.websocket_connect("/ws"):
                raise AssertionError("not accepted")
        assert returned.value.status_code == 500  # as uvicorn and hypercorn answer
    raising = refusing("raise")
    async with trio_lifespan.open_client(raising, raise_app_exceptions=False) as client:
        with pytest.raises(WebSocketDenied) as failed:
            async with client.websocket_connect("/ws"):
                raise AssertionError("not accepted")
        assert failed.value.status_code == 500  # (its error not raised: a 500)
    async with trio_lifespan.open_client(raising) as client:
        with pytest.raises(RuntimeError, match=r"^the handler failed$"):
            async with client.websocket_connect("/ws"):
                raise AssertionError("not accepted")
    # FastAPI closes before the accept with a list of validation errors as
    # the reason (a server sends a 403, no close frame): still a close.
    async with trio_lifespan.open_client(refusing("close with a list")) as client:
        with pytest.raises(WebSocketDisconnect) as listed:
            async with client.websocket_connect("/ws"):
                raise AssertionError("not accepted")
        assert listed.value.code == 1008
        assert listed.value.reason == "[{'msg': 'Field required'}]"


async def test_an_app_that_returns_after_accepting_drops_the_session(
    backend: Backend,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        await send({"type": "websocket.accept"})

    async with trio_lifespan.open_client(app) as client:
        async with client.websocket_connect("/ws") as websocket:
            with pytest.raises(WebSocketDisconnect) as caught:
                await websocket.receive()
            assert caught.value.code == 1006
            with pytest.raises(WebSocketDisconnect) as sending:
                await websocket.send_text("anyone?")
            assert sending.value.code == 1006


async def test_a_session_whose_task_was_cancelled_from_outside_says_so(
    backend: Backend,
) -> None:
    async with trio_lifespan.open_client(chat(backend, [])) as client:
        async with client.websocket_connect("/ws") as websocket:
            websocket.job.cancel()  # as a closing event loop cancels its tasks
            with pytest.raises(RuntimeError) as caught:
                await websocket.receive()
    assert str(caught.value) == (
        "the app's task for websocket /ws was cancelled, and not by the client: its "
        "event loop closed, the lifespan ended, or the app raised a cancellation "
        "of its own"
    )


async def test_a_message_out_of_turn_is_a_protocol_error(backend: Backend) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        await send({"type": "websocket.send", "text": "too early"})

    async with trio_lifespan.open_client(app) as client:
        with pytest.raises(RequestProtocolError) as caught:
            async with client.websocket_connect("/ws"):
                raise AssertionError("not accepted")
    assert caught.value.detail == (
        "it sent 'websocket.send' before accepting the websocket (websocket.accept)"
    )


async def test_the_read_timeout_bounds_each_wait(backend: Backend) -> None:
    async with trio_lifespan.open_client(chat(backend, []), timeout=2) as client:
        async with client.websocket_connect("/ws") as websocket:
            began = backend.now()
            with pytest.raises(TimeoutError) as caught:
                await websocket.receive_text()  # nothing was sent: nothing comes
            assert backend.now() - began == approx(2)
    assert str(caught.value) == (
        "the app did not send a message on websocket /ws within the client's "
        "read timeout (2 s): pass timeout= to open_client for a longer one (None "
        "for no limit)"
    )


async def test_a_session_left_by_an_error_ends_by_the_clients_exit(
    backend: Backend,
) -> None:
    ended: list[str] = []

    async def deaf(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await backend.sleep(forever())
        finally:
            ended.append("cancelled")

    async with trio_lifespan.open_client(deaf, shutdown_timeout=2) as client:
        with pytest.raises(ValueError, match="the test's"):
            async with client.websocket_connect("/ws"):
                raise ValueError("the test's")
        left = backend.now()
    assert backend.now() - left == approx(2)
    assert ended == ["cancelled"]


# httpx-ws, through the client ----------------------------------------------------


async def test_httpx_ws_talks_through_the_client(backend: Backend) -> None:
    heard: list[Message] = []
    async with trio_lifespan.open_client(chat(backend, heard)) as client:
        websocket: httpx_ws.AsyncWebSocketSession
        async with httpx_ws.aconnect_ws(
            "/ws", client, subprotocols=["chat"]
        ) as websocket:
            assert websocket.subprotocol == "chat"
            await websocket.send_text("hello")
            assert await websocket.receive_text() == "hello!"
            await websocket.send_bytes(b"ab")
            assert await websocket.receive_bytes() == b"abab"
            await websocket.send_text("close")
            with pytest.raises(httpx_ws.WebSocketDisconnect) as caught:
                await websocket.receive_text()
            assert caught.value.code == 4001
    assert heard[0]["type"] == "websocket.disconnect"


async def test_a_handlers_error_through_httpx_ws_is_a_1011_then_raised_bare(
    backend: Backend,
) -> None:
    # As from a server, httpx-ws sees the session closed with 1011; the
    # handler's error comes out of the client's exit, itself (out of
    # httpx-ws's reader, its task group would hand it on in a group of one).
    raised: list[Exception] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        raised.append(ValueError("the handler failed"))
        raise raised[-1]

    websocket: httpx_ws.AsyncWebSocketSession
    with pytest.raises(ValueError, match="the handler failed") as caught:
        async with trio_lifespan.open_client(app) as client:
            async with httpx_ws.aconnect_ws("/ws", client) as websocket:
                await websocket.send_text("boom")
                with pytest.raises(httpx_ws.WebSocketDisconnect) as closed:
                    await websocket.receive_text()
                assert closed.value.code == 1011
    assert caught.value is raised[0]


async def test_a_read_timeout_through_httpx_ws_is_still_raised(
    backend: Backend,
) -> None:
    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        await send({"type": "websocket.accept"})
        await backend.sleep(forever())

    websocket: httpx_ws.AsyncWebSocketSession
    async with trio_lifespan.open_client(silent, timeout=1) as client:
        with pytest.raises(BaseExceptionGroup) as caught:  # (httpx-ws's group)
            async with httpx_ws.aconnect_ws("/ws", client) as websocket:
                await websocket.receive_text()
        assert caught.value.subgroup(TimeoutError) is not None


async def test_httpx_ws_sees_a_refusal_as_the_response(backend: Backend) -> None:
    for how, status in (("deny", 401), ("close", 403)):
        async with trio_lifespan.open_client(refusing(how)) as client:
            with pytest.raises(httpx_ws.WebSocketUpgradeError) as caught:
                async with httpx_ws.aconnect_ws("/ws", client):
                    raise AssertionError("not accepted")
            assert caught.value.response.status_code == status


# Misuse, and the ends of a session -------------------------------------------------


async def test_a_session_used_outside_its_block_says_so(backend: Backend) -> None:
    async with trio_lifespan.open_client(chat(backend, [])) as client:
        session = client.websocket_connect("/ws")
        for misuse in (session.receive(), session.send_text("x"), session.close()):
            with pytest.raises(RuntimeError, match="is not connected: use it inside"):
                await misuse
        with pytest.raises(RuntimeError, match="is not connected"):
            assert session.job
        async with session:
            with pytest.raises(RuntimeError, match="entered already"):
                await session.__aenter__()
    unopened: Any = trio_lifespan.open_client(chat(backend, []))
    with pytest.raises(RuntimeError, match="lifespan is not open yet"):
        unopened._client.websocket_connect("/ws")


async def test_after_the_app_ended_every_call_says_how(backend: Backend) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4000})

    async with trio_lifespan.open_client(app) as client:
        async with client.websocket_connect("/ws") as websocket:
            with pytest.raises(WebSocketDisconnect) as first:
                await websocket.receive()
            with pytest.raises(WebSocketDisconnect) as again:
                await websocket.receive()
            await backend.sleep(1)  # the app has returned
            with pytest.raises(WebSocketDisconnect) as sending:
                await websocket.send_text("late")
    assert first.value.code == again.value.code == sending.value.code == 4000


async def test_an_app_that_reads_on_after_the_disconnect_hears_dropped(
    backend: Backend,
) -> None:
    heard: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        await send({"type": "websocket.accept"})
        heard.append(await receive())
        heard.append(await receive())  # (nothing more can come)
        await send({"type": "websocket.send", "text": "anyone?"})

    async with trio_lifespan.open_client(app) as client:
        async with client.websocket_connect("/ws"):
            pass
    assert heard == [
        {"type": "websocket.disconnect", "code": 1000, "reason": ""},
        {"type": "websocket.disconnect", "code": 1006, "reason": ""},
    ]


async def test_a_send_after_the_client_went_raises_in_the_handler_not_the_test(
    backend: Backend,
) -> None:
    # A websocket's send() once the client has gone raises an OSError, as
    # servers' do; raised in the handler's own task group, it comes out of it
    # in a group: still the client's going, not an error of the app's.
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        await send({"type": "websocket.accept"})

        async def later() -> None:
            await receive()  # the client's close
            await send({"type": "websocket.send", "text": "too late"})

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(later)
        except BaseException as exc:
            raised.append(exc)
            raise

    async with trio_lifespan.open_client(app) as client:
        async with client.websocket_connect("/ws"):
            pass
    (group,) = raised
    assert isinstance(group, BaseExceptionGroup)
    (gone,) = cast("BaseExceptionGroup[BaseException]", group).exceptions
    assert isinstance(gone, OSError)
    assert str(gone) == "the client of websocket /ws has gone"


async def test_a_handler_that_never_ends_is_cancelled_after_the_grace(
    backend: Backend,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        await send({"type": "websocket.accept"})
        await backend.sleep(forever())

    async with trio_lifespan.open_client(app, shutdown_timeout=2) as client:
        began = backend.now()
        async with client.websocket_connect("/ws"):
            pass
        assert backend.now() - began == approx(2)
        with backend.move_on_after(1):  # cancelled while it waits
            async with client.websocket_connect("/ws"):
                pass
        assert backend.now() - began == approx(3)


async def test_after_a_crash_a_session_is_refused(backend: Backend) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await backend.sleep(1)
            raise KeyError("pool died")
        await receive()
        await send({"type": "websocket.accept"})
        await backend.sleep(forever())

    refused: list[BaseException] = []
    with pytest.raises(KeyError, match="pool died"):
        async with trio_lifespan.open_client(app) as client:
            async with client.websocket_connect("/ws") as websocket:
                try:
                    await websocket.receive()
                finally:
                    with pytest.raises(trio_lifespan.LifespanUnavailable) as caught:
                        async with client.websocket_connect("/ws"):
                            pass
                    refused.append(caught.value)
    assert isinstance(refused[0].__cause__, KeyError)


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        (
            {"type": "websocket.send", "text": "a", "bytes": b"b"},
            "its websocket.send has both text and bytes: give exactly one",
        ),
        (
            {"type": "websocket.send"},
            "its websocket.send has no text or bytes: give exactly one",
        ),
        (
            {"type": "websocket.send", "text": b"a"},
            "its websocket.send has text b'a', not a str",
        ),
        (
            {"type": "websocket.send", "bytes": "a"},
            "its websocket.send has bytes 'a', not bytes",
        ),
        (
            {"type": "websocket.close", "code": "1000"},
            "its websocket.close has code '1000' and reason '': give an int and a str",
        ),
    ],
)
def test_the_rules_of_an_open_session(message: Message, detail: str) -> None:
    rules = WebSocketRules("websocket /ws")
    assert rules.sent({"type": "websocket.accept"}) == (ACCEPT, (None, []))
    with pytest.raises(RequestProtocolError) as caught:
        rules.sent(message)
    assert caught.value.detail == detail


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        (
            {"type": "websocket.accept", "subprotocol": 1},
            "its websocket.accept has subprotocol 1, not a str",
        ),
        (
            {"type": "websocket.http.response.start", "status": 99},
            "its websocket.http.response.start has status 99, not an int from 100 "
            "to 599",
        ),
        (
            {"type": "websocket.http.response.body", "body": b""},
            "it sent 'websocket.http.response.body' before accepting the websocket "
            "(websocket.accept)",
        ),
        (
            {"type": "websocket.accept", "headers": [(b"x-a", b"1\nx-b: 2")]},
            a_control_in("websocket.accept", "x-a", b"1\nx-b: 2"),
        ),
        (
            {
                "type": "websocket.http.response.start",
                "status": 403,
                "headers": [(b"x(a)", b"1")],
            },
            not_a_token("websocket.http.response.start", b"x(a)"),
        ),
    ],
)
def test_the_rules_of_a_handshake(message: Message, detail: str) -> None:
    with pytest.raises(RequestProtocolError) as caught:
        WebSocketRules("websocket /ws").sent(message)
    assert caught.value.detail == detail


def test_a_denial_is_the_last_of_a_session() -> None:
    rules = WebSocketRules("websocket /ws")
    rules.sent({"type": "websocket.http.response.start", "status": 403})
    with pytest.raises(RequestProtocolError) as caught:
        rules.sent({"type": "websocket.accept"})
    assert caught.value.detail == (
        "it sent 'websocket.accept' while sending its denial response "
        "(websocket.http.response.body)"
    )
    rules.sent({"type": "websocket.http.response.body", "body": b""})
    with pytest.raises(RequestProtocolError) as caught:
        rules.sent({"type": "websocket.close"})
    assert caught.value.detail == (
        "it sent 'websocket.close' after the websocket was closed"
    )


# httpx-ws's frames, one by one ----------------------------------------------------


class _Session:
    """What the network stream hands messages to, recorded."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.left: list[tuple[int, str]] = []

    async def send_text(self, text: str) -> None:
        self.sent.append(text)

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    def leave(self, code: int = 1001, reason: str = "") -> None:
        self.left.append((code, reason))


async def test_fragments_pings_and_a_close_from_httpx_ws(backend: Backend) -> None:
    server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    server.initiate_upgrade_connection(
        [
            (b"host", b"x"),
            (b"connection", b"upgrade"),
            (b"upgrade", b"websocket"),
            (b"sec-websocket-version", b"13"),
            (b"sec-websocket-key", b"AAAAAAAAAAAAAAAAAAAAAA=="),
        ],
        "/ws",
    )
    server.send(ev.AcceptConnection())
    client = wsproto.connection.Connection(wsproto.ConnectionType.CLIENT)
    session = _Session()
    stream = NetworkStream(session, server)  # type: ignore[arg-type]
    frames: list[ev.Event] = [
        ev.TextMessage(data="hel", message_finished=False),
        ev.TextMessage(data="lo"),
        ev.BytesMessage(data=b"a", message_finished=False),
        ev.BytesMessage(data=b"b"),
        ev.Ping(payload=b"p"),
        ev.CloseConnection(code=4002, reason="done"),
    ]
    for frame in frames:
        await stream.write(client.send(frame))
    assert session.sent == ["hello", b"ab"]
    assert session.left == [(4002, "done")]
    client.receive_data(await stream.read(65536))
    assert [type(event) for event in client.events()] == [ev.Pong, ev.CloseConnection]
    assert await stream.read(65536) == b""  # (closed)
    assert stream.get_extra_info("socket") is None


async def test_a_session_after_the_client_closed_is_refused(backend: Backend) -> None:
    async with trio_lifespan.open_client(chat(backend, [])) as client:
        pass
    with pytest.raises(RuntimeError, match=r"^this client has been closed: connect"):
        client.websocket_connect("/ws")


async def test_a_denial_left_unfinished_is_a_protocol_error(backend: Backend) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        await send({"type": "websocket.http.response.start", "status": 401})

    async with trio_lifespan.open_client(app) as client:
        with pytest.raises(RequestProtocolError) as caught:
            async with client.websocket_connect("/ws"):
                raise AssertionError("not accepted")
    assert caught.value.detail == (
        "it returned before its denial response was complete (no "
        "websocket.http.response.body with more_body=False)"
    )


async def test_sessions_read_from_two_tasks_each_get_one(backend: Backend) -> None:
    async with trio_lifespan.open_client(chat(backend, [])) as client:
        async with client.websocket_connect("/ws") as websocket:
            got: list[str] = []

            async def read() -> None:
                got.append(await websocket.receive_text())

            async with tasks(backend) as start_soon:
                start_soon(read)
                start_soon(read)
                await backend.sleep(1)
                await websocket.send_text("a")
                await websocket.send_text("b")
    assert sorted(got) == ["a!", "b!"]


async def test_codes_of_an_int_enum_are_taken_as_servers_take_them(
    backend: Backend,
) -> None:
    class Code(enum.IntEnum):
        GONE = 4004

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        if scope["path"] == "/deny":
            await send(
                {"type": "websocket.http.response.start", "status": HTTPStatus.GONE}
            )
            await send({"type": "websocket.http.response.body", "body": b""})
            return
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": Code.GONE})

    async with trio_lifespan.open_client(app) as client:
        async with client.websocket_connect("/ws") as websocket:
            with pytest.raises(WebSocketDisconnect) as closed:
                await websocket.receive()
        with pytest.raises(WebSocketDenied) as denied:
            async with client.websocket_connect("/deny"):
                raise AssertionError("not accepted")
    assert (type(closed.value.code), closed.value.code) == (int, 4004)
    assert (type(denied.value.status_code), denied.value.status_code) == (int, 410)


async def test_a_crash_ends_a_session_read_in_another_task(backend: Backend) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await backend.sleep(2)
            raise KeyError("pool died")
        await receive()
        await send({"type": "websocket.accept"})
        await backend.sleep(forever())

    errors: list[BaseException] = []
    client: Any = None

    async def read(websocket: Any) -> None:
        try:
            await websocket.receive()
        except trio_lifespan.LifespanUnavailable as exc:
            errors.append(exc)

    async with tasks(backend) as start_soon:  # outside the lifespan's body
        with pytest.raises(KeyError, match="pool died"):
            async with trio_lifespan.open_client(app) as client:
                session = client.websocket_connect("/ws")
                websocket = await session.__aenter__()
                start_soon(lambda: read(websocket))
                await backend.sleep(forever())
        with pytest.raises(trio_lifespan.LifespanUnavailable):
            client.websocket_connect("/ws")  # (closed by a failed lifespan)
    assert isinstance(errors[0].__cause__, KeyError)


async def test_the_scope_says_ws_or_wss_as_the_url_does(backend: Backend) -> None:
    # (``websocket_connect`` and httpx-ws build the same scope: one helper)
    # ASGI 2.4, as uvicorn's websocket scopes: a send() once the client has
    # gone raises (where HTTP scopes say 2.3: dropped).
    schemes: list[str] = []
    versions: list[dict[str, str]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        schemes.append(scope["scheme"])
        versions.append(scope["asgi"])
        await receive()
        await send({"type": "websocket.accept"})
        await receive()

    async with trio_lifespan.open_client(app) as client:
        for url in ("/ws", "https://testserver/ws", "wss://testserver/ws"):
            async with client.websocket_connect(url):
                pass
        async with httpx_ws.aconnect_ws("wss://testserver/ws", client):
            pass
    assert schemes == ["ws", "wss", "wss", "wss"]
    assert versions == [{"version": "3.0", "spec_version": "2.4"}] * 4


async def test_leaving_httpx_ws_waits_for_the_handler_as_a_close_does(
    backend: Backend,
) -> None:
    ended: list[float] = []

    async def deaf(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await backend.sleep(forever())
        finally:
            ended.append(backend.now())

    async with trio_lifespan.open_client(deaf, shutdown_timeout=2) as client:
        began = backend.now()
        async with httpx_ws.aconnect_ws("/ws", client):
            pass
        assert ended == [approx(began + 2)]  # (the grace, then cancelled)
