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
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ._driver import LifespanDriver
from ._errors import LifespanUnavailable
from ._protocol import (
    Stage,
    cancel_reason,
    combine_many,
    interruption,
    lifespan_scope,
    only_cancellations,
    raised_by_the_call,
)
from ._reraise import reraise
from ._state import AppT, LifespanApp
from ._types import AnyASGIApp, Message

if TYPE_CHECKING:
    from ._options import Options

T = TypeVar("T")


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

    def cancel(self, error: BaseException) -> None:
        """Cancel the body because of ``error``, which the cancellation names.

        Called once: the caller stops counting the body as running.
        """
        self.requested = True
        self.host.cancel(cancel_reason(error))

    def ended(self, exc: BaseException | None) -> BaseException | None:
        """What the body raised, less our own cancellation."""
        if self.requested:
            self.requested = False
            others = _withdraw_cancel(self.host)
            if not others and only_cancellations(exc, asyncio.CancelledError):
                return None  # ours: the failure that caused it comes out
        return exc


def _ctrl_c_pressed() -> bool:
    """Whether Ctrl-C is what cancels us: ``asyncio.run`` turns one into a
    cancellation of its main task, and raises KeyboardInterrupt when that
    task ends cancelled.

    Read on the error path only, from the runner that handles SIGINT.
    """
    handler = signal.getsignal(signal.SIGINT)
    runner = getattr(getattr(handler, "func", None), "__self__", None)
    runner_type: type[object] | None = getattr(asyncio, "Runner", None)
    return (
        runner_type is not None
        and isinstance(runner, runner_type)
        and getattr(runner, "_interrupt_count", 0) > 0
    )


def _interrupted(
    raised: BaseException | None, interrupted: BaseException | None
) -> BaseException | None:
    """What we raise when a cancellation ``interrupted`` a wait.

    The body's exception (``raised``) wins over a cancellation, which asyncio
    cannot deliver again; Ctrl-C wins over everything, as on trio, with the
    body's exception as its context.
    """
    if interrupted is None or raised is None:
        return raised or interrupted
    if _ctrl_c_pressed():
        return interruption(interrupted, raised)
    return raised


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
        "inbox",
        "loop",
        "settled",
        "timer",
    )

    cancelled = asyncio.CancelledError
    gives_way = (asyncio.CancelledError, LifespanUnavailable)

    def __init__(self, app: AnyASGIApp, options: Options) -> None:
        super().__init__(app, options)
        self.loop = asyncio.get_running_loop()
        self.body = _BodyCanceller(_current_task())
        # The app's inbox: the messages it has not taken yet, and the future
        # of an app waiting on it (an asyncio.Queue costs more). An app that
        # cancels its own receive() still gets every message, in order.
        self.inbox: deque[Message] = deque()
        self.getter: asyncio.Future[Message] | None = None
        self.settled: asyncio.Future[None] = self.loop.create_future()
        self.timer: asyncio.TimerHandle | None = None  # the stage's time limit
        self.app_task: asyncio.Task[None] | None = None
        self.app_cancelled = False  # we asked the app's task to stop

    def sync(self) -> None:
        protocol = self.protocol
        if protocol.app_must_stop:
            self._stop_app()
        error = protocol.error
        if error is not None:
            self.failed()
            if protocol.body_must_stop and self.in_body:
                self.in_body = False  # once: it is being stopped
                self.body.cancel(error)
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
            self.inbox.append(message)

    async def receive(self) -> Message:
        if self.protocol.app_receive():
            inbox = self.inbox
            if inbox:
                return inbox.popleft()
            getter: asyncio.Future[Message] = self.loop.create_future()
            self.getter = getter
            try:
                return await getter
            except asyncio.CancelledError:
                if not getter.cancelled():
                    # Handed over, but the app was cancelled before it took
                    # it: it stays first in line.
                    inbox.appendleft(getter.result())
                raise
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
            if self.app_cancelled:
                self.protocol.app_exit(None)  # ours
            else:
                self.protocol.app_exit(exc, cancelled=True)
        except BaseException as exc:  # noqa: BLE001 - the protocol judges it
            self.protocol.app_exit(exc, at_call=raised_by_the_call(exc))
        else:
            self.protocol.app_exit(None)
        self.sync()

    async def settle(
        self, message: Message, seconds: float, *, graceful: bool = False
    ) -> None:
        """Deliver ``message`` and wait, up to ``seconds``, for the app's answer.

        ``graceful`` (the shutdown): a cancellation that arrives meanwhile does
        not cut the wait short (anyio re-delivers them: each one); the time
        limit still bounds it, and the cancellation is raised after. Only
        Ctrl-C stops the wait, as on trio.
        """
        if seconds <= 0:
            # No time at all, as on trio: the app never gets to answer, and
            # the stage times out at the loop's next turn (after the app's
            # first step, which may still show that it is not an ASGI app).
            self.loop.call_soon(self._time_up, seconds)
        else:
            self._deliver(message)
        if 0 < seconds != math.inf:
            # The time limit runs from now, but its timer is only set if the
            # app has not answered by the loop's next turn: most apps answer
            # in their first step, and a timer handle costs more than the
            # rest of a cycle (see docs/benchmarks.rst).
            loop = self.loop
            stage = self.protocol.stage
            loop.call_soon(self._arm, loop.time() + seconds, seconds, stage)
        try:
            while not self.settled.done():
                try:
                    await self.settled
                except asyncio.CancelledError as exc:
                    if not graceful or _ctrl_c_pressed():
                        raise
                    self.raised = self.raised or exc  # raised after the answer
                    if self.settled.cancelled() and self.protocol.waiting:
                        # It cancelled the future we waited on: a new one.
                        self.settled = self.loop.create_future()
        finally:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None

    def _arm(self, deadline: float, seconds: float, stage: Stage) -> None:
        """Set the stage's timer if the app has not answered it yet."""
        protocol = self.protocol
        if protocol.waiting and protocol.stage is stage:
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
            self.interrupted(exc)
            return False
        return self.protocol.serving

    def body_raised(self, exc: BaseException | None) -> BaseException | None:
        return self.body.ended(exc)

    async def stop(self) -> None:
        try:
            if self.protocol.running:
                message = self.protocol.begin_shutdown()
                if message is not None:
                    self.settled = self.loop.create_future()
                    # Graceful after the body raised or was cancelled, as on
                    # trio; a cancellation after a body that ended well cuts
                    # it short (as asgi-lifespan's does).
                    await self.settle(
                        message,
                        self.options.shutdown_timeout,
                        graceful=self.raised is not None,
                    )
            elif self.protocol.error is None:
                await asyncio.sleep(0)  # no lifespan: exit still yields
        except BaseException as exc:  # noqa: BLE001 - raised on leaving
            self.abandon(exc)
        self.failed()

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
        self.raised = _interrupted(self.raised, interrupted)


class _AsyncioLifespans:
    """Several lifespans, each held open by a task of its own."""

    def __init__(self, apps: Sequence[AnyASGIApp], options: Options) -> None:
        count = len(apps)
        self.apps = apps
        self.options = options
        self.loop = asyncio.get_running_loop()
        self.body = _BodyCanceller(_current_task())
        self.in_body = False
        self.wrapped: list[LifespanApp[Any] | None] = [None] * count
        self.starting = count  # holders whose app has not started yet
        self.ready: asyncio.Future[None] = self.loop.create_future()
        self.leave = asyncio.Event()  # the body is over: shut down
        self.tasks: list[asyncio.Task[None]] = []
        self.abandoned = False  # we cancelled every holder
        self.errors: list[BaseException] = []
        self.raised: BaseException | None = None

    async def hold(self, index: int, app: AnyASGIApp) -> None:
        try:
            async with _AsyncioLifespan(app, self.options) as wrapped:
                self.wrapped[index] = wrapped
                self.starting -= 1
                if not self.starting and not self.ready.done():
                    # (Done already if we were cancelled while starting.)
                    self.ready.set_result(None)
                await self.leave.wait()
        except BaseException as exc:  # noqa: BLE001 - raised by the group
            if not (isinstance(exc, asyncio.CancelledError) and self.abandoned):
                self.errors.append(exc)
                if not self.leave.is_set():
                    self.abandon(exc)

    def abandon(self, exc: BaseException | None) -> None:
        """Stop everything short of the shutdowns: something failed.

        Once: with many failing apps, each failure must not walk every holder
        again.
        """
        if self.abandoned:
            return
        self.abandoned = True
        if not self.ready.done():
            self.ready.set_result(None)
        if self.in_body and exc is not None:
            self.in_body = False  # once: it is being stopped
            self.body.cancel(exc)
        # Cancelling a finished task, or the failing holder itself on its way
        # out, does nothing.
        for task in self.tasks:
            task.cancel()

    async def __aenter__(self) -> tuple[LifespanApp[Any], ...]:
        __tracebackhide__ = True
        loop = self.loop
        self.tasks = [
            loop.create_task(self.hold(i, app)) for i, app in enumerate(self.apps)
        ]
        try:
            if self.apps:
                await self.ready
            else:
                await asyncio.sleep(0)  # no apps: entry still yields
        except BaseException as exc:  # noqa: BLE001 - raised on leaving
            self.raised = exc
            self.abandon(None)
        if not self.errors and self.raised is None:
            self.in_body = True
            return tuple(w for w in self.wrapped if w is not None)
        await self.finish(None)
        raise AssertionError("a failed startup always has an error")  # pragma: no cover

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        __tracebackhide__ = True
        self.in_body = False
        self.raised = self.body.ended(exc)
        return await self.finish(exc)

    async def finish(self, exc: BaseException | None) -> bool:
        """Shut every app down, wait for the holders, raise what matters."""
        __tracebackhide__ = True
        self.leave.set()
        interrupted: BaseException | None = None
        if self.apps:
            interrupted = await _wait_all(self.tasks)
        else:
            try:
                await asyncio.sleep(0)  # no apps: exit still yields
            except asyncio.CancelledError as cancelled:
                interrupted = cancelled
        self.raised = _interrupted(self.raised, interrupted)
        error = combine_many(
            self.raised,
            self.errors,
            raised_is_cancel=only_cancellations(
                self.raised, (asyncio.CancelledError, LifespanUnavailable)
            ),
        )
        if error is not None and error is not exc:
            reraise(error)
        return False


class _Asyncio:
    """The asyncio driver, as :func:`._backend.current_backend` hands it out."""

    def open_one(
        self, app: AppT, options: Options, /
    ) -> AbstractAsyncContextManager[LifespanApp[AppT]]:
        return _AsyncioLifespan(app, options)

    def open_many(
        self, apps: Sequence[AnyASGIApp], options: Options, /
    ) -> AbstractAsyncContextManager[tuple[LifespanApp[Any], ...]]:
        return _AsyncioLifespans(apps, options)

    async def sleep_forever(self) -> NoReturn:
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")  # pragma: no cover

    cancelled: type[BaseException] = asyncio.CancelledError

    def run(self, fn: Callable[[], Coroutine[Any, Any, T]], /) -> T:
        return asyncio.run(fn())

    def event(self) -> asyncio.Event:
        return asyncio.Event()

    async def within(
        self, seconds: float, fn: Callable[[], Awaitable[None]], /
    ) -> bool:
        async def call() -> None:  # wait_for takes an awaitable, not a callable
            await fn()

        try:
            await asyncio.wait_for(call(), seconds)
        except asyncio.TimeoutError:
            return False
        return True


BACKEND = _Asyncio()
