"""The trio driver: channels, a nursery and cancel scopes around the protocol.

Nothing here decides a protocol question; :mod:`._protocol` does. Each event
goes to the protocol, and what it returns is done in one place, ``apply``:
deliver messages to the app over a memory channel, run the app in a task,
keep time with the deadline of the app's cancel scope, cancel what must stop.

Every function here that runs in one of our tasks is KI-protected
(``enable_ki_protection``), as trio protects its own primitives: it enters
and leaves a nursery by hand and reschedules a task, and a Ctrl-C between
two of those lines would corrupt trio's nursery stack or orphan the app.
Protected, a Ctrl-C waits for the next checkpoint; there it is one more
interruption the protocol handles, and it comes out bare. The app itself
runs unprotected, as under a server.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import outcome
import trio
from trio.lowlevel import disable_ki_protection, enable_ki_protection

from ._backend import turn_due
from ._compat import mark_ki_protected
from ._exceptions import reraise
from ._group import Groups
from ._protocol import (
    ANSWERED,
    BODY,
    CHECK_DEADLINE,
    CHECKPOINT,
    END_DEADLINE,
    GRACEFUL,
    PARK,
    REFUSE,
    STOP_APP,
    STOP_BODY,
    WITH_STATE,
    Do,
    LifespanProtocol,
    cancel_reason,
    lifespan_scope,
    raised_by_the_call,
)
from ._state import AppT, LifespanApp, wrap_app
from ._trio_tasks import (
    Background,
    Handoff,
    HereJob,
    Job,
    TrioHolders,
    loop_here,
    spawn_job,
    wait_shielded,
    watch,
)
from ._types import AnyASGIApp, Message

if TYPE_CHECKING:
    from ._options import Options

T = TypeVar("T")

mark_ki_protected()  # what the shared modules marked before trio was loaded


class TrioLifespan:
    """One app's lifespan as an async context manager, on trio.

    Entering starts the app in a task of a nursery we enter by hand (the
    body runs inside it, so the nursery's scope can cancel the body) and
    waits for the startup's answer; leaving sends the shutdown, waits for
    its answer, exits the nursery and raises what the protocol says.
    """

    __slots__ = (
        "app",
        "app_scope",
        "body_scope",
        "fail_requests",
        "inbox",
        "limit",
        "nursery_manager",
        "options",
        "protocol",
        "state",
        "stopping",
        "to_app",
        "waiter",
    )

    # The nursery's own scope, which cancels the body if the app fails; set
    # on entry.
    body_scope: trio.CancelScope

    def __init__(self, app: AnyASGIApp, options: Options) -> None:
        self.app = app
        self.options = options
        self.protocol = LifespanProtocol(
            trio.Cancelled, allow_unsupported=options.allow_unsupported
        )
        self.state: dict[str, Any] = {}
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
        # Fails the wrapped app's requests once the lifespan has failed.
        self.fail_requests: Callable[[BaseException], None] | None = None

    # Entering and leaving, top to bottom ----------------------------------------

    @enable_ki_protection
    async def __aenter__(self) -> LifespanApp[Any]:
        __tracebackhide__ = True
        protocol = self.protocol
        nursery = await self.nursery_manager.__aenter__()
        self.body_scope = nursery.cancel_scope
        nursery.start_soon(self.run_app)
        if self.limit <= 0:
            # No time at all: the deadline has passed already, but trio
            # notices only when its run loop next looks, and the app could
            # answer first. Cancelled now, not by us (``stopping`` stays
            # unset), it reads as the timeout it is.
            self.app_scope.cancel()
        self.to_app.send_nowait(protocol.begin_startup())
        try:
            await self.wait_for_answer()
        except BaseException as exc:  # noqa: BLE001 - the protocol judges it
            self.apply(protocol.interrupted(exc))
        do = protocol.startup_over()
        if do & BODY:
            wrapped, self.fail_requests = wrap_app(
                self.app, self.state if do & WITH_STATE else None
            )
            # Where the client's request tasks run (see _Trio.spawn).
            wrapped.start_soon = nursery.start_soon  # type: ignore[attr-defined]
            return wrapped
        # Failed, or cancelled as the startup completed (then the app gets
        # its graceful shutdown first).
        await self.shut_down()
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
        # A Cancelled of the nursery's own (alone, or a group of them from a
        # nursery in the body) is ours: the app failed.
        self.protocol.body_ended(exc, ours=True)
        await self.shut_down()
        return await self.finish(exc)

    @enable_ki_protection
    async def shut_down(self) -> None:
        """Send the shutdown if it is due, and wait for its answer.

        After a body that ended well, a cancellation cuts the wait short (as
        asgi-lifespan's does); after a body that raised or was cancelled it
        is graceful: shielded, bounded by the deadline, cut short only by a
        Ctrl-C.
        """
        protocol = self.protocol
        message, do = protocol.begin_shutdown()
        try:
            if message is not None:
                self.limit = self.options.shutdown_timeout
                self.app_scope.deadline = trio.current_time() + self.limit
                if self.limit <= 0:
                    # No time at all (as on entry), before the message can
                    # be handed to an app waiting for it.
                    self.app_scope.cancel()
                self.to_app.send_nowait(message)
                if not do & GRACEFUL:  # no shield scope on the common path
                    await self.wait_for_answer()
                else:
                    with trio.CancelScope(shield=True):
                        await self.wait_for_answer()
            elif do & CHECKPOINT:
                await trio.lowlevel.checkpoint()  # no lifespan: exit still checkpoints
            else:
                self.apply(do)
        except BaseException as exc:  # noqa: BLE001 - the protocol judges it
            self.apply(protocol.interrupted(exc))

    @enable_ki_protection
    async def finish(self, exc: BaseException | None) -> bool:
        """Wait until the app's task is gone, then raise what matters.

        The nursery is exited with ``(None, None, None)`` whatever the body
        raised: the body's exception is the protocol's to judge, and must
        never enter the nursery (which would wrap it in a group).
        """
        __tracebackhide__ = True
        protocol = self.protocol
        self.apply(protocol.finishing())
        try:
            await self.nursery_manager.__aexit__(None, None, None)
        except BaseException as interrupted:  # noqa: BLE001 - the protocol judges it
            protocol.interrupted_finishing(interrupted, wins=True)
        error = protocol.outcome()
        if error is not None and error is not exc:
            reraise(error)
        return False

    # Doing what the protocol decided ------------------------------------------------

    @enable_ki_protection
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
            self.body_scope.cancel(reason=cancel_reason(error))
        if do & ANSWERED and self.waiter is not None:
            if do & END_DEADLINE:
                # The startup is answered: its time limit ends now, in the
                # app's step, not when our task next runs (by then the
                # deadline could have passed and cancelled a working app).
                self.app_scope.deadline = math.inf
            trio.lowlevel.reschedule(self.waiter)
            self.waiter = None

    def stop_app(self) -> None:
        # Once: the protocol decides STOP_APP once.
        self.stopping = True
        self.app_scope.cancel()

    def deadline_check(self) -> Do:
        """What the protocol makes of the stage's deadline, if it cancelled
        the app (not us): it is the timeout, whatever the app reports."""
        if not self.stopping and self.app_scope.cancel_called:
            return self.protocol.deadline_passed(self.limit)
        return 0

    @enable_ki_protection
    async def wait_for_answer(self) -> None:
        """Wait until the app has answered this stage (``ANSWERED``).

        The app's scope has the stage's deadline: it cancels the app, whose
        task then reports the timeout, which is an answer too. Called right
        after the message went out: the answer cannot be in yet.
        """
        self.waiter = trio.lowlevel.current_task()
        await trio.lowlevel.wait_task_rescheduled(self._abort_wait)

    def _abort_wait(self, _: Any) -> trio.lowlevel.Abort:
        self.waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    # The app's task and its receive() and send() ------------------------------------

    @enable_ki_protection
    async def run_app(self) -> None:
        scope = lifespan_scope(self.state)
        result = await outcome.acapture(
            _call, self.app_scope, self.app, scope, self.receive, self.send
        )
        # (type(), not isinstance(): Outcome is an ABC, whose check is slow.)
        exc = result.error if type(result) is outcome.Error else None
        # acapture leaves its own frame out: an error raised right in _call's
        # came from calling the app, not from its code.
        at_call = raised_by_the_call(exc)
        if not at_call:
            self.apply(self.deadline_check())
        self.apply(self.protocol.app_exit(exc, at_call=at_call))

    @enable_ki_protection
    async def receive(self) -> Message:
        do = self.protocol.app_receive()
        self.apply(do)
        if do & PARK:
            return await _sleep_forever()
        return await self.inbox.receive()

    @enable_ki_protection
    async def send(self, message: Message) -> None:
        do = self.protocol.app_send(message)
        if do & CHECK_DEADLINE:
            do |= self.deadline_check()  # before we stop the app ourselves
        self.apply(do)
        if do & PARK:
            # Let the cancellation in, so an app that keeps sending after it
            # broke the protocol cannot spin for ever.
            await trio.lowlevel.checkpoint()


@disable_ki_protection
async def _call(
    cancel_scope: trio.CancelScope, app: AnyASGIApp, scope: Any, receive: Any, send: Any
) -> None:
    # The app's own code runs as a task under a server would: a Ctrl-C may
    # land in it, and comes out as what the app makes of it. Its scope
    # absorbs the cancellations that are ours.
    with cancel_scope:
        await app(scope, receive, send)


async def _sleep_forever() -> NoReturn:
    # Where the app is stopped, its scope is cancelled: this raises Cancelled
    # (or, if the app shields itself, waits until that shield is lifted).
    await trio.sleep_forever()
    raise AssertionError("unreachable")  # pragma: no cover


class _Trio(Groups):
    """The trio driver, as :func:`._backend.current_backend` hands it out."""

    def open_one(
        self, app: AppT, options: Options, /
    ) -> AbstractAsyncContextManager[LifespanApp[AppT]]:
        return TrioLifespan(app, options)

    def holders(self, count: int, /) -> TrioHolders:
        return TrioHolders(count)

    async def sleep_forever(self) -> NoReturn:
        await _sleep_forever()

    async def checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()

    async def checkpoint_when_due(self) -> None:
        if turn_due():
            await trio.lowlevel.checkpoint()
        else:
            await trio.lowlevel.checkpoint_if_cancelled()

    def cancel_mark(self) -> object:
        return None

    def cancelled_since(self, mark: object, /) -> bool:
        return False  # (a wait in a cancelled scope raises at once)

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

    def now(self) -> float:
        return trio.current_time()

    def handoff(self, capacity: float = 1, /) -> Handoff:
        return Handoff(capacity)

    def spawn(self, app: LifespanApp[Any], fn: Callable[[], Awaitable[None]], /) -> Job:
        # Set by TrioLifespan on the app it yields: its nursery's start_soon.
        return spawn_job(cast("Any", app).start_soon, fn)

    def here(self, timeout: float, /) -> HereJob:
        return HereJob(timeout)

    def start_background(
        self, fn: Callable[[], Awaitable[None]], name: str, /
    ) -> Background:
        return Background(fn, name)

    loop_here = staticmethod(loop_here)
    wait_shielded = staticmethod(wait_shielded)
    watch = staticmethod(watch)


BACKEND = _Trio()
