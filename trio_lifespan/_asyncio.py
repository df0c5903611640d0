"""The asyncio shim: the trio driver's few moves, made with asyncio's primitives.

As in :mod:`._trio`, nothing here decides a protocol question. The app runs in
a task of its own (so an outer cancellation of the caller does not reach it:
asyncio's shield), a queue carries messages to it, a future says when the
protocol has its answer, and a timer handle keeps time. asyncio cancellation
is a one-shot request, not a scope, so the shim counts its own requests and
takes them back (``Task.uncancel``) when they have done their work.
"""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any, NoReturn

from ._protocol import LifespanProtocol, combine, lifespan_scope
from ._reraise import reraise
from ._state import AppT, LifespanApp
from ._types import ASGIApp, Message


def _withdraw_cancel(task: asyncio.Task[Any]) -> bool:
    """Withdraw one cancellation request of ours; whether others remain.

    Python 3.10 cannot tell requests apart, so there ours is the only one.
    """
    if sys.version_info >= (3, 11):
        return task.uncancel() > 0
    return False  # pragma: no cover - py310 tox environment


class _AsyncioLifespan:
    """One app's lifespan, as asyncio runs it."""

    def __init__(self, app: ASGIApp, allow_unsupported: bool) -> None:
        self.app = app
        self.protocol = LifespanProtocol(allow_unsupported=allow_unsupported)
        self.state: dict[str, Any] = {}
        self.loop = asyncio.get_running_loop()
        host = asyncio.current_task()
        assert host is not None, "open_lifespan() runs inside a task"
        self.host = host
        self.inbox: asyncio.Queue[Message] = asyncio.Queue(1)
        self.settled: asyncio.Future[None] = self.loop.create_future()
        self.app_task: asyncio.Task[None] | None = None
        self.app_cancelled = False  # we asked the app's task to stop
        self.body_cancelled = False  # we asked the body (the host task) to stop
        self.raised: BaseException | None = None

    def _sync(self) -> None:
        """Act on what the protocol now says."""
        protocol = self.protocol
        task = self.app_task
        if protocol.app_must_stop and not self.app_cancelled and task is not None:
            self.app_cancelled = True
            task.cancel()
        if protocol.body_must_stop and not self.body_cancelled:
            self.body_cancelled = True
            self.host.cancel()
        if not protocol.waiting and not self.settled.done():
            self.settled.set_result(None)

    async def receive(self) -> Message:
        if self.protocol.app_receive():
            return await self.inbox.get()
        self._sync()
        await self._cancel_app_again()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(self, message: Message) -> None:
        self.protocol.app_send(message)
        self._sync()
        if self.protocol.app_rejected:
            # An app that keeps sending after it broke the protocol must not
            # spin for ever.
            await self._cancel_app_again()

    async def _cancel_app_again(self) -> NoReturn:
        # asyncio cancels once; an app that swallowed it and came back to us
        # is cancelled again, the way a trio cancel scope stays cancelled.
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await self.loop.create_future()
        raise AssertionError("unreachable")  # pragma: no cover

    async def run_app(self) -> None:
        scope = lifespan_scope(self.state)
        try:
            await self.app(scope, self.receive, self.send)
        except asyncio.CancelledError as exc:
            self.protocol.app_exit(None if self.app_cancelled else exc)
        except BaseException as exc:  # noqa: BLE001 - the protocol judges it
            self.protocol.app_exit(exc)
        else:
            self.protocol.app_exit(None)
        self._sync()

    async def settle(
        self, message: Message | None, seconds: float, *, shielded: bool = False
    ) -> None:
        """Deliver ``message`` and wait, up to ``seconds``, for the app's answer.

        ``shielded``: cancellations that arrive meanwhile (anyio re-delivers
        them) do not cut the wait short; the time limit still bounds it.
        """
        if message is None:
            return
        self.inbox.put_nowait(message)
        deadline = self.loop.time() + seconds
        while self.protocol.waiting:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                self.protocol.time_out(seconds)
                self._sync()
                break
            try:
                await asyncio.wait(
                    (self.settled,),
                    timeout=None if remaining == math.inf else remaining,
                )
            except asyncio.CancelledError as exc:
                if not shielded:
                    raise
                self.raised = self.raised or exc

    def _abandon(self, exc: BaseException) -> None:
        self.raised = exc
        self.protocol.abandon()
        self._sync()

    async def start(self, seconds: float) -> bool:
        """Run the startup; returns whether the body may run."""
        message = self.protocol.begin_startup()
        self.app_task = self.loop.create_task(self.run_app())
        try:
            await self.settle(message, seconds)
        except BaseException as exc:  # noqa: BLE001 - raised at the end
            self._abandon(exc)
            return False
        return self.protocol.error is None

    def body_ended(self, exc: BaseException | None) -> None:
        """Record how the body ended, telling our own cancellation apart."""
        if self.body_cancelled:
            others = _withdraw_cancel(self.host)
            if isinstance(exc, asyncio.CancelledError) and not others:
                exc = None  # ours: the app crashed, its error comes out
        self.raised = exc

    async def stop(self, seconds: float) -> None:
        """Run the shutdown if it is due, shielded when the body raised."""
        try:
            if self.protocol.running:
                self.settled = self.loop.create_future()
                await self.settle(
                    self.protocol.begin_shutdown(),
                    seconds,
                    shielded=self.raised is not None,
                )
            elif self.protocol.error is None:
                await asyncio.sleep(0)  # no lifespan: exit still yields
        except BaseException as exc:  # noqa: BLE001 - raised at the end
            self._abandon(exc)

    async def join(self) -> None:
        """Stop the app's task and wait for it: no task of ours outlives us."""
        task = self.app_task
        # The protocol has said the app must stop on every path that gets here.
        assert task is not None
        assert task.done() or self.app_cancelled, self.protocol.stage
        while not task.done():
            try:
                await asyncio.wait((task,))
            except asyncio.CancelledError as exc:  # cancelled again: finish first
                self.raised = self.raised or exc

    def result(self) -> BaseException | None:
        return combine(
            self.raised,
            self.protocol.error,
            raised_is_cancel=isinstance(self.raised, asyncio.CancelledError),
        )


@asynccontextmanager
async def asyncio_lifespan(
    app: AppT,
    startup_timeout: float | None,
    shutdown_timeout: float | None,
    allow_unsupported: bool,
) -> AsyncGenerator[LifespanApp[AppT]]:
    """Run ``app``'s lifespan on asyncio; see :func:`trio_lifespan.open_lifespan`."""
    __tracebackhide__ = True
    run = _AsyncioLifespan(app, allow_unsupported)
    if await run.start(math.inf if startup_timeout is None else startup_timeout):
        supported = run.protocol.running
        try:
            yield LifespanApp(app, run.state if supported else None)
        except BaseException as exc:  # noqa: BLE001 - raised at the end
            run.body_ended(exc)
        else:
            run.body_ended(None)
        await run.stop(math.inf if shutdown_timeout is None else shutdown_timeout)
    await run.join()
    error = run.result()
    if error is not None:
        reraise(error)
