"""The tutorial's websocket tests: open_client's own sessions, and httpx-ws."""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import pytest
from httpx_ws import aconnect_ws
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from trio_lifespan import WebSocketDisconnect, open_client


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, object]]:
    yield {"greeting": "hello"}  # set by the startup


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    name = await websocket.receive_text()
    await websocket.send_text(f"{websocket.state.greeting}, {name}")
    await websocket.close(code=4000)


app = Starlette(routes=[WebSocketRoute("/echo", echo)], lifespan=lifespan)


@pytest.mark.trio
async def test_the_websocket_sees_the_state() -> None:
    async with (
        open_client(app) as client,
        client.websocket_connect("/echo") as websocket,
    ):
        await websocket.send_text("ada")
        assert await websocket.receive_text() == "hello, ada"
        with pytest.raises(WebSocketDisconnect) as closed:
            await websocket.receive_text()
        assert closed.value.code == 4000


@pytest.mark.trio
async def test_httpx_ws_works_too() -> None:
    async with open_client(app) as client, aconnect_ws("/echo", client) as ws:
        await ws.send_text("ada")
        assert await ws.receive_text() == "hello, ada"
