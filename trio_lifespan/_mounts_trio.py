"""The mounted apps' group on trio: ``open_lifespans``' group, shut down as a stack.

:class:`TrioStack` is :class:`._trio.TrioLifespans` (the startups run
concurrently) driving :class:`._group_protocol.StackProtocol`, which decides what
differs: a holder whose app has started *parks* and waits for its turn, and
a failure stops only the holders still starting. Leaving stops those first,
then walks the parked holders in the protocol's shutdown order, giving each
its turn and waiting until its app has shut down.

Imported only by the trio path of :mod:`._mounts`, so asyncio never loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from ._exceptions import name_the_app
from ._group_protocol import StackProtocol
from ._trio import TrioLifespans

if TYPE_CHECKING:
    from ._options import Options
    from ._types import AnyASGIApp


class TrioStack(TrioLifespans):
    """Several lifespans started at once and shut down as a stack, on trio."""

    def __init__(
        self, apps: Sequence[AnyASGIApp], options: Options, names: Sequence[str]
    ) -> None:
        #: The group's protocol (``self.protocol`` too), with its stack's part.
        self.stack = StackProtocol(len(apps), trio.Cancelled)
        super().__init__(apps, options, self.stack)
        #: How errors name each app (``apps[1] (Starlette)``).
        self.names = names
        count = len(apps)
        #: Set when a holder's turn to shut its app down has come.
        self.turns = [trio.Event() for _ in range(count)]
        #: Set when a holder has returned.
        self.finished = [trio.Event() for _ in range(count)]

    # A holder parks (the protocol's app_started) even if something failed
    # as its startup completed and cancelled it: its wait for its turn is then
    # cancelled and its app shut down gracefully at once, and the walk, which
    # reaches the last parked first, waits for that before any other shutdown.

    def turn(self, index: int) -> trio.Event:
        """Holder ``index`` shuts its app down when the walk gives it its turn."""
        return self.turns[index]

    def failed(self, index: int, exc: BaseException) -> None:
        """The error names its app, then the protocol judges it."""
        name_the_app(exc, self.names[index])
        super().failed(index, exc)

    def holder_done(self, index: int) -> None:
        super().holder_done(index)
        self.finished[index].set()

    async def _holders_gone(self) -> None:
        """The holders that never parked end first (they were stopped), then
        the parked ones, one at a time, in the protocol's order."""
        if not self.apps:
            await trio.lowlevel.checkpoint()  # no apps: exit still checkpoints
            return
        try:
            # Shielded, as in open_lifespans: every app gets its shutdown
            # (each bounded by its timeout); only a Ctrl-C cuts the walk short.
            with trio.CancelScope(shield=True):
                for index, parked in enumerate(self.stack.parked):
                    if not parked:
                        await self.finished[index].wait()
                for index in self.stack.shutdown_order():
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
