"""The lifespan exchange between a server and one app, without any I/O.

:class:`LifespanProtocol` decides every protocol question: which message may
come next, what each message from the app means, when the app has broken the
protocol, and what error the user sees. The trio driver and the asyncio shim
only move messages, keep time, and cancel tasks when this module says so. The
shape follows h11: the I/O layer feeds events in (``app_receive``,
``app_send``, ``app_exit``, ``time_out``) and reads the state back
(``waiting``, ``app_must_stop``, ``body_must_stop``, ``error``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, cast

from ._compat import BaseExceptionGroup, add_note
from ._errors import (
    LifespanCancelled,
    LifespanCrashed,
    LifespanNotASGIApp,
    LifespanNotSupported,
    LifespanProtocolError,
    LifespanShutdownFailed,
    LifespanStartupFailed,
    LifespanTimeout,
    Phase,
    describe_message,
)

ASGI_VERSIONS = {"version": "3.0", "spec_version": "2.0"}


class Stage(enum.Enum):
    """Where the exchange stands."""

    IDLE = "idle"  # nothing sent yet
    STARTUP = "startup"  # 'lifespan.startup' sent, its reply awaited
    RUNNING = "running"  # startup completed, shutdown not sent yet
    SHUTDOWN = "shutdown"  # 'lifespan.shutdown' sent, its reply awaited
    DONE = "done"  # shutdown completed
    UNSUPPORTED = "unsupported"  # the app has no lifespan and that is allowed
    ABANDONED = "abandoned"  # the server gave up waiting (it was cancelled)


# Module-level names for the stages: looking a member up on an Enum class
# costs ten times a global's lookup, and the drivers ask on every message.
_IDLE = Stage.IDLE
_STARTUP = Stage.STARTUP
_RUNNING = Stage.RUNNING
_SHUTDOWN = Stage.SHUTDOWN
_DONE = Stage.DONE
_UNSUPPORTED = Stage.UNSUPPORTED
_ABANDONED = Stage.ABANDONED

_REPLIES: dict[str, tuple[Stage, str]] = {
    "lifespan.startup.complete": (_STARTUP, "complete"),
    "lifespan.startup.failed": (_STARTUP, "failed"),
    "lifespan.shutdown.complete": (_SHUTDOWN, "complete"),
    "lifespan.shutdown.failed": (_SHUTDOWN, "failed"),
}

# Sent unasked while running, it reports a crash: Starlette and FastAPI do
# this when their lifespan dies after startup, and uvicorn accepts it.
_CRASH_REPORT = "lifespan.shutdown.failed"

_EXPECTED: dict[Stage, tuple[str, ...]] = {
    _STARTUP: ("lifespan.startup.complete", "lifespan.startup.failed"),
    _SHUTDOWN: ("lifespan.shutdown.complete", "lifespan.shutdown.failed"),
}

_WHEN: dict[Stage, str] = {
    _STARTUP: "in reply to 'lifespan.startup'",
    _RUNNING: "after its startup had completed and before 'lifespan.shutdown' was sent",
    _SHUTDOWN: "in reply to 'lifespan.shutdown'",
    _DONE: "after its shutdown had completed",
}

_DURING: dict[Stage, str] = {
    _STARTUP: "during its startup",
    _RUNNING: "while it was running",
    _SHUTDOWN: "during its shutdown",
    _DONE: "after its shutdown had completed",
    _UNSUPPORTED: "while it ran without lifespan support",
}

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


def unwrap_single(exc: BaseException | None) -> BaseException | None:
    """The one exception inside a group of one (at any depth), or ``exc``.

    An app whose task group or nursery saw one failure raises a group of one;
    the user gets the exception that matters, the very object the app raised.
    """
    while isinstance(exc, BaseExceptionGroup):
        members = cast("tuple[BaseException, ...]", exc.exceptions)
        if len(members) != 1:
            break
        exc = members[0]
    return exc  # pyright: ignore[reportUnknownVariableType]


def only_cancellations(
    exc: BaseException | None,
    cancelled: type[BaseException] | tuple[type[BaseException], ...],
) -> bool:
    """Whether ``exc`` is a cancellation, or a group made only of them.

    A body with a nursery or task group open turns one cancellation into a
    group of them: it is still just the cancellation. ``cancelled`` may name
    several types (as ``isinstance`` takes them).
    """
    if isinstance(exc, BaseExceptionGroup):
        members = cast(
            "tuple[BaseException, ...]",
            exc.exceptions,  # pyright: ignore[reportUnknownMemberType]
        )
        return all(only_cancellations(member, cancelled) for member in members)
    return isinstance(exc, cancelled)


def _is_traceback_of(report: str, exc: BaseException) -> bool:
    """Whether the app's report is a formatted traceback that shows ``exc``.

    Starlette, FastAPI and Litestar send ``traceback.format_exc()`` with their
    '.failed' report, then re-raise (from a task group: a group around it):
    as a note, it would print the traceback a second time under the
    exception.
    """
    text = str(exc)
    shown = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    first = report.partition("\n")[0]
    return first.endswith("Traceback (most recent call last):") and shown in report


def cancel_reason(error: BaseException) -> str:
    """Why we cancel the ``async with`` body: the app's failure, named."""
    return f"trio_lifespan: the app's lifespan failed: {type(error).__name__}: {error}"


def _fields(message: object) -> Mapping[str, object] | None:
    """``message`` as a mapping, or ``None`` when it is not one."""
    # A dict first: the common case, without the ABC check.
    if message.__class__ is dict or isinstance(message, Mapping):
        return cast("Mapping[str, object]", message)
    return None


def raised_by_the_call(exc: BaseException | None, depth: int = 1) -> bool:
    """Whether ``exc`` came from calling the app, before any of its code ran.

    Pass what the I/O layer caught around ``await app(scope, receive, send)``,
    and ``depth``, how many frames of ours the traceback holds down to the one
    that made the call: then an exception whose traceback ends in that frame
    came from the call or the ``await`` themselves (wrong arguments, nothing
    to await), not from inside the app.
    """
    if not isinstance(exc, TypeError):
        return False
    frames = 0
    tb = exc.__traceback__
    while tb is not None:
        frames += 1
        tb = tb.tb_next
    return frames == depth


def lifespan_scope(state: dict[str, Any]) -> dict[str, Any]:
    """The scope an app's lifespan is called with."""
    return {"type": "lifespan", "asgi": dict(ASGI_VERSIONS), "state": state}


class LifespanProtocol:
    """The state of one app's lifespan exchange.

    Args:
        allow_unsupported: Whether an app without lifespan support is let
            through (``Stage.UNSUPPORTED``) instead of being an error.
    """

    __slots__ = (
        "_allow_unsupported",
        "app_done",
        "error",
        "received",
        "report",
        "stage",
    )

    def __init__(self, *, allow_unsupported: bool = False) -> None:
        self._allow_unsupported = allow_unsupported
        self.stage = _IDLE
        #: The app has called ``receive()`` at least once.
        self.received = False
        #: The app's lifespan call has returned or raised.
        self.app_done = False
        #: The message of a '.failed' report the app sent in this stage.
        self.report: str | None = None
        #: The error the user will see; set once, then only notes are added.
        self.error: BaseException | None = None

    # What the I/O layer reads back -------------------------------------------

    @property
    def waiting(self) -> bool:
        """Whether the driver still waits for the app's answer to this stage."""
        stage = self.stage
        return self.error is None and (stage is _STARTUP or stage is _SHUTDOWN)

    @property
    def app_rejected(self) -> bool:
        """Whether the app is out of the exchange: it failed, has no lifespan,
        or the server gave up on it."""
        stage = self.stage
        return self.error is not None or stage is _UNSUPPORTED or stage is _ABANDONED

    @property
    def app_must_stop(self) -> bool:
        """Whether the app's lifespan task should be cancelled now.

        After a '.failed' report too: an app that raises straight after it
        still raises (cancellation only lands at its next await), one that
        lingers is not waited out. Not after its shutdown completed: it is
        about to return, and the driver cancels it on leaving if it has not
        (cancelling costs, and nearly every app returns).
        """
        return self.report is not None or self.app_rejected

    @property
    def body_must_stop(self) -> bool:
        """Whether the ``async with`` body must be cancelled: the app failed."""
        return self.error is not None and self.stage is _RUNNING

    @property
    def running(self) -> bool:
        """Whether startup completed and shutdown is still to be sent.

        Not once the app reported a crash: it is on its way out.
        """
        return self.error is None and self.stage is _RUNNING and self.report is None

    @property
    def serving(self) -> bool:
        """Whether the ``async with`` body may run: the startup completed (or
        the app has no lifespan and that is allowed) and nothing failed."""
        return self.running or (self.error is None and self.stage is _UNSUPPORTED)

    # What the driver does ----------------------------------------------------

    def begin_startup(self) -> dict[str, Any]:
        """Start the exchange; returns the message to deliver to the app."""
        assert self.stage is _IDLE, self.stage
        self.stage = _STARTUP
        return {"type": "lifespan.startup"}

    def begin_shutdown(self) -> dict[str, Any] | None:
        """Begin the shutdown; returns the message to deliver to the app.

        Returns ``None`` when there is nobody to deliver it to: the app's
        lifespan already returned, which is then the error.
        """
        assert self.running, (self.stage, self.error)
        if self.app_done:
            self.error = LifespanProtocolError(
                "the app's lifespan returned after 'lifespan.startup.complete' "
                "without waiting for 'lifespan.shutdown', so its shutdown never "
                "ran. A lifespan app keeps calling receive() until "
                "'lifespan.shutdown' arrives, then replies to it."
            )
            return None
        self.stage = _SHUTDOWN
        self.report = None
        return {"type": "lifespan.shutdown"}

    def abandon(self) -> None:
        """The driver stops waiting for the app: it was itself cancelled.

        The app is stopped. How it ends is no longer a protocol question,
        except that an exception it raises while stopping still comes out.
        """
        self.stage = _ABANDONED

    def time_out(self, timeout: float, *, app_cancelled: bool = False) -> None:
        """The driver's time limit for this stage ran out.

        A limit that runs out just after the answer came (in the same turn of
        the event loop) changes nothing, unless it already cancelled the app
        (``app_cancelled``: a trio deadline does that by itself) after its
        startup: then the app is gone, and the startup's limit is why.
        """
        if self.waiting:
            phase: Phase = "startup" if self.stage is _STARTUP else "shutdown"
            self.error = LifespanTimeout(phase, timeout)
        elif app_cancelled and self.running:
            self.error = LifespanTimeout("startup", timeout)

    # What the app does -------------------------------------------------------

    def app_receive(self) -> bool:
        """The app called ``receive()``.

        Returns:
            Whether the app may wait for its next message. ``False`` means the
            exchange is over for the app (it failed, or it lingers after its
            shutdown) and the I/O layer must stop it.
        """
        self.received = True
        if self.report is not None and self.error is None:
            # It reported a failure and then waits on instead of returning.
            self.error = self._reported_failure()
        return not self.app_must_stop and self.stage is not _DONE

    def app_send(self, message: object) -> bool:
        """The app called ``send(message)``.

        Returns:
            Whether the app is still in the exchange. ``False`` means it is out
            (it broke the protocol, has no lifespan, or was given up on) and
            is being stopped: the I/O layer lets the cancellation in.
        """
        if self.app_rejected:
            return False  # already decided; the app is being stopped
        if not self.received:
            self._unsupported(
                f"the app called send({describe_message(message)}) before its "
                "first receive(): it treats the lifespan scope like a request.",
                cause=None,
            )
            return False
        error = self._take(message)
        if error is not None:
            self.error = error
            return False
        return True

    def _take(self, message: object) -> LifespanProtocolError | None:
        """Act on a message from the app, or say what is wrong with it."""
        fields = _fields(message)
        kind = fields.get("type") if fields is not None else None
        if fields is None or not isinstance(kind, str):
            return LifespanProtocolError(
                f"the app sent {describe_message(message)}, which is not an ASGI "
                "message: a mapping with a string 'type' such as "
                "{'type': 'lifespan.startup.complete'}. " + _PROTOCOL_HINT,
                message,
                _EXPECTED.get(self.stage, ()),
            )
        reply = _REPLIES.get(kind)
        stage = self.stage
        if (
            reply is None
            or self.report is not None
            or (
                reply[0] is not stage
                and not (stage is _RUNNING and kind == _CRASH_REPORT)
            )
        ):
            return self._unexpected(message, kind)
        if reply[1] == "complete":
            self.stage = _RUNNING if self.stage is _STARTUP else _DONE
            return None
        text = fields.get("message", "")
        if not isinstance(text, str):
            return LifespanProtocolError(
                f"the app sent {describe_message(message)}: its 'message' must be "
                f"a string, not {type(text).__name__}. " + _PROTOCOL_HINT,
                message,
                _EXPECTED.get(stage, ()),
            )
        self.report = text
        return None

    def app_exit(
        self,
        exc: BaseException | None,
        *,
        at_call: bool = False,
        cancelled: bool = False,
    ) -> None:
        """The app's lifespan call ended.

        Args:
            exc: What it raised, or ``None`` when it returned or was cancelled
                by the I/O layer (which absorbs its own cancellation).
            at_call: ``exc`` came from calling the app, before any of its code
                ran (see :func:`raised_by_the_call`): it is not an ASGI app.
            cancelled: ``exc`` is the event loop's cancellation, which the I/O
                layer did not ask for: something inside the app cancelled it.
        """
        self.app_done = True
        if cancelled and self.error is None and self.stage is not _ABANDONED:
            assert exc is not None
            stray = LifespanCancelled(
                f"the app's lifespan ended with {type(exc).__name__}({exc}) "
                f"{_DURING[self.stage]}, but nobody cancelled it: something "
                "inside the app did (a cancel scope or task group in its "
                "lifespan, after a background task failed; or a future it "
                "awaited was cancelled). Look at the app's logs for the "
                "failure it lost."
            )
            stray.__cause__ = exc
            self.error = stray
            return
        if at_call and self.error is None:
            assert exc is not None
            error = LifespanNotASGIApp(
                "the app could not be run: calling it as app(scope, receive, send) "
                f"failed with {type(exc).__name__}: {exc}. {_ASGI_HINT}"
            )
            error.__cause__ = exc
            self.error = error
            return
        exc = unwrap_single(exc)
        if self.error is not None:
            if exc is not None and exc is not self.error:
                add_note(
                    self.error,
                    "trio_lifespan: while it was being stopped, the app's lifespan "
                    f"also raised {type(exc).__name__}: {exc}",
                )
            return
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            # Ctrl-C or an exit, whenever it came: never a lifespan verdict.
            self.error = exc
            return
        if self.stage is _UNSUPPORTED:
            return  # its exceptions are what 'unsupported' looks like
        if self.stage is _ABANDONED:
            self.error = exc
            return
        if not self.received:
            if exc is None:
                detail = "the app returned without ever calling receive()"
            else:
                detail = (
                    f"the app raised {type(exc).__name__}({exc}) before its first "
                    "receive()"
                )
            self._unsupported(detail + ".", cause=exc)
        elif (
            self.stage is _STARTUP or self.stage is _SHUTDOWN or self.report is not None
        ):
            # In reply to a stage, or after a crash report while running.
            if exc is not None:
                if self.report and not _is_traceback_of(self.report, exc):
                    add_note(exc, self.report)
                self.error = exc
            elif self.report is not None:
                self.error = self._reported_failure()
            else:
                name = self.stage.value
                self.error = LifespanProtocolError(
                    f"the app's lifespan returned during its {name} without sending "
                    f"'lifespan.{name}.complete' or 'lifespan.{name}.failed'. "
                    + _PROTOCOL_HINT,
                    None,
                    _EXPECTED[self.stage],
                )
        elif exc is not None:
            # Raised while running, or after its shutdown completed; a return
            # while running is noticed when the shutdown begins.
            self.error = exc

    # Helpers -----------------------------------------------------------------

    def _reported_failure(self) -> BaseException:
        assert self.report is not None
        if self.stage is _STARTUP:
            return LifespanStartupFailed(self.report)
        if self.stage is _RUNNING:
            return LifespanCrashed(self.report)
        return LifespanShutdownFailed(self.report)

    def _unexpected(self, message: object, kind: str) -> LifespanProtocolError:
        expected = () if self.report is not None else _EXPECTED.get(self.stage, ())
        if self.report is not None:
            wanted = "nothing after its '.failed' report (it should return or raise)"
        elif expected:
            wanted = " or ".join(repr(t) for t in expected)
        elif self.stage is _RUNNING:
            wanted = "no message until 'lifespan.shutdown' is sent"
        else:
            wanted = "no further message"
        known = (
            ""
            if kind in _REPLIES
            else f"{describe_message(kind)} is not a lifespan message type. "
        )
        return LifespanProtocolError(
            f"the app sent {describe_message(message)} {_WHEN[self.stage]}; "
            f"expected {wanted}. {known}{_PROTOCOL_HINT}",
            message,
            expected,
        )

    def _unsupported(self, detail: str, cause: BaseException | None) -> None:
        if self._allow_unsupported:
            self.stage = _UNSUPPORTED
            return
        error = LifespanNotSupported(
            f"{detail} So the app does not support the ASGI lifespan protocol. "
            + _UNSUPPORTED_HINT
        )
        error.__cause__ = cause
        self.error = error


def interruption(exc: BaseException, raised: BaseException | None) -> BaseException:
    """What to raise when ``exc`` interrupted the wait for apps to end.

    A ``KeyboardInterrupt`` that reaches a trio nursery while it waits comes
    out of it in a group of one: the one is what matters. It wins over
    ``raised``, what the body raised (Ctrl-C must stop the program), which
    becomes its ``__context__`` rather than being lost.
    """
    one = unwrap_single(exc)
    assert one is not None
    if raised is not None and one.__context__ is None:
        one.__context__ = raised
    return one


def combine(
    raised: BaseException | None,
    error: BaseException | None,
    *,
    raised_is_cancel: bool,
) -> BaseException | None:
    """Decide the one exception that leaves ``open_lifespan``.

    Args:
        raised: What the ``async with`` body raised, or what interrupted the
            driver (a cancellation or ``KeyboardInterrupt``).
        error: The lifespan's own error, from :attr:`LifespanProtocol.error`.
        raised_is_cancel: Whether ``raised`` is the event loop's cancellation.

    Returns:
        The exception to raise, or ``None``. The body's exception wins and
        carries the lifespan error as a note, unless that error is a
        ``KeyboardInterrupt`` or ``SystemExit``; a cancellation gives way to the
        lifespan error (the cancellation is delivered again at the next
        checkpoint, the error would otherwise be lost).
    """
    if raised is None or error is None:
        return raised if error is None else error
    if raised_is_cancel:
        return error
    if isinstance(error, (KeyboardInterrupt, SystemExit)):
        # Ctrl-C (or an exit) from the app wins, as a Ctrl-C anywhere else
        # does; the body's exception is its context.
        return interruption(error, raised)
    add_note(
        raised,
        "trio_lifespan: the app's lifespan failed too, after this exception: "
        + _describe(error),
    )
    return raised


def _describe(error: BaseException) -> str:
    """``Type: message``; for a group, each of its members too."""
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, BaseExceptionGroup):
        members = cast(
            "tuple[BaseException, ...]",
            error.exceptions,  # pyright: ignore[reportUnknownMemberType]
        )
        text += " (" + "; ".join(map(_describe, members)) + ")"
    return text


def combine_many(
    raised: BaseException | None,
    errors: list[BaseException],
    *,
    raised_is_cancel: bool,
) -> BaseException | None:
    """Like :func:`combine`, for several lifespans' errors.

    One error stands for itself; several independent ones become one group,
    in the order they happened.
    """
    if len(errors) > 1:
        return combine(
            raised,
            BaseExceptionGroup(f"{len(errors)} lifespans failed", errors),
            raised_is_cancel=raised_is_cancel,
        )
    return combine(
        raised, errors[0] if errors else None, raised_is_cancel=raised_is_cancel
    )
