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

:class:`._group_protocol.LifespansProtocol` decides the same for a group of
lifespans held by tasks of their own (``open_lifespans``); :class:`BodyRules`
is what the two decide alike about the body. The wording of each error the
protocol decides on lives with the errors (:mod:`._errors`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, cast

from ._compat import add_note
from ._errors import (
    LifespanCrashed,
    LifespanProtocolError,
    LifespanShutdownFailed,
    LifespanStartupFailed,
    LifespanTimeout,
    LifespanUnavailable,
    also_raised,
    ended_before_receiving,
    not_a_message,
    not_callable,
    not_supported,
    out_of_turn,
    report_not_text,
    returned_before_shutdown,
    returned_unanswered,
    sent_before_receiving,
    stray_cancellation,
)
from ._exceptions import (
    combine,
    interruption,
    only_cancellations,
    unwrap_single,
)

ASGI_VERSIONS = {"version": "3.0", "spec_version": "2.0"}

# What the I/O layer must do now: flags, combined with ``|``, returned by
# every event. Plain ints, measured against an enum.Flag on CPython 3.11
# (2026-12-06): 15 ns a ``|`` or ``&``, against 485 ns (IntFlag: 524 ns); a
# lifespan's cycle combines and tests about twenty, which as an enum would
# cost some 10 µs of a trio cycle's 80.
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


class BodyRules:
    """What one lifespan and a group of them decide alike about the ``async
    with`` body: whether what it raised is its own, and what interrupts the
    wait at the end.

    Args:
        cancelled: The event loop's cancellation exception
            (``trio.Cancelled``, ``asyncio.CancelledError``).
    """

    __slots__ = ("_body_stopped", "_cancelled", "_ctrl_c", "in_body", "raised")

    def __init__(self, cancelled: type[BaseException]) -> None:
        self._cancelled = cancelled
        #: The ``async with`` body runs.
        self.in_body = False
        self._body_stopped = False  # we cancelled the body (once)
        self._ctrl_c = False  # what interrupted us is a Ctrl-C (it wins)
        #: What the body raised (less our cancellation), or what interrupted
        #: the driver while it waited.
        self.raised: BaseException | None = None

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
            and only_cancellations(exc, self._cancelled)
        ):
            return
        self.raised = exc

    def _interrupted_at_the_end(self, exc: BaseException, wins: bool) -> None:
        """Something interrupted the wait for the app's task (or the
        holders) to end: ``exc`` (on trio a nursery may put it in a group of
        one), which wins over the body's exception if ``wins`` (Ctrl-C does;
        on asyncio, a cancellation that is not Ctrl-C gives way)."""
        if wins or self.raised is None:
            self.raised = interruption(exc, self.raised)
        self._ctrl_c = self._ctrl_c or wins


class LifespanProtocol(BodyRules):
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
        "_gives_way",
        "_refused",
        "app_done",
        "error",
        "received",
        "report",
        "stage",
    )

    def __init__(
        self, cancelled: type[BaseException], *, allow_unsupported: bool = False
    ) -> None:
        super().__init__(cancelled)
        self._allow_unsupported = allow_unsupported
        # What gives way to the lifespan's error when the body raises only
        # that: a cancellation, a request refused because of the error.
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
        # What was decided already (each decision is made once).
        self._answer_due = False  # a task waits for this stage's answer
        self._app_stopped = False
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
            self.error = returned_before_shutdown()
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
            and isinstance(exc, self._cancelled)
        ):
            self.raised = exc
            return 0
        self.raised = interruption(exc, self.raised)
        self.stage = _ABANDONED
        return self._decide()

    def interrupted_finishing(self, exc: BaseException, *, wins: bool) -> None:
        """Something interrupted the wait for the app's task to end (see
        :meth:`BodyRules._interrupted_at_the_end`)."""
        self._interrupted_at_the_end(exc, wins)

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
            self._unsupported(sent_before_receiving(message), cause=None)
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
            return not_a_message(message, _EXPECTED.get(stage, ()))
        moved = _MOVES.get((stage, kind))
        if moved is None:
            return self._unexpected(message, kind)
        if moved in _REPORTED:
            text = fields.get("message", "")
            if not isinstance(text, str):
                return report_not_text(message, text, _EXPECTED.get(stage, ()))
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
            self.error = stray_cancellation(exc, stage.value)
            return
        if at_call and self.error is None:
            assert exc is not None
            self.error = not_callable(exc)
            return
        exc = unwrap_single(exc)
        if self.error is not None:
            if exc is not None and exc is not self.error:
                add_note(self.error, also_raised(exc))
            return
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            # Ctrl-C or an exit, whenever it came: never a lifespan verdict.
            self.error = exc
        elif stage is _UNSUPPORTED:
            pass  # its exceptions are what 'unsupported' looks like
        elif stage is _ABANDONED:
            self.error = exc
        elif not self.received:
            self._unsupported(ended_before_receiving(exc) + ".", cause=exc)
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
            self.error = returned_unanswered(stage.value, _EXPECTED[stage])
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
        return out_of_turn(
            message,
            kind,
            stage.value,
            () if reported else _EXPECTED.get(stage, ()),
            reported=reported,
            lifespan_type=kind in _LIFESPAN_TYPES,
        )

    def _unsupported(self, detail: str, cause: BaseException | None) -> None:
        if self._allow_unsupported:
            self.stage = _UNSUPPORTED
            return
        self.error = not_supported(detail, cause)
