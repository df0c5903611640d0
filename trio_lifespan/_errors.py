"""The errors trio_lifespan raises: one base class, one subclass per situation,
and the wording of each.

Each error keeps the data it is about in ``args`` (so it pickles and compares
like a builtin exception), and its text says what happened, then what to do
about it. Most build that text in ``__str__`` from their data; those the
protocol decides on where the text depends on the moment (what the app sent,
and when; how it ended) are made by the functions at the end of this module,
which the protocol calls: it says which error, and with what, and every word
of it is here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Phase = Literal["startup", "shutdown"]

_FAILED_HINTS: dict[Phase, str] = {
    "startup": "Look at the app's startup hooks (on_startup, the lifespan context "
    "manager) and at the app's logs for the cause.",
    "shutdown": "Look at the app's shutdown hooks (on_shutdown, the code after "
    "`yield` in the lifespan context manager) and at the app's logs for the cause.",
}

_TIMEOUT_HINTS: dict[Phase, str] = {
    "startup": "A startup hook is probably waiting on something that does not "
    "answer (a database, a cache, another service), or the app never sends "
    "'lifespan.startup.complete'. Make that service reachable, or raise "
    "startup_timeout (None waits for ever).",
    "shutdown": "A shutdown hook is probably stuck closing a connection or waiting "
    "for a background task, or the app never sends 'lifespan.shutdown.complete'. "
    "Raise shutdown_timeout (None waits for ever).",
}


class LifespanError(Exception):
    """Base class of every error about an app's lifespan.

    Catch this to handle any lifespan failure that trio_lifespan itself reports.
    Exceptions that the app raises come out as they are, not wrapped in this.
    """


class _ReportedFailure(LifespanError):
    """Shared shape of the two "the app said it failed" errors."""

    phase: Phase

    def __init__(self, message: str = "") -> None:
        super().__init__(message)

    @property
    def message(self) -> str:
        """The ``message`` the app sent with its failure report ("" if none)."""
        text: str = self.args[0]
        return text

    def __str__(self) -> str:
        said = (
            f"with the message: {self.message}" if self.message else "without a message"
        )
        return (
            f"the app reported that its {self.phase} failed "
            f"('lifespan.{self.phase}.failed') {said}. {_FAILED_HINTS[self.phase]}"
        )


class LifespanStartupFailed(_ReportedFailure):
    """The app sent ``lifespan.startup.failed`` and did not raise an exception.

    Attributes:
        message (str): The message the app sent with the report, or ``""``.
    """

    phase: Phase = "startup"


class LifespanShutdownFailed(_ReportedFailure):
    """The app sent ``lifespan.shutdown.failed`` and did not raise an exception.

    Attributes:
        message (str): The message the app sent with the report, or ``""``.
    """

    phase: Phase = "shutdown"


class LifespanCrashed(LifespanShutdownFailed):
    """The app reported a failure while it was running, unasked.

    Starlette and FastAPI send ``lifespan.shutdown.failed`` as soon as their
    lifespan crashes after startup (a background task in its task group
    died), long before a shutdown is asked for. An app that raises its own
    exception after the report comes out as that exception; this error is
    for an app that reported and then returned or waited on. A subclass of
    :exc:`LifespanShutdownFailed`, as the report is that message.

    Attributes:
        message (str): The message the app sent with the report, or ``""``.
    """

    def __str__(self) -> str:
        said = (
            f"with the message: {self.message}" if self.message else "without a message"
        )
        return (
            "the app reported a failure ('lifespan.shutdown.failed') while it was "
            f"running, before its shutdown was asked for, {said}. Something its "
            "lifespan keeps running (a background task, a connection pool) died; "
            "look at the app's logs for the cause."
        )


class LifespanUnavailable(LifespanError):
    """A request was sent through the app after its lifespan had failed.

    Raised by the app that :func:`~trio_lifespan.open_lifespan` yields,
    instead of passing the request to an app whose lifespan is gone (its
    pools closed, its background tasks dead). The lifespan's error is the
    ``__cause__``. It reaches tests that hold the lifespan in another task
    (a pytest-asyncio fixture of module or session scope), which the
    cancellation of the ``async with`` body cannot reach.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.__cause__ = error

    @property
    def error(self) -> BaseException:
        """The lifespan's error, which ``open_lifespan`` raises, or will."""
        error: BaseException = self.args[0]
        return error

    def __str__(self) -> str:
        error = self.error
        return (
            "the app's lifespan has failed, so requests are not passed to it: "
            f"{type(error).__name__}: {error}. Fix that failure first; it is "
            "raised where the lifespan was opened (an `async with` block, the "
            "pytest plugin's fixture, a server's lifespan), or has been."
        )


class LifespanCancelled(LifespanError):
    """The app's lifespan ended with a cancellation that nobody asked for.

    On asyncio, something inside the app can cancel the task its lifespan
    runs in: a cancel scope or task group of its own (a background task that
    failed, whose error the app then lost), or a future it awaited that was
    cancelled. The lifespan then raises ``CancelledError`` though neither
    trio_lifespan nor the caller was cancelled. That cancellation is the
    ``__cause__``; it is not raised as it is, because the caller would take it
    for its own (an ``asyncio.TaskGroup`` drops it without a word).
    """


class LifespanNotSupported(LifespanError):
    """The app does not take part in the lifespan protocol.

    Raised when the app raises before its first ``receive()``, calls ``send()``
    before ``receive()``, or returns without ever receiving. The app's own
    exception, if there was one, is the ``__cause__``. Pass
    ``allow_unsupported=True`` to run such an app anyway.
    """


class LifespanNotASGIApp(LifespanError, TypeError):
    """What was given as the app cannot be run as an ASGI app.

    Raised by :func:`~trio_lifespan.open_lifespan` when the app is not
    callable, and on entry when calling it as ``app(scope, receive, send)``
    fails before any of its code runs: it takes other arguments (a WSGI app,
    an ASGI 2 app that is built from the scope) or it returns something that
    cannot be awaited (a plain ``def``). The error that call raised is the
    ``__cause__``. ``allow_unsupported=True`` does not let it through: such
    an app cannot serve requests either. A subclass of the builtin
    :class:`TypeError` too.
    """


class LifespanTimeout(LifespanError, TimeoutError):
    """The app's startup or shutdown did not finish in time.

    A subclass of the builtin :class:`TimeoutError` too, so ``except
    TimeoutError`` catches it. The app has been cancelled when this comes out.

    Attributes:
        phase (str): ``"startup"`` or ``"shutdown"``.
        timeout (float): The limit that ran out, in seconds.
    """

    def __init__(self, phase: Phase, timeout: float) -> None:
        super().__init__(phase, timeout)

    @property
    def phase(self) -> Phase:
        """``"startup"`` or ``"shutdown"``."""
        phase: Phase = self.args[0]
        return phase

    @property
    def timeout(self) -> float:
        """The limit that ran out, in seconds."""
        timeout: float = self.args[1]
        return timeout

    def __str__(self) -> str:
        return (
            f"the app's {self.phase} did not complete within "
            f"{self.phase}_timeout={self.timeout!r} seconds, so it was cancelled. "
            f"{_TIMEOUT_HINTS[self.phase]}"
        )


class LifespanProtocolError(LifespanError):
    """The app broke the ASGI lifespan protocol.

    For example it sent a message of an unknown type, sent
    ``lifespan.startup.complete`` twice, replied to a shutdown that was never
    sent, or sent something that is not a mapping with a ``"type"``.

    Attributes:
        received (object): What the app sent, or ``None`` when the breach was
            not a message (the app returned too early).
        expected (tuple[str, ...]): The message types that were allowed at that
            point (empty when none was).
    """

    def __init__(
        self, detail: str, received: object = None, expected: tuple[str, ...] = ()
    ) -> None:
        super().__init__(detail, received, expected)

    @property
    def received(self) -> object:
        """What the app sent, or ``None`` when the breach was not a message."""
        return self.args[1]

    @property
    def expected(self) -> tuple[str, ...]:
        """The message types that were allowed at that point."""
        expected: tuple[str, ...] = self.args[2]
        return expected

    def __str__(self) -> str:
        detail: str = self.args[0]
        return detail


class LifespanStateConflict(LifespanError, ValueError):
    """Two apps whose lifespans run together set the same lifespan state key.

    Raised by :func:`~trio_lifespan.lifespan_of` and
    :func:`~trio_lifespan.with_lifespans` once every startup has completed:
    requests see the apps' states merged into one, where a key can hold one
    value only. The apps that had started are shut down first. A subclass of
    the builtin :class:`ValueError` too.

    Attributes:
        key (str): The key both apps set.
        first (str): The app that set it first, in the order the apps were
            given (its position and type, as in the message).
        second (str): The other app.
    """

    def __init__(self, key: str, first: str, second: str) -> None:
        super().__init__(key, first, second)

    @property
    def key(self) -> str:
        """The key both apps set."""
        key: str = self.args[0]
        return key

    @property
    def first(self) -> str:
        """The app that set it first, in the order the apps were given."""
        first: str = self.args[1]
        return first

    @property
    def second(self) -> str:
        """The other app."""
        second: str = self.args[2]
        return second

    def __str__(self) -> str:
        return (
            f"{self.first} and {self.second} both set the lifespan state key "
            f"{self.key!r}, and the requests to every app see one merged state. "
            "Rename the key in one of them, or keep each app's values under a "
            "key of its own."
        )


class RequestProtocolError(LifespanError):
    """The app broke the ASGI protocol while it handled a request or a websocket.

    Raised by :func:`~trio_lifespan.open_client`'s transport where a server
    would drop the connection: the app sent a message out of turn (a body
    before ``http.response.start``, anything after the response was
    complete), a message that is not one (no ``"type"``, a status that is not
    an ``int``), or returned before its response was complete. Inside the
    app, ``send()`` raises it for the message that broke the rules.

    Attributes:
        target (str): The request: ``GET /items`` or ``websocket /ws``.
        detail (str): What the app did.
    """

    def __init__(self, target: str, detail: str) -> None:
        super().__init__(target, detail)

    @property
    def target(self) -> str:
        """The request: ``GET /items`` or ``websocket /ws``."""
        target: str = self.args[0]
        return target

    @property
    def detail(self) -> str:
        """What the app did."""
        detail: str = self.args[1]
        return detail

    def __str__(self) -> str:
        return (
            f"the app broke the ASGI protocol handling {self.target}: "
            f"{self.detail}. A server would drop the connection here; look at "
            "the app's handler (or the middleware around it)."
        )


class WebSocketDisconnect(LifespanError):
    """The app closed the websocket (``websocket.close``), or ended it.

    Raised by a :class:`~trio_lifespan.WebSocketSession` that waits for a
    message (or sends one) once the app has closed the session, and by
    :meth:`~trio_lifespan.LifespanClient.websocket_connect` when the app
    closes it before accepting. Catch it where the test expects the close;
    :attr:`code` says how it closed.

    Attributes:
        code (int): The close code (1000: normal; 1006: the app returned
            without closing).
        reason (str): The reason the app gave, or ``""``.
    """

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(code, reason)

    @property
    def code(self) -> int:
        """The close code."""
        code: int = self.args[0]
        return code

    @property
    def reason(self) -> str:
        """The reason the app gave, or ``""``."""
        reason: str = self.args[1]
        return reason

    def __str__(self) -> str:
        said = f" ({self.reason!r})" if self.reason else ""
        return (
            f"the app closed the websocket with code {self.code}{said}. Catch "
            "trio_lifespan.WebSocketDisconnect where the test expects the "
            "close; its .code is the close code."
        )


class WebSocketDenied(LifespanError):
    """The app refused a websocket handshake with an HTTP response.

    The app sent ``websocket.http.response.start`` (the ASGI websocket denial
    response) instead of accepting, as a server would send it to the
    browser.

    Attributes:
        status_code (int): The response's status.
        headers (list[tuple[bytes, bytes]]): The response's headers.
        body (bytes): The response's body.
    """

    def __init__(
        self, status_code: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        super().__init__(status_code, headers, body)

    @property
    def status_code(self) -> int:
        """The response's status."""
        status: int = self.args[0]
        return status

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response's headers."""
        headers: list[tuple[bytes, bytes]] = self.args[1]
        return headers

    @property
    def body(self) -> bytes:
        """The response's body."""
        body: bytes = self.args[2]
        return body

    def __str__(self) -> str:
        shown = self.body[:200].decode("utf-8", "replace")
        said = f": {shown!r}" if shown else ""
        return (
            f"the app refused the websocket handshake with a {self.status_code} "
            f"response{said}. Catch trio_lifespan.WebSocketDenied where the "
            "test expects the refusal; it has the status_code, headers and body."
        )


def describe_message(message: object) -> str:
    """Show a message the app sent, short enough for an error text."""
    if isinstance(message, Mapping):
        text = repr(dict(message))  # pyright: ignore[reportUnknownArgumentType]
    elif isinstance(message, str):
        text = repr(message)
    else:
        text = f"{type(message).__name__} {message!r}"
    return text if len(text) <= 200 else text[:197] + "..."


# The wording of the lifespan errors that the protocol decides on
# (:mod:`._protocol`): what each says lives here, with the errors; the
# protocol says only which one, and with what. Stages are named by their
# value (``Stage.value``: "startup", "running", ...).

_PROTOCOL_HINT = (
    "A lifespan app answers each 'lifespan.startup' and 'lifespan.shutdown' with "
    "exactly one '.complete' or '.failed' message (see the ASGI lifespan spec)."
)

_ASGI_HINT = (
    "An ASGI app is an async callable taking (scope, receive, send): "
    "`async def app(scope, receive, send)`, or an object whose `__call__` is one. "
    "A WSGI app needs an adapter (a2wsgi, for one); an ASGI 2 app, asgiref's "
    "guarantee_single_callable()."
)

_UNSUPPORTED_HINT = (
    "If the app should support lifespan, make it handle scope['type'] == "
    "'lifespan' (most frameworks do this for you); to run it anyway, pass "
    "allow_unsupported=True."
)

#: When a message came, by the stage it came in.
_WHEN: dict[str, str] = {
    "startup": "in reply to 'lifespan.startup'",
    "startup failed": "in reply to 'lifespan.startup'",
    "running": "after its startup had completed and before 'lifespan.shutdown' "
    "was sent",
    "crashed": "after its startup had completed and before 'lifespan.shutdown' "
    "was sent",
    "shutdown": "in reply to 'lifespan.shutdown'",
    "shutdown failed": "in reply to 'lifespan.shutdown'",
    "done": "after its shutdown had completed",
}

#: When the app's lifespan ended, by the stage it ended in.
_DURING: dict[str, str] = {
    "startup": "during its startup",
    "startup failed": "during its startup",
    "running": "while it was running",
    "crashed": "while it was running",
    "shutdown": "during its shutdown",
    "shutdown failed": "during its shutdown",
    "done": "after its shutdown had completed",
    "unsupported": "while it ran without lifespan support",
}


def not_a_message(message: object, expected: tuple[str, ...]) -> LifespanProtocolError:
    """The app sent something that is not an ASGI message."""
    return LifespanProtocolError(
        f"the app sent {describe_message(message)}, which is not an ASGI "
        "message: a mapping with a string 'type' such as "
        "{'type': 'lifespan.startup.complete'}. " + _PROTOCOL_HINT,
        message,
        expected,
    )


def report_not_text(
    message: object, text: object, expected: tuple[str, ...]
) -> LifespanProtocolError:
    """The app's '.failed' report has a 'message' that is not a string."""
    return LifespanProtocolError(
        f"the app sent {describe_message(message)}: its 'message' must "
        f"be a string, not {type(text).__name__}. " + _PROTOCOL_HINT,
        message,
        expected,
    )


def out_of_turn(
    message: object,
    kind: str,
    stage: str,
    expected: tuple[str, ...],
    *,
    reported: bool,
    lifespan_type: bool,
) -> LifespanProtocolError:
    """The app sent ``message`` (of type ``kind``) where it may not: in
    ``stage``, after its failure report (``reported``), or a type that is
    not a lifespan message's (``lifespan_type`` false)."""
    if reported:
        wanted = "nothing after its '.failed' report (it should return or raise)"
    elif expected:
        wanted = " or ".join(repr(t) for t in expected)
    elif stage == "running":
        wanted = "no message until 'lifespan.shutdown' is sent"
    else:
        wanted = "no further message"
    known = (
        ""
        if lifespan_type
        else f"{describe_message(kind)} is not a lifespan message type. "
    )
    return LifespanProtocolError(
        f"the app sent {describe_message(message)} {_WHEN[stage]}; "
        f"expected {wanted}. {known}{_PROTOCOL_HINT}",
        message,
        expected,
    )


def returned_before_shutdown() -> LifespanProtocolError:
    """The app's lifespan returned while it ran, before its shutdown."""
    return LifespanProtocolError(
        "the app's lifespan returned after 'lifespan.startup.complete' "
        "without waiting for 'lifespan.shutdown', so its shutdown never "
        "ran. A lifespan app keeps calling receive() until "
        "'lifespan.shutdown' arrives, then replies to it."
    )


def returned_unanswered(name: str, expected: tuple[str, ...]) -> LifespanProtocolError:
    """The app's lifespan returned during its ``name`` (startup, shutdown)
    without answering it."""
    return LifespanProtocolError(
        f"the app's lifespan returned during its {name} without sending "
        f"'lifespan.{name}.complete' or 'lifespan.{name}.failed'. " + _PROTOCOL_HINT,
        None,
        expected,
    )


def stray_cancellation(exc: BaseException, stage: str) -> LifespanCancelled:
    """The app's lifespan ended with a cancellation nobody asked for."""
    stray = LifespanCancelled(
        f"the app's lifespan ended with {type(exc).__name__}({exc}) "
        f"{_DURING[stage]}, but nobody cancelled it: something "
        "inside the app did (a cancel scope or task group in its "
        "lifespan, after a background task failed; or a future it "
        "awaited was cancelled). Look at the app's logs for the "
        "failure it lost. (Or something cancelled the app's task "
        "from outside: an event loop that is closing, as after a "
        "server's forced exit, cancels every task.)"
    )
    stray.__cause__ = exc
    return stray


def not_callable(exc: BaseException) -> LifespanNotASGIApp:
    """Calling the app as ``app(scope, receive, send)`` failed."""
    error = LifespanNotASGIApp(
        "the app could not be run: calling it as app(scope, receive, send) "
        f"failed with {type(exc).__name__}: {exc}. {_ASGI_HINT}"
    )
    error.__cause__ = exc
    return error


def sent_before_receiving(message: object) -> str:
    """What shows an app without lifespan support that sent first."""
    return (
        f"the app called send({describe_message(message)}) before its "
        "first receive(): it treats the lifespan scope like a request."
    )


def ended_before_receiving(exc: BaseException | None) -> str:
    """What shows an app without lifespan support that ended first."""
    if exc is None:
        return "the app returned without ever calling receive()"
    return f"the app raised {type(exc).__name__}({exc}) before its first receive()"


def not_supported(detail: str, cause: BaseException | None) -> LifespanNotSupported:
    """The app does not take part in the lifespan protocol: ``detail`` shows it."""
    error = LifespanNotSupported(
        f"{detail} So the app does not support the ASGI lifespan protocol. "
        + _UNSUPPORTED_HINT
    )
    error.__cause__ = cause
    return error


def also_raised(exc: BaseException) -> str:
    """The note for what the app raised as it was stopped, after its error."""
    return (
        "trio_lifespan: while it was being stopped, the app's lifespan "
        f"also raised {type(exc).__name__}: {exc}"
    )
