"""pytest-asyncio: one lifespan for the module, and an app that crashes.

The fixture and the tests run on one event loop that lives as long as the
module. ``test_the_crash`` and ``test_after_the_crash`` fail on purpose: they
show what a crash looks like.
"""

from collections.abc import AsyncGenerator

import httpx
import pytest
import pytest_asyncio
from crashing_app import app

from trio_lifespan import open_lifespan

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
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
    await client.get("/users")  # raises LifespanUnavailable too
