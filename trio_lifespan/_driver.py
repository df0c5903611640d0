"""What the trio driver and the asyncio shim share: the context manager's shape.

Entering runs the startup and yields the wrapped app; leaving runs the
shutdown, waits until the app's task is gone and raises the one exception
that matters. How a stage is run, waited for and stopped is each driver's
own (:mod:`._trio`, :mod:`._asyncio`); what the protocol decides is
:mod:`._protocol`'s.

The drivers are classes rather than ``asynccontextmanager`` generators:
entering and leaving one costs a fraction of a generator's round trips, and
every ``open_lifespan`` pays it (``benchmarks/bench.py``).

Entering and leaving are KI-protected under trio (:func:`._compat.ki_protected`):
a Ctrl-C that lands between two lines of them would leave the nursery the
trio driver opened by hand half-entered; protected, it waits for the next
checkpoint, where the driver's own handling turns it into a clean exit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

from ._compat import ki_protected
from ._protocol import LifespanProtocol, combine, interruption, only_cancellations
from ._reraise import reraise
from ._state import LifespanApp, wrap_app

if TYPE_CHECKING:
    from ._options import Options
    from ._types import AnyASGIApp


class LifespanDriver(ABC):
    """One app's lifespan as an async context manager, for one async library."""

    __slots__ = (
        "app",
        "fail_requests",
        "in_body",
        "options",
        "protocol",
        "raised",
        "state",
    )

    #: The library's cancellation exception: one that interrupted us gives
    #: way to the lifespan's own error (see :func:`._protocol.combine`).
    cancelled: ClassVar[type[BaseException]]

    #: What the body raised that gives way to the lifespan's error: our
    #: cancellation, or a request refused because that error had happened
    #: (on trio a body can make one before the cancellation reaches it).
    gives_way: ClassVar[tuple[type[BaseException], ...]]

    def __init__(self, app: AnyASGIApp, options: Options) -> None:
        self.app = app
        self.options = options
        self.protocol = LifespanProtocol(allow_unsupported=options.allow_unsupported)
        self.state: dict[str, Any] = {}
        # What interrupted us: the body's exception, or a cancellation or
        # KeyboardInterrupt that arrived while we waited on the app.
        self.raised: BaseException | None = None
        # Fails the wrapped app's requests once the lifespan has failed.
        self.fail_requests: Callable[[BaseException], None] | None = None
        # The body runs: only then may an app's failure cancel it (before, the
        # failure comes out of the entry itself).
        self.in_body = False

    @ki_protected
    async def __aenter__(self) -> LifespanApp[Any]:
        __tracebackhide__ = True
        if await self.start():
            supported = self.protocol.running
            wrapped, self.fail_requests = wrap_app(
                self.app, self.state if supported else None
            )
            self.in_body = True
            return wrapped
        if self.protocol.running:
            # Cancelled as the startup completed: the app started, so it gets
            # its graceful shutdown, then the cancellation goes on.
            await self.stop()
        await self.leave(None)
        raise AssertionError("a failed startup always has an error")  # pragma: no cover

    @ki_protected
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        __tracebackhide__ = True
        self.in_body = False
        self.raised = self.body_raised(exc)
        await self.stop()
        return await self.leave(exc)

    @ki_protected
    async def leave(self, exc: BaseException | None) -> bool:
        """Wait until the app's task is gone, then raise what matters.

        Returns ``False`` when ``exc``, the body's exception, is that (Python
        then raises it as it was).
        """
        __tracebackhide__ = True
        waiting = self.join()
        if waiting is not None:
            try:
                await waiting
            except BaseException as interrupted:  # noqa: BLE001 - raised below
                self.raised = interruption(interrupted, self.raised)
        raised = self.raised
        error = self.protocol.error
        if raised is None and error is None:
            return False  # the common case, without combine's call
        error = combine(
            raised,
            error,
            raised_is_cancel=only_cancellations(raised, self.gives_way),
        )
        if error is not None and error is not exc:
            reraise(error)
        return False

    def interrupted(self, exc: BaseException) -> None:
        """Something interrupted the wait for the startup's answer.

        A cancellation that arrives once the startup has completed (in the
        same turn of the loop) is kept for after the graceful shutdown, as a
        cancellation of the body would be; anything else stops the app.
        """
        if self.protocol.running and isinstance(exc, self.cancelled):
            self.raised = exc
        else:
            self.abandon(exc)

    def abandon(self, exc: BaseException) -> None:
        """We were interrupted while waiting on the app: stop it, raise later.

        The interruption (a cancellation, Ctrl-C) keeps the body's exception,
        if any, as its context.
        """
        self.raised = interruption(exc, self.raised)
        self.protocol.abandon()
        self.sync()

    def failed(self) -> None:
        """The lifespan has an error: refuse requests from now on."""
        error = self.protocol.error
        if error is not None and self.fail_requests is not None:
            self.fail_requests(error)

    # What each driver does its own way ------------------------------------------

    @abstractmethod
    async def start(self) -> bool:
        """Start the app and run its startup; returns whether the body may run."""

    @abstractmethod
    def body_raised(self, exc: BaseException | None) -> BaseException | None:
        """What the body raised, less a cancellation of our own making."""

    @abstractmethod
    async def stop(self) -> None:
        """Run the shutdown if it is due, shielded when the body raised."""

    @abstractmethod
    def join(self) -> Awaitable[object] | None:
        """Stop the app if it lingers; what to await until its task is gone.

        ``None`` when it is gone already: no coroutine is made for nothing.
        """

    @abstractmethod
    def sync(self) -> None:
        """Act on what the protocol now says."""
