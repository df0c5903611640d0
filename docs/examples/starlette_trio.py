"""Run a Starlette app's lifespan on trio and send it a request, no server.

Run it with ``python docs/examples/starlette_trio.py``; it prints each step.
"""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import httpx
import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trio_lifespan import open_lifespan


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, object]]:
    print("app: startup, opening the pretend database")
    yield {"db": {"users": 3}}
    print("app: shutdown, closing the pretend database")


async def users(request: Request) -> JSONResponse:
    return JSONResponse({"users": request.state.db["users"]})


app = Starlette(routes=[Route("/users", users)], lifespan=lifespan)


async def main() -> None:
    async with open_lifespan(app) as asgi_app:
        print(f"started; lifespan state keys: {sorted(asgi_app.state)}")
        transport = httpx.ASGITransport(app=asgi_app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://app"
        ) as client:
            response = await client.get("/users")
        print(f"GET /users -> {response.status_code} {response.json()}")
    print("stopped cleanly")


if __name__ == "__main__":
    trio.run(main)
