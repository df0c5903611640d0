"""How-to: tests of an app built from fixtures (conftest.py above)."""

from typing import Any

import pytest

from trio_lifespan import LifespanClient


async def test_me(lifespan_client: LifespanClient[Any]) -> None:
    response = await lifespan_client.get("/me")
    assert response.json() == {
        "user": "a test user",
        "database": "connected to sqlite://test",
    }


class TestAnotherDatabase:
    @pytest.fixture
    def database_url(self) -> str:  # overrides conftest.py's, for this class
        return "sqlite://other"

    async def test_me(self, lifespan_client: LifespanClient[Any]) -> None:
        response = await lifespan_client.get("/me")
        assert response.json()["database"] == "connected to sqlite://other"
