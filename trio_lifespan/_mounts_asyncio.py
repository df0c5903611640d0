"""The mounted apps' group on asyncio: ``open_lifespans``' group, shut down as a stack.

:class:`AsyncioStack` is :class:`._asyncio.AsyncioLifespans` with the change
:mod:`._mounts_trio` describes: holders whose app started park, in order of
startup completion; leaving gives each its turn, last started first, and
waits until its app has shut down; a failure cancels only the holders still
starting.

Imported only by the asyncio path of :mod:`._mounts`; it imports no trio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._asyncio import AsyncioLifespan, AsyncioLifespans, _wait_all
from ._exceptions import name_the_app
from ._protocol import STOP_BODY, STOP_HOLDERS, Do

if TYPE_CHECKING:
    from ._options import Options
    from ._types import AnyASGIApp


class AsyncioStack(AsyncioLifespans):
    """Several lifespans started at once and shut down as a stack, on asyncio."""

    def __init__(
        self, apps: Sequence[AnyASGIApp], options: Options, names: Sequence[str]
    ) -> None:
        super().__init__(apps, options)
        #: How errors name each app (``apps[1] (Starlette)``).
        self.names = names
        count = len(apps)
        #: Set when a holder's turn to shut its app down has come.
        self.turns = [asyncio.Event() for _ in range(count)]
        #: Whether each holder has parked: its app has started, and it waits
        #: for its turn (a failure does not stop it; the walk does).
        self.parked = [False] * count
        #: The parked holders, in the order their apps' startups completed.
        self.order: list[int] = []
        #: Whether the block is the parent's own shutdown (see guard_the_body).
        self.body_guarded = False

    async def hold(self, index: int, app: AnyASGIApp) -> None:
        try:
            async with AsyncioLifespan(app, self.options) as wrapped:
                self.wrapped[index] = wrapped
                # A holder cancelled before this never gets here: asyncio
                # delivers the cancellation at the wait for the startup's
                # answer, even one that has come, and the driver then shuts
                # the app down itself.
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

    async def _holders_gone(self) -> BaseException | None:
        """Wait for the holders that never parked, then shut the parked ones
        down one at a time, the last to have started first.

        As in ``open_lifespans``, a cancellation meanwhile does not cut the
        shutdowns short (each is bounded by its timeout); it is returned, to
        be raised after.
        """
        if not self.apps:
            return await super()._holders_gone()
        tasks = self.tasks
        interrupted = await _wait_all(
            [task for index, task in enumerate(tasks) if not self.parked[index]]
        )
        for index in reversed(self.order):
            self.turns[index].set()
            cancelled = await _wait_all([tasks[index]])
            interrupted = interrupted or cancelled
        return interrupted

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
            for index, task in enumerate(self.tasks):
                if not self.parked[index]:
                    task.cancel()
