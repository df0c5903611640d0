"""How-to: from asgi-lifespan + httpx to open_client, the same fixture twice."""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trio_lifespan import LifespanClient, open_client

pytestmark = pytest.mark.trio


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, object]]:
    yield {"users": ["ada", "grace"]}


async def users(request: Request) -> JSONResponse:
    return JSONResponse({"users": request.state.users})


app = Starlette(routes=[Route("/users", users)], lifespan=lifespan)


@pytest.fixture
async def client_before() -> AsyncGenerator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as client:
            yield client


@pytest.fixture
async def client_after() -> AsyncGenerator[LifespanClient[Starlette]]:
    async with open_client(app) as client:
        yield client


async def test_before(client_before: httpx.AsyncClient) -> None:
    response = await client_before.get("/users")
    assert response.json() == {"users": ["ada", "grace"]}


async def test_after(client_after: LifespanClient[Starlette]) -> None:
    response = await client_after.get("/users")
    assert response.json() == {"users": ["ada", "grace"]}
    assert client_after.lifespan.state["users"] == ["ada", "grace"]
