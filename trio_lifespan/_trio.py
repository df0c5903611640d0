"""The trio driver: channels, a nursery and cancel scopes around the protocol.

Nothing here decides a protocol question; :mod:`._protocol` does. This module
delivers messages to the app over a memory channel, runs the app in a task,
keeps time with cancel scopes and cancels what the protocol says must stop.

Every function here that runs in one of our tasks is KI-protected
(``enable_ki_protection``), as trio protects its own primitives: it enters
and leaves a nursery by hand and reschedules a task, and a Ctrl-C between
two of those lines would corrupt trio's nursery stack or orphan the app.
Protected, a Ctrl-C waits for the next checkpoint; there it is one more
interruption the driver handles, and it comes out bare. The app itself runs
unprotected, as under a server.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import trio
from trio.lowlevel import disable_ki_protection, enable_ki_protection

from ._compat import mark_ki_protected
from ._driver import LifespanDriver
from ._errors import LifespanUnavailable
from ._protocol import (
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

mark_ki_protected()  # what the shared modules marked before trio was loaded


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
    gives_way = (trio.Cancelled, LifespanUnavailable)

    # The nursery's own scope, which cancels the body if the app fails; set
    # on entry.
    body_scope: trio.CancelScope

    def __init__(self, app: AnyASGIApp, options: Options) -> None:
        super().__init__(app, options)
        # Typed by annotation: subscripting open_memory_channel at run time
        # costs a typing alias on every lifespan. Unbounded: an app that
        # cancels its own receive() leaves its message there, and the next
        # one queues behind it, so it still gets every message, in order.
        channel: tuple[
            trio.MemorySendChannel[Message], trio.MemoryReceiveChannel[Message]
        ] = trio.open_memory_channel(math.inf)
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

    @enable_ki_protection
    def sync(self) -> None:
        protocol = self.protocol
        if protocol.app_must_stop:
            self._stop_app()
        error = protocol.error
        if error is not None:
            self.failed()
            if protocol.body_must_stop and self.in_body:
                self.in_body = False  # once: it is being stopped
                self.body_scope.cancel(reason=cancel_reason(error))
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

    def _deadline_passed(self) -> None:
        """Tell the protocol if the stage's deadline cancelled the app.

        Checked when the app reports a failure, and when it ends: many
        frameworks catch the cancellation and report a failure, and that
        report must be the timeout it is, not a failure of the app's own.
        (Not on every message: reading the deadline costs every cycle.)
        """
        if not self.stopping and self.app_scope.cancel_called:
            self.protocol.time_out(self.limit, app_cancelled=True)

    @enable_ki_protection
    async def receive(self) -> Message:
        if self.protocol.report is not None:
            self._deadline_passed()  # before the report becomes the error
        if self.protocol.app_receive():
            return await self.inbox.receive()
        self.sync()
        return await _sleep_forever()

    @enable_ki_protection
    async def send(self, message: Message) -> None:
        still_in = self.protocol.app_send(message)
        if self.protocol.report is not None:
            self._deadline_passed()  # a report made as our deadline cancels it
        self.sync()
        if not still_in:
            # Let the cancellation in, so an app that keeps sending after it
            # broke the protocol cannot spin for ever.
            await trio.lowlevel.checkpoint()

    @enable_ki_protection
    async def run_app(self) -> None:
        scope = lifespan_scope(self.state)
        exc: BaseException | None = None
        try:
            with self.app_scope:
                await _call(self.app, scope, self.receive, self.send)
        except BaseException as raised:  # noqa: BLE001 - the protocol judges it
            exc = raised
        at_call = raised_by_the_call(exc, depth=2)  # run_app, then _call
        if not at_call:
            self._deadline_passed()
        self.protocol.app_exit(exc, at_call=at_call)
        self.sync()

    @enable_ki_protection
    async def wait_for_answer(self) -> None:
        """Wait until the app has answered this stage.

        The app's scope has the stage's deadline: it cancels the app, whose
        task then reports the timeout, which is an answer too.
        """
        # Called right after the message went out: the answer cannot be in.
        self.waiter = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort_wait)

    def _abort_wait(self, _: Any) -> trio.lowlevel.Abort:
        self.waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    @enable_ki_protection
    async def start(self) -> bool:
        nursery = await self.nursery_manager.__aenter__()
        self.body_scope = nursery.cancel_scope
        nursery.start_soon(self.run_app)
        if self.limit <= 0:
            # No time at all: the deadline has passed already, but trio
            # notices only when its run loop next looks, and the app could
            # answer first. Cancelled now, not by us (``stopping`` stays
            # unset), it reads as the timeout it is.
            self.app_scope.cancel()
        self.to_app.send_nowait(self.protocol.begin_startup())
        try:
            await self.wait_for_answer()
        except BaseException as exc:  # noqa: BLE001 - raised on leaving
            self.interrupted(exc)
            return False
        return self.protocol.serving

    def body_raised(self, exc: BaseException | None) -> BaseException | None:
        # Cancelled of the nursery's own (alone, or a group of them from a
        # nursery in the body) is ours: the app failed.
        if (
            exc is not None  # first: reading cancel_called of a live scope costs
            and only_cancellations(exc, trio.Cancelled)
            and self.body_scope.cancel_called
        ):
            return None
        return exc

    @enable_ki_protection
    async def stop(self) -> None:
        try:
            if self.protocol.running:
                message = self.protocol.begin_shutdown()
                if message is not None:
                    self.limit = self.options.shutdown_timeout
                    self.app_scope.deadline = trio.current_time() + self.limit
                    if self.limit <= 0:
                        # No time at all (as in start), before the message
                        # can be handed to an app waiting for it.
                        self.app_scope.cancel()
                    self.to_app.send_nowait(message)
                    if self.raised is None:  # no shield scope on the common path
                        # A cancellation now, after a body that ended well,
                        # cuts the shutdown short (as asgi-lifespan's does).
                        await self.wait_for_answer()
                    else:
                        # After the body raised or was cancelled: graceful,
                        # shielded and bounded by the deadline; only a Ctrl-C
                        # cuts it short.
                        with trio.CancelScope(shield=True):
                            await self.wait_for_answer()
            elif self.protocol.error is None:
                await trio.lowlevel.checkpoint()  # no lifespan: exit still checkpoints
        except BaseException as exc:  # noqa: BLE001 - raised on leaving
            self.abandon(exc)
        self.failed()

    @enable_ki_protection
    def join(self) -> Awaitable[object]:
        if not self.protocol.app_done:
            self._stop_app()
        return self.nursery_manager.__aexit__(None, None, None)


@disable_ki_protection
async def _call(app: AnyASGIApp, scope: Any, receive: Any, send: Any) -> None:
    # The app's own code runs as a task under a server would: a Ctrl-C may
    # land in it, and comes out as what the app makes of it.
    await app(scope, receive, send)


async def _sleep_forever() -> NoReturn:
    # Where the app is stopped, its scope is cancelled: this raises Cancelled
    # (or, if the app shields itself, waits until that shield is lifted).
    await trio.sleep_forever()
    raise AssertionError("unreachable")  # pragma: no cover


class _TrioLifespans:
    """Several lifespans, each held open by a task of its own.

    The body runs inside a nursery entered by hand (as for one app); each
    holder is shielded, so only this group cancels it, and an outer
    cancellation still gets every app's graceful shutdown.
    """

    def __init__(self, apps: Sequence[AnyASGIApp], options: Options) -> None:
        count = len(apps)
        self.apps = apps
        self.options = options
        self.wrapped: list[LifespanApp[Any] | None] = [None] * count
        self.starting = count  # holders whose app has not started yet
        self.holding = count  # holders still running
        self.ready = trio.Event()  # every app started, or one failed
        self.leave = trio.Event()  # the body is over: shut down
        self.gone = trio.Event()  # every holder has returned
        self.scopes = [trio.CancelScope(shield=True) for _ in range(count)]
        self.errors: list[BaseException] = []
        self.raised: BaseException | None = None
        self.abandoned = False
        self.in_body = False
        self.nursery_manager = trio.open_nursery()
        self.body_scope: trio.CancelScope | None = None
        if not count:
            self.ready.set()
            self.gone.set()

    @enable_ki_protection
    async def hold(self, index: int, app: AnyASGIApp) -> None:
        try:
            with self.scopes[index]:
                async with _TrioLifespan(app, self.options) as wrapped:
                    self.wrapped[index] = wrapped
                    self.starting -= 1
                    if not self.starting:
                        self.ready.set()
                    await self.leave.wait()
        except BaseException as exc:  # noqa: BLE001 - raised by the group
            self.errors.append(exc)
            if not self.leave.is_set():
                self.abandon(exc)
        self.holding -= 1
        if not self.holding:
            self.gone.set()

    def abandon(self, exc: BaseException | None) -> None:
        """Stop everything short of the shutdowns: something failed.

        Once: with many failing apps, each failure must not walk every holder
        again.
        """
        if self.abandoned:
            return
        self.abandoned = True
        self.ready.set()
        if self.in_body and self.body_scope is not None and exc is not None:
            self.body_scope.cancel(reason=cancel_reason(exc))
        for scope in self.scopes:
            scope.cancel()

    @enable_ki_protection
    async def __aenter__(self) -> tuple[LifespanApp[Any], ...]:
        __tracebackhide__ = True
        nursery = await self.nursery_manager.__aenter__()
        self.body_scope = nursery.cancel_scope
        for index, app in enumerate(self.apps):
            nursery.start_soon(self.hold, index, app)
        try:
            await self.ready.wait()
        except BaseException as exc:  # noqa: BLE001 - raised on leaving
            self.raised = exc
            self.abandon(None)
        if not self.errors and self.raised is None:
            self.in_body = True
            return tuple(w for w in self.wrapped if w is not None)
        await self.finish(None)
        raise AssertionError("a failed startup always has an error")  # pragma: no cover

    @enable_ki_protection
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        __tracebackhide__ = True
        self.in_body = False
        assert self.body_scope is not None
        if not (
            only_cancellations(exc, trio.Cancelled) and self.body_scope.cancel_called
        ):
            self.raised = exc
        return await self.finish(exc)

    async def _holders_gone(self) -> None:
        if self.apps:
            # Shielded: every app gets its graceful shutdown (each bounded by
            # its timeout) whatever cancels us; only a Ctrl-C cuts it short.
            with trio.CancelScope(shield=True):
                await self.gone.wait()
        else:
            await trio.lowlevel.checkpoint()  # no apps: exit still checkpoints

    async def _exit_nursery(self) -> None:
        await self.nursery_manager.__aexit__(None, None, None)

    @enable_ki_protection
    async def finish(self, exc: BaseException | None) -> bool:
        """Shut every app down, wait for the holders, raise what matters."""
        __tracebackhide__ = True
        self.leave.set()
        for wait in (self._holders_gone, self._exit_nursery):
            try:
                await wait()
            except BaseException as interrupted:  # noqa: BLE001 - raised below
                # Ctrl-C (or, with no apps, a cancellation): stop waiting
                # for graceful shutdowns, but still for every task.
                self.raised = interruption(interrupted, self.raised)
                self.abandon(None)
        error = combine_many(
            self.raised,
            self.errors,
            raised_is_cancel=only_cancellations(
                self.raised, (trio.Cancelled, LifespanUnavailable)
            ),
        )
        if error is not None and error is not exc:
            reraise(error)
        return False


class _Trio:
    """The trio driver, as :func:`._backend.current_backend` hands it out."""

    def open_one(
        self, app: AppT, options: Options, /
    ) -> AbstractAsyncContextManager[LifespanApp[AppT]]:
        return _TrioLifespan(app, options)

    def open_many(
        self, apps: Sequence[AnyASGIApp], options: Options, /
    ) -> AbstractAsyncContextManager[tuple[LifespanApp[Any], ...]]:
        return _TrioLifespans(apps, options)

    async def sleep_forever(self) -> NoReturn:
        await _sleep_forever()

    cancelled: type[BaseException] = trio.Cancelled

    def run(self, fn: Callable[[], Awaitable[T]], /) -> T:
        return trio.run(fn)

    def event(self) -> trio.Event:
        return trio.Event()

    async def within(
        self, seconds: float, fn: Callable[[], Awaitable[None]], /
    ) -> bool:
        with trio.move_on_after(seconds):
            await fn()
            return True
        return False


BACKEND = _Trio()
