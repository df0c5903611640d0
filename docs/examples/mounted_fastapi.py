"""How-to: a FastAPI app with a Starlette app and an MCP server mounted in it.

``lifespan_of`` runs the mounted apps' lifespans as part of FastAPI's: the MCP
server's session manager starts, and requests to /admin see the state the
admin app's startup set. Run it: ``python docs/examples/mounted_fastapi.py``.
"""

from contextlib import asynccontextmanager

import httpx
import httpx2
import trio
from fastapi import FastAPI, Request
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer  # mcp 1.x: mcp.server.fastmcp.FastMCP
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from trio_lifespan import lifespan_of, open_lifespan

mcp = MCPServer("tools")


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


# JSON answers and no sessions only so that main() below can call it in
# process; under a server, the defaults work too.
mcp_app = mcp.streamable_http_app(
    streamable_http_path="/", json_response=True, stateless_http=True
)


@asynccontextmanager
async def admin_lifespan(app):  # type: ignore[no-untyped-def]
    print("admin: startup")
    yield {"users": ["ada", "grace"]}
    print("admin: shutdown")


async def users(request):  # type: ignore[no-untyped-def]
    return JSONResponse(request.state.users)


admin = Starlette(routes=[Route("/users", users)], lifespan=admin_lifespan)


@asynccontextmanager
async def lifespan(app):  # type: ignore[no-untyped-def]
    print("main: startup")  # once the mounted apps have started
    yield {"greeting": "hello"}
    print("main: shutdown")  # before they stop


app = FastAPI(lifespan=lifespan_of(mcp_app, admin, lifespan=lifespan))
app.mount("/mcp", mcp_app)
app.mount("/admin", admin)


@app.get("/")
async def root(request: Request) -> str:
    return request.state.greeting


async def main() -> None:
    # What a server (uvicorn, hypercorn) does: run the lifespan, then serve.
    base = "http://127.0.0.1:8000"
    async with open_lifespan(app) as served:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(transport=transport, base_url=base) as http:
            print("GET / ->", (await http.get("/")).json())
            print("GET /admin/users ->", (await http.get("/admin/users")).json())
        mcp_transport = httpx2.ASGITransport(app=served)
        mcp_http = httpx2.AsyncClient(transport=mcp_transport, base_url=base)
        url = f"{base}/mcp/"
        async with Client(streamable_http_client(url, http_client=mcp_http)) as mcp:
            result = await mcp.call_tool("add", {"a": 2, "b": 3})
            print("MCP add(2, 3) ->", result.structured_content)


if __name__ == "__main__":
    trio.run(main)
