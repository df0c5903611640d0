"""The event loops the shared tests run on, each on fake time.

A shared test takes a ``backend`` argument and uses it for everything that
differs between libraries (sleeping, time, cancellation), so the very same
test proves a behaviour on each backend. Time is virtual: trio's MockClock
with autojump, so a 5 s timeout takes microseconds, and every test runs under
a guard deadline that turns a hang into a failure.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Generator
from contextlib import contextmanager
from typing import Any, Protocol

import trio
import trio.testing

#: Virtual seconds after which a test counts as hung. Far above every
#: timeout the tests use, far below "for ever".
HANG_GUARD = 10_000.0


class Deadline(Protocol):
    """What ``Backend.move_on_after`` yields."""

    @property
    def cancelled_caught(self) -> bool: ...


class Backend(Protocol):
    """One event loop library, as the shared tests use it."""

    name: str
    cancelled: type[BaseException]

    def run(self, fn: Callable[..., Awaitable[None]], kwargs: dict[str, Any]) -> None:
        """Run ``fn(**kwargs)`` to completion on fake time, guarded."""

    def now(self) -> float:
        """The current (virtual) time."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of virtual time."""

    async def checkpoint(self) -> None:
        """Yield to the loop once."""

    def move_on_after(self, seconds: float) -> Any:
        """A context manager cancelling its block after ``seconds``."""


class TrioBackend:
    """trio, on ``MockClock(autojump_threshold=0)``."""

    name = "trio"
    cancelled: type[BaseException] = trio.Cancelled

    def run(self, fn: Callable[..., Awaitable[None]], kwargs: dict[str, Any]) -> None:
        async def guarded() -> None:
            with trio.fail_after(HANG_GUARD):
                await fn(**kwargs)

        trio.run(guarded, clock=trio.testing.MockClock(autojump_threshold=0))

    def now(self) -> float:
        return trio.current_time()

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    async def checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()

    @contextmanager
    def move_on_after(self, seconds: float) -> Generator[trio.CancelScope]:
        with trio.move_on_after(seconds) as scope:
            yield scope


BACKENDS: list[Backend] = [TrioBackend()]


def forever() -> float:
    """A sleep length that only a cancellation ends."""
    return math.inf
