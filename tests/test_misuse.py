"""Misuse fails where it is written, with a message that says what to do.

Options out of range or of the wrong type, a context manager exited without
being entered, and ``LifespanManager`` entered again (as asgi-lifespan allows)
or twice at once.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from trio_lifespan import (
    LifespanManager,
    LifespanStartupFailed,
    LifespanTimeout,
    open_client,
    open_lifespan,
    open_lifespans,
    serve_lifespan,
)
from trio_lifespan._types import Receive, Scope, Send

from .apps import GoodApp, http_request
from .backends import Backend, TrioBackend, forever
from .test_behaviour import returns_at_once

FLOAT_MAX = repr(sys.float_info.max)  # 1.7976931348623157e+308
NO: Any = "no"  # what bool() takes as True

# Each way to pass the timeouts: (startup_timeout, shutdown_timeout) -> call.
OPENERS: dict[str, Callable[[Any, Any], object]] = {
    "open_lifespan": lambda startup, shutdown: open_lifespan(
        returns_at_once,
        startup_timeout=startup,
        shutdown_timeout=shutdown,
    ),
    "open_lifespans": lambda startup, shutdown: open_lifespans(
        returns_at_once,
        startup_timeout=startup,
        shutdown_timeout=shutdown,
    ),
    "LifespanManager": lambda startup, shutdown: LifespanManager(
        returns_at_once,
        startup_timeout=startup,
        shutdown_timeout=shutdown,
    ),
}


def call_with(opener: str, name: str, value: object) -> object:
    """Call ``opener`` with ``value`` for the timeout ``name``, 5 for the other."""
    if name == "startup_timeout":
        return OPENERS[opener](value, 5)
    return OPENERS[opener](5, value)


# 15. Timeouts an int too large for a float -------------------------------------


@pytest.mark.parametrize("opener", sorted(OPENERS))
@pytest.mark.parametrize("name", ["startup_timeout", "shutdown_timeout"])
@pytest.mark.parametrize(
    ("value", "bits"),
    [
        pytest.param(10**400, 1329, id="10**400"),
        pytest.param(2**1024, 1025, id="2**1024"),
        pytest.param(2**1024 - 1, 1024, id="2**1024-1"),
        pytest.param(10**5000, 16610, id="10**5000"),
    ],
)
def test_an_int_too_large_for_a_float_is_a_value_error(
    opener: str, name: str, value: int, bits: int
) -> None:
    # Not an OverflowError from float(), and no 5000-digit repr() either
    # (which Python refuses to print past 4300 digits).
    with pytest.raises(
        ValueError,
        match=rf"^{name} must be at most {re.escape(FLOAT_MAX)} seconds or None, "
        rf"not an int of {bits} bits$",
    ) as caught:
        call_with(opener, name, value)
    assert type(caught.value) is ValueError
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize("name", ["startup_timeout", "shutdown_timeout"])
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param(-(10**400), "a negative int of 1329 bits", id="-10**400"),
        pytest.param(-(10**5000), "a negative int of 16610 bits", id="-10**5000"),
        pytest.param(-(2**1024), "a negative int of 1025 bits", id="-2**1024"),
        # As many bits as the largest float: still printed.
        pytest.param(-(2**1024 - 1), re.escape(repr(-(2**1024 - 1))), id="-2**1024+1"),
        pytest.param(-(2**64), "-18446744073709551616", id="-2**64"),
    ],
)
def test_a_huge_negative_int_is_named_by_its_size(
    name: str, value: int, shown: str
) -> None:
    with pytest.raises(
        ValueError, match=rf"^{name} must be non-negative or None, not {shown}$"
    ):
        call_with("open_lifespan", name, value)


@pytest.mark.parametrize("opener", sorted(OPENERS))
@pytest.mark.parametrize(
    "value",
    [
        pytest.param(10**308, id="10**308"),
        pytest.param(2**1023, id="2**1023"),
        pytest.param(int(sys.float_info.max), id="int(float_max)"),
        pytest.param(sys.float_info.max, id="float_max"),
        pytest.param(1e300, id="1e300"),
    ],
)
def test_a_huge_number_that_fits_a_float_is_accepted(opener: str, value: float) -> None:
    call_with(opener, "startup_timeout", value)
    call_with(opener, "shutdown_timeout", value)


async def test_a_huge_finite_timeout_runs_like_no_limit(backend: Backend) -> None:
    app = GoodApp(backend, startup_delay=5000)
    async with open_lifespan(
        app, startup_timeout=10**308, shutdown_timeout=sys.float_info.max
    ) as wrapped:
        assert wrapped.state["name"] == "good"
    assert app.events == [
        "lifespan.startup",
        "lifespan.shutdown",
        "cleanup",
        "returned",
    ]
    manager = LifespanManager(GoodApp(backend), sys.float_info.max, 10**308)
    async with manager:
        assert manager.state["name"] == "good"


# 15. allow_unsupported must be a bool ------------------------------------------


@pytest.mark.parametrize(
    ("value", "type_name"),
    [("no", "str"), ("", "str"), (1, "int"), (0, "int"), (None, "NoneType")],
)
def test_allow_unsupported_that_is_not_a_bool_is_a_type_error(
    value: Any, type_name: str
) -> None:
    message = rf"^allow_unsupported must be True or False, not {type_name}$"
    with pytest.raises(TypeError, match=message):
        open_lifespan(returns_at_once, allow_unsupported=value)
    with pytest.raises(TypeError, match=message):
        open_lifespans(returns_at_once, allow_unsupported=value)


async def test_serve_lifespan_checks_allow_unsupported_too(backend: Backend) -> None:
    with pytest.raises(
        TypeError, match=r"^allow_unsupported must be True or False, not str$"
    ):
        with backend.move_on_after(1):  # once, this ran the app for ever
            await serve_lifespan(returns_at_once, allow_unsupported=NO)


# 15. __aexit__ without __aenter__ ----------------------------------------------


# The three openers' context managers; each is misused in the same ways, and
# says so in the same words.
CONTEXT_MANAGERS: dict[str, Callable[[Any], Any]] = {
    "open_lifespan": open_lifespan,
    "open_lifespans": open_lifespans,
    "open_client": open_client,
}


@pytest.mark.parametrize("opener", list(CONTEXT_MANAGERS))
async def test_exiting_a_context_manager_never_entered_is_a_runtime_error(
    opener: str, backend: Backend
) -> None:
    cm = CONTEXT_MANAGERS[opener](GoodApp(backend))
    with pytest.raises(
        RuntimeError,
        match=rf"^__aexit__ was called on an {opener}\(\) context manager that was "
        rf"never entered: call __aenter__ first \(`async with {opener}\(\.\.\.\)` "
        r"does both\)$",
    ) as caught:
        await cm.__aexit__(None, None, None)
    assert type(caught.value) is RuntimeError


@pytest.mark.parametrize("opener", list(CONTEXT_MANAGERS))
async def test_entering_a_context_manager_twice_is_a_runtime_error(
    opener: str, backend: Backend
) -> None:
    app = GoodApp(backend)
    cm = CONTEXT_MANAGERS[opener](app)
    async with cm:
        with pytest.raises(
            RuntimeError,
            match=rf"^this {opener}\(\) context manager was already entered; "
            rf"call {opener}\(\) again for each `async with`$",
        ) as caught:
            await cm.__aenter__()
        assert type(caught.value) is RuntimeError
    assert app.events.count("lifespan.startup") == 1, app.events


@pytest.mark.parametrize("opener", list(CONTEXT_MANAGERS))
async def test_exiting_a_context_manager_twice_is_a_runtime_error(
    opener: str, backend: Backend
) -> None:
    cm = CONTEXT_MANAGERS[opener](GoodApp(backend))
    async with cm:
        pass
    with pytest.raises(
        RuntimeError,
        match=rf"^__aexit__ was called twice on an {opener}\(\) context manager: "
        rf"call {opener}\(\) again for each `async with`$",
    ) as caught:
        await cm.__aexit__(None, None, None)
    assert type(caught.value) is RuntimeError


NOT_ENTERED = (
    r"^__aexit__ was called on a LifespanManager that is not entered: call "
    r"__aenter__ first \(`async with LifespanManager\(app\)` does both\)$"
)


def test_exiting_a_manager_never_entered_is_a_runtime_error() -> None:
    with pytest.raises(RuntimeError, match=NOT_ENTERED) as caught:
        LifespanManager(returns_at_once).__aexit__(None, None, None)
    assert type(caught.value) is RuntimeError


async def test_exiting_a_manager_twice_is_a_runtime_error(backend: Backend) -> None:
    manager = LifespanManager(GoodApp(backend))
    await manager.__aenter__()
    assert not await manager.__aexit__(None, None, None)
    with pytest.raises(RuntimeError, match=NOT_ENTERED):
        manager.__aexit__(None, None, None)


# 16. LifespanManager enters again, one lifespan at a time -----------------------


class CountingApp:
    """Counts its lifespans; each one's startup puts its number in the state."""

    def __init__(self, fail_first: bool = False) -> None:
        self.fail_first = fail_first
        self.lifespans = 0
        self.events: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            return
        self.lifespans += 1
        number = self.lifespans
        assert (await receive())["type"] == "lifespan.startup"
        if self.fail_first and number == 1:
            self.events.append(f"{number} failed")
            await send({"type": "lifespan.startup.failed", "message": "first"})
            return
        assert scope["state"] == {}, "each lifespan starts with a new state"
        scope["state"]["lifespan"] = number
        self.events.append(f"{number} started")
        await send({"type": "lifespan.startup.complete"})
        assert (await receive())["type"] == "lifespan.shutdown"
        self.events.append(f"{number} stopped")
        await send({"type": "lifespan.shutdown.complete"})


async def test_a_manager_can_be_entered_again_after_exit(backend: Backend) -> None:
    app = CountingApp()
    manager = LifespanManager(app)
    seen: list[Any] = []
    for number in (1, 2, 3):
        async with manager as entered:
            assert entered is manager
            assert manager.state == {"lifespan": number}
            scope = await http_request(manager.app)
            assert scope["state"] == {"lifespan": number}
            assert manager.app.app is app
            seen.append(manager.app)
        assert app.events[-1] == f"{number} stopped"
    # A new lifespan each time: a new wrapped app over a new state.
    assert len({id(wrapped) for wrapped in seen}) == 3
    assert [wrapped.state["lifespan"] for wrapped in seen] == [1, 2, 3]
    assert app.events == [
        "1 started",
        "1 stopped",
        "2 started",
        "2 stopped",
        "3 started",
        "3 stopped",
    ]


async def test_a_manager_can_be_entered_again_after_a_failed_startup(
    backend: Backend,
) -> None:
    app = CountingApp(fail_first=True)
    manager = LifespanManager(app)
    with pytest.raises(LifespanStartupFailed, match=r"first"):
        async with manager:
            raise AssertionError("the body must not run")  # pragma: no cover
    with pytest.raises(RuntimeError, match=r"^LifespanManager\.app is there once "):
        manager.app
    async with manager:
        assert manager.state == {"lifespan": 2}
    assert app.events == ["1 failed", "2 started", "2 stopped"]


async def test_a_manager_can_be_entered_again_after_the_body_raised(
    backend: Backend,
) -> None:
    app = CountingApp()
    manager = LifespanManager(app)
    error = KeyError("from the body")
    with pytest.raises(KeyError) as caught:
        async with manager:
            raise error
    assert caught.value is error
    async with manager:
        assert manager.state == {"lifespan": 2}
    assert app.events == ["1 started", "1 stopped", "2 started", "2 stopped"]


ENTERED_ALREADY = (
    r"^this LifespanManager is entered already and runs one lifespan at a time: "
    r"leave its `async with` block before entering it again, or make a "
    r"LifespanManager for each lifespan$"
)


async def test_a_manager_refuses_to_be_entered_twice_at_once(
    backend: Backend,
) -> None:
    app = CountingApp()
    manager = LifespanManager(app)
    with pytest.raises(RuntimeError, match=ENTERED_ALREADY) as caught:
        async with manager:
            async with manager:
                raise AssertionError("the inner body must not run")  # pragma: no cover
    assert type(caught.value) is RuntimeError
    # The refused entry left the running lifespan alone: it was shut down
    # gracefully, and the manager can be entered again.
    assert app.events == ["1 started", "1 stopped"]
    async with manager:
        assert manager.state == {"lifespan": 2}


@pytest.mark.trio
async def test_a_manager_refuses_a_second_task_while_the_first_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = GoodApp(TrioBackend(), startup_delay=1)
    manager = LifespanManager(app)
    refused: list[BaseException] = []

    async def first() -> None:
        async with manager:
            await trio.sleep(2)

    async def second() -> None:
        await trio.sleep(0.5)  # the first is waiting on the startup
        try:
            await manager.__aenter__()
        except RuntimeError as exc:
            refused.append(exc)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            nursery.start_soon(second)
    assert len(refused) == 1
    assert re.match(ENTERED_ALREADY, str(refused[0]))
    assert app.events == [
        "lifespan.startup",
        "lifespan.shutdown",
        "cleanup",
        "returned",
    ]


def test_a_manager_names_itself_when_no_loop_runs() -> None:
    manager = LifespanManager(returns_at_once)
    coro = manager.__aenter__()
    with pytest.raises(
        RuntimeError,
        match=r"^LifespanManager\(\) found no running async library: use it inside "
        r"an async function run by one of: trio, asyncio$",
    ):
        coro.send(None)
    # Nothing was left half-entered.
    with pytest.raises(RuntimeError, match=NOT_ENTERED):
        manager.__aexit__(None, None, None)


def test_the_managers_app_before_entry_names_the_manager() -> None:
    manager = LifespanManager(returns_at_once)
    message = (
        r"^LifespanManager\.app is there once the manager is entered: use it inside "
        r"`async with LifespanManager\(app\) as manager:`$"
    )
    with pytest.raises(RuntimeError, match=message):
        manager.app
    with pytest.raises(RuntimeError, match=message):
        manager.state


def test_the_managers_app_is_read_only_and_there_is_no_shared_state_dict() -> None:
    # What docs/howto/migrating.rst says: conftests that assigned
    # manager.app or used manager._state must change.
    manager = LifespanManager(returns_at_once)
    untyped: Any = manager
    with pytest.raises(AttributeError):
        untyped.app = returns_at_once
    assert not hasattr(manager, "_state")


async def test_the_managers_exit_is_the_drivers_own(backend: Backend) -> None:
    # No coroutine of the manager's own on exit: it costs what
    # open_lifespan's exit costs.
    manager = LifespanManager(GoodApp(backend))
    await manager.__aenter__()
    cm = open_lifespan(GoodApp(backend))
    await cm.__aenter__()
    # Left in the reverse order of entry, as trio's nurseries must be.
    via_open: Awaitable[bool | None] = cm.__aexit__(None, None, None)
    assert not await via_open
    via_manager: Awaitable[bool | None] = manager.__aexit__(None, None, None)
    assert type(via_manager) is type(via_open)
    assert code_of(via_manager) is code_of(via_open)
    assert not await via_manager


def code_of(awaitable: object) -> object:
    """The code a coroutine runs, or the awaitable's type if it is none."""
    return getattr(awaitable, "cr_code", type(awaitable))


# 16. The manager's timeouts, as asgi-lifespan reads them: at entry -------------


async def test_a_timeout_set_on_the_manager_applies_from_the_next_entry(
    backend: Backend,
) -> None:
    manager = LifespanManager(GoodApp(backend, startup_delay=1))
    async with manager:
        pass
    manager.startup_timeout = 0.5
    assert manager.startup_timeout == 0.5
    with pytest.raises(LifespanTimeout) as caught:
        async with manager:
            raise AssertionError("the body must not run")  # pragma: no cover
    assert caught.value.phase == "startup"
    assert caught.value.timeout == 0.5
    slow_stop = LifespanManager(slow_shutdown(backend), shutdown_timeout=None)
    slow_stop.shutdown_timeout = 2
    assert slow_stop.shutdown_timeout == 2
    start = backend.now()
    with pytest.raises(LifespanTimeout) as caught:
        async with slow_stop:
            pass
    assert caught.value.phase == "shutdown"
    assert caught.value.timeout == 2
    assert backend.now() - start == 2


def slow_shutdown(backend: Backend) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await backend.sleep(forever())

    return app


@pytest.mark.parametrize("name", ["startup_timeout", "shutdown_timeout"])
def test_a_timeout_set_on_the_manager_is_checked_where_it_is_set(name: str) -> None:
    manager = LifespanManager(returns_at_once, startup_timeout=1, shutdown_timeout=2)
    before = getattr(manager, name)
    with pytest.raises(
        ValueError, match=rf"^{name} must be non-negative or None, not -1$"
    ):
        setattr(manager, name, -1)
    with pytest.raises(
        TypeError, match=rf"^{name} must be a number of seconds or None, not str$"
    ):
        setattr(manager, name, "5")
    with pytest.raises(ValueError, match=rf"^{name} must be at most "):
        setattr(manager, name, 10**400)
    assert getattr(manager, name) == before
    assert (manager.startup_timeout, manager.shutdown_timeout) == (1, 2)
