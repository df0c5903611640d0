"""The asyncio shim: the trio driver's few moves, made with asyncio's primitives.

As in :mod:`._trio`, nothing here decides a protocol question. The app runs in
a task of its own (so an outer cancellation of the caller does not reach it:
asyncio's shield), a one-message inbox carries messages to it, a future says
when the protocol has its answer, and a timer handle, set only for an app
that does not answer at once, keeps time. asyncio cancellation is a one-shot
request, not a scope, so the shim counts its own requests and takes them back
(``Task.uncancel``) when they have done their work.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import AsyncGenerator, Awaitable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, NoReturn

from ._driver import LifespanDriver
from ._options import Options
from ._protocol import (
    combine_many,
    lifespan_scope,
    raised_by_the_call,
)
from ._reraise import reraise
from ._state import AppT, LifespanApp
from ._types import AnyASGIApp, Message


def _withdraw_cancel(task: asyncio.Task[Any]) -> bool:
    """Withdraw one cancellation request of ours; whether others remain.

    Python 3.10 cannot tell requests apart, so there ours is the only one.
    """
    if sys.version_info >= (3, 11):
        return task.uncancel() > 0
    return False  # pragma: no cover - py310 tox environment


class _BodyCanceller:
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

    def cancel(self) -> None:
        if not self.requested:
            self.requested = True
            self.host.cancel()

    def ended(self, exc: BaseException | None) -> BaseException | None:
        """What the body raised, less our own cancellation."""
        if self.requested:
            others = _withdraw_cancel(self.host)
            if isinstance(exc, asyncio.CancelledError) and not others:
                return None  # ours: the failure that caused it comes out
        return exc


def _current_task() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None, "trio_lifespan runs inside an asyncio task"
    return task


async def _wait_all(tasks: list[asyncio.Task[None]]) -> BaseException | None:
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


class _AsyncioLifespan(LifespanDriver):
    """One app's lifespan, as asyncio runs it."""

    __slots__ = (
        "app_cancelled",
        "app_task",
        "body",
        "getter",
        "loop",
        "pending",
        "settled",
        "timer",
    )

    cancelled = asyncio.CancelledError

    def __init__(self, app: AnyASGIApp, options: Options) -> None:
        super().__init__(app, options)
        self.loop = asyncio.get_running_loop()
        self.body = _BodyCanceller(_current_task())
        # The app's inbox holds one message at most (the startup, then the
        # shutdown), so it is a slot and the future of an app waiting on it,
        # not an asyncio.Queue.
        self.pending: Message | None = None
        self.getter: asyncio.Future[Message] | None = None
        self.settled: asyncio.Future[None] = self.loop.create_future()
        self.timer: asyncio.TimerHandle | None = None  # the stage's time limit
        self.app_task: asyncio.Task[None] | None = None
        self.app_cancelled = False  # we asked the app's task to stop

    def sync(self) -> None:
        protocol = self.protocol
        if protocol.app_must_stop:
            self._stop_app()
        if protocol.body_must_stop:
            self.body.cancel()
        if not protocol.waiting and not self.settled.done():
            self.settled.set_result(None)

    def _stop_app(self) -> None:
        task = self.app_task
        if not self.app_cancelled and task is not None:
            self.app_cancelled = True
            task.cancel()

    def _deliver(self, message: Message) -> None:
        getter = self.getter
        if getter is not None and not getter.done():
            getter.set_result(message)
        else:
            self.pending = message

    async def receive(self) -> Message:
        if self.protocol.app_receive():
            message = self.pending
            if message is not None:
                self.pending = None
                return message
            self.getter = self.loop.create_future()
            return await self.getter
        self.sync()
        await self._cancel_app_again()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(self, message: Message) -> None:
        still_in = self.protocol.app_send(message)
        self.sync()
        if not still_in:
            # An app that keeps sending after it broke the protocol must not
            # spin for ever.
            await self._cancel_app_again()

    async def _cancel_app_again(self) -> NoReturn:
        # asyncio cancels once; an app that swallowed it and came back to us
        # is cancelled again, the way a trio cancel scope stays cancelled.
        self.app_cancelled = True
        _current_task().cancel()
        await self.loop.create_future()
        raise AssertionError("unreachable")  # pragma: no cover

    async def run_app(self) -> None:
        scope = lifespan_scope(self.state)
        try:
            await self.app(scope, self.receive, self.send)
        except asyncio.CancelledError as exc:
            self.protocol.app_exit(None if self.app_cancelled else exc)
        except BaseException as exc:  # noqa: BLE001 - the protocol judges it
            self.protocol.app_exit(exc, at_call=raised_by_the_call(exc))
        else:
            self.protocol.app_exit(None)
        self.sync()

    async def settle(
        self, message: Message, seconds: float, *, shielded: bool = False
    ) -> None:
        """Deliver ``message`` and wait, up to ``seconds``, for the app's answer.

        ``shielded``: cancellations that arrive meanwhile (anyio re-delivers
        them) do not cut the wait short; the time limit still bounds it.
        """
        self._deliver(message)
        if seconds != math.inf:
            # The time limit runs from now, but its timer is only set if the
            # app has not answered by the loop's next turn: most apps answer
            # in their first step, and a timer handle costs more than the
            # rest of a cycle (see docs/benchmarks.rst).
            loop = self.loop
            loop.call_soon(self._arm, loop.time() + seconds, seconds, self.settled)
        try:
            if shielded:
                await self._wait_out()
            else:
                await self.settled
        finally:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None

    async def _wait_out(self) -> None:
        while not self.settled.done():
            try:
                await asyncio.shield(self.settled)
            except asyncio.CancelledError as exc:
                self.raised = self.raised or exc

    def _arm(
        self, deadline: float, seconds: float, settled: asyncio.Future[None]
    ) -> None:
        """Set the stage's timer if the app has not answered yet."""
        if not settled.done():
            self.timer = self.loop.call_at(deadline, self._time_up, seconds)

    def _time_up(self, seconds: float) -> None:
        self.timer = None
        self.protocol.time_out(seconds)
        self.sync()

    async def start(self) -> bool:
        message = self.protocol.begin_startup()
        self.app_task = self.loop.create_task(self.run_app())
        try:
            await self.settle(message, self.options.startup_timeout)
        except BaseException as exc:  # noqa: BLE001 - raised on leaving
            self.abandon(exc)
            return False
        return self.protocol.error is None

    def body_raised(self, exc: BaseException | None) -> BaseException | None:
        return self.body.ended(exc)

    async def stop(self) -> None:
        try:
            if self.protocol.running:
                message = self.protocol.begin_shutdown()
                if message is not None:
                    self.settled = self.loop.create_future()
                    await self.settle(
                        message,
                        self.options.shutdown_timeout,
                        shielded=self.raised is not None,
                    )
            elif self.protocol.error is None:
                await asyncio.sleep(0)  # no lifespan: exit still yields
        except BaseException as exc:  # noqa: BLE001 - raised on leaving
            self.abandon(exc)

    def join(self) -> Awaitable[object] | None:
        # No task of ours outlives us.
        task = self.app_task
        assert task is not None
        if task.done():
            return None
        self._stop_app()
        return self._wait_for(task)

    async def _wait_for(self, task: asyncio.Task[None]) -> None:
        interrupted = await _wait_all([task])
        self.raised = self.raised or interrupted


class _AsyncioGroup:
    """Several lifespans, each held open by a task of its own."""

    def __init__(self, count: int, options: Options) -> None:
        self.options = options
        loop = asyncio.get_running_loop()
        self.body = _BodyCanceller(_current_task())
        self.in_body = False
        self.wrapped: list[LifespanApp[Any] | None] = [None] * count
        self.waiting = count
        self.ready: asyncio.Future[None] = loop.create_future()
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.cancelled: set[asyncio.Task[None]] = set()  # holders we stopped
        self.errors: list[BaseException] = []
        self.raised: BaseException | None = None
        if not count:
            self.ready.set_result(None)

    async def hold(self, index: int, app: AnyASGIApp) -> None:
        try:
            async with _AsyncioLifespan(app, self.options) as wrapped:
                self.wrapped[index] = wrapped
                self.waiting -= 1
                if not self.waiting:
                    self.ready.set_result(None)
                await self.stop.wait()
        except BaseException as exc:  # noqa: BLE001 - raised by the group
            if not (
                isinstance(exc, asyncio.CancelledError)
                and _current_task() in self.cancelled
            ):
                self.errors.append(exc)
                if not self.stop.is_set():
                    self.abandon()

    def abandon(self) -> None:
        """Stop everything short of the shutdowns: something failed."""
        if not self.ready.done():
            self.ready.set_result(None)
        if self.in_body:
            self.body.cancel()
        # Cancelling a finished task, or the failing holder itself on its way
        # out, does nothing.
        self.cancelled.update(self.tasks)
        for task in self.tasks:
            task.cancel()

    def result(self) -> BaseException | None:
        return combine_many(
            self.raised,
            self.errors,
            raised_is_cancel=isinstance(self.raised, asyncio.CancelledError),
        )


@asynccontextmanager
async def asyncio_lifespans(
    apps: Sequence[AnyASGIApp], options: Options
) -> AsyncGenerator[tuple[LifespanApp[Any], ...]]:
    """Run several lifespans on asyncio; see :func:`trio_lifespan.open_lifespans`."""
    __tracebackhide__ = True
    group = _AsyncioGroup(len(apps), options)
    loop = asyncio.get_running_loop()
    group.tasks = [loop.create_task(group.hold(i, app)) for i, app in enumerate(apps)]
    try:
        await group.ready
    except BaseException as exc:  # noqa: BLE001 - raised at the end
        group.raised = exc
        group.abandon()
    if not group.errors and group.raised is None:
        group.in_body = True
        try:
            yield tuple(w for w in group.wrapped if w is not None)
        except BaseException as exc:  # noqa: BLE001 - raised at the end
            group.raised = group.body.ended(exc)
        else:
            group.raised = group.body.ended(None)
        group.in_body = False
    group.stop.set()
    interrupted = await _wait_all(group.tasks)
    group.raised = group.raised or interrupted
    error = group.result()
    if error is not None:
        reraise(error)


class _Asyncio:
    """The asyncio driver, as :func:`._options.current_backend` hands it out."""

    def open_one(
        self, app: AppT, options: Options, /
    ) -> AbstractAsyncContextManager[LifespanApp[AppT]]:
        return _AsyncioLifespan(app, options)

    def open_many(
        self, apps: Sequence[AnyASGIApp], options: Options, /
    ) -> AbstractAsyncContextManager[tuple[LifespanApp[Any], ...]]:
        return asyncio_lifespans(apps, options)

    async def sleep_forever(self) -> NoReturn:
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")  # pragma: no cover


BACKEND = _Asyncio()
