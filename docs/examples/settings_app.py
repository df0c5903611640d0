"""How-to: a project's app, made by a factory from its settings.

It stands for your project's ``myproject/main.py``: the database URL comes
from the settings, and the current user from a FastAPI dependency.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request


def current_user() -> str:
    """The logged-in user (a real app reads a token)."""
    raise LookupError("no user logged in")


def create_app(database_url: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"database": f"connected to {database_url}"}  # a pool, in life

    app = FastAPI(lifespan=lifespan)

    @app.get("/me")
    async def me(request: Request, user: str = Depends(current_user)) -> Any:
        return {"user": user, "database": request.state.database}

    return app
