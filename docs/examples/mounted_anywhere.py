"""How-to: with_lifespans, for a plain ASGI dispatcher in front of two apps.

The dispatcher has no lifespan of its own and routes by path prefix; the
server talks lifespan to the app with_lifespans returns, which starts both
apps and gives every request their merged state. Here on asyncio.
"""

import asyncio
from contextlib import asynccontextmanager

import httpx
from litestar import Litestar, get
from litestar.datastructures import State
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from trio_lifespan import open_lifespan, with_lifespans


@asynccontextmanager
async def users_lifespan(app):  # type: ignore[no-untyped-def]
    print("users: startup")
    yield {"users": ["ada", "grace"]}  # in the state every request gets
    print("users: shutdown")


async def list_users(request):  # type: ignore[no-untyped-def]
    return JSONResponse(request.state.users)


users = Starlette(routes=[Route("/", list_users)], lifespan=users_lifespan)


@asynccontextmanager
async def billing_lifespan(app: Litestar):  # type: ignore[no-untyped-def]
    print("billing: startup")
    app.state.currency = "EUR"  # Litestar keeps its own on app.state
    yield
    print("billing: shutdown")


@get("/", sync_to_thread=False)
def currency(state: State) -> str:
    return str(state.currency)


billing = Litestar(route_handlers=[currency], lifespan=[billing_lifespan])
MOUNTS = {"/users": users, "/billing": billing}


async def dispatcher(scope, receive, send):  # type: ignore[no-untyped-def]
    """A plain router: no lifespan of its own (it returns at once)."""
    if scope["type"] == "lifespan":
        return
    for prefix, mounted in MOUNTS.items():
        if scope["path"].startswith(prefix):
            scope = {**scope, "path": scope["path"][len(prefix) :] or "/"}
            await mounted(scope, receive, send)
            return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body"})


# allow_unsupported: the dispatcher itself has no lifespan.
app = with_lifespans(dispatcher, users, billing, allow_unsupported=True)


async def main() -> None:
    # What a server (uvicorn, hypercorn) does: run the lifespan, then serve.
    async with open_lifespan(app) as served:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            print("GET /users ->", (await http.get("/users")).json())
            print("GET /billing ->", (await http.get("/billing")).text)


if __name__ == "__main__":
    asyncio.run(main())
