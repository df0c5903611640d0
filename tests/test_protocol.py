"""The sans-I/O protocol on its own: events in, decisions and errors out.

In the style of h11's ``test_state.py``: the whole state machine is walked
without any I/O. The drivers' tests cover the same rules through real event
loops; this file pins each transition and each decision, including the ones
that hinge on two things happening in one turn of the loop, which a test
can only arrange reliably here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from trio_lifespan import (
    LifespanCancelled,
    LifespanCrashed,
    LifespanNotSupported,
    LifespanProtocolError,
    LifespanShutdownFailed,
    LifespanStartupFailed,
    LifespanTimeout,
    LifespanUnavailable,
)
from trio_lifespan._exceptions import members
from trio_lifespan._group_protocol import LifespansProtocol, StackProtocol
from trio_lifespan._protocol import (
    ANSWERED,
    BODY,
    CHECK_DEADLINE,
    CHECKPOINT,
    END_DEADLINE,
    GRACEFUL,
    PARK,
    READY,
    REFUSE,
    STOP_APP,
    STOP_BODY,
    STOP_HOLDERS,
    WITH_STATE,
    LifespanProtocol,
    Stage,
)

from .apps import Boom

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup


class Cancelled(BaseException):
    """The event loop's cancellation, as far as the protocol knows."""


STARTUP_COMPLETE = "lifespan.startup.complete"
STARTUP_FAILED = "lifespan.startup.failed"
SHUTDOWN_COMPLETE = "lifespan.shutdown.complete"
SHUTDOWN_FAILED = "lifespan.shutdown.failed"
UNKNOWN = "lifespan.startup.ready"
TYPES = [STARTUP_COMPLETE, STARTUP_FAILED, SHUTDOWN_COMPLETE, SHUTDOWN_FAILED, UNKNOWN]


def new(*, allow_unsupported: bool = False) -> LifespanProtocol:
    return LifespanProtocol(Cancelled, allow_unsupported=allow_unsupported)


def send(protocol: LifespanProtocol, kind: str) -> int:
    return protocol.app_send({"type": kind, "message": "why"})


def in_startup() -> LifespanProtocol:
    protocol = new()
    assert protocol.begin_startup() == {"type": "lifespan.startup"}
    assert protocol.app_receive() == 0
    return protocol


def running(*, body: bool = False) -> LifespanProtocol:
    protocol = in_startup()
    assert send(protocol, STARTUP_COMPLETE) == ANSWERED | END_DEADLINE
    if body:
        assert protocol.startup_over() == BODY | WITH_STATE
    return protocol


def in_shutdown() -> LifespanProtocol:
    protocol = running()
    assert protocol.begin_shutdown() == ({"type": "lifespan.shutdown"}, 0)
    assert protocol.app_receive() == 0
    return protocol


def done() -> LifespanProtocol:
    protocol = in_shutdown()
    assert send(protocol, SHUTDOWN_COMPLETE) == ANSWERED
    return protocol


def reported(at: Callable[[], LifespanProtocol], kind: str) -> LifespanProtocol:
    protocol = at()
    assert send(protocol, kind) == STOP_APP | CHECK_DEADLINE
    return protocol


STAGES: dict[Stage, Callable[[], LifespanProtocol]] = {
    Stage.STARTUP: in_startup,
    Stage.STARTUP_FAILED: lambda: reported(in_startup, STARTUP_FAILED),
    Stage.RUNNING: running,
    Stage.CRASHED: lambda: reported(running, SHUTDOWN_FAILED),
    Stage.SHUTDOWN: in_shutdown,
    Stage.SHUTDOWN_FAILED: lambda: reported(in_shutdown, SHUTDOWN_FAILED),
    Stage.DONE: done,
}

# (stage, message type) -> the stage it moves to, and what the driver must do.
# Every pair not here breaks the protocol.
MOVES: dict[tuple[Stage, str], tuple[Stage, int]] = {
    (Stage.STARTUP, STARTUP_COMPLETE): (Stage.RUNNING, ANSWERED | END_DEADLINE),
    (Stage.STARTUP, STARTUP_FAILED): (Stage.STARTUP_FAILED, STOP_APP | CHECK_DEADLINE),
    (Stage.RUNNING, SHUTDOWN_FAILED): (Stage.CRASHED, STOP_APP | CHECK_DEADLINE),
    (Stage.SHUTDOWN, SHUTDOWN_COMPLETE): (Stage.DONE, ANSWERED),
    (Stage.SHUTDOWN, SHUTDOWN_FAILED): (
        Stage.SHUTDOWN_FAILED,
        STOP_APP | CHECK_DEADLINE,
    ),
}

# Where a driver waits for an answer: a breach answers it.
AWAITED = {Stage.STARTUP, Stage.SHUTDOWN, Stage.STARTUP_FAILED, Stage.SHUTDOWN_FAILED}
# Where the app was stopped already: a breach does not stop it again.
STOPPED = {Stage.STARTUP_FAILED, Stage.CRASHED, Stage.SHUTDOWN_FAILED}


@pytest.mark.parametrize("kind", TYPES)
@pytest.mark.parametrize("stage", list(STAGES), ids=lambda stage: stage.value)
def test_every_message_in_every_stage(stage: Stage, kind: str) -> None:
    protocol = STAGES[stage]()
    assert protocol.stage is stage
    do = send(protocol, kind)
    if (stage, kind) in MOVES:
        moved, decided = MOVES[stage, kind]
        assert protocol.stage is moved
        assert do == decided
        assert protocol.error is None
        return
    assert protocol.stage is stage
    assert isinstance(protocol.error, LifespanProtocolError)
    assert protocol.error.received == {"type": kind, "message": "why"}
    expected = PARK | REFUSE
    if stage not in STOPPED:
        expected |= STOP_APP
    if stage in AWAITED:
        expected |= ANSWERED
    assert do == expected


@pytest.mark.parametrize(
    ("stage", "error"),
    [
        (Stage.STARTUP_FAILED, LifespanStartupFailed),
        (Stage.CRASHED, LifespanCrashed),
        (Stage.SHUTDOWN_FAILED, LifespanShutdownFailed),
    ],
    ids=lambda value: getattr(value, "value", getattr(value, "__name__", "")),
)
@pytest.mark.parametrize("then", ["return", "receive", "raise"])
def test_a_report_becomes_the_error_by_what_the_app_does_next(
    stage: Stage, error: type[BaseException], then: str
) -> None:
    protocol = STAGES[stage]()
    if then == "raise":
        raised = Boom("its own")
        protocol.app_exit(raised)
        assert protocol.error is raised
        assert getattr(raised, "__notes__", []) == ["why"]
    elif then == "receive":
        assert protocol.app_receive() & PARK
        assert type(protocol.error) is error
    else:
        protocol.app_exit(None)
        assert type(protocol.error) is error
    assert getattr(protocol.error, "message", "why") == "why"


@pytest.mark.parametrize(
    ("stage", "returned"),
    [
        (Stage.STARTUP, LifespanProtocolError),
        (Stage.RUNNING, None),  # noticed when the shutdown begins
        (Stage.SHUTDOWN, LifespanProtocolError),
        (Stage.DONE, None),  # how it should end
    ],
    ids=lambda value: getattr(value, "value", str(value)),
)
def test_what_an_exit_in_each_stage_means(
    stage: Stage, returned: type[BaseException] | None
) -> None:
    protocol = STAGES[stage]()
    protocol.app_exit(None)
    assert type(protocol.error) is (returned or type(None))
    raising = STAGES[stage]()
    raised = Boom("crash")
    raising.app_exit(raised)
    assert raising.error is raised


def test_a_return_while_running_is_the_error_when_the_shutdown_begins() -> None:
    protocol = running()
    protocol.app_exit(None)
    message, do = protocol.begin_shutdown()
    assert message is None
    assert isinstance(protocol.error, LifespanProtocolError)
    assert do == REFUSE  # the app is gone already: nothing to stop


def test_an_app_without_lifespan_is_named_or_let_through() -> None:
    protocol = new()
    protocol.begin_startup()
    assert protocol.app_exit(ValueError("http only")) == REFUSE | ANSWERED
    assert isinstance(protocol.error, LifespanNotSupported)
    allowed = new(allow_unsupported=True)
    allowed.begin_startup()
    assert (
        allowed.app_send({"type": "http.response.start"}) == STOP_APP | ANSWERED | PARK
    )
    assert allowed.startup_over() == BODY  # requests pass through unchanged
    assert allowed.begin_shutdown() == (None, CHECKPOINT)


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_before_the_first_receive_is_itself(
    kind: type[BaseException],
) -> None:
    protocol = new(allow_unsupported=True)
    protocol.begin_startup()
    raised = kind()
    protocol.app_exit(raised)
    assert protocol.error is raised


def test_a_cancellation_nobody_asked_for_is_lifespan_cancelled() -> None:
    protocol = running(body=True)
    stray = Cancelled()
    assert protocol.app_exit(stray, stray_cancel=True) == REFUSE | STOP_BODY
    assert isinstance(protocol.error, LifespanCancelled)
    assert protocol.error.__cause__ is stray


# Time limits ----------------------------------------------------------------------


def test_a_limit_running_out_while_waiting_is_a_timeout() -> None:
    protocol = in_startup()
    assert protocol.time_out(2.5) == STOP_APP | REFUSE | ANSWERED
    assert isinstance(protocol.error, LifespanTimeout)
    assert (protocol.error.phase, protocol.error.timeout) == ("startup", 2.5)


def test_a_limit_running_out_just_after_the_answer_changes_nothing() -> None:
    protocol = running()
    assert protocol.time_out(2.5) == 0
    assert protocol.error is None
    assert protocol.startup_over() == BODY | WITH_STATE


def test_a_limit_that_already_cancelled_the_answered_app_is_the_error() -> None:
    protocol = running(body=True)
    assert protocol.deadline_passed(2.5) == STOP_APP | REFUSE | STOP_BODY
    assert isinstance(protocol.error, LifespanTimeout)
    assert protocol.error.phase == "startup"


def test_a_report_made_as_the_deadline_cancels_the_app_is_the_timeout() -> None:
    # Starlette answers the cancellation with '.failed' and a traceback.
    protocol = reported(in_shutdown, SHUTDOWN_FAILED)
    assert protocol.deadline_passed(5.0) == REFUSE | ANSWERED
    assert isinstance(protocol.error, LifespanTimeout)
    assert protocol.error.phase == "shutdown"


def test_a_limit_after_the_shutdown_completed_changes_nothing() -> None:
    protocol = done()
    assert protocol.deadline_passed(1.0) == 0
    assert protocol.error is None
    assert protocol.app_receive() == PARK  # an app that lingers is parked
    assert protocol.finishing() == STOP_APP  # ... and stopped on leaving, once
    assert protocol.finishing() == 0


# The body, interruptions and the outcome ---------------------------------------------


def test_our_cancellation_of_the_body_is_not_its_exception() -> None:
    protocol = running(body=True)
    crash = Boom("crash")
    protocol.app_exit(crash)
    protocol.body_ended(
        BaseExceptionGroup("nursery", [Cancelled(), Cancelled()]), ours=True
    )
    assert protocol.outcome() is crash


def test_a_cancellation_that_may_not_be_ours_gives_way_all_the_same() -> None:
    protocol = running(body=True)
    crash = Boom("crash")
    protocol.app_exit(crash)
    outside = Cancelled()
    protocol.body_ended(outside, ours=False)
    assert protocol.raised is outside
    assert protocol.outcome() is crash  # the cancellation comes again


def test_the_bodys_exception_wins_with_the_error_as_a_note() -> None:
    protocol = in_shutdown()
    protocol.body_ended(None, ours=True)
    body = KeyError("body")
    protocol.raised = body
    protocol.app_exit(Boom("shutdown"))
    assert protocol.outcome() is body
    assert getattr(body, "__notes__", []) == [
        "trio_lifespan: the app's lifespan failed too, after this exception: "
        "Boom: shutdown"
    ]


def test_a_refused_request_gives_way_to_the_failure() -> None:
    protocol = running(body=True)
    crash = Boom("crash")
    protocol.app_exit(crash)
    protocol.body_ended(LifespanUnavailable(crash), ours=True)
    assert protocol.outcome() is crash


def test_a_cancellation_as_the_startup_completes_waits_for_the_shutdown() -> None:
    protocol = running()
    cancelled = Cancelled()
    assert protocol.interrupted(cancelled) == 0
    assert protocol.startup_over() == 0
    message, _ = protocol.begin_shutdown()
    assert message == {"type": "lifespan.shutdown"}
    assert protocol.outcome() is cancelled


def test_an_interruption_while_waiting_abandons_the_app() -> None:
    protocol = in_startup()
    interrupt = KeyboardInterrupt()
    assert protocol.interrupted(interrupt) == STOP_APP | ANSWERED
    assert protocol.stage is Stage.ABANDONED
    assert protocol.begin_shutdown() == (None, 0)
    protocol.app_exit(None)
    assert protocol.outcome() is interrupt


def test_the_shutdown_after_a_body_that_raised_is_graceful() -> None:
    protocol = running(body=True)
    protocol.body_ended(KeyError("body"), ours=True)
    assert protocol.begin_shutdown() == ({"type": "lifespan.shutdown"}, GRACEFUL)


@pytest.mark.parametrize("wins", [True, False])
def test_an_interruption_while_leaving(wins: bool) -> None:
    protocol = done()
    body = KeyError("body")
    protocol.raised = body
    interrupt = Cancelled()
    protocol.interrupted_finishing(BaseExceptionGroup("one", [interrupt]), wins=wins)
    if wins:
        assert protocol.outcome() is interrupt
        assert interrupt.__context__ is body
    else:
        assert protocol.outcome() is body


# Several lifespans ----------------------------------------------------------------------


def test_a_group_is_ready_when_every_app_started() -> None:
    group = LifespansProtocol(2, Cancelled)
    assert group.begin() == 0
    assert group.app_started(0) == 0
    assert group.app_started(1) == READY
    assert group.startup_over() == BODY
    assert group.outcome() is None
    empty = LifespansProtocol(0, Cancelled)
    assert empty.begin() == READY


def test_a_group_stops_its_holders_once_however_many_fail() -> None:
    group = LifespansProtocol(1, Cancelled)
    assert group.app_started(0) == READY
    assert group.startup_over() == BODY
    first, second = Boom("one"), Boom("two")
    assert (
        group.holder_failed(first, shutting_down=False)
        == STOP_HOLDERS | STOP_BODY  # ready already
    )
    assert group.holder_failed(second, shutting_down=False) == 0
    assert group.holder_failed(Cancelled(), shutting_down=False) == 0  # ours
    group.body_ended(Cancelled(), ours=True)
    error = group.outcome()
    assert isinstance(error, BaseExceptionGroup)
    assert members(error) == (first, second)  # pyright: ignore[reportUnknownArgumentType]


def test_a_group_leaving_does_not_stop_its_holders_for_a_failure() -> None:
    group = LifespansProtocol(1, Cancelled)
    group.app_started(0)
    failure = Boom("shutdown")
    assert group.holder_failed(failure, shutting_down=True) == 0
    assert group.outcome() is failure


def test_a_group_interrupted_while_starting_stops_its_holders() -> None:
    group = LifespansProtocol(2, Cancelled)
    cancelled = Cancelled()
    assert group.interrupted(cancelled) == STOP_HOLDERS | READY
    assert group.startup_over() == 0
    assert group.interrupted_finishing(KeyboardInterrupt(), wins=False) == 0
    assert group.outcome() is cancelled
    assert list(group.holders_to_stop()) == [0, 1]  # every one


# Mounted apps: a group shut down as a stack ---------------------------------------------


def test_a_stack_stops_only_the_holders_still_starting() -> None:
    stack = StackProtocol(3, Cancelled)
    assert stack.app_started(2) == 0
    assert stack.app_started(0) == 0
    failure = Boom("sub-app")
    assert stack.holder_failed(failure, shutting_down=False) == STOP_HOLDERS | READY
    assert list(stack.holders_to_stop()) == [1]
    assert stack.shutdown_order() == [0, 2]  # the last to have started first
    assert stack.startup_over() == 0
    assert stack.outcome() is failure


def test_a_stack_shuts_down_in_reverse_order_of_startup_completion() -> None:
    stack = StackProtocol(3, Cancelled)
    assert [stack.app_started(index) for index in (1, 2, 0)] == [0, 0, READY]
    assert stack.startup_over() == BODY
    assert stack.shutdown_order() == [0, 2, 1]
    assert list(stack.holders_to_stop()) == []


@pytest.mark.parametrize("guarded", [False, True])
def test_a_stack_does_not_stop_a_guarded_body(guarded: bool) -> None:
    # The guarded body is the parent's own shutdown: a sub-app's crash
    # meanwhile does not cut it short, and still comes out after it.
    stack = StackProtocol(1, Cancelled)
    stack.app_started(0)
    assert stack.startup_over() == BODY
    if guarded:
        stack.guard_the_body()
    crash = Boom("crash")
    do = stack.holder_failed(crash, shutting_down=False)
    assert do == (STOP_HOLDERS if guarded else STOP_HOLDERS | STOP_BODY)
    # The body ends cancelled: by us unless it was guarded, when the
    # cancellation came from elsewhere and is kept. Either way the crash,
    # which matters more than a cancellation, comes out.
    cancelled = Cancelled()
    stack.body_ended(cancelled, ours=True)
    assert stack.raised is (cancelled if guarded else None)
    assert stack.outcome() is crash
