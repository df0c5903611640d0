"""The app that ``open_lifespan`` yields: the user's app plus the lifespan state."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from ._types import AnyASGIApp, Receive, Scope, Send

AppT = TypeVar("AppT", bound=AnyASGIApp)

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class LifespanApp(Generic[AppT]):
    """An ASGI app that forwards to the user's app with the lifespan state.

    Every ``http`` and ``websocket`` scope that passes through gets, under
    ``"state"``, a shallow copy of the state that the app's startup filled in:
    a request that adds or removes keys changes neither the next request nor
    the lifespan, while the values themselves are shared (ASGI spec). Scopes
    of other types pass through untouched.

    When the app does not support lifespan and ``allow_unsupported=True`` let
    it run, requests pass through unchanged and :attr:`state` is empty.

    Attributes:
        app: The user's app, as it was given to ``open_lifespan``.
    """

    __slots__ = ("_state", "app")

    def __init__(self, app: AppT, state: dict[str, Any] | None) -> None:
        self.app = app
        self._state = state

    @property
    def supported(self) -> bool:
        """Whether the app took part in the lifespan protocol.

        ``False`` only when it did not and ``allow_unsupported=True`` let it
        run anyway: then requests pass through unchanged.
        """
        return self._state is not None

    @property
    def state(self) -> Mapping[str, Any]:
        """The lifespan state, read-only: what the app's startup put there."""
        if self._state is None:
            return _EMPTY
        return MappingProxyType(self._state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection, as the user's app would."""
        state = self._state
        if state is not None and (
            scope["type"] == "http" or scope["type"] == "websocket"
        ):
            scope["state"] = state.copy()
        await self.app(scope, receive, send)

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} for {self.app!r}>"
