"""The mounted apps' group on trio: ``open_lifespans``' group, shut down as a stack.

:class:`TrioStack` is :class:`._trio.TrioLifespans` (the startups run
concurrently, the same protocol decides every failure) with one change: the
shutdowns run one at a time, in reverse order of startup completion. Each
holder whose app has started *parks*, in that order, and waits for its turn;
leaving walks the parked holders backwards, giving each its turn and waiting
until its app has shut down. A failure stops only the holders still starting
(they are cancelled, as in ``open_lifespans``); the parked ones are shut down
by the walk, in order.

Imported only by the trio path of :mod:`._mounts`, so asyncio never loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio
from trio.lowlevel import enable_ki_protection

from ._exceptions import name_the_app
from ._protocol import STOP_BODY, STOP_HOLDERS, Do
from ._trio import TrioLifespan, TrioLifespans

if TYPE_CHECKING:
    from ._options import Options
    from ._types import AnyASGIApp


class TrioStack(TrioLifespans):
    """Several lifespans started at once and shut down as a stack, on trio."""

    def __init__(
        self, apps: Sequence[AnyASGIApp], options: Options, names: Sequence[str]
    ) -> None:
        super().__init__(apps, options)
        #: How errors name each app (``apps[1] (Starlette)``).
        self.names = names
        count = len(apps)
        #: Set when a holder's turn to shut its app down has come.
        self.turns = [trio.Event() for _ in range(count)]
        #: Set when a holder has returned.
        self.finished = [trio.Event() for _ in range(count)]
        #: Whether each holder has parked: its app has started, and it waits
        #: for its turn (a failure does not stop it; the walk does).
        self.parked = [False] * count
        #: The parked holders, in the order their apps' startups completed.
        self.order: list[int] = []
        #: Whether the block is the parent's own shutdown (see guard_the_body).
        self.body_guarded = False

    @enable_ki_protection
    async def hold(self, index: int, app: AnyASGIApp) -> None:
        try:
            with self.scopes[index]:
                async with TrioLifespan(app, self.options) as wrapped:
                    self.wrapped[index] = wrapped
                    # Parked even if something failed as this startup
                    # completed and cancelled us: the wait below is then
                    # cancelled and the app shut down gracefully at once,
                    # and the walk, which reaches the last parked first,
                    # waits for that before any other shutdown.
                    self.parked[index] = True
                    self.order.append(index)
                    self.apply(self.protocol.app_started())
                    await self.turns[index].wait()
        except BaseException as exc:  # noqa: BLE001 - the protocol judges it
            name_the_app(exc, self.names[index])
            self.apply(
                self.protocol.holder_failed(
                    exc, shutting_down=self.shutting_down.is_set()
                )
            )
        self.holding -= 1
        if not self.holding:
            self.gone.set()
        self.finished[index].set()

    async def _holders_gone(self) -> None:
        """The holders that never parked end first (they were stopped), then
        the parked ones, one at a time, the last to have started first."""
        if not self.apps:
            await trio.lowlevel.checkpoint()  # no apps: exit still checkpoints
            return
        try:
            # Shielded, as in open_lifespans: every app gets its shutdown
            # (each bounded by its timeout); only a Ctrl-C cuts the walk short.
            with trio.CancelScope(shield=True):
                for index, parked in enumerate(self.parked):
                    if not parked:
                        await self.finished[index].wait()
                for index in reversed(self.order):
                    self.turns[index].set()
                    await self.finished[index].wait()
        except BaseException:
            # Ctrl-C: no more waiting in turn, nor for graceful shutdowns, as
            # in open_lifespans: every app still parked is sent its shutdown
            # at once, every holder is stopped (which cuts the waits for the
            # answers short), and the nursery's exit waits for them all.
            for turn in self.turns:
                turn.set()
            for scope in self.scopes:
                scope.cancel()
            raise

    def guard_the_body(self) -> None:
        """From now on a failure does not stop the block: it is the parent's
        own shutdown, as graceful as the sub-apps' (the failure still comes
        out when the block ends)."""
        self.body_guarded = True

    def apply(self, do: Do) -> None:
        """Do what the group's protocol decided; stopping the holders stops
        only those that have not parked, and the block is not stopped once
        it is guarded."""
        if self.body_guarded:
            do &= ~STOP_BODY
        super().apply(do & ~STOP_HOLDERS)
        if do & STOP_HOLDERS:
            for index, scope in enumerate(self.scopes):
                if not self.parked[index]:
                    scope.cancel()
