"""The ASGI callable types that the rest of the package speaks in.

They match the shapes Starlette, FastAPI and asgiref use
(``MutableMapping[str, Any]`` for scopes and messages).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeAlias

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

#: What we accept as an app. Frameworks type their ``__call__`` with narrower
#: scopes and messages (Litestar, Quart and Falcon use TypedDicts), which no
#: precise callable type admits; any async callable is let through, and its
#: own type is kept (``LifespanApp[Litestar]``).
AnyASGIApp: TypeAlias = Callable[..., Awaitable[Any]]


class _Empty:
    """What a handoff's ``take_nowait`` returns when nothing has come yet."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY = _Empty()
