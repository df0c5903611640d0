"""The mounted apps' group on asyncio: ``open_lifespans``' group, shut down as a stack.

:class:`AsyncioStack` is :class:`._asyncio.AsyncioLifespans` driving
:class:`._group_protocol.StackProtocol`, as :mod:`._mounts_trio` describes: holders
whose app started park; a failure cancels only the holders still starting;
leaving waits for those, then gives each parked holder its turn, in the
protocol's shutdown order, and waits until its app has shut down.

Imported only by the asyncio path of :mod:`._mounts`; it imports no trio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._asyncio import AsyncioLifespans, _wait_all
from ._exceptions import name_the_app
from ._group_protocol import StackProtocol

if TYPE_CHECKING:
    from ._options import Options
    from ._types import AnyASGIApp


class AsyncioStack(AsyncioLifespans):
    """Several lifespans started at once and shut down as a stack, on asyncio."""

    def __init__(
        self, apps: Sequence[AnyASGIApp], options: Options, names: Sequence[str]
    ) -> None:
        #: The group's protocol (``self.protocol`` too), with its stack's part.
        self.stack = StackProtocol(len(apps), asyncio.CancelledError)
        super().__init__(apps, options, self.stack)
        #: How errors name each app (``apps[1] (Starlette)``).
        self.names = names
        #: Set when a holder's turn to shut its app down has come.
        self.turns = [asyncio.Event() for _ in apps]

    # A holder cancelled before its app started never parks: asyncio
    # delivers the cancellation at the wait for the startup's answer, even
    # one that has come, and the driver then shuts the app down itself.

    def turn(self, index: int) -> asyncio.Event:
        """Holder ``index`` shuts its app down when the walk gives it its turn."""
        return self.turns[index]

    def failed(self, index: int, exc: BaseException) -> None:
        """The error names its app, then the protocol judges it."""
        name_the_app(exc, self.names[index])
        super().failed(index, exc)

    async def _holders_gone(self) -> BaseException | None:
        """Wait for the holders that never parked, then shut the parked ones
        down one at a time, in the protocol's order.

        As in ``open_lifespans``, a cancellation meanwhile does not cut the
        shutdowns short (each is bounded by its timeout); it is returned, to
        be raised after.
        """
        if not self.apps:
            return await super()._holders_gone()
        tasks = self.tasks
        parked = self.stack.parked
        interrupted = await _wait_all(
            [task for index, task in enumerate(tasks) if not parked[index]]
        )
        for index in self.stack.shutdown_order():
            self.turns[index].set()
            cancelled = await _wait_all([tasks[index]])
            interrupted = interrupted or cancelled
        return interrupted
