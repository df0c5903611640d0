"""The sans-I/O protocol core on its own: events in, decisions out.

The drivers' tests cover these rules through real event loops; a few of them
hinge on two things happening in one turn of the loop, which a test can only
arrange reliably here.
"""

from __future__ import annotations

from trio_lifespan import LifespanTimeout
from trio_lifespan._protocol import LifespanProtocol, Stage


def answered_startup() -> LifespanProtocol:
    protocol = LifespanProtocol()
    protocol.begin_startup()
    assert protocol.app_receive()
    assert protocol.app_send({"type": "lifespan.startup.complete"})
    return protocol


def test_a_limit_running_out_while_waiting_is_a_timeout() -> None:
    protocol = LifespanProtocol()
    protocol.begin_startup()
    protocol.time_out(2.5)
    assert isinstance(protocol.error, LifespanTimeout)
    assert (protocol.error.phase, protocol.error.timeout) == ("startup", 2.5)
    assert protocol.app_must_stop
    assert not protocol.waiting


def test_a_limit_running_out_just_after_the_answer_changes_nothing() -> None:
    protocol = answered_startup()
    protocol.time_out(2.5)
    assert protocol.error is None
    assert protocol.running
    assert not protocol.app_must_stop


def test_a_limit_that_already_cancelled_the_answered_app_is_the_error() -> None:
    protocol = answered_startup()
    protocol.time_out(2.5, app_cancelled=True)
    assert isinstance(protocol.error, LifespanTimeout)
    assert protocol.error.phase == "startup"
    assert protocol.body_must_stop


def test_a_limit_after_the_shutdown_completed_changes_nothing() -> None:
    protocol = answered_startup()
    assert protocol.begin_shutdown() == {"type": "lifespan.shutdown"}
    assert protocol.app_receive()
    assert protocol.app_send({"type": "lifespan.shutdown.complete"})
    protocol.time_out(1.0, app_cancelled=True)
    assert protocol.error is None
    assert protocol.stage is Stage.DONE
    assert not protocol.app_receive()  # an app that lingers must be stopped
