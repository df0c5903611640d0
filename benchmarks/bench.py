"""Side-by-side benchmarks: trio_lifespan, asgi-lifespan 2.x, and a floor.

Run ``python benchmarks/bench.py`` (``--quick`` for a short smoke run, as CI
does). Every measurement is taken in one process, with the contenders'
rounds interleaved (A B C A B C ...) so that drift in the machine hits them
alike; the table shows medians and ratios from the same run.

The floor is the least a lifespan driver can do: one task, two channels (or
queues), a state copy per request, no checks at all. It is written here.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from asgi_lifespan import LifespanManager

from trio_lifespan import open_lifespan, open_lifespans

sys.path.insert(0, str(Path(__file__).parent))
from client import client_rows

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

Scope = dict[str, Any]
Factory = Callable[[Any], AbstractAsyncContextManager[Any]]


# The app every contender drives -------------------------------------------------


async def trivial_app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["db"] = "pool"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    # A request: nothing to do, so that the wrapper's own cost shows.


# The floor, on each library -----------------------------------------------------


@asynccontextmanager
async def floor_trio(app: Any) -> AsyncGenerator[Any]:
    state: dict[str, Any] = {}
    to_app, app_inbox = trio.open_memory_channel[Any](1)
    from_app, our_inbox = trio.open_memory_channel[Any](1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            app, {"type": "lifespan", "state": state}, app_inbox.receive, from_app.send
        )
        await to_app.send({"type": "lifespan.startup"})
        await our_inbox.receive()

        async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
            scope["state"] = state.copy()
            await app(scope, receive, send)

        yield wrapped
        await to_app.send({"type": "lifespan.shutdown"})
        await our_inbox.receive()


@asynccontextmanager
async def floor_asyncio(app: Any) -> AsyncGenerator[Any]:
    state: dict[str, Any] = {}
    to_app: asyncio.Queue[Any] = asyncio.Queue(1)
    from_app: asyncio.Queue[Any] = asyncio.Queue(1)
    task = asyncio.get_running_loop().create_task(
        app({"type": "lifespan", "state": state}, to_app.get, from_app.put)
    )
    await to_app.put({"type": "lifespan.startup"})
    await from_app.get()

    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        scope["state"] = state.copy()
        await app(scope, receive, send)

    yield wrapped
    await to_app.put({"type": "lifespan.shutdown"})
    await from_app.get()
    await task


def contenders(library: str) -> dict[str, Factory]:
    @asynccontextmanager
    async def incumbent(app: Any) -> AsyncGenerator[Any]:
        async with LifespanManager(app) as manager:
            yield manager.app

    return {
        "floor": floor_trio if library == "trio" else floor_asyncio,
        "trio_lifespan": open_lifespan,
        "asgi_lifespan": incumbent,
    }


# Measurements -------------------------------------------------------------------


async def cycle_seconds(factory: Factory, cycles: int) -> float:
    """Seconds per enter/exit cycle."""
    began = time.perf_counter()
    for _ in range(cycles):
        async with factory(trivial_app):
            pass
    return (time.perf_counter() - began) / cycles


async def request_overhead(factory: Factory, calls: int) -> float:
    """Seconds a request through the wrapped app costs over a direct call.

    The two are timed in alternating blocks, so drift during the run hits
    both sides of the difference alike.
    """

    async def receive() -> Any:
        return {"type": "http.request"}

    async def send(message: Any) -> None:
        pass

    block = 500
    through = direct = 0.0
    async with factory(trivial_app) as wrapped:
        for _ in range(max(1, calls // block)):
            began = time.perf_counter()
            for _ in range(block):
                await wrapped({"type": "http"}, receive, send)
            middle = time.perf_counter()
            for _ in range(block):
                await trivial_app({"type": "http"}, receive, send)
            through += middle - began
            direct += time.perf_counter() - middle
    return (through - direct) / (max(1, calls // block) * block)


async def per_app_seconds(factory: Factory, count: int) -> float:
    """Seconds per app to start ``count`` lifespans, hold them, and stop them."""
    began = time.perf_counter()
    async with AsyncExitStack() as stack:
        for _ in range(count):
            await stack.enter_async_context(factory(trivial_app))
    return (time.perf_counter() - began) / count


class _AppFailed(Exception):
    """What the failing app raises."""


async def failing_app(scope: Scope, receive: Any, send: Any) -> None:
    await receive()
    raise _AppFailed("startup failed")


async def failing_group_seconds(count: int, *, collector: bool = False) -> float:
    """Seconds per app for ``open_lifespans`` of ``count`` apps that all fail.

    Ours only: the incumbent has no group. Each failure stops the rest, so a
    group that walked every app on every failure would be quadratic. Timed
    with Python's cyclic collector paused unless ``collector``: the group
    hands back every app's exception, traceback and all, and CPython's
    collector walks that growing heap again and again, which grows faster
    than the number of apps for any code that keeps them (gc off: flat).
    """
    if not collector:
        gc.disable()
    began = time.perf_counter()
    try:
        async with open_lifespans(*[failing_app] * count):
            pass
    except BaseExceptionGroup:
        pass
    finally:
        gc.enable()
    return (time.perf_counter() - began) / count


def run_on(library: str, fn: Callable[[], Coroutine[Any, Any, float]]) -> float:
    # Every run starts from an empty collector, so that no contender pays
    # for garbage the one before it left behind.
    gc.collect()
    if library == "trio":
        return trio.run(fn)
    return asyncio.run(fn())


Measure = Callable[[Factory], Callable[[], Coroutine[Any, Any, float]]]


def interleaved(library: str, rounds: int, measure: Measure) -> dict[str, float]:
    """Median of ``rounds`` interleaved measurements for each contender."""
    found: dict[str, list[float]] = {name: [] for name in contenders(library)}
    for _ in range(rounds):
        for name, factory in contenders(library).items():
            call = measure(factory)
            found[name].append(run_on(library, call))
    return {name: statistics.median(values) for name, values in found.items()}


def import_seconds(module: str, runs: int) -> float:
    """Median import time of ``module`` for an asyncio user, fresh processes.

    A first run writes the module's bytecode caches even where the machine
    sets PYTHONDONTWRITEBYTECODE; otherwise an editable checkout would be
    compiled on every run while installed packages load from their caches.
    """
    command = [
        sys.executable,
        "-X",
        "importtime",
        "-c",
        f"import asyncio; import {module}",
    ]
    warm = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(command, capture_output=True, check=True, env=warm)
    times: list[float] = []
    for _ in range(runs):
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        for line in str(done.stderr).splitlines():
            parts = [part.strip() for part in line.split("|")]
            if len(parts) == 3 and parts[2] == module:
                times.append(int(parts[1]) / 1e6)
    return statistics.median(times)


# A pytest session per test: the plugin's fixture, or a hand-written one ---------

SESSION_APP = """
import contextlib

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"ready": "ok"}


async def home(request):
    return PlainTextResponse(request.state.ready)


app = Starlette(routes=[Route("/", home)], lifespan=lifespan)
"""
# What a project writes without the plugin: asgi-lifespan, then httpx.
HAND_WRITTEN = """
import httpx
import pytest
from asgi_lifespan import LifespanManager

from bench_app import app


@pytest.fixture
async def lifespan_client():
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as client:
            yield client
"""
SESSION_INI = (
    "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
)


def write_session(folder: Path, tests: int, *, plugin: bool) -> None:
    """A project of ``tests`` tests, each one GET through ``lifespan_client``:
    the plugin's (``plugin``), or the hand-written fixture above."""
    folder.mkdir()
    (folder / "bench_app.py").write_text(SESSION_APP)
    (folder / "conftest.py").write_text("" if plugin else HAND_WRITTEN)
    (folder / "pytest.ini").write_text(
        SESSION_INI + ("asgi_app = bench_app:app\n" if plugin else "")
    )
    (folder / "test_many.py").write_text(
        "".join(
            f"async def test_{n}(lifespan_client):\n"
            "    assert (await lifespan_client.get('/')).text == 'ok'\n"
            for n in range(tests)
        )
    )


def session_seconds(folder: Path, *, without_httpx_ws: bool) -> float:
    """Wall time of one whole pytest session in ``folder``, in a new process
    (pytest-asyncio and our plugin loaded in both projects, as where
    trio-lifespan is installed; in one of them it is inert)."""
    blocked = "import sys; sys.modules['httpx_ws'] = None; " if without_httpx_ws else ""
    command = [
        sys.executable,
        "-c",
        blocked + "import pytest; raise SystemExit(pytest.main())",
        *("-q", "-p", "no:cacheprovider", "-p", "asyncio"),
        *("-p", "trio_lifespan._pytest_plugin"),
    ]
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    began = time.perf_counter()
    subprocess.run(command, cwd=folder, env=env, check=True, capture_output=True)
    return time.perf_counter() - began


def plugin_sessions(tests: int, rounds: int) -> dict[str, float]:
    """Median session times, interleaved: the plugin with httpx-ws installed
    (its transport is what open_client uses then), without it, and the
    hand-written fixture."""
    found: dict[str, list[float]] = {
        "plugin": [],
        "plugin, no httpx-ws": [],
        "hand": [],
    }
    with tempfile.TemporaryDirectory() as root:
        ours, theirs = Path(root) / "ours", Path(root) / "theirs"
        write_session(ours, tests, plugin=True)
        write_session(theirs, tests, plugin=False)
        for _ in range(rounds):
            found["plugin"].append(session_seconds(ours, without_httpx_ws=False))
            found["plugin, no httpx-ws"].append(
                session_seconds(ours, without_httpx_ws=True)
            )
            found["hand"].append(session_seconds(theirs, without_httpx_ws=False))
    return {name: statistics.median(values) for name, values in found.items()}


# The report ---------------------------------------------------------------------


def row(label: str, values: dict[str, float], unit: float, suffix: str) -> str:
    floor = values["floor"]
    cells = [f"{values[name] / unit:10.1f} {suffix}" for name in values]
    ratios = [
        f"{values['trio_lifespan'] / floor:5.2f}x",
        f"{values['asgi_lifespan'] / floor:5.2f}x",
    ]
    return f"| {label} | " + " | ".join(cells + ratios) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description="Side-by-side lifespan benchmarks.")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (CI)")
    args = parser.parse_args()
    rounds, cycles, calls, imports = (
        (3, 50, 2_000, 3) if args.quick else (9, 1_000, 50_000, 15)
    )
    counts = (1, 10, 100) if args.quick else (1, 10, 100, 1_000)
    # Both sizes large enough that Python's collector runs in steady state
    # (below a few hundred apps it never reaches its oldest generation, and
    # the small size would look cheaper for that alone).
    failing_counts = (100, 1_000) if args.quick else (1_000, 10_000)

    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, trio {trio.__version__}, {platform.platform()}"
    )
    print(f"rounds: {rounds} interleaved; medians; ratios are against the floor\n")
    columns = "floor | trio_lifespan | asgi_lifespan | ours / floor | theirs / floor"
    print(f"| measurement | {columns} |")
    print("| --- | --- | --- | --- | --- | --- |")
    targets: list[str] = []
    for library in ("trio", "asyncio"):
        cycle = interleaved(library, rounds, lambda f: lambda: cycle_seconds(f, cycles))
        print(row(f"{library}: enter/exit cycle", cycle, 1e-6, "µs"))
        limit = 1.2 if library == "trio" else 1.5
        targets.append(
            f"{library} cycle within {limit}x of the floor: "
            f"{cycle['trio_lifespan'] / cycle['floor']:.2f}x, below asgi-lifespan: "
            f"{cycle['trio_lifespan'] < cycle['asgi_lifespan']}"
        )
        overhead = interleaved(
            library, rounds, lambda f: lambda: request_overhead(f, calls)
        )
        print(row(f"{library}: request overhead", overhead, 1e-9, "ns"))
        targets.append(
            f"{library} request overhead within 1.2x of the floor: "
            f"{overhead['trio_lifespan'] / overhead['floor']:.2f}x"
        )
        per_app: dict[int, dict[str, float]] = {}
        for count in counts:

            def measure(
                factory: Factory, n: int = count
            ) -> Callable[[], Coroutine[Any, Any, float]]:
                return lambda: per_app_seconds(factory, n)

            per_app[count] = interleaved(library, rounds, measure)
            print(row(f"{library}: per app, {count} open", per_app[count], 1e-6, "µs"))
        largest = counts[-1]
        targets.append(
            f"{library} per-app cost at {largest} open within 1.2x of that at 10: "
            f"{per_app[largest]['trio_lifespan'] / per_app[10]['trio_lifespan']:.2f}x"
        )
        failing = {
            count: statistics.median(
                run_on(library, functools.partial(failing_group_seconds, count))
                for _ in range(3)
            )
            for count in failing_counts
        }
        small, large = failing_counts
        print(
            f"| {library}: per app, {small} / {large} failing together "
            f"| - | {failing[small] * 1e6:.1f} / {failing[large] * 1e6:.1f} µs "
            "| - | - | - |"
        )
        collected = run_on(
            library,
            functools.partial(failing_group_seconds, large, collector=True),
        )
        print(
            f"| {library}: per app, {large} failing together, collector on "
            f"| - | {collected * 1e6:.1f} µs | - | - | - |"
        )
        targets.append(
            f"{library} per-app cost of {large} apps failing together within 1.5x "
            f"of {small} (linear): {failing[large] / failing[small]:.2f}x"
        )
    ours = import_seconds("trio_lifespan", imports)
    theirs = import_seconds("asgi_lifespan", imports)
    print(
        f"\nimport for an asyncio user: trio_lifespan {ours * 1e3:.2f} ms, "
        f"asgi_lifespan {theirs * 1e3:.2f} ms ({ours / theirs:.2f}x)"
    )
    targets.append(
        f"asyncio users' import within 1.5x of asgi-lifespan's: {ours / theirs:.2f}x"
    )
    tests, session_rounds = (50, 2) if args.quick else (200, 7)
    sessions = plugin_sessions(tests, session_rounds)
    hand = sessions["hand"]
    print(
        f"\npytest session of {tests} tests, each a GET through lifespan_client "
        "(pytest-asyncio, a Starlette app, a new process each):"
    )
    for name, seconds in sessions.items():
        print(
            f"- {name}: {seconds * 1e3:.0f} ms ({seconds / hand:.2f}x the hand-written)"
        )
    targets.append(
        f"a session through the plugin within 1.05x of the hand-written fixture: "
        f"{sessions['plugin'] / hand:.2f}x "
        f"({sessions['plugin, no httpx-ws'] / hand:.2f}x without httpx-ws)"
    )
    targets += client_rows(args.quick)
    print("\ntargets:")
    for line in targets:
        print(f"- {line}")


if __name__ == "__main__":
    main()
