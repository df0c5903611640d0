"""pytest-trio: the lifespan in a fixture, and an app that crashes in a test.

``test_the_crash`` fails on purpose: it shows what a crash looks like.
"""

from collections.abc import AsyncGenerator

import httpx
import pytest
from crashing_app import app

from trio_lifespan import open_lifespan

pytestmark = pytest.mark.trio


@pytest.fixture  # pytest-trio runs async fixtures of function scope only
async def client() -> AsyncGenerator[httpx.AsyncClient]:
    async with open_lifespan(app) as asgi_app:
        transport = httpx.ASGITransport(app=asgi_app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://app"
        ) as client:
            yield client


async def test_before_the_crash(client: httpx.AsyncClient) -> None:
    assert (await client.get("/users")).json() == {"users": 3}


async def test_the_crash(client: httpx.AsyncClient) -> None:
    await client.get("/break-the-pool")  # the pool's task dies
    await client.get("/users")  # raises LifespanUnavailable


async def test_after_the_crash(client: httpx.AsyncClient) -> None:
    assert (await client.get("/users")).json() == {"users": 3}
