"""``lifespan_of`` and ``with_lifespans``: mounted apps' lifespans, on every backend.

The shared tests run on fake time (``backends.py``): each app logs what
happens to it with the virtual time, so the order and the concurrency of
startups and shutdowns are asserted exactly, and a timeout takes no time.
The real-framework tests run on real event loops (anyio's plugin), bounded
by ``fail_after``; the real servers are in ``test_servers.py``.
"""

# pyright: reportMissingTypeStubs=false
from __future__ import annotations

import asyncio
import contextlib
import pickle
import re
import signal
import sys
import textwrap
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import anyio
import pytest
import trio
import trio.testing
from fastapi import FastAPI
from litestar import Litestar, Request as LitestarRequest, asgi, get
from litestar.datastructures import State
from litestar.types import (
    Receive as LitestarReceive,
    Scope as LitestarScope,
    Send as LitestarSend,
)
from quart import Quart
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from trio_lifespan import (
    LifespanNotASGIApp,
    LifespanNotSupported,
    LifespanShutdownFailed,
    LifespanStateConflict,
    LifespanTimeout,
    LifespanUnavailable,
    lifespan_of,
    open_lifespan,
    with_lifespans,
)
from trio_lifespan._types import Message, Receive, Scope, Send

from .apps import ROOT, Boom, client, http_request, load_example, run_python
from .backends import Backend, TrioBackend, forever
from .test_behaviour import notes, reporting_app, returns_at_once
from .test_family import crashing_app
from .typed import approx

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup

Log = list[tuple[str, float]]


class Sub:
    """A lifespan app that logs its startup and shutdown with the virtual time.

    Its startup takes ``up`` seconds, its shutdown ``down``; once cancelled,
    it cleans up for ``cleanup`` seconds. It puts ``state`` (by default
    ``{name: "<name> state"}``) in the lifespan state, and answers requests
    with the state they carry.
    """

    def __init__(
        self,
        backend: Backend,
        log: Log,
        name: str,
        *,
        up: float = 0.0,
        down: float = 0.0,
        cleanup: float = 0.0,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.backend = backend
        self.cleanup = cleanup
        self.log = log
        self.name = name
        self.up = up
        self.down = down
        self.state = {name: f"{name} state"} if state is None else state
        self.requests: list[Scope] = []

    def note(self, what: str) -> None:
        self.log.append((f"{self.name} {what}", self.backend.now()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            self.requests.append(scope)
            return
        await receive()
        try:
            await self.backend.sleep(self.up)
        except self.backend.cancelled:
            self.note("cancelled")
            raise
        scope["state"].update(self.state)
        self.note("started")
        await send({"type": "lifespan.startup.complete"})
        await receive()
        self.note("stopping")
        try:
            await self.backend.sleep(self.down)
        except self.backend.cancelled:
            self.note("cancelled")
            if self.cleanup:
                await self.backend.sleep(self.cleanup)
            raise
        self.note("stopped")
        await send({"type": "lifespan.shutdown.complete"})


def failing_startup(backend: Backend, after: float, error: BaseException) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await backend.sleep(after)
        raise error

    return app


async def fail(error: BaseException) -> None:
    """Raise ``error`` (from a function, so that what follows still type-checks)."""
    raise error


def own_lifespan(
    backend: Backend, log: Log, state: dict[str, Any] | None = None
) -> Any:
    """The parent's own lifespan, in the shape ``lifespan=`` takes."""

    @contextlib.asynccontextmanager
    async def own(app: object) -> AsyncGenerator[dict[str, Any] | None]:
        log.append((f"own started with {app!r}", backend.now()))
        yield state
        log.append(("own stopped", backend.now()))

    return own


# lifespan_of: startup, state, shutdown order ---------------------------------------


async def test_startups_run_concurrently_and_their_states_are_merged(
    backend: Backend,
) -> None:
    log: Log = []
    a, b = Sub(backend, log, "a", up=3), Sub(backend, log, "b", up=2)
    async with lifespan_of(a, b)("parent") as state:
        assert backend.now() == 3
        assert state == {"a": "a state", "b": "b state"}
    assert log == [
        ("b started", 2),
        ("a started", 3),
        ("a stopping", 3),
        ("a stopped", 3),
        ("b stopping", 3),
        ("b stopped", 3),
    ]


async def test_shutdowns_run_one_at_a_time_last_started_first_after_the_parents(
    backend: Backend,
) -> None:
    log: Log = []
    a = Sub(backend, log, "a", up=3, down=1)
    b = Sub(backend, log, "b", up=1, down=1)
    c = Sub(backend, log, "c", up=2, down=1)
    own = own_lifespan(backend, log, {"own": 1})
    async with lifespan_of(a, b, c, lifespan=own)("parent") as state:
        assert state == {"a": "a state", "b": "b state", "c": "c state", "own": 1}
        log.append(("body", backend.now()))
    assert log == [
        ("b started", 1),
        ("c started", 2),
        ("a started", 3),
        ("own started with 'parent'", 3),  # once every app has started
        ("body", 3),
        ("own stopped", 3),  # first
        ("a stopping", 3),  # then the last to have started
        ("a stopped", 4),
        ("c stopping", 4),
        ("c stopped", 5),
        ("b stopping", 5),
        ("b stopped", 6),
    ]


async def test_the_parents_own_lifespan_may_yield_nothing(backend: Backend) -> None:
    log: Log = []
    async with lifespan_of(Sub(backend, log, "a"), lifespan=own_lifespan(backend, log))(
        "parent"
    ) as state:
        assert state == {"a": "a state"}
    assert [event for event, _ in log] == [
        "a started",
        "own started with 'parent'",
        "own stopped",
        "a stopping",
        "a stopped",
    ]


async def test_no_apps_and_no_lifespan_yield_an_empty_state(backend: Backend) -> None:
    async with lifespan_of()("parent") as state:
        assert state == {}


async def test_each_startup_gets_a_new_merged_state(backend: Backend) -> None:
    lifespan = lifespan_of(Sub(backend, [], "a"))
    async with lifespan("parent") as first:
        first["added"] = True
    async with lifespan("parent") as second:
        assert second == {"a": "a state"}


# lifespan_of: failures -----------------------------------------------------------


async def test_a_failed_startup_stops_the_rest_and_its_error_comes_out_bare(
    backend: Backend,
) -> None:
    log: Log = []
    error = Boom("the database is unreachable")
    first = Sub(backend, log, "first", up=1, down=1)
    second = Sub(backend, log, "second", up=2, down=1)
    starting = Sub(backend, log, "starting", up=forever())
    own = own_lifespan(backend, log)
    body_ran = False
    with pytest.raises(Boom) as caught:
        async with lifespan_of(
            first, failing_startup(backend, 3, error), second, starting, lifespan=own
        )("parent"):
            body_ran = True  # pragma: no cover
    assert caught.value is error
    assert not body_ran
    assert log == [
        ("first started", 1),
        ("second started", 2),
        ("starting cancelled", 3),  # still starting: cancelled at once
        ("second stopping", 3),  # the started ones: in reverse order
        ("second stopped", 4),
        ("first stopping", 4),
        ("first stopped", 5),
    ]  # and the parent's own lifespan never started


async def test_a_startup_timeout_is_a_lifespan_timeout(backend: Backend) -> None:
    log: Log = []
    started = Sub(backend, log, "started")
    with pytest.raises(LifespanTimeout) as caught:
        async with lifespan_of(
            started, Sub(backend, log, "slow", up=forever()), startup_timeout=2
        )("parent"):
            pass  # pragma: no cover
    assert (caught.value.phase, caught.value.timeout) == ("startup", 2)
    assert log[-1] == ("started stopped", 2)


async def test_the_parents_own_lifespan_failing_shuts_the_apps_down(
    backend: Backend,
) -> None:
    log: Log = []
    error = Boom("own startup")

    @contextlib.asynccontextmanager
    async def own(app: object) -> AsyncGenerator[None]:
        await fail(error)
        yield  # pragma: no cover

    with pytest.raises(Boom) as caught:
        async with lifespan_of(Sub(backend, log, "a"), lifespan=own)("parent"):
            pass  # pragma: no cover
    assert caught.value is error
    assert [event for event, _ in log] == ["a started", "a stopping", "a stopped"]


async def test_the_parents_own_lifespan_is_bounded_by_the_startup_timeout(
    backend: Backend,
) -> None:
    log: Log = []

    @contextlib.asynccontextmanager
    async def hangs(app: object) -> AsyncGenerator[None]:
        await backend.sleep(forever())
        yield  # pragma: no cover

    with pytest.raises(LifespanTimeout) as caught:
        async with lifespan_of(
            Sub(backend, log, "a", up=1), lifespan=hangs, startup_timeout=3
        )("parent"):
            pass  # pragma: no cover
    assert (caught.value.phase, caught.value.timeout) == ("startup", 3)
    assert log[1:] == [("a stopping", 4), ("a stopped", 4)]


@pytest.mark.parametrize("cleanup", [0.0, 10.0], ids=["", "stubborn"])
async def test_each_shutdown_is_bounded_and_the_next_ones_still_run(
    backend: Backend, cleanup: float
) -> None:
    # A stubborn app, once cancelled, awaits a cleanup: cancelled too on
    # trio, waited for on asyncio, which cancels once (timeouts.rst); the
    # next app's shutdown comes after it either way.
    log: Log = []
    hangs = Sub(backend, log, "hangs", up=2, down=forever(), cleanup=cleanup)
    other = Sub(backend, log, "other", up=1, down=1)
    with pytest.raises(LifespanTimeout) as caught:
        async with lifespan_of(other, hangs, shutdown_timeout=3)("parent"):
            pass
    assert (caught.value.phase, caught.value.timeout) == ("shutdown", 3)
    ended = 5 + (cleanup if backend.name == "asyncio" else 0)
    assert log[2:] == [
        ("hangs stopping", 2),
        ("hangs cancelled", 5),
        ("other stopping", ended),
        ("other stopped", ended + 1),
    ]


async def test_several_shutdown_failures_are_one_group_in_the_order_they_came(
    backend: Backend,
) -> None:
    one = reporting_app(backend, "shutdown", "return", "first")
    two = reporting_app(backend, "shutdown", "return", "second")
    late = Sub(backend, [], "late", up=1)
    with pytest.raises(ExceptionGroup) as caught:
        async with lifespan_of(one, late, two)("parent"):
            pass
    assert caught.value.message == "2 lifespans failed"
    assert [type(e) for e in caught.value.exceptions] == [LifespanShutdownFailed] * 2
    # one and two started together; the later one is shut down first.
    assert {str(e.args[0]) for e in caught.value.exceptions} == {"first", "second"}


async def test_an_app_crash_while_running_cancels_the_block_and_comes_out(
    backend: Backend,
) -> None:
    log: Log = []
    error = Boom("crashed")
    body: list[str] = []
    with pytest.raises(Boom) as caught:
        async with lifespan_of(
            Sub(backend, log, "a", down=1), crashing_app(backend, 2, error)
        )("parent"):
            try:
                await backend.sleep(forever())
            except backend.cancelled:
                body.append(f"cancelled at {backend.now()}")
                raise
    assert caught.value is error
    assert body == ["cancelled at 2.0"]
    assert log[-2:] == [("a stopping", 2), ("a stopped", 3)]


async def test_the_block_raising_still_shuts_every_app_down_in_order(
    backend: Backend,
) -> None:
    log: Log = []
    error = KeyError("body")
    with pytest.raises(KeyError) as caught:
        async with lifespan_of(
            Sub(backend, log, "a", up=1), Sub(backend, log, "b", up=2)
        )("parent"):
            raise error
    assert caught.value is error
    assert [event for event, _ in log][2:] == [
        "b stopping",
        "b stopped",
        "a stopping",
        "a stopped",
    ]


async def test_an_outer_cancel_in_the_block_shuts_down_in_order_then_goes_on(
    backend: Backend,
) -> None:
    log: Log = []
    apps = [Sub(backend, log, "a", down=1), Sub(backend, log, "b", up=1, down=1)]
    with backend.move_on_after(5) as deadline:
        async with lifespan_of(*apps)("parent"):
            await backend.sleep(forever())
    assert deadline.cancelled_caught
    assert log[2:] == [
        ("b stopping", 5),
        ("b stopped", 6),
        ("a stopping", 6),
        ("a stopped", 7),
    ]


async def test_an_outer_cancel_in_startup_stops_the_started_ones(
    backend: Backend,
) -> None:
    log: Log = []
    with backend.move_on_after(2) as deadline:
        async with lifespan_of(
            Sub(backend, log, "started", up=1), Sub(backend, log, "slow", up=forever())
        )("parent"):
            pass  # pragma: no cover
    assert deadline.cancelled_caught
    assert log == [
        ("started started", 1),
        ("slow cancelled", 2),
        ("started stopping", 2),
        ("started stopped", 2),
    ]


async def test_an_outer_cancel_during_the_shutdowns_waits_for_them_then_goes_on(
    backend: Backend,
) -> None:
    log: Log = []
    apps = [Sub(backend, log, "a", down=1), Sub(backend, log, "b", up=1, down=1)]
    with backend.move_on_after(1.5) as deadline:
        async with lifespan_of(*apps)("parent"):
            pass
        await backend.checkpoint()  # (trio raises it at the next checkpoint)
    assert deadline.cancelled_caught
    assert log[2:] == [
        ("b stopping", 1),
        ("b stopped", 2),
        ("a stopping", 2),
        ("a stopped", 3),
    ]


def test_a_ctrl_c_during_the_shutdowns_stops_waiting_in_turn() -> None:
    # trio: Ctrl-C reaches the task walking the shutdowns (a signal while the
    # run loop runs, which is KI-protected, is delivered to the main task).
    backend = TrioBackend()
    log: Log = []

    class CtrlC(Sub):
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            async def send_then_interrupt(message: Message) -> None:
                if message["type"] == "lifespan.shutdown.complete":
                    token = trio.lowlevel.current_trio_token()
                    token.run_sync_soon(signal.raise_signal, signal.SIGINT)
                await send(message)

            await super().__call__(scope, receive, send_then_interrupt)

    first = Sub(backend, log, "first", down=1)
    second = Sub(backend, log, "second", up=1, down=1)
    last = CtrlC(backend, log, "last", up=2, down=1)

    async def main() -> None:
        async with lifespan_of(first, second, last)("parent"):
            pass

    with pytest.raises(KeyboardInterrupt):
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert log[3:5] == [("last stopping", 2), ("last stopped", 3)]
    # The walk stopped there: the others were sent their shutdowns together,
    # and cancelled at once.
    assert sorted(log[5:]) == [
        ("first cancelled", 3),
        ("first stopping", 3),
        ("second cancelled", 3),
        ("second stopping", 3),
    ]


def test_on_asyncio_a_cancel_at_the_exit_of_no_apps_comes_out() -> None:
    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        with pytest.raises(asyncio.CancelledError):
            async with lifespan_of()("parent"):
                task.cancel()  # lands at the exit's yield
        if sys.version_info >= (3, 11):
            task.uncancel()

    asyncio.run(main())


async def test_allow_unsupported_applies_to_every_app(backend: Backend) -> None:
    with pytest.raises(LifespanNotSupported):
        async with lifespan_of(returns_at_once)("parent"):
            pass  # pragma: no cover
    async with lifespan_of(
        returns_at_once, Sub(backend, [], "a"), allow_unsupported=True
    )("parent") as state:
        assert state == {"a": "a state"}


# State conflicts -------------------------------------------------------------------


async def test_two_apps_setting_one_key_fail_the_startup_naming_both(
    backend: Backend,
) -> None:
    log: Log = []
    first = Sub(backend, log, "first", state={"db": 1, "x": 1})
    second = Sub(backend, log, "second", up=1, state={"db": 2})
    with pytest.raises(LifespanStateConflict) as caught:
        async with lifespan_of(first, second)("parent"):
            pass  # pragma: no cover
    assert str(caught.value) == (
        "apps[0] (Sub) and apps[1] (Sub) both set the lifespan state key 'db', and "
        "the requests to every app see one merged state. Rename the key in one of "
        "them, or keep each app's values under a key of its own."
    )
    assert (caught.value.key, caught.value.first, caught.value.second) == (
        "db",
        "apps[0] (Sub)",
        "apps[1] (Sub)",
    )
    assert isinstance(caught.value, ValueError)
    assert [event for event, _ in log][2:] == [
        "second stopping",
        "second stopped",
        "first stopping",
        "first stopped",
    ]


async def test_the_parents_own_state_conflicting_names_its_lifespan(
    backend: Backend,
) -> None:
    log: Log = []
    own = own_lifespan(backend, log, {"a": "mine"})
    with pytest.raises(LifespanStateConflict) as caught:
        async with lifespan_of(Sub(backend, log, "a"), lifespan=own)("parent"):
            pass  # pragma: no cover
    assert (caught.value.first, caught.value.second) == (
        "apps[0] (Sub)",
        "lifespan (own_lifespan.<locals>.own)",
    )
    assert [event for event, _ in log][-3:] == [
        "own stopped",
        "a stopping",
        "a stopped",
    ]


def test_the_conflict_error_pickles_with_its_data() -> None:
    error = LifespanStateConflict("db", "apps[0] (A)", "apps[1] (B)")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is LifespanStateConflict
    assert (copy.key, copy.first, copy.second) == ("db", "apps[0] (A)", "apps[1] (B)")
    assert str(copy) == str(error)


# lifespan_of: arguments -------------------------------------------------------------


def test_lifespan_of_checks_its_arguments() -> None:
    with pytest.raises(
        LifespanNotASGIApp, match=r"^apps\[1\] must be an ASGI app .*, not int$"
    ):
        lifespan_of(returns_at_once, 3)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError,
        match=r"^lifespan must be a callable that takes the app and returns an "
        r"async context manager \(as lifespan= takes\), not dict$",
    ):
        lifespan_of(lifespan={})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^startup_timeout must be non-negative"):
        lifespan_of(startup_timeout=-1)
    with pytest.raises(TypeError, match=r"^allow_unsupported must be True or False"):
        lifespan_of(allow_unsupported=1)  # type: ignore[arg-type]


async def undecorated(app: object) -> AsyncGenerator[None]:
    yield  # pragma: no cover


def test_lifespan_of_says_what_lifespan_cannot_be_at_the_call() -> None:
    wants = (
        r"^lifespan must be a callable that takes the app and returns an async "
        r"context manager \(as lifespan= takes\); "
    )
    with pytest.raises(
        TypeError,
        match=wants + r"undecorated is an async generator function: decorate it "
        r"with @contextlib.asynccontextmanager$",
    ):
        lifespan_of(lifespan=undecorated)  # type: ignore[arg-type]
    # The mounted app itself, passed as lifespan= by mistake.
    with pytest.raises(
        TypeError,
        match=wants + r"returns_at_once cannot be called with one argument, the "
        r"app: returns_at_once\(scope: 'Scope', receive: 'Receive', send: "
        r"'Send'\) -> 'None'. An ASGI app to run the lifespan of goes among the "
        r"apps, not in lifespan=$",
    ):
        lifespan_of(lifespan=returns_at_once)  # type: ignore[arg-type]
    # A callable with no signature to read (a builtin, here) is trusted.
    no_signature: Any = max
    assert repr(lifespan_of(lifespan=no_signature)) == "lifespan_of(lifespan=max)"


@contextlib.contextmanager
def synchronous(app: object) -> Generator[None]:
    yield  # pragma: no cover


@contextlib.asynccontextmanager
async def yields_a_list(app: object) -> AsyncGenerator[Any]:
    yield [("key", 1)]


@pytest.mark.parametrize(
    ("lifespan", "message"),
    [
        (
            synchronous,
            "lifespan= synchronous returned _GeneratorContextManager, not an async "
            "context manager: make it an async function decorated with "
            "@contextlib.asynccontextmanager",
        ),
        (
            yields_a_list,
            "lifespan= yields_a_list yielded list, not a mapping of state to add "
            "(a dict) or None",
        ),
    ],
)
async def test_a_lifespan_of_the_wrong_shape_fails_the_startup_clearly(
    backend: Backend, lifespan: Any, message: str
) -> None:
    with pytest.raises(TypeError) as caught:
        async with lifespan_of(lifespan=lifespan)(None):
            raise AssertionError("must not start")
    assert str(caught.value) == message
    assert notes(caught.value) == [
        f"trio_lifespan: from lifespan ({lifespan.__name__})"
    ]


def test_a_nested_lifespan_of_is_named_by_what_it_runs() -> None:
    inner = lifespan_of(returns_at_once, Starlette())
    outer = lifespan_of(lifespan=inner)
    assert (
        repr(outer) == "lifespan_of(lifespan=lifespan_of(returns_at_once, Starlette))"
    )


def test_lifespan_of_shows_what_it_runs() -> None:
    @contextlib.asynccontextmanager
    async def own(app: object) -> AsyncGenerator[None]:
        yield  # pragma: no cover

    assert repr(lifespan_of(returns_at_once, Starlette())) == (
        "lifespan_of(returns_at_once, Starlette)"
    )
    assert (
        repr(lifespan_of(lifespan=own))
        == "lifespan_of(lifespan=test_lifespan_of_shows_what_it_runs.<locals>.own)"
    )


def test_it_needs_a_running_async_library() -> None:
    manager = lifespan_of(returns_at_once)("parent")
    entering = manager.__aenter__()
    with pytest.raises(
        RuntimeError, match=r"^lifespan_of\(\) found no running async library"
    ):
        entering.send(None)


# with_lifespans ------------------------------------------------------------------


async def test_with_lifespans_runs_the_sub_apps_then_the_app_and_fills_the_state(
    backend: Backend,
) -> None:
    log: Log = []
    parent = Sub(backend, log, "parent", down=1)
    a, b = Sub(backend, log, "a", up=2, down=1), Sub(backend, log, "b", up=1, down=1)
    async with open_lifespan(with_lifespans(parent, a, b)) as server:
        merged = {"a": "a state", "b": "b state", "parent": "parent state"}
        assert dict(server.state) == merged
        scope = await http_request(server, "/a")
        assert parent.requests == [scope]
        assert scope["state"] == merged
    assert log == [
        ("b started", 1),
        ("a started", 2),
        ("parent started", 2),
        ("parent stopping", 2),
        ("parent stopped", 3),
        ("a stopping", 3),
        ("a stopped", 4),
        ("b stopping", 4),
        ("b stopped", 5),
    ]


class Server:
    """A server that puts no ``"state"`` in the lifespan scope: it sends the
    lifespan messages, and between startup and shutdown the given requests
    (each a scope) through the app, recording what the app sends."""

    def __init__(self, app: Any, requests: list[Scope]) -> None:
        self.app = app
        self.requests = requests
        self.inbox = ["lifespan.startup", "lifespan.shutdown"]
        self.sent: list[Message] = []

    async def run(self) -> None:
        await self.app({"type": "lifespan"}, self.receive, self.send)

    async def receive(self) -> Message:
        kind = self.inbox.pop(0)
        if kind == "lifespan.shutdown":
            for scope in self.requests:
                await self.app(scope, self.receive, self.send)
        return {"type": kind}

    async def send(self, message: Message) -> None:
        self.sent.append(message)


async def test_with_lifespans_gives_requests_the_state_when_the_server_does_not(
    backend: Backend,
) -> None:
    parent = Sub(backend, [], "parent")
    bare: Scope = {"type": "http"}
    carrying: Scope = {"type": "websocket", "state": {"mine": 1, "a": "overridden"}}
    other: Scope = {"type": "custom"}
    server = Server(
        with_lifespans(parent, Sub(backend, [], "a")), [bare, carrying, other]
    )
    await server.run()
    assert server.sent == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]
    assert parent.requests == [bare, carrying, other]
    assert bare["state"] == {"a": "a state", "parent": "parent state"}
    assert carrying["state"] == {"a": "overridden", "parent": "parent state", "mine": 1}
    assert "state" not in other


async def test_with_lifespans_reports_a_failed_startup_with_its_traceback(
    backend: Backend,
) -> None:
    log: Log = []
    error = Boom("the sub-app's database is unreachable")
    parent = Sub(backend, log, "parent")
    server = Server(
        with_lifespans(
            parent, Sub(backend, log, "a", down=1), failing_startup(backend, 1, error)
        ),
        [],
    )
    with pytest.raises(Boom) as caught:
        await server.run()
    assert caught.value is error
    [report] = server.sent
    assert report["type"] == "lifespan.startup.failed"
    assert report["message"].startswith("Traceback (most recent call last):\n")
    assert report["message"].endswith(
        "tests.apps.Boom: the sub-app's database is unreachable\n"
        "trio_lifespan: from sub_apps[1] (failing_startup.<locals>.app)\n"
    )
    assert log == [("a started", 0), ("a stopping", 1), ("a stopped", 2)]


async def test_with_lifespans_reports_a_failed_shutdown_and_raises(
    backend: Backend,
) -> None:
    server = Server(
        with_lifespans(
            Sub(backend, [], "parent"), reporting_app(backend, "shutdown", "return")
        ),
        [],
    )
    with pytest.raises(LifespanShutdownFailed):
        await server.run()
    assert [message["type"] for message in server.sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.failed",
    ]
    assert "LifespanShutdownFailed: the app reported" in server.sent[1]["message"]


async def test_a_sub_app_crash_under_with_lifespans_reaches_the_server(
    backend: Backend,
) -> None:
    error = Boom("crashed")
    with pytest.raises(Boom) as caught:
        async with open_lifespan(
            with_lifespans(Sub(backend, [], "parent"), crashing_app(backend, 1, error))
        ):
            await backend.sleep(forever())
    assert caught.value is error


async def test_with_lifespans_state_conflicts_name_the_sub_app_and_the_app(
    backend: Backend,
) -> None:
    with pytest.raises(LifespanStateConflict) as caught:
        async with open_lifespan(
            with_lifespans(Sub(backend, [], "a"), Sub(backend, [], "a"))
        ):
            pass  # pragma: no cover
    assert (caught.value.first, caught.value.second) == (
        "sub_apps[0] (Sub)",
        "app (Sub)",
    )


async def test_a_router_without_lifespan_needs_allow_unsupported(
    backend: Backend,
) -> None:
    routed: list[Scope] = []

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return  # a plain router: no lifespan of its own
        routed.append(scope)

    with pytest.raises(LifespanNotSupported):
        async with open_lifespan(with_lifespans(router, Sub(backend, [], "a"))):
            pass  # pragma: no cover
    async with open_lifespan(
        with_lifespans(router, Sub(backend, [], "a"), allow_unsupported=True)
    ) as server:
        await http_request(server)
    assert routed[0]["state"] == {"a": "a state"}


def test_with_lifespans_checks_its_arguments() -> None:
    with pytest.raises(
        LifespanNotASGIApp, match=r"^app must be an ASGI app .*, not str$"
    ):
        with_lifespans("app")  # type: ignore[arg-type]
    with pytest.raises(
        LifespanNotASGIApp, match=r"^sub_apps\[0\] must be an ASGI app .*, not None"
    ):
        with_lifespans(returns_at_once, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^shutdown_timeout must be non-negative"):
        with_lifespans(returns_at_once, shutdown_timeout=-1)
    assert repr(with_lifespans(returns_at_once, Starlette())) == (
        "with_lifespans(returns_at_once, Starlette)"
    )


# asyncio never loads trio -----------------------------------------------------------


def test_on_asyncio_neither_entry_point_imports_trio() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from contextlib import asynccontextmanager
        import trio_lifespan

        async def sub(scope, receive, send):
            await receive()
            scope["state"]["sub"] = 1
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})

        @asynccontextmanager
        async def own(app):
            yield {"own": 2}

        async def main():
            async with trio_lifespan.lifespan_of(sub, lifespan=own)(None) as state:
                assert state == {"sub": 1, "own": 2}, state
            twin = lambda *args: sub(*args)  # the same state key, another app
            server = trio_lifespan.with_lifespans(sub, twin, allow_unsupported=True)
            try:
                async with trio_lifespan.open_lifespan(server):
                    pass
            except trio_lifespan.LifespanStateConflict:
                pass

        asyncio.run(main())
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("trio", "outcome")))
        """
    )
    assert run_python("-c", script) == "[]\n"


# Real frameworks, in process ------------------------------------------------------

GUARD = 20  # seconds: far above what any of these takes


def starlette_sub(events: list[str]) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, Any]]:
        events.append("starlette startup")
        yield {"starlette_value": "set by the starlette sub-app"}
        events.append("starlette shutdown")

    async def state(request: Request) -> JSONResponse:
        return JSONResponse(getattr(request.state, "starlette_value", None))

    # A catch-all route: Litestar mounts strip the prefix but leave a slash.
    return Starlette(routes=[Route("/{rest:path}", state)], lifespan=lifespan)


def litestar_sub(events: list[str]) -> Litestar:
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None]:
        events.append("litestar startup")
        app.state.litestar_value = "set by the litestar sub-app"
        yield
        events.append("litestar shutdown")

    @get("/state", sync_to_thread=False)
    def state(state: State) -> str:
        return str(state.litestar_value)

    @get("/request-state", sync_to_thread=False)
    def request_state(request: LitestarRequest[Any, Any, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = request.state.dict()
        return merged

    return Litestar(route_handlers=[state, request_state], lifespan=[lifespan])


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio", "asyncio"])
async def test_a_fastapi_parent_runs_its_mounted_starlette_and_litestar_apps(
    anyio_backend: str,
) -> None:
    events: list[str] = []
    starlette, litestar = starlette_sub(events), litestar_sub(events)
    parent = FastAPI(lifespan=lifespan_of(starlette, litestar))
    parent.mount("/starlette", starlette)
    parent.mount("/litestar", litestar)  # type: ignore[arg-type]
    with anyio.fail_after(GUARD):
        async with open_lifespan(parent) as app:
            assert sorted(events) == ["litestar startup", "starlette startup"]
            async with client(app) as http:
                first = await http.get("/starlette/state")
                second = await http.get("/litestar/state")
                third = await http.get("/litestar/request-state")
    assert first.json() == "set by the starlette sub-app"
    assert second.text == "set by the litestar sub-app"
    # A Litestar sub-app's requests see the merged state too.
    assert third.json() == {"starlette_value": "set by the starlette sub-app"}
    assert sorted(events[2:]) == ["litestar shutdown", "starlette shutdown"]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio", "asyncio"])
async def test_a_starlette_parent_fails_to_start_with_its_sub_apps_error(
    anyio_backend: str,
) -> None:
    events: list[str] = []
    error = Boom("the litestar sub-app's startup failed")

    @contextlib.asynccontextmanager
    async def broken(app: Litestar) -> AsyncGenerator[None]:
        await fail(error)
        yield  # pragma: no cover

    failing = Litestar(lifespan=[broken])
    parent = Starlette(
        routes=[Mount("/ok", starlette_sub(events)), Mount("/broken", failing)],  # type: ignore[arg-type]
        lifespan=lifespan_of(starlette_sub(events), failing),
    )
    with anyio.fail_after(GUARD), pytest.raises(Boom) as caught:
        async with open_lifespan(parent):
            pass  # pragma: no cover
    assert caught.value is error
    assert events == ["starlette startup", "starlette shutdown"]


@asgi("/starlette", is_mount=True, copy_scope=False)
async def _mounted_in_litestar(
    scope: LitestarScope, receive: LitestarReceive, send: LitestarSend
) -> None:
    await MOUNTED_IN_LITESTAR[0](scope, receive, send)  # type: ignore[arg-type]


MOUNTED_IN_LITESTAR: list[Starlette] = []


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio", "asyncio"])
async def test_a_litestar_parent_drops_the_state_so_wrap_it_with_lifespans(
    anyio_backend: str,
) -> None:
    events: list[str] = []
    starlette = starlette_sub(events)
    MOUNTED_IN_LITESTAR[:] = [starlette]
    # Litestar runs lifespan_of's context manager but ignores what it yields:
    # the sub-app starts, its state never reaches its requests.
    dropped = Litestar(
        route_handlers=[_mounted_in_litestar], lifespan=[lifespan_of(starlette)]
    )
    # with_lifespans gives the server the merged state: it reaches them.
    wrapped = with_lifespans(Litestar(route_handlers=[_mounted_in_litestar]), starlette)
    answers: list[object] = []
    with anyio.fail_after(GUARD):
        for parent in (dropped, wrapped):
            async with open_lifespan(parent) as app, client(app) as http:
                answers.append((await http.get("/starlette/state")).json())
    assert answers == [None, "set by the starlette sub-app"]
    assert events == ["starlette startup", "starlette shutdown"] * 2


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio", "asyncio"])
async def test_without_lifespan_of_a_mounted_app_never_starts(
    anyio_backend: str,
) -> None:
    events: list[str] = []
    parent = FastAPI()
    parent.mount("/starlette", starlette_sub(events))
    with anyio.fail_after(GUARD):
        async with open_lifespan(parent) as app, client(app) as http:
            answer = await http.get("/starlette/state")
    assert events == []
    assert answer.json() is None  # its state was never set


# The how-to's claims ---------------------------------------------------------------


def starlette_app(backend: Backend, log: Log, name: str, up: float = 0.0) -> Starlette:
    """A Starlette app whose lifespan takes ``up`` seconds and sets a state."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, Any]]:
        await backend.sleep(up)
        log.append((f"{name} started", backend.now()))
        yield {name: f"{name} state"}
        log.append((f"{name} stopped", backend.now()))

    async def state(request: Request) -> JSONResponse:
        return JSONResponse(getattr(request.state, name, None))

    return Starlette(routes=[Route("/", state)], lifespan=lifespan)


async def test_the_recipe_starts_the_apps_one_after_the_other(
    backend: Backend,
) -> None:
    recipe = load_example("mounted_recipe").exit_stack_lifespan
    apps = [
        starlette_app(backend, [], "a", up=2),
        starlette_app(backend, [], "b", up=2),
    ]
    async with recipe(*apps)("parent"):
        assert backend.now() == 4
    start = backend.now()
    async with lifespan_of(*apps)("parent"):
        assert backend.now() - start == 2


async def test_the_recipe_never_gives_up_on_a_startup_that_hangs(
    backend: Backend,
) -> None:
    recipe = load_example("mounted_recipe").exit_stack_lifespan
    hangs = starlette_app(backend, [], "a", up=forever())
    with backend.move_on_after(1000) as deadline:
        async with recipe(hangs)("parent"):
            pass  # pragma: no cover
    assert deadline.cancelled_caught  # still waiting after 1000 s
    start = backend.now()
    with pytest.raises(LifespanTimeout):
        async with lifespan_of(hangs)("parent"):
            pass  # pragma: no cover
    assert backend.now() - start == 5


async def test_the_recipe_drops_the_state_lifespan_of_passes_it_on(
    backend: Backend,
) -> None:
    recipe = load_example("mounted_recipe").exit_stack_lifespan
    answers: list[object] = []
    for lifespan in (recipe, lifespan_of):
        admin = starlette_app(backend, [], "admin")
        parent = Starlette(routes=[Mount("/admin", admin)], lifespan=lifespan(admin))
        async with open_lifespan(parent) as app, client(app) as http:
            answers.append((await http.get("/admin/")).json())
    assert answers == [None, "admin state"]


@pytest.mark.parametrize("framework", ["Litestar", "Quart"])
def test_the_recipe_reaches_only_apps_built_on_starlettes_router(
    framework: str,
) -> None:
    recipe = load_example("mounted_recipe").exit_stack_lifespan
    mounted = Litestar() if framework == "Litestar" else Quart(__name__)

    async def enter() -> None:
        async with recipe(mounted)("parent"):
            pass  # pragma: no cover

    with pytest.raises(
        AttributeError, match=rf"^'{framework}' object has no attribute 'router'$"
    ):
        trio.run(enter)


async def test_the_nested_pattern_adds_to_the_state_and_wraps_its_code(
    backend: Backend,
) -> None:
    nested = load_example("mounted_recipe").nested_lifespan
    log: Log = []
    admin = starlette_app(backend, log, "admin", up=1)
    parent = Starlette(routes=[Mount("/admin", admin)], lifespan=nested(admin))
    async with open_lifespan(parent) as app:
        assert dict(app.state) == {"admin": "admin state", "greeting": "hello"}
        async with client(app) as http:
            assert (await http.get("/admin/")).json() == "admin state"
    assert log == [("admin started", 1), ("admin stopped", 1)]


async def test_a_crash_reaches_the_server_of_a_starlette_parent(
    backend: Backend,
) -> None:
    error = Boom("crashed")
    parent = Starlette(lifespan=lifespan_of(crashing_app(backend, 1, error)))
    with pytest.raises(Boom) as caught:
        async with open_lifespan(parent):
            await backend.sleep(forever())
    assert caught.value is error


def run_example(name: str) -> list[str]:
    return run_python(f"docs/examples/{name}.py").splitlines()


def test_the_fastapi_and_mcp_example_prints_what_the_how_to_shows() -> None:
    printed = run_example("mounted_fastapi")
    assert printed == [
        "admin: startup",
        "main: startup",
        "GET / -> hello",
        "GET /admin/users -> ['ada', 'grace']",
        "MCP add(2, 3) -> {'result': 5}",
        "main: shutdown",
        "admin: shutdown",
    ]
    howto = (ROOT / "docs" / "howto" / "mounted.rst").read_text()
    assert "\n".join(f"   {line}" for line in printed) in howto


def test_the_dispatcher_example_runs_on_asyncio() -> None:
    assert run_example("mounted_anywhere") == [
        "users: startup",
        "billing: startup",
        "GET /users -> ['ada', 'grace']",
        "GET /billing -> EUR",
        "billing: shutdown",
        "users: shutdown",
    ]


# The parent's own shutdown is as graceful as the sub-apps' -------------------


@pytest.mark.parametrize("shape", ["lifespan_of", "with_lifespans"])
async def test_a_sub_app_crashing_during_the_parents_shutdown_does_not_cut_it(
    backend: Backend, shape: str
) -> None:
    # The parent's shutdown closes what a sub-app's worker uses; the worker
    # dies; the parent goes on flushing for 1 s, and its shutdown completes.
    log: list[str] = []
    error = Boom("the worker lost its client")
    closed = anyio.Event()

    async def worker_app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await closed.wait()
        raise error

    @contextlib.asynccontextmanager
    async def own(app: object) -> AsyncGenerator[None]:
        yield
        closed.set()
        try:
            await backend.sleep(1)
        except backend.cancelled:
            log.append("flush cut short")
            raise
        log.append("flushed")

    began = backend.now()
    with pytest.raises(Boom) as caught:
        if shape == "lifespan_of":
            async with lifespan_of(worker_app, lifespan=own)(None):
                pass
        else:

            async def parent(scope: Scope, receive: Receive, send: Send) -> None:
                await receive()
                async with own(None):
                    await send({"type": "lifespan.startup.complete"})
                    await receive()
                await send({"type": "lifespan.shutdown.complete"})

            async with open_lifespan(with_lifespans(parent, worker_app)):
                pass
    assert caught.value is error
    assert log == ["flushed"]
    assert backend.now() - began == approx(1, abs=1e-3)


async def test_each_error_names_the_app_it_came_from(backend: Backend) -> None:
    # Three apps share one startup limit: the timeout says which one hung.
    log: list[tuple[str, float]] = []
    hung = Sub(backend, log, "hung", up=forever())
    with pytest.raises(LifespanTimeout) as caught:
        async with lifespan_of(Sub(backend, log, "a"), hung, Sub(backend, log, "b"))(
            None
        ):
            raise AssertionError("must not start")
    assert notes(caught.value) == ["trio_lifespan: from apps[1] (Sub)"]

    @contextlib.asynccontextmanager
    async def own(app: object) -> AsyncGenerator[None]:
        yield
        raise Boom("the parent's flush failed")

    with pytest.raises(Boom) as caught_own:
        async with lifespan_of(Sub(backend, log, "c"), lifespan=own)(None):
            pass
    assert notes(caught_own.value) == [
        "trio_lifespan: from lifespan "
        "(test_each_error_names_the_app_it_came_from.<locals>.own)"
    ]

    # Both fail at their shutdowns: the parent's error comes out, and the
    # note of the sub-app's says which app that was.
    with pytest.raises(Boom) as caught_both:
        async with lifespan_of(
            reporting_app(backend, "shutdown", "raise"), lifespan=own
        )(None):
            pass
    assert str(caught_both.value) == "the parent's flush failed"
    assert notes(caught_both.value)[-1] == (
        "trio_lifespan: the app's lifespan failed too, after this exception: "
        "Boom: from the hook (from apps[0] (reporting_app.<locals>.app))"
    )


async def test_with_lifespans_refuses_requests_once_a_sub_app_crashed(
    backend: Backend,
) -> None:
    # The server goes on serving after the crash (uvicorn does): requests
    # must not reach apps whose lifespans are gone.
    log: list[tuple[str, float]] = []
    error = Boom("the pool died")
    parent = Sub(backend, log, "parent")
    middleware = with_lifespans(parent, crashing_app(backend, 1, error))
    crashed = anyio.Event()

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def wait_for_ever() -> Message:
        await backend.sleep(forever())
        raise AssertionError("the server never shuts down here")

    inbox = [receive, wait_for_ever]

    async def from_server() -> Message:
        return await inbox.pop(0)()

    sent: list[Message] = []

    async def to_server(message: Message) -> None:
        sent.append(message)

    async def lifespan() -> None:
        with pytest.raises(Boom) as caught:
            await middleware({"type": "lifespan"}, from_server, to_server)
        assert caught.value is error
        crashed.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(lifespan)
        await crashed.wait()
    assert [message["type"] for message in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.failed",
    ]
    with pytest.raises(LifespanUnavailable) as refused:
        await http_request(middleware)
    assert refused.value.error is error
    assert parent.requests == []


def given_twice_to_lifespan_of(app: Sub, other: Sub) -> object:
    return lifespan_of(app, other, app)


def given_twice_to_with_lifespans(app: Sub, other: Sub) -> object:
    return with_lifespans(app, other, app)


def given_again_to_a_nested_lifespan_of(app: Sub, other: Sub) -> object:
    return lifespan_of(app, lifespan=lifespan_of(other, lifespan=lifespan_of(app)))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            given_twice_to_lifespan_of,
            "apps[0] (Sub) and apps[2] (Sub) are the same app",
        ),
        (
            given_twice_to_with_lifespans,
            "app (Sub) and sub_apps[1] (Sub) are the same app",
        ),
        (
            given_again_to_a_nested_lifespan_of,
            "apps[0] (Sub) and lifespan's lifespan's apps[0] (Sub) are the same app",
        ),
    ],
)
def test_an_app_given_twice_is_an_error(
    make: Callable[[Sub, Sub], object], message: str
) -> None:
    log: list[tuple[str, float]] = []
    app, other = Sub(TrioBackend(), log, "a"), Sub(TrioBackend(), log, "b")
    with pytest.raises(
        ValueError, match=rf"^{re.escape(message)}: its lifespan"
    ) as caught:
        make(app, other)
    assert str(caught.value).endswith(
        "would run twice. Pass each app once, at the level where it is mounted "
        "(an app that runs its sub-apps' lifespans itself, as hypercorn's "
        "DispatcherMiddleware does, needs none of them here)"
    )


async def test_a_fastapi_parents_shutdown_outlives_a_starlette_sub_apps_crash(
    backend: Backend,
) -> None:
    # The same with real frameworks: FastAPI's own lifespan closes what the
    # Starlette sub-app's worker uses, the worker dies in the sub-app's task
    # group, and FastAPI's shutdown still runs to its end.
    log: list[str] = []
    error = Boom("the worker lost its client")
    closed = anyio.Event()

    async def worker() -> None:
        await closed.wait()
        raise error

    @contextlib.asynccontextmanager
    async def sub_lifespan(app: Starlette) -> AsyncGenerator[None]:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(worker)
            yield
            tasks.cancel_scope.cancel()

    @contextlib.asynccontextmanager
    async def own(app: FastAPI) -> AsyncGenerator[None]:
        yield
        closed.set()
        await backend.sleep(1)
        log.append("flushed")

    sub = Starlette(lifespan=sub_lifespan)
    parent = FastAPI(lifespan=lifespan_of(sub, lifespan=own))
    parent.mount("/sub", sub)
    began = backend.now()
    with pytest.raises(Boom) as caught:
        async with open_lifespan(parent):
            pass
    assert caught.value is error
    assert log == ["flushed"]
    assert backend.now() - began == approx(1, abs=1e-3)
