"""How-to: an MCP server tested with the mcp package's own client, in one
process: its streamable HTTP transport over open_client's httpx2 client."""

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette

from trio_lifespan import open_client


def make_app() -> Starlette:
    """The server's ASGI app: one per lifespan (its session manager runs once)."""
    server = MCPServer("calculator")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    return server.streamable_http_app()


# The mcp client stops reading its streams half-way, and trio warns of the
# httpx2 iterators the garbage collector finishes (see the streaming how-to).
pytestmark = pytest.mark.filterwarnings(
    "ignore:Async generator 'httpx2\\.:ResourceWarning",
    "ignore:Exception ignored in. <async_generator object:"
    "pytest.PytestUnraisableExceptionWarning",
)

#: The server checks the Host header (DNS rebinding protection): a local one.
URL = "http://localhost:8000"


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_the_tool_is_listed_and_called() -> None:
    async with (
        open_client(make_app(), httpx="httpx2", base_url=URL) as client,
        streamable_http_client(f"{URL}/mcp", http_client=client) as streams,  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
        ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        assert [tool.name for tool in (await session.list_tools()).tools] == ["add"]
        result = await session.call_tool("add", {"a": 2, "b": 3})
    assert result.content[0].text == "5"  # type: ignore[union-attr]
