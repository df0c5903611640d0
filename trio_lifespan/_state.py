"""The app that ``open_lifespan`` yields: the user's app plus the lifespan state.

It is a plain function with attributes, not an instance with ``__call__``:
every request goes through it, and calling a closure costs about half as
much as calling an object (measured in ``benchmarks/bench.py``).
:class:`LifespanApp` is the protocol that describes it to type checkers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import (
    TYPE_CHECKING,
    Any,
    NoReturn,
    Protocol,
    TypeVar,
    cast,
    runtime_checkable,
)

from ._errors import LifespanUnavailable

if TYPE_CHECKING:  # types only: importers of the package do not load them
    from ._types import AnyASGIApp, Receive, Scope, Send

AppT = TypeVar("AppT", bound="AnyASGIApp")
AppT_co = TypeVar("AppT_co", bound="AnyASGIApp", covariant=True)

_REQUESTS = frozenset({"http", "websocket"})
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@runtime_checkable
class LifespanApp(Protocol[AppT_co]):
    """An ASGI app that forwards to the user's app with the lifespan state.

    Every ``http`` and ``websocket`` scope that passes through gets, under
    ``"state"``, a shallow copy of the state that the app's startup filled in:
    a request that adds or removes keys changes neither the next request nor
    the lifespan, while the values themselves are shared (ASGI spec). Scopes
    of other types pass through untouched.

    When the app does not support lifespan and ``allow_unsupported=True`` let
    it run, requests pass through unchanged and :attr:`state` is empty.

    Once the app's lifespan has failed (it crashed while running, say), every
    request (``http``, ``websocket``) raises :exc:`LifespanUnavailable` at
    once, whose ``__cause__`` is the lifespan's error, instead of reaching an
    app whose lifespan is gone.
    """

    @property
    def app(self) -> AppT_co:
        """The user's app, as it was given to ``open_lifespan``."""
        ...

    @property
    def state(self) -> Mapping[str, Any]:
        """The read-only lifespan state, as the app's startup left it."""
        ...

    @property
    def supported(self) -> bool:
        """Whether the app took part in the lifespan protocol.

        ``False`` only when it did not and ``allow_unsupported=True`` let it
        run anyway: then requests pass through unchanged.
        """
        ...

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection, as the user's app would."""
        ...


class _Refused:
    """Stands in for the state once the lifespan has failed."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def copy(self) -> NoReturn:
        """Refuse the request that asks for the state."""
        raise LifespanUnavailable(self.error)


def wrap_app(
    app: AppT, state: dict[str, Any] | None
) -> tuple[LifespanApp[AppT], Callable[[BaseException], None]]:
    """The :class:`LifespanApp` for ``app``, and the function that fails it.

    ``state`` is ``None`` without lifespan. Once the driver calls the second
    with the lifespan's error, every request through the first raises
    :exc:`LifespanUnavailable` caused by that error.
    """
    if state is None:
        failure: BaseException | None = None

        async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
            if failure is not None:
                raise LifespanUnavailable(failure)
            await app(scope, receive, send)

        def fail(error: BaseException) -> None:
            nonlocal failure
            failure = wrapped.failure = error

    else:
        # What each request copies: the state, then, once the lifespan has
        # failed, a stand-in whose copy refuses the request. No check of our
        # own on the request path (every request pays for one).
        shared: dict[str, Any] | _Refused = state

        async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] in _REQUESTS:
                scope["state"] = shared.copy()
            await app(scope, receive, send)

        def fail(error: BaseException) -> None:
            nonlocal shared
            shared = _Refused(error)
            wrapped.failure = error

    wrapped: Any = lifespan_app
    wrapped.app = app
    wrapped.state = _EMPTY if state is None else MappingProxyType(state)
    wrapped.supported = state is not None
    wrapped.failure = None  # (not in the protocol: for our client, see _httpx)
    wrapped.__qualname__ = wrapped.__name__ = f"LifespanApp[{_name(app)}]"
    return cast("LifespanApp[AppT]", wrapped), fail


def _name(app: object) -> str:
    return getattr(app, "__qualname__", type(app).__qualname__)
