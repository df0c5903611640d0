"""The asyncio shim: the trio driver's few moves, made with asyncio's primitives.

As in :mod:`._trio`, nothing here decides a protocol question: each event
goes to the protocol, and what it returns is done in one place, ``apply``.
The app runs in a task of its own (so an outer cancellation of the caller
does not reach it: asyncio's shield), an inbox carries messages to it, a
future says when the stage has its answer, and a timer handle, set only for
an app that does not answer at once, keeps time. asyncio cancellation is a
one-shot request, not a scope, so the shim counts its own requests and
takes them back (``Task.uncancel``) when they have done their work.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ._asyncio_tasks import (
    AsyncioHolders,
    Background,
    BodyCanceller,
    Handoff as _Handoff,
    HereJob,
    Job as _Job,
    ctrl_c_pressed,
    current_task,
    is_ctrl_c,
    loop_here,
    spawn_job,
    start_task,
    turn_due_here,
    wait_all,
    wait_shielded,
    watch,
)
from ._exceptions import reraise
from ._group import Groups
from ._protocol import (
    ANSWERED,
    BODY,
    CHECKPOINT,
    GRACEFUL,
    PARK,
    REFUSE,
    STOP_APP,
    STOP_BODY,
    WITH_STATE,
    Do,
    LifespanProtocol,
    lifespan_scope,
    raised_by_the_call,
)
from ._state import AppT, LifespanApp, wrap_app
from ._types import AnyASGIApp, Message

if TYPE_CHECKING:
    from ._options import Options

T = TypeVar("T")


class AsyncioLifespan:
    """One app's lifespan as an async context manager, on asyncio.

    Entering starts the app in a task of its own and waits for the startup's
    answer; leaving sends the shutdown, waits for its answer and for the
    app's task to end, and raises what the protocol says.
    """

    __slots__ = (
        "answer",
        "answered",
        "app",
        "app_cancelled",
        "app_task",
        "body",
        "fail_requests",
        "getter",
        "inbox",
        "loop",
        "options",
        "protocol",
        "stage_number",
        "state",
        "timer",
    )

    def __init__(self, app: AnyASGIApp, options: Options) -> None:
        self.app = app
        self.options = options
        self.protocol = LifespanProtocol(
            asyncio.CancelledError, allow_unsupported=options.allow_unsupported
        )
        self.state: dict[str, Any] = {}
        self.loop = asyncio.get_running_loop()
        self.body = BodyCanceller(current_task())
        # The app's inbox: the messages it has not taken yet, and the future
        # of an app waiting on it (an asyncio.Queue costs more). An app that
        # cancels its own receive() still gets every message, in order.
        self.inbox: deque[Message] = deque()
        self.getter: asyncio.Future[Message] | None = None
        # The stage's answer (``ANSWERED``): a future to wait on, and a flag
        # that outlives a future a cancellation cancelled.
        self.answer: asyncio.Future[None] = self.loop.create_future()
        self.answered = False
        self.stage_number = 0  # which stage a pending timer belongs to
        self.timer: asyncio.TimerHandle | None = None  # the stage's time limit
        self.app_task: asyncio.Task[None] | None = None
        self.app_cancelled = False  # we asked the app's task to stop
        # Fails the wrapped app's requests once the lifespan has failed.
        self.fail_requests: Callable[[BaseException], None] | None = None

    # Entering and leaving, top to bottom ----------------------------------------

    async def __aenter__(self) -> LifespanApp[Any]:
        __tracebackhide__ = True
        protocol = self.protocol
        message = protocol.begin_startup()
        self.app_task = start_task(self.loop, self.run_app())
        try:
            await self.deliver_and_wait(message, self.options.startup_timeout)
        except BaseException as exc:  # noqa: BLE001 - the protocol judges it
            self.apply(protocol.interrupted(exc, ctrl_c=is_ctrl_c(exc)))
        do = protocol.startup_over()
        if do & BODY:
            wrapped, self.fail_requests = wrap_app(
                self.app, self.state if do & WITH_STATE else None
            )
            return wrapped
        # Failed, or cancelled as the startup completed (then the app gets
        # its graceful shutdown first).
        await self.shut_down()
        await self.finish(None)
        raise AssertionError("a failed startup always has an error")  # pragma: no cover

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        __tracebackhide__ = True
        self.protocol.body_ended(
            exc,
            ours=self.body.ended(),
            ctrl_c=exc is not None and is_ctrl_c(exc),
        )
        await self.shut_down()
        return await self.finish(exc)

    async def shut_down(self) -> None:
        """Send the shutdown if it is due, and wait for its answer.

        Graceful after a body that raised or was cancelled, as on trio; a
        cancellation after a body that ended well cuts it short (as
        asgi-lifespan's does).
        """
        protocol = self.protocol
        message, do = protocol.begin_shutdown()
        try:
            if message is not None:
                self.answer = self.loop.create_future()
                self.answered = False
                await self.deliver_and_wait(
                    message,
                    self.options.shutdown_timeout,
                    graceful=bool(do & GRACEFUL),
                )
            elif do & CHECKPOINT:
                await asyncio.sleep(0)  # no lifespan: exit still yields
            else:
                self.apply(do)
        except BaseException as exc:  # noqa: BLE001 - the protocol judges it
            self.apply(protocol.interrupted(exc, ctrl_c=is_ctrl_c(exc)))

    async def finish(self, exc: BaseException | None) -> bool:
        """Wait until the app's task is gone, then raise what matters."""
        __tracebackhide__ = True
        protocol = self.protocol
        self.apply(protocol.finishing())
        task = self.app_task
        assert task is not None
        if not task.done():  # no task of ours outlives us
            interrupted = await wait_all([task])
            if interrupted is not None:
                protocol.interrupted_finishing(interrupted, wins=ctrl_c_pressed())
        error = protocol.outcome()
        if error is not None and error is not exc:
            reraise(error)
        return False

    # Doing what the protocol decided ------------------------------------------------

    def apply(self, do: Do) -> None:
        """Do what the protocol decided: the one place that acts on it."""
        if not do:
            return
        if do & STOP_APP:
            self.stop_app()
        if do & REFUSE and self.fail_requests is not None:
            error = self.protocol.error
            assert error is not None
            self.fail_requests(error)
        if do & STOP_BODY:
            error = self.protocol.error
            assert error is not None
            self.body.cancel(error)
        if do & ANSWERED:
            self.answered = True
            if not self.answer.done():
                self.answer.set_result(None)

    def stop_app(self) -> None:
        task = self.app_task
        if not self.app_cancelled and task is not None:
            self.app_cancelled = True
            # Once, as asyncio cancels (asyncio.timeout does the same): a
            # cleanup the app awaits after it, shielded or not, is waited
            # for. Cancelling again at each turn, as a trio cancel scope
            # would, cuts through the app's shields (anyio's, asyncio's),
            # which we cannot see, and spins while it waits for its tasks.
            task.cancel()

    async def deliver_and_wait(
        self, message: Message, seconds: float, *, graceful: bool = False
    ) -> None:
        """Deliver ``message`` and wait, up to ``seconds``, for the app's answer.

        ``graceful`` (the shutdown): a cancellation that arrives meanwhile does
        not cut the wait short (anyio re-delivers them: each one); the time
        limit still bounds it, and the cancellation is raised after. Only
        Ctrl-C stops the wait, as on trio.
        """
        self.stage_number += 1
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
            loop.call_soon(self._arm, loop.time() + seconds, seconds, self.stage_number)
        try:
            while not self.answered:
                try:
                    await self.answer
                except asyncio.CancelledError:
                    if not graceful or ctrl_c_pressed():
                        raise
                    # Any other cancellation gives way: the shutdown is
                    # graceful because the body raised or was cancelled, and
                    # what it raised (already the protocol's) comes out.
                    if self.answer.cancelled():
                        # It cancelled the future we waited on: a new one.
                        self.answer = self.loop.create_future()
        finally:
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None

    def _arm(self, deadline: float, seconds: float, stage_number: int) -> None:
        """Set the stage's timer if the app has not answered it yet."""
        if not self.answered and stage_number == self.stage_number:
            self.timer = self.loop.call_at(deadline, self._time_up, seconds)

    def _time_up(self, seconds: float) -> None:
        self.timer = None
        self.apply(self.protocol.time_out(seconds))

    # The app's task and its receive() and send() ------------------------------------

    async def run_app(self) -> None:
        scope = lifespan_scope(self.state)
        # Captured by hand: the trio driver uses outcome.acapture, but an
        # asyncio user should load neither outcome nor the attrs it needs.
        exc: BaseException | None = None
        try:
            await self.app(scope, self.receive, self.send)
        except BaseException as raised:  # noqa: BLE001 - the protocol judges it
            exc = raised
        if isinstance(exc, asyncio.CancelledError):
            if self.app_cancelled:
                do = self.protocol.app_exit(None)  # ours
            else:
                do = self.protocol.app_exit(exc, stray_cancel=True)
        else:
            # This frame: an error raised right here came from calling the
            # app, not from its code.
            do = self.protocol.app_exit(exc, at_call=raised_by_the_call(exc))
        self.apply(do)

    def _deliver(self, message: Message) -> None:
        getter = self.getter
        if getter is not None and not getter.done():
            getter.set_result(message)
        else:
            self.inbox.append(message)

    async def receive(self) -> Message:
        do = self.protocol.app_receive()
        self.apply(do)
        if do & PARK:
            await self._cancel_app_again()
        inbox = self.inbox
        if inbox:
            return inbox.popleft()
        getter: asyncio.Future[Message] = self.loop.create_future()
        self.getter = getter
        try:
            return await getter
        except asyncio.CancelledError:
            if not getter.cancelled():
                # Handed over, but the app was cancelled before it took it:
                # it stays first in line.
                inbox.appendleft(getter.result())
            raise

    async def send(self, message: Message) -> None:
        do = self.protocol.app_send(message)
        self.apply(do)
        if do & PARK:
            # An app that keeps sending after it broke the protocol must not
            # spin for ever.
            await self._cancel_app_again()

    async def _cancel_app_again(self) -> NoReturn:
        # asyncio cancels once; an app that swallowed it and came back to us
        # is cancelled again, the way a trio cancel scope stays cancelled.
        self.app_cancelled = True
        current_task().cancel()
        await self.loop.create_future()
        raise AssertionError("unreachable")  # pragma: no cover


class _Asyncio(Groups):
    """The asyncio driver, as :func:`._backend.current_backend` hands it out."""

    def open_one(
        self, app: AppT, options: Options, /
    ) -> AbstractAsyncContextManager[LifespanApp[AppT]]:
        return AsyncioLifespan(app, options)

    def holders(self, count: int, /) -> AsyncioHolders:
        return AsyncioHolders(count)

    async def sleep_forever(self) -> NoReturn:
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")  # pragma: no cover

    async def checkpoint(self) -> None:
        await asyncio.sleep(0)

    async def checkpoint_when_due(self) -> None:
        if turn_due_here(current_task()):
            await asyncio.sleep(0)

    def cancel_mark(self) -> object:
        if sys.version_info >= (3, 11):
            task = current_task()
            return (task, task.cancelling())
        return None  # pragma: no cover - py310 tox environment

    def cancelled_since(self, mark: object, /) -> bool:
        if sys.version_info >= (3, 11):
            task = current_task()
            marked: Any = mark if mark is not None else (None, 0)
            since = marked[1] if marked[0] is task else 0  # (another task's: 0)
            return task.cancelling() > since
        return False  # pragma: no cover - py310 tox environment

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

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def handoff(self, capacity: float = 1, /) -> _Handoff:
        return _Handoff(capacity)

    def here(self, timeout: float, /) -> HereJob:
        return HereJob(timeout)

    def spawn(self, app: object, fn: Callable[[], Awaitable[None]], /) -> _Job:
        return spawn_job(fn)

    def start_background(
        self, fn: Callable[[], Awaitable[None]], name: str, /
    ) -> Background:
        return Background(fn, name)

    loop_here = staticmethod(loop_here)
    wait_shielded = staticmethod(wait_shielded)
    watch = staticmethod(watch)


BACKEND = _Asyncio()
