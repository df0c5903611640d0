"""``client.websocket_connect``: a websocket session with the app, in-process.

The app runs in a task of its own, as an HTTP request does (see
:mod:`._transport`), and the messages between the test and the app are ASGI
messages handed from task to task, never framed: ``send_text`` becomes the
app's ``websocket.receive``, the app's ``websocket.send`` what
``receive_text`` returns. The rules of the app's messages are
:class:`._exchange.WebSocketRules`'. The names are those Starlette's
TestClient users know.
"""

from __future__ import annotations

import json
import math
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._backend import current_backend
from ._errors import LifespanUnavailable, WebSocketDenied, WebSocketDisconnect
from ._exchange import (
    ACCEPT,
    CLOSE,
    DATA,
    ClientDisconnected,
    WebSocketRules,
    after_disconnect,
    cancelled_under,
)

if TYPE_CHECKING:
    from ._backend import Backend, Handoff, Job
    from ._state import LifespanApp
    from ._transport import Apps
    from ._types import Message, Scope

#: The close code of an app that returned without closing: the connection
#: drops without a close frame (RFC 6455: 1006), as uvicorn drops it.
DROPPED = 1006

#: The close code the app hears when the client goes without closing
#: (RFC 6455: going away).
GOING_AWAY = 1001

_NOT_CONNECTED = (
    "this websocket session is not connected: use it inside "
    "`async with client.websocket_connect(path) as websocket:`"
)


class WebSocketSession:
    """A websocket session with the app: ``async with`` it to connect.

    Made by :meth:`LifespanClient.websocket_connect`; entering it sends the
    handshake and waits for the app to accept (or refuse: then
    :exc:`WebSocketDisconnect` or :exc:`WebSocketDenied` is raised); leaving
    it closes the session (code 1000), gives the app the lifespan's
    ``shutdown_timeout`` to end, and raises what the app raised, if
    anything. Every wait for the app is bounded by the client's read
    timeout.

    Attributes:
        accepted_subprotocol: The subprotocol the app accepted, or ``None``.
        extra_headers: The headers the app accepted with.
        close_code: How the app closed the session, once it has.
        close_reason: The reason it gave, or ``""``.
    """

    def __init__(
        self,
        app: LifespanApp[Any],
        scope: Scope,
        apps: Apps,
        *,
        read_timeout: float,
        raise_app_exceptions: bool,
    ) -> None:
        self._app = app
        self._scope = scope
        self._apps = apps
        self._read_timeout = read_timeout
        self._raise_app_exceptions = raise_app_exceptions
        self._rules = WebSocketRules(f"websocket {scope['path']}")
        self.accepted_subprotocol: str | None = None
        self.extra_headers: list[tuple[bytes, bytes]] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self._backend: Backend | None = None
        self._cancel_mark: object = None  # (``Backend.cancel_mark``, at entry)
        self._to_app: Handoff | None = None
        self._from_app: Handoff | None = None
        self._job: Job | None = None
        self._error: BaseException | None = None
        self._raised: BaseException | None = None  # (the app's, once raised)
        self._interrupted = False
        self._left = False  # the client has gone (closed, or left)
        self._ended = False  # the app's task has ended (its outbox said so)
        self._accepted = False
        self._heard = False  # the app received websocket.disconnect

    @property
    def job(self) -> Job:
        """The app's task."""
        if self._job is None:
            raise RuntimeError(_NOT_CONNECTED)
        return self._job

    # The app's side -----------------------------------------------------------

    async def _run(self) -> None:
        assert self._backend is not None
        assert self._from_app is not None
        try:
            await self._app(self._scope, self._app_receive, self._app_send)
        except BaseException as exc:
            if isinstance(exc, self._backend.cancelled):
                self._interrupted = not self._left
                raise
            # (as for HTTP: Ctrl-C goes to the test; after the client has
            # gone, what the app raises is not the client's to hear)
            if isinstance(exc, KeyboardInterrupt) or not (
                self._left and after_disconnect(exc, self._heard)
            ):
                self._error = exc
        finally:
            self._from_app.end()

    async def _app_receive(self) -> Message:
        assert self._to_app is not None
        message: Message | None = await self._to_app.take(math.inf)
        if message is None:  # (the client went without a word: dropped)
            message = {"type": "websocket.disconnect", "code": DROPPED, "reason": ""}
        if message["type"] == "websocket.disconnect":
            self._heard = True
        return message

    async def _app_send(self, message: Message) -> None:
        assert self._from_app is not None
        what = self._rules.sent(message)
        if self._left or not await self._from_app.put(what):
            raise ClientDisconnected(f"the client of {self._rules.target} has gone")

    # Connecting and leaving ---------------------------------------------------

    async def __aenter__(self) -> WebSocketSession:
        if self._backend is not None:
            raise RuntimeError("this websocket session was entered already")
        failure: BaseException | None = getattr(self._app, "failure", None)
        if failure is not None:
            raise LifespanUnavailable(failure)
        backend = self._backend = current_backend("websocket_connect")
        self._cancel_mark = backend.cancel_mark()  # (the opener's, for close)
        self._to_app = backend.handoff(math.inf)  # (the test's sends never wait)
        self._from_app = backend.handoff()
        self._to_app.put_nowait({"type": "websocket.connect"})
        self._job = backend.spawn(self._app, self._run)
        self._apps.live.add(self)
        try:
            await self._handshake()
        except (WebSocketDisconnect, WebSocketDenied):
            await self._finish()
            raise
        except BaseException:
            self.leave()  # (cut short: the client's exit ends the app)
            raise
        return self

    async def _handshake(self) -> None:
        """Wait for the app to accept; its refusal raised."""
        what, data = await self._next("accept the websocket")
        if what == ACCEPT:
            self._accepted = True
            self.accepted_subprotocol, self.extra_headers = data
            return
        if what == CLOSE:
            self.close_code, self.close_reason = data
            raise WebSocketDisconnect(*data)
        # DENIAL_START: then the body, to its end
        status, headers = data
        body = b""
        more = True
        while more:
            _, (chunk, more) = await self._next("send its denial response")
            body += chunk
        raise WebSocketDenied(status, headers, body)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not isinstance(exc, WebSocketDisconnect):
            self.leave()  # (the block's error comes out; the client's exit ends it)
            return
        await self.close()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        """Close the session: the app receives ``websocket.disconnect`` with
        ``code``; it gets the lifespan's ``shutdown_timeout`` to end, then is
        cancelled. Raises what the app raised, if it raised."""
        if self._to_app is None:
            raise RuntimeError(_NOT_CONNECTED)
        self.leave(code, reason or "")
        await self._finish()

    async def _finish(self) -> None:
        """Leave; give the app the grace to end, else cancel it; raise its error."""
        await self.settle()
        self._apps.live.discard(self)
        error = self.failure(self._raise_app_exceptions)
        if error is not None:
            raise error

    async def settle(self) -> None:
        """Leave; give the app the grace to end, else cancel it (what it
        raised is kept: for :meth:`close`, or the client's exit)."""
        self.leave()
        job = self.job
        assert self._backend is not None
        # (none if the closer is being cancelled: it goes now)
        cancelled = self._backend.cancelled_since(self._cancel_mark)
        grace = 0.0 if cancelled else self._apps.grace
        try:
            if not await job.wait(grace):
                job.cancel()
                await job.wait(math.inf)
        except GeneratorExit:
            # (the closer's coroutine is being closed, left unfinished on a
            # loop that ended: it cannot wait; the client's exit ends the app)
            raise
        except BaseException:
            # (the closer is cancelled: so is the app, and it is waited for,
            # within the grace)
            job.cancel()
            await self._backend.wait_shielded(lambda: job.wait(self._apps.grace))
            raise

    def hold(self, error: BaseException) -> bool:
        """If ``error`` is what the app raised (raised by a receive), keep it
        for the client's exit instead; whether it was. (httpx-ws reads in a
        task group of its own, which would hand it on in a group of one.)"""
        if error is not self._raised:
            return False
        self._error = error
        self._apps.live.add(self)
        return True

    def leave(self, code: int = GOING_AWAY, reason: str = "") -> None:
        """The client has gone: the app hears ``websocket.disconnect`` with
        ``code`` (going away, unless said; the app's own code once it has
        closed, as a client echoes it), and its sends raise."""
        if self._left:
            return
        self._left = True
        assert self._to_app is not None
        assert self._from_app is not None
        if self.close_code is not None:
            code, reason = self.close_code, self.close_reason
        message = {"type": "websocket.disconnect", "code": code, "reason": reason}
        self._to_app.put_nowait(message)
        self._to_app.end()
        self._from_app.leave()

    def failure(self, raise_app_exceptions: bool) -> BaseException | None:
        """What to raise now that the app's task has ended, if anything."""
        if self._interrupted:
            self._interrupted = False
            return cancelled_under(self._app, self._rules.target)
        error, self._error = self._error, None
        keep = raise_app_exceptions or isinstance(error, KeyboardInterrupt)
        return error if keep else None

    async def _next(self, doing: str) -> tuple[int, Any]:
        """The app's next message; what its task's end means, raised."""
        if self._from_app is None:
            raise RuntimeError(_NOT_CONNECTED)
        if not self._ended:
            try:
                item: tuple[int, Any] | None = await self._from_app.take(
                    self._read_timeout
                )
            except TimeoutError:
                raise TimeoutError(
                    f"the app did not {doing} on {self._rules.target} within the "
                    f"client's read timeout ({self._read_timeout} s): pass "
                    "timeout= to open_client for a longer one (None for no limit)"
                ) from None
            if item is not None:
                return item
            self._ended = True
        # The app's task has ended: its error, or how the session ended.
        error = self.failure(self._raise_app_exceptions)
        if error is not None:
            self._apps.live.discard(self)
            self._raised = error
            raise error
        failure: BaseException | None = getattr(self._app, "failure", None)
        if failure is not None:  # (the session ended with the lifespan)
            raise LifespanUnavailable(failure)
        if self._rules.denying:
            raise self._rules.unfinished()
        if not self._accepted:
            # A handshake the app returned from (or raised from, its error
            # not raised): a server's error, 500, as uvicorn and hypercorn
            # answer (a close before the accept is the app's refusal: 403).
            raise WebSocketDenied(500, [], b"")
        if self.close_code is None:
            self.close_code = DROPPED
        raise WebSocketDisconnect(self.close_code, self.close_reason)

    # Talking ------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """Send the app an ASGI message as it is (``websocket.receive``...).

        Raises:
            WebSocketDisconnect: The session is closed.
        """
        if self._to_app is None:
            raise RuntimeError(_NOT_CONNECTED)
        if self._ended:
            await self._next("")  # (raises the app's error, or how it ended)
        if self.close_code is not None or self._left:
            raise WebSocketDisconnect(self.close_code or 1000, self.close_reason)
        self._to_app.put_nowait(message)

    async def send_text(self, data: str) -> None:
        """Send ``data`` as a text message."""
        await self.send({"type": "websocket.receive", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        """Send ``data`` as a binary message."""
        await self.send({"type": "websocket.receive", "bytes": data})

    async def send_json(self, data: Any, mode: str = "text") -> None:
        """Send ``data`` as JSON, in a text message (or ``mode="binary"``)."""
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if mode == "text":
            await self.send_text(text)
        else:
            await self.send_bytes(text.encode())

    async def receive(self) -> Message:
        """The app's next message, as ``{"type": "websocket.send", ...}``.

        Raises:
            WebSocketDisconnect: The app closed the session (or returned).
        """
        if self.close_code is not None:
            raise WebSocketDisconnect(self.close_code, self.close_reason)
        what, data = await self._next("send a message")
        if what == CLOSE:
            self.close_code, self.close_reason = data
            raise WebSocketDisconnect(*data)
        assert what == DATA
        key = "text" if isinstance(data, str) else "bytes"
        return {"type": "websocket.send", key: data}

    async def receive_text(self) -> str:
        """The app's next message, which must be text."""
        message = await self.receive()
        if "text" not in message:
            raise TypeError(
                f"the app sent bytes on {self._rules.target}, not text: "
                f"{message['bytes'][:100]!r} (receive_bytes takes them)"
            )
        text: str = message["text"]
        return text

    async def receive_bytes(self) -> bytes:
        """The app's next message, which must be binary."""
        message = await self.receive()
        if "bytes" not in message:
            raise TypeError(
                f"the app sent text on {self._rules.target}, not bytes: "
                f"{message['text'][:100]!r} (receive_text takes it)"
            )
        data: bytes = message["bytes"]
        return data

    async def receive_json(self, mode: str = "text") -> Any:
        """The app's next message, parsed as JSON (from text, or ``mode="binary"``)."""
        if mode == "text":
            return json.loads(await self.receive_text())
        return json.loads(await self.receive_bytes())
