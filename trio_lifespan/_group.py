"""Several lifespans at once, on either library: ``open_lifespans``' group
and the mounted apps' stack.

Each app's lifespan is held open by a task of its own (a *holder*), which
opens it with the driver's ``open_one``, says when the app has started, and
waits for its turn to shut it down. Entering starts every holder and waits
until every app has started or one failed; leaving gives each holder its
turn, waits until every holder has returned, and raises the one exception
that matters. What to do at each step is the group's protocol's
(:mod:`._group_protocol`); the moves themselves that differ between trio and
asyncio (start a holder, stop one, stop the body, wait for holders) are the
backend's :class:`Holders` (``_trio_tasks.TrioHolders``,
``_asyncio_tasks.AsyncioHolders``). This is the one group class; the
libraries differ only in those moves.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from ._compat import ki_protected
from ._exceptions import name_the_app, reraise
from ._group_protocol import LifespansProtocol, StackProtocol
from ._protocol import BODY, READY, STOP_BODY, STOP_HOLDERS, Do

if TYPE_CHECKING:
    from ._backend import Backend, Event, Holders
    from ._options import Options
    from ._state import LifespanApp
    from ._types import AnyASGIApp


class LifespanGroup:
    """Several lifespans, each held open by a task of its own.

    On trio the body runs inside a nursery entered by hand (as for one app),
    and each holder is shielded: only this group cancels it, and an outer
    cancellation still gets every app's graceful shutdown. On asyncio each
    holder is a task of its own, which an outer cancellation does not reach.
    """

    def __init__(
        self,
        backend: Backend,
        apps: Sequence[AnyASGIApp],
        options: Options,
        protocol: LifespansProtocol | None = None,
    ) -> None:
        count = len(apps)
        self.backend = backend
        self.apps = apps
        self.options = options
        #: What decides; a stack of mounted apps passes its own.
        self.protocol = (
            LifespansProtocol(count, backend.cancelled)
            if protocol is None
            else protocol
        )
        self.wrapped: list[LifespanApp[Any] | None] = [None] * count
        self.holders: Holders = backend.holders(count)
        self.shutting_down: Event = backend.event()  # the body is over: shut down

    @ki_protected
    async def __aenter__(self) -> tuple[LifespanApp[Any], ...]:
        __tracebackhide__ = True
        protocol = self.protocol
        holders = self.holders
        await holders.enter()
        for index, app in enumerate(self.apps):
            holders.start(index, self.hold, app)
        self.apply(protocol.begin())
        try:
            await holders.wait_ready()
        except BaseException as exc:  # noqa: BLE001 - the protocol judges it
            self.apply(protocol.interrupted(exc, ctrl_c=holders.is_ctrl_c(exc)))
        if protocol.startup_over() & BODY:
            return tuple(w for w in self.wrapped if w is not None)
        await self.finish(None)
        raise AssertionError("a failed startup always has an error")  # pragma: no cover

    @ki_protected
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        __tracebackhide__ = True
        holders = self.holders
        self.protocol.body_ended(
            exc,
            ours=holders.body_was_ours(),
            ctrl_c=exc is not None and holders.is_ctrl_c(exc),
        )
        return await self.finish(exc)

    @ki_protected
    async def finish(self, exc: BaseException | None) -> bool:
        """Shut every app down, wait for the holders, raise what matters."""
        __tracebackhide__ = True
        self.shutting_down.set()
        holders = self.holders
        # Waiting for the holders, then for what holds them (trio's nursery):
        # an interruption of either (Ctrl-C; on asyncio a cancellation, which
        # does not cut the graceful shutdowns short) is the protocol's to
        # judge, before the next wait.
        for wait in (self._holders_gone, holders.exit):
            interrupted = await wait()
            if interrupted is not None:
                self.apply(
                    self.protocol.interrupted_finishing(
                        interrupted, wins=holders.interruption_wins()
                    )
                )
        error = self.protocol.outcome()
        if error is not None and error is not exc:
            reraise(error)
        return False

    async def _holders_gone(self) -> BaseException | None:
        """Wait until every holder has returned; what interrupted the wait."""
        if not self.apps:
            return await self.holders.checkpoint()  # no apps: exit still yields
        return await self.holders.wait_for(range(len(self.apps)))

    @ki_protected
    async def hold(self, index: int, app: AnyASGIApp) -> None:
        try:
            async with self.backend.open_one(app, self.options) as wrapped:
                self.wrapped[index] = wrapped
                self.apply(self.protocol.app_started(index))
                await self.turn(index).wait()
        except BaseException as exc:  # noqa: BLE001 - the protocol judges it
            self.failed(index, exc)

    def turn(self, index: int) -> Event:
        """What holder ``index`` waits for to shut its app down: the body's end."""
        return self.shutting_down

    def failed(self, index: int, exc: BaseException) -> None:
        """Holder ``index``'s lifespan raised ``exc``: the protocol judges it."""
        self.apply(
            self.protocol.holder_failed(exc, shutting_down=self.shutting_down.is_set())
        )

    def apply(self, do: Do) -> None:
        """Do what the group's protocol decided."""
        holders = self.holders
        if do & READY:
            holders.ready()
        if do & STOP_BODY:
            holders.stop_body(self.protocol.errors[-1])
        if do & STOP_HOLDERS:
            # Stopping a holder that has returned, or the failing one on its
            # way out, does nothing.
            for index in self.protocol.holders_to_stop():
                holders.stop(index)


class LifespanStack(LifespanGroup):
    """Several lifespans started at once and shut down as a stack: the
    mounted apps' group (``lifespan_of``, ``with_lifespans``).

    The group driving :class:`._group_protocol.StackProtocol`, which decides
    what differs: a holder whose app has started *parks* and waits for its
    turn, and a failure stops only the holders still starting. Leaving waits
    for those first, then walks the parked holders in the protocol's
    shutdown order, giving each its turn and waiting until its app has shut
    down.
    """

    def __init__(
        self,
        backend: Backend,
        apps: Sequence[AnyASGIApp],
        options: Options,
        names: Sequence[str],
    ) -> None:
        #: The group's protocol (``self.protocol`` too), with its stack's part.
        self.stack = StackProtocol(len(apps), backend.cancelled)
        super().__init__(backend, apps, options, self.stack)
        #: How errors name each app (``apps[1] (Starlette)``).
        self.names = names
        #: Set when a holder's turn to shut its app down has come.
        self.turns = [backend.event() for _ in apps]

    # A holder parks (the protocol's app_started) even if something failed
    # as its startup completed and cancelled it: its wait for its turn is then
    # cancelled and its app shut down gracefully at once, and the walk, which
    # reaches the last parked first, waits for that before any other shutdown.
    # (On asyncio a holder cancelled before its app started never parks: the
    # cancellation lands at the wait for the startup's answer, and the driver
    # then shuts the app down itself.)

    def turn(self, index: int) -> Event:
        """Holder ``index`` shuts its app down when the walk gives it its turn."""
        return self.turns[index]

    def failed(self, index: int, exc: BaseException) -> None:
        """The error names its app, then the protocol judges it."""
        name_the_app(exc, self.names[index])
        super().failed(index, exc)

    async def _holders_gone(self) -> BaseException | None:
        """The holders that never parked end first (they were stopped), then
        the parked ones, one at a time, in the protocol's order.

        As in ``open_lifespans``, a cancellation meanwhile does not cut the
        shutdowns short (each is bounded by its timeout). Where an
        interruption does (trio's Ctrl-C), no more waiting in turn: every
        app still parked is given its turn at once and every holder is
        stopped (which cuts the waits for the answers short); what holds them
        still waits for them all.
        """
        if not self.apps:
            return await super()._holders_gone()
        holders = self.holders
        parked = self.stack.parked
        interrupted = await holders.wait_for(
            [index for index, each in enumerate(parked) if not each]
        )
        for index in self.stack.shutdown_order():
            if interrupted is not None and holders.cut_short(interrupted):
                break
            self.turns[index].set()
            cancelled = await holders.wait_for([index])
            interrupted = interrupted or cancelled
        if interrupted is not None and holders.cut_short(interrupted):
            for index, turn in enumerate(self.turns):
                turn.set()
                holders.stop(index)
        return interrupted


class Groups:
    """What each driver offers for groups, written once: the groups are the
    same on both libraries (the moves that differ are the driver's
    ``holders``)."""

    def open_many(
        self, apps: Sequence[AnyASGIApp], options: Options, /
    ) -> LifespanGroup:
        return LifespanGroup(cast("Backend", self), apps, options)

    def open_stack(
        self, apps: Sequence[AnyASGIApp], options: Options, names: Sequence[str], /
    ) -> LifespanStack:
        return LifespanStack(cast("Backend", self), apps, options, names)
