"""The lifespan exchange between a server and apps, without any I/O.

Theory of operation
-------------------

:class:`LifespanProtocol` decides every question about one app's lifespan:
which message may come next, what each message from the app means, when the
app has broken the protocol, what must be stopped, and which one exception
leaves ``open_lifespan``. The trio driver and the asyncio shim only move
messages, keep time and cancel tasks. The shape follows h11: the I/O layer
feeds each event in (the app receives, sends or ends; a deadline passes; the
body starts, ends or is interrupted) and gets back, as the event's return
value, what it must do now: a set of :data:`Do` flags, which each driver
applies in one place. No driver reads the protocol's state to decide.

The stages, and what moves the app between them (``_MOVES`` is the table of
the app's messages)::

    IDLE --begin_startup--> STARTUP --startup.complete--> RUNNING
                               |--startup.failed--> STARTUP_FAILED
    RUNNING --shutdown.failed (unasked)--> CRASHED
    RUNNING --begin_shutdown--> SHUTDOWN --shutdown.complete--> DONE
                                   |--shutdown.failed--> SHUTDOWN_FAILED
    STARTUP --app has no lifespan, allowed--> UNSUPPORTED
    any --we were interrupted while waiting--> ABANDONED

A reported failure is a stage of its own: the app is stopped, and what it
does next (raise, return, wait on) decides the error. :attr:`error` is set
once, then only gets notes.

:class:`LifespansProtocol` decides the same for a group of lifespans held
by tasks of their own (``open_lifespans``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any, cast

from ._compat import add_note
from ._errors import (
    LifespanCancelled,
    LifespanCrashed,
    LifespanNotASGIApp,
    LifespanNotSupported,
    LifespanProtocolError,
    LifespanShutdownFailed,
    LifespanStartupFailed,
    LifespanTimeout,
    LifespanUnavailable,
    describe_message,
)
from ._exceptions import (
    combine,
    combine_many,
    interruption,
    only_cancellations,
    unwrap_single,
)

ASGI_VERSIONS = {"version": "3.0", "spec_version": "2.0"}

# What the I/O layer must do now: flags, combined with ``|``, returned by
# every event (plain ints: an enum.Flag costs a microsecond per ``|``).
#: Cancel the app's task: it is out of the exchange (once).
STOP_APP = 1
#: Cancel the ``async with`` body: the app failed while it ran (once).
STOP_BODY = 2
#: This stage has its answer: wake the task that waits for it (once a stage).
ANSWERED = 4
#: The startup is answered: its time limit ends now, in the app's step.
END_DEADLINE = 8
#: The lifespan has failed: refuse requests through the app from now on.
REFUSE = 16
#: (``app_receive``, ``app_send``) The app is out: park it until it is
#: stopped, deliver nothing, take nothing.
PARK = 32
#: (``app_send``) A failure report: if the stage's deadline had already
#: cancelled the app, say so (:meth:`LifespanProtocol.deadline_passed`).
CHECK_DEADLINE = 64
#: (``begin_shutdown``) No shutdown to send (the app has no lifespan, or it
#: failed): exit still yields to the event loop once.
CHECKPOINT = 128
#: (``LifespansProtocol``) Every app has started, or one failed: the entry
#: may go on.
READY = 256
#: (``LifespansProtocol``) Something failed: stop every holder (once).
STOP_HOLDERS = 512
#: (``begin_shutdown``) The shutdown is graceful: the body raised or was
#: cancelled, so the wait for it is shielded from cancellation (bounded by
#: its time limit; only a Ctrl-C cuts it short). Otherwise a cancellation
#: cuts it short, as asgi-lifespan's does.
GRACEFUL = 1024
#: (``startup_over``) The body may run, and runs from now on.
BODY = 2048
#: (``startup_over``) ... and requests through the app carry its state (the
#: app takes part in the lifespan protocol).
WITH_STATE = 4096

Do = int  # a set of the flags above


class Stage(enum.Enum):
    """Where one app's exchange stands."""

    # Hashed by identity: the decisions look stages up in sets and tables on
    # every message, and Enum's own __hash__ is a Python-level call.
    __hash__ = object.__hash__

    IDLE = "idle"  # nothing sent yet
    STARTUP = "startup"  # 'lifespan.startup' sent, its reply awaited
    STARTUP_FAILED = "startup failed"  # it reported so; being stopped
    RUNNING = "running"  # startup completed, shutdown not sent yet
    CRASHED = "crashed"  # it reported a failure while running
    SHUTDOWN = "shutdown"  # 'lifespan.shutdown' sent, its reply awaited
    SHUTDOWN_FAILED = "shutdown failed"  # it reported so; being stopped
    DONE = "done"  # shutdown completed
    UNSUPPORTED = "unsupported"  # the app has no lifespan and that is allowed
    ABANDONED = "abandoned"  # the server gave up waiting (it was interrupted)


# Module-level names for the stages: looking a member up on an Enum class
# costs ten times a global's lookup, and the drivers ask on every message.
_IDLE = Stage.IDLE
_STARTUP = Stage.STARTUP
_STARTUP_FAILED = Stage.STARTUP_FAILED
_RUNNING = Stage.RUNNING
_CRASHED = Stage.CRASHED
_SHUTDOWN = Stage.SHUTDOWN
_SHUTDOWN_FAILED = Stage.SHUTDOWN_FAILED
_DONE = Stage.DONE
_UNSUPPORTED = Stage.UNSUPPORTED
_ABANDONED = Stage.ABANDONED

#: The app's messages: (stage, message type) -> the stage it moves to. A
#: '.failed' sent unasked while running reports a crash: Starlette and
#: FastAPI send it when their lifespan dies after startup, and uvicorn
#: accepts it. Every other pair breaks the protocol.
_MOVES: dict[tuple[Stage, str], Stage] = {
    (_STARTUP, "lifespan.startup.complete"): _RUNNING,
    (_STARTUP, "lifespan.startup.failed"): _STARTUP_FAILED,
    (_RUNNING, "lifespan.shutdown.failed"): _CRASHED,
    (_SHUTDOWN, "lifespan.shutdown.complete"): _DONE,
    (_SHUTDOWN, "lifespan.shutdown.failed"): _SHUTDOWN_FAILED,
}

#: The reported failures, and the error each becomes.
_REPORTED: dict[Stage, type[LifespanStartupFailed | LifespanShutdownFailed]] = {
    _STARTUP_FAILED: LifespanStartupFailed,
    _CRASHED: LifespanCrashed,
    _SHUTDOWN_FAILED: LifespanShutdownFailed,
}

#: Stages in which the app is out of the exchange, and is stopped.
_OUT = frozenset(
    {_STARTUP_FAILED, _CRASHED, _SHUTDOWN_FAILED, _UNSUPPORTED, _ABANDONED}
)

#: Stages that answer the stage the driver waits on.
_ANSWERS = frozenset({_RUNNING, _DONE, _UNSUPPORTED, _ABANDONED})

_LIFESPAN_TYPES = frozenset(
    {
        "lifespan.startup.complete",
        "lifespan.startup.failed",
        "lifespan.shutdown.complete",
        "lifespan.shutdown.failed",
    }
)

_EXPECTED: dict[Stage, tuple[str, ...]] = {
    _STARTUP: ("lifespan.startup.complete", "lifespan.startup.failed"),
    _SHUTDOWN: ("lifespan.shutdown.complete", "lifespan.shutdown.failed"),
}

_WHEN: dict[Stage, str] = {
    _STARTUP: "in reply to 'lifespan.startup'",
    _STARTUP_FAILED: "in reply to 'lifespan.startup'",
    _RUNNING: "after its startup had completed and before 'lifespan.shutdown' was sent",
    _CRASHED: "after its startup had completed and before 'lifespan.shutdown' was sent",
    _SHUTDOWN: "in reply to 'lifespan.shutdown'",
    _SHUTDOWN_FAILED: "in reply to 'lifespan.shutdown'",
    _DONE: "after its shutdown had completed",
}

_DURING: dict[Stage, str] = {
    _STARTUP: "during its startup",
    _STARTUP_FAILED: "during its startup",
    _RUNNING: "while it was running",
    _CRASHED: "while it was running",
    _SHUTDOWN: "during its shutdown",
    _SHUTDOWN_FAILED: "during its shutdown",
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


def raised_by_the_call(exc: BaseException | None) -> bool:
    """Whether ``exc`` came from calling the app, before any of its code ran.

    Pass what the I/O layer caught around ``await app(scope, receive, send)``
    in the frame that made the call (both drivers see a traceback that starts
    there): then an exception whose traceback ends in that frame came from the
    call or the ``await`` themselves (wrong arguments, nothing to await), not
    from inside the app.
    """
    return (
        isinstance(exc, TypeError)
        and exc.__traceback__ is not None
        and exc.__traceback__.tb_next is None
    )


def lifespan_scope(state: dict[str, Any]) -> dict[str, Any]:
    """The scope an app's lifespan is called with."""
    return {"type": "lifespan", "asgi": dict(ASGI_VERSIONS), "state": state}


class LifespanProtocol:
    """The state of one app's lifespan exchange, and every decision about it.

    Args:
        cancelled: The event loop's cancellation exception
            (``trio.Cancelled``, ``asyncio.CancelledError``): a body that
            raises only that, after we stopped it, raised nothing of its own.
        allow_unsupported: Whether an app without lifespan support is let
            through (``Stage.UNSUPPORTED``) instead of being an error.
    """

    __slots__ = (
        "_allow_unsupported",
        "_answer_due",
        "_app_stopped",
        "_body_stopped",
        "_ctrl_c",
        "_gives_way",
        "_refused",
        "app_done",
        "error",
        "in_body",
        "raised",
        "received",
        "report",
        "stage",
    )

    def __init__(
        self, cancelled: type[BaseException], *, allow_unsupported: bool = False
    ) -> None:
        self._allow_unsupported = allow_unsupported
        self._gives_way = (cancelled, LifespanUnavailable)
        self.stage = _IDLE
        #: The app has called ``receive()`` at least once.
        self.received = False
        #: The app's lifespan call has returned or raised.
        self.app_done = False
        #: The message of the '.failed' report the app sent, if it did.
        self.report: str | None = None
        #: The lifespan's error; set once, then only notes are added.
        self.error: BaseException | None = None
        #: The ``async with`` body runs.
        self.in_body = False
        #: What the body raised (less our cancellation), or what interrupted
        #: the driver while it waited.
        self.raised: BaseException | None = None
        # What was decided already (each decision is made once).
        self._answer_due = False  # a task waits for this stage's answer
        self._app_stopped = False
        self._body_stopped = False
        self._ctrl_c = False  # what interrupted us is a Ctrl-C (it wins)
        self._refused = False

    # Answers to the driver ------------------------------------------------------

    @property
    def serving(self) -> bool:
        """Whether the ``async with`` body may run: the startup completed (or
        the app has no lifespan and that is allowed), nothing failed and
        nothing interrupted us."""
        stage = self.stage
        return (
            self.error is None
            and self.raised is None
            and (stage is _RUNNING or stage is _UNSUPPORTED)
        )

    def outcome(self) -> BaseException | None:
        """The one exception that leaves, or ``None``.

        The body's exception wins and carries the lifespan's error as a note;
        a cancellation, or a request refused because of that error, gives way
        to the error; a Ctrl-C or exit from the app wins over the body's
        exception. See :func:`._exceptions.combine`.
        """
        raised = self.raised
        error = self.error
        if raised is None:
            return error
        return combine(
            raised,
            error,
            raised_gives_way=not self._ctrl_c
            and only_cancellations(raised, self._gives_way),
        )

    # The driver's events ----------------------------------------------------------

    def begin_startup(self) -> dict[str, Any]:
        """Start the exchange; returns the message to deliver to the app."""
        assert self.stage is _IDLE, self.stage
        self.stage = _STARTUP
        self._answer_due = True
        return {"type": "lifespan.startup"}

    def startup_over(self) -> Do:
        """The wait for the startup's answer is over: may the body run?

        Returns:
            ``BODY`` when it may (it runs from now on), with ``WITH_STATE``
            when requests carry the app's state; nothing when the startup
            failed or we were interrupted (the driver then shuts down and
            leaves).
        """
        if not self.serving:
            return 0
        self.in_body = True
        return BODY | WITH_STATE if self.stage is _RUNNING else BODY

    def body_ended(
        self, exc: BaseException | None, *, ours: bool, ctrl_c: bool = False
    ) -> None:
        """The body ended, raising ``exc`` (or nothing).

        Args:
            exc: What it raised.
            ours: Whether a cancellation in ``exc`` can only be the one we
                asked for when the app failed (on asyncio, no other request
                to cancel the task is pending). Then it raised nothing of its
                own: the app's failure is what comes out.
            ctrl_c: The cancellation in ``exc`` is a Ctrl-C (``asyncio.run``
                turns one into a cancellation, and raises KeyboardInterrupt
                only if it comes out): it wins over a lifespan error, which
                it carries as a note, as a KeyboardInterrupt does on trio.
        """
        self.in_body = False
        self._ctrl_c = ctrl_c
        if (
            exc is not None
            and ours
            and self._body_stopped
            and only_cancellations(exc, self._gives_way[0])
        ):
            return
        self.raised = exc

    def begin_shutdown(self) -> tuple[dict[str, Any] | None, Do]:
        """The shutdown is due: the message to deliver to the app, if any.

        Returns:
            ``(message, do)``; ``GRACEFUL`` with a message after the body
            raised or was cancelled. No message when no shutdown is due: the startup
            did not complete (the error says why), the app has no lifespan
            (``CHECKPOINT``: exit still yields once), or its lifespan
            returned already, which is then the error.
        """
        stage = self.stage
        if stage is not _RUNNING or self.error is not None:
            idle = self.error is None and stage is not _ABANDONED
            return None, CHECKPOINT if idle else 0
        if self.app_done:
            self.error = LifespanProtocolError(
                "the app's lifespan returned after 'lifespan.startup.complete' "
                "without waiting for 'lifespan.shutdown', so its shutdown never "
                "ran. A lifespan app keeps calling receive() until "
                "'lifespan.shutdown' arrives, then replies to it."
            )
            return None, self._decide()
        self.stage = _SHUTDOWN
        self._answer_due = True
        return {"type": "lifespan.shutdown"}, 0 if self.raised is None else GRACEFUL

    def finishing(self) -> Do:
        """The driver is about to wait for the app's task to end.

        ``STOP_APP`` if it still runs (it lingers after its shutdown): no
        task of ours outlives ``open_lifespan``.
        """
        if self.app_done or self._app_stopped:
            return 0
        self._app_stopped = True
        return STOP_APP

    def interrupted(self, exc: BaseException, *, ctrl_c: bool = False) -> Do:
        """A cancellation or Ctrl-C interrupted the wait for the app's answer.

        A cancellation that arrives as the startup completes (in the same
        turn of the event loop) is kept for after the graceful shutdown, as a
        cancellation of the body would be. Anything else: the app is
        stopped, and the interruption comes out (the body's exception, if
        any, as its context). ``ctrl_c``: the cancellation is a Ctrl-C (see
        :meth:`body_ended`), which an error the app raises as it stops does
        not replace.
        """
        self._ctrl_c = self._ctrl_c or ctrl_c
        if (
            self.stage is _RUNNING
            and self.error is None
            and isinstance(exc, self._gives_way[0])
        ):
            self.raised = exc
            return 0
        self.raised = interruption(exc, self.raised)
        self.stage = _ABANDONED
        return self._decide()

    def interrupted_finishing(self, exc: BaseException, *, wins: bool) -> None:
        """Something interrupted the wait for the app's task to end.

        Args:
            exc: The interruption (on trio a nursery may put it in a group of
                one).
            wins: Whether it wins over the body's exception: Ctrl-C does (on
                asyncio, a cancellation that is not Ctrl-C gives way).
        """
        if wins or self.raised is None:
            self.raised = interruption(exc, self.raised)
        self._ctrl_c = self._ctrl_c or wins

    def time_out(self, timeout: float, *, app_cancelled: bool = False) -> Do:
        """The driver's time limit for this stage ran out.

        A limit that runs out just after the answer came (in the same turn of
        the event loop) changes nothing, unless it already cancelled the app
        (``app_cancelled``: a trio deadline does that by itself) after its
        startup: then the app is gone, and the startup's limit is why.
        """
        stage = self.stage
        if self.error is None:
            if stage is _STARTUP or stage is _STARTUP_FAILED:
                self.error = LifespanTimeout("startup", timeout)
            elif stage is _SHUTDOWN or stage is _SHUTDOWN_FAILED:
                self.error = LifespanTimeout("shutdown", timeout)
            elif app_cancelled and stage is _RUNNING:
                self.error = LifespanTimeout("startup", timeout)
        return self._decide()

    def deadline_passed(self, timeout: float) -> Do:
        """The stage's deadline cancelled the app (trio: its scope did).

        Whatever the app reports while being cancelled (frameworks answer the
        cancellation with '.failed'), it is the timeout.
        """
        return self.time_out(timeout, app_cancelled=True)

    # The app's events ----------------------------------------------------------------

    def app_receive(self) -> Do:
        """The app called ``receive()``.

        Returns:
            What to do; with ``PARK``, the exchange is over for the app (it
            failed, or it lingers after its shutdown): deliver nothing.
        """
        self.received = True
        stage = self.stage
        if self.error is None and stage in _REPORTED:
            # It reported a failure and then waits on instead of returning.
            self.error = self._reported_failure()
        do = self._decide()
        if self._app_stopped or stage is _DONE:
            do |= PARK
        return do

    def app_send(self, message: object) -> Do:
        """The app called ``send(message)``.

        Returns:
            What to do; with ``PARK``, the app is out (it broke the protocol,
            has no lifespan, or was given up on): let the cancellation in.
        """
        stage = self.stage
        if self.error is not None or stage is _UNSUPPORTED or stage is _ABANDONED:
            return PARK  # already decided; the app is being stopped
        if not self.received:
            self._unsupported(
                f"the app called send({describe_message(message)}) before its "
                "first receive(): it treats the lifespan scope like a request.",
                cause=None,
            )
            return self._decide() | PARK
        error = self._take(message)
        if error is not None:
            self.error = error
            return self._decide() | PARK
        do = self._decide()
        if self.stage in _REPORTED:
            do |= CHECK_DEADLINE
        return do

    def _take(self, message: object) -> LifespanProtocolError | None:
        """Move on the app's message, or say what is wrong with it."""
        fields = _fields(message)
        kind = fields.get("type") if fields is not None else None
        stage = self.stage
        if fields is None or not isinstance(kind, str):
            return LifespanProtocolError(
                f"the app sent {describe_message(message)}, which is not an ASGI "
                "message: a mapping with a string 'type' such as "
                "{'type': 'lifespan.startup.complete'}. " + _PROTOCOL_HINT,
                message,
                _EXPECTED.get(stage, ()),
            )
        moved = _MOVES.get((stage, kind))
        if moved is None:
            return self._unexpected(message, kind)
        if moved in _REPORTED:
            text = fields.get("message", "")
            if not isinstance(text, str):
                return LifespanProtocolError(
                    f"the app sent {describe_message(message)}: its 'message' must "
                    f"be a string, not {type(text).__name__}. " + _PROTOCOL_HINT,
                    message,
                    _EXPECTED.get(stage, ()),
                )
            self.report = text
        self.stage = moved
        return None

    def app_exit(
        self,
        exc: BaseException | None,
        *,
        at_call: bool = False,
        stray_cancel: bool = False,
    ) -> Do:
        """The app's lifespan call ended.

        Args:
            exc: What it raised, or ``None`` when it returned or was cancelled
                by the I/O layer (which absorbs its own cancellation).
            at_call: ``exc`` came from calling the app, before any of its code
                ran (see :func:`raised_by_the_call`): it is not an ASGI app.
            stray_cancel: ``exc`` is the event loop's cancellation, which the
                I/O layer did not ask for: something inside the app made it.
        """
        self.app_done = True
        self._judge_exit(exc, at_call=at_call, stray_cancel=stray_cancel)
        return self._decide()

    def _judge_exit(
        self, exc: BaseException | None, *, at_call: bool, stray_cancel: bool
    ) -> None:
        stage = self.stage
        if stray_cancel and self.error is None and stage is not _ABANDONED:
            assert exc is not None
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
        elif stage is _UNSUPPORTED:
            pass  # its exceptions are what 'unsupported' looks like
        elif stage is _ABANDONED:
            self.error = exc
        elif not self.received:
            if exc is None:
                detail = "the app returned without ever calling receive()"
            else:
                detail = (
                    f"the app raised {type(exc).__name__}({exc}) before its first "
                    "receive()"
                )
            self._unsupported(detail + ".", cause=exc)
        elif exc is not None:
            # Raised in reply to a stage, after a failure report, while
            # running, or after its shutdown completed.
            report = self.report
            if report and not _is_traceback_of(report, exc):
                add_note(exc, report)
            self.error = exc
        elif stage in _REPORTED:
            self.error = self._reported_failure()
        elif stage is _STARTUP or stage is _SHUTDOWN:
            name = stage.value
            self.error = LifespanProtocolError(
                f"the app's lifespan returned during its {name} without sending "
                f"'lifespan.{name}.complete' or 'lifespan.{name}.failed'. "
                + _PROTOCOL_HINT,
                None,
                _EXPECTED[stage],
            )
        # A return while running is noticed when the shutdown begins; one
        # after the shutdown completed is how it should end.

    # Deciding ------------------------------------------------------------------------

    def _decide(self) -> Do:
        """What the I/O layer must do now that the state moved; each once."""
        do = 0
        error = self.error
        stage = self.stage
        if (
            not self._app_stopped
            and not self.app_done
            and (error is not None or stage in _OUT)
        ):
            # After a '.failed' report too: an app that raises straight after
            # it still raises (cancellation lands at its next await), one that
            # lingers is not waited out. Not after its shutdown completed: it
            # is about to return, and the driver stops it on leaving if not.
            self._app_stopped = True
            do = STOP_APP
        if error is not None:
            if not self._refused:
                self._refused = True
                do |= REFUSE
            if self.in_body and not self._body_stopped:
                self._body_stopped = True
                do |= STOP_BODY
        if self._answer_due and (error is not None or stage in _ANSWERS):
            self._answer_due = False
            do |= ANSWERED
            if stage is _RUNNING and error is None:
                do |= END_DEADLINE
        return do

    def _reported_failure(self) -> BaseException:
        assert self.report is not None
        return _REPORTED[self.stage](self.report)

    def _unexpected(self, message: object, kind: str) -> LifespanProtocolError:
        stage = self.stage
        reported = stage in _REPORTED
        expected = () if reported else _EXPECTED.get(stage, ())
        if reported:
            wanted = "nothing after its '.failed' report (it should return or raise)"
        elif expected:
            wanted = " or ".join(repr(t) for t in expected)
        elif stage is _RUNNING:
            wanted = "no message until 'lifespan.shutdown' is sent"
        else:
            wanted = "no further message"
        known = (
            ""
            if kind in _LIFESPAN_TYPES
            else f"{describe_message(kind)} is not a lifespan message type. "
        )
        return LifespanProtocolError(
            f"the app sent {describe_message(message)} {_WHEN[stage]}; "
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


class LifespansProtocol:
    """Several lifespans at once (``open_lifespans``), each held by a task.

    Decides when the entry may go on, when to stop every holder, when to
    cancel the body, and the one exception that leaves; each driver holds
    the apps with its own tasks and applies the decisions.

    Args:
        count: How many apps.
        cancelled: The event loop's cancellation exception.
    """

    def __init__(self, count: int, cancelled: type[BaseException]) -> None:
        self.count = count
        self._cancelled = cancelled
        self._starting = count  # holders whose app has not started yet
        self._ready = False
        #: The holders were stopped (something failed).
        self.stopped = False
        self.in_body = False
        self._body_stopped = False
        self._ctrl_c = False  # what interrupted us is a Ctrl-C (it wins)
        #: What the apps raised, in the order it happened.
        self.errors: list[BaseException] = []
        #: What the body raised, or what interrupted us.
        self.raised: BaseException | None = None

    @property
    def serving(self) -> bool:
        """Whether the body may run: every app started and nothing failed."""
        return not self.errors and self.raised is None and not self._starting

    def begin(self) -> Do:
        """The holders are started; with no apps, the entry goes on."""
        return self._ready_now() if not self.count else 0

    def app_started(self, index: int) -> Do:
        """Holder ``index``'s app has started."""
        self._starting -= 1
        return self._ready_now() if not self._starting else 0

    def holder_failed(self, exc: BaseException, *, shutting_down: bool) -> Do:
        """A holder's lifespan raised ``exc``.

        Args:
            exc: What it raised; a cancellation once we stopped the holders is
                ours, nothing of its own.
            shutting_down: The body is over and every app is being shut down: no
                holder is stopped for it.
        """
        if self.stopped and isinstance(exc, self._cancelled):
            return 0
        self.errors.append(exc)
        return 0 if shutting_down else self._stop(exc)

    def interrupted(self, exc: BaseException, *, ctrl_c: bool = False) -> Do:
        """A cancellation or Ctrl-C interrupted the wait for the startups
        (``ctrl_c``: see :meth:`LifespanProtocol.interrupted`)."""
        self.raised = exc
        self._ctrl_c = self._ctrl_c or ctrl_c
        return self._stop(None)

    def interrupted_finishing(self, exc: BaseException, *, wins: bool) -> Do:
        """Something interrupted the wait for the holders to end (see
        :meth:`LifespanProtocol.interrupted_finishing`); the holders are stopped
        short of their graceful shutdowns."""
        if wins or self.raised is None:
            self.raised = interruption(exc, self.raised)
        self._ctrl_c = self._ctrl_c or wins
        return self._stop(None)

    def startup_over(self) -> Do:
        """The wait for the startups is over: ``BODY`` if the body may run
        (it runs from now on)."""
        if not self.serving:
            return 0
        self.in_body = True
        return BODY

    def body_ended(
        self, exc: BaseException | None, *, ours: bool, ctrl_c: bool = False
    ) -> None:
        """The body ended (see :meth:`LifespanProtocol.body_ended`)."""
        self.in_body = False
        self._ctrl_c = ctrl_c
        if (
            exc is not None
            and ours
            and self._body_stopped
            and only_cancellations(exc, self._cancelled)
        ):
            return
        self.raised = exc

    def outcome(self) -> BaseException | None:
        """The one exception that leaves, or ``None``: one app's error
        stands for itself, several become a group."""
        return combine_many(
            self.raised,
            self.errors,
            raised_gives_way=not self._ctrl_c
            and only_cancellations(self.raised, (self._cancelled, LifespanUnavailable)),
        )

    def holders_to_stop(self) -> Iterable[int]:
        """Which holders ``STOP_HOLDERS`` stops: every one (each is shut
        down at once, short of a graceful shutdown if it is still starting)."""
        return range(self.count)

    def _ready_now(self) -> Do:
        if self._ready:
            return 0
        self._ready = True
        return READY

    def _stop(self, exc: BaseException | None) -> Do:
        """Stop everything short of the shutdowns: something failed. Once:
        with many failing apps, each failure must not walk every holder."""
        if self.stopped:
            return 0
        self.stopped = True
        do = STOP_HOLDERS | self._ready_now()
        if self.in_body and exc is not None:
            self._body_stopped = True
            do |= STOP_BODY
        return do


class StackProtocol(LifespansProtocol):
    """Mounted apps (``lifespan_of``, ``with_lifespans``): a group shut down as a stack.

    As :class:`LifespansProtocol` decides, with two differences. A holder
    whose app has started *parks*: a failure does not stop it (only the
    holders still starting are stopped); once the body is over, the parked
    apps are shut down one at a time, in :meth:`shutdown_order`. And the
    body may be guarded (:meth:`guard_the_body`): it is then the parent's
    own shutdown, which a failure no longer stops.
    """

    def __init__(self, count: int, cancelled: type[BaseException]) -> None:
        super().__init__(count, cancelled)
        #: Whether each holder has parked: its app has started, and it waits
        #: for its turn to shut it down.
        self.parked = [False] * count
        self._order: list[int] = []
        self._body_guarded = False

    def app_started(self, index: int) -> Do:
        """Holder ``index``'s app has started: it parks, and waits for its
        turn to shut it down."""
        self.parked[index] = True
        self._order.append(index)
        return super().app_started(index)

    def guard_the_body(self) -> None:
        """From now on a failure does not stop the body: it is the parent's
        own shutdown, as graceful as the sub-apps' (the failure still comes
        out when the body ends)."""
        self._body_guarded = True

    def holders_to_stop(self) -> Iterable[int]:
        """The holders still starting: parked ones wait for their turn."""
        return [index for index, parked in enumerate(self.parked) if not parked]

    def shutdown_order(self) -> list[int]:
        """The parked holders, the last whose app started first."""
        return self._order[::-1]

    def _stop(self, exc: BaseException | None) -> Do:
        # A guarded body is not stopped: as if no app's error stopped it.
        return super()._stop(None if self._body_guarded else exc)
