"""The trio driver: channels, a nursery and cancel scopes around the protocol.

Nothing here decides a protocol question; :mod:`._protocol` does. This module
delivers messages to the app over a memory channel, runs the app in a task,
keeps time with cancel scopes and cancels what the protocol says must stop.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, NoReturn

import trio

from ._options import Options
from ._protocol import LifespanProtocol, combine, combine_many, lifespan_scope
from ._reraise import reraise
from ._state import AppT, LifespanApp, wrap_app
from ._types import AnyASGIApp, Message


class _TrioLifespan:
    """One app's lifespan, as trio runs it."""

    def __init__(self, app: AnyASGIApp, allow_unsupported: bool) -> None:
        self.app = app
        self.protocol = LifespanProtocol(allow_unsupported=allow_unsupported)
        self.state: dict[str, Any] = {}
        self.to_app, self.inbox = trio.open_memory_channel[Message](1)
        # The app runs shielded: an outer cancellation must not cut its
        # shutdown short. Only the protocol's word cancels it, or the
        # deadline of the stage it is in: the time limits live on this scope.
        self.app_scope = trio.CancelScope(shield=True)
        self.stopping = False  # we cancelled the app (not its deadline)
        self.limit = math.inf  # the time limit of the stage under way
        # The nursery's own scope, which cancels the body if the app fails.
        self.body_scope: trio.CancelScope | None = None
        self.settled = trio.Event()
        # What interrupted us: the body's exception, or a cancellation or
        # KeyboardInterrupt that arrived while we waited on the app.
        self.raised: BaseException | None = None

    def _sync(self) -> None:
        """Act on what the protocol now says."""
        protocol = self.protocol
        if protocol.app_must_stop:
            self.stopping = True
            self.app_scope.cancel()
        if protocol.body_must_stop:
            assert self.body_scope is not None
            self.body_scope.cancel()
        if not protocol.waiting:
            self.settled.set()

    async def receive(self) -> Message:
        if self.protocol.app_receive():
            return await self.inbox.receive()
        self._sync()
        return await _sleep_forever()

    async def send(self, message: Message) -> None:
        self.protocol.app_send(message)
        self._sync()
        if self.protocol.app_rejected:
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
        if self.app_scope.cancel_called and not self.stopping:
            self.protocol.time_out(self.limit)  # its stage's deadline passed
        self.protocol.app_exit(exc)
        self._sync()

    async def settle(self, message: Message | None, seconds: float) -> None:
        """Deliver ``message`` and wait, up to ``seconds``, for the app's answer."""
        if message is None:
            return
        self.to_app.send_nowait(message)
        # The deadline cancels the app, whose task then reports the timeout.
        self.limit = seconds
        self.app_scope.deadline = trio.current_time() + seconds
        await self.settled.wait()
        self.app_scope.deadline = math.inf

    def _abandon(self, exc: BaseException) -> None:
        """We were interrupted while waiting on the app: stop it, raise later."""
        self.raised = exc
        self.protocol.abandon()
        self._sync()

    async def start(self, seconds: float) -> bool:
        """Run the startup; returns whether the body may run."""
        try:
            await self.settle(self.protocol.begin_startup(), seconds)
        except BaseException as exc:  # noqa: BLE001 - raised after the nursery
            self._abandon(exc)
            return False
        return self.protocol.error is None

    async def stop(self, seconds: float) -> None:
        """Run the shutdown if it is due, shielded when the body raised."""
        try:
            if self.protocol.running:
                self.settled = trio.Event()
                message = self.protocol.begin_shutdown()
                if self.raised is None:  # no shield scope on the common path
                    await self.settle(message, seconds)
                else:
                    with trio.CancelScope(shield=True):
                        await self.settle(message, seconds)
            elif self.protocol.error is None:
                await trio.lowlevel.checkpoint()  # no lifespan: exit still checkpoints
        except BaseException as exc:  # noqa: BLE001 - raised after the nursery
            self._abandon(exc)

    def result(self) -> BaseException | None:
        return combine(
            self.raised,
            self.protocol.error,
            raised_is_cancel=isinstance(self.raised, trio.Cancelled),
        )


async def _sleep_forever() -> NoReturn:
    # Where the app is stopped, its scope is cancelled: this raises Cancelled
    # (or, if the app shields itself, waits until that shield is lifted).
    await trio.sleep_forever()
    raise AssertionError("unreachable")  # pragma: no cover


@asynccontextmanager
async def trio_lifespan(
    app: AppT, options: Options
) -> AsyncGenerator[LifespanApp[AppT]]:
    """Run ``app``'s lifespan on trio; see :func:`trio_lifespan.open_lifespan`."""
    __tracebackhide__ = True
    run = _TrioLifespan(app, options.allow_unsupported)
    async with trio.open_nursery() as nursery:
        run.body_scope = nursery.cancel_scope
        nursery.start_soon(run.run_app)
        if await run.start(options.startup_timeout):
            supported = run.protocol.running
            try:
                yield wrap_app(app, run.state if supported else None)
            except BaseException as exc:  # noqa: BLE001 - raised after the nursery
                # A Cancelled of the nursery's own is ours: the app failed.
                if not (
                    isinstance(exc, trio.Cancelled)
                    and nursery.cancel_scope.cancel_called
                ):
                    run.raised = exc
            await run.stop(options.shutdown_timeout)
        run.app_scope.cancel()
    error = run.result()
    if error is not None:
        reraise(error)


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
                async with trio_lifespan(app, self.options) as wrapped:
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
    error = group.result()
    if error is not None:
        reraise(error)


class _Trio:
    """The trio driver, as :func:`._options.current_backend` hands it out."""

    def open_one(
        self, app: AppT, options: Options, /
    ) -> AbstractAsyncContextManager[LifespanApp[AppT]]:
        return trio_lifespan(app, options)

    def open_many(
        self, apps: Sequence[AnyASGIApp], options: Options, /
    ) -> AbstractAsyncContextManager[tuple[LifespanApp[Any], ...]]:
        return trio_lifespans(apps, options)

    async def sleep_forever(self) -> NoReturn:
        await _sleep_forever()


BACKEND = _Trio()
