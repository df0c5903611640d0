"""``open_client``'s own transport (trio_lifespan/_transport.py), against raw
ASGI apps, on each backend, on fake time: streaming both ways, the read
timeout per wait, disconnects, the app's exceptions and protocol errors, and
a client used from tasks other than the one that opened it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import gzip
import importlib.metadata
import math
import sys
from collections import deque
from collections.abc import AsyncIterator
from contextvars import ContextVar
from http import HTTPStatus
from types import MappingProxyType, SimpleNamespace
from typing import Any

import anyio
import httpx
import pytest
import trio

import trio_lifespan
from trio_lifespan._errors import RequestProtocolError
from trio_lifespan._exchange import cancelled_under
from trio_lifespan._transport import transport_class
from trio_lifespan._types import Message, Receive, Scope, Send

from .backends import Backend, closed_under_a_reader, forever, tasks
from .typed import approx, closing

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup

#: A context variable of the test's, to see whose context an app runs in.
WHO: ContextVar[str] = ContextVar("WHO", default="nobody")

# httpx's own iterators (aiter_lines over aiter_text over aiter_bytes...)
# leave the inner ones to the garbage collector when a test stops reading
# early, and trio warns of each: httpx's, not the transport's (whose stream is
# an iterator, closed with the response).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Async generator 'httpx\\.:ResourceWarning"
)


async def lifespan(scope: Scope, receive: Receive, send: Send) -> bool:
    """Answer the lifespan protocol; whether ``scope`` was the lifespan's."""
    if scope["type"] != "lifespan":
        return False
    await receive()
    scope["state"]["db"] = "ready"
    await send({"type": "lifespan.startup.complete"})
    await receive()
    await send({"type": "lifespan.shutdown.complete"})
    return True


def start(status: int = 200, **more: Any) -> Message:
    return {"type": "http.response.start", "status": status, "headers": [], **more}


def body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


def not_a_token(kind: str, name: bytes) -> str:
    """What a message with a header name that is not a token is told."""
    return (
        f"its {kind} has a header name {name!r}, which is not a token (letters, "
        "digits and !#$%&'*+-.^_`|~, no space): a server would refuse to send it"
    )


def a_control_in(kind: str, name: str, value: bytes) -> str:
    """What a message with a control character in a header's value is told."""
    return (
        f"its {kind} has a header {name!r} whose value {value!r} holds a control "
        "character (a line break, a NUL): a server would refuse to send it (it "
        "could forge headers)"
    )


#: Each way a response is read: whole (``client.get``: the app is called in the
#: reader's task) or streamed (``client.stream``: the app runs in a task of its
#: own). What a reader sees is the same either way.
READS = pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])


async def fetch(
    client: httpx.AsyncClient, method: str, url: str, streamed: bool, **more: Any
) -> httpx.Response:
    """``client.request(...)``, or the same read through ``client.stream``."""
    if not streamed:
        return await client.request(method, url, **more)
    async with client.stream(method, url, **more) as response:
        await response.aread()
    return response


# Responses stream -----------------------------------------------------------------


def endless(backend: Backend, heard: list[Message], period: float = 1.0) -> Any:
    """An app streaming events for ever, one per ``period``; what its
    ``receive()`` says once the client goes is put in ``heard``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        await send(start(headers=[(b"content-type", b"text/event-stream")]))
        number = 0
        while True:
            await send(body(f"data: {number}\n\n".encode(), more=True))
            number += 1
            with backend.move_on_after(period):  # (it listens, as Starlette's do)
                heard.append(await receive())
                return

    return app


async def test_an_endless_response_streams_and_hears_the_disconnect(
    backend: Backend,
) -> None:
    heard: list[Message] = []
    async with trio_lifespan.open_client(endless(backend, heard)) as client:
        began = backend.now()
        lines: list[str] = []
        async with client.stream("GET", "/events") as response:
            assert response.headers["content-type"] == "text/event-stream"
            async with closing(response.aiter_lines()) as events:
                async for line in events:
                    if line:
                        lines.append(line)
                    if len(lines) == 3:
                        break
        assert lines == ["data: 0", "data: 1", "data: 2"]
        assert backend.now() - began == approx(2)  # as they came, not at the end
        assert heard == [{"type": "http.disconnect"}]  # (as it closed)


async def test_a_handler_deaf_to_the_disconnect_is_cancelled_when_its_response_closes(
    backend: Backend,
) -> None:
    ended: list[str] = []

    async def deaf(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())
        await send(body(b"first", more=True))
        try:
            await backend.sleep(forever())
        finally:
            ended.append("cancelled")

    async with trio_lifespan.open_client(deaf, shutdown_timeout=3) as client:
        began = backend.now()
        async with client.stream("GET", "/") as response:
            async with closing(response.aiter_bytes()) as chunks:
                assert await anext(chunks) == b"first"
        # Closing the response told it, gave it the grace (shutdown_timeout)
        # to end, then cancelled it.
        assert backend.now() - began == approx(3)
        assert ended == ["cancelled"]
        left = backend.now()
    assert backend.now() == left  # (nothing left for the client's exit)


async def test_a_cancelled_reader_gives_a_deaf_handler_no_grace(
    backend: Backend,
) -> None:
    # A stream closed, or a client left, by a cancellation (a deadline around
    # it): the handler is cancelled at once, on asyncio as on trio (whose
    # cancellations every later wait sees anyway).
    if backend.name == "asyncio" and sys.version_info < (3, 11):
        pytest.skip("Python 3.10's asyncio cannot tell a task being cancelled")
    ended: list[float] = []

    async def deaf(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())
        await send(body(b"first", more=True))
        try:
            await backend.sleep(forever())
        finally:
            ended.append(backend.now())

    async with trio_lifespan.open_client(deaf, shutdown_timeout=5) as client:
        began = backend.now()
        with backend.move_on_after(1):
            async with client.stream("GET", "/"):
                await backend.sleep(forever())
        assert ended == [approx(began + 1)]
        assert backend.now() - began == approx(1)
    began = backend.now()
    with backend.move_on_after(1):
        async with trio_lifespan.open_client(deaf, shutdown_timeout=5) as client:
            await client.send(client.build_request("GET", "/"), stream=True)
            await backend.sleep(forever())
    assert ended[1:] == [approx(began + 1)]
    assert backend.now() - began == approx(1)


async def test_a_cancelled_exit_waits_for_the_handlers_before_the_shutdown(
    backend: Backend,
) -> None:
    # The client's exit is cancelled while a handler of a stream left open
    # cleans up (shielded): it is waited for, within the grace, before the
    # lifespan shuts down; nothing of it outlives the client.
    events: list[tuple[str, float]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            events.append(("shutdown", backend.now()))
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send(start())
        await send(body(b"x", more=True))
        try:
            await backend.sleep(forever())
        finally:
            if backend.name == "trio":
                with trio.CancelScope(shield=True):
                    await trio.sleep(0.5)
            else:  # (asyncio cancels it once)
                await asyncio.sleep(0.5)
            events.append(("handler ended", backend.now()))

    for in_the_exit in (False, True):  # (cancelled in the block, in the grace)
        events.clear()
        began = backend.now()
        with backend.move_on_after(1):
            async with trio_lifespan.open_client(app, shutdown_timeout=5) as client:
                await client.send(client.build_request("GET", "/"), stream=True)
                if not in_the_exit:
                    await backend.sleep(forever())
        # (Python 3.10's asyncio cannot tell an exit that starts cancelled:
        # the handler gets its grace first)
        told = in_the_exit or backend.name == "trio" or sys.version_info >= (3, 11)
        ended = began + (1.5 if told else 6.5)
        assert events == [("handler ended", approx(ended)), ("shutdown", approx(ended))]


async def test_a_ctrl_c_in_a_streams_block_gives_its_handler_no_grace(
    backend: Backend,
) -> None:
    async def deaf(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())
        await send(body(b"x", more=True))
        await backend.sleep(forever())

    async with trio_lifespan.open_client(deaf, shutdown_timeout=5) as client:
        began = backend.now()
        with pytest.raises(KeyboardInterrupt):
            async with client.stream("GET", "/"):
                raise KeyboardInterrupt
        assert backend.now() == began


@pytest.mark.skipif(sys.version_info < (3, 11), reason="cancelling() is 3.11+")
def test_a_cancellation_count_left_over_does_not_cut_a_handlers_grace() -> None:
    # A task whose cancellation was swallowed without uncancel() (as an
    # asyncio.TaskGroup leaves one on Python 3.11 and 3.12) is not being
    # cancelled: a stream it closes gives its handler the grace.
    from .backends import AsyncioBackend  # noqa: PLC0415

    asyncio_backend = AsyncioBackend()
    ended: list[str] = []

    async def polite(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())
        await send(body(b"x", more=True))
        await receive()
        await receive()  # http.disconnect
        await asyncio.sleep(0.01)  # (its clean-up takes a while)
        ended.append("cleaned up")

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0)
        if sys.version_info >= (3, 11):  # (for the type checkers, which read 3.10)
            assert task.cancelling() == 1  # (left over)
        async with trio_lifespan.open_client(polite) as client:
            async with client.stream("GET", "/"):
                pass
            assert ended == ["cleaned up"]

    asyncio_backend.run(main, {})


@READS
async def test_the_read_timeout_bounds_each_wait_not_the_response(
    backend: Backend, streamed: bool
) -> None:
    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        if scope["path"] == "/silent":
            await backend.sleep(forever())
        await send(start())
        gap = 0.25 if scope["path"] == "/steady" else 2
        for _ in range(8):
            await backend.sleep(gap)
            await send(body(b".", more=True))
        await send(body(b""))

    async with trio_lifespan.open_client(slow, timeout=1) as client:
        began = backend.now()
        # 2 s in all, a chunk each 0.25 s
        response = await fetch(client, "GET", "/steady", streamed)
        assert response.content == b"........"
        assert backend.now() - began == approx(2)
        with pytest.raises(httpx.ReadTimeout) as caught:
            await fetch(client, "GET", "/stalls", streamed)
        assert str(caught.value) == (
            "the app sent nothing more of its response to GET "
            "http://testserver/stalls within the client's read timeout (1 s): "
            "pass timeout= to open_client, or to the request, for a longer one "
            "(None for no limit)"
        )
        began = backend.now()
        with pytest.raises(httpx.ReadTimeout) as caught:
            await fetch(client, "GET", "/silent", streamed)
        assert str(caught.value).startswith(
            "the app did not answer GET http://testserver/silent within the "
            "client's read timeout (1 s)"
        )
        assert backend.now() - began == approx(1)


async def test_the_app_is_a_few_messages_ahead_of_the_reader_at_most(
    backend: Backend,
) -> None:
    sent: list[int] = []

    async def fast(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())
        for number in range(100):
            sent.append(number)
            await send(body(b"x" * 1000, more=True))
        await send(body(b""))

    async with trio_lifespan.open_client(fast) as client:
        read = 0
        async with client.stream("GET", "/") as response:
            async for _ in response.aiter_raw():
                read += 1
                await backend.sleep(1)  # a slow reader
                assert len(sent) - read <= 6  # (a few held: never the whole body)
        assert read == 100


async def test_a_request_body_streams_to_receive(backend: Backend) -> None:
    received: list[Message] = []

    async def collect(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        while True:
            message = await receive()
            received.append(message)
            if not message["more_body"]:
                break
        await send(start())
        await send(body(b"ok"))

    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"a", b"bc", b"def"):
            await backend.sleep(1)
            yield part

    async with trio_lifespan.open_client(collect) as client:
        assert (await client.post("/", content=chunks())).content == b"ok"
        assert received == [
            {"type": "http.request", "body": b"a", "more_body": True},
            {"type": "http.request", "body": b"bc", "more_body": True},
            {"type": "http.request", "body": b"def", "more_body": True},
            {"type": "http.request", "body": b"", "more_body": False},
        ]
        received.clear()
        await client.post("/", content=b"whole")  # one piece: one message
        assert received == [
            {"type": "http.request", "body": b"whole", "more_body": False}
        ]
        received.clear()
        await client.get("/")
        assert received == [{"type": "http.request", "body": b"", "more_body": False}]


@READS
async def test_the_time_the_app_waits_for_the_request_body_is_not_a_read_timeout(
    backend: Backend, streamed: bool
) -> None:
    # An upload that pauses longer than the read timeout between its chunks:
    # the app waits on the client, not the client on the app (as with a
    # server). Once the body is in, the timeout bounds the app's answer.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        got = b""
        while (message := await receive())["more_body"]:
            got += message["body"]
        if scope["path"] == "/slow":
            await backend.sleep(2)  # (after the body: the app's own time)
        await send(start())
        await send(body(got))

    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"  # (at once: the app has not waited yet)
        for part in (b"b", b"c"):
            await backend.sleep(3)
            yield part

    async def answers_while_it_reads(
        scope: Scope, receive: Receive, send: Send
    ) -> None:
        if await lifespan(scope, receive, send):
            return

        async def answer() -> None:
            await send(start())
            await send(body(b"reading ", more=True))

        got = b""
        async with tasks(backend) as start_soon:
            start_soon(answer)  # (it sends while the body is read)
            while (message := await receive())["more_body"]:
                got += message["body"]
        await send(body(got))

    async with trio_lifespan.open_client(app, timeout=1) as client:
        began = backend.now()
        response = await fetch(client, "POST", "/", streamed, content=chunks())
        assert response.content == b"abc"
        assert backend.now() - began == approx(6)
        with pytest.raises(httpx.ReadTimeout, match="did not answer POST"):
            await fetch(client, "POST", "/slow", streamed, content=chunks())
    async with trio_lifespan.open_client(answers_while_it_reads, timeout=1) as client:
        response = await fetch(client, "POST", "/", streamed, content=chunks())
        assert response.content == b"reading abc"


@READS
async def test_a_request_body_that_raises_is_the_readers_error(
    backend: Backend, streamed: bool
) -> None:
    # As over a socket: the app hears that its client went (what it sends
    # then is dropped), and the reader gets what the body raised, itself.
    heard: list[Message] = []
    raised: list[Exception] = []

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        if scope["path"] == "/started":  # (the response begun before the body)
            await send(start())
            await send(body(b"so far", more=True))
        heard.append(await receive())
        heard.append(await receive())
        heard.append(await receive())  # (again: still the disconnect)
        await send(start(status=400))  # (dropped: the client has gone)
        await send(body(b"bad body"))

    async def chunks() -> AsyncIterator[bytes]:
        yield b"a"
        await backend.sleep(1)
        raised.append(ValueError("the upload failed"))
        raise raised[-1]

    async with trio_lifespan.open_client(guarded) as client:
        for path in ("/", "/started"):
            heard.clear()
            with pytest.raises(ValueError, match="the upload failed") as caught:
                await fetch(client, "POST", path, streamed, content=chunks())
            assert caught.value is raised[-1]
            assert heard == [
                {"type": "http.request", "body": b"a", "more_body": True},
                {"type": "http.disconnect"},
                {"type": "http.disconnect"},
            ]
        transport: Any = client._transport  # pyright: ignore[reportPrivateUsage]
        assert transport.apps.live == set()


async def test_the_scope_is_a_servers(backend: Backend) -> None:
    scopes: list[Scope] = []

    async def record(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        scopes.append(scope)
        await send(start())
        await send(body(b""))

    async with trio_lifespan.open_client(record, base_url="https://example.com") as c:
        await c.get("/caf%C3%A9/a%20b?x=1&y=%20", headers={"X-Name": "v"})
    (scope,) = scopes
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert (scope["method"], scope["scheme"], scope["http_version"]) == (
        "GET",
        "https",
        "1.1",
    )
    assert scope["path"] == "/café/a b"
    assert scope["raw_path"] == b"/caf%C3%A9/a%20b"
    assert scope["query_string"] == b"x=1&y=%20"
    assert scope["server"] == ("example.com", 443)
    assert scope["client"] == ("127.0.0.1", 123)
    assert (b"x-name", b"v") in scope["headers"]
    assert scope["extensions"] == {"http.response.trailers": {}}
    assert scope["state"] == {"db": "ready"}


async def test_trailers_arrive_after_the_body(backend: Backend) -> None:
    async def trailing(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start(trailers=True))
        await send(body(b"data"))
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-checksum", b"1")],
                "more_trailers": True,
            }
        )
        await send({"type": "http.response.trailers", "headers": [(b"x-n", b"2")]})

    async with trio_lifespan.open_client(trailing) as client:
        response = await client.get("/")
        assert response.content == b"data"
        assert response.extensions["trailers"] == [
            (b"x-checksum", b"1"),
            (b"x-n", b"2"),
        ]


@READS
async def test_a_head_response_has_no_body(backend: Backend, streamed: bool) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start(headers=[(b"content-length", b"5")]))
        if scope["path"] == "/one":  # (one message: all of it comes at once)
            await send(body(b"hello"))
            return
        await send(body(b"hel", more=True))
        await send(body(b"lo"))

    async with trio_lifespan.open_client(app) as client:
        for path in ("/", "/one"):
            response = await fetch(client, "HEAD", path, streamed)
            assert (response.status_code, response.content) == (200, b"")
            response = await fetch(client, "GET", path, streamed)
            assert (response.status_code, response.content) == (200, b"hello")


@READS
async def test_a_response_read_whole_is_decoded_timed_and_closed(
    backend: Backend, streamed: bool
) -> None:
    # (a response read whole is read by the transport itself: what the client's
    # own read would have given must all be there)
    packed = gzip.compress(b"hello " * 100)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start(headers=[(b"content-encoding", b"gzip")]))
        await send(body(packed[:10], more=True))
        await send(body(packed[10:]))

    async with trio_lifespan.open_client(app) as client:
        response = await fetch(client, "GET", "/", streamed)
        assert response.content == b"hello " * 100
        assert response.is_closed
        assert response.num_bytes_downloaded == len(packed)
        assert isinstance(response.elapsed, datetime.timedelta)
        assert response.elapsed >= datetime.timedelta(0)
        assert await response.aread() == b"hello " * 100
        assert [chunk async for chunk in response.aiter_bytes()] == [b"hello " * 100]
        with pytest.raises(httpx.StreamConsumed):  # (as httpx's own transport)
            [chunk async for chunk in response.aiter_raw()]


@READS
async def test_a_response_hook_sees_the_response_before_it_is_read(
    backend: Backend, streamed: bool
) -> None:
    # (httpx runs response hooks before it reads the body: a hook may mend a
    # header, and raise_for_status there still comes first)
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        status = 500 if scope["path"] == "/broken" else 200
        await send(start(status, headers=[(b"content-encoding", b"gzip")]))
        await send(body(b"plain, not gzip"))

    seen: list[tuple[bool, int]] = []

    async def mend(response: httpx.Response) -> None:
        seen.append((response.is_closed, response.num_bytes_downloaded))
        if response.status_code == 500:
            response.raise_for_status()
        del response.headers["content-encoding"]  # (the app's mistake)

    async with trio_lifespan.open_client(
        app, event_hooks={"response": [mend]}
    ) as client:
        response = await fetch(client, "GET", "/", streamed)
        assert response.content == b"plain, not gzip"
        with pytest.raises(httpx.HTTPStatusError):
            await fetch(client, "GET", "/broken", streamed)
    assert seen == [(False, 0), (False, 0)]


async def test_a_body_read_whole_that_does_not_decode_names_its_request(
    backend: Backend,
) -> None:
    # (read by the transport, which hands httpx the request for its errors)
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start(headers=[(b"content-encoding", b"gzip")]))
        await send(body(b"plain, not gzip"))

    async with trio_lifespan.open_client(app) as client:
        with pytest.raises(httpx.DecodingError) as caught:
            await client.get("/bad?x=1")
    assert str(caught.value.request.url) == "http://testserver/bad?x=1"


@READS
async def test_the_apps_errors_name_the_request_as_sent(
    backend: Backend, streamed: bool
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(body(b"no start"))

    async with trio_lifespan.open_client(app) as client:
        with pytest.raises(RequestProtocolError) as caught:
            await fetch(client, "GET", "/search?q=a%20b", streamed)
    assert caught.value.target == "GET /search?q=a%20b"
    assert "GET /search?q=a%20b" in str(caught.value)


# The app's work after its response, and its exceptions --------------------------------


@READS
async def test_background_work_is_done_when_the_request_returns(
    backend: Backend, streamed: bool
) -> None:
    done: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())
        await send(body(b"accepted"))
        if scope["path"] == "/fails-at-once":
            raise ValueError("the queue is full")
        await backend.sleep(2)  # a background task, as Starlette runs them
        done.append("sent the email")
        if scope["path"] == "/fails-later":
            raise ValueError("the email bounced")

    async with trio_lifespan.open_client(app) as client:
        assert (await fetch(client, "POST", "/", streamed)).content == b"accepted"
        assert done == ["sent the email"]
        with pytest.raises(ValueError, match=r"^the email bounced$"):
            await fetch(client, "POST", "/fails-later", streamed)
        assert done == ["sent the email", "sent the email"]
        with pytest.raises(ValueError, match=r"^the queue is full$"):
            await fetch(client, "POST", "/fails-at-once", streamed)


@READS
@pytest.mark.parametrize("raise_app_exceptions", [True, False])
async def test_the_apps_exception_or_what_a_server_sends(
    backend: Backend, raise_app_exceptions: bool, streamed: bool
) -> None:
    boom = KeyError("boom")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        if scope["path"] == "/midway":
            await send(start())
            await send(body(b"half", more=True))
        raise boom

    async with trio_lifespan.open_client(
        app, raise_app_exceptions=raise_app_exceptions
    ) as client:
        for path in ("/before", "/midway"):
            if raise_app_exceptions:
                with pytest.raises(KeyError) as caught:
                    await fetch(client, "GET", path, streamed)
                assert caught.value is boom
            elif path == "/before":
                response = await fetch(client, "GET", path, streamed)
                assert (response.status_code, response.content) == (500, b"")
            else:  # a response cut short: as a server's client sees it
                with pytest.raises(httpx.RemoteProtocolError) as cut:
                    await fetch(client, "GET", path, streamed)
                assert str(cut.value) == (
                    "the app's response to GET http://testserver/midway ended "
                    "before it was complete: a server would drop the connection "
                    "(peer closed connection without sending complete message "
                    "body)"
                )


def breaks(messages: list[Any]) -> Any:
    """An app that sends ``messages``, then returns."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        for message in messages:
            await send(message)

    return app


BROKEN = [
    pytest.param(
        [body(b"x")],
        "it sent 'http.response.body' before http.response.start",
        id="body first",
    ),
    pytest.param(
        [start(), start()],
        "it sent 'http.response.start' while its body was under way "
        "(after http.response.start)",
        id="start twice",
    ),
    pytest.param(
        [],
        "it returned without sending a response (no http.response.start)",
        id="nothing",
    ),
    pytest.param(
        [start(), body(b"x", more=True)],
        "it returned before its response was complete (no http.response.body "
        "with more_body=False)",
        id="cut short",
    ),
    pytest.param(
        [start()],
        "it returned before its response was complete (no http.response.body "
        "with more_body=False)",
        id="start only",
    ),
    pytest.param(
        [start(), body(b"x"), body(b"y")],
        "it sent 'http.response.body' after the response was complete",
        id="after the end",
    ),
    pytest.param(
        [start(status="200")],  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        "its http.response.start has status '200', not an int from 100 to 599",
        id="status as text",
    ),
    pytest.param(
        [start(headers=[(b"a",)])],
        "its http.response.start has a header (b'a',), not a (name, value) pair "
        "of bytes",
        id="header not a pair",
    ),
    pytest.param(
        [start(headers=[(b"content-length", 5)])],
        "its http.response.start has a header (b'content-length', 5), not a "
        "(name, value) pair of bytes",
        id="header value an int",  # (not bytes(5): five zero bytes)
    ),
    pytest.param(
        [start(headers=[[b"a", b"1"], (b"b", "2")])],
        "its http.response.start has a header (b'b', '2'), not a (name, value) "
        "pair of bytes",
        id="header value text",
    ),
    pytest.param(
        [start(headers="a: b")],
        "its http.response.start has headers 'a: b', not a list of pairs",
        id="headers as text",
    ),
    pytest.param(
        [start(headers=[(b"x-ok", b"1"), (b"x-a", b"b\r\nx-forged: y")])],
        a_control_in("http.response.start", "x-a", b"b\r\nx-forged: y"),
        id="header value with a line break",
    ),
    pytest.param(
        [start(headers=[(b"x-a", bytearray(b"a\x00b"))])],
        a_control_in("http.response.start", "x-a", b"a\x00b"),
        id="header value with a NUL, bytes-like",
    ),
    pytest.param(
        [start(headers=[(b"x a", b"1")])],
        not_a_token("http.response.start", b"x a"),
        id="header name with a space",
    ),
    pytest.param(
        [start(headers=[(b"", b"1")])],
        not_a_token("http.response.start", b""),
        id="header name empty",
    ),
    pytest.param(
        [
            start(trailers=True),
            body(b""),
            {"type": "http.response.trailers", "headers": [(b"x-t:", b"1")]},
        ],
        not_a_token("http.response.trailers", b"x-t:"),
        id="trailer name with a colon",
    ),
    pytest.param(
        [start(), body("text")],  # type: ignore[arg-type]
        "its http.response.body has a body of type str, not bytes",
        id="body as text",
    ),
    pytest.param(
        [{"status": 200}],
        "it sent {'status': 200}, which is not an ASGI message (a mapping with a "
        "'type')",
        id="no type",
    ),
    pytest.param(
        [["http.response.start", 200]],
        "it sent list ['http.response.start', 200], which is not an ASGI message "
        "(a "
        "mapping with a 'type')",
        id="not a mapping",
    ),
    pytest.param(
        [start(headers=deque([(b"a", b"1"), (b"b",)]))],
        "its http.response.start has a header (b'b',), not a (name, value) pair "
        "of bytes",
        id="header not a pair, in a deque",
    ),
    pytest.param(
        [start(), body(b""), {"type": "http.response.trailers", "headers": [()]}],
        "it sent 'http.response.trailers' after the response was complete",
        id="trailers unannounced",
    ),
    pytest.param(
        [start(trailers=True), body(b"")],
        "it returned before sending the trailers it announced (trailers=True)",
        id="trailers missing",
    ),
    pytest.param(
        [start(trailers=True), body(b""), body(b"")],
        "it sent 'http.response.body' after its last body chunk, where only "
        "http.response.trailers may come (it announced trailers=True)",
        id="body after the last",
    ),
]


async def test_any_mapping_any_pairs_and_any_bytes_like_body_will_do(
    backend: Backend,
) -> None:
    # (as servers take them: a mapping that is not a dict, headers in another
    # iterable than a list, a body in a bytearray or a memoryview)
    messages = [
        MappingProxyType(start(headers=deque([(b"x-a", bytearray(b"1"))]))),
        body(bytearray(b"ab"), more=True),  # type: ignore[arg-type]
        body(memoryview(b"cd")),  # type: ignore[arg-type]
    ]
    async with trio_lifespan.open_client(breaks(messages)) as client:
        response = await client.get("/")
    assert response.headers["x-a"] == "1"
    assert response.content == b"abcd"


@pytest.mark.parametrize(("messages", "detail"), BROKEN)
async def test_an_app_that_breaks_the_protocol_is_told_what_it_did(
    backend: Backend, messages: list[Any], detail: str
) -> None:
    async with trio_lifespan.open_client(breaks(messages)) as client:
        with pytest.raises(RequestProtocolError) as caught:
            await client.get("/x")
    assert caught.value.target == "GET /x"
    assert caught.value.detail == detail
    assert str(caught.value) == (
        f"the app broke the ASGI protocol handling GET /x: {detail}. A server "
        "would drop the connection here; look at the app's handler (or the "
        "middleware around it)."
    )
    assert isinstance(caught.value, trio_lifespan.LifespanError)


# A client that changes tasks ---------------------------------------------------------


async def test_a_client_opened_in_one_task_works_in_others(backend: Backend) -> None:
    heard: list[Message] = []
    manager = trio_lifespan.open_client(endless(backend, heard, period=0.5))
    client = await manager.__aenter__()  # as a fixture's setup, in its task

    async def use() -> None:
        async with client.stream("GET", "/") as response:
            async with closing(response.aiter_bytes()) as chunks:
                assert await anext(chunks) == b"data: 0\n\n"

    await _in_a_task(backend, use)  # a test, in another task
    assert heard == [{"type": "http.disconnect"}]
    exit_ = manager.__aexit__(None, None, None)
    if backend.name == "trio":  # (a lifespan's nursery closes in its own task)
        await exit_
    else:  # pytest-asyncio tears a fixture down in another task
        await _in_a_task(backend, lambda: exit_)


async def _in_a_task(backend: Backend, fn: Any) -> None:
    """Run ``fn()`` in a task of its own, as pytest-asyncio runs a fixture's
    teardown."""
    if backend.name == "trio":
        import trio  # noqa: PLC0415

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fn)
    else:
        import asyncio  # noqa: PLC0415

        await asyncio.get_running_loop().create_task(fn())


@pytest.mark.parametrize("turn_due", [False, True], ids=["no-turn-due", "turn-due"])
async def test_a_client_closed_under_a_read_says_so_though_the_answer_was_late(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, turn_due: bool
) -> None:
    # The client's exit (another task's) comes while the app is shielded; the
    # app sends its last message once the read timeout has passed, and its
    # send is dropped: the client has gone. Its cancellation comes out of
    # that send, whether or not a turn of the loop is due by the clock.
    for module in ("trio_lifespan._trio", "trio_lifespan._asyncio_tasks"):
        monkeypatch.setattr(f"{module}.turn_due", lambda asked=False: asked or turn_due)
    sent: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())
        if backend.name == "trio":  # (trio's own: anyio 3's shield differs)
            with trio.CancelScope(shield=True):
                await trio.sleep(0.5)
        else:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.5)
        await send(body(b"late"))
        sent.append("dropped")

    async def read(client: httpx.AsyncClient) -> object:
        return await client.get("/")

    opened = trio_lifespan.open_client(app, timeout=0.3, shutdown_timeout=5)
    error = await closed_under_a_reader(backend, opened, read, after=0.1)
    assert sent == []  # (dropped, and the app cancelled at its checkpoint)
    if backend.name == "trio":  # (the app's send came before any checkpoint)
        assert isinstance(error, RuntimeError)
        assert "the client was closed while the response" in str(error)
    else:  # (asyncio cancels the app when its shield ends: the timeout's)
        assert isinstance(error, httpx.ReadTimeout)


@READS
async def test_a_send_after_the_client_went_is_dropped_inside_the_apps_task_group(
    backend: Backend, streamed: bool
) -> None:
    # The app's send, in its own task group, once the client has gone: the
    # message is dropped (as uvicorn drops it), the app goes on and returns,
    # and the reader is told that the client was closed under it.
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return

        async def answer() -> None:
            await backend.sleep(1)  # (the client goes meanwhile)
            await send(start())

        try:
            if backend.name == "trio":  # (a nursery: its errors come grouped)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(backend.sleep, 0.5)
                    await answer()
            else:  # (anyio 4 groups them too; anyio 3 on asyncio does not)
                async with anyio.create_task_group() as group:
                    group.start_soon(backend.sleep, 0.5)
                    await answer()
        except BaseException as exc:
            raised.append(exc)
            raise

    async def read(client: httpx.AsyncClient) -> object:
        return await fetch(client, "GET", "/", streamed)

    opened = trio_lifespan.open_client(app, shutdown_timeout=5)
    began = backend.now()
    error = await closed_under_a_reader(backend, opened, read, after=0.2)
    assert isinstance(error, RuntimeError)
    assert raised == []
    assert backend.now() - began == approx(1)  # (it returned: no grace spent)
    assert "the client was closed while the response" in str(error)


async def test_a_cancelled_streamed_request_tells_the_app_and_ends_by_the_exit(
    backend: Backend,
) -> None:
    heard: list[Message] = []

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        heard.append(await receive())  # http.disconnect, once the client gave up

    async with trio_lifespan.open_client(slow, timeout=None) as client:
        with backend.move_on_after(1):
            async with client.stream("GET", "/"):
                raise AssertionError("no response comes")  # pragma: no cover
        await backend.sleep(0.5)
        assert heard == [{"type": "http.disconnect"}]  # (not cancelled: told)


async def test_a_cancelled_whole_request_cancels_its_app_with_it(
    backend: Backend,
) -> None:
    events: list[str] = []

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        try:
            await receive()  # (nothing more comes)
        except backend.cancelled:
            events.append("app cancelled")
            raise

    async with trio_lifespan.open_client(slow, timeout=None) as client:
        with backend.move_on_after(1):
            try:
                await client.get("/")
            finally:
                events.append("reader cancelled")
        transport: Any = client._transport  # pyright: ignore[reportPrivateUsage]
        assert transport.apps.live == set()  # (nothing of it left running)
    assert events == ["app cancelled", "reader cancelled"]


async def test_after_the_exit_the_transport_has_nothing_running(
    backend: Backend,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())
        await send(body(b"a", more=True))
        await backend.sleep(math.inf)

    manager = trio_lifespan.open_client(app, shutdown_timeout=1)
    async with manager as client:
        began = backend.now()
        for _ in range(3):
            async with client.stream("GET", "/") as response:
                async with closing(response.aiter_raw()) as chunks:
                    assert await anext(chunks) == b"a"  # the app sleeps on
        assert backend.now() - began == approx(3)  # each close: its grace
        opened = [await client.send(client.build_request("GET", "/"), stream=True)]
        opened.append(await client.send(client.build_request("GET", "/"), stream=True))
        began = backend.now()
    assert backend.now() - began == approx(1)  # one grace for both left open
    transport: Any = client._transport  # pyright: ignore[reportPrivateUsage]
    assert transport.apps.live == set()
    assert all(response.is_closed is False for response in opened)


# The ends of the transport ----------------------------------------------------------


async def test_an_error_after_the_client_left_comes_out_at_its_exit(
    backend: Backend,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())
        await send(body(b"a", more=True))
        await receive()  # http.disconnect
        await backend.sleep(0.5)  # (the response is closed by then)
        raise ValueError("cleaning up failed")  # not the disconnect's doing

    with pytest.raises(ValueError, match=r"^cleaning up failed$"):
        async with trio_lifespan.open_client(app) as client:
            async with client.stream("GET", "/") as response:
                async with closing(response.aiter_raw()) as chunks:
                    await anext(chunks)


async def failing_after_a_chunk(scope: Scope, receive: Receive, send: Send) -> None:
    """An app whose handler fails once its response has begun (with a Ctrl-C
    at ``/interrupted``)."""
    if await lifespan(scope, receive, send):
        return
    await send(start())
    await send(body(b"a", more=True))
    if scope["path"] == "/interrupted":
        raise KeyboardInterrupt
    raise ValueError(f"the handler of {scope['path']} failed")


async def test_the_blocks_own_error_comes_out_the_handlers_noted_on_it(
    backend: Backend,
) -> None:
    # The test fails inside client.stream() (or the client's block, a session
    # left open), after the handler raised an error of its own: the test's
    # failure comes out, the handler's noted on it; a cancellation gives way
    # to the handler's error; a Ctrl-C wins.
    app = failing_after_a_chunk
    async with trio_lifespan.open_client(app) as client:
        failed = AssertionError("the test failed")
        with pytest.raises(KeyboardInterrupt) as stopped:
            async with client.stream("GET", "/interrupted"):
                await backend.sleep(1)
                raise failed
        assert stopped.value.__context__ is failed
        with pytest.raises(AssertionError) as caught:
            async with client.stream("GET", "/one"):
                await backend.sleep(1)  # (the handler fails meanwhile)
                raise failed
        assert caught.value is failed
        assert getattr(caught.value, "__notes__", []) == [
            "trio_lifespan: the app's handler of GET /one failed too, after this "
            "exception: ValueError: the handler of /one failed"
        ]
        with pytest.raises(ValueError, match="the handler of /two failed"):
            with backend.move_on_after(1):
                async with client.stream("GET", "/two"):
                    await backend.sleep(forever())
        interrupt = KeyboardInterrupt()
        with pytest.raises(KeyboardInterrupt) as stopped:
            async with client.stream("GET", "/three"):
                await backend.sleep(1)
                raise interrupt
        assert stopped.value is interrupt
    failed = AssertionError("the test failed")
    with pytest.raises(AssertionError) as caught:
        async with trio_lifespan.open_client(app) as client:
            await client.send(client.build_request("GET", "/left"), stream=True)
            await backend.sleep(1)
            raise failed
    assert caught.value is failed
    assert getattr(caught.value, "__notes__", []) == [
        "trio_lifespan: a request's handler failed too, after this exception: "
        "ValueError: the handler of /left failed"
    ]
    with pytest.raises(ValueError, match="the handler of /left failed"):
        with backend.move_on_after(1):
            async with trio_lifespan.open_client(app) as client:
                await client.send(client.build_request("GET", "/left"), stream=True)
                await backend.sleep(forever())


async def test_a_handler_raising_stop_async_iteration_does_not_end_a_stream(
    backend: Backend,
) -> None:
    # Raised as it is, it would end the response's iteration as though the
    # body were complete: a RuntimeError says so, the app's as its cause
    # (as Python does for a generator's StopIteration).
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())
        await send(body(b"a", more=True))
        raised.append(StopAsyncIteration())
        raise raised[-1]

    async with trio_lifespan.open_client(app) as client:
        with pytest.raises(StopAsyncIteration) as whole:
            await client.get("/")
        assert whole.value is raised[-1]
        with pytest.raises(RuntimeError, match="raised StopAsyncIteration") as cut:
            async with client.stream("GET", "/") as response:
                await response.aread()
        assert cut.value.__cause__ is raised[-1]


async def test_the_handlers_left_running_raise_all_their_errors(
    backend: Backend,
) -> None:
    app = failing_after_a_chunk
    with pytest.raises(ExceptionGroup) as caught:
        async with trio_lifespan.open_client(app) as client:
            for path in ("/a", "/b"):
                await client.send(client.build_request("GET", path), stream=True)
    assert caught.value.message == "2 requests' handlers failed"
    assert sorted(str(error) for error in caught.value.exceptions) == [
        "the handler of /a failed",
        "the handler of /b failed",
    ]
    with pytest.raises(KeyboardInterrupt):
        async with trio_lifespan.open_client(app) as client:
            for path in ("/a", "/interrupted"):
                await client.send(client.build_request("GET", path), stream=True)


async def test_an_exit_cancelled_cancels_the_apps_still_running(
    backend: Backend,
) -> None:
    ended: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())
        await send(body(b"a", more=True))
        try:
            await backend.sleep(forever())
        finally:
            ended.append("cancelled")

    with backend.move_on_after(10):
        async with trio_lifespan.open_client(app, shutdown_timeout=60) as client:
            async with client.stream("GET", "/") as response:
                async with closing(response.aiter_raw()) as chunks:
                    await anext(chunks)
    await backend.sleep(1)
    assert ended == ["cancelled"]


async def test_a_response_closed_after_the_exit(backend: Backend) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())
        await send(body(b"a", more=True))
        await receive()  # the request
        await receive()  # http.disconnect

    async with trio_lifespan.open_client(app) as client:
        response = await client.send(client.build_request("GET", "/"), stream=True)
    await response.aclose()  # (the exit closed it for the app already)
    assert response.is_closed


@READS
async def test_waiting_for_the_apps_background_work_can_be_cancelled(
    backend: Backend, streamed: bool
) -> None:
    ended: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())
        await send(body(b"done"))
        try:
            await backend.sleep(forever())  # a background task that hangs
        finally:
            ended.append("cancelled")

    async with trio_lifespan.open_client(app, timeout=None) as client:
        with backend.move_on_after(1):
            await fetch(client, "GET", "/", streamed)
        await backend.sleep(1)
        assert ended == ["cancelled"]


async def test_a_request_task_cancelled_from_outside_is_said_so(
    backend: Backend,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())
        await backend.sleep(forever())

    async with trio_lifespan.open_client(app) as client:
        async with client.stream("GET", "/") as response:
            transport: Any = client._transport  # pyright: ignore[reportPrivateUsage]
            (exchange,) = transport.apps.live
            exchange.job.cancel()  # as a closing event loop cancels its tasks
            with pytest.raises(RuntimeError) as caught:
                await response.aread()
    assert str(caught.value) == (
        "the app's task for GET / was cancelled, and not by the client: its "
        "event loop closed, the lifespan ended, or the app raised a cancellation "
        "of its own"
    )


async def test_an_app_called_whole_runs_in_a_context_of_its_own(
    backend: Backend,
) -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        seen.append(WHO.get())
        WHO.set("the app")
        await backend.sleep(1)  # (its later steps too)
        seen.append(WHO.get())
        await send(start())
        await send(body(b""))

    async with trio_lifespan.open_client(app) as client:
        WHO.set("the test")
        await client.get("/")
        assert WHO.get() == "the test"  # (what the app set stays its own)
    assert seen == ["the test", "the app"]


async def test_an_apps_own_timeout_in_a_whole_call_is_its_own(
    backend: Backend,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        with backend.move_on_after(0.5):
            await backend.sleep(forever())  # (its own wait, given up)
        await send(start())
        await send(body(b"late"))
        with backend.move_on_after(0.5):  # (and its last step: given up, it returns)
            await backend.sleep(forever())

    async with trio_lifespan.open_client(app, timeout=1) as client:
        began = backend.now()
        assert (await client.get("/")).content == b"late"
        assert backend.now() - began == approx(1)


@pytest.mark.parametrize("deaf", [False, True], ids=["ends-when-told", "deaf"])
async def test_a_whole_call_in_another_task_is_ended_by_the_clients_exit(
    backend: Backend, deaf: bool
) -> None:
    heard: list[Message] = []
    errors: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        if deaf:
            await backend.sleep(forever())
        heard.append(await receive())  # the client went
        await send(start())  # (raises: it has gone; not an error of the app's)

    async def read(client: httpx.AsyncClient) -> None:
        try:
            await client.get("/")
        except RuntimeError as exc:
            errors.append(exc)

    async with tasks(backend) as start_soon:  # outside the client's body
        async with trio_lifespan.open_client(
            app, timeout=None, shutdown_timeout=2
        ) as client:
            start_soon(lambda: read(client))
            await backend.sleep(1)
            began = backend.now()
    assert backend.now() - began == approx(2 if deaf else 0)  # (deaf: the grace)
    assert heard == ([] if deaf else [{"type": "http.disconnect"}])
    assert [str(error) for error in errors] == [
        "the client was closed while the response to GET / was being read: read "
        "it inside the client's `async with`"
    ]


async def test_a_whole_call_whose_work_the_clients_exit_cuts_still_answers(
    backend: Backend,
) -> None:
    answered: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())
        await send(body(b"accepted"))
        await backend.sleep(forever())  # its work after the response

    async def read(client: httpx.AsyncClient) -> None:
        answered.append((await client.get("/")).status_code)

    async with tasks(backend) as start_soon:  # outside the client's body
        async with trio_lifespan.open_client(
            app, timeout=None, shutdown_timeout=1
        ) as client:
            start_soon(lambda: read(client))
            await backend.sleep(1)
    assert answered == [200]  # (the response was whole before the exit came)


async def test_a_crash_ends_a_whole_call_in_another_task(backend: Backend) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await backend.sleep(2)
            raise KeyError("pool died")
        await backend.sleep(forever())

    errors: list[BaseException] = []

    async def read(client: httpx.AsyncClient) -> None:
        try:
            await client.get("/")
        except trio_lifespan.LifespanUnavailable as exc:
            errors.append(exc)

    async with tasks(backend) as start_soon:  # outside the lifespan's body
        with pytest.raises(KeyError, match="pool died"):
            async with trio_lifespan.open_client(app, timeout=None) as client:
                start_soon(lambda: read(client))
                await backend.sleep(forever())
    assert isinstance(errors[0].__cause__, KeyError)


async def test_a_crash_ends_a_response_read_in_another_task(backend: Backend) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await backend.sleep(2)
            raise KeyError("pool died")
        await send(start())
        await backend.sleep(forever())

    errors: list[BaseException] = []

    async def read(response: httpx.Response) -> None:
        try:
            await response.aread()
        except trio_lifespan.LifespanUnavailable as exc:
            errors.append(exc)

    async with tasks(backend) as start_soon:  # outside the lifespan's body
        with pytest.raises(KeyError, match="pool died"):
            async with trio_lifespan.open_client(app) as client:
                response = await client.send(
                    client.build_request("GET", "/"), stream=True
                )
                start_soon(lambda: read(response))
                await backend.sleep(forever())
    assert isinstance(errors[0].__cause__, KeyError)


async def test_a_response_read_after_its_client_closed_says_so(
    backend: Backend,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())
        await receive()  # the request
        await receive()  # http.disconnect

    async with trio_lifespan.open_client(app) as client:
        response = await client.send(client.build_request("GET", "/"), stream=True)
    with pytest.raises(RuntimeError) as caught:
        await response.aread()
    assert str(caught.value) == (
        "the client was closed while the response to GET / was being read: read "
        "it inside the client's `async with`"
    )


def test_one_transport_class_for_each_httpx() -> None:
    assert transport_class(httpx) is transport_class(httpx)


async def test_httpx_ws_broken_by_a_missing_module_says_which(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("httpx_ws", reason="(tox's anyio 3.7 has no httpx-ws)")
    for name in [name for name in sys.modules if name.startswith("httpx_ws")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "wsproto", None)
    async with trio_lifespan.open_client(breaks([])) as client:
        with pytest.raises(ModuleNotFoundError) as caught:
            await client.get("ws://testserver/ws")
    assert caught.value.name == "wsproto"


async def test_an_app_may_send_from_several_tasks(backend: Backend) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start())

        async def part(number: int) -> None:
            for _ in range(5):
                await send(body(b"%d" % number, more=True))

        async with tasks(backend) as start_soon:
            for number in (1, 2, 3):
                start_soon(functools.partial(part, number))
        await send(body(b""))

    async with trio_lifespan.open_client(app, timeout=2) as client:
        async with client.stream("GET", "/") as response:
            got = b""
            async for chunk in response.aiter_raw():
                got += chunk
                await backend.sleep(0.1)
    assert sorted(got) == sorted(b"111112222233333")


async def test_ctrl_c_in_a_handler_comes_out_after_the_shutdown(
    backend: Backend,
) -> None:
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(scope, receive, send)
            events.append("shut down")
            return
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        async with trio_lifespan.open_client(app, raise_app_exceptions=False) as c:
            await c.get("/")
    assert events == ["shut down"]


async def test_what_an_app_raises_once_told_the_client_went_is_not_raised(
    backend: Backend,
) -> None:
    raised: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()
        await send(start())
        await send(body(b"x", more=True))
        message = await receive()  # http.disconnect
        raised.append(message["type"])
        raise ValueError("after " + message["type"])

    async with trio_lifespan.open_client(app) as client:
        async with client.stream("GET", "/") as response:
            async with closing(response.aiter_raw()) as chunks:
                assert await anext(chunks) == b"x"
        await backend.sleep(1)
    assert raised == ["http.disconnect"]


async def test_a_failed_lifespan_gives_its_apps_no_grace(backend: Backend) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await backend.sleep(1)
            raise KeyError("pool died")
        await send(start())
        await send(body(b"a", more=True))
        await backend.sleep(forever())

    began = backend.now()
    with pytest.raises(KeyError, match="pool died"):
        async with trio_lifespan.open_client(app, shutdown_timeout=30) as client:
            async with client.stream("GET", "/") as response:
                async with closing(response.aiter_raw()) as chunks:
                    await anext(chunks)
                    await backend.sleep(forever())
    assert backend.now() - began == approx(1)


async def test_a_status_of_an_int_enum_is_taken_as_servers_take_it(
    backend: Backend,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await send(start(HTTPStatus.CREATED))  # (as the mcp package sends it)
        await send(body(b""))

    async with trio_lifespan.open_client(app) as client:
        response = await client.get("/")
    assert response.status_code == 201
    assert type(response.status_code) is int


@pytest.mark.skipif(
    int(importlib.metadata.version("anyio").split(".")[0]) < 4,
    reason="the app uses anyio's task group, which anyio 3 has not on trio 0.25+",
)
async def test_the_disconnect_comes_after_the_last_message_is_handed_over(
    backend: Backend,
) -> None:
    # Quart listens for the disconnect while it sends, and cancels its
    # sending when it hears it: it must not hear it before its last message
    # has been handed over.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await receive()  # the request
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                await receive()  # http.disconnect
                group.cancel_scope.cancel()

            group.start_soon(watch)
            await send(start())
            for part in b"abcd":
                await send(body(bytes([part]), True))
            await send(body(b"e"))  # (the handoff is full: this one waits)
            await anyio.sleep_forever()  # (until the disconnect)

    async with trio_lifespan.open_client(app) as client:
        async with client.stream("GET", "/") as response:
            await backend.sleep(1)  # the app waits to hand its last message over
            assert await response.aread() == b"abcde"


# A whole read in the caller's task behaves as a call of the library's own -----------


async def answers(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that answers in its first step, without ever waiting."""
    if await lifespan(scope, receive, send):
        return
    await send(start())
    await send(body(b"ok"))


async def test_a_whole_read_lets_the_other_tasks_run(backend: Backend) -> None:
    flipped: list[str] = []

    async def flip() -> None:
        flipped.append("ran")  # (runs once the test's task lets it)

    async with trio_lifespan.open_client(answers) as client:
        async with tasks(backend) as start_soon:
            start_soon(flip)
            polls = 0
            while not flipped and polls < 100_000:  # (a poll loop, as tests write)
                await client.get("/")
                polls += 1
    # (a turn of the scheduler at least once a millisecond: its requests
    # take some 100 µs each, far more under coverage)
    assert flipped == ["ran"]
    assert polls < 1000


async def test_a_whole_read_is_a_cancel_point(backend: Backend) -> None:
    ran: list[str] = []

    async def counted(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            ran.append("the app")
        await answers(scope, receive, send)

    async with trio_lifespan.open_client(counted) as client:
        # A cancellation already due comes out of the request (whose app
        # answers at once, never waiting), as from any call of the library.
        if backend.name == "trio":
            with trio.CancelScope() as scope:
                scope.cancel()
                await client.get("/")
            assert scope.cancelled_caught
        else:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await client.get("/")
            if sys.version_info >= (3, 11):
                task.uncancel()
    assert ran == ["the app"]


async def uncancellable(backend: Backend, seconds: float) -> None:
    """A wait the read timeout cannot cut short (a thread's, a shielded one)."""
    if backend.name == "trio":
        with trio.CancelScope(shield=True):
            await trio.sleep(seconds)
    else:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(asyncio.sleep(seconds))
        await asyncio.sleep(seconds)  # (asyncio's cancellation was taken: let it land)


@pytest.mark.parametrize("sent_first", [False, True], ids=["silent", "started"])
async def test_an_answer_after_the_read_timeout_is_a_timeout(
    backend: Backend, sent_first: bool
) -> None:
    async def late(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        if sent_first:
            await send(start())
        try:
            await uncancellable(backend, 2)
        finally:
            if not sent_first:
                await send(start(503))  # (in its clean-up, too late)
            await send(body(b"late"))

    async with trio_lifespan.open_client(late, timeout=1) as client:
        with pytest.raises(httpx.ReadTimeout) as caught:
            await client.get("/")
    what = "sent nothing more of its response to" if sent_first else "did not answer"
    assert str(caught.value).startswith(f"the app {what} GET http://testserver/ ")


async def test_a_whole_calls_send_and_receive_after_it_ended_say_the_client_went(
    backend: Backend,
) -> None:
    kept: list[tuple[Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        kept.append((receive, send))  # (as a task the app left behind keeps them)
        await send(start())
        await send(body(b"ok" if scope["path"] == "/whole" else b"", more=True))
        if scope["path"] == "/whole":
            await send(body(b""))
        else:
            await backend.sleep(forever())  # (the read timeout cuts it)

    async with trio_lifespan.open_client(app, timeout=1) as client:
        assert (await client.get("/whole")).content == b"ok"
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/cut")
        for receive, send in kept:
            with pytest.raises(OSError, match=r"^the client of GET /\w+ has gone$"):
                await send(body(b"late"))
            assert (await receive())["type"] == "http.request"  # (its body, unread)
            assert await receive() == {"type": "http.disconnect"}  # (not a hang)


async def test_a_whole_calls_nursery_cut_after_its_response_still_answers(
    backend: Backend,
) -> None:
    if backend.name != "trio":
        pytest.skip("a group of cancellations is trio's way (anyio collapses it)")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return

        async def answer_then_work() -> None:
            await send(start())
            await send(body(b"ok"))
            await trio.sleep(math.inf)  # (cut by the read timeout)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer_then_work)

    async with trio_lifespan.open_client(app, timeout=1) as client:
        assert (await client.get("/")).content == b"ok"


async def test_an_answer_after_the_app_held_the_loop_past_the_timeout_is_late(
    backend: Backend,
) -> None:
    if backend.name != "trio":
        pytest.skip("trio's MockClock can move while the app holds the loop")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if await lifespan(scope, receive, send):
            return
        await trio.lowlevel.checkpoint()  # (it waits once: its read timeout runs)
        clock: Any = trio.lowlevel.current_clock()
        clock.jump(2)  # (work that holds the loop past the timeout)
        await send(start())
        await send(body(b"late"))

    async with trio_lifespan.open_client(app, timeout=1) as client:
        with pytest.raises(httpx.ReadTimeout, match="did not answer"):
            await client.get("/")


def test_a_task_cancelled_under_a_failed_lifespan_names_its_failure() -> None:
    # (which of the crash's cancellation and the client's exit reaches a
    # reader first is the event loop's turn order: each path is tested here)
    error = KeyError("pool died")
    app = SimpleNamespace(failure=error)
    raised = cancelled_under(app, "GET /")
    assert isinstance(raised, trio_lifespan.LifespanUnavailable)
    assert raised.error is error
    assert isinstance(
        cancelled_under(SimpleNamespace(failure=None), "GET /"), RuntimeError
    )
