"""Mounted apps under real servers, and an MCP server mounted in FastAPI.

Each server runs as a subprocess serving ``tests.mounted_apps`` on a socket
bound here to 127.0.0.1, port 0 (passed down by its file descriptor, so no
two servers collide); the tests talk to it over loopback, stop it with SIGINT
as a user would, and read its output. Every wait is bounded. A server takes
about a second and a half to start, most of it importing FastAPI, Litestar
and mcp, so all twelve (three servers, four apps) are started at once, for
the module.

The MCP tests in process run the MCP client against the app that
``open_lifespan`` yields, over httpx's ASGI transport.
"""

# pyright: reportMissingTypeStubs=false
from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from fastapi import FastAPI
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer

from trio_lifespan import lifespan_of, open_lifespan

from .mounted_apps import FAILURE

# Real server processes: run once in CI, not per Python version (setup.cfg).
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
GUARD = 30  # seconds: far above what any step takes

SERVERS = {
    "uvicorn": ["-m", "uvicorn", "--lifespan", "on", "--fd", "{fd}"],
    "hypercorn-trio": ["-m", "hypercorn", "-k", "trio", "--bind", "fd://{fd}"],
    "hypercorn-asyncio": ["-m", "hypercorn", "-k", "asyncio", "--bind", "fd://{fd}"],
}
HOOKS = ("starlette: ", "litestar: ", "parent: ")
#: The apps served, each under every server: the sub-apps' lifespans run by
#: lifespan_of, or by with_lifespans; and the same with a failing sub-app.
APPS = ("app", "wrapped_app")
FAILING_APPS = ("failing_app", "failing_wrapped_app")


class Running:
    """A server process serving on ``url``; its output goes to ``out`` (the
    apps' hooks print there) and ``err`` (the server logs there)."""

    def __init__(
        self, process: subprocess.Popen[bytes], url: str, out: Path, err: Path
    ) -> None:
        self.process = process
        self.url = url
        self.out = out
        self.err = err

    def stop(self) -> int:
        """Stop it as Ctrl-C would; its exit status."""
        self.process.send_signal(signal.SIGINT)
        return self.wait()

    def wait(self) -> int:
        return self.process.wait(timeout=GUARD)

    def output(self) -> str:
        """Everything it wrote."""
        return self.out.read_text() + self.err.read_text()

    def hooks(self) -> list[str]:
        """The lines the apps' lifespan hooks printed, in order."""
        lines = self.out.read_text().splitlines()
        return [line for line in lines if line.startswith(HOOKS)]


@contextlib.contextmanager
def serve(server: str, app: str, tmp_path: Path) -> Generator[Running]:
    """Run ``server`` on ``tests.mounted_apps:<app>`` (or ``app``, if it names
    its module); kill it if still up at the end."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    fd = listener.fileno()
    out, err = tmp_path / f"{server}.out", tmp_path / f"{server}.err"
    args = [part.format(fd=fd) for part in SERVERS[server]]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, *args, app if ":" in app else f"tests.mounted_apps:{app}"],
            pass_fds=(fd,),
            stdout=stdout,
            stderr=stderr,
            cwd=ROOT,
        )
    listener.close()  # the server has its own copy
    try:
        yield Running(process, f"http://127.0.0.1:{port}", out, err)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=GUARD)


async def add_through_mcp(client: Client) -> object:
    with anyio.fail_after(GUARD):
        async with client:
            result = await client.call_tool("add", {"a": 2, "b": 3})
    assert not result.is_error
    return result.structured_content


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[tuple[str, str], Running]]:
    """Every server, on the app and on the failing app, started at once."""
    with contextlib.ExitStack() as stack:
        yield {
            (server, app): stack.enter_context(
                serve(server, app, tmp_path_factory.mktemp(f"{server}-{app}"))
            )
            for server in SERVERS
            for app in (*APPS, *FAILING_APPS)
        }


@pytest.mark.parametrize("app", APPS)
@pytest.mark.parametrize("server", list(SERVERS))
def test_every_mount_sees_its_state_and_the_shutdown_stops_every_sub_app(
    server: str, app: str, servers: dict[tuple[str, str], Running]
) -> None:
    running = servers[server, app]
    # The socket listens already: the first request waits for the startup.
    with httpx.Client(base_url=running.url, timeout=GUARD) as http:
        parent = http.get("/state")
        starlette = http.get("/starlette/state")
        litestar = http.get("/litestar/state")
    # An MCP client over loopback: the session manager our lifespan started.
    added = anyio.run(add_through_mcp, Client(f"{running.url}/mcp/"))
    started = running.hooks()
    status = running.stop()
    assert status == 0, running.output()
    assert parent.json() == "set by the parent"
    assert starlette.json() == "set by the starlette sub-app"
    assert litestar.text == "set by the litestar sub-app"
    assert added == {"result": 5}
    # The sub-apps start together, the parent's own lifespan once they have.
    assert sorted(started[:2]) == ["litestar: startup", "starlette: startup"]
    assert started[2:] == ["parent: startup"]
    # The server's shutdown: the parent's first, then every sub-app's.
    stopped = running.hooks()[3:]
    assert stopped[0] == "parent: shutdown"
    assert sorted(stopped[1:]) == ["litestar: shutdown", "starlette: shutdown"]


@pytest.mark.parametrize("app", FAILING_APPS)
@pytest.mark.parametrize("server", list(SERVERS))
def test_a_failing_sub_app_startup_makes_the_server_refuse_to_start(
    server: str, app: str, servers: dict[tuple[str, str], Running]
) -> None:
    running = servers[server, app]
    status = running.wait()  # it exits by itself
    with pytest.raises(httpx.ConnectError), httpx.Client(timeout=GUARD) as http:
        http.get(running.url)
    output = running.output()
    # uvicorn exits with its startup-failure status. hypercorn's worker dies
    # with the error, but its main process exits with 0: after a worker has
    # failed it joins the (by then empty) list of workers again, which
    # yields 0 (hypercorn 0.18, run.py). Not ours to pin.
    assert status == 3 if server == "uvicorn" else status in (0, 1), output
    assert f"RuntimeError: {FAILURE}" in output
    hooks = running.hooks()
    assert "parent: startup" not in hooks
    # The Starlette sub-app had started: it was shut down.
    assert hooks.count("starlette: startup") == hooks.count("starlette: shutdown") == 1


# MCP in process ----------------------------------------------------------------------


def mcp_parent(*, run_lifespans: bool, path: str | None = "/") -> FastAPI:
    """FastAPI with an MCP server mounted at /mcp, with or without lifespan_of;
    its endpoint at ``path`` under the mount (``None``: mcp's default)."""
    mcp = MCPServer("in-process")

    @mcp.tool()
    def add(a: int, b: int) -> int:  # pyright: ignore[reportUnusedFunction]
        """Add two numbers."""
        return a + b

    # JSON answers, no sessions: httpx's ASGI transport reads whole responses.
    if path is None:
        mcp_app = mcp.streamable_http_app(json_response=True, stateless_http=True)
    else:
        mcp_app = mcp.streamable_http_app(
            streamable_http_path=path, json_response=True, stateless_http=True
        )
    app = FastAPI(lifespan=lifespan_of(mcp_app) if run_lifespans else None)
    app.mount("/mcp", mcp_app)
    return app


def in_process_client(app: object, path: str = "/mcp/") -> Client:
    base = "http://127.0.0.1:8000"  # a host the MCP app's DNS-rebinding guard allows
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=base)  # type: ignore[arg-type]
    return Client(streamable_http_client(f"{base}{path}", http_client=http))


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio", "asyncio"])
async def test_an_mcp_server_mounted_in_fastapi_answers_in_process(
    anyio_backend: str,
) -> None:
    with anyio.fail_after(GUARD):
        async with open_lifespan(mcp_parent(run_lifespans=True)) as app:
            assert await add_through_mcp(in_process_client(app)) == {"result": 5}


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_without_its_lifespan_a_mounted_mcp_server_fails(
    anyio_backend: str,
) -> None:
    with anyio.fail_after(GUARD):
        async with open_lifespan(mcp_parent(run_lifespans=False)) as app:
            with pytest.raises(Exception) as caught:  # noqa: PT011 - any group
                await add_through_mcp(in_process_client(app))
    assert "Task group is not initialized. Make sure to use run()." in repr(
        caught.value
    )


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_by_default_the_mcp_endpoint_is_mcp_under_the_mount(
    anyio_backend: str,
) -> None:
    with anyio.fail_after(GUARD):
        parent = mcp_parent(run_lifespans=True, path=None)
        async with open_lifespan(parent) as app:
            client = in_process_client(app, "/mcp/mcp")
            assert await add_through_mcp(client) == {"result": 5}


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_mcp_session_manager_runs_once_per_instance(
    anyio_backend: str,
) -> None:
    parent = mcp_parent(run_lifespans=True)
    with anyio.fail_after(GUARD):
        async with open_lifespan(parent):
            pass
        with pytest.raises(RuntimeError, match=r"can only be called once per instance"):
            async with open_lifespan(parent):
                pass  # pragma: no cover


# trio-lifespan check builds each request's scope as a server would --------

TARGETS = (
    "/caf%C3%A9",
    "/items/a%20b?x=1&y=%20z",
    "/a+b",
    "/%2F",
    "/q?name=caf%C3%A9",
    "/plain?a=b&c",
)


def request_line_scope(url: str, target: str) -> dict[str, str]:
    """What a server at ``url`` put in the scope for ``GET target``, sent as
    is on the request line (httpx would normalise it)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=GUARD) as conn:
        conn.sendall(
            f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer
    echoed: dict[str, str] = json.loads(body)
    return echoed


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn-asyncio"])
def test_the_check_builds_paths_as_servers_do(server: str, tmp_path: Path) -> None:
    from trio_lifespan._cli._check import request_target  # noqa: PLC0415

    with serve(server, "tests.cli_apps:scope_echo", tmp_path) as running:
        for target in TARGETS:
            theirs = request_line_scope(running.url, target)
            path, raw_path, query = request_target(target)
            ours = {
                "path": path,
                "raw_path": raw_path.decode("latin-1"),
                "query_string": query.decode("latin-1"),
            }
            assert ours == theirs, target
        running.stop()
