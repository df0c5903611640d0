"""The ASGI HTTP and websocket conversations, without I/O.

What the client's transport (:mod:`._transport`) and its websocket session
(:mod:`._websocket`) need to know about the messages an app sends: which may
come now, what each means, and what is wrong with one that breaks the rules.
The I/O (tasks, channels, timeouts) is theirs; the rules are here, once, as
h11 keeps HTTP's rules apart from any socket.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, TypeGuard, cast

from ._compat import BaseExceptionGroup
from ._errors import LifespanUnavailable, RequestProtocolError, describe_message
from ._exceptions import members

#: The ASGI version our HTTP scopes speak: 2.3, as uvicorn's do: a message
#: sent once the client has gone is dropped (2.4 would have ``send()`` raise
#: an ``OSError``: then Starlette stops listening for ``http.disconnect``, and
#: a stream that waits between its events does not hear its client go).
ASGI = {"version": "3.0", "spec_version": "2.3"}
#: Our websocket scopes' (2.4, as uvicorn's: ``send()`` once the client has
#: gone raises an ``OSError``).
WEBSOCKET_ASGI = {"version": "3.0", "spec_version": "2.4"}

# What an app's HTTP message was: the values ``HTTPResponse.sent`` returns.
START = 1  # http.response.start
BODY = 2  # a body chunk, more to come
END = 3  # the response is complete: the last body chunk, or the last trailers
TRAILERS = 4  # trailers, more to come


class ClientDisconnected(OSError):
    """Raised by ``send()`` once the client has gone (ASGI 2.4: a server's
    subclass of ``OSError``): the app may stop sending."""


class CancelledFromOutside(RuntimeError):
    """The app's task was cancelled, and not by the client: its event loop
    closed under it, or its lifespan ended."""


def cancelled_under(app: object, target: str) -> BaseException:
    """What a reader raises whose request's task was cancelled from outside:
    the lifespan's failure, if that is why."""
    failure: BaseException | None = getattr(app, "failure", None)
    if failure is not None:
        return LifespanUnavailable(failure)
    return CancelledFromOutside(
        f"the app's task for {target} was cancelled, and not by the client: "
        "its event loop closed, the lifespan ended, or the app raised a "
        "cancellation of its own"
    )


def after_disconnect(exc: BaseException, heard: bool) -> bool:
    """Whether ``exc``, raised by an app whose client has gone, comes of that:
    the app had received the disconnect (``heard``), or ``exc`` is a
    :exc:`ClientDisconnected` that ``send()`` raised, or was raised while one
    was handled (Starlette turns it into its own ``ClientDisconnect``), or is
    a group of such (the app's task group hands one on in a group). A
    server logs such errors at most: the client that went away is not told."""
    if isinstance(exc, BaseExceptionGroup):  # (the app's task group's)
        group = cast("BaseExceptionGroup[BaseException]", exc)
        return all(after_disconnect(one, heard) for one in members(group))
    seen: set[int] = set()
    one: BaseException | None = exc
    while one is not None and id(one) not in seen:
        if isinstance(one, ClientDisconnected):
            return True
        seen.add(id(one))
        one = one.__cause__ or one.__context__
    return heard


class Rules(Protocol):
    """What the checks say a message broke the rules of: a response's or a
    websocket's, named by its request."""

    @property
    def target(self) -> str:
        """The request, for errors: ``GET /items``."""
        ...


def _an_int(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an int (an ``HTTPStatus`` or another ``IntEnum``
    too, as servers take them; not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_message(rules: Rules, message: object) -> str:
    """The type of ``message``; a :exc:`RequestProtocolError` if it has none."""
    fields: Any = message
    if type(fields) is dict:  # (the common case, without an ABC check)
        found: object = cast("dict[str, Any]", fields).get("type")
        if type(found) is str:
            return found
    sent: object = message  # (as it came, for the error)
    kind = (
        cast("Mapping[str, Any]", message).get("type")
        if isinstance(message, Mapping)
        else None
    )
    if isinstance(kind, str):
        return kind
    raise RequestProtocolError(
        rules.target,
        f"it sent {describe_message(sent)}, which is not an ASGI message (a "
        "mapping with a 'type')",
    )


#: A header's name is a token; its value has no control character but a
#: tab (no line break: what a server refuses to send, as uvicorn does).
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+").fullmatch
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search


def check_headers(
    rules: Rules, kind: str, headers: object
) -> list[tuple[bytes, bytes]]:
    """The headers of a message as byte pairs; an error if they are not, or
    if one is not what a server would send."""
    given: Any = headers
    pair: Any
    if type(given) is list or type(given) is tuple:
        for pair in cast("list[Any]", given):
            if (
                type(pair) is not tuple
                or len(pair) != 2  # pyright: ignore[reportUnknownArgumentType]
                or type(pair[0]) is not bytes  # pyright: ignore[reportUnknownArgumentType]
                or type(pair[1]) is not bytes  # pyright: ignore[reportUnknownArgumentType]
                or not _TOKEN(pair[0])  # pyright: ignore[reportUnknownArgumentType]
                or _CONTROL(pair[1])  # pyright: ignore[reportUnknownArgumentType]
            ):
                break  # (converted, or told what is wrong, below)
        else:  # pairs of bytes already: the common case, checked, not converted
            return list(cast("list[tuple[bytes, bytes]]", given))
    pairs: list[tuple[bytes, bytes]] = []
    if not isinstance(given, Iterable) or isinstance(given, (str, bytes)):
        raise RequestProtocolError(
            rules.target, f"its {kind} has headers {given!r}, not a list of pairs"
        )
    name: Any
    value: Any
    for pair in given:  # pyright: ignore[reportUnknownVariableType]
        try:
            name, value = pair  # pyright: ignore[reportUnknownVariableType]
        except (TypeError, ValueError):
            name = value = None
        # (bytes-like only: bytes(5) would make five zero bytes of an int)
        if not isinstance(name, _BYTES_LIKE) or not isinstance(value, _BYTES_LIKE):
            raise RequestProtocolError(
                rules.target,
                f"its {kind} has a header {pair!r}, not a (name, value) pair of bytes",
            )
        name, value = bytes(cast("bytes", name)), bytes(cast("bytes", value))
        if not _TOKEN(name):
            raise RequestProtocolError(
                rules.target,
                f"its {kind} has a header name {name!r}, which is not a token "
                "(letters, digits and !#$%&'*+-.^_`|~, no space): a server "
                "would refuse to send it",
            )
        if _CONTROL(value):
            raise RequestProtocolError(
                rules.target,
                f"its {kind} has a header {name.decode()!r} whose value {value!r} "
                "holds a control character (a line break, a NUL): a server "
                "would refuse to send it (it could forge headers)",
            )
        pairs.append((name, value))
    return pairs


#: What a body or a header may be (converted to bytes).
_BYTES_LIKE = (bytes, bytearray, memoryview)


def _body(rules: Rules, kind: str, message: Mapping[str, Any]) -> bytes:
    body = message.get("body", b"")
    if type(body) is bytes:
        return body
    if not isinstance(body, _BYTES_LIKE):
        raise RequestProtocolError(
            rules.target,
            f"its {kind} has a body of type {type(body).__name__}, not bytes",
        )
    return bytes(cast("bytes", body))


# Where an HTTP response stands.
_AWAITING_START = 0
_IN_BODY = 1
_IN_TRAILERS = 2
_COMPLETE = 3


class HTTPResponse:
    """The rules of one HTTP response, as the app sends it.

    Attributes:
        status: The status, once ``http.response.start`` came.
        headers: Its headers.
        trailers: The trailers, as they come (when the start announced them).
    """

    # (class attributes: a response sets only what it is sent)
    status = 0
    _stage = _AWAITING_START
    _trailers_announced = False

    def __init__(self, method: str, target: bytes) -> None:
        # (the request, for errors: its method, and its target as sent)
        self._method = method
        self._target = target
        self.headers: list[tuple[bytes, bytes]] = []
        # (a streamed response's reader holds this list as trailers come)
        self.trailers: list[tuple[bytes, bytes]] = []

    @property
    def target(self) -> str:
        """The request, for errors: ``GET /items?page=2`` (made when one is
        said)."""
        return f"{self._method} {self._target.decode('ascii')}"

    @property
    def started(self) -> bool:
        """Whether ``http.response.start`` came."""
        return self._stage != _AWAITING_START

    @property
    def complete(self) -> bool:
        """Whether the response is complete."""
        return self._stage == _COMPLETE

    def sent(self, message: object) -> tuple[int, bytes]:
        """What the app's ``message`` is (:data:`START`, :data:`BODY`,
        :data:`END` or :data:`TRAILERS`), and its body.

        Raises:
            RequestProtocolError: The message breaks the rules here.
        """
        fields: Any = message  # (checked: a mapping, once it has a type)
        kind = fields.get("type") if type(message) is dict else None
        if type(kind) is not str:  # (not the common case: a dict with a type)
            kind = check_message(self, fields)
        stage = self._stage
        if kind == "http.response.body" and stage == _IN_BODY:
            body = fields.get("body", b"")
            if type(body) is not bytes:
                body = _body(self, kind, fields)
            if fields.get("more_body", False):
                return BODY, body
            if self._trailers_announced:
                self._stage = _IN_TRAILERS
                return BODY, body
            self._stage = _COMPLETE
            return END, body
        if kind == "http.response.start" and stage == _AWAITING_START:
            status = fields.get("status")
            if type(status) is not int and not _an_int(status):
                status = None  # (said below)
            if status is None or not 100 <= status <= 599:
                raise RequestProtocolError(
                    self.target,
                    f"its {kind} has status {fields.get('status')!r}, not an int "
                    "from 100 to 599",
                )
            self.status = int(status)
            self.headers = check_headers(self, kind, fields.get("headers", ()))
            self._trailers_announced = bool(fields.get("trailers", False))
            self._stage = _IN_BODY
            return START, b""
        if kind == "http.response.trailers" and stage == _IN_TRAILERS:
            self.trailers += check_headers(self, kind, fields.get("headers", ()))
            if fields.get("more_trailers", False):
                return TRAILERS, b""
            self._stage = _COMPLETE
            return END, b""
        raise RequestProtocolError(self.target, f"it sent {kind!r} {_WHEN[stage]}")

    def unfinished(self) -> RequestProtocolError:
        """The error for an app that returned before its response was complete."""
        return RequestProtocolError(
            self.target, f"it returned {_UNFINISHED[self._stage]}"
        )


#: Said of a message that may not come at each stage.
_WHEN = {
    _AWAITING_START: "before http.response.start",
    _IN_BODY: "while its body was under way (after http.response.start)",
    _IN_TRAILERS: (
        "after its last body chunk, where only http.response.trailers may come "
        "(it announced trailers=True)"
    ),
    _COMPLETE: "after the response was complete",
}

#: Said of an app that returns at each stage.
_UNFINISHED = {
    _AWAITING_START: "without sending a response (no http.response.start)",
    _IN_BODY: "before its response was complete (no http.response.body with "
    "more_body=False)",
    _IN_TRAILERS: "before sending the trailers it announced (trailers=True)",
}


# What an app's websocket message was: the values ``WebSocketRules.sent``
# returns, with what it carries.
ACCEPT = 11  # (subprotocol, headers)
DATA = 12  # text or bytes
CLOSE = 13  # (code, reason)
DENIAL_START = 14  # (status, headers)
DENIAL_BODY = 15  # (body, more)

# Where a websocket stands.
_CONNECTING = 0
_OPEN = 1
_DENYING = 2
_CLOSED = 3

_WS_WHEN = {
    _CONNECTING: "before accepting the websocket (websocket.accept)",
    _OPEN: "while the websocket was open",
    _DENYING: "while sending its denial response (websocket.http.response.body)",
    _CLOSED: "after the websocket was closed",
}


class WebSocketRules:
    """The rules of one websocket session, as the app sends its messages."""

    __slots__ = ("_stage", "target")

    def __init__(self, target: str) -> None:
        self.target = target
        self._stage = _CONNECTING

    @property
    def denying(self) -> bool:
        """Whether the app is sending a denial response."""
        return self._stage == _DENYING

    def unfinished(self) -> RequestProtocolError:
        """The error for an app that returned in the middle of its denial."""
        return RequestProtocolError(
            self.target,
            "it returned before its denial response was complete (no "
            "websocket.http.response.body with more_body=False)",
        )

    def sent(self, message: object) -> tuple[int, Any]:
        """What the app's ``message`` is (:data:`ACCEPT`, :data:`DATA`,
        :data:`CLOSE`, :data:`DENIAL_START` or :data:`DENIAL_BODY`), and what
        it carries.

        Raises:
            RequestProtocolError: The message breaks the rules here.
        """
        kind = check_message(self, message)
        fields: Mapping[str, Any] = message  # type: ignore[assignment]  # (checked)
        stage = self._stage
        if kind == "websocket.send" and stage == _OPEN:
            text, data = fields.get("text"), fields.get("bytes")
            if (text is None) == (data is None):
                raise RequestProtocolError(
                    self.target,
                    "its websocket.send has "
                    + (
                        "both text and bytes"
                        if text is not None
                        else "no text or bytes"
                    )
                    + ": give exactly one",
                )
            if text is not None and not isinstance(text, str):
                raise RequestProtocolError(
                    self.target, f"its websocket.send has text {text!r}, not a str"
                )
            if data is not None and not isinstance(data, (bytes, bytearray)):
                raise RequestProtocolError(
                    self.target, f"its websocket.send has bytes {data!r}, not bytes"
                )
            return DATA, text if text is not None else bytes(cast("bytes", data))
        if kind == "websocket.close" and stage in (_CONNECTING, _OPEN):
            code = fields.get("code", 1000)
            reason = fields.get("reason") or ""
            # (before the accept, a server sends a 403 and no close frame:
            # whatever the reason is, it goes nowhere; FastAPI puts a list of
            # validation errors there)
            if not _an_int(code) or (stage == _OPEN and not isinstance(reason, str)):
                raise RequestProtocolError(
                    self.target,
                    f"its websocket.close has code {code!r} and reason "
                    f"{reason!r}: give an int and a str",
                )
            self._stage = _CLOSED
            return CLOSE, (
                int(code),
                reason if isinstance(reason, str) else str(reason),
            )
        if kind == "websocket.accept" and stage == _CONNECTING:
            subprotocol = fields.get("subprotocol")
            if subprotocol is not None and not isinstance(subprotocol, str):
                raise RequestProtocolError(
                    self.target,
                    f"its websocket.accept has subprotocol {subprotocol!r}, not a str",
                )
            headers = check_headers(self, kind, fields.get("headers", ()))
            self._stage = _OPEN
            return ACCEPT, (subprotocol, headers)
        if kind == "websocket.http.response.start" and stage == _CONNECTING:
            status = fields.get("status")
            if not _an_int(status) or not 100 <= status <= 599:
                raise RequestProtocolError(
                    self.target,
                    f"its {kind} has status {status!r}, not an int from 100 to 599",
                )
            headers = check_headers(self, kind, fields.get("headers", ()))
            self._stage = _DENYING
            return DENIAL_START, (int(status), headers)
        if kind == "websocket.http.response.body" and stage == _DENYING:
            body = _body(self, kind, fields)
            more = bool(fields.get("more_body", False))
            if not more:
                self._stage = _CLOSED
            return DENIAL_BODY, (body, more)
        raise RequestProtocolError(self.target, f"it sent {kind!r} {_WS_WHEN[stage]}")


def request_message(body: bytes, more: bool) -> dict[str, Any]:
    """The ``http.request`` message for a chunk of the request's body."""
    return {"type": "http.request", "body": body, "more_body": more}


DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}
