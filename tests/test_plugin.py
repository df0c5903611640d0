"""The pytest plugin: real pytest sessions under each async plugin.

Each test runs one inner pytest session (pytester, in this process) with
exactly one async plugin loaded, and trio_lifespan's plugin configured by the
session's ini file only: no conftest code. The app is a real FastAPI,
Starlette or Litestar app whose lifespan keeps a background task (a pretend
db pool) in an anyio task group; its ``/break`` route makes that task raise
``RuntimeError("db pool died")`` and returns. The crashing test then waits on
something that is not a request (``anyio.sleep_forever()``), so only the
plugin's watch can end it: a hang fails the session's time limit.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from typing import Any

import anyio
import pytest

import trio_lifespan
from trio_lifespan import (
    LifespanTimeout,
    LifespanUnavailable,
    _pytest_async as async_module,
    _pytest_holder as holder_module,
    _pytest_plugin as plugin_module,
)

from .backends import Backend
from .test_sessions import (
    LIMIT,
    SESSION_OPTIONS,
    Phases,
    Raised,
    _only_the_plugins_named,  # pyright: ignore[reportUnusedImport]  # noqa: F401 - autouse
)
from .typed import approx, makepyfile

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

pytest_plugins = ["pytester"]

# Loaded before any inner pytest session: pytester unloads what they load.
importlib.import_module("trio_lifespan._httpx")


APPS = '''
import contextlib

import anyio

CALLS = []


@contextlib.asynccontextmanager
async def pool(state):
    """What the three apps' lifespans hold: a task that dies on request."""
    broken = anyio.Event()
    gone = anyio.Event()  # set once the lifespan has ended

    async def run():
        await broken.wait()
        raise RuntimeError("db pool died")

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(run)
            state["db"] = "ready"
            state["broken"] = broken
            state["gone"] = gone
            yield
            tasks.cancel_scope.cancel()
    finally:
        gone.set()


def starlette_app():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    @contextlib.asynccontextmanager
    async def lifespan(app):
        state = {}
        async with pool(state):
            yield state

    async def home(request):
        return PlainTextResponse(request.state.db)

    async def breaks(request):
        request.state.broken.set()
        return PlainTextResponse("broken")

    async def breaks_under(request):
        request.state.broken.set()
        await anyio.sleep(5)  # still in flight when the lifespan dies
        return PlainTextResponse("too late")

    async def breaks_and_waits(request):
        request.state.broken.set()
        await request.state.gone.wait()  # answers once the lifespan is gone
        return PlainTextResponse("too late")

    return Starlette(
        routes=[
            Route("/", home),
            Route("/break", breaks),
            Route("/break-under", breaks_under),
            Route("/break-and-wait", breaks_and_waits),
        ],
        lifespan=lifespan,
    )


def fastapi_app():
    from fastapi import FastAPI, Request
    from fastapi.responses import PlainTextResponse

    @contextlib.asynccontextmanager
    async def lifespan(app):
        state = {}
        async with pool(state):
            yield state

    app = FastAPI(lifespan=lifespan)

    @app.get("/", response_class=PlainTextResponse)
    async def home(request: Request):
        return request.state.db

    @app.get("/break", response_class=PlainTextResponse)
    async def breaks(request: Request):
        request.state.broken.set()
        return "broken"

    return app


def litestar_app():
    from litestar import Litestar, Request, get

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with pool(app.state._state):
            yield

    @get("/", sync_to_thread=False)
    def home(request: Request) -> str:
        return request.app.state.db

    @get("/break", sync_to_thread=False)
    def breaks(request: Request) -> str:
        request.app.state.broken.set()
        return "broken"

    # No logging config: Litestar's would start a thread that outlives the
    # session and writes to its closed output.
    return Litestar(
        route_handlers=[home, breaks], lifespan=[lifespan], logging_config=None
    )


def make_starlette():
    CALLS.append("starlette")
    return starlette_app()


starlette = starlette_app()
fastapi = fastapi_app()
litestar = litestar_app()
'''

TESTS = """
import anyio
import httpx

{header}

async def test_get(lifespan_client):
    response = await lifespan_client.get("/")
    assert response.text == "ready"


async def test_crash(lifespan_client):
    assert (await lifespan_client.get("/break")).text == "broken"
    await anyio.sleep_forever()  # only the plugin's watch ends this


async def test_after(lifespan_app):
    transport = httpx.ASGITransport(app=lifespan_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/")).text == "ready"
"""

# The async plugins, each with how its tests are marked and run.
PLUGINS: dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]] = {
    # name: (-p options, the test module's header, -o ini options)
    "pytest-trio": (("-p", "trio"), "", ("trio_mode=true",)),
    "pytest-asyncio": (
        ("-p", "asyncio"),
        "",
        ("asyncio_mode=auto", "asyncio_default_fixture_loop_scope=function"),
    ),
    "anyio-asyncio": (
        ("-p", "anyio"),
        "import pytest\npytestmark = pytest.mark.anyio\n"
        '@pytest.fixture\ndef anyio_backend():\n    return "asyncio"\n',
        (),
    ),
    "anyio-trio": (
        ("-p", "anyio"),
        "import pytest\npytestmark = pytest.mark.anyio\n"
        '@pytest.fixture\ndef anyio_backend():\n    return "trio"\n',
        (),
    ),
}
FRAMEWORKS = ("starlette", "fastapi", "litestar")


def run(
    pytester: pytest.Pytester,
    plugin: str,
    ini: dict[str, str],
    tests: str = TESTS,
    *options: str,
) -> tuple[pytest.RunResult, Phases]:
    """One inner session under ``plugin`` with ``ini`` as its pytest ini."""
    plugin_options, header, plugin_ini = PLUGINS[plugin]
    makepyfile(
        pytester, plugin_apps=APPS, test_it=textwrap.dedent(tests).format(header=header)
    )
    lines = [f"{name} = {value}" for name, value in ini.items()]
    pytester.makeini("[pytest]\n" + "\n".join(lines) + "\n")
    raised = Raised()
    ini_options = [arg for option in plugin_ini for arg in ("-o", option)]
    result = pytester.runpytest_inprocess(
        *SESSION_OPTIONS,
        "-p",
        "trio_lifespan._pytest_plugin",
        # In this process the plugins are imported already, too late for
        # pytest to rewrite their asserts: not the session's concern.
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        *plugin_options,
        *ini_options,
        *options,
        plugins=[raised],
    )
    assert result.duration < LIMIT, result.stdout.str()
    return result, raised.phases


def leaf(exc: BaseException) -> BaseException:
    """The one exception in ``exc`` (pytest-trio wraps a test's in a group)."""
    while isinstance(exc, BaseExceptionGroup):
        members: tuple[BaseException, ...] = exc.exceptions  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        assert len(members) == 1
        exc = members[0]
    return exc


def setup_error(result: pytest.RunResult, raised: Phases, plugin: str) -> BaseException:
    """The one error a fixture's setup raised in a one-test session.

    pytest-trio sets up async fixtures inside the test's ``trio.run``, so
    there it fails the test (in a group of pytest-trio's); elsewhere it is an
    error at setup.
    """
    [((_, phase), error)] = raised.items()
    if plugin == "pytest-trio":
        result.assert_outcomes(failed=1)
        assert phase == "call"
    else:
        result.assert_outcomes(errors=1)
        assert phase == "setup"
    return leaf(error)


def assert_the_crash(exc: BaseException) -> BaseException:
    error = leaf(exc)
    assert type(error) is RuntimeError
    assert str(error) == "db pool died"
    return error


# Every plugin x backend, every framework: function scope ------------------------------


# Every async plugin loaded, as where all three are installed (pytest loads
# every installed plugin): each session's own plugin still runs its tests.
EVERY_PLUGIN = (
    *("-p", "trio", "-p", "asyncio", "-p", "anyio"),
    *("-o", "asyncio_default_fixture_loop_scope=function"),
)


@pytest.mark.parametrize("installed", ["alone", "with the others"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("plugin", list(PLUGINS))
def test_a_crash_fails_that_test_only(
    pytester: pytest.Pytester, plugin: str, framework: str, installed: str
) -> None:
    ini = {"asgi_app": f"plugin_apps:{framework}"}
    options = EVERY_PLUGIN if installed == "with the others" else ()
    result, raised = run(pytester, plugin, ini, TESTS, *options)
    result.assert_outcomes(passed=2, failed=1)
    assert list(raised) == [("test_crash", "call")]  # no teardown error besides
    assert_the_crash(raised["test_crash", "call"])
    result.stdout.fnmatch_lines(["FAILED test_it.py::test_crash - *db pool died*"])


@pytest.mark.parametrize("route", ["/break-under", "/break-and-wait"])
@pytest.mark.parametrize("plugin", list(PLUGINS))
def test_a_crash_under_a_request_fails_that_test_with_the_apps_error(
    pytester: pytest.Pytester, plugin: str, route: str
) -> None:
    # The request is in flight in the test's own task (a whole read): the
    # test is stopped when the lifespan fails, before the client's exit
    # could end the request with an error of its own, whether the request
    # is still waiting then or answers once the lifespan is gone.
    tests = """
    import anyio

    {header}

    async def test_crash(lifespan_client):
        await lifespan_client.get("ROUTE")  # the pool dies meanwhile
        await anyio.sleep(5)  # (the crash ends the test by here, at once)
    """.replace("ROUTE", route)
    result, raised = run(pytester, plugin, {"asgi_app": "plugin_apps:starlette"}, tests)
    result.assert_outcomes(failed=1)
    assert list(raised) == [("test_crash", "call")]  # no teardown error besides
    assert_the_crash(raised["test_crash", "call"])


# Wider scopes: pytest-asyncio with a matching loop scope ------------------------


@pytest.mark.parametrize("scope", ["module", "session"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_pytest_asyncio_holds_one_lifespan_for_the_scope(
    pytester: pytest.Pytester, framework: str, scope: str
) -> None:
    tests = """
    {header}
    import plugin_apps

    async def test_one(lifespan_app):
        plugin_apps.CALLS.append(id(lifespan_app))

    async def test_two(lifespan_app, lifespan_client):
        plugin_apps.CALLS.append(id(lifespan_app))
        assert (await lifespan_client.get("/")).text == "ready"
        assert plugin_apps.CALLS[0] == plugin_apps.CALLS[1]
    """
    ini = {
        "asgi_app": f"plugin_apps:{framework}",
        "lifespan_scope": scope,
        "asyncio_default_test_loop_scope": scope,
    }
    result, raised = run(pytester, "pytest-asyncio", ini, tests)
    result.assert_outcomes(passed=2)
    assert not raised


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_pytest_asyncio_a_crash_fails_the_test_then_later_ones_at_once(
    pytester: pytest.Pytester, framework: str
) -> None:
    ini = {
        "asgi_app": f"plugin_apps:{framework}",
        "lifespan_scope": "module",
        "asyncio_default_test_loop_scope": "module",
    }
    result, raised = run(pytester, "pytest-asyncio", ini)
    result.assert_outcomes(passed=1, failed=2)
    assert list(raised) == [("test_crash", "call"), ("test_after", "call")]
    error = assert_the_crash(raised["test_crash", "call"])
    later = raised["test_after", "call"]
    assert type(later) is LifespanUnavailable
    assert later.__cause__ is error  # and no teardown error: it was reported


MISMATCHED_LOOP = (
    "the lifespan_app and lifespan_client fixtures are held on the module-scoped "
    "event loop (lifespan_scope = module in the pytest ini), but {what} "
    "runs on another loop, where the app's resources would not work: run "
    "the tests and their fixtures on that loop (asyncio_default_test_loop_scope = "
    "module and asyncio_default_fixture_loop_scope = module in the pytest ini, or "
    'loop_scope="module" in their marks and decorators), or set lifespan_scope '
    "to the loop scope they use"
)


def test_pytest_asyncio_a_fixture_on_another_loop_says_what_to_set(
    pytester: pytest.Pytester,
) -> None:
    # The tests run on the module's loop, but a user's fixture on its own.
    ini = {
        "asgi_app": "plugin_apps:starlette",
        "lifespan_scope": "module",
        "asyncio_default_test_loop_scope": "module",
    }
    tests = """
    import pytest_asyncio

    @pytest_asyncio.fixture(loop_scope="function")
    async def seeded(lifespan_client):
        raise AssertionError("must not run")

    async def test_get(seeded):
        raise AssertionError("must not run")
    """
    result, raised = run(pytester, "pytest-asyncio", ini, tests)
    result.assert_outcomes(errors=1)
    error = raised["test_get", "setup"]
    assert type(error) is RuntimeError
    assert str(error) == MISMATCHED_LOOP.format(what="fixture seeded")


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("plugin", list(PLUGINS))
def test_a_crash_in_a_users_fixture_fails_it_at_once(
    pytester: pytest.Pytester, plugin: str, framework: str
) -> None:
    # A fixture that uses the client (seeding data, logging in) is watched
    # too, its setup and its teardown, each on its own.
    tests = """
    import anyio
    import pytest
    {header}

    @pytest.fixture
    async def seeded(lifespan_client):
        await lifespan_client.get("/break")
        await anyio.sleep_forever()  # only the watch ends this
        yield

    @pytest.fixture
    async def cleaned(lifespan_client):
        yield lifespan_client
        await lifespan_client.get("/break")
        await anyio.sleep_forever()  # only the watch ends this

    @pytest.fixture
    async def logged_in(cleaned):  # through another fixture
        return cleaned

    async def test_setup(seeded):
        raise AssertionError("must not run")

    async def test_teardown(logged_in):
        assert (await logged_in.get("/")).text == "ready"
    """
    if plugin == "pytest-asyncio":  # strict mode: its own decorator
        tests = tests.replace("@pytest.fixture", "@pytest_asyncio.fixture").replace(
            "    import pytest\n", "    import pytest\n    import pytest_asyncio\n"
        )
    ini = {"asgi_app": f"plugin_apps:{framework}"}
    result, raised = run(pytester, plugin, ini, tests)
    if plugin == "pytest-trio":  # fixtures run within the test: it fails
        result.assert_outcomes(failed=2)
    else:
        result.assert_outcomes(passed=1, errors=2)
    phases = {phase for (_, phase) in raised}
    assert phases == ({"call"} if plugin == "pytest-trio" else {"setup", "teardown"})
    for error in raised.values():
        assert_the_crash(error)


def test_pytest_asyncio_a_mismatched_loop_scope_says_what_to_set(
    pytester: pytest.Pytester,
) -> None:
    ini = {"asgi_app": "plugin_apps:starlette", "lifespan_scope": "module"}
    tests = """
    async def test_get(lifespan_client):
        raise AssertionError("must not run")
    """
    result, raised = run(pytester, "pytest-asyncio", ini, tests)
    result.assert_outcomes(failed=1)
    error = raised["test_get", "call"]
    assert type(error) is RuntimeError
    assert str(error) == MISMATCHED_LOOP.format(what="test test_get")


@pytest.mark.parametrize("plugin", ["pytest-trio", "anyio-trio", "anyio-asyncio"])
def test_a_wide_scope_elsewhere_is_a_clear_error(
    pytester: pytest.Pytester, plugin: str
) -> None:
    ini = {"asgi_app": "plugin_apps:starlette", "lifespan_scope": "module"}
    tests = """
    {header}
    async def test_get(lifespan_app):
        raise AssertionError("must not run")
    """
    result, raised = run(pytester, plugin, ini, tests)
    result.assert_outcomes(errors=1)
    name = "pytest-trio" if plugin == "pytest-trio" else "anyio's plugin"
    error = raised[next(iter(raised))]
    assert type(error) is RuntimeError
    result.stdout.fnmatch_lines(
        [
            f"*RuntimeError: lifespan_scope = module in the pytest ini, but test_get "
            f"runs under {name}, where the lifespan fixtures live as long as one "
            "test: set lifespan_scope = function (or leave it out); wider scopes "
            "work with pytest-asyncio"
        ]
    )


# The ini options -------------------------------------------------------------


@pytest.mark.parametrize("plugin", list(PLUGINS))
def test_a_factory_makes_an_app_for_each_scope(
    pytester: pytest.Pytester, plugin: str
) -> None:
    tests = """
    {header}
    import plugin_apps

    async def test_one(lifespan_app):
        assert plugin_apps.CALLS == ["starlette"]

    async def test_two(lifespan_client):
        assert plugin_apps.CALLS == ["starlette", "starlette"]
        assert (await lifespan_client.get("/")).text == "ready"
    """
    ini = {"asgi_app_factory": "plugin_apps:make_starlette"}
    result, _ = run(pytester, plugin, ini, tests, "-p", "no:randomly")
    result.assert_outcomes(passed=2)


def test_a_factory_that_fails_fails_the_setup_naming_the_option(
    pytester: pytest.Pytester,
) -> None:
    makepyfile(
        pytester,
        broken_factory="""
        def make_app():
            raise LookupError("no DATABASE_URL")
        """,
    )
    tests = """
    async def test_get(lifespan_app):
        raise AssertionError("must not run")
    """
    ini = {"asgi_app_factory": "broken_factory:make_app"}
    result, raised = run(pytester, "pytest-trio", ini, tests)
    result.assert_outcomes(errors=1)  # (the app's fixture is not an async one)
    error = raised["test_get", "setup"]
    assert type(error) is RuntimeError
    assert str(error) == (
        "trio_lifespan: asgi_app_factory = broken_factory:make_app in the pytest "
        "ini: calling the factory 'broken_factory:make_app' failed: LookupError: "
        "no DATABASE_URL"
    )
    assert type(error.__cause__) is LookupError


@pytest.mark.parametrize("plugin", list(PLUGINS))
def test_a_startup_failure_fails_the_setup_with_the_apps_error(
    pytester: pytest.Pytester, plugin: str
) -> None:
    makepyfile(
        pytester,
        failing="""
        async def app(scope, receive, send):
            await receive()
            raise KeyError("no database")
        """,
    )
    tests = """
    {header}
    async def test_get(lifespan_app):
        raise AssertionError("must not run")
    """
    result, raised = run(pytester, plugin, {"asgi_app": "failing:app"}, tests)
    error = setup_error(result, raised, plugin)
    assert type(error) is KeyError
    assert error.args == ("no database",)


def test_the_timeouts_come_from_the_ini(pytester: pytest.Pytester) -> None:
    makepyfile(
        pytester,
        hanging="""
        import anyio

        async def app(scope, receive, send):
            await receive()
            await anyio.sleep_forever()
        """,
    )
    tests = """
    async def test_get(lifespan_app):
        raise AssertionError("must not run")
    """
    ini = {"asgi_app": "hanging:app", "lifespan_startup_timeout": "0"}
    result, raised = run(pytester, "pytest-trio", ini, tests)
    error = setup_error(result, raised, "pytest-trio")
    assert type(error) is LifespanTimeout
    assert error.timeout == 0
    assert getattr(error, "__notes__", None) == [
        "(pytest plugin: the limit is lifespan_startup_timeout in the pytest ini)"
    ]


@pytest.mark.parametrize("allow", ["true", "false"])
def test_allow_unsupported_comes_from_the_ini(
    pytester: pytest.Pytester, allow: str
) -> None:
    makepyfile(
        pytester,
        plain="""
        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                raise ValueError("no lifespan here")
            await send({{"type": "http.response.start", "status": 204}})
            await send({{"type": "http.response.body"}})
        """.replace("{{", "{").replace("}}", "}"),
    )
    tests = """
    {header}
    async def test_get(lifespan_client):
        assert (await lifespan_client.get("/")).status_code == 204
        assert not lifespan_client.lifespan.supported
    """
    ini = {"asgi_app": "plain:app", "lifespan_allow_unsupported": allow}
    result, raised = run(pytester, "pytest-trio", ini, tests)
    if allow == "true":
        result.assert_outcomes(passed=1)
    else:
        error = setup_error(result, raised, "pytest-trio")
        assert type(error).__name__ == "LifespanNotSupported"
        assert getattr(error, "__notes__", None) == [
            "(pytest plugin: to run it anyway, set lifespan_allow_unsupported = "
            "true in the pytest ini)"
        ]


def test_the_base_url_comes_from_the_ini(pytester: pytest.Pytester) -> None:
    tests = """
    async def test_get(lifespan_client):
        assert str(lifespan_client.base_url) == "https://example.org"
        assert (await lifespan_client.get("/")).text == "ready"
    """
    ini = {
        "asgi_app": "plugin_apps:starlette",
        "lifespan_base_url": "https://example.org",
    }
    result, _ = run(pytester, "pytest-trio", ini, tests)
    result.assert_outcomes(passed=1)


# Misuse: clear errors ----------------------------------------------------------


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        (
            {"asgi_app": "a:b", "asgi_app_factory": "c:d"},
            "trio_lifespan: set either asgi_app or asgi_app_factory in the pytest "
            "ini, not both (asgi_app = a:b, asgi_app_factory = c:d)",
        ),
        (
            {"asgi_app": "a:b", "lifespan_scope": "forever"},
            "trio_lifespan: lifespan_scope = 'forever' is not a fixture scope; use "
            "one of: function, class, module, package, session",
        ),
        (
            {"asgi_app": "a:b", "lifespan_shutdown_timeout": "soon"},
            "trio_lifespan: lifespan_shutdown_timeout must be a number of seconds "
            "or 'none', not 'soon' (in the pytest ini)",
        ),
        (
            {"asgi_app": "a:b", "lifespan_startup_timeout": "-1"},
            "trio_lifespan: lifespan_startup_timeout must be a non-negative number "
            "of seconds or 'none', not '-1' (in the pytest ini)",
        ),
        (
            {"asgi_app": "a:b", "lifespan_allow_unsupported": "banana"},
            "trio_lifespan: lifespan_allow_unsupported must be true or false in "
            "the pytest ini (invalid truth value 'banana')",
        ),
    ],
)
def test_a_wrong_ini_option_is_a_usage_error(
    pytester: pytest.Pytester, ini: dict[str, str], message: str
) -> None:
    result, _ = run(pytester, "pytest-trio", ini, "")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_unconfigured_the_plugin_is_inert_and_says_what_to_set(
    pytester: pytest.Pytester,
) -> None:
    tests = """
    async def test_plain():
        pass

    async def test_get(lifespan_app):
        raise AssertionError("must not run")
    """
    result, raised = run(pytester, "pytest-trio", {}, tests)
    result.assert_outcomes(passed=1, errors=1)
    assert str(raised["test_get", "setup"]) == (
        "the lifespan_app and lifespan_client fixtures need the app: define an "
        "asgi_app fixture that returns it (in a conftest.py), or set asgi_app = "
        "module:attribute (or asgi_app_factory = module:function) in the [pytest] "
        "section of your ini file"
    )


def test_a_test_no_async_plugin_runs_is_told_how_to_mark_it(
    pytester: pytest.Pytester,
) -> None:
    tests = """
    def test_sync(lifespan_app):
        raise AssertionError("must not run")
    """
    result, raised = run(
        pytester, "pytest-asyncio", {"asgi_app": "plugin_apps:starlette"}, tests
    )
    result.assert_outcomes(errors=1)
    assert str(raised["test_sync", "setup"]) == (
        "lifespan_app is an async fixture, but test_sync is not run by an async "
        "plugin: mark it for pytest-trio (@pytest.mark.trio, or trio_mode = true), "
        "pytest-asyncio (@pytest.mark.asyncio, or asyncio_mode = auto) or anyio "
        "(@pytest.mark.anyio), and make it an async def"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            "nowhere:app",
            "could not import module 'nowhere': ModuleNotFoundError: No module "
            "named 'nowhere'",
        ),
        (
            "plugin_apps.starlette_app",
            "app reference 'plugin_apps.starlette_app' must look like "
            "'module:attribute', for example 'myproject.main:app'",
        ),
        (
            "plugin_apps:nothing",
            "'plugin_apps:nothing': module 'plugin_apps' has no attribute 'nothing'",
        ),
    ],
)
def test_an_app_that_cannot_be_loaded_is_one_usage_error_at_the_start(
    pytester: pytest.Pytester, value: str, problem: str
) -> None:
    # Once, when the session starts: not an error per test.
    tests = """
    async def test_get(lifespan_app):
        raise AssertionError("must not run")

    async def test_other(lifespan_app):
        raise AssertionError("must not run")
    """
    result, raised = run(pytester, "pytest-trio", {"asgi_app": value}, tests)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert not raised
    assert result.stderr.lines[0] == (
        f"ERROR: trio_lifespan: asgi_app = {value} in the pytest ini: {problem}"
    )


@pytest.mark.parametrize("option", ["asgi_app", "asgi_app_factory"])
def test_a_factory_named_as_the_app_is_told_of_asgi_app_factory(
    pytester: pytest.Pytester, option: str
) -> None:
    # A plain function that makes the app, named by asgi_app: the error is
    # the call's (it takes no scope, receive, send), with the option to set.
    makepyfile(
        pytester,
        factory_app="""
        def make_app():
            async def app(scope, receive, send):
                await receive()
                await send({"type": "lifespan.startup.complete"})
                await receive()
                await send({"type": "lifespan.shutdown.complete"})
            return app
        """,
    )
    tests = """
    async def test_get(lifespan_app):
        assert lifespan_app.state == {{}}
    """
    result, raised = run(
        pytester, "pytest-trio", {option: "factory_app:make_app"}, tests
    )
    if option == "asgi_app_factory":
        result.assert_outcomes(passed=1)
        return
    error = setup_error(result, raised, "pytest-trio")
    assert isinstance(error, trio_lifespan.LifespanNotASGIApp)
    assert getattr(error, "__notes__", [""])[-1] == (
        "(pytest plugin: if the app is made by calling factory_app:make_app, set "
        "asgi_app_factory = factory_app:make_app in the pytest ini, instead of "
        "asgi_app)"
    )


def test_without_httpx_the_client_fixture_names_the_extra(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    monkeypatch.delitem(sys.modules, "trio_lifespan._httpx", raising=False)
    monkeypatch.delattr(trio_lifespan, "_httpx", raising=False)
    tests = """
    async def test_app(lifespan_app):
        assert lifespan_app.state["db"] == "ready"

    async def test_client(lifespan_client):
        raise AssertionError("must not run")
    """
    result, raised = run(
        pytester, "pytest-trio", {"asgi_app": "plugin_apps:starlette"}, tests
    )
    result.assert_outcomes(passed=1, failed=1)
    error: Any = leaf(raised["test_client", "call"])
    assert type(error) is ModuleNotFoundError
    assert str(error) == (
        "the lifespan_client fixture needs httpx, which is not installed: "
        "pip install 'trio-lifespan[client]'"
    )


def test_the_plugin_module_defines_the_hooks_pytest_loads() -> None:
    # The entry point's module is imported before coverage starts: load it
    # again here, and check what pytest finds in it.
    import importlib  # noqa: PLC0415

    module = importlib.reload(plugin_module)
    assert callable(module.pytest_addoption)
    assert callable(module.pytest_configure)
    assert set(module.INI) >= {"asgi_app", "asgi_app_factory", "lifespan_scope"}


@pytest.mark.parametrize("scope", ["function", "module"])
def test_a_shutdown_failure_is_the_teardown_error(
    pytester: pytest.Pytester, scope: str
) -> None:
    makepyfile(
        pytester,
        closing="""
        async def app(scope, receive, send):
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            raise KeyError("flush failed")
        """,
    )
    tests = """
    async def test_get(lifespan_app):
        pass
    """
    ini = {
        "asgi_app": "closing:app",
        "lifespan_scope": scope,
        "asyncio_default_test_loop_scope": scope,
    }
    result, raised = run(pytester, "pytest-asyncio", ini, tests)
    result.assert_outcomes(passed=1, errors=1)
    error = raised["test_get", "teardown"]
    assert type(error) is KeyError
    assert error.args == ("flush failed",)
    notes = getattr(error, "__notes__", [])
    if scope == "function":
        assert notes == []
    else:
        assert notes == [
            "(pytest plugin: the lifespan held for this module ended with this "
            "error, when the fixtures' scope ended)"
        ]


def test_the_tests_own_cancellation_is_not_taken_for_a_crash(
    pytester: pytest.Pytester,
) -> None:
    tests = """
    import asyncio

    async def test_cancelled(lifespan_app):
        asyncio.current_task().cancel()
        await asyncio.sleep(0)
    """
    ini = {"asgi_app": "plugin_apps:starlette"}
    result, raised = run(pytester, "pytest-asyncio", ini, tests)
    result.assert_outcomes(failed=1)
    assert type(raised["test_cancelled", "call"]).__name__ == "CancelledError"


# The holder itself, cancelled while it waits: on each backend, on fake time ---

EVENTS: list[str] = []


async def slow_app(scope: Any, receive: Any, send: Any) -> None:
    """Starts in 2 s and shuts down in 2 s, saying what it did in EVENTS."""
    await receive()
    await anyio.sleep(2)
    await send({"type": "lifespan.startup.complete"})
    try:
        await receive()
    except BaseException:
        EVENTS.append("cancelled while running")
        raise
    await anyio.sleep(2)
    EVENTS.append("shut down")
    await send({"type": "lifespan.shutdown.complete"})


def holder_for(app: Any) -> holder_module.Holder:
    from trio_lifespan._options import check_options  # noqa: PLC0415

    settings = plugin_module.Settings(
        reference=None,
        factory=False,
        scope="function",
        options=check_options(5.0, 5.0, allow_unsupported=False),
        base_url="http://testserver",
        app_dir=".",
    )
    return holder_module.Holder(settings, app, async_module.Anyio())


async def test_a_holder_cancelled_during_the_startup_cancels_it(
    backend: Backend,
) -> None:
    holder = holder_for(slow_app)
    began = backend.now()
    with backend.move_on_after(1) as scope:
        await holder.start()
    assert scope.cancelled_caught
    assert backend.now() - began == approx(1, abs=1e-3)
    assert isinstance(holder.error, backend.cancelled)  # the task ended, cancelled


async def test_a_holder_cancelled_while_stopping_cuts_the_shutdown_short(
    backend: Backend,
) -> None:
    # As open_lifespan's exit after a block that ended well: a cancellation
    # (Ctrl-C, pytest-trio cancelling the fixtures) ends the wait, and the
    # app with it; the holder still waits until the app's task is gone.
    EVENTS.clear()
    holder = holder_for(slow_app)
    await holder.start()
    began = backend.now()
    with backend.move_on_after(1) as scope:
        await holder.stop()
    assert scope.cancelled_caught
    assert backend.now() - began == approx(1, abs=1e-3)
    assert EVENTS == []  # the shutdown did not finish
    assert isinstance(holder.error, backend.cancelled)


async def test_a_holder_stopped_from_outside_stops_what_it_watches_once(
    backend: Backend,
) -> None:
    # Not the app's failure (the session is interrupted): the steps it
    # watches are stopped once the lifespan is gone, and once only.
    holder = holder_for(slow_app)
    await holder.start()
    stopped: list[str] = []
    holder.watchers.add(lambda: stopped.append("stopped"))
    holder._abort()  # pyright: ignore[reportPrivateUsage]  # (as pytest's end does)
    await holder._wait_done()  # pyright: ignore[reportPrivateUsage]
    assert stopped == ["stopped"]
    assert isinstance(holder.error, backend.cancelled)


@pytest.mark.parametrize("plugin", list(PLUGINS))
def test_a_crash_a_request_saw_first_is_reported_once(
    pytester: pytest.Pytester, plugin: str
) -> None:
    # The test keeps sending requests after it broke the app: one of them
    # may be refused (LifespanUnavailable) before the plugin sees the crash,
    # or the plugin's watch ends the test first. Either way the test fails
    # once, naming the app's error, and the teardown reports nothing more.
    tests = """
    import anyio
    {header}

    async def test_crash(lifespan_client):
        await lifespan_client.get("/break")
        for _ in range(1000):
            await lifespan_client.get("/")
            await anyio.sleep(0)
    """
    result, raised = run(pytester, plugin, {"asgi_app": "plugin_apps:starlette"}, tests)
    result.assert_outcomes(failed=1)
    [((_, phase), error)] = raised.items()
    assert phase == "call"
    error = leaf(error)
    if isinstance(error, LifespanUnavailable):
        error = error.error
    assert_the_crash(error)


CRASH = RuntimeError("db pool died")


async def crashing_app(scope: Any, receive: Any, send: Any) -> None:
    """Starts, then dies with CRASH a second later."""
    await receive()
    await send({"type": "lifespan.startup.complete"})
    await anyio.sleep(1)
    raise CRASH


@pytest.mark.parametrize("named", [True, False])
async def test_a_failure_a_test_named_is_not_reported_again_at_teardown(
    backend: Backend, named: bool
) -> None:
    holder = holder_for(crashing_app)
    await holder.start()
    if named:
        # As the watch does when a test raised it: the refusal sits in a
        # group (pytest-trio's) and in a chain that loops.
        refused = LifespanUnavailable(CRASH)
        other = ValueError("the test's own")
        other.__context__ = refused
        refused.__context__ = other
        holder.seen_by_a_test(BaseExceptionGroup("a test's", [other]))
        await holder.stop()
    else:
        with pytest.raises(RuntimeError) as caught:
            await holder.stop()
        assert caught.value is CRASH
    assert holder.error is CRASH


def test_a_watched_fixture_that_yields_twice_is_an_error(
    pytester: pytest.Pytester,
) -> None:
    tests = """
    import pytest_asyncio

    EVENTS = []

    @pytest_asyncio.fixture
    async def once(lifespan_client):
        EVENTS.append("set up")
        yield
        EVENTS.append("torn down")

    @pytest_asyncio.fixture
    async def twice(lifespan_client):
        yield 1
        yield 2

    async def test_get(twice, once):
        assert twice == 1

    async def test_after():
        assert EVENTS == ["set up", "torn down"]
    """
    ini = {"asgi_app": "plugin_apps:starlette"}
    result, raised = run(pytester, "pytest-asyncio", ini, tests, "-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    error = raised["test_get", "teardown"]
    assert type(error) is RuntimeError
    assert str(error) == "fixture twice yielded more than once"
