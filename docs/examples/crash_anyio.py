"""anyio's plugin: the lifespan opened in each test, on asyncio and on trio.

anyio's plugin runs fixtures and tests in one task, which a fixture that
yields inside ``open_lifespan`` cannot survive when the app crashes (see the
how-to). Opening the lifespan in the test works on both backends.
``test_the_crash`` fails on purpose: it shows what a crash looks like.
"""

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import httpx
import pytest
from crashing_app import app

from trio_lifespan import open_lifespan

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def running_app() -> AsyncGenerator[httpx.AsyncClient]:
    async with open_lifespan(app) as asgi_app:
        transport = httpx.ASGITransport(app=asgi_app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://app"
        ) as client:
            yield client


async def test_before_the_crash() -> None:
    async with running_app() as client:
        assert (await client.get("/users")).json() == {"users": 3}


async def test_the_crash() -> None:
    async with running_app() as client:
        await client.get("/break-the-pool")  # the pool's task dies, and the block


async def test_after_the_crash() -> None:
    async with running_app() as client:
        assert (await client.get("/users")).json() == {"users": 3}
