"""The ASGI callable types that the rest of the package speaks in.

They match the shapes Starlette, FastAPI and asgiref use
(``MutableMapping[str, Any]`` for scopes and messages), so that an app from any
of them type-checks where an ``ASGIApp`` is asked for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeAlias

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]
