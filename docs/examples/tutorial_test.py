"""The tutorial's test file: a Starlette app, tested on trio through httpx."""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trio_lifespan import open_lifespan


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, object]]:
    yield {"db": {"users": ["ada", "grace"]}}


async def users(request: Request) -> JSONResponse:
    request.state.seen = True  # only this request's copy of the state
    return JSONResponse({"users": request.state.db["users"]})


async def seen(request: Request) -> JSONResponse:
    return JSONResponse({"seen": hasattr(request.state, "seen")})


app = Starlette(
    routes=[Route("/users", users), Route("/seen", seen)], lifespan=lifespan
)


@pytest.fixture
async def client() -> AsyncGenerator[httpx.AsyncClient]:
    async with open_lifespan(app) as asgi_app:
        transport = httpx.ASGITransport(app=asgi_app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://app"
        ) as client:
            yield client


@pytest.mark.trio
async def test_users(client: httpx.AsyncClient) -> None:
    response = await client.get("/users")
    assert response.json() == {"users": ["ada", "grace"]}


@pytest.mark.trio
async def test_requests_do_not_share_their_state(client: httpx.AsyncClient) -> None:
    await client.get("/users")
    response = await client.get("/seen")
    assert response.json() == {"seen": False}
