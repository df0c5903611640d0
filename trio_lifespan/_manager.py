"""``LifespanManager``: a drop-in for ``asgi_lifespan.LifespanManager``."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Generic

from ._backend import current_backend
from ._compat import ki_protected
from ._options import check_app, check_options
from ._state import AppT, LifespanApp


class LifespanManager(Generic[AppT]):
    """Run an ASGI app's lifespan, spelled the way asgi-lifespan 2.x spells it.

    Change ``from asgi_lifespan import LifespanManager`` to ``from
    trio_lifespan import LifespanManager`` and working code keeps working;
    it then gets every behaviour of :func:`open_lifespan` (see the migration
    guide for what differs from asgi-lifespan, and why).

    Args:
        app: The ASGI app.
        startup_timeout: Seconds the startup may take, or ``None``.
        shutdown_timeout: Seconds the shutdown may take, or ``None``.

    It may be made outside a running event loop; the loop is found on entry.
    Like asgi-lifespan's, one manager may be entered again once its block is
    left: each ``async with`` runs a new lifespan of the app, with a new
    state. It runs one lifespan at a time: entering it while it is entered
    raises :exc:`RuntimeError`.

    Example::

        async with LifespanManager(app) as manager:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app)
            ) as client:
                ...
    """

    def __init__(
        self,
        app: AppT,
        startup_timeout: float | None = 5,
        shutdown_timeout: float | None = 5,
    ) -> None:
        check_app(app)
        self._options = check_options(startup_timeout, shutdown_timeout, False)
        self._app = app
        self._startup_timeout = startup_timeout
        self._shutdown_timeout = shutdown_timeout
        # The lifespan running now, from entry until exit begins.
        self._cm: AbstractAsyncContextManager[LifespanApp[AppT]] | None = None
        self._wrapped: LifespanApp[AppT] | None = None

    @property
    def startup_timeout(self) -> float | None:
        """Seconds the startup may take, or ``None``; a new value applies from
        the next entry, and is checked where it is set."""
        return self._startup_timeout

    @startup_timeout.setter
    def startup_timeout(self, value: float | None) -> None:
        self._options = check_options(value, self._shutdown_timeout, False)
        self._startup_timeout = value

    @property
    def shutdown_timeout(self) -> float | None:
        """Seconds the shutdown may take, or ``None``; as for
        :attr:`startup_timeout`."""
        return self._shutdown_timeout

    @shutdown_timeout.setter
    def shutdown_timeout(self, value: float | None) -> None:
        self._options = check_options(self._startup_timeout, value, False)
        self._shutdown_timeout = value

    @property
    def app(self) -> LifespanApp[AppT]:
        """The app to send requests through; it passes the lifespan state on."""
        if self._wrapped is None:
            raise RuntimeError(
                "LifespanManager.app is there once the manager is entered: use it "
                "inside `async with LifespanManager(app) as manager:`"
            )
        return self._wrapped

    @property
    def state(self) -> Mapping[str, Any]:
        """The read-only lifespan state the app's startup filled in."""
        return self.app.state

    @ki_protected
    async def __aenter__(self) -> LifespanManager[AppT]:
        __tracebackhide__ = True
        if self._cm is not None:
            raise RuntimeError(
                "this LifespanManager is entered already and runs one lifespan at "
                "a time: leave its `async with` block before entering it again, or "
                "make a LifespanManager for each lifespan"
            )
        self._wrapped = None
        cm = self._cm = current_backend("LifespanManager").open_one(
            self._app, self._options
        )
        try:
            self._wrapped = await cm.__aenter__()
        except BaseException:
            self._cm = None  # no lifespan runs: it may be entered again
            raise
        return self

    @ki_protected
    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[bool | None]:
        __tracebackhide__ = True
        cm = self._cm
        if cm is None:
            raise RuntimeError(
                "__aexit__ was called on a LifespanManager that is not entered: "
                "call __aenter__ first (`async with LifespanManager(app)` does both)"
            )
        self._cm = None
        # The driver's own awaitable: no coroutine of ours in between.
        return cm.__aexit__(exc_type, exc, tb)
