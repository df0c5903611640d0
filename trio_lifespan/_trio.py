"""The trio driver: channels, a nursery and cancel scopes around the protocol.

Nothing here decides a protocol question; :mod:`._protocol` does. This module
delivers messages to the app over a memory channel, runs the app in a task,
keeps time with cancel scopes and cancels what the protocol says must stop.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Awaitable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, NoReturn

import trio

from ._driver import LifespanDriver
from ._options import Options
from ._protocol import combine_many, interruption, lifespan_scope, raised_by_the_call
from ._reraise import reraise
from ._state import AppT, LifespanApp
from ._types import AnyASGIApp, Message


class _TrioLifespan(LifespanDriver):
    """One app's lifespan, as trio runs it."""

    __slots__ = (
        "app_scope",
        "body_scope",
        "inbox",
        "limit",
        "nursery_manager",
        "stopping",
        "to_app",
        "waiter",
    )

    cancelled = trio.Cancelled

    # The nursery's own scope, which cancels the body if the app fails; set
    # on entry.
    body_scope: trio.CancelScope

    def __init__(self, app: AnyASGIApp, options: Options) -> None:
        super().__init__(app, options)
        # Typed by annotation: subscripting open_memory_channel at run time
        # costs a typing alias on every lifespan.
        channel: tuple[
            trio.MemorySendChannel[Message], trio.MemoryReceiveChannel[Message]
        ] = trio.open_memory_channel(1)
        self.to_app, self.inbox = channel
        # The app runs shielded: an outer cancellation must not cut its
        # shutdown short. Only the protocol's word cancels it, or the
        # deadline of the stage it is in: the time limits live on this scope.
        # The startup's is set now, before the scope is entered, which costs
        # trio nothing.
        self.limit = options.startup_timeout  # the limit of the stage under way
        self.app_scope = trio.CancelScope(
            shield=True, deadline=trio.current_time() + self.limit
        )
        self.stopping = False  # we cancelled the app (not its deadline)
        self.nursery_manager = trio.open_nursery()
        # Our task while it waits for the app's answer.
        self.waiter: trio.lowlevel.Task | None = None

    def sync(self) -> None:
        protocol = self.protocol
        if protocol.app_must_stop:
            self._stop_app()
        if protocol.body_must_stop and not self.body_scope.cancel_called:
            self.body_scope.cancel()
        if self.waiter is not None and not protocol.waiting:
            if protocol.running:
                # The startup is answered: its time limit ends now, in the
                # app's step, not when our task next runs (by then the
                # deadline could have passed and cancelled a working app).
                self.app_scope.deadline = math.inf
            trio.lowlevel.reschedule(self.waiter)
            self.waiter = None

    def _stop_app(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.app_scope.cancel()

    async def receive(self) -> Message:
        if self.protocol.app_receive():
            return await self.inbox.receive()
        self.sync()
        return await _sleep_forever()

    async def send(self, message: Message) -> None:
        still_in = self.protocol.app_send(message)
        self.sync()
        if not still_in:
            # Let the cancellation in, so an app that keeps sending after it
            # broke the protocol cannot spin for ever.
            await trio.lowlevel.checkpoint()

    async def run_app(self) -> None:
        scope = lifespan_scope(self.state)
        exc: BaseException | None = None
        try:
            with self.app_scope:
                await self.app(scope, self.receive, self.send)
        except BaseException as raised:  # noqa: BLE001 - the protocol judges it
            exc = raised
        at_call = raised_by_the_call(exc)
        if self.app_scope.cancel_called and not self.stopping and not at_call:
            # Its stage's deadline passed, and cancelled it.
            self.protocol.time_out(self.limit, app_cancelled=True)
        self.protocol.app_exit(exc, at_call=at_call)
        self.sync()

    async def settle(self, message: Message) -> None:
        """Deliver ``message`` and wait for the app's answer.

        The app's scope has the stage's deadline: it cancels the app, whose
        task then reports the timeout, which is an answer too.
        """
        self.to_app.send_nowait(message)
        self.waiter = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort_wait)

    def _abort_wait(self, _: Any) -> trio.lowlevel.Abort:
        self.waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def start(self) -> bool:
        nursery = await self.nursery_manager.__aenter__()
        self.body_scope = nursery.cancel_scope
        nursery.start_soon(self.run_app)
        try:
            await self.settle(self.protocol.begin_startup())
        except BaseException as exc:  # noqa: BLE001 - raised on leaving
            self.abandon(exc)
            return False
        return self.protocol.error is None

    def body_raised(self, exc: BaseException | None) -> BaseException | None:
        # A Cancelled of the nursery's own is ours: the app failed.
        if isinstance(exc, trio.Cancelled) and self.body_scope.cancel_called:
            return None
        return exc

    async def stop(self) -> None:
        try:
            if self.protocol.running:
                message = self.protocol.begin_shutdown()
                if message is not None:
                    self.limit = self.options.shutdown_timeout
                    self.app_scope.deadline = trio.current_time() + self.limit
                    if self.raised is None:  # no shield scope on the common path
                        await self.settle(message)
                    else:
                        with trio.CancelScope(shield=True):
                            await self.settle(message)
            elif self.protocol.error is None:
                await trio.lowlevel.checkpoint()  # no lifespan: exit still checkpoints
        except BaseException as exc:  # noqa: BLE001 - raised on leaving
            self.abandon(exc)

    def join(self) -> Awaitable[object]:
        if not self.protocol.app_done:
            self._stop_app()
        return self.nursery_manager.__aexit__(None, None, None)


async def _sleep_forever() -> NoReturn:
    # Where the app is stopped, its scope is cancelled: this raises Cancelled
    # (or, if the app shields itself, waits until that shield is lifted).
    await trio.sleep_forever()
    raise AssertionError("unreachable")  # pragma: no cover


class _TrioGroup:
    """Several lifespans, each held open by a task of its own."""

    def __init__(self, count: int, options: Options) -> None:
        self.options = options
        self.wrapped: list[LifespanApp[Any] | None] = [None] * count
        self.waiting = count
        self.ready = trio.Event()
        self.stop = trio.Event()
        # Each holder is shielded: only this group cancels it, so an outer
        # cancellation still gets every app's graceful shutdown.
        self.scopes = [trio.CancelScope(shield=True) for _ in range(count)]
        self.body_scope = trio.CancelScope()
        self.errors: list[BaseException] = []
        self.raised: BaseException | None = None
        if not count:
            self.ready.set()

    async def hold(self, index: int, app: AnyASGIApp) -> None:
        try:
            with self.scopes[index]:
                async with _TrioLifespan(app, self.options) as wrapped:
                    self.wrapped[index] = wrapped
                    self.waiting -= 1
                    if not self.waiting:
                        self.ready.set()
                    await self.stop.wait()
        except BaseException as exc:  # noqa: BLE001 - raised by the group
            self.errors.append(exc)
            if not self.stop.is_set():
                self.abandon()

    def abandon(self) -> None:
        """Stop everything short of the shutdowns: something failed."""
        self.ready.set()
        self.body_scope.cancel()
        for scope in self.scopes:
            scope.cancel()

    def result(self) -> BaseException | None:
        return combine_many(
            self.raised,
            self.errors,
            raised_is_cancel=isinstance(self.raised, trio.Cancelled),
        )


@asynccontextmanager
async def trio_lifespans(
    apps: Sequence[AnyASGIApp], options: Options
) -> AsyncGenerator[tuple[LifespanApp[Any], ...]]:
    """Run several lifespans on trio; see :func:`trio_lifespan.open_lifespans`."""
    __tracebackhide__ = True
    group = _TrioGroup(len(apps), options)
    try:
        async with trio.open_nursery() as nursery:
            for index, app in enumerate(apps):
                nursery.start_soon(group.hold, index, app)
            try:
                await group.ready.wait()
            except BaseException as exc:  # noqa: BLE001 - raised after the nursery
                group.raised = exc
                group.abandon()
            if not group.errors and group.raised is None:
                try:
                    with group.body_scope:
                        yield tuple(w for w in group.wrapped if w is not None)
                except BaseException as exc:  # noqa: BLE001 - raised after the nursery
                    group.raised = exc
            group.stop.set()
    except BaseException as exc:  # noqa: BLE001 - the holders raise nothing
        group.raised = interruption(exc, group.raised)
    error = group.result()
    if error is not None:
        reraise(error)


class _Trio:
    """The trio driver, as :func:`._options.current_backend` hands it out."""

    def open_one(
        self, app: AppT, options: Options, /
    ) -> AbstractAsyncContextManager[LifespanApp[AppT]]:
        return _TrioLifespan(app, options)

    def open_many(
        self, apps: Sequence[AnyASGIApp], options: Options, /
    ) -> AbstractAsyncContextManager[tuple[LifespanApp[Any], ...]]:
        return trio_lifespans(apps, options)

    async def sleep_forever(self) -> NoReturn:
        await _sleep_forever()


BACKEND = _Trio()
