"""``LifespanManager``: a drop-in for ``asgi_lifespan.LifespanManager``."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from types import TracebackType
from typing import Any, Generic

from ._open import open_lifespan
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
        self._cm = open_lifespan(
            app, startup_timeout=startup_timeout, shutdown_timeout=shutdown_timeout
        )
        self._wrapped: LifespanApp[AppT] | None = None
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout

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

    async def __aenter__(self) -> LifespanManager[AppT]:
        self._wrapped = await self._cm.__aenter__()
        return self

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[bool | None]:
        # The driver's own awaitable: no coroutine of ours in between.
        return self._cm.__aexit__(exc_type, exc, tb)
