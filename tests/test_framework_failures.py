"""Real frameworks failing every way, on each backend they run on, on fake time.

For each framework of :data:`tests.frameworks.FRAMEWORKS` and each backend it
supports: a startup hook that raises or hangs, a shutdown hook that raises or
hangs, something the lifespan keeps running that crashes while the ``async
with`` body runs, and the same crash while the lifespan is held in another
task (a fixture) and the test task sends a request. What comes out is pinned
exactly, framework by framework: the hook's own exception (the very object)
where the framework re-raises it, else the report it sends.

Time is virtual (``tests/backends.py``): a 5 s timeout takes microseconds,
and each test asserts the virtual time things took, so "promptly" means
"at the exact moment", not "before a real-time guard".

At the end, the command line on a real Starlette app.
"""

from __future__ import annotations

import asyncio
import io
import logging
import signal
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import outcome
import pytest
import trio
import trio.testing

from trio_lifespan import (
    LifespanApp,
    LifespanShutdownFailed,
    LifespanStartupFailed,
    LifespanTimeout,
    LifespanUnavailable,
    _cli,
    open_lifespan,
)

from .apps import client
from .backends import Backend, forever
from .frameworks import (
    CASES,
    FRAMEWORKS,
    STATE_VALUE,
    STUBBORN_CLEANUP,
    UNREAD_BODY_WARNINGS,
    Built,
    HookFailed,
    Misbehave,
)
from .typed import approx

pytestmark = UNREAD_BODY_WARNINGS


LIMIT = 5.0  # the startup or shutdown timeout: the default
CRASH_AFTER = 1.0  # virtual seconds from the startup to the crash
BODY = 3.0  # how long a body runs when nothing cancels it
TICK = 1e-3  # looptime's resolution: "at that moment" within one tick

# Frameworks that re-raise the hook's exception (after sending their
# ``.failed`` report, or without one): it comes out, the very object. The
# others catch it and only send ``lifespan.<phase>.failed``.
RERAISES_STARTUP = {"starlette", "fastapi", "litestar"}
RERAISES_SHUTDOWN = {"starlette", "fastapi", "litestar", "blacksheep"}
# Frameworks whose lifespan context manager holds a task group, so a task in
# it that dies takes the lifespan down. The others start a task that nothing
# of the framework's waits for, so its crash never reaches the lifespan:
# - Quart, quart-trio: ``app.add_background_task`` catches the exception
#   and logs it (``handle_background_exception``); the lifespan goes on.
# - Falcon, BlackSheep: no task group of theirs spans the lifespan; a task
#   started in a startup hook is on its own, its exception stays in it.
# (A task group held across Quart's ``while_serving`` or BlackSheep's
# ``app.lifespan`` generator is no answer: the hooks run the generator in
# steps, so the group's cancellation of the lifespan task escapes the app as
# a bare CancelledError and the task's exception is lost; on quart-trio the
# nursery misnests and trio reports its state corrupted.)
CRASH_REACHES_LIFESPAN = {"starlette", "fastapi", "litestar"}


def build(framework: str, misbehave: Misbehave) -> Built:
    return FRAMEWORKS[framework][0](None, misbehave)


def assert_reported(
    framework: str,
    exc: LifespanStartupFailed | LifespanShutdownFailed,
    error: HookFailed,
) -> None:
    """The report each framework sends instead of raising, exactly."""
    if framework in ("quart", "quart-trio"):
        assert exc.message == str(error)  # Quart sends str(error)
    elif framework == "falcon":  # traceback.format_exc()
        assert exc.message.startswith("Traceback (most recent call last):\n")
        assert exc.message.endswith(f"tests.frameworks.HookFailed: {error}\n")
    else:
        assert framework == "blacksheep"
        assert exc.message == ""  # BlackSheep sends no message


# (a) A startup hook raises ---------------------------------------------------


@pytest.mark.parametrize(("framework", "backend"), CASES)
async def test_a_startup_hook_raises(framework: str, backend: Backend) -> None:
    error = HookFailed("the database is down")
    built = build(framework, Misbehave("startup", error))
    began = backend.now()
    body_ran = False
    with pytest.raises(Exception) as caught:  # noqa: PT011 - exact type below
        async with open_lifespan(built.app, startup_timeout=LIMIT):
            body_ran = True  # pragma: no cover
    assert backend.now() - began == approx(0, abs=TICK)  # at once
    assert not body_ran
    assert built.events == ["startup"]
    if framework in RERAISES_STARTUP:
        assert caught.value is error
    else:
        assert type(caught.value) is LifespanStartupFailed
        assert_reported(framework, caught.value, error)


# (b) A startup hook hangs ----------------------------------------------------


def stubborn_end(backend: Backend, stubborn: bool) -> float:
    """When a hung hook's phase ends: at the limit, but a stubborn hook's
    cleanup (awaited after our cancellation) is cancelled too on trio, where
    the app stays cancelled, and waited for on asyncio, which cancels once
    (docs/howto/timeouts.rst): the exit never leaves the app's task behind."""
    if stubborn and backend.name == "asyncio":
        return LIMIT + STUBBORN_CLEANUP
    return LIMIT


@pytest.mark.parametrize("stubborn", [False, True], ids=["", "stubborn"])
@pytest.mark.parametrize(("framework", "backend"), CASES)
async def test_a_startup_hook_hangs(
    framework: str, backend: Backend, stubborn: bool
) -> None:
    # Starlette, FastAPI, Litestar and BlackSheep catch our cancellation and
    # send 'lifespan.startup.failed'; still, our deadline ran out: a timeout.
    # A stubborn hook awaits a long cleanup once cancelled: see stubborn_end.
    built = build(framework, Misbehave("startup", stubborn=stubborn))
    began = backend.now()
    body_ran = False
    with pytest.raises(LifespanTimeout) as caught:
        async with open_lifespan(built.app, startup_timeout=LIMIT):
            body_ran = True  # pragma: no cover
    assert backend.now() - began == approx(stubborn_end(backend, stubborn), abs=TICK)
    assert not body_ran
    assert type(caught.value) is LifespanTimeout
    assert caught.value.phase == "startup"
    assert caught.value.timeout == LIMIT
    assert built.events == ["startup"]


# (c) A shutdown hook raises --------------------------------------------------


@pytest.mark.parametrize(("framework", "backend"), CASES)
async def test_a_shutdown_hook_raises(framework: str, backend: Backend) -> None:
    error = HookFailed("the pool would not close")
    built = build(framework, Misbehave("shutdown", error))
    began = -1.0
    with pytest.raises(Exception) as caught:  # noqa: PT011 - exact type below
        async with open_lifespan(built.app, shutdown_timeout=LIMIT):
            assert built.events == ["startup"]
            began = backend.now()
    assert backend.now() - began == approx(0, abs=TICK)  # at once
    assert built.events == ["startup", "shutdown"]
    if framework in RERAISES_SHUTDOWN:
        assert caught.value is error
    else:
        assert type(caught.value) is LifespanShutdownFailed
        assert_reported(framework, caught.value, error)


# (d) A shutdown hook hangs ---------------------------------------------------


@pytest.mark.parametrize("stubborn", [False, True], ids=["", "stubborn"])
@pytest.mark.parametrize(("framework", "backend"), CASES)
async def test_a_shutdown_hook_hangs(
    framework: str, backend: Backend, stubborn: bool
) -> None:
    built = build(framework, Misbehave("shutdown", stubborn=stubborn))
    began = -1.0
    with pytest.raises(LifespanTimeout) as caught:
        async with open_lifespan(built.app, shutdown_timeout=LIMIT):
            began = backend.now()
    assert backend.now() - began == approx(stubborn_end(backend, stubborn), abs=TICK)
    assert type(caught.value) is LifespanTimeout
    assert caught.value.phase == "shutdown"
    assert caught.value.timeout == LIMIT
    assert built.events == ["startup", "shutdown"]


# (e) A crash while the body runs ---------------------------------------------


def assert_swallowed(
    framework: str, built: Built, error: HookFailed, caplog: pytest.LogCaptureFixture
) -> None:
    """Where a framework that does not let the crash reach the lifespan leaves it."""
    if framework in ("quart", "quart-trio"):
        # handle_background_exception logs it with app.logger.
        logged = [r for r in caplog.records if r.exc_info and r.exc_info[1] is error]
        assert len(logged) == 1
        assert logged[0].levelno == logging.ERROR
        assert not built.unwatched
    else:
        # The task the startup hook started keeps it, unseen.
        assert framework in ("falcon", "blacksheep")
        assert len(built.unwatched) == 1
        assert built.unwatched[0].error() is error


@pytest.mark.parametrize(("framework", "backend"), CASES)
async def test_a_crash_while_running(
    framework: str, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    error = HookFailed("the cache refresher died")
    built = build(framework, Misbehave("running", error, after=CRASH_AFTER))
    cancelled_after: list[float] = []
    began = -1.0
    with pytest.raises(BaseException) as caught:  # noqa: PT011 - checked below
        async with open_lifespan(built.app):
            began = backend.now()
            try:
                await backend.sleep(
                    forever() if framework in CRASH_REACHES_LIFESPAN else BODY
                )
            except backend.cancelled:
                cancelled_after.append(backend.now() - began)
                raise
            raise _BodyEnded
    ended_after = backend.now() - began
    if framework in CRASH_REACHES_LIFESPAN:
        # The task group re-raises it (in a group of one, unwrapped) after
        # Starlette/Litestar sent 'lifespan.shutdown.failed' unasked.
        assert caught.value is error
        assert cancelled_after == [approx(CRASH_AFTER, abs=TICK)]
        assert ended_after == approx(CRASH_AFTER, abs=TICK)
        assert built.events == ["startup"]  # the shutdown hook never ran
    else:
        # The body runs to its end, the shutdown is clean.
        assert type(caught.value) is _BodyEnded
        assert not cancelled_after
        assert ended_after == approx(BODY, abs=TICK)
        assert built.events == ["startup", "shutdown"]
        assert_swallowed(framework, built, error, caplog)


class _BodyEnded(Exception):
    """The body ran to its end (raised so the block's outcome is one value)."""


@pytest.mark.trio
async def test_quart_trio_a_task_in_the_lifespan_nursery_crashes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # quart-trio runs its lifespan in a nursery of its own, ``app.nursery``
    # (add_background_task's, which catches). A task started in it directly
    # takes the lifespan down, as a Starlette task group does: the nursery
    # raises a group of one, out of the app.
    error = HookFailed("the cache refresher died")
    built = FRAMEWORKS["quart-trio"][0](None)
    app: Any = built.app

    async def crash() -> None:
        await trio.sleep(CRASH_AFTER)
        raise error

    @app.before_serving  # type: ignore[untyped-decorator]
    async def start_refresher() -> None:  # pyright: ignore[reportUnusedFunction]
        app.nursery.start_soon(crash)

    cancelled_after: list[float] = []
    began = -1.0
    with trio.fail_after(60), pytest.raises(HookFailed) as caught:
        async with open_lifespan(app):
            began = trio.current_time()
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                cancelled_after.append(trio.current_time() - began)
                raise
    assert caught.value is error
    assert cancelled_after == [CRASH_AFTER]
    assert built.events == ["startup"]


# (f) A crash while a fixture in another task holds the lifespan --------------


@asynccontextmanager
async def in_another_task(
    backend: Backend, run: Callable[[], Awaitable[None]]
) -> AsyncGenerator[None]:
    """Run ``run()`` in a task of its own (trio: a nursery's; asyncio: a Task)
    for the block, then wait for it to end."""
    if backend.name == "trio":
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            yield
    else:

        async def as_coroutine() -> None:
            await run()

        task = asyncio.get_running_loop().create_task(as_coroutine())
        try:
            yield
        finally:
            await task


@pytest.mark.parametrize(("framework", "backend"), CASES)
async def test_a_crash_while_a_fixture_holds_the_lifespan(
    framework: str, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    error = HookFailed("the cache refresher died")
    built = build(framework, Misbehave("running", error, after=CRASH_AFTER))
    handed: list[LifespanApp[Any]] = []
    held: list[outcome.Outcome[None]] = []
    held_for: list[float] = []
    release = anyio.Event()

    async def fixture() -> None:
        async def hold() -> None:
            async with open_lifespan(built.app) as app:
                began = backend.now()
                handed.append(app)
                try:
                    await release.wait()
                finally:
                    held_for.append(backend.now() - began)

        held.append(await outcome.acapture(hold))

    async with in_another_task(backend, fixture):
        try:
            while not handed:
                await backend.sleep(0)
            await backend.sleep(CRASH_AFTER + 1)  # the crash is over
            asked = backend.now()
            async with client(handed[0]) as http:
                answer = await outcome.acapture(http.get, built.path)
            assert backend.now() - asked == approx(0, abs=TICK)  # at once
        finally:
            release.set()
    assert len(held) == 1
    if framework in CRASH_REACHES_LIFESPAN:
        with pytest.raises(LifespanUnavailable) as refused:
            answer.unwrap()
        assert type(refused.value) is LifespanUnavailable
        assert refused.value.__cause__ is error
        assert refused.value.error is error
        # The fixture's body was cancelled at the crash, and its
        # open_lifespan raised the app's own exception.
        assert held_for == [approx(CRASH_AFTER, abs=TICK)]
        with pytest.raises(HookFailed) as crashed:
            held[0].unwrap()
        assert crashed.value is error
    else:
        response = answer.unwrap()  # the lifespan never knew: it serves on
        assert response.status_code == 200
        assert response.text == STATE_VALUE
        held[0].unwrap()
        assert held_for == [approx(CRASH_AFTER + 1, abs=TICK)]
        assert_swallowed(framework, built, error, caplog)


# The command line, on a real Starlette app -----------------------------------

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Checked:
    """What one run of ``trio-lifespan check`` printed, and its status."""

    returncode: int
    stdout: str
    stderr: str = ""


def run_check(*args: str) -> Checked:
    # In this process (so coverage sees it), as the console script runs it.
    out = io.StringIO()
    status = _cli.main(["check", "--app-dir", str(ROOT), *args], out=out)
    return Checked(status, out.getvalue())


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_cli_a_starlette_startup_that_hangs_exits_6(backend: str) -> None:
    done = run_check(
        "tests.cli_apps:starlette_never_starts",
        "--backend",
        backend,
        "--startup-timeout",
        "0.2",
    )
    assert done.returncode == 6, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-3].startswith(
        "startup   FAILED  LifespanTimeout: the app's startup did not complete "
        "within startup_timeout=0.2 seconds"
    ), done.stdout
    # The CLI's own option, after the library's words.
    assert lines[-2] == (
        "hint      the limit is --startup-timeout SECONDS here (none waits for ever)"
    ), done.stdout
    assert lines[-1] == "failed (exit status 6)"


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_cli_a_starlette_crash_during_a_request_exits_9(backend: str) -> None:
    # The request waits; the task group's task dies meanwhile. A failing
    # check is bounded by --request-timeout.
    done = run_check(
        "tests.cli_apps:starlette_crashes",
        "--backend",
        backend,
        "--get",
        "/wait",
        "--request-timeout",
        "2",
    )
    assert done.returncode == 9, done.stdout + done.stderr
    assert "RuntimeError: the cache refresher died" in done.stdout, done.stdout
    assert done.stdout.splitlines()[-1] == "failed (exit status 9)"


# (i) Ctrl-C under asyncio.run, then the shutdown hook fails ------------------


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="asyncio.run turns Ctrl-C into a cancellation from 3.11 on",
)
@pytest.mark.parametrize(
    "framework",
    [name for name, (_, backends) in FRAMEWORKS.items() if "asyncio" in backends],
)
def test_asyncio_ctrl_c_in_the_body_wins_over_a_failing_shutdown_hook(
    framework: str,
) -> None:
    # Each framework reports or raises its hook's failure its own way; the
    # Ctrl-C still comes out of asyncio.run, the failure noted on it.
    built = build(framework, Misbehave("shutdown", HookFailed("pool close failed")))

    async def main() -> None:
        async with open_lifespan(built.app):
            signal.raise_signal(signal.SIGINT)  # Ctrl-C while the body runs
            await asyncio.sleep(10)

    # (Caught broadly: a KeyboardInterrupt escaping would end the session.)
    with pytest.raises(BaseException) as caught:  # noqa: PT011 - checked below
        asyncio.run(main())
    assert type(caught.value) is KeyboardInterrupt
    assert built.events == ["startup", "shutdown"]  # the hook ran, and failed
    cancelled = caught.value.__context__
    assert isinstance(cancelled, asyncio.CancelledError)
    notes = getattr(cancelled, "__notes__", [])
    assert any(
        note.startswith("trio_lifespan: the app's lifespan failed too, after this")
        for note in notes
    ), notes
