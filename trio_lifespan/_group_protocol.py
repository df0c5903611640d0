"""The decisions of a group of lifespans, without any I/O.

:class:`LifespansProtocol` decides for several lifespans held at once by
tasks of their own (``open_lifespans``): when the entry may go on, when to
stop every holder, when to cancel the body, and the one exception that
leaves. :class:`StackProtocol` decides the same for mounted apps, shut down
as a stack. Each driver holds the apps with its own tasks and applies the
decisions, as it does :class:`._protocol.LifespanProtocol`'s for one app.
"""

from __future__ import annotations

from collections.abc import Iterable

from ._errors import LifespanUnavailable
from ._exceptions import combine_many, only_cancellations
from ._protocol import BODY, READY, STOP_BODY, STOP_HOLDERS, BodyRules, Do


class LifespansProtocol(BodyRules):
    """Several lifespans at once (``open_lifespans``), each held by a task.

    Decides when the entry may go on, when to stop every holder, when to
    cancel the body, and the one exception that leaves; each driver holds
    the apps with its own tasks and applies the decisions.

    Args:
        count: How many apps.
        cancelled: The event loop's cancellation exception.
    """

    def __init__(self, count: int, cancelled: type[BaseException]) -> None:
        super().__init__(cancelled)
        self.count = count
        self._starting = count  # holders whose app has not started yet
        self._ready = False
        #: The holders were stopped (something failed).
        self.stopped = False
        #: What the apps raised, in the order it happened.
        self.errors: list[BaseException] = []

    @property
    def serving(self) -> bool:
        """Whether the body may run: every app started and nothing failed."""
        return not self.errors and self.raised is None and not self._starting

    def begin(self) -> Do:
        """The holders are started; with no apps, the entry goes on."""
        return self._ready_now() if not self.count else 0

    def app_started(self, index: int) -> Do:
        """Holder ``index``'s app has started."""
        self._starting -= 1
        return self._ready_now() if not self._starting else 0

    def holder_failed(self, exc: BaseException, *, shutting_down: bool) -> Do:
        """A holder's lifespan raised ``exc``.

        Args:
            exc: What it raised; a cancellation once we stopped the holders is
                ours, nothing of its own.
            shutting_down: The body is over and every app is being shut down: no
                holder is stopped for it.
        """
        if self.stopped and isinstance(exc, self._cancelled):
            return 0
        self.errors.append(exc)
        return 0 if shutting_down else self._stop(exc)

    def interrupted(self, exc: BaseException, *, ctrl_c: bool = False) -> Do:
        """A cancellation or Ctrl-C interrupted the wait for the startups
        (``ctrl_c``: see :meth:`LifespanProtocol.interrupted`)."""
        self.raised = exc
        self._ctrl_c = self._ctrl_c or ctrl_c
        return self._stop(None)

    def interrupted_finishing(self, exc: BaseException, *, wins: bool) -> Do:
        """Something interrupted the wait for the holders to end (see
        :meth:`BodyRules._interrupted_at_the_end`); the holders are stopped
        short of their graceful shutdowns."""
        self._interrupted_at_the_end(exc, wins)
        return self._stop(None)

    def startup_over(self) -> Do:
        """The wait for the startups is over: ``BODY`` if the body may run
        (it runs from now on)."""
        if not self.serving:
            return 0
        self.in_body = True
        return BODY

    def outcome(self) -> BaseException | None:
        """The one exception that leaves, or ``None``: one app's error
        stands for itself, several become a group."""
        return combine_many(
            self.raised,
            self.errors,
            raised_gives_way=not self._ctrl_c
            and only_cancellations(self.raised, (self._cancelled, LifespanUnavailable)),
        )

    def holders_to_stop(self) -> Iterable[int]:
        """Which holders ``STOP_HOLDERS`` stops: every one (each is shut
        down at once, short of a graceful shutdown if it is still starting)."""
        return range(self.count)

    def _ready_now(self) -> Do:
        if self._ready:
            return 0
        self._ready = True
        return READY

    def _stop(self, exc: BaseException | None) -> Do:
        """Stop everything short of the shutdowns: something failed. Once:
        with many failing apps, each failure must not walk every holder."""
        if self.stopped:
            return 0
        self.stopped = True
        do = STOP_HOLDERS | self._ready_now()
        if self.in_body and exc is not None:
            self._body_stopped = True
            do |= STOP_BODY
        return do


class StackProtocol(LifespansProtocol):
    """Mounted apps (``lifespan_of``, ``with_lifespans``): a group shut down as a stack.

    As :class:`LifespansProtocol` decides, with two differences. A holder
    whose app has started *parks*: a failure does not stop it (only the
    holders still starting are stopped); once the body is over, the parked
    apps are shut down one at a time, in :meth:`shutdown_order`. And the
    body may be guarded (:meth:`guard_the_body`): it is then the parent's
    own shutdown, which a failure no longer stops.
    """

    def __init__(self, count: int, cancelled: type[BaseException]) -> None:
        super().__init__(count, cancelled)
        #: Whether each holder has parked: its app has started, and it waits
        #: for its turn to shut it down.
        self.parked = [False] * count
        self._order: list[int] = []
        self._body_guarded = False

    def app_started(self, index: int) -> Do:
        """Holder ``index``'s app has started: it parks, and waits for its
        turn to shut it down."""
        self.parked[index] = True
        self._order.append(index)
        return super().app_started(index)

    def guard_the_body(self) -> None:
        """From now on a failure does not stop the body: it is the parent's
        own shutdown, as graceful as the sub-apps' (the failure still comes
        out when the body ends)."""
        self._body_guarded = True

    def holders_to_stop(self) -> Iterable[int]:
        """The holders still starting: parked ones wait for their turn."""
        return [index for index, parked in enumerate(self.parked) if not parked]

    def shutdown_order(self) -> list[int]:
        """The parked holders, the last whose app started first."""
        return self._order[::-1]

    def _stop(self, exc: BaseException | None) -> Do:
        # A guarded body is not stopped: as if no app's error stopped it.
        return super()._stop(None if self._body_guarded else exc)
