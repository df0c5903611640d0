"""ASGI apps and a tiny ASGI client for the tests, on any backend."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from trio_lifespan._types import Message, Receive, Scope, Send

from .backends import Backend

ROOT = Path(__file__).resolve().parent.parent
#: The docs' example files.
EXAMPLES = ROOT / "docs" / "examples"


class Boom(Exception):
    """An app's own error."""


def client(app: object) -> httpx.AsyncClient:
    """httpx's own ASGI transport around ``app``: requests with no lifespan
    of ours (the app given is one ``open_lifespan`` yielded)."""
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def load_example(name: str) -> ModuleType:
    """Import ``docs/examples/<name>.py`` as a module of that name."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_python(*args: str) -> str:
    """Run this Python with warnings as errors, in the repository; its stdout.

    Fails the test, with the child's stderr, if it does not exit with 0.
    """
    done = subprocess.run(
        [sys.executable, "-W", "error", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class GoodApp:
    """A well-behaved lifespan app that records everything that happens to it."""

    def __init__(self, backend: Backend, *, startup_delay: float = 0.0) -> None:
        self.backend = backend
        self.startup_delay = startup_delay
        self.events: list[str] = []
        self.lifespan_scope: dict[str, Any] | None = None
        self.request_scopes: list[Scope] = []
        self.shared = ["a value shared by every request"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            self.request_scopes.append(scope)
            self.events.append(f"request {scope['type']}")
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 200})
                await send({"type": "http.response.body", "body": b"ok"})
            return
        self.lifespan_scope = {**scope, "state": dict(scope["state"])}
        message = await receive()
        self.events.append(message["type"])
        await self.backend.sleep(self.startup_delay)
        scope["state"]["shared"] = self.shared
        scope["state"]["name"] = "good"
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        self.events.append(message["type"])
        self.events.append("cleanup")
        await send({"type": "lifespan.shutdown.complete"})
        self.events.append("returned")


async def http_request(app: Any, path: str = "/", kind: str = "http") -> Scope:
    """Send one request through ``app``; returns the scope the app was given."""
    scope: Scope = {"type": kind, "path": path, "headers": []}
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": f"{kind}.request" if kind == "http" else f"{kind}.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return scope
