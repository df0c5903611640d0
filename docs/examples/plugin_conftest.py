"""How-to: the app from your own fixtures (saved as conftest.py).

The plugin runs the lifespan of whatever ``asgi_app`` returns; the fixtures
it depends on are set up before the app's startup.
"""

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from settings_app import create_app, current_user


@pytest.fixture
def database_url() -> str:
    return "sqlite://test"


@pytest.fixture
def asgi_app(database_url: str) -> Iterator[FastAPI]:
    app = create_app(database_url)
    app.dependency_overrides[current_user] = lambda: "a test user"
    yield app
    app.dependency_overrides.clear()
