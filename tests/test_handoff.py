"""The few primitives each driver gives the client's transport
(``Backend.handoff``, ``spawn``, ``now``: trio_lifespan/_trio.py and
_asyncio.py), the same on each backend, on fake time."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

import trio_lifespan
from trio_lifespan._asyncio_tasks import (  # pyright: ignore[reportPrivateUsage]
    _JOBS,  # pyright: ignore[reportPrivateUsage]
    Handoff as AsyncioHandoff,
    Job as _AsyncioJob,
    _expire,  # pyright: ignore[reportPrivateUsage]
)
from trio_lifespan._backend import current_backend
from trio_lifespan._types import EMPTY

from .backends import Backend, tasks
from .test_transport import lifespan
from .typed import approx


async def test_a_handoff_holds_what_it_may_and_says_when_it_ends(
    backend: Backend,
) -> None:
    ours = current_backend("test")
    handoff = ours.handoff()  # holds one
    assert await handoff.put("a")
    taken: list[Any] = []

    async def reader() -> None:
        await backend.sleep(1)
        taken.append(await handoff.take(math.inf))
        taken.append(await handoff.take(math.inf))

    began = backend.now()
    async with tasks(backend) as start:
        start(reader)
        assert await handoff.put("b")  # waits until "a" is taken
        assert backend.now() - began == approx(1)
    assert taken == ["a", "b"]
    with pytest.raises(TimeoutError):
        await handoff.take(2)
    assert ours.now() - began == approx(3)
    handoff.end()
    assert await handoff.take(math.inf) is None
    handoff.put_nowait("dropped")  # (ended: nothing more comes)
    assert await handoff.take(math.inf) is None


async def test_a_reader_that_leaves_frees_the_writer(backend: Backend) -> None:
    handoff = current_backend("test").handoff()
    assert await handoff.put("a")
    results: list[bool] = []

    async def writer() -> None:
        results.append(await handoff.put("b"))  # full: waits

    async with tasks(backend) as start:
        start(writer)
        await backend.sleep(1)
        handoff.leave()
    assert results == [False]
    assert not await handoff.put("c")
    handoff.put_nowait("d")  # (left: dropped)


async def test_an_unbounded_handoff_never_waits(backend: Backend) -> None:
    handoff = current_backend("test").handoff(math.inf)
    for number in range(100):
        handoff.put_nowait(number)
    assert [await handoff.take(0) for _ in range(100)] == list(range(100))


async def test_a_job_is_waited_for_and_cancelled(backend: Backend) -> None:
    ours = current_backend("test")
    ended: list[str] = []

    async def forever() -> None:
        try:
            await backend.sleep(math.inf)
        finally:
            ended.append("cancelled")

    async with trio_lifespan.open_lifespan(_app) as app:
        job = ours.spawn(app, forever)
        assert not await job.wait(1)
        job.cancel()
        assert await job.wait(math.inf)
        assert await job.wait(0)  # (ended: at once)
    assert ended == ["cancelled"]


def test_a_timer_late_for_a_waiter_does_nothing() -> None:
    loop = asyncio.new_event_loop()
    try:
        waiter = loop.create_future()
        waiter.set_result(None)
        _expire(waiter)  # (the item came in the same turn as the timeout)
        assert waiter.result() is None
    finally:
        loop.close()


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await lifespan(scope, receive, send)


def test_a_job_on_a_closed_loop_counts_as_ended() -> None:
    # pytest-asyncio before 1.0 closes a test's loop without cancelling its
    # tasks: the client's exit, on another loop, must not wait for them.
    other = asyncio.new_event_loop()

    async def forever() -> None:
        await asyncio.get_running_loop().create_future()

    task = other.create_task(forever())
    other.run_until_complete(asyncio.sleep(0))  # (it starts, and waits)
    _JOBS.add(task)
    job = _AsyncioJob(task, [])

    async def from_elsewhere() -> tuple[bool, bool]:
        before = await job.wait(math.inf)  # another loop's, not running: no wait
        other.close()
        job.cancel()  # (its loop has closed: nothing to cancel it with)
        return before, await job.wait(math.inf)

    assert asyncio.run(from_elsewhere()) == (False, True)
    assert task not in _JOBS
    assert repr(EMPTY) == "EMPTY"
    # (pending on a closed loop is the point: asyncio need not say so at exit)
    task._log_destroy_pending = False  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue]


async def test_no_time_to_wait_is_a_timeout_at_once(backend: Backend) -> None:
    handoff = current_backend("test").handoff()
    with pytest.raises(TimeoutError):
        await handoff.take(0)


def test_a_reader_woken_and_cancelled_passes_its_turn_on() -> None:
    async def main() -> list[Any]:
        handoff = AsyncioHandoff(math.inf)
        got: list[Any] = []

        async def reader() -> None:
            got.append(await handoff.take(math.inf))

        first = asyncio.get_running_loop().create_task(reader())
        second = asyncio.get_running_loop().create_task(reader())
        await asyncio.sleep(0)  # both wait
        handoff.put_nowait("item")  # wakes the first...
        first.cancel()  # ...which is cancelled before it runs
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        await second
        assert first.cancelled()
        return got

    assert asyncio.run(main()) == ["item"]


async def test_waiting_readers_and_writers_are_each_woken_in_turn(
    backend: Backend,
) -> None:
    handoff = current_backend("test").handoff()  # holds one
    taken: list[Any] = []
    put: list[bool] = []

    async def reader() -> None:
        taken.append(await handoff.take(math.inf))

    async def writer(item: str) -> None:
        put.append(await handoff.put(item))

    async with tasks(backend) as start:
        start(reader)
        start(reader)
        await backend.sleep(1)  # both wait for an item
        handoff.put_nowait("a")
        handoff.put_nowait("b")
    assert sorted(taken) == ["a", "b"]
    assert await handoff.put("c")  # now full
    async with tasks(backend) as start:
        start(lambda: writer("d"))
        start(lambda: writer("e"))
        await backend.sleep(1)  # both wait for room
        assert put == []
        got = [await handoff.take(math.inf) for _ in range(3)]
    assert got[0] == "c"
    assert sorted(got[1:]) == ["d", "e"]
    assert put == [True, True]


async def test_a_cancelled_reader_leaves_the_queue(backend: Backend) -> None:
    handoff = current_backend("test").handoff()
    taken: list[Any] = []

    async def gives_up() -> None:
        with backend.move_on_after(1):
            taken.append(await handoff.take(math.inf))

    async def waits() -> None:
        taken.append(await handoff.take(math.inf))

    async with tasks(backend) as start:
        start(gives_up)
        await backend.sleep(0.5)
        start(waits)
        await backend.sleep(1)  # the first has given up
        handoff.put_nowait("item")  # for the one still waiting
    assert taken == ["item"]


def test_no_loop_of_the_library_running_is_no_loop_here() -> None:
    # (what the pytest plugin's holder compares: a step run under another
    # library, or none, is not on the lifespan's loop)
    from trio_lifespan._asyncio import BACKEND as ASYNCIO  # noqa: PLC0415
    from trio_lifespan._trio import BACKEND as TRIO  # noqa: PLC0415

    assert ASYNCIO.loop_here() is None
    assert TRIO.loop_here() is None

    async def under_trio() -> tuple[object, object]:
        return ASYNCIO.loop_here(), TRIO.loop_here()

    import trio  # noqa: PLC0415

    on_asyncio, on_trio = trio.run(under_trio)
    assert on_asyncio is None
    assert on_trio is not None


async def test_nothing_is_handed_over_after_the_end(backend: Backend) -> None:
    # (an app's background task that sends after the app's call returned is
    # told the client has gone, and its message never reaches the reader)
    handoff = current_backend("test").handoff()
    assert await handoff.put("a")
    results: list[bool] = []

    async def writer() -> None:
        results.append(await handoff.put("b"))  # full: waits

    async with tasks(backend) as start:
        start(writer)
        await backend.sleep(1)
        handoff.end()  # (the writer waiting is told, too)
    assert results == [False]
    assert not await handoff.put("late")
    assert await handoff.take(math.inf) == "a"
    assert await handoff.take(math.inf) is None
