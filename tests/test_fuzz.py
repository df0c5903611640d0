"""Protocol fuzzing: generated apps that do anything, in any order, on fake time.

An app is a script of steps: receive, send a valid or invalid message, raise,
return, sleep, or hang (ignore everything). Whatever it does, ``open_lifespan``
must finish within ``startup_timeout + body + shutdown_timeout`` of virtual
time, run the body only after the app completed its startup, and raise
nothing but a documented outcome, never an exception group. The backends'
runners fail the test if any task is left running.
"""

from __future__ import annotations

import math
import sys
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from trio_lifespan import LifespanError, open_lifespan
from trio_lifespan._types import Receive, Scope, Send

from .backends import BACKENDS, Backend

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup


class AppError(Exception):
    """An exception a generated app raises."""


class BodyError(Exception):
    """An exception the ``async with`` body raises."""


VALID = [
    "lifespan.startup.complete",
    "lifespan.startup.failed",
    "lifespan.shutdown.complete",
    "lifespan.shutdown.failed",
]
INVALID: list[object] = [
    {"type": "http.response.start", "status": 200},
    {"type": "lifespan.startup"},
    {"no": "type"},
    "lifespan.startup.complete",
    None,
    {"type": "lifespan.startup.failed", "message": 3},
]


def seconds(most: float) -> st.SearchStrategy[float]:
    """Times in whole microseconds: looptime 0.7 (the one for Python 3.10)
    never wakes from a sleep whose length needs more digits than that."""
    return st.integers(0, int(most * 1_000_000)).map(lambda us: us / 1_000_000)


steps = st.one_of(
    st.just(("receive",)),
    st.sampled_from(VALID).map(lambda kind: ("send", {"type": kind})),
    st.sampled_from(VALID[1::2]).map(
        lambda kind: ("send", {"type": kind, "message": "reported"})
    ),
    st.sampled_from(INVALID).map(lambda message: ("send", message)),
    st.just(("raise",)),
    st.just(("return",)),
    seconds(8).map(lambda time: ("sleep", time)),
    st.just(("hang",)),
)
# Well-behaved beginnings, so that generated apps often get as far as the
# body and the shutdown before they start misbehaving.
RECEIVE = ("receive",)
COMPLETE = ("send", {"type": "lifespan.startup.complete"})
PREFIXES: list[list[tuple[Any, ...]]] = [
    [],
    [RECEIVE],
    [RECEIVE, COMPLETE],
    [RECEIVE, COMPLETE, RECEIVE],
    [RECEIVE, COMPLETE, RECEIVE, ("send", {"type": "lifespan.shutdown.complete"})],
]
scripts = st.tuples(st.sampled_from(PREFIXES), st.lists(steps, max_size=6)).map(
    lambda parts: parts[0] + parts[1]
)
timeouts = st.one_of(st.sampled_from([0.0, 1.0, 5.0]), seconds(20))


def scripted_app(
    backend: Backend, script: list[tuple[Any, ...]], log: list[str]
) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for step in script:
            if step[0] == "receive":
                message = await receive()
                log.append(f"received {message['type']}")
            elif step[0] == "send":
                sent: Any = step[1]
                if isinstance(sent, dict):
                    log.append(f"sent {cast('dict[str, Any]', sent).get('type')}")
                await send(cast("Any", sent))
            elif step[0] == "raise":
                raise AppError("scripted")
            elif step[0] == "return":
                return
            elif step[0] == "sleep":
                await backend.sleep(step[1])
            else:
                await backend.sleep(math.inf)

    return app


async def scenario(
    *,
    backend: Backend,
    script: list[tuple[Any, ...]],
    startup_timeout: float,
    shutdown_timeout: float,
    body_seconds: float,
    body_raises: bool,
) -> None:
    log: list[str] = []
    start = backend.now()
    outcome: BaseException | None = None
    try:
        async with open_lifespan(
            scripted_app(backend, script, log),
            startup_timeout=startup_timeout,
            shutdown_timeout=shutdown_timeout,
        ):
            log.append("body")
            await backend.sleep(body_seconds)
            if body_raises:
                raise BodyError
    except BaseException as exc:  # noqa: BLE001 - judged below
        outcome = exc
    elapsed = backend.now() - start
    # 1e-3: looptime keeps time in microseconds and rounds each sleep.
    assert elapsed <= startup_timeout + body_seconds + shutdown_timeout + 1e-3, log
    assert not isinstance(outcome, BaseExceptionGroup), outcome
    assert outcome is None or isinstance(
        outcome, (LifespanError, AppError, BodyError)
    ), outcome
    if "body" in log:
        before = log[: log.index("body")]
        assert "received lifespan.startup" in before
        assert "sent lifespan.startup.complete" in before
    if body_raises and "body" in log and outcome is not None:
        # The body's exception wins, unless the app crashed and cancelled it.
        assert isinstance(outcome, (BodyError, AppError, LifespanError))


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    script=scripts,
    startup_timeout=timeouts,
    shutdown_timeout=timeouts,
    body_seconds=seconds(10),
    body_raises=st.booleans(),
)
def test_any_app_ends_in_a_documented_outcome_in_time(
    *,
    backend: Backend,
    script: list[tuple[Any, ...]],
    startup_timeout: float,
    shutdown_timeout: float,
    body_seconds: float,
    body_raises: bool,
) -> None:
    backend.run(
        scenario,
        {
            "backend": backend,
            "script": script,
            "startup_timeout": startup_timeout,
            "shutdown_timeout": shutdown_timeout,
            "body_seconds": body_seconds,
            "body_raises": body_raises,
        },
    )


#: Examples worth keeping for ever: (script, startup_timeout, shutdown_timeout,
#: body seconds). The tiny timeouts once made the asyncio driver spin without
#: end, recomputing a remaining time that a float could not tell from zero.
KEPT: list[tuple[list[tuple[Any, ...]], float, float, float]] = [
    ([RECEIVE, ("hang",), ("hang",)], 5.286280024656174e-87, 0.38, 0.0),
    ([RECEIVE, ("hang",), RECEIVE], 1.4498140717608805e-150, 5.45, 5e-324),
    ([RECEIVE, COMPLETE], 0.0, 0.0, 1.9765625),
    ([RECEIVE, COMPLETE, ("return",)], 1.0, 1.0, 1.0),
    (
        [RECEIVE, ("send", {"type": "lifespan.startup.failed"}), ("hang",)],
        1.0,
        1.0,
        1.0,
    ),
    ([("hang",)], 1.0, 1.0, 1.0),
    ([RECEIVE, COMPLETE, RECEIVE, ("hang",)], 1.0, 1.0, 1.0),
]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
@pytest.mark.parametrize(("script", "startup", "shutdown", "body"), KEPT)
def test_kept_examples(
    backend: Backend,
    script: list[tuple[Any, ...]],
    startup: float,
    shutdown: float,
    body: float,
) -> None:
    backend.run(
        scenario,
        {
            "backend": backend,
            "script": script,
            "startup_timeout": startup,
            "shutdown_timeout": shutdown,
            "body_seconds": body,
            "body_raises": False,
        },
    )
