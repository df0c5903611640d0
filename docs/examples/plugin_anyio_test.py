"""How-to: the plugin's fixtures under anyio's plugin, on both backends."""

from typing import Any

import pytest

from trio_lifespan import LifespanClient

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_users(lifespan_client: LifespanClient[Any]) -> None:
    response = await lifespan_client.get("/users")
    assert response.json() == {"users": 3}
