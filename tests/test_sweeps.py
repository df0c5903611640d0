"""The sweeps a hostile reviewer runs: a cancellation at every checkpoint of a
cycle, and a Ctrl-C at every line of it.

A *cycle* is ``async with open_lifespan(app): <body>`` (or ``open_lifespans``
with two apps) with a well-behaved app: a raw ASGI one, or Starlette. The body
checkpoints once and, in one variant, then raises.

**Cancellation at every checkpoint** (trio and asyncio). Each sweep runs the
cycle once to count its steps, then once more per step ``N``, cancelling the
outer scope (trio) or the host task (asyncio) right after step ``N``:

- trio: a :class:`trio.abc.Instrument` counts ``after_task_step`` calls of the
  host task and the tasks under it while the cycle runs. Cancelling the outer
  ``CancelScope`` from ``after_task_step`` of step ``N`` lands exactly at the
  checkpoint that step ended in: the task that just yielded is either blocked
  (``cancel()`` runs its abort function at once, so ``Cancelled`` is raised
  right there) or queued at a schedule point (``checkpoint()`` sees the
  cancellation when it resumes). When step ``N`` was the app's, the
  cancellation lands wherever the host is waiting at that moment, so every
  interleaving of host and app is covered, not only every host checkpoint.
  trio runs each batch of runnable tasks in a random order, so the
  scheduler's random generator (``trio._core._run._r``) is seeded before each
  run: step ``N`` is then the same step in the counting run and in the
  cancelling run, and a failure reproduces. Several seeds are swept, to see
  both orders of a batch.
- asyncio: every task step and every future's wake-up is a callback the loop
  runs from ``call_soon``. The loop here wraps each one; right after the
  ``N``-th ran, the host task is cancelled (``task.cancel()``), which lands at
  the ``await`` it is suspended in. The ready queue is FIFO: deterministic.

Index 0 cancels before the cycle starts. For each run: no hang (fake time,
plus a step budget that breaks a livelock), no task of ours left running, the
app's lifespan either never started or ended during the run, a cancellation
that landed in the body still got the graceful shutdown, and what comes out
is the cancellation (swallowed by the outer scope, or caught and withdrawn
with ``uncancel``), a ``LifespanError``, or the body's own exception: never a
group, ``TrioInternalError`` or ``AssertionError``.

**Ctrl-C at every line** (trio). One run under :func:`sys.settrace` counts how
often each line of the ``trio_lifespan`` package and of the raw app's
lifespan runs (after a warm-up run, so lazy imports are not counted). Then,
for each line and each time it runs, a fresh ``trio.run`` (on
``MockClock(autojump_threshold=0)``, with a ``fail_after`` guard) runs with a
tracer that sends a real ``SIGINT`` (:func:`signal.raise_signal`) just before
that line runs that time. trio's handler raises ``KeyboardInterrupt`` right
there if the code is not KI-protected, or defers it to the main task's next
checkpoint. ``trio.run`` must then raise a bare ``KeyboardInterrupt``, the
app must not be orphaned, and nothing may hang. The previous trace function
(coverage's, in a ``--cov`` run) is restored after every run. After a broken
run, garbage is collected at once and what finalizers say (a nursery or a
coroutine left behind) is part of the failure.

Every failure is collected, so one run lists them all, each with where the
cancellation or Ctrl-C landed and what came out.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
import traceback
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FrameType
from typing import Any, cast

import looptime
import outcome
import pytest
import sniffio
import trio
import trio._core._run
import trio.testing
from starlette.applications import Starlette
from typing_extensions import TypeVarTuple, Unpack

import trio_lifespan
from trio_lifespan import (
    LifespanError,
    lifespan_of,
    open_client,
    open_lifespan,
    open_lifespans,
    with_lifespans,
)
from trio_lifespan._types import AnyASGIApp, Receive, Scope, Send

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

Ts = TypeVarTuple("Ts")

#: Virtual seconds after which a cycle counts as hung.
HANG_GUARD = 1_000.0
#: Loop iterations (trio) or callbacks (asyncio) after which a cycle counts as
#: livelocked. A cycle takes well under a hundred.
STEP_BUDGET = 20_000
#: Seeds of trio's scheduler for the cancellation sweep.
SEEDS = (0, 1, 2, 3)


class BodyError(Exception):
    """What the body raises in the ``body raises`` variant."""


class HangError(Exception):
    """Thrown into blocked tasks by the hang guard, to end a livelocked run."""


async def checkpoint() -> None:
    """One yield to the event loop, on whichever library runs."""
    if sniffio.current_async_library() == "trio":
        await trio.lowlevel.checkpoint()
    else:
        await asyncio.sleep(0)


# The apps ----------------------------------------------------------------------


class SweepApp:
    """A well-behaved raw ASGI lifespan app that records how its lifespan ended.

    ``lifespan`` is the protocol; ``__call__`` only records, and is not traced
    by the Ctrl-C sweep (a Ctrl-C in the recording itself would look like an
    orphaned app).
    """

    def __init__(self) -> None:
        self.events: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.events.append("called")
        try:
            await self.lifespan(scope, receive, send)
        except BaseException as exc:
            self.events.append(f"ended: {type(exc).__name__}")
            raise
        self.events.append("ended: returned")

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await checkpoint()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await checkpoint()
        self.events.append("cleanup")
        await send({"type": "lifespan.shutdown.complete"})


def starlette_app(events: list[str]) -> Starlette:
    """A Starlette app whose lifespan checkpoints and records how it ended."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[None]:
        events.append("called")
        try:
            await checkpoint()
            yield
            await checkpoint()
            events.append("cleanup")
        except BaseException as exc:
            events.append(f"ended: {type(exc).__name__}")
            raise
        events.append("ended: returned")

    return Starlette(lifespan=lifespan)


def app_problems(events: list[str], *, body_cancelled: bool) -> list[str]:
    """What is wrong with how one app's lifespan went."""
    if not events:
        return []  # never started
    ends = [event for event in events if event.startswith("ended: ")]
    if not ends:
        return [f"app orphaned: its lifespan never ended ({events})"]
    if ends != [events[-1]] or ends[0] == "ended: GeneratorExit":
        return [f"app orphaned: closed outside the run ({events})"]
    if body_cancelled and "cleanup" not in events:
        return [f"the body was cancelled but the app's shutdown did not run ({events})"]
    return []


def unfinished(events: list[list[str]]) -> bool:
    """Whether an app started and has not ended (yet)."""
    return any(e and not e[-1].startswith("ended: ") for e in events)


def collect_garbage() -> list[str]:
    """Collect garbage now; what finalizers complained about.

    After a broken run, orphaned tasks' coroutines and nurseries complain
    when they are collected; now, and said as part of the failure, rather
    than at some later point in the session.
    """
    complaints: list[str] = []

    def hook(unraisable: Any) -> None:
        complaints.append(
            f"on garbage collection, {unraisable.object!r} raised "
            f"{unraisable.exc_type.__name__}: {unraisable.exc_value}"
        )

    previous = sys.unraisablehook
    sys.unraisablehook = hook
    try:
        gc.collect()
    finally:
        sys.unraisablehook = previous
    return complaints


@contextlib.asynccontextmanager
async def own_lifespan(app: object) -> AsyncGenerator[dict[str, int]]:
    """A parent's own lifespan, as lifespan_of(..., lifespan=) takes it."""
    await checkpoint()
    yield {"own": 1}
    await checkpoint()


# The cycles --------------------------------------------------------------------


@dataclass(frozen=True)
class Cycle:
    """One kind of ``async with`` cycle."""

    name: str
    apps: int = 1
    starlette: bool = False
    body_raises: bool = False
    client: bool = False  # open_client instead of open_lifespan
    mounts: str = ""  # "lifespan_of" or "with_lifespans" (of the apps)

    def __str__(self) -> str:
        return self.name

    def make(self) -> tuple[list[list[str]], list[AnyASGIApp]]:
        """Fresh apps, and the event lists they record to."""
        if self.starlette:
            events: list[str] = []
            return [events], [starlette_app(events)]
        apps = [SweepApp() for _ in range(self.apps)]
        return [app.events for app in apps], list(apps)

    def open(self, apps: list[AnyASGIApp]) -> AbstractAsyncContextManager[object]:
        if self.client:
            return open_client(apps[0])
        if self.mounts == "lifespan_of":
            return lifespan_of(*apps)(None)
        if self.mounts == "lifespan_of, own":
            return lifespan_of(*apps, lifespan=own_lifespan)(None)
        if self.mounts == "with_lifespans":
            return open_lifespan(with_lifespans(apps[0], *apps[1:]))
        if len(apps) == 1:
            return open_lifespan(apps[0])
        return open_lifespans(*apps)


RAW = Cycle("raw app")
BODY_RAISES = Cycle("raw app, body raises", body_raises=True)
TWO_APPS = Cycle("open_lifespans, two raw apps", apps=2)
STARLETTE = Cycle("starlette app", starlette=True)
CLIENT = Cycle("open_client, starlette app", starlette=True, client=True)
LIFESPAN_OF = Cycle("lifespan_of, two raw apps", apps=2, mounts="lifespan_of")
OWN = Cycle(
    "lifespan_of, a raw app and a lifespan of its own", mounts="lifespan_of, own"
)
WITH_LIFESPANS = Cycle(
    "with_lifespans, a raw app and a raw sub-app", apps=2, mounts="with_lifespans"
)


def bad_outcome(exc: BaseException | None, body_error: BaseException) -> str | None:
    """Why ``exc``, what came out of a cycle, is not an acceptable outcome.

    Acceptable: nothing (the cancellation was swallowed, or came too late to
    land), the body's own exception (the very object), or a LifespanError.
    """
    if exc is None or exc is body_error:
        return None
    if isinstance(exc, LifespanError) and not isinstance(exc, BaseExceptionGroup):
        return None
    return f"{type(exc).__name__}: {exc!r}"


@dataclass
class Run:
    """How one cycle went."""

    outcome: BaseException | None = None
    body_error: BaseException = field(default_factory=lambda: BodyError("the body"))
    cancelled: bool = False  # the cancellation came out (and was swallowed)
    landed: str | None = None  # the phase the cancellation was requested in
    body_cancelled: bool = False
    left: list[str] = field(default_factory=list[str])
    hung: bool = False
    events: list[list[str]] = field(default_factory=list[list[str]])
    labels: list[str] = field(default_factory=list[str])  # one per step
    garbage: list[str] = field(default_factory=list[str])

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.hung:
            found.append("hung (broken by the step budget)")
        found += self.garbage
        bad = bad_outcome(self.outcome, self.body_error)
        if bad is not None:
            found.append(f"came out: {bad}")
        if self.left:
            found.append(f"tasks left running: {self.left}")
        for events in self.events:
            found += app_problems(events, body_cancelled=self.body_cancelled)
        return found


async def body(run: Run, cycle: Cycle, cancelled: type[BaseException]) -> None:
    """The ``async with`` body: a checkpoint, then maybe an exception."""
    try:
        await checkpoint()
    except cancelled:
        run.body_cancelled = True
        raise
    if cycle.body_raises:
        raise run.body_error


# trio: cancel at step N ----------------------------------------------------------


class TrioStepper(trio.abc.Instrument):
    """Counts the task steps of a cycle; cancels the outer scope after step N.

    Also the hang guard: a run loop spinning past ``STEP_BUDGET`` iterations
    gets ``HangError`` thrown into every blocked task.
    """

    def __init__(self, cancel_at: int | None) -> None:
        self.cancel_at = cancel_at
        self.scope: trio.CancelScope | None = None
        self.host: trio.lowlevel.Task | None = None
        self.phase: str | None = None  # None: the cycle is not running
        self.steps = 0
        self.labels: list[str] = []
        self.landed: str | None = None
        self.live: set[trio.lowlevel.Task] = set()
        self.runnable: set[trio.lowlevel.Task] = set()
        self.loops = 0
        self.hung = False

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.live.add(task)

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self.live.discard(task)
        self.runnable.discard(task)

    def task_scheduled(self, task: trio.lowlevel.Task) -> None:
        self.runnable.add(task)

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.runnable.discard(task)

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.phase is None or not self.ours(task):
            return
        self.steps += 1
        who = "host" if task is self.host else task.name.rpartition(".")[2]
        self.labels.append(f"{self.phase}, after a step of {who}")
        if self.steps == self.cancel_at:
            assert self.scope is not None
            self.landed = self.phase
            self.scope.cancel()

    def before_io_wait(self, timeout: float) -> None:
        self.loops += 1
        if self.loops > STEP_BUDGET and not self.hung:
            self.hung = True
            for task in self.live - self.runnable:
                if self.ours(task):
                    trio.lowlevel.reschedule(task, outcome.Error(HangError()))

    def ours(self, task: trio.lowlevel.Task) -> bool:
        """Whether ``task`` is the host or one it spawned (not trio's own)."""
        while task is not self.host:
            nursery = task.parent_nursery
            if nursery is None:
                return False
            task = nursery.parent_task
        return True


def seed_trio(seed: int) -> None:
    # The order trio runs a batch of tasks in comes from this generator.
    trio._core._run._r.seed(seed)


def run_trio(cycle: Cycle, cancel_at: int | None, seed: int) -> Run:
    """One cycle on trio, cancelled after step ``cancel_at`` (0: before it)."""
    events, apps = cycle.make()
    run = Run(events=events)
    stepper = TrioStepper(cancel_at)

    async def main() -> None:
        stepper.host = trio.lowlevel.current_task()
        try:
            with trio.fail_after(HANG_GUARD):
                with trio.CancelScope() as scope:
                    stepper.scope = scope
                    if cancel_at == 0:
                        stepper.landed = "before"
                        scope.cancel()
                    stepper.phase = "enter"
                    try:
                        async with cycle.open(apps):
                            stepper.phase = "body"
                            try:
                                await body(run, cycle, trio.Cancelled)
                            finally:
                                stepper.phase = "exit"
                    finally:
                        stepper.phase = None
                        ours = [t for t in stepper.live if stepper.ours(t)]
                        run.left = [repr(t) for t in ours if t is not stepper.host]
                run.cancelled = scope.cancelled_caught
        except BaseException as exc:  # noqa: BLE001 - judged by the sweep
            run.outcome = exc

    seed_trio(seed)
    try:
        trio.run(
            main,
            clock=trio.testing.MockClock(autojump_threshold=0),
            instruments=[stepper],
        )
    except BaseException as exc:  # noqa: BLE001 - judged by the sweep
        run.outcome = exc
    run.hung = stepper.hung
    run.landed = stepper.landed
    run.labels = stepper.labels
    run.events = [list(e) for e in events]  # before any late finalizer runs
    odd = not isinstance(run.outcome, (type(None), LifespanError, BodyError))
    if odd or unfinished(events):
        run.garbage = collect_garbage()
    return run


# asyncio: cancel after callback N ------------------------------------------------


class StepLoop(asyncio.SelectorEventLoop):
    """An event loop that counts the callbacks it runs from ``call_soon``.

    Every task step and every future's wake-up is one. ``after_step`` runs
    after each; past ``STEP_BUDGET`` the loop stops (a livelock).
    """

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0
        self.after_step: Callable[[object], None] = lambda _: None

    def call_soon(
        self,
        callback: Callable[[Unpack[Ts]], object],
        *args: Unpack[Ts],
        context: Any = None,
    ) -> asyncio.Handle:
        def stepped(*args: Unpack[Ts]) -> None:
            try:
                callback(*args)
            finally:
                self.steps += 1
                if self.steps == STEP_BUDGET + 1:
                    self.stop()  # once: the loop can still be cleaned up
                self.after_step(callback)

        return super().call_soon(stepped, *args, context=context)


def describe_callback(callback: object) -> str:
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        task = cast("asyncio.Task[object]", owner)
        name = getattr(task.get_coro(), "__qualname__", task.get_name())
        return str(name).rpartition(".")[2]
    return str(getattr(callback, "__qualname__", callback))


def run_asyncio(cycle: Cycle, cancel_at: int | None) -> Run:
    """One cycle on asyncio, the host task cancelled after callback ``cancel_at``."""
    events, apps = cycle.make()
    run = Run(events=events)
    loop = StepLoop()
    looptime.patch_event_loop(loop, start=0.0, end=HANG_GUARD, idle_timeout=1.0)
    complaints: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: complaints.append(context))
    phase: list[str | None] = [None]
    fired: list[bool] = [False]

    async def main() -> None:
        host = asyncio.current_task()
        assert host is not None
        count = loop.steps

        def after_step(callback: object) -> None:
            if phase[0] is None:
                return
            run.labels.append(f"{phase[0]}, after {describe_callback(callback)}")
            if loop.steps - count == cancel_at:
                fired[0] = True
                run.landed = phase[0]
                host.cancel()

        loop.after_step = after_step
        if cancel_at == 0:
            fired[0] = True
            run.landed = "before"
            host.cancel()
        phase[0] = "enter"
        try:
            async with cycle.open(apps):
                phase[0] = "body"
                try:
                    await body(run, cycle, asyncio.CancelledError)
                finally:
                    phase[0] = "exit"
        except asyncio.CancelledError as exc:
            if not fired[0]:
                run.outcome = exc  # not ours
            run.cancelled = True
        except BaseException as exc:  # noqa: BLE001 - judged by the sweep
            run.outcome = exc
        finally:
            phase[0] = None
        run.events = [list(e) for e in events]  # as the cycle left them
        if fired[0]:
            if sys.version_info >= (3, 11) and host.uncancel():
                run.left.append("the host task is still being cancelled")
            if not run.cancelled and run.outcome is None:
                run.left.append("the cancellation was swallowed")
        current = asyncio.all_tasks()
        run.left += [repr(t) for t in current if t is not host and not t.done()]

    try:
        loop.run_until_complete(main())
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        run.left += [repr(task) for task in pending]
        run.left += [f"the loop's exception handler got {c}" for c in complaints]
    except RuntimeError as exc:
        if loop.steps <= STEP_BUDGET:
            raise
        run.hung = True
        run.outcome = exc
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return run


# The cancellation sweep ----------------------------------------------------------


@dataclass
class Sweep:
    """What a sweep found: failures, and where cancellations came out."""

    failures: list[str] = field(default_factory=list[str])
    caught_in: Counter[str] = field(default_factory=Counter[str])
    runs: int = 0


def judge(sweep: Sweep, where: str, run: Run) -> None:
    sweep.runs += 1
    if run.cancelled and run.landed is not None:
        sweep.caught_in[run.landed] += 1
    sweep.failures += [f"{where}: {problem}" for problem in run.problems()]


CYCLES = [
    RAW,
    BODY_RAISES,
    TWO_APPS,
    STARLETTE,
    CLIENT,
    LIFESPAN_OF,
    OWN,
    WITH_LIFESPANS,
]


@pytest.mark.parametrize("cycle", CYCLES, ids=str)
def test_a_cancellation_at_every_trio_checkpoint(cycle: Cycle) -> None:
    sweep = Sweep()
    for seed in SEEDS:
        counted = run_trio(cycle, None, seed)
        assert counted.problems() == []
        assert counted.outcome is (counted.body_error if cycle.body_raises else None)
        assert counted.labels, "the counting run saw no step"
        for index in range(len(counted.labels) + 1):
            run = run_trio(cycle, index, seed)
            label = "before the cycle" if index == 0 else counted.labels[index - 1]
            where = f"seed {seed}, step {index} ({label})"
            judge(sweep, where, run)
    assert sweep.failures == [], "\n".join(sweep.failures)
    # The sweep is not vacuous: cancellations landed in every phase and came out.
    assert set(sweep.caught_in) >= {"before", "enter", "body"}, sweep.caught_in


@pytest.mark.parametrize("cycle", CYCLES, ids=str)
def test_a_cancellation_at_every_asyncio_step(cycle: Cycle) -> None:
    sweep = Sweep()
    counted = run_asyncio(cycle, None)
    assert counted.problems() == []
    assert counted.outcome is (counted.body_error if cycle.body_raises else None)
    assert counted.labels, "the counting run saw no step"
    for index in range(len(counted.labels) + 1):
        run = run_asyncio(cycle, index)
        label = "before the cycle" if index == 0 else counted.labels[index - 1]
        judge(sweep, f"step {index} ({label})", run)
    assert sweep.failures == [], "\n".join(sweep.failures)
    assert set(sweep.caught_in) >= {"before", "enter", "body"}, sweep.caught_in


def test_the_steppers_see_the_host_yield_in_every_phase() -> None:
    # The sweeps cancel at each of these: the host's own checkpoints in enter,
    # body and exit, and the app's steps in between.
    trio_run = run_trio(RAW, None, 0)
    asyncio_run = run_asyncio(RAW, None)
    for labels, host in (
        (trio_run.labels, "a step of host"),
        (asyncio_run.labels, "main"),
    ):
        for phase in ("enter", "body", "exit"):
            assert f"{phase}, after {host}" in labels, labels
        assert any(label.endswith("run_app") for label in labels), labels


# The Ctrl-C sweep (trio) -----------------------------------------------------------

PACKAGE = str(Path(trio_lifespan.__file__).resolve().parent)
APP_CODE = {SweepApp.lifespan.__code__}

Line = tuple[str, int]
#: A line, and which time it runs (1: the first).
Target = tuple[str, int, int]
TraceFunction = Callable[[FrameType, str, Any], Any]


def traced(code: CodeType) -> bool:
    return code in APP_CODE or code.co_filename.startswith(PACKAGE)


class LineTracer:
    """Counts the lines run in our package and the app; Ctrl-Cs at one of them."""

    def __init__(self, target: Target | None) -> None:
        self.target = target
        self.lines: dict[Line, int] = {}  # times run, in the order first run
        self.fired = False

    def trace(self, frame: FrameType, event: str, arg: object) -> TraceFunction | None:
        if event == "call" and traced(frame.f_code):
            return self.trace_line
        return None

    def trace_line(
        self, frame: FrameType, event: str, arg: object
    ) -> TraceFunction | None:
        if event == "line":
            path, number = frame.f_code.co_filename, frame.f_lineno
            times = self.lines[path, number] = self.lines.get((path, number), 0) + 1
            if (path, number, times) == self.target:
                self.fired = True
                # trio's handler raises KeyboardInterrupt right here (this
                # frame's caller is the traced one), or defers it to the main
                # task's next checkpoint if the traced code is KI-protected.
                # Raising here also unsets this tracer.
                signal.raise_signal(signal.SIGINT)
        return self.trace_line


@dataclass
class Interrupted:
    """How a cycle with a Ctrl-C went."""

    outcome: BaseException | None
    events: list[list[str]]
    fired: bool
    hung: bool
    lines: dict[Line, int]
    garbage: list[str] = field(default_factory=list[str])


def run_with_ctrl_c(cycle: Cycle, target: Target | None) -> Interrupted:
    """One cycle in ``trio.run``, with a Ctrl-C at ``target``."""
    events, apps = cycle.make()
    tracer = LineTracer(target)
    stepper = TrioStepper(None)  # for its hang guard

    async def main() -> None:
        stepper.host = trio.lowlevel.current_task()
        with trio.fail_after(HANG_GUARD):
            async with cycle.open(apps):
                await trio.lowlevel.checkpoint()
                if cycle.body_raises:
                    raise BodyError("the body failed")

    raised: BaseException | None = None
    previous = sys.gettrace()
    sys.settrace(tracer.trace)
    try:
        trio.run(
            main,
            clock=trio.testing.MockClock(autojump_threshold=0),
            instruments=[stepper],
        )
    except BaseException as exc:  # noqa: BLE001 - judged by the sweep
        raised = exc
    finally:
        sys.settrace(previous)
    # Snapshot now: a coroutine closed later by the garbage collector would
    # record its end after the run.
    run = Interrupted(
        raised, [list(e) for e in events], tracer.fired, stepper.hung, tracer.lines
    )
    if type(raised) is not KeyboardInterrupt or unfinished(events):
        run.garbage = collect_garbage()
    return run


def short(target: Target) -> str:
    path, number, times = target
    where = f"{Path(path).relative_to(Path(PACKAGE).parent)}:{number}"
    return where if times == 1 else f"{where} (run {times})"


def sweep_ctrl_c(cycle: Cycle) -> tuple[list[Target], list[str]]:
    """Each time a cycle runs each line, and what goes wrong with a Ctrl-C there."""
    run_with_ctrl_c(cycle, None)  # imports what a cycle imports lazily
    recorded = run_with_ctrl_c(cycle, None)
    assert recorded.outcome is None or cycle.body_raises, recorded.outcome
    targets = [
        (path, number, times)
        for (path, number), count in recorded.lines.items()
        for times in range(1, count + 1)
    ]
    failures: list[str] = []
    for target in targets:
        run = run_with_ctrl_c(cycle, target)
        found: list[str] = []
        if not run.fired:
            found.append("the line was not reached again")
        if run.hung:
            found.append("hung (broken by the step budget)")
        if type(run.outcome) is not KeyboardInterrupt:
            what = "nothing" if run.outcome is None else repr(run.outcome)
            found.append(f"came out: {what}")
        for events in run.events:
            found += app_problems(events, body_cancelled=False)
        found += run.garbage
        failures += [f"{short(target)}: {problem}" for problem in found]
    return targets, failures


@pytest.fixture
def sigint_handler_is_the_default() -> Iterator[None]:
    # trio installs its Ctrl-C handler only over the default one.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    tracer = sys.gettrace()
    yield
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert sys.gettrace() is tracer, "a sweep left its tracer behind"


# Not OWN: its lifespan is the user's asynccontextmanager, run as app code
# (a Ctrl-C interrupts it anywhere, as in any server), and a Ctrl-C in
# contextlib's frames leaves the generator for the collector, which warns.
CTRL_C_CYCLES = [cycle for cycle in CYCLES if cycle is not OWN]


@pytest.mark.usefixtures("sigint_handler_is_the_default")
@pytest.mark.parametrize("cycle", CTRL_C_CYCLES, ids=str)
def test_ctrl_c_at_every_line(cycle: Cycle) -> None:
    targets, failures = sweep_ctrl_c(cycle)
    # Not vacuous: the driver's lines (and the raw app's) were all swept.
    files = {Path(path).name for path, _, _ in targets}
    assert {"_trio.py", "_protocol.py", "_state.py"} <= files, files
    assert ("test_sweeps.py" in files) is not cycle.starlette, files
    assert len(targets) > 200, len(targets)
    assert failures == [], f"{len(failures)} of {len(targets)} runs:\n" + "\n".join(
        failures
    )


@pytest.mark.usefixtures("sigint_handler_is_the_default")
def test_the_tracer_interrupts_where_it_is_told() -> None:
    # The app's first receive(), unprotected code in the app's task: the
    # KeyboardInterrupt is raised right there and comes out of trio.run.
    code = SweepApp.lifespan.__code__
    path, number = code.co_filename, code.co_firstlineno + 1
    run = run_with_ctrl_c(RAW, (path, number, 1))
    assert run.fired
    assert type(run.outcome) is KeyboardInterrupt
    frames = traceback.extract_tb(run.outcome.__traceback__)
    assert (path, number, "lifespan") in [
        (f.filename, f.lineno, f.name) for f in frames
    ]
    assert run.events == [["called", "ended: KeyboardInterrupt"]]


def test_the_hang_guard_breaks_a_livelock() -> None:
    # A task shielded from everything, waiting for ever: only the guard ends it.
    stepper = TrioStepper(None)

    async def stuck() -> None:
        stepper.host = trio.lowlevel.current_task()
        with trio.CancelScope(shield=True):
            await trio.sleep_forever()

    with pytest.raises(HangError):
        trio.run(
            stuck,
            clock=trio.testing.MockClock(autojump_threshold=0),
            instruments=[stepper],
        )
    assert stepper.hung


def test_the_asyncio_step_budget_breaks_a_livelock() -> None:
    # A callback that schedules itself for ever: only the budget ends it.
    loop = StepLoop()

    def again() -> None:
        loop.call_soon(again)

    loop.call_soon(again)
    try:
        with pytest.raises(RuntimeError, match="Event loop stopped before Future"):
            loop.run_until_complete(loop.create_future())
        assert loop.steps == STEP_BUDGET + 1
    finally:
        loop.close()
