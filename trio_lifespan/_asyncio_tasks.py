"""The asyncio side's tasks: how the shim starts, waits for and cancels them.

The lifespan's driver (:mod:`._asyncio`) starts its tasks here (``start_task``:
never eagerly), cancels the ``async with`` body and takes the request back
(``BodyCanceller``), tells a Ctrl-C from a cancellation (``is_ctrl_c``), and
waits for tasks through cancellations (``wait_all``). The client's transport
gets its request tasks and their handoff (``spawn_job``, ``Handoff``), and the
pytest plugin its background task and watched test (``Background``,
``watch``), through :class:`._asyncio._Asyncio`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import math
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

from ._backend import DONE, first_step, stepped, turn_due
from ._protocol import cancel_reason
from ._types import EMPTY

T = TypeVar("T")


def _withdraw_cancel(task: asyncio.Task[Any]) -> bool:
    """Withdraw one cancellation request of ours; whether others remain.

    Python 3.10 cannot tell requests apart, so there ours is the only one.
    """
    if sys.version_info >= (3, 11):
        return task.uncancel() > 0
    return False  # pragma: no cover - py310 tox environment


class BodyCanceller:
    """Cancels the ``async with`` body (the host task) and takes it back after.

    The body runs in the caller's task; asyncio can only interrupt it by
    cancelling that task. Our request is withdrawn when the body ends, so the
    caller's own cancellations (``asyncio.timeout``, task groups) still count
    right.
    """

    __slots__ = ("host", "requested")

    def __init__(self, host: asyncio.Task[Any]) -> None:
        self.host = host
        self.requested = False

    def cancel(self, error: BaseException) -> None:
        """Cancel the body because of ``error``, which the cancellation names.

        Called once: the caller stops counting the body as running.
        """
        self.requested = True
        self.host.cancel(cancel_reason(error))

    def ended(self) -> bool:
        """The body ended: take our request back; whether a cancellation of
        the body can only have been ours (no other request is pending)."""
        if not self.requested:
            return False
        self.requested = False
        return not _withdraw_cancel(self.host)


def ctrl_c_pressed() -> bool:
    """Whether Ctrl-C is what cancels this task: ``asyncio.run`` turns one
    into a cancellation of its main task, and raises KeyboardInterrupt when
    that task ends cancelled.

    Only in that task, while that cancellation is pending: a task it runs
    (in a TaskGroup, say) is cancelled by its parent, whose group would drop
    the cancellation and what it carries, and a Ctrl-C the program handled
    (and uncancelled) is over. Read on the error path only, from the runner
    that handles SIGINT.
    """
    handler = signal.getsignal(signal.SIGINT)
    runner = getattr(getattr(handler, "func", None), "__self__", None)
    runner_type: type[object] | None = getattr(asyncio, "Runner", None)
    if (
        runner_type is None
        or not isinstance(runner, runner_type)
        or getattr(runner, "_interrupt_count", 0) == 0
    ):
        return False
    main_task = getattr(handler, "keywords", {}).get("main_task")
    task = asyncio.current_task()
    if task is None or task is not main_task:
        return False
    if sys.version_info >= (3, 11):  # (asyncio.Runner is 3.11+: always)
        return task.cancelling() > 0
    return False  # pragma: no cover - py310 tox environment


def is_ctrl_c(exc: BaseException) -> bool:
    """Whether ``exc``, which interrupted us, is a Ctrl-C (see above)."""
    return isinstance(exc, asyncio.CancelledError) and ctrl_c_pressed()


def start_task(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
) -> asyncio.Task[None]:
    """A task of ours, made by the loop's task factory, that starts at the
    loop's next turn.

    Our tasks report to their caller from their first step, so it must not
    run inside the call, as an eager task factory (Python 3.12's
    ``asyncio.eager_task_factory``) would run it. With a task factory set
    (eager or not: a tracing one, say, which should see our tasks too), the
    coroutine waits one turn first.
    """
    if loop.get_task_factory() is None:
        return loop.create_task(coro)
    task = loop.create_task(_after_a_turn(coro))
    # Cancelled before it began, the coroutine never runs: closed, it does
    # not warn that it was never awaited. (Closing a finished one: nothing.)
    task.add_done_callback(lambda _: coro.close())
    return task


async def _after_a_turn(coro: Coroutine[Any, Any, None]) -> None:
    await asyncio.sleep(0)
    await coro


class Background:
    """A task of the running loop, which no task group of the caller's holds."""

    __slots__ = ("task",)

    def __init__(self, fn: Callable[[], Awaitable[None]], name: str) -> None:
        async def run() -> None:
            await fn()

        self.task = start_task(asyncio.get_running_loop(), run())
        self.task.set_name(name)

    def cancel(self) -> None:
        self.task.cancel()


def loop_here() -> object | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # "no running event loop"
        return None


async def wait_shielded(wait: Callable[[], Awaitable[object]]) -> None:
    await asyncio.shield(wait())


async def watch(
    step: Awaitable[T],
    watchers: set[Callable[[], None]],
    failure: Callable[[], BaseException],
) -> T:
    """See ``Backend.watch``: the watcher cancels this task (as the body of
    a lifespan is), and takes its request back after."""
    __tracebackhide__ = True
    canceller = BodyCanceller(current_task())

    def watcher() -> None:
        canceller.cancel(failure())

    watchers.add(watcher)
    try:
        return await step
    except asyncio.CancelledError:
        if not canceller.ended():  # not ours alone: the test's own
            raise
        raise failure() from None
    finally:
        watchers.discard(watcher)
        canceller.ended()


def current_task() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None, "trio_lifespan runs inside an asyncio task"
    return task


async def wait_all(tasks: list[asyncio.Task[None]]) -> BaseException | None:
    """Wait until every task is done, even through cancellations.

    Returns the first cancellation that arrived meanwhile, to raise later.
    """
    interrupted: BaseException | None = None
    while pending := [task for task in tasks if not task.done()]:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError as exc:  # cancelled again: finish first
            interrupted = interrupted or exc
    return interrupted


def spawn_job(fn: Callable[[], Awaitable[None]]) -> Job:
    """Start ``fn()`` in a task on the running loop.

    From Python 3.12, with the loop's own task factory, the task starts
    eagerly: its first step runs now, in the new task (its own context, its
    own current task), as ``asyncio.eager_task_factory`` would run it. Most
    apps answer a request in that step, so the reader finds the whole
    response without waiting a turn of the loop (measured on 3.12, a
    Starlette GET: 1.16x to 1.09x asgi-lifespan + httpx). With a task factory
    of the project's (a tracing one, say), the factory makes the task.
    """

    loop = asyncio.get_running_loop()
    torn: list[bool] = []  # (its loop was ending when it ended)

    async def run() -> None:
        try:
            await fn()
        finally:
            if _ending(loop):
                torn.append(True)

    task = _start(loop, run())
    if task.done():  # pragma: no cover - 3.12 and later: it answered at once
        return Job(task, torn)  # (nothing to hold: the loop need not keep it)
    _JOBS.add(task)  # (the loop keeps only a weak reference)
    task.add_done_callback(_JOBS.discard)
    return Job(task, torn)


def _ending(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` is ending: its async generators are being closed
    (``shutdown_asyncgens``, as ``asyncio.run`` and pytest-asyncio end a
    loop; before 1.1 pytest-asyncio does not cancel the tasks left first,
    and closing an app's generators under its task makes the app raise)."""
    return getattr(loop, "_asyncgens_shutdown_called", False) is True


if sys.version_info >= (3, 12):  # pragma: no cover - the tiers on 3.12 and 3.13

    def _start(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
    ) -> asyncio.Task[None]:
        if loop.get_task_factory() is None:
            return asyncio.Task(coro, loop=loop, eager_start=True)
        return loop.create_task(coro)

else:

    def _start(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
    ) -> asyncio.Task[None]:
        return loop.create_task(coro)


#: The request tasks running: held here, for the loop does not hold them.
_JOBS: set[asyncio.Task[None]] = set()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Handoff:
    """Messages from tasks to readers, a few held at most (an app's sends wait
    while its reader has not taken what it holds). Any number of tasks may
    put and take at once (an app that sends from two tasks): each waits in
    turn, and each is woken."""

    __slots__ = (
        "_capacity",
        "_ended",
        "_items",
        "_left",
        "_loop",
        "_putters",
        "_takers",
    )

    def __init__(self, capacity: float) -> None:
        self._capacity = capacity
        # (the loop of the task it was made for: readers wait on it)
        self._loop = asyncio.get_running_loop()
        self._items: deque[Any] = deque()
        self._takers: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._ended = False
        self._left = False

    async def put(self, item: Any) -> bool:
        while len(self._items) >= self._capacity and not (
            self._left or self._ended
        ):  # full: wait
            await _wait_in(self._putters, math.inf)
        if self._left or self._ended:  # (a send after the app's call returned)
            return False
        self._items.append(item)
        _wake_one(self._takers)
        return True

    def put_nowait(self, item: Any) -> None:
        if not self._left and not self._ended:
            self._items.append(item)
            _wake_one(self._takers)

    def end(self) -> None:
        self._ended = True
        _wake_all(self._takers)
        _wake_all(self._putters)  # (a send still waiting gets False)

    def take_nowait(self) -> Any:
        if self._items:
            item = self._items.popleft()
            _wake_one(self._putters)
            return item
        return None if self._ended else EMPTY

    async def take(self, seconds: float) -> Any:
        loop = asyncio.get_running_loop()
        if loop is not self._loop and not (self._items or self._ended):
            raise RuntimeError(
                "this streamed response or websocket session was opened on "
                "another event loop than the one reading it now: its handler "
                "runs on that loop, which is not running. Open it where it is "
                "used (in the test), or run the fixture that opens it on the "
                "test's loop (pytest-asyncio: the same loop_scope)"
            )
        deadline = loop.time() + seconds
        while not self._items and not self._ended:
            await _wait_in(self._takers, deadline - loop.time())
        return self.take_nowait()

    def leave(self) -> None:
        self._left = True
        self._ended = True  # (a reader still waiting is done too)
        self._items.clear()
        _wake_all(self._putters)
        _wake_all(self._takers)


async def _wait_in(waiters: deque[asyncio.Future[None]], seconds: float) -> None:
    """Wait until woken from ``waiters``.

    Raises:
        TimeoutError: Not woken within ``seconds``.
    """
    if seconds <= 0:
        raise TimeoutError
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    waiters.append(waiter)
    timer = None if seconds == math.inf else loop.call_later(seconds, _expire, waiter)
    try:
        await waiter
    except asyncio.CancelledError:
        if waiter.done() and not waiter.cancelled():
            _wake_one(waiters)  # (woken, and cancelled: the next one's turn)
        raise
    finally:
        if timer is not None:
            timer.cancel()
        if not waiter.done() or waiter.cancelled():
            with contextlib.suppress(ValueError):
                waiters.remove(waiter)


def _wake_one(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        waiter = waiters.popleft()
        # (not one of a loop that has closed: a test's, that left it waiting)
        if not waiter.done() and not waiter.get_loop().is_closed():
            waiter.set_result(None)
            return


def _wake_all(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        _wake_one(waiters)


class Job:
    """A request's task on the caller's loop.

    Under pytest-asyncio the client may be closed on another loop than the
    one a request ran on (a session-scoped client, tests on loops of their
    own): a task whose loop has closed will never run again, and counts as
    ended; one whose loop is not running now cannot be waited for from here.
    """

    __slots__ = ("task", "torn")

    def __init__(self, task: asyncio.Task[None], torn: list[bool]) -> None:
        self.task = task
        self.torn = torn

    @property
    def lost(self) -> bool:
        """Whether its loop closed while it still ran, or it ended as its
        loop was ending: what came of that is no error of the app's (one
        that ended before has its outcome, an error of the app's among
        them)."""
        return bool(self.torn) or (not self.task.done() and self._gone())

    def _gone(self) -> bool:
        """Whether the task's loop has closed (then it is forgotten)."""
        if self.task.get_loop().is_closed():
            _JOBS.discard(self.task)
            return True
        return False

    def cancel(self) -> None:
        if not self._gone():
            self.task.cancel()

    async def wait(self, seconds: float) -> bool:
        task = self.task
        if self._gone():
            return True
        if not task.done() and task.get_loop() is asyncio.get_running_loop():
            timeout = None if seconds == math.inf else seconds
            await asyncio.wait({task}, timeout=timeout)
        return task.done()


class HereJob:
    """A request's app called in its reader's own task, for a response read
    whole: no task to start, no turn of the loop for an app that answers in
    one step (most do).

    The app's steps run in a copy of the reader's context. Its read timeout
    is a timer, set once the app first waits and pushed back at each message
    it sends; when it fires, or the client's exit ends the call, the reader's
    task is cancelled (the app is what it is running), and the cancellation
    is taken back when the call ends, as ``asyncio.timeout`` does: one of
    the caller's own still comes out.
    """

    # (class attributes: a call sets only what differs from them)
    waited = False
    ended = False
    why: str | None = None  # "timeout" or "cancel", once we cancelled
    late = False  # a message came once the timeout had passed
    paused = False  # the app waits for the client (the request's body)
    deadline = math.inf
    _loop: asyncio.AbstractEventLoop | None = None
    _handle: asyncio.TimerHandle | None = None
    _waiter: asyncio.Future[None] | None = None  # (made if one waits)

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.task = current_task()  # (made in the task that runs it)

    async def run(
        self,
        coro: Coroutine[Any, Any, None],
        ended: Callable[[BaseException | None], None],
    ) -> None:
        """Await ``coro`` here, stepped in a context of its own. An app that
        never waited is followed by a turn of the loop when one is due
        (:func:`turn_due_here`): a loop of requests is cancelled, and lets the
        other tasks run."""
        context = contextvars.copy_context()
        try:
            trap = first_step(context, coro, ended)
        finally:
            self.ended = True  # (for now: unless it waits)
        if trap is DONE:
            # It ended in one step, as most do: it never let the loop in, so
            # no timer, nothing to take back.
            if turn_due_here(self.task):
                await asyncio.sleep(0)
            return
        self.ended = False
        await self._waiting(context, coro, trap, ended)

    async def _waiting(
        self,
        context: contextvars.Context,
        coro: Coroutine[Any, Any, None],
        trap: Any,
        ended: Callable[[BaseException | None], None],
    ) -> None:
        """The rest of a call that waits: under its timer, any cancellation of
        ours taken back at the end."""
        task = self.task
        if sys.version_info >= (3, 11):
            before = task.cancelling()
        else:  # pragma: no cover - py310 tox environment
            before = 0
        self.first_wait()
        raised: list[bool] = []  # (whether the app raised, once it ended)
        groups = _LeftByGroups(coro, task)

        def told(exc: BaseException | None) -> None:
            raised.append(exc is not None)
            ended(exc)

        try:
            await stepped(context, coro, trap, told, groups.thrown)
        except asyncio.CancelledError:
            if not self._taken_back(task, before):
                raise
        else:
            # A cancellation still counted is the caller's, swallowed: by our
            # taking back the one it came merged with, or by an app that then
            # returned. One that raised has its exception come out instead:
            # on Python 3.11 and 3.12 an asyncio.TaskGroup whose child failed
            # leaves its own cancellation counted, and raises the child's.
            if not self._taken_back(task, before) and (self.why or not raised[0]):
                _not_swallowed(task, before)
        finally:
            self.ended = True
            if self._handle is not None:
                self._handle.cancel()
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)

    def _taken_back(self, task: asyncio.Task[Any], before: int) -> bool:
        """Withdraw our cancellation, if we made one; whether it was the
        only one made since the call began."""
        if self.why is None:
            return False
        if sys.version_info >= (3, 11):
            return task.uncancel() <= before
        return True  # pragma: no cover - py310 tox environment

    def first_wait(self) -> None:
        self.waited = True
        if not self.paused:
            self._start()

    def _start(self) -> None:
        """The read timeout starts (again), from now."""
        if self.timeout != math.inf:
            loop = self._loop = asyncio.get_running_loop()
            self.deadline = loop.time() + self.timeout
            if self._handle is None:
                self._handle = loop.call_at(self.deadline, self._expire)

    def pause(self) -> None:
        """The app waits for the client: no read timeout meanwhile."""
        self.paused = True
        self.deadline = math.inf

    def resume(self) -> None:
        """The client has answered: the read timeout starts again (once the
        app has waited)."""
        self.paused = False
        if self.waited:
            self._start()

    def heard(self) -> None:
        """A message came from the app (once it has waited): the read timeout
        starts again, unless it has passed (the app went on regardless): then
        the message came too late."""
        # (by the clock too: a loop the app held could not run our timer)
        loop = self._loop
        if self.why is not None or (loop is not None and loop.time() >= self.deadline):
            self.late = True
        elif loop is not None and not self.paused:
            self.deadline = loop.time() + self.timeout

    def _expire(self) -> None:
        assert self._loop is not None
        if self._loop.time() < self.deadline:  # (pushed back since, or paused)
            self._handle = (
                None
                if self.deadline == math.inf
                else self._loop.call_at(self.deadline, self._expire)
            )
            return
        self._handle = None
        self._stop("timeout")

    def _stop(self, why: str) -> None:
        # Never once it has ended (its task has moved on), never twice, never
        # on a loop that has closed (its task will not run again).
        task = self.task
        if self.ended or self.why is not None or task.get_loop().is_closed():
            return
        self.why = why
        task.cancel()

    def cancel(self) -> None:
        self._stop("cancel")

    async def wait(self, seconds: float) -> bool:
        loop = asyncio.get_running_loop()
        if self.ended or self.task.get_loop() is not loop:
            return self.ended  # (one on another loop cannot be waited for here)
        if self._waiter is None:
            self._waiter = loop.create_future()
        timeout = None if seconds == math.inf else seconds
        await asyncio.wait({self._waiter}, timeout=timeout)
        return self.ended

    @property
    def lost(self) -> bool:
        """Whether its reader's loop closed while the call still ran (a
        request left pending by a test on a loop of its own)."""
        return not self.ended and self.task.get_loop().is_closed()

    @property
    def timed_out(self) -> bool:
        """Whether the read timeout cut the call short (or passed before a
        message came, while the app held the loop)."""
        return self.why == "timeout" or (self.late and self.why is None)

    @property
    def stopped(self) -> bool:
        """Whether :meth:`cancel` cut the call short."""
        return self.why == "cancel"


def turn_due_here(task: asyncio.Task[Any]) -> bool:
    """After a call that never waited: whether the loop gets a turn now:
    if the task has a cancellation asked for (it comes out, as at any await
    that suspends), or when one is due (:func:`._backend.turn_due`). Python
    3.10, which cannot tell whether a cancellation was asked for, takes one
    each time."""
    if sys.version_info >= (3, 11):
        asked = task.cancelling() > 0
    else:  # pragma: no cover - py310 tox environment
        asked = True  # (3.10 cannot tell: a turn every time)
    return turn_due(asked)


def _group_exit() -> Any:
    """The code of ``asyncio.TaskGroup.__aexit__`` where it leaves its own
    cancellations counted (Python 3.11 and 3.12), else ``None``."""
    if sys.version_info >= (3, 11) and sys.version_info < (3, 13):
        return asyncio.TaskGroup.__aexit__.__code__
    return None  # pragma: no cover - the tiers on 3.10, 3.13 and later


_GROUP_EXIT: Any = _group_exit()


class _LeftByGroups:
    """The cancellations of the caller's task that the app's task groups
    (``asyncio.TaskGroup``) ask for and would never take back. On Python
    3.11 and 3.12 a group whose body ended without an error, and whose child
    then fails while the group waits in its exit, cancels its parent task and
    never withdraws that (CPython gh-116720, fixed in 3.13): left counted,
    the caller's task would seem cancelled, an app that handled its group's
    failure and answered would end the call with a ``CancelledError``
    (httpx's own transport answers), and a timeout of the app's around the
    group could not fire as one. Each is seen as it is thrown into the app,
    in the exit of the group that asked for it, and withdrawn there, as 3.13
    withdraws it (a cancellation thrown there for another reason, the
    caller's, is left counted: it still comes out)."""

    __slots__ = ("coro", "groups", "task")

    def __init__(
        self, coro: Coroutine[Any, Any, None], task: asyncio.Task[Any]
    ) -> None:
        self.coro = coro
        self.task = task
        self.groups: list[object] = []

    def thrown(self, exc: BaseException) -> None:
        """The loop throws ``exc`` into the app (a cancellation: asyncio
        throws nothing else): if a group the app awaits in its exit asked for
        it (its body ended without an error, so the request came during its
        exit, and is not yet withdrawn), the request is withdrawn."""
        if _GROUP_EXIT is None:  # pragma: no cover - the tiers on 3.10, 3.13 and later
            return
        awaited: Any = self.coro
        while awaited is not None:
            if getattr(awaited, "cr_code", None) is _GROUP_EXIT:
                where = awaited.cr_frame.f_locals
                group = where["self"]
                if (
                    where["et"] is None
                    and group._parent_cancel_requested
                    and group._parent_task is self.task
                    and all(group is not seen for seen in self.groups)
                ):
                    self.groups.append(group)
                    _withdraw_cancel(self.task)
            awaited = _awaited_by(awaited)


#: The steps of an async generator awaited (``asend``, ``athrow``): they do
#: not say what they await; their async generator does.
_GENERATOR_STEPS = frozenset({"async_generator_asend", "async_generator_athrow"})


def _awaited_by(awaited: Any) -> Any:
    """What a suspended coroutine, generator or async generator (or a step
    of one) waits on, or ``None``."""
    inner = (
        getattr(awaited, "cr_await", None)
        or getattr(awaited, "gi_yieldfrom", None)
        or getattr(awaited, "ag_await", None)
    )
    if inner is None and type(awaited).__name__ in _GENERATOR_STEPS:
        # (its generator is among what it refers to: CPython's own step)
        inner = next(
            (each for each in gc.get_referents(awaited) if hasattr(each, "ag_await")),
            None,
        )
    return inner


def _not_swallowed(task: asyncio.Task[Any], before: int) -> None:
    """Raise the caller's own cancellation if the app swallowed it (one asked
    for since ``before`` is still counted): it is the caller's, and still
    comes out. (Python 3.10 cannot count them.)"""
    if sys.version_info >= (3, 11) and task.cancelling() > before:
        raise asyncio.CancelledError


class AsyncioHolders:
    """The group's moves on asyncio (``_group.LifespanGroup``): each holder a
    task of its own (an outer cancellation does not reach it), the body
    cancelled through its task (and the request taken back), waits that go
    on through cancellations (the first is kept, for the protocol)."""

    __slots__ = ("body", "count", "loop", "ready_future", "tasks")

    def __init__(self, count: int) -> None:
        self.count = count
        self.loop = asyncio.get_running_loop()
        self.ready_future: asyncio.Future[None] = self.loop.create_future()
        self.tasks: list[asyncio.Task[None]] = []
        self.body: BodyCanceller | None = None

    async def enter(self) -> None:
        self.body = BodyCanceller(current_task())

    def start(
        self,
        index: int,
        hold: Callable[[int, Any], Coroutine[Any, Any, None]],
        app: Any,
    ) -> None:
        self.tasks.append(start_task(self.loop, hold(index, app)))

    def stop(self, index: int) -> None:
        self.tasks[index].cancel()

    def stop_body(self, error: BaseException) -> None:
        assert self.body is not None
        self.body.cancel(error)

    def ready(self) -> None:
        if not self.ready_future.done():
            self.ready_future.set_result(None)

    async def wait_ready(self) -> None:
        if self.count:
            await self.ready_future
        else:
            await asyncio.sleep(0)  # no apps: entry still yields

    def body_was_ours(self) -> bool:
        assert self.body is not None
        return self.body.ended()

    def is_ctrl_c(self, exc: BaseException) -> bool:
        return is_ctrl_c(exc)

    def interruption_wins(self) -> bool:
        return ctrl_c_pressed()

    def cut_short(self, interrupted: BaseException) -> bool:
        return False  # (a cancellation does not cut the shutdowns short)

    async def wait_for(self, indices: Iterable[int]) -> BaseException | None:
        return await wait_all([self.tasks[index] for index in indices])

    async def checkpoint(self) -> BaseException | None:
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError as cancelled:
            return cancelled
        return None

    async def exit(self) -> BaseException | None:
        return None  # (nothing holds the holders: wait_for waited for them)
