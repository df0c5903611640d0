"""The event loops the shared tests run on, each on fake time.

A shared test takes a ``backend`` argument and uses it for everything that
differs between libraries (sleeping, time, cancellation), so the very same
test proves a behaviour on each backend. Time is virtual: trio's MockClock
with autojump, so a 5 s timeout takes microseconds, and every test runs under
a guard deadline that turns a hang into a failure.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import looptime
import pytest
import trio
import trio.testing

#: Virtual seconds after which a test counts as hung. Far above every
#: timeout the tests use, far below "for ever".
HANG_GUARD = 10_000.0


class Deadline(Protocol):
    """What ``Backend.move_on_after`` yields."""

    @property
    def cancelled_caught(self) -> bool: ...


class MoveOnAfter(Protocol):
    """A block cancelled after a while, that moves on (it may swallow)."""

    def __enter__(self) -> Deadline: ...

    def __exit__(self, exc_type: Any, exc: Any, tb: Any, /) -> bool: ...


class Backend(Protocol):
    """One event loop library, as the shared tests use it."""

    name: str
    cancelled: type[BaseException]

    def run(self, fn: Callable[..., Awaitable[None]], kwargs: dict[str, Any]) -> None:
        """Run ``fn(**kwargs)`` to completion on fake time, guarded."""

    def now(self) -> float:
        """The current (virtual) time."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of virtual time."""

    async def checkpoint(self) -> None:
        """Yield to the loop once."""

    def move_on_after(self, seconds: float) -> MoveOnAfter:
        """A context manager cancelling its block after ``seconds``."""
        ...


class TrioBackend:
    """trio, on ``MockClock(autojump_threshold=0)``."""

    name = "trio"
    cancelled: type[BaseException] = trio.Cancelled

    def run(self, fn: Callable[..., Awaitable[None]], kwargs: dict[str, Any]) -> None:
        async def guarded() -> None:
            with trio.fail_after(HANG_GUARD):
                await fn(**kwargs)

        trio.run(guarded, clock=trio.testing.MockClock(autojump_threshold=0))

    def now(self) -> float:
        return trio.current_time()

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    async def checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()

    def move_on_after(self, seconds: float) -> trio.CancelScope:
        return trio.move_on_after(seconds)


class AsyncioMoveOnAfter:
    """trio's ``move_on_after`` for asyncio: cancel the block, then move on."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.cancelled_caught = False
        self._fired = False

    def __enter__(self) -> AsyncioMoveOnAfter:
        task = asyncio.current_task()
        assert task is not None

        def fire() -> None:
            self._fired = True
            task.cancel()

        self._task = task
        self._handle = asyncio.get_running_loop().call_later(self.seconds, fire)
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        self._handle.cancel()
        if not self._fired:
            return False
        if sys.version_info >= (3, 11):
            self._task.uncancel()
        if isinstance(exc, asyncio.CancelledError):
            self.cancelled_caught = True
            return True
        return False


class AsyncioBackend:
    """asyncio, on looptime's fake-time event loop."""

    name = "asyncio"
    cancelled: type[BaseException] = asyncio.CancelledError

    def run(self, fn: Callable[..., Awaitable[None]], kwargs: dict[str, Any]) -> None:
        # Idle: nothing scheduled and no I/O, so nothing can ever happen.
        loop = looptime.new_event_loop(start=0.0, end=HANG_GUARD, idle_timeout=1.0)
        # "Task exception was never retrieved" and the like fail the test.
        complaints: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _, context: complaints.append(context))
        try:
            loop.run_until_complete(_as_coroutine(fn(**kwargs)))
            left = [task for task in asyncio.all_tasks(loop) if not task.done()]
            assert not left, f"tasks left running: {left}"
            assert not complaints, complaints
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        if seconds == math.inf:
            await asyncio.get_running_loop().create_future()
        await asyncio.sleep(seconds)

    async def checkpoint(self) -> None:
        await asyncio.sleep(0)

    def move_on_after(self, seconds: float) -> AsyncioMoveOnAfter:
        return AsyncioMoveOnAfter(seconds)


async def _as_coroutine(awaitable: Awaitable[None]) -> None:
    await awaitable


BACKENDS: list[Backend] = [TrioBackend(), AsyncioBackend()]


def forever() -> float:
    """A sleep length that only a cancellation ends."""
    return math.inf


class tasks:
    """Tasks beside the test's, waited for on exit: a nursery on trio, a list
    of tasks on asyncio. Entering gives ``start_soon(fn)``."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.started: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Callable[[Callable[[], Awaitable[None]]], None]:
        if self.backend.name == "trio":
            self.nursery_manager = trio.open_nursery()
            nursery = await self.nursery_manager.__aenter__()
            return nursery.start_soon
        loop = asyncio.get_running_loop()

        def start_soon(fn: Callable[[], Awaitable[None]]) -> None:
            self.started.append(loop.create_task(_as_coroutine(fn())))

        return start_soon

    async def __aexit__(self, *exc: Any) -> None:
        if self.backend.name == "trio":
            await self.nursery_manager.__aexit__(*exc)
        else:
            await asyncio.gather(*self.started)


async def closed_under_a_reader(
    backend: Backend,
    opened: AbstractAsyncContextManager[Any],
    read: Callable[[Any], Awaitable[object]],
    *,
    after: float,
) -> BaseException:
    """Enter ``opened`` (an ``open_client``), run ``read(client)`` in a task of
    its own, and close the client from this one ``after`` seconds later (as a
    fixture's teardown in another task does): what the read raised (it
    must raise)."""
    raised: list[BaseException] = []

    async def reader() -> None:
        with pytest.raises(BaseException) as caught:  # noqa: PT011 - the caller judges it
            await read(client)
        raised.append(caught.value)

    async with tasks(backend) as start_soon:
        client = await opened.__aenter__()
        start_soon(reader)
        await backend.sleep(after)
        await opened.__aexit__(None, None, None)
    [error] = raised
    return error
