"""A small ASGI app to try ``trio-lifespan check`` on, shipped in the package.

Plain ASGI, no framework: its startup puts a greeting and a pretend
connection pool in the lifespan state, it answers ``GET /`` and
``GET /health`` from that state, and its shutdown closes the pool.
"""

from __future__ import annotations

import json
from typing import Any

from ._types import Receive, Scope, Send


class _Pool:
    """Stands in for a database pool: open after startup, closed at shutdown."""

    def __init__(self) -> None:
        self.open = True

    def close(self) -> None:
        self.open = False


async def _respond(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The demo app."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "hello from the trio_lifespan demo"
                scope["state"]["pool"] = _Pool()
                await send({"type": "lifespan.startup.complete"})
            else:  # 'lifespan.shutdown', the only other lifespan message
                scope["state"]["pool"].close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        state = scope.get("state", {})
        if scope["path"] == "/":
            await _respond(send, 200, {"message": state.get("greeting")})
        elif scope["path"] == "/health":
            pool = state.get("pool")
            healthy = pool is not None and pool.open
            await _respond(send, 200 if healthy else 503, {"healthy": healthy})
        else:
            await _respond(send, 404, {"error": f"no route for {scope['path']}"})
