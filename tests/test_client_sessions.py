"""``open_client`` in the client fixtures projects write (real pytest sessions).

The commonest fixture of all::

    @pytest_asyncio.fixture
    async def client():
        async with open_client(app) as client:
            yield client

pytest-asyncio runs such a fixture's setup and its teardown in different
tasks (and the test in a third). With httpx's own ASGI transport and httpx-ws
that failed at the teardown, with anyio's "Attempted to exit cancel scope in
a different task". ``open_client``'s transport ties nothing to the task that
entered the client, so the fixture works in every layout: each test here runs
one inner session (pytester) of a Starlette app (an HTTP route reading the
lifespan state, an endless server-sent-events route, a websocket echo) under
one plugin and one loop layout, with the installed versions of each (tox's
plugin-* environments' versions too, with tests/compat.ini).
Each test of the session talks HTTP, reads a few events off the endless
stream, and talks to the websocket with ``client.websocket_connect`` and with
httpx-ws's ``aconnect_ws``; one leaves a stream and a websocket open for the
fixture's teardown to end. Each session must pass whole, warnings as errors,
every lifespan started and shut down with nothing of the app still running.
"""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from .test_plugin_layouts import (
    ASYNCIO,
    ASYNCIO_VERSION,
    PLUGIN,
    SESSION_OPTIONS,
)
from .test_sessions import (
    LIMIT,
    Raised,
    _only_the_plugins_named,  # pyright: ignore[reportUnusedImport]  # noqa: F401 - autouse
)

pytest_plugins = ["pytester"]

# Loaded before any inner session: pytester unloads what a session loads,
# and each session would import them again.
for _module in (
    "anyio",
    "httpx_ws",
    "sniffio",
    "starlette.applications",
    "starlette.responses",
    "starlette.routing",
    "trio_lifespan._httpx",
    "trio_lifespan._wsproto",
):
    importlib.import_module(_module)

# Async generators left to the garbage collector, of which trio warns:
# httpx's own iterators (aiter_lines over aiter_text over aiter_bytes...)
# leave the inner ones when a test stops reading early (as
# tests/test_transport.py says), and Starlette's StreamingResponse leaves the
# app's endless generator when the client goes, under a server too. Neither
# is the client's (whose stream is an iterator, closed with the response).
GENERATORS = (
    *("-W", "ignore:Async generator 'httpx.:ResourceWarning"),
    *("-W", "ignore:Async generator 'myapp.events.<locals>.endless':ResourceWarning"),
)
TRIO = ("-p", "trio", "-o", "trio_mode=true")
ANYIO = ("-p", "anyio")
STRICT = (*ASYNCIO, "-o", "asyncio_mode=strict")
AUTO = (*ASYNCIO, "-o", "asyncio_mode=auto")

# The app: what its lifespan saw, and what of it is still running.
APP = """
import asyncio
import contextlib
import itertools

import sniffio
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute

import anyio

EVENTS = []
RUNNING = []  # a name for each stream and websocket the app is running
TASKS = []  # the client fixture's: where each setup, then its teardown, ran
LOOP_NUMBERS = itertools.count()


@contextlib.asynccontextmanager
async def lifespan(app):
    EVENTS.append("startup")
    yield {"greeting": "hello"}
    EVENTS.append(f"shutdown, still running: {RUNNING}")


def here():
    # The event loop that runs the caller: "trio", or "asyncio <its number>"
    # (numbered as met: a closed loop's id may be a new one's).
    library = sniffio.current_async_library()
    if library == "asyncio":
        loop = asyncio.get_running_loop()
        if not hasattr(loop, "numbered"):
            loop.numbered = next(LOOP_NUMBERS)
        return f"asyncio {loop.numbered}"
    return library


def task():
    # The caller's task: asyncio's names are unique.
    if sniffio.current_async_library() == "asyncio":
        return asyncio.current_task().get_name()
    return "trio"


async def home(request):
    return PlainTextResponse(request.state.greeting)


async def where(request):
    return PlainTextResponse(here())


class Tracked(StreamingResponse):
    def __init__(self, name, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.name = name

    async def __call__(self, scope, receive, send):
        RUNNING.append(self.name)
        try:
            await super().__call__(scope, receive, send)
        finally:
            RUNNING.remove(self.name)


async def events(request):
    greeting = request.state.greeting

    async def endless():
        n = 0
        while True:
            yield f"data: {greeting} {n}\\n\\n"
            n += 1
            await anyio.sleep(0.01)

    name = "stream " + request.query_params.get("name", "")
    return Tracked(name, endless(), media_type="text/event-stream")


async def echo(websocket):
    name = "websocket " + websocket.query_params.get("name", "")
    RUNNING.append(name)
    try:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(f"{websocket.state.greeting}, {text}")
    finally:
        RUNNING.remove(name)


app = Starlette(
    routes=[
        Route("/", home),
        Route("/where", where),
        Route("/events", events),
        WebSocketRoute("/ws", echo),
    ],
    lifespan=lifespan,
)
"""

# What each test does with the client, whatever the plugin.
CHECKS = """
import contextlib

import anyio
import myapp


async def http(client):
    response = await client.get("/")
    assert response.text == "hello"
    # The app runs on the caller's loop.
    assert (await client.get("/where")).text == myapp.here()


async def stream(client):
    seen = []
    async with client.stream("GET", "/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        async with contextlib.aclosing(response.aiter_lines()) as lines:
            async for line in lines:
                if line:
                    seen.append(line)
                if len(seen) == 3:
                    break
    assert seen == ["data: hello 0", "data: hello 1", "data: hello 2"]
    assert "stream " not in myapp.RUNNING  # (the close waited for it to end)


async def websocket(client):
    async with client.websocket_connect("/ws") as ws:
        await ws.send_text("x")
        assert await ws.receive_text() == "hello, x"
        await ws.send_text("y")
        assert await ws.receive_text() == "hello, y"


async def httpx_ws(client):
    import httpx_ws

    async with httpx_ws.aconnect_ws("/ws", client) as ws:
        await ws.send_text("x")
        assert await ws.receive_text() == "hello, x"
        await ws.send_text("y")
        assert await ws.receive_text() == "hello, y"


async def left_open(client, name):
    # A stream and a websocket that the test does not close: the client's
    # exit, in the fixture's teardown, ends them.
    request = client.build_request("GET", "/events", params={"name": name})
    response = await client.send(request, stream=True)
    async with contextlib.aclosing(response.aiter_lines()) as lines:
        assert await lines.__anext__() == "data: hello 0"
    ws = client.websocket_connect(f"/ws?name={name}")
    await ws.__aenter__()
    await ws.send_text("x")
    assert await ws.receive_text() == "hello, x"
    assert f"stream {name}" in myapp.RUNNING
    assert f"websocket {name}" in myapp.RUNNING
"""

#: Each test of a session, one check each (``{mark}``: what marks it).
TESTS = """
import checks
{header}

{mark}async def test_http(client):
    await checks.http(client)


{mark}async def test_stream(client):
    await checks.stream(client)


{mark}async def test_websocket(client):
    await checks.websocket(client)


{mark}async def test_httpx_ws(client):
    await checks.httpx_ws(client)


{mark}async def test_left_open(client):
    await checks.left_open(client, __name__)
"""
#: How many tests ``TESTS`` has.
PER_MODULE = 5

CLIENT = """
import myapp
import pytest
import pytest_asyncio
from trio_lifespan import open_client
{header}

@{decorator}
async def client():
    myapp.TASKS.append(myapp.task())
    async with open_client(myapp.app) as client:
        yield client
    myapp.TASKS.append(myapp.task())
"""

SHUTDOWN = "shutdown, still running: []"


class Recorder(Raised):
    """What each test phase raised, and what the app's lifespans went through."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.tasks: list[str] = []

    def pytest_sessionfinish(self) -> None:
        # (every fixture is torn down by now; pytester then unloads the app)
        app = sys.modules.get("myapp")
        self.events = list(getattr(app, "EVENTS", []))
        self.tasks = list(getattr(app, "TASKS", []))

    def torn_down_in_other_tasks(self) -> bool:
        """Whether each client fixture's teardown ran in another task than its
        setup (pytest-asyncio's way: the case this file is about)."""
        setups, teardowns = self.tasks[::2], self.tasks[1::2]
        assert len(setups) == len(teardowns) > 0
        return all(s != t for s, t in zip(setups, teardowns, strict=True))


def session(
    pytester: pytest.Pytester, files: dict[str, str], *options: str
) -> tuple[pytest.RunResult, Recorder]:
    """One inner session of ``files`` (path: source) beside the app, warnings
    as errors, no plugin but those ``options`` name (and ours, as an install
    loads it)."""
    files = {"myapp.py": APP, "checks.py": CHECKS, **files}
    for path, source in files.items():
        (pytester.path / path).write_text(textwrap.dedent(source))
    pytester.makeini("[pytest]\n")
    recorder = Recorder()
    result = pytester.runpytest_inprocess(
        *SESSION_OPTIONS, *GENERATORS, *PLUGIN, *options, plugins=[recorder]
    )
    assert result.duration < LIMIT, result.stdout.str()
    output = result.stdout.str() + result.stderr.str()
    assert "different task" not in output, output
    assert "cancel scope" not in output, output
    return result, recorder


def check(
    result: pytest.RunResult, recorder: Recorder, *, passed: int, lifespans: int
) -> None:
    """Every test passed, nothing raised, each lifespan ended well."""
    result.assert_outcomes(passed=passed)
    assert not recorder.phases, result.stdout.str()
    assert recorder.events == ["startup", SHUTDOWN] * lifespans


def a_module(mark: str = "", header: str = "") -> str:
    """A test module of a test for each check (``mark``: what marks each)."""
    return TESTS.format(mark=mark, header=header)


# pytest-asyncio: a client for each test --------------------------------------


@pytest.mark.parametrize(
    ("options", "decorator", "mark"),
    [
        pytest.param(
            STRICT, "pytest_asyncio.fixture", "@pytest.mark.asyncio\n", id="strict"
        ),
        pytest.param(AUTO, "pytest.fixture", "", id="auto"),
    ],
)
def test_pytest_asyncio_a_client_for_each_test(
    pytester: pytest.Pytester, options: tuple[str, ...], decorator: str, mark: str
) -> None:
    # The fixture's setup, the test and the teardown: three tasks.
    files = {
        "conftest.py": CLIENT.format(header="", decorator=decorator),
        "test_it.py": a_module(mark, header="import pytest"),
    }
    result, recorder = session(pytester, files, *options)
    check(result, recorder, passed=PER_MODULE, lifespans=PER_MODULE)
    assert recorder.torn_down_in_other_tasks()


# pytest-asyncio: a client for each module, or one for the session ------------


def on_the_loop_of(scope: str) -> tuple[str, str]:
    """A client fixture of ``scope`` on the loop of ``scope``, its tests on
    that loop too, as the installed pytest-asyncio spells it: (conftest.py,
    the test modules' header)."""
    if ASYNCIO_VERSION >= (0, 24):
        decorator = f"pytest_asyncio.fixture(scope={scope!r}, loop_scope={scope!r})"
        mark = f"pytestmark = pytest.mark.asyncio(loop_scope={scope!r})"
        return CLIENT.format(header="", decorator=decorator), mark
    decorator = f"pytest_asyncio.fixture(scope={scope!r})"
    if ASYNCIO_VERSION >= (0, 23):  # the mark's scope= (since loop_scope=)
        mark = f"pytestmark = pytest.mark.asyncio(scope={scope!r})"
        if scope == "module":
            # 0.23 binds a conftest.py's module-scoped async fixture to the
            # first module's loop ("fixture 'test_two.py::<event_loop>' not
            # found" in the next): the fixture in each module.
            return "", CLIENT.format(header="", decorator=decorator) + mark
        return CLIENT.format(header="", decorator=decorator), mark
    # Before 0.23: the event_loop fixture, widened.
    event_loop = f"""
import asyncio


@pytest.fixture(scope={scope!r})
def event_loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()
"""
    return CLIENT.format(
        header=event_loop, decorator=decorator
    ), "pytestmark = pytest.mark.asyncio"


@pytest.mark.parametrize("scope", ["module", "session"])
def test_pytest_asyncio_a_client_for_a_module_or_the_session(
    pytester: pytest.Pytester, scope: str
) -> None:
    # Two modules: a client each, or one for both. The stream and the
    # websocket that a test leaves open stay open until the fixture's
    # teardown, while the tests after it use the client.
    conftest, header = on_the_loop_of(scope)
    module = a_module(header=f"import pytest\n{header}")
    files = {"conftest.py": conftest, "test_one.py": module, "test_two.py": module}
    result, recorder = session(pytester, files, *STRICT)
    check(
        result,
        recorder,
        passed=2 * PER_MODULE,
        lifespans=2 if scope == "module" else 1,
    )
    assert recorder.torn_down_in_other_tasks()


# fastapi-users' layout: the client on the session's loop, each test on its own

SESSION_CLIENT = """
import myapp
import pytest_asyncio
from trio_lifespan import open_client

FIXTURE_LOOPS = []


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client():
    FIXTURE_LOOPS.append(myapp.here())
    myapp.TASKS.append(myapp.task())
    async with open_client(myapp.app{options}) as client:
        yield client
    myapp.TASKS.append(myapp.task())
"""

ON_THEIR_OWN_LOOPS = """
import pytest

import checks
import myapp
from conftest import FIXTURE_LOOPS

TESTS_LOOPS = []


@pytest.fixture(autouse=True)
def on_a_loop_of_its_own(client):
    yield
    assert len(set(TESTS_LOOPS)) == len(TESTS_LOOPS)  # a loop each
    assert len(FIXTURE_LOOPS) == 1  # one lifespan, on a loop of its own
    assert FIXTURE_LOOPS[0] not in TESTS_LOOPS


@pytest.mark.asyncio
async def test_http(client):
    TESTS_LOOPS.append(myapp.here())
    await checks.http(client)  # (the app on the test's loop)


@pytest.mark.asyncio
async def test_stream(client):
    TESTS_LOOPS.append(myapp.here())
    await checks.stream(client)  # (its app's task ends on this test's loop)


@pytest.mark.asyncio
async def test_websocket(client):
    TESTS_LOOPS.append(myapp.here())
    await checks.websocket(client)


@pytest.mark.asyncio
async def test_httpx_ws(client):
    TESTS_LOOPS.append(myapp.here())
    await checks.httpx_ws(client)
"""


@pytest.mark.skipif(
    ASYNCIO_VERSION < (0, 24), reason="fixtures take a loop of their own from 0.24"
)
def test_pytest_asyncio_the_session_loops_client_in_tests_on_their_own_loops(
    pytester: pytest.Pytester,
) -> None:
    # Requests and websockets run on the test's loop, the lifespan on the
    # session's, which runs only while the fixture does. (No test leaves a
    # stream open: its loop would close under the app's task.)
    files = {
        "conftest.py": SESSION_CLIENT.format(options=""),
        "test_it.py": ON_THEIR_OWN_LOOPS,
    }
    result, recorder = session(pytester, files, *STRICT)
    check(result, recorder, passed=4, lifespans=1)
    assert recorder.torn_down_in_other_tasks()


@pytest.mark.skipif(
    ASYNCIO_VERSION < (0, 24), reason="fixtures take a loop of their own from 0.24"
)
def test_a_stream_closed_in_a_test_on_a_loop_of_its_own_does_not_hold_the_client(
    pytester: pytest.Pytester,
) -> None:
    # The test closes the stream, as it should: the close waits for the
    # endless app to end, on the test's loop, before that loop closes.
    tests = """
        import pytest
        import checks

        @pytest.mark.asyncio
        async def test_stream(client):
            await checks.stream(client)
    """
    files = {
        "conftest.py": SESSION_CLIENT.format(options=", shutdown_timeout=1"),
        "test_it.py": tests,
    }
    result, recorder = session(pytester, files, *STRICT)
    check(result, recorder, passed=1, lifespans=1)
    assert result.duration < 1, "a close or the exit waited out a grace"


@pytest.mark.skipif(
    ASYNCIO_VERSION < (0, 24), reason="fixtures take a loop of their own from 0.24"
)
def test_a_session_opened_on_the_fixtures_loop_and_read_on_the_tests_says_so(
    pytester: pytest.Pytester,
) -> None:
    # A websocket or a stream opened in a fixture on the session's loop, read
    # in a test on its own loop: its handler runs on a loop that is not
    # running; the test is told so at once (not a read timeout blaming the
    # app, nor a hang without one). A websocket or a stream left open by a
    # test on its own loop does not fail the client's exit: its loop has
    # closed (pytest-asyncio before 1.1 leaves its tasks there, unended), and
    # what came of that is no error of the app's.
    conftest = SESSION_CLIENT.format(options=", timeout=None") + textwrap.dedent("""
        @pytest_asyncio.fixture(scope="session", loop_scope="session")
        async def ws(client):
            async with client.websocket_connect("/ws") as ws:
                yield ws


        @pytest_asyncio.fixture(scope="session", loop_scope="session")
        async def stream(client):
            async with client.stream("GET", "/events") as response:
                yield response
        """)
    tests = """
        import pytest

        ELSEWHERE = "was opened on another event loop than the one reading it now"

        @pytest.mark.asyncio
        async def test_websocket(ws):
            await ws.send_text("x")
            with pytest.raises(RuntimeError, match=ELSEWHERE):
                await ws.receive_text()

        @pytest.mark.asyncio
        async def test_stream(stream):
            with pytest.raises(RuntimeError, match=ELSEWHERE):
                async for _ in stream.aiter_raw():
                    pass

        @pytest.mark.asyncio
        async def test_left_open(client):
            ws = client.websocket_connect("/ws")
            await ws.__aenter__()
            await ws.send_text("x")
            assert await ws.receive_text() == "hello, x"

        @pytest.mark.asyncio
        async def test_stream_left_open(client):
            request = client.build_request("GET", "/events")
            response = await client.send(request, stream=True)
            assert await response.aiter_lines().__anext__() == "data: hello 0"
    """
    files = {"conftest.py": conftest, "test_it.py": tests}
    result, recorder = session(pytester, files, *STRICT)
    result.assert_outcomes(passed=4)
    assert not recorder.phases, result.stdout.str()
    assert result.duration < LIMIT


# anyio's plugin and pytest-trio ------------------------------------------------

ANYIO_CLIENT = """
import myapp
import pytest
from trio_lifespan import open_client


@pytest.fixture(scope={scope!r}, params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


@pytest.fixture(scope={scope!r})
async def client(anyio_backend):
    async with open_client(myapp.app) as client:
        yield client
"""


@pytest.mark.parametrize("scope", ["function", "module"])
def test_anyio_on_either_backend(pytester: pytest.Pytester, scope: str) -> None:
    # A client for each test, or for each module on either backend (anyio
    # runs a module-scoped fixture in its runner for the module's backend).
    files = {
        "conftest.py": ANYIO_CLIENT.format(scope=scope),
        "test_it.py": a_module(header="import pytest\npytestmark = pytest.mark.anyio"),
    }
    result, recorder = session(pytester, files, *ANYIO)
    check(
        result,
        recorder,
        passed=2 * PER_MODULE,
        lifespans=2 * PER_MODULE if scope == "function" else 2,
    )


def test_pytest_trio_a_client_for_each_test(pytester: pytest.Pytester) -> None:
    # pytest-trio runs each fixture in a task of its own, the test in another.
    files = {
        "conftest.py": CLIENT.format(header="", decorator="pytest.fixture"),
        "test_it.py": a_module(),
    }
    result, recorder = session(pytester, files, *TRIO)
    check(result, recorder, passed=PER_MODULE, lifespans=PER_MODULE)


# Without httpx-ws ------------------------------------------------------------

BLOCKED = """
import sys

sys.modules["httpx_ws"] = None  # as if it were not installed
"""

WITHOUT_HTTPX_WS = """
import pytest
import checks
{header}

{mark}async def test_http(client):
    await checks.http(client)


{mark}async def test_stream(client):
    await checks.stream(client)


{mark}async def test_websocket(client):
    await checks.websocket(client)


{mark}async def test_only_httpx_ws_needs_it(client):
    with pytest.raises(ModuleNotFoundError):
        import httpx_ws
    # An upgrade request through send() is httpx-ws's way: it says so.
    with pytest.raises(ModuleNotFoundError) as caught:
        await client.get("/ws", headers={{"upgrade": "websocket"}})
    assert caught.value.name == "httpx_ws"
    assert "use `async with client.websocket_connect(path)`" in str(caught.value)
    await checks.websocket(client)
"""


@pytest.mark.parametrize(
    ("options", "decorator", "mark"),
    [
        pytest.param(
            STRICT,
            "pytest_asyncio.fixture",
            "@pytest.mark.asyncio\n",
            id="pytest-asyncio",
        ),
        pytest.param(TRIO, "pytest.fixture", "", id="pytest-trio"),
    ],
)
def test_without_httpx_ws_http_and_websocket_connect_still_work(
    pytester: pytest.Pytester, options: tuple[str, ...], decorator: str, mark: str
) -> None:
    files = {
        "conftest.py": BLOCKED + CLIENT.format(header="", decorator=decorator),
        "test_it.py": WITHOUT_HTTPX_WS.format(mark=mark, header=""),
    }
    result, recorder = session(pytester, files, *options)
    check(result, recorder, passed=4, lifespans=4)
