"""The trio side of the client's requests: a task per request, a handoff.

What :class:`._trio._Trio` hands the client's transport (``spawn``,
``handoff``): the request's task in its lifespan's nursery, under a cancel
scope of its own, and the few messages it holds for its reader. Kept apart
from the lifespan's driver, which needs none of it.

The handoff parks and wakes tasks itself (``wait_task_rescheduled``) rather
than through a memory channel: a request makes one, and a memory channel
costs as much to make as the rest of a request's handoff together (measured:
4.3 µs a channel, on a request of about 180 µs). The lifespan's own messages
still go over memory channels (:mod:`._trio`).
"""

from __future__ import annotations

import contextvars
import math
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

import trio
from trio.lowlevel import (
    Abort,
    Task,
    current_task,
    enable_ki_protection,
    reschedule,
    wait_task_rescheduled,
)

from ._backend import DONE, first_step, stepped, turn_due
from ._protocol import cancel_reason
from ._types import EMPTY

T = TypeVar("T")


class Handoff:
    """Messages from tasks to readers, a few held at most (an app's sends wait
    while its reader has not taken what it holds). Any number of tasks may
    put and take at once (an app that sends from two tasks): each waits in
    turn, and each is woken.

    Handing over costs no schedule point while there is room (so a small
    response is handed over whole in the app's first step); waiting is a
    task parked in a queue, woken by the other side.
    """

    __slots__ = ("_capacity", "_ended", "_items", "_left", "_putters", "_takers")

    def __init__(self, capacity: float) -> None:
        self._capacity = capacity
        self._items: deque[Any] = deque()
        self._takers: deque[Task] = deque()
        self._putters: deque[Task] = deque()
        self._ended = False
        self._left = False

    @enable_ki_protection
    async def put(self, item: Any) -> bool:
        while len(self._items) >= self._capacity and not (
            self._left or self._ended
        ):  # full: wait
            await _wait_in(self._putters)
        if self._left or self._ended:  # (a send after the app's call returned)
            return False
        self._items.append(item)
        _wake_one(self._takers)
        return True

    @enable_ki_protection
    def put_nowait(self, item: Any) -> None:
        if not self._left and not self._ended:
            self._items.append(item)
            _wake_one(self._takers)

    @enable_ki_protection
    def end(self) -> None:
        self._ended = True
        _wake_all(self._takers)
        _wake_all(self._putters)  # (a send still waiting gets False)

    @enable_ki_protection
    def take_nowait(self) -> Any:
        if self._items:
            item = self._items.popleft()
            _wake_one(self._putters)
            return item
        return None if self._ended else EMPTY

    @enable_ki_protection
    async def take(self, seconds: float) -> Any:
        if not self._items and not self._ended:
            with trio.move_on_after(seconds):
                while not self._items and not self._ended:
                    await _wait_in(self._takers)
            if not self._items and not self._ended:
                raise TimeoutError
        return self.take_nowait()

    @enable_ki_protection
    def leave(self) -> None:
        self._left = True
        self._ended = True  # (a reader still waiting is done too)
        self._items.clear()
        _wake_all(self._putters)
        _wake_all(self._takers)


async def _wait_in(waiters: deque[Task]) -> None:
    """Park this task in ``waiters`` until another wakes it (or it is
    cancelled: then it leaves the queue). KI-protected by its callers: a
    task in the queue is always a parked one."""
    task = current_task()
    waiters.append(task)

    def abort(_: Any) -> Abort:
        waiters.remove(task)
        return Abort.SUCCEEDED

    await wait_task_rescheduled(abort)


def _wake_one(waiters: deque[Task]) -> None:
    if waiters:
        reschedule(waiters.popleft())


def _wake_all(waiters: deque[Task]) -> None:
    while waiters:
        reschedule(waiters.popleft())


class Job:
    """A request's (or a websocket session's) task in the lifespan's nursery,
    under a cancel scope of its own (which costs about 11 µs of a request's
    180 on trio 0.35, and lets the one task be cancelled: the app's
    background work, when its reader is interrupted)."""

    # (class attributes: a request sets only its scope)
    ended = False
    lost = False  # (one trio loop, which outlives the lifespan's nursery)
    _waiters: trio.Event | None = None  # (made only if one waits)

    def __init__(self, scope: trio.CancelScope) -> None:
        self.scope = scope

    def cancel(self) -> None:
        self.scope.cancel()

    def finished(self) -> None:
        self.ended = True
        if self._waiters is not None:
            self._waiters.set()

    async def wait(self, seconds: float) -> bool:
        if self.ended:
            return True
        if self._waiters is None:
            self._waiters = trio.Event()
        with trio.move_on_after(seconds):
            await self._waiters.wait()
            return True
        return False


def spawn_job(
    start_soon: Callable[[Callable[[], Awaitable[None]]], None],
    fn: Callable[[], Awaitable[None]],
) -> Job:
    """Start ``fn()`` with ``start_soon`` (a nursery's), under the job's scope."""
    job = Job(trio.CancelScope())

    async def run() -> None:
        try:
            with job.scope:
                await fn()
        finally:
            job.finished()

    start_soon(run)
    return job


class HereJob(Job):
    """A request's app run in its reader's own task, for a response read whole:
    no task to start, no turn of the scheduler for an app that answers in one
    step (most do: trio 0.35, a Starlette GET, ...).

    The app's steps run in a copy of the reader's context (what it sets stays
    its own, as in a task), under the job's cancel scope: its deadline is the
    read timeout, set once the app first waits and again at each message it
    sends (a timed wait costs trio more than an app that never waits). An
    app that never waited is followed by a checkpoint (a turn of the
    scheduler when one is due, :func:`._backend.turn_due`): a loop of
    requests is cancelled, and lets the other tasks run.
    """

    waited = False
    stopped = False  # cancelled by cancel() (not by the timeout)
    late = False  # a message came once the timeout had passed
    paused = False  # the app waits for the client (the request's body)

    def __init__(self, timeout: float) -> None:
        super().__init__(trio.CancelScope())
        self.timeout = timeout

    async def run(
        self,
        coro: Coroutine[Any, Any, None],
        ended: Callable[[BaseException | None], None],
    ) -> None:
        """Await ``coro`` here, stepped in a context of its own."""
        context = contextvars.copy_context()
        try:
            with self.scope:
                trap = first_step(context, coro, ended)
                if trap is not DONE:
                    self.first_wait()
                    await stepped(context, coro, trap, ended)
        finally:
            self.finished()
        if self.waited:
            return
        # It never let the scheduler in: a cancellation comes out at once, as
        # at any checkpoint, and the scheduler gets a turn when one is due
        # (as the backend's checkpoint_when_due(), inline: a request's path).
        if turn_due():
            await trio.lowlevel.checkpoint()
        else:
            await trio.lowlevel.checkpoint_if_cancelled()

    def cancel(self) -> None:
        self.stopped = True
        self.scope.cancel()

    def first_wait(self) -> None:
        self.waited = True
        if not self.paused:
            self.scope.deadline = trio.current_time() + self.timeout

    def pause(self) -> None:
        """The app waits for the client: no read timeout meanwhile."""
        self.paused = True
        self.scope.deadline = math.inf

    def resume(self) -> None:
        """The client has answered: the read timeout starts again (once the
        app has waited)."""
        self.paused = False
        if self.waited:
            self.scope.deadline = trio.current_time() + self.timeout

    def heard(self) -> None:
        """A message came from the app (once it has waited): the read timeout
        starts again, unless it has passed (a wait trio could not cut short:
        a thread's, a shielded one): then the message came too late."""
        # (by the clock: whether or not the scheduler has seen the deadline,
        # as when the app held the loop, or answered from a shielded scope)
        now = trio.current_time()
        if now >= self.scope.deadline or self.stopped:
            self.late = True
        elif not self.paused:
            self.scope.deadline = now + self.timeout

    @property
    def timed_out(self) -> bool:
        """Whether the read timeout passed (rather than a cancel)."""
        # (a call that never waited had no deadline; the scope remembers one
        # that passed, wherever its deadline was moved to since)
        return (
            self.waited and not self.stopped and (self.late or self.scope.cancel_called)
        )


class Background:
    """A system task, under a cancel scope of its own (a system task must
    never raise: the caller's ``fn`` keeps its errors)."""

    __slots__ = ("scope",)

    def __init__(self, fn: Callable[[], Awaitable[None]], name: str) -> None:
        self.scope = trio.CancelScope()

        async def run() -> None:
            with self.scope:
                await fn()

        trio.lowlevel.spawn_system_task(
            run, name=name, context=contextvars.copy_context()
        )

    def cancel(self) -> None:
        self.scope.cancel()


def loop_here() -> object | None:
    """trio's token, in a task of trio's (not its host's, in guest mode)."""
    try:
        trio.lowlevel.current_task()
        return trio.lowlevel.current_trio_token()
    except RuntimeError:  # "must be called from async context"
        return None


async def wait_shielded(wait: Callable[[], Awaitable[object]]) -> None:
    with trio.CancelScope(shield=True):
        await wait()


async def watch(
    step: Awaitable[T],
    watchers: set[Callable[[], None]],
    failure: Callable[[], BaseException],
) -> T:
    """See ``Backend.watch``: the watcher cancels a scope around the step."""
    __tracebackhide__ = True
    with trio.CancelScope() as scope:
        watchers.add(scope.cancel)
        try:
            return await step
        finally:
            watchers.discard(scope.cancel)
    raise failure()  # only the watcher cancels the scope


class TrioHolders:
    """The group's moves on trio (``_group.LifespanGroup``): a nursery entered
    by hand (its scope cancels the body), each holder a task of it under a
    shielded scope of its own, waits shielded from cancellation (only a
    Ctrl-C cuts them short)."""

    __slots__ = (
        "body_scope",
        "finished",
        "nursery",
        "nursery_manager",
        "ready_event",
        "scopes",
    )

    def __init__(self, count: int) -> None:
        self.scopes = [trio.CancelScope(shield=True) for _ in range(count)]
        self.finished = [trio.Event() for _ in range(count)]  # each holder returned
        self.ready_event = trio.Event()  # every app started, or one failed
        self.nursery_manager = trio.open_nursery()
        self.nursery: trio.Nursery | None = None
        self.body_scope: trio.CancelScope | None = None

    @enable_ki_protection
    async def enter(self) -> None:
        nursery = self.nursery = await self.nursery_manager.__aenter__()
        self.body_scope = nursery.cancel_scope

    def start(
        self, index: int, hold: Callable[[int, Any], Awaitable[None]], app: Any
    ) -> None:
        assert self.nursery is not None
        self.nursery.start_soon(self._run, index, hold, app)

    @enable_ki_protection
    async def _run(
        self, index: int, hold: Callable[[int, Any], Awaitable[None]], app: Any
    ) -> None:
        try:
            with self.scopes[index]:
                await hold(index, app)
        finally:
            self.finished[index].set()

    def stop(self, index: int) -> None:
        self.scopes[index].cancel()

    def stop_body(self, error: BaseException) -> None:
        assert self.body_scope is not None
        self.body_scope.cancel(reason=cancel_reason(error))

    def ready(self) -> None:
        self.ready_event.set()

    async def wait_ready(self) -> None:
        await self.ready_event.wait()

    def body_was_ours(self) -> bool:
        return True  # (a Cancelled of the nursery's own is ours: the app failed)

    def is_ctrl_c(self, exc: BaseException) -> bool:
        return False  # (trio raises a KeyboardInterrupt for one)

    def interruption_wins(self) -> bool:
        return True  # (only a Ctrl-C reaches a shielded wait)

    def cut_short(self, interrupted: BaseException) -> bool:
        return True

    async def wait_for(self, indices: Iterable[int]) -> BaseException | None:
        return await _caught(lambda: self._wait_shielded(indices))

    async def _wait_shielded(self, indices: Iterable[int]) -> None:
        # Shielded: every app gets its graceful shutdown (each bounded by its
        # timeout) whatever cancels us; only a Ctrl-C cuts it short. A
        # checkpoint at least, not one per holder that has returned already.
        with trio.CancelScope(shield=True):
            waited = False
            for index in indices:
                finished = self.finished[index]
                if not finished.is_set():
                    await finished.wait()
                    waited = True
            if not waited:
                await trio.lowlevel.checkpoint()

    async def checkpoint(self) -> BaseException | None:
        return await _caught(trio.lowlevel.checkpoint)

    @enable_ki_protection
    async def exit(self) -> BaseException | None:
        """Exit the nursery (it waits for every holder, stopped or not)."""
        return await _caught(lambda: self.nursery_manager.__aexit__(None, None, None))


@enable_ki_protection
async def _caught(wait: Callable[[], Awaitable[object]]) -> BaseException | None:
    """Await ``wait()``; what interrupted it (the group's protocol judges it)."""
    try:
        await wait()
    except BaseException as exc:  # noqa: BLE001 - handed to the protocol
        return exc
    return None
