"""``open_client``'s transport: each request an ASGI call, read whole or streamed.

httpx's own ASGI transport runs the app to its end inside the request and
hands back the whole body: an endless response never returns, and the read
timeout bounds nothing. Here a request is read one of two ways, as the
client's ``send`` says (httpx's ``stream=``):

- Whole (``client.get()`` and the like: :class:`Whole`): the app is called in
  the reader's own task, as httpx's transport calls it (no task to start, so
  no slower), but stepped in a context of its own, each wait bounded by the
  read timeout, and cancelled with its caller: nothing of it outlives the
  call. Its background tasks run before ``client.get()`` returns.
- Streamed (``client.stream()``: :class:`Streamed`): the app runs in a task
  beside the caller (on trio in the lifespan's nursery, on asyncio on the
  caller's loop), its messages come through a handoff that holds a few, and
  the response is returned as soon as it starts, its body streamed as the
  app sends it. One closed early tells the app the client went
  (``http.disconnect``; ``send()`` raises an ``OSError``) and leaves it to end
  by itself: the client's exit gives every app still running
  ``shutdown_timeout`` to end, then cancels it.

The read timeout bounds each wait for the app's next message, as a server's
socket would. Nothing is tied to the client's ``async with``: a client opened
in one task can be used and closed in another.

The rules of the messages are :mod:`._exchange`'s; this module is their I/O,
for httpx and httpx2 alike (the classes are made for the module given).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

from ._backend import current_backend
from ._compat import BaseExceptionGroup
from ._errors import LifespanUnavailable
from ._exceptions import combine, only_cancellations
from ._exchange import (
    ASGI,
    DISCONNECT,
    END,
    WEBSOCKET_ASGI,
    CancelledFromOutside,
    ClientDisconnected,
    HTTPResponse,
    after_disconnect,
    cancelled_under,
    request_message,
)
from ._types import EMPTY, _Empty  # pyright: ignore[reportPrivateUsage]

if TYPE_CHECKING:
    from types import ModuleType

    from ._backend import Backend, Event, Handoff, Job
    from ._state import LifespanApp
    from ._types import Message, Scope

# How the request being sent will be read, as the client's ``send`` says
# (``READING``): streamed (``client.stream()``: the app runs in a task of its
# own); read whole (httpx's ``stream=False``: the app is called in the
# reader's task); or read whole with no response hook to see the response
# first: then the transport reads it itself (a hook may change its headers
# or wrap its stream before it is read, as httpx lets it).
STREAMED = 0
WHOLE = 1
READ_HERE = 2
READING: ContextVar[int] = ContextVar("trio_lifespan_reading", default=STREAMED)

#: The request's client address, as servers put it in the scope.
CLIENT = ("127.0.0.1", 123)


class Live(Protocol):
    """A request or websocket session whose app may still be running."""

    @property
    def job(self) -> Job:
        """The app's task."""
        ...

    def leave(self) -> None:
        """Tell the app that the client has gone."""

    def failure(self, raise_app_exceptions: bool) -> BaseException | None:
        """What to raise, now that the app's task has ended."""
        ...


class Apps:
    """The apps a client's requests and sessions are running: ended by the
    client's exit at the latest."""

    __slots__ = ("grace", "live")

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.live: set[Live] = set()

    async def end(
        self,
        backend: Backend,
        raise_app_exceptions: bool,
        *,
        grace: float | None = None,
    ) -> None:
        """Tell every app still running that its client went, give them
        :attr:`grace` in all to end, cancel the rest; raise what they raised
        (other than what came of the disconnect): one error as it is, several
        in a group (a Ctrl-C among them wins). A task that something else
        cancelled (its event loop closing) is not an error here: it was the
        reader's to hear of, if one was reading."""
        live, self.live = list(self.live), set()
        for each in live:
            each.leave()
        deadline = backend.now() + (self.grace if grace is None else grace)
        errors: list[BaseException] = []
        try:
            for each in live:
                if not await each.job.wait(max(0.0, deadline - backend.now())):
                    each.job.cancel()
                    await each.job.wait(math.inf)
                if each.job.lost:  # (what came of its closed loop is no error)
                    continue
                error = each.failure(raise_app_exceptions)
                if error is not None and not isinstance(error, CancelledFromOutside):
                    errors.append(error)
        except BaseException:
            # (the exit is cancelled: so are the apps, and they are waited
            # for, within the grace, before the lifespan shuts down)
            for each in live:
                each.job.cancel()
            await backend.wait_shielded(lambda: _ended(backend, live, self.grace))
            raise
        if len(errors) > 1:
            stop = [e for e in errors if isinstance(e, (KeyboardInterrupt, SystemExit))]
            raise (
                stop[0]
                if stop
                else BaseExceptionGroup(
                    f"{len(errors)} requests' handlers failed", errors
                )
            )
        if errors:
            raise errors[0]


async def _ended(backend: Backend, live: list[Live], seconds: float) -> None:
    """Wait for each of ``live`` to end, for ``seconds`` in all."""
    deadline = backend.now() + seconds
    for each in live:
        await each.job.wait(max(0.0, deadline - backend.now()))


class Exchange:
    """One request in flight: the app's call, and the messages between.

    The rules both kinds of request share: what the app's ``receive()``
    says, what its errors mean, what the reader raises. :class:`Streamed`
    runs the app in a task of its own and hands its messages over as they
    come; :class:`Whole` runs it in the reader's task, to its end.

    Attributes:
        response: The response's rules and what came of it so far.
        error: What the app raised (or the protocol error it made), once its
            call has ended.
    """

    # What every request starts with (class attributes: a request sets only
    # what differs, and each costs a little of every request).
    # Set once the response is complete or the client has gone: then the
    # app's receive() says http.disconnect (the event made only if awaited).
    gone: Event | None = None
    over = False
    left = False  # the client went before it had read the response
    heard = False  # the app received the disconnect that says so
    read_all = False  # the reader has had the whole response
    reader_closed = False  # the reader closed the response itself
    closed = False  # the reader is done
    ended = False  # the app's call has ended
    interrupted = False  # its task was cancelled, not by us
    error: BaseException | None = None
    body_error: Exception | None = None  # what the request's body raised
    _raised = False
    _request_done = False

    def __init__(
        self,
        backend: Backend,
        app: LifespanApp[Any],
        scope: Scope,
        body: AsyncIterator[bytes] | bytes,
        target: bytes,
        *,
        read_timeout: float,
    ) -> None:
        self.backend = backend
        self.app = app
        self.scope = scope
        self.response = HTTPResponse(scope["method"], target)
        self.read_timeout = read_timeout
        # The request's body: bytes, when the client was given them whole
        # (no iteration), else the chunks as they come.
        self._whole_body = body if isinstance(body, bytes) else None
        self._body: AsyncIterator[bytes] = body  # type: ignore[assignment]
        self.job: Job = self._open(backend, read_timeout)

    def _open(self, backend: Backend, read_timeout: float) -> Job:
        """Make what this kind of request needs; the job the app will run in."""
        raise NotImplementedError  # pragma: no cover - each kind has its own

    # The app's side -----------------------------------------------------------

    async def call(self) -> None:
        """Call the app, to its end (its errors are kept for the reader)."""
        try:
            await self.app(self.scope, self.receive, self.send)
        except BaseException as exc:  # noqa: BLE001 - finish() judges it
            self.finish(exc)
        else:
            self.finish(None)

    def finish(self, exc: BaseException | None) -> None:
        """The app's call has ended, raising ``exc``: keep its error for the
        reader. A cancellation goes on (raised again)."""
        self.ended = True
        try:
            if exc is None:
                if not self.response.complete and not self.left:
                    self.error = self.response.unfinished()
            # (a group of them is one too: the app's nursery, when cancelled)
            elif only_cancellations(exc, self.backend.cancelled):
                self.interrupted = not self.left
                raise exc
            # Ctrl-C in a handler goes to the reader, as the app's exceptions
            # do (the lifespan then shuts down as it comes out). What the app
            # raises of the client's going is not the client's to hear.
            elif isinstance(exc, KeyboardInterrupt) or not (
                self.left and after_disconnect(exc, self.heard)
            ):
                self.error = exc
        finally:
            self._ended()

    def _ended(self) -> None:
        """The app's call has ended: no more messages."""

    def _client_turn(self, waiting: bool) -> None:
        """The app waits (``True``) for the client's next chunk of the
        request's body, or no longer: its read timeout does not run."""

    def _body_failed(self) -> None:
        """The request's body raised: the app hears that its client went,
        and what it sends is dropped."""
        self.left = True
        self._over()

    async def receive(self) -> Message:
        """The app's ``receive``: the request's body, chunk by chunk, then
        ``http.disconnect`` once the response is complete or the client gone."""
        if not self._request_done and not self.left:
            if self._whole_body is not None:  # (bytes given: one message)
                self._request_done = True
                return request_message(self._whole_body, False)
            # Each chunk as it comes (a server does not wait for the next to
            # know whether more follow), then an empty one that says the end.
            # The app waits on the client here: no read timeout runs.
            self._client_turn(True)
            try:
                chunk = await _next(self._body)
            except Exception as exc:  # noqa: BLE001 - the reader's to raise
                # The client's body failed: to the app, its client went (a
                # server's connection drops); the reader raises the error.
                self.body_error = exc
                self._body_failed()
                chunk = b""
            finally:
                self._client_turn(False)
            if chunk is None:
                self._request_done = True
                return request_message(b"", False)
            if self.body_error is None:
                return request_message(chunk, True)
        if not self.over:
            if self.gone is None:
                self.gone = self.backend.event()
            await self.gone.wait()
        self.heard = self.left  # (the app knows its client went)
        return dict(DISCONNECT)

    async def send(self, message: Message) -> None:
        """The app's ``send``: checked, then handed to the reader."""
        raise NotImplementedError  # pragma: no cover - each kind has its own

    def _checked(self, message: Message) -> tuple[int, bytes] | None:
        """What the app's ``message`` is, and its body; ``None`` once the
        client has gone: the message is checked, then dropped, as uvicorn and
        hypercorn drop it (our scopes say ASGI 2.3, so an app that wants to
        know listens for ``http.disconnect``, as Starlette then does). The
        ``send()`` of a dropped message returns at once, as uvicorn's (an
        app's finite loop of sends runs to its end, its clean-up with it),
        through :meth:`Backend.checkpoint_when_due`: a cancellation of the app
        comes out of it, and an endless loop of sends does not hold the loop."""
        if self.ended:  # (a task the app left behind, after its call returned)
            raise self.gone_error()
        what = self.response.sent(message)
        return None if self.left else what

    def gone_error(self) -> ClientDisconnected:
        """What the app's ``send()`` raises once its client has gone."""
        return ClientDisconnected(f"the client of {self.response.target} has gone")

    # The reader's side --------------------------------------------------------

    def failure(self, raise_app_exceptions: bool) -> BaseException | None:
        """What the reader raises now that the app's call has ended, if
        anything: the app's error (once, if ``raise_app_exceptions``), or the
        lifespan's failure if its task was cancelled under it."""
        if self.interrupted:
            self.interrupted = False
            return cancelled_under(self.app, self.response.target)
        error = self.error
        if error is None or self._raised:
            return None
        if not raise_app_exceptions and not isinstance(
            error, (LifespanUnavailable, KeyboardInterrupt)
        ):
            return None  # (as a server would: a 500, or a response cut short)
        self._raised = True
        return error

    def cut_short(self) -> BaseException:
        """What a reader gets whose response ended, unread, because the client
        closed under it (the lifespan's failure, if that is why)."""
        failure: BaseException | None = getattr(self.app, "failure", None)
        if failure is not None:
            return LifespanUnavailable(failure)
        return RuntimeError(
            f"the client was closed while the response to {self.response.target} "
            "was being read: read it inside the client's `async with`"
        )

    def leave(self) -> None:
        """The client has gone: the app hears ``http.disconnect``, and its
        sends raise."""
        if not self.read_all:
            self.left = True
        self.closed = True
        self._over()

    def _over(self) -> None:
        """The response is complete or the client gone: from now on the app's
        ``receive()`` says ``http.disconnect``."""
        self.over = True
        if self.gone is not None and not self.job.lost:  # (a closed loop's)
            self.gone.set()


class Whole(Exchange):
    """A request whose response is read whole (httpx's ``stream=False``: every
    request but ``client.stream()``): its app is called in the reader's task
    (on trio, :class:`._trio_tasks.HereJob`), as a server's would be called
    for a client that waits for the whole answer, and nothing of it outlives
    the request. Its messages are kept until it returns.

    A reader cancelled (or timed out) cancels the app it is running, as
    cancelling any call does; only a streamed response (:class:`Streamed`)
    outlives its caller, and hears the client go instead.
    """

    def _ended(self) -> None:
        # (a task the app left behind hears that the client has gone)
        self._over()

    def _open(self, backend: Backend, read_timeout: float) -> Job:
        self.here = backend.here(read_timeout)
        self.got: list[bytes] = []  # the bodies of what the app sent
        self.first_late = -1  # which of them came after the read timeout
        return self.here

    async def send(self, message: Message) -> None:
        """The app's ``send``: checked, then kept for the reader."""
        checked = self._checked(message)
        if checked is None:  # (dropped: see Exchange._checked)
            await self.backend.checkpoint_when_due()
            return
        what, body = checked
        got = self.got
        here = self.here
        if here.waited:  # (one that never waited has no timeout running)
            here.heard()
            if here.late and self.first_late < 0:
                self.first_late = len(got)
        got.append(body)
        if what == END:
            self.read_all = True
            self._over()

    def started_in_time(self) -> bool:
        """Whether the response's start came within the read timeout."""
        return self.first_late != 0 and bool(self.got)

    def _client_turn(self, waiting: bool) -> None:
        if waiting:
            self.here.pause()
        else:
            self.here.resume()


class Streamed(Exchange):
    """A request whose response is streamed (``client.stream()``): its app
    runs in a task of its own, its messages handed to the reader as they
    come, so that a response without end can be read as it comes."""

    def _open(self, backend: Backend, read_timeout: float) -> Job:
        # Two held: a whole small response (its start and its body) is handed
        # over without the app waiting for the reader.
        self.outbox: Handoff = backend.handoff(2)
        self.cancel_mark = backend.cancel_mark()  # (the reader's, for close)
        return backend.spawn(self.app, self.call)

    # (while the app waits for the request's body: the reader's wait for
    # its next message does not time out; since when it has not waited)
    pulling = False
    pulled_at = -math.inf

    def _ended(self) -> None:
        self.outbox.end()

    def _client_turn(self, waiting: bool) -> None:
        self.pulling = waiting
        if not waiting:
            self.pulled_at = self.backend.now()

    def _body_failed(self) -> None:
        super()._body_failed()
        self.outbox.end()  # (the reader raises the body's error)

    async def send(self, message: Message) -> None:
        """The app's ``send``: checked, then handed to the reader."""
        what = self._checked(message)
        if what is None or not await self.outbox.put(what):
            await self.backend.checkpoint_when_due()  # (dropped: as above)
            return
        if what[0] == END:
            # Only now, the whole response handed over: an app that listens
            # for the disconnect while it sends (Quart) must not hear it
            # before its last message has gone.
            self._over()

    async def next(self) -> tuple[int, bytes] | None:
        """The app's next message as ``(what, body)``; ``None`` once its task
        has ended.

        Raises:
            TimeoutError: None came within the read timeout.
        """
        outbox = self.outbox
        item: Any = outbox.take_nowait()
        if item is EMPTY:
            # Let the app's task run: most apps answer in its first step, and
            # a schedule point costs less than a timed wait. Two: trio runs
            # the tasks of a turn in either order (this one may go first).
            await self.backend.checkpoint()
            item = outbox.take_nowait()
            if item is EMPTY:
                await self.backend.checkpoint()
                item = outbox.take_nowait()
                if item is EMPTY:
                    item = await self._take()
        if item is not None and item[0] == END:
            self.read_all = True
        found: tuple[int, bytes] | None = item
        return found

    async def _take(self) -> Any:
        """Wait for the app's next message, within the read timeout: time
        the app spends waiting for the request's body does not count."""
        wait = self.read_timeout
        while True:
            try:
                return await self.outbox.take(wait)
            except TimeoutError:
                waited = self.backend.now() - self.pulled_at
                if self.pulling:
                    wait = self.read_timeout
                elif waited < self.read_timeout:
                    wait = self.read_timeout - waited
                else:
                    raise

    def next_nowait(self) -> tuple[int, bytes] | _Empty | None:
        """The app's next message if it has come (as :meth:`next`), else
        :data:`EMPTY`."""
        item: tuple[int, bytes] | _Empty | None = self.outbox.take_nowait()
        if item is not None and item is not EMPTY and item[0] == END:  # type: ignore[index]
            self.read_all = True
        return item

    def leave(self) -> None:
        super().leave()
        self.outbox.leave()

    def stop(self) -> None:
        """The client goes at once: the app is told, and cancelled."""
        self.leave()
        self.left = True
        self.job.cancel()

    def _hurried(self) -> bool:
        """Whether the app gets no grace to end: its lifespan has failed (it
        is gone), or the reader is being cancelled."""
        return getattr(
            self.app, "failure", None
        ) is not None or self.backend.cancelled_since(self.cancel_mark)

    async def close(self, grace: float, *, at_once: bool = False) -> bool:
        """The reader is done. The app of a complete response gets the read
        timeout to return (its background tasks); an unfinished one hears
        that the client went, and gets ``grace`` to end (none ``at_once``, or
        if the reader is being cancelled), then is cancelled, and waited for
        (``grace`` at most). Returns whether the app's task has ended (if
        not, it is left to the client's exit)."""
        if self.closed:
            return self.ended
        complete = self.read_all
        self.reader_closed = True
        self.leave()
        if self.ended:
            return True
        job = self.job
        try:
            if complete:
                await job.wait(self.read_timeout)
            elif not await job.wait(0.0 if at_once or self._hurried() else grace):
                job.cancel()
                await job.wait(grace)
        except GeneratorExit:
            # (the reader's coroutine is being closed, left unfinished on a
            # loop that ended: it cannot wait; the client's exit ends the app)
            raise
        except BaseException:
            # (the reader is cancelled: so is the app, and it is waited for,
            # within the grace, as when it closes)
            self.stop()
            await self.backend.wait_shielded(lambda: job.wait(grace))
            raise
        return self.ended


def _body_of(request: Any) -> AsyncIterator[bytes] | bytes:
    """The request's body: its bytes, if the client has them (``content=``,
    ``json=``, ``data=``), else its stream."""
    try:
        content: bytes = request.content
    except Exception:  # noqa: BLE001 - httpx's RequestNotRead: a stream
        return request.stream.__aiter__()  # type: ignore[no-any-return]
    return content


async def _next(body: AsyncIterator[bytes]) -> bytes | None:
    try:
        return bytes(await body.__anext__())
    except StopAsyncIteration:
        return None


async def _before_raising(exchange: Exchange, error: BaseException) -> None:
    """Before a reader raises that the lifespan failed under its request, let
    the cancellation that failure brings the reader's task (the body of
    ``open_client``, a test the pytest plugin watches) reach it first: then
    the app's own exception comes out, as it does for the rest of the body."""
    if isinstance(error, LifespanUnavailable):
        await exchange.backend.checkpoint()


def _upgrades(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request's headers (names lower-cased) ask for a websocket."""
    for name, value in headers:
        if name == b"upgrade" and value.lower() == b"websocket":
            return True
    return False


def read_timeout(read: float | None) -> float:
    """The seconds each wait for the app's next message may take (httpx's
    ``None``: no limit)."""
    return math.inf if read is None else read


def websocket_scope(request: Any, subprotocols: list[str]) -> dict[str, Any]:
    """The scope of a websocket session for an httpx (or httpx2) request."""
    scope = url_scope(request)
    scope["type"] = "websocket"
    scope["asgi"] = WEBSOCKET_ASGI  # (its send() raises once the client has gone)
    scope["scheme"] = "wss" if request.url.scheme in ("https", "wss") else "ws"
    scope["subprotocols"] = subprotocols
    scope["extensions"] = {"websocket.http.response": {}}
    return scope


def url_scope(request: Any) -> dict[str, Any]:
    """The parts of an ASGI scope that an httpx (or httpx2) request gives:
    the path as servers hand it (``path`` decoded, ``raw_path`` as sent),
    the query string, the headers (names lower-cased), the server."""
    url = request.url
    raw_path, _, query = url.raw_path.partition(b"?")
    secure = url.scheme in ("https", "wss")
    return {
        "asgi": ASGI,
        "http_version": "1.1",
        "path": url.path,
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": [(k.lower(), v) for k, v in request.headers.raw],
        "client": CLIENT,
        "server": (url.host, url.port or (443 if secure else 80)),
    }


async def _upgrade(transport: Any, httpx: ModuleType, request: Any) -> Any:
    """A websocket handshake through the client's ``send()``: httpx-ws's way
    (``client.websocket_connect`` needs none of it)."""
    try:
        import httpx_ws  # noqa: F401, PLC0415  # pyright: ignore[reportUnusedImport]
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] != "httpx_ws":
            raise
        raise ModuleNotFoundError(
            f"a websocket request ({request.url}) through the client's send() "
            f"is httpx-ws's way, and httpx-ws is not installed: {HTTPX_WS}; or "
            "use `async with client.websocket_connect(path)`, which needs nothing",
            name="httpx_ws",
        ) from exc
    from ._wsproto import upgrade  # noqa: PLC0415 - wsproto, for httpx-ws

    return await upgrade(transport, httpx, request)


#: What to install for httpx-ws, said by the error about a missing one.
HTTPX_WS = "pip install 'trio-lifespan[httpx-ws]'"


#: The transport class made for each module, by name.
_CLASSES: dict[str, type[Any]] = {}


def transport_class(httpx: ModuleType) -> type[Any]:
    """The transport class for ``httpx`` (the module: httpx or httpx2), made
    once."""
    made = _CLASSES.get(httpx.__name__)
    if made is None:
        made = _CLASSES[httpx.__name__] = _make_transport_class(httpx)
    return made


def _make_transport_class(httpx: ModuleType) -> type[Any]:

    class ResponseStream(httpx.AsyncByteStream):  # type: ignore[misc, name-defined]
        """A response's body, as the app sends it."""

        #: What the block reading it raised (``client.stream()``'s), if it did.
        reader_error: BaseException | None = None

        def __init__(
            self,
            exchange: Streamed,
            request: Any,
            transport: LifespanTransport,
            chunks: list[bytes],
        ) -> None:
            self.exchange = exchange
            self.request = request
            self.transport = transport
            self.chunks = chunks  # come already, not yet read

        def reader_raised(self, exc: BaseException) -> None:
            """The block reading the response raised ``exc``: it comes out of
            the close, what the app raised noted on it."""
            self.reader_error = exc

        def __aiter__(self) -> ResponseStream:
            return self

        async def __anext__(self) -> bytes:
            # (an iterator, not an async generator: one abandoned half-way is
            # closed with the response, never left to the garbage collector)
            exchange = self.exchange
            head = exchange.scope["method"] == "HEAD"
            while self.chunks:
                chunk = self.chunks.pop(0)
                if chunk and not head:
                    return chunk
            while not exchange.read_all:
                try:
                    item = await exchange.next()
                except TimeoutError:
                    raise self.transport.timed_out(self.request, exchange) from None
                if item is None:  # ended before the whole response came
                    if exchange.body_error is not None:
                        raise await self.transport.body_failed(exchange)
                    error = self._ended_with()
                    await _before_raising(exchange, error)
                    if isinstance(error, StopAsyncIteration):  # (as PEP 479's)
                        raise RuntimeError(
                            f"the app's handler of {exchange.response.target} "
                            "raised StopAsyncIteration, which would end the "
                            "iteration of its response as if complete: it is "
                            "this error's cause"
                        ) from error
                    raise error
                chunk = item[1]
                if chunk and not head:
                    return chunk
            raise StopAsyncIteration

        def _ended_with(self) -> BaseException:
            """What to raise now that the app's task has ended before the
            whole response came."""
            exchange = self.exchange
            error = exchange.failure(self.transport.raise_app_exceptions)
            if error is not None:
                return error
            if exchange.left and not exchange.reader_closed:
                return exchange.cut_short()
            return self.transport.incomplete(self.request)

        async def aclose(self) -> None:
            exchange = self.exchange
            raised = self.reader_error  # (not a cancellation: see stream())
            # (a Ctrl-C in the block: the handler gets no grace)
            stop = isinstance(raised, (KeyboardInterrupt, SystemExit))
            if await exchange.close(self.transport.apps.grace, at_once=stop):
                if isinstance(sys.exc_info()[1], GeneratorExit):
                    # Closed as an iterator of the response is finalized (its
                    # loop's end closes it, or the garbage collector): what is
                    # raised there is logged at most, so the client's exit
                    # raises the handler's error (the exchange stays live).
                    return
                self.transport.apps.live.discard(exchange)
                error = exchange.failure(self.transport.raise_app_exceptions)
                if error is not None and raised is not None:
                    error = combine(
                        raised,
                        error,
                        raised_gives_way=False,
                        what=f"the app's handler of {exchange.response.target} "
                        "failed too",
                    )
                    if error is raised:  # (it goes on: the block's own)
                        return
                if error is not None:
                    raise error

    class LifespanTransport(httpx.AsyncBaseTransport):  # type: ignore[misc, name-defined]
        """Sends each request to the app as an ASGI call in a task of its own.

        Attributes:
            app: The app with its lifespan, once it is open.
            raise_app_exceptions: Whether the app's exceptions are raised.
            apps: The apps still running for requests and sessions.
        """

        def __init__(
            self, *, raise_app_exceptions: bool = True, grace: float = 5.0
        ) -> None:
            self.app: LifespanApp[Any] | None = None
            # (the lifespan's: set with the app, asked of no one per request)
            self.backend: Backend = cast("Backend", None)
            self.raise_app_exceptions = raise_app_exceptions
            self.apps = Apps(grace)
            #: Where its opener's cancellations stood (``Backend.cancel_mark``).
            self.cancel_mark: object = None

        async def body_failed(self, exchange: Streamed) -> BaseException:
            """The request's body raised: the app, told that its client went,
            is given the grace to end; what the body raised, to raise."""
            await exchange.close(self.apps.grace)
            self.apps.live.discard(exchange)
            assert exchange.body_error is not None
            return exchange.body_error

        def incomplete(self, request: Any) -> BaseException:
            """What a reader gets whose response the app left unfinished
            (``raise_app_exceptions=False``): what a server's client gets."""
            return httpx.RemoteProtocolError(  # type: ignore[no-any-return]
                f"the app's response to {request.method} {request.url} ended "
                "before it was complete: a server would drop the connection "
                "(peer closed connection without sending complete message body)",
                request=request,
            )

        def timed_out(
            self, request: Any, exchange: Exchange, *, started: bool | None = None
        ) -> BaseException:
            """The error for a response the app did not send within the read
            timeout (``started``: whether its start came in time)."""
            seconds = exchange.read_timeout
            if started is None:
                started = exchange.response.started
            what = (
                "sent nothing more of its response to" if started else "did not answer"
            )
            return httpx.ReadTimeout(  # type: ignore[no-any-return]
                f"the app {what} {request.method} {request.url} within the "
                f"client's read timeout ({seconds} s): pass timeout= to "
                "open_client, or to the request, for a longer one (None for no "
                "limit)",
                request=request,
            )

        async def handle_async_request(self, request: Any) -> Any:
            start = time.perf_counter()
            app: Any = self.app  # (a LifespanApp, with our failure attribute)
            if app is None:
                raise RuntimeError(
                    "this client's lifespan is not open yet: send requests inside "
                    "`async with open_client(app) as client:`"
                )
            failure: BaseException | None = app.failure
            if failure is not None:  # (at once: even in a cancelled scope)
                raise LifespanUnavailable(failure)
            url = request.url
            scheme = url.scheme
            scope = url_scope(request)
            if scheme in ("ws", "wss") or _upgrades(scope["headers"]):
                return await _upgrade(self, httpx, request)
            method = request.method
            scope["type"] = "http"
            scope["method"] = method
            scope["scheme"] = scheme
            scope["extensions"] = {"http.response.trailers": {}}
            timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
            timeout = read_timeout(timeouts.get("read"))
            body = _body_of(request)
            reading = READING.get()
            if reading == STREAMED:
                streamed = Streamed(
                    self.backend, app, scope, body, url.raw_path, read_timeout=timeout
                )
                return await self._streamed(streamed, request)
            # Read whole: call the app here, and answer with all it sent (here,
            # not in a coroutine of its own: each request would pay for one).
            exchange = Whole(
                self.backend, app, scope, body, url.raw_path, read_timeout=timeout
            )
            live = self.apps.live
            live.add(exchange)  # (a client closed in another task ends it)
            try:
                await exchange.here.run(
                    exchange.app(exchange.scope, exchange.receive, exchange.send),
                    exchange.finish,
                )
            finally:
                live.discard(exchange)
                exchange.closed = True
            error = self._whole_error(exchange, request)
            if error is not None:
                await _before_raising(exchange, error)
                raise error
            return self._whole_response(exchange, request, start, reading)

        def _whole_error(self, exchange: Whole, request: Any) -> BaseException | None:
            """What the reader of a response read whole raises, if anything."""
            if exchange.body_error is not None:  # (the client's own, first)
                return exchange.body_error
            here = exchange.here
            if here.waited:  # (only a call that waited can be cut short)
                if here.timed_out:
                    if here.late or not exchange.response.complete:  # (gone)
                        return self.timed_out(
                            request, exchange, started=exchange.started_in_time()
                        )
                    # Its work after the response outlasted the read timeout,
                    # and was cut there: nothing of a call outlives it.
                    exchange.interrupted = False
                elif here.stopped and not exchange.left:
                    # The client's exit cut its work after a complete response.
                    exchange.interrupted = False
            error = exchange.failure(self.raise_app_exceptions)
            if error is not None:
                return error
            if exchange.left:  # the client was closed under it
                return exchange.cut_short()
            # (read_all: the response is complete, and the reader has it all;
            # the same here, once the client's going is told above)
            if not exchange.read_all and exchange.got:
                return self.incomplete(request)
            return None

        def _whole_response(
            self, exchange: Whole, request: Any, start: float, reading: int
        ) -> Any:
            """The response read whole: all the app sent (read already, unless
            a response hook is to see it first)."""
            got = exchange.got
            if not got:  # the app returned without a response
                return httpx.Response(500, headers=[], request=request)
            answer = self._read_whole(
                request,
                exchange.response,
                got[1] if len(got) == 2 else b"".join(got),  # (2: a start, a body)
            )
            if reading == READ_HERE:
                # Read here, as the client is about to: a synchronous read of
                # bytes in hand costs a third less than the client's
                # asynchronous one, which then finds it done. The client times
                # a response by when its stream closes: a response read
                # already never closes it, so its time is set here.
                answer.read()
                answer.elapsed = timedelta(seconds=time.perf_counter() - start)
            return answer

        def _read_whole(
            self, request: Any, response: HTTPResponse, content: bytes
        ) -> Any:
            """The response with all its body (none for ``HEAD``), not read
            yet."""
            return httpx.Response(
                response.status,
                headers=response.headers,
                # (a stream, as httpx's own transport gives: content= would
                # add a content-length the app did not send)
                stream=httpx.ByteStream(b"" if request.method == "HEAD" else content),
                extensions={"trailers": response.trailers},
                request=request,  # (a DecodingError of its read names it)
            )

        async def _streamed(self, exchange: Streamed, request: Any) -> Any:
            """Start the app's task, and answer as soon as the response
            starts, its body streamed as the app sends it."""
            self.apps.live.add(exchange)
            try:
                item = await exchange.next()
            except TimeoutError:
                exchange.leave()
                raise self.timed_out(request, exchange) from None
            except BaseException:
                exchange.leave()  # (the app is told; the client's exit ends it)
                raise
            if item is None:  # the app ended, or the client went, first
                if exchange.body_error is not None:
                    raise await self.body_failed(exchange)
                self.apps.live.discard(exchange)
                error = exchange.failure(self.raise_app_exceptions)
                if error is None and exchange.left:  # (closed under the reader)
                    error = exchange.cut_short()
                if error is not None:
                    await _before_raising(exchange, error)
                    raise error
                return httpx.Response(500, headers=[], request=request)
            response = exchange.response
            # What the app has sent already; all of it, if it has returned.
            chunks: list[bytes] = []
            while (more := exchange.next_nowait()) is not EMPTY:
                if more is None:  # the app has returned
                    break
                chunks.append(more[1])  # type: ignore[index]
            if more is None and exchange.read_all:  # a whole response: no stream
                self.apps.live.discard(exchange)
                exchange.closed = True
                error = exchange.failure(self.raise_app_exceptions)
                if error is not None:
                    raise error
                return self._read_whole(request, response, b"".join(chunks))
            return httpx.Response(
                response.status,
                headers=response.headers,
                stream=ResponseStream(exchange, request, self, chunks),
                extensions={"trailers": response.trailers},
            )

        async def aclose(self) -> None:
            """End every app still running (each response still open is
            closed, each session too), within the grace."""
            # (a lifespan that has failed gives its apps no grace: it is gone)
            # (nor does a client's exit that is being cancelled: it goes now)
            failed = getattr(self.app, "failure", None) is not None
            backend = current_backend("open_client")
            await self.apps.end(
                backend,
                self.raise_app_exceptions,
                grace=0.0
                if failed or backend.cancelled_since(self.cancel_mark)
                else None,
            )

    return LifespanTransport
