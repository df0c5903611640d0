"""How-to: the plugin's fixtures. No conftest.py: pytest.ini names the app."""

from typing import Any

from trio_lifespan import LifespanApp, LifespanClient


async def test_users(lifespan_client: LifespanClient[Any]) -> None:
    response = await lifespan_client.get("/users")  # the startup has run
    assert response.json() == {"users": 3}


async def test_the_state(lifespan_app: LifespanApp[Any]) -> None:
    assert lifespan_app.state["users"] == 3


async def test_one_lifespan_for_both(
    lifespan_app: LifespanApp[Any], lifespan_client: LifespanClient[Any]
) -> None:
    assert lifespan_client.lifespan is lifespan_app
