"""The asyncio side of the client's requests: a task per request, a handoff.

What :class:`._asyncio._Asyncio` hands the client's transport (``spawn``,
``handoff``): the request's task on the caller's loop, and the few messages
it holds for its reader, with a timer for the read timeout. Kept apart from
the lifespan's driver, which needs none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from ._types import EMPTY


def spawn_job(fn: Callable[[], Awaitable[None]]) -> Job:
    """Start ``fn()`` in a task on the running loop."""

    async def run() -> None:
        await fn()

    task = asyncio.get_running_loop().create_task(run())
    _JOBS.add(task)  # (the loop keeps only a weak reference)
    task.add_done_callback(_JOBS.discard)
    return Job(task)


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

    __slots__ = ("_capacity", "_ended", "_items", "_left", "_putters", "_takers")

    def __init__(self, capacity: float) -> None:
        self._capacity = capacity
        self._items: deque[Any] = deque()
        self._takers: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._ended = False
        self._left = False

    async def put(self, item: Any) -> bool:
        while len(self._items) >= self._capacity and not self._left:  # full: wait
            await _wait_in(self._putters, math.inf)
        if self._left:
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

    def take_nowait(self) -> Any:
        if self._items:
            item = self._items.popleft()
            _wake_one(self._putters)
            return item
        return None if self._ended else EMPTY

    async def take(self, seconds: float) -> Any:
        loop = asyncio.get_running_loop()
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
        if not waiter.done():
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

    __slots__ = ("task",)

    def __init__(self, task: asyncio.Task[None]) -> None:
        self.task = task

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
