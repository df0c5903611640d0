"""The pytest plugin in the layouts real projects have (real pytest sessions).

Each test runs one inner session (pytester) with the plugin loaded as pytest
would load it from its entry point, in a project laid out as real ones are:
fixtures of the same names as ours, an ``asgi_app`` fixture built from
settings fixtures, conftest.py files in several folders, the loop layouts of
pytest-asyncio. tests/test_plugin.py has the plugin's behaviour with the app
named in the ini; tests/test_plugin_async.py the per-plugin decisions.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import textwrap

import pytest

from trio_lifespan._pytest_async import parse_version

from .test_sessions import (
    LIMIT,
    SESSION_OPTIONS as BASE_OPTIONS,
    Phases,
    Raised,
    _only_the_plugins_named,  # pyright: ignore[reportUnusedImport]  # noqa: F401 - autouse
)
from .typed import makepyfile

pytest_plugins = ["pytester"]

# Loaded before any inner session: pytester unloads what a session loads,
# and FastAPI would then be imported again in each.
for _module in ("fastapi", "fastapi.responses", "trio_lifespan._httpx"):
    importlib.import_module(_module)

#: The version of pytest-asyncio installed: CI runs these tests under each
#: version the plugin treats differently (tox.ini's plugin-* environments).
ASYNCIO_VERSION = parse_version(importlib.metadata.version("pytest-asyncio"))
# Every session: only the plugins named, warnings are errors, but for the
# event loops that pytest-asyncio before 1.0 leaves unclosed (a fresh one set
# after each test): their garbage may be collected in a later session.
SESSION_OPTIONS = (
    *BASE_OPTIONS,
    *("-W", "ignore::pytest.PytestAssertRewriteWarning", "-p", "no:randomly"),
    *("-W", "ignore:unclosed:ResourceWarning"),
)
PLUGIN = ("-p", "trio_lifespan._pytest_plugin")
# Its fixtures' default loop, from 0.24 on (which warns when it is unset).
ASYNCIO = ("-p", "asyncio") + (
    ("-o", "asyncio_default_fixture_loop_scope=function")
    if ASYNCIO_VERSION >= (0, 24)
    else ()
)
AUTO = (*ASYNCIO, "-o", "asyncio_mode=auto")
#: pytest-asyncio in auto mode, its loops as the session's ini sets them.
AUTO_AS_SET = ("-p", "asyncio", "-o", "asyncio_mode=auto")
TRIO = ("-p", "trio", "-o", "trio_mode=true")
ANYIO = ("-p", "anyio")
EVERY = (*("-p", "trio", "-p", "anyio"), *ASYNCIO)

# A FastAPI app made by a factory that takes its settings, as projects build
# theirs (a database URL, a container): its lifespan reads them.
APP = """
import contextlib

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

STARTUPS = []


def make_app(settings):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        STARTUPS.append(settings["database_url"])
        yield {"database_url": settings["database_url"]}

    app = FastAPI(lifespan=lifespan)

    @app.get("/", response_class=PlainTextResponse)
    async def home(request: Request):
        return request.state.database_url

    return app


app = make_app({"database_url": "from-the-ini"})
"""


def session(
    pytester: pytest.Pytester,
    files: dict[str, str],
    *options: str,
    ini: str = "",
) -> tuple[pytest.RunResult, Phases]:
    """One inner session of ``files`` (path: source), our plugin loaded."""
    makepyfile(pytester, myapp=APP)
    for path, source in files.items():
        target = pytester.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(source))
    pytester.makeini("[pytest]\n" + textwrap.dedent(ini))
    raised = Raised()
    result = pytester.runpytest_inprocess(
        *SESSION_OPTIONS, *PLUGIN, *options, plugins=[raised]
    )
    assert result.duration < LIMIT, result.stdout.str()
    return result, raised.phases


# Inert until used ------------------------------------------------------------

UNRELATED = {
    "conftest.py": """
        import pytest

        @pytest.fixture
        async def client():
            return "theirs"

        @pytest.fixture(scope="session")
        def settings():
            return {"debug": True}
    """,
    "tests/test_theirs.py": """
        import pytest

        def test_sync(settings):
            assert settings["debug"]

        @pytest.mark.parametrize("n", [1, 2])
        def test_params(n):
            assert n

        async def test_async(client):
            assert client == "theirs"
    """,
}


@pytest.mark.parametrize(
    "plugins",
    [
        pytest.param(AUTO, id="pytest-asyncio auto"),
        pytest.param((*ASYNCIO, "-o", "asyncio_mode=strict"), id="pytest-asyncio"),
        pytest.param(TRIO, id="pytest-trio"),
        pytest.param((*AUTO, "-p", "trio", "-p", "anyio"), id="all three"),
    ],
)
def test_a_project_that_does_not_use_it_runs_as_without_it(
    pytester: pytest.Pytester, plugins: tuple[str, ...]
) -> None:
    files = dict(UNRELATED)
    if "asyncio_mode=strict" in plugins:  # its own decorator in strict mode
        files["conftest.py"] = (
            files["conftest.py"]
            .replace(
                "@pytest.fixture\n        async",
                "@pytest_asyncio.fixture\n        async",
            )
            .replace(
                "import pytest\n", "import pytest\n        import pytest_asyncio\n"
            )
        )
        files["tests/test_theirs.py"] = files["tests/test_theirs.py"].replace(
            "async def", "@pytest.mark.asyncio\n        async def"
        )
    if "trio_mode=true" in plugins and "asyncio_mode=auto" not in plugins:
        pass  # trio mode runs the async test and fixture
    result, raised = session(pytester, files, *plugins)
    result.assert_outcomes(passed=4)
    assert not raised
    without = pytester.runpytest_inprocess(
        *SESSION_OPTIONS, *plugins, "--collect-only", "-q"
    )
    with_it = pytester.runpytest_inprocess(
        *SESSION_OPTIONS, *PLUGIN, *plugins, "--collect-only", "-q"
    )
    assert with_it.outlines[:-1] == without.outlines[:-1]  # the same tests, same ids


PROXY = """
class Proxy:  # as werkzeug's LocalProxy (Quart's, Flask's request) outside a request
    def __getattr__(self, name):
        raise RuntimeError("Working outside of request context")

class Half:  # read as a fixture (pytest before 8.4) whose name raises
    _pytestfixturefunction = Proxy()
"""


def test_a_project_whose_modules_hold_proxies_that_raise_runs_as_without_it(
    pytester: pytest.Pytester,
) -> None:
    # Looking for an asgi_app fixture, the plugin reads every name a module
    # or class defines: one whose every attribute raises is no fixture.
    files = {
        "conftest.py": PROXY + "request = Proxy()\n",
        "tests/test_views.py": PROXY
        + textwrap.dedent("""
            request = Proxy()
            half = Half()

            class TestViews:
                current = Proxy()

                def test_one(self):
                    assert True

            def test_two():
                assert True
            """),
    }
    result, raised = session(pytester, files, *AUTO)
    result.assert_outcomes(passed=2)
    assert not raised


def test_unused_it_imports_nothing_and_registers_no_fixture_of_its_own(
    pytester: pytest.Pytester,
) -> None:
    # In a process of its own: this one has imported everything already.
    makepyfile(
        pytester,
        conftest="""
        import json
        import sys

        def pytest_sessionfinish(session):
            manager = session.config.pluginmanager
            with open("seen.json", "w") as out:
                json.dump(
                    {
                        "modules": sorted(
                            m for m in sys.modules if m.startswith("trio_lifespan")
                        ),
                        "plugins": sorted(
                            name
                            for name, _ in manager.list_name_plugin()
                            if name and name.startswith("trio_lifespan")
                        ),
                    },
                    out,
                )
        """,
        test_it="async def test_it():\n    pass\n",
    )
    result = pytester.runpytest_subprocess(
        *SESSION_OPTIONS, *PLUGIN, *AUTO, timeout=LIMIT
    )
    result.assert_outcomes(passed=1)
    seen = json.loads((pytester.path / "seen.json").read_text())
    assert seen["plugins"] == ["trio_lifespan._pytest_plugin", "trio_lifespan.plugin"]
    # What the package's import brings, and the plugin module: no more.
    package = subprocess.run(
        [sys.executable, "-c", "import sys, trio_lifespan; print(*sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    expected = {m for m in package if m.startswith("trio_lifespan")}
    assert set(seen["modules"]) == expected | {"trio_lifespan._pytest_plugin"}
    assert "trio_lifespan._pytest_holder" not in seen["modules"]


THEIR_FIXTURES = """
    import pytest

    @pytest.fixture
    def lifespan_app():
        return "their lifespan_app"

    @pytest.fixture
    def lifespan_client():
        return "their lifespan_client"
"""


@pytest.mark.parametrize("where", ["conftest.py", "pytest_plugins"])
@pytest.mark.parametrize("configured", [True, False])
def test_a_projects_own_fixtures_of_these_names_win(
    pytester: pytest.Pytester, where: str, configured: bool
) -> None:
    files = {
        "tests/test_it.py": """
            def test_theirs(lifespan_app, lifespan_client):
                assert lifespan_app == "their lifespan_app"
                assert lifespan_client == "their lifespan_client"
        """
    }
    if where == "conftest.py":
        files["conftest.py"] = THEIR_FIXTURES
    else:
        files["their_fixtures.py"] = THEIR_FIXTURES
        files["conftest.py"] = 'pytest_plugins = ["their_fixtures"]\n'
    ini = "asgi_app = myapp:app\n" if configured else ""
    result, raised = session(pytester, files, *AUTO, ini=ini)
    result.assert_outcomes(passed=1)
    assert not raised


# The app from an asgi_app fixture ------------------------------------------

FROM_FIXTURES = """
    import pytest
    import myapp

    @pytest.fixture
    def database_url():
        return "sqlite://default"

    @pytest.fixture
    def settings(database_url):
        return {"database_url": database_url}

    @pytest.fixture
    def asgi_app(settings):
        return myapp.make_app(settings)
"""

ARGUMENT_ORDERS = """
    {header}
    import pytest
    import myapp

    async def test_client_first(lifespan_client, settings):
        assert (await lifespan_client.get("/")).text == "sqlite://default"
        assert settings["database_url"] == "sqlite://default"

    async def test_settings_first(settings, lifespan_app):
        assert lifespan_app.state["database_url"] == "sqlite://default"

    class TestOverridden:
        @pytest.fixture
        def database_url(self):
            return "sqlite://overridden"

        async def test_overridden(self, lifespan_client):
            assert (await lifespan_client.get("/")).text == "sqlite://overridden"
            assert myapp.STARTUPS[-1] == "sqlite://overridden"
"""

PLUGIN_HEADERS = {
    "pytest-trio": (TRIO, ""),
    "pytest-asyncio": (AUTO, ""),
    "pytest-asyncio strict": (
        (*ASYNCIO, "-o", "asyncio_mode=strict"),
        "import pytest\npytestmark = pytest.mark.asyncio\n",
    ),
    "anyio-asyncio": (
        ANYIO,
        "import pytest\npytestmark = pytest.mark.anyio\n"
        '@pytest.fixture\ndef anyio_backend():\n    return "asyncio"\n',
    ),
    "anyio-trio": (
        ANYIO,
        "import pytest\npytestmark = pytest.mark.anyio\n"
        '@pytest.fixture\ndef anyio_backend():\n    return "trio"\n',
    ),
}


def header(plugin: str) -> tuple[tuple[str, ...], str]:
    options, text = PLUGIN_HEADERS[plugin]
    return options, textwrap.indent(text, "    ").lstrip()


@pytest.mark.parametrize("plugin", list(PLUGIN_HEADERS))
def test_the_app_from_the_projects_asgi_app_fixture_after_its_settings(
    pytester: pytest.Pytester, plugin: str
) -> None:
    # The settings apply before the startup, whatever the order of a test's
    # arguments; a fixture overridden in a module changes the app there.
    options, text = header(plugin)
    files = {
        "conftest.py": FROM_FIXTURES,
        "test_it.py": ARGUMENT_ORDERS.format(header=text),
    }
    result, raised = session(pytester, files, *options)
    result.assert_outcomes(passed=3)
    assert not raised


@pytest.mark.parametrize("plugin", ["pytest-trio", "pytest-asyncio", "anyio-trio"])
def test_an_asgi_app_fixture_in_a_test_module(
    pytester: pytest.Pytester, plugin: str
) -> None:
    options, text = header(plugin)
    tests = f"""
    {text}
    import pytest
    import myapp

    @pytest.fixture
    def asgi_app():
        return myapp.make_app({{"database_url": "in the module"}})

    async def test_get(lifespan_client):
        assert (await lifespan_client.get("/")).text == "in the module"
    """
    result, raised = session(pytester, {"test_it.py": tests}, *options)
    result.assert_outcomes(passed=1)
    assert not raised


def test_an_asgi_app_fixture_of_a_wider_scope_serves_one_lifespan_per_test(
    pytester: pytest.Pytester,
) -> None:
    # A session-scoped app (built once: a container), a lifespan per test.
    conftest = """
    import pytest
    import myapp

    BUILT = []

    @pytest.fixture(scope="session")
    def asgi_app():
        BUILT.append(1)
        return myapp.make_app({"database_url": "shared"})
    """
    tests = """
    import myapp
    from conftest import BUILT

    async def test_one(lifespan_client):
        assert (await lifespan_client.get("/")).text == "shared"

    async def test_two(lifespan_client):
        assert myapp.STARTUPS == ["shared", "shared"]
        assert BUILT == [1]
    """
    files = {"conftest.py": conftest, "test_it.py": tests}
    result, raised = session(pytester, files, *TRIO)
    result.assert_outcomes(passed=2)
    assert not raised


# The watch: what depends on the lifespan, found from each test's closure ----


def test_the_watch_follows_each_tests_closure_not_fixture_names(
    pytester: pytest.Pytester,
) -> None:
    # "client" is ours in a/ (it uses lifespan_client) and theirs in b/; a
    # conftest's own lifespan_client in c/ does not use ours. In either
    # order, nothing of b/ or c/ is watched (no lifespan is held there).
    files = {
        "conftest.py": FROM_FIXTURES,
        "a/conftest.py": """
            import pytest

            @pytest.fixture
            async def client(lifespan_client):
                yield lifespan_client
        """,
        "a/test_a.py": """
            async def test_a(client):
                assert (await client.get("/")).text == "sqlite://default"
        """,
        "b/conftest.py": """
            import pytest

            @pytest.fixture
            async def client():
                yield "theirs"
        """,
        "b/test_b.py": """
            async def test_b(client):
                assert client == "theirs"
        """,
        "c/conftest.py": """
            import pytest

            @pytest.fixture
            async def lifespan_client():
                yield "their own"
        """,
        "c/test_c.py": """
            async def test_c(lifespan_client):
                assert lifespan_client == "their own"
        """,
    }
    for order in (("a", "b", "c"), ("c", "b", "a"), ("b", "a", "c")):
        result, raised = session(pytester, files, *AUTO, *order)
        result.assert_outcomes(passed=3)
        assert not raised


@pytest.mark.parametrize("plugin", list(PLUGIN_HEADERS))
def test_a_crash_fails_the_test_it_happens_in(
    pytester: pytest.Pytester, plugin: str
) -> None:
    # The watch, in every supported version: the app's task group dies while
    # a test waits on something else; that test fails with the app's error.
    from .test_plugin import APPS, TESTS, assert_the_crash  # noqa: PLC0415

    options, text = PLUGIN_HEADERS[plugin]
    files = {"plugin_apps.py": APPS, "test_it.py": TESTS.format(header=text)}
    ini = "asgi_app = plugin_apps:starlette\n"
    result, raised = session(pytester, files, *options, ini=ini)
    result.assert_outcomes(passed=2, failed=1)
    assert list(raised) == [("test_crash", "call")]
    assert_the_crash(raised["test_crash", "call"])


# pytest-asyncio's loop layouts ------------------------------------------------

EVENT_LOOP = """
    import asyncio
    import pytest

    @pytest.fixture(scope="{scope}")
    def event_loop():
        loop = asyncio.new_event_loop()
        yield loop
        loop.close()
"""


def on_one_loop(scope: str) -> tuple[str, str, str]:
    """What puts every test and fixture on ``scope``'s loop, in the installed
    pytest-asyncio: (ini lines, conftest.py code, a test module's header).
    The recipes docs/howto/plugin.rst gives for each version."""
    if ASYNCIO_VERSION >= (0, 26):
        ini = f"asyncio_default_fixture_loop_scope = {scope}\n"
        return ini + f"asyncio_default_test_loop_scope = {scope}\n", "", ""
    mark = "import pytest\npytestmark = pytest.mark.asyncio({}={!r})\n"
    if ASYNCIO_VERSION >= (0, 24):
        ini = f"asyncio_default_fixture_loop_scope = {scope}\n"
        return ini, "", mark.format("loop_scope", scope)
    if ASYNCIO_VERSION >= (0, 23):
        return "", "", mark.format("scope", scope)
    return "", EVENT_LOOP.format(scope=scope), ""


def test_a_class_scoped_lifespan_on_the_session_loop(
    pytester: pytest.Pytester,
) -> None:
    # fastapi-pagination's layout: every test and fixture on the session's
    # loop, one lifespan per test class.
    ini, conftest, module_header = on_one_loop("session")
    tests = """
    import myapp

    class TestOne:
        async def test_a(self, lifespan_client):
            assert (await lifespan_client.get("/")).text == "from-the-ini"

        async def test_b(self, lifespan_app):
            assert len(myapp.STARTUPS) == 1

    class TestTwo:
        async def test_c(self, lifespan_client):
            assert (await lifespan_client.get("/")).text == "from-the-ini"
            assert len(myapp.STARTUPS) == 2
    """
    ini = f"asgi_app = myapp:app\nlifespan_scope = class\n{ini}"
    files = {
        "conftest.py": conftest,
        "test_it.py": module_header + textwrap.dedent(tests),
    }
    result, raised = session(pytester, files, *AUTO_AS_SET, ini=ini)
    if (0, 23) <= ASYNCIO_VERSION < (0, 24):  # its fixtures' loops cannot
        result.assert_outcomes(errors=3)
        assert "binds a plugin's class-scoped fixtures" in str(
            raised["test_a", "setup"]
        )
        return
    result.assert_outcomes(passed=3)
    assert not raised


@pytest.mark.parametrize("scope", ["module", "session"])
def test_a_wide_lifespan_on_the_loop_of_its_scope(
    pytester: pytest.Pytester, scope: str
) -> None:
    # The recipe of each version, two modules: a lifespan per module, or one.
    ini, conftest, module_header = on_one_loop(scope)
    tests = """
    import myapp

    async def test_get(lifespan_client):
        assert (await lifespan_client.get("/")).text == "from-the-ini"

    async def test_again(lifespan_app):
        assert len(myapp.STARTUPS) == {startups}
    """
    ini = f"asgi_app = myapp:app\nlifespan_scope = {scope}\n{ini}"
    files = {
        "conftest.py": conftest,
        "test_one.py": module_header + textwrap.dedent(tests).format(startups=1),
        "test_two.py": module_header
        + textwrap.dedent(tests).format(startups=2 if scope == "module" else 1),
    }
    result, raised = session(pytester, files, *AUTO_AS_SET, ini=ini)
    if (0, 23) <= ASYNCIO_VERSION < (0, 24) and scope == "module":
        result.assert_outcomes(errors=4)
        assert "binds a plugin's module-scoped fixtures" in str(
            raised["test_get", "setup"]
        )
        return
    result.assert_outcomes(passed=4)
    assert not raised


SESSION_LOOP_FIXTURES = """
    import pytest

    @pytest.fixture
    async def client(lifespan_client):  # on the session's loop, as all fixtures
        yield lifespan_client
"""


@pytest.mark.skipif(
    ASYNCIO_VERSION < (0, 24), reason="fixtures take a loop of their own from 0.24"
)
def test_a_projects_fixtures_on_the_session_loop_use_lifespan_client(
    pytester: pytest.Pytester,
) -> None:
    # fastapi-users' layout: the project's async fixtures on the session loop.
    ini, _, module_header = on_one_loop("session")
    files = {
        "conftest.py": FROM_FIXTURES + SESSION_LOOP_FIXTURES,
        "test_it.py": module_header
        + textwrap.dedent(
            """
            async def test_get(client):
                assert (await client.get("/")).text == "sqlite://default"
            """
        ),
    }
    result, raised = session(
        pytester, files, "-p", "asyncio", ini="asyncio_mode = auto\n" + ini
    )
    result.assert_outcomes(passed=1)
    assert not raised


@pytest.mark.skipif(
    ASYNCIO_VERSION < (0, 24), reason="fixtures take a loop of their own from 0.24"
)
def test_tests_on_their_own_loops_use_the_lifespan_on_the_fixtures_loop(
    pytester: pytest.Pytester,
) -> None:
    # fastapi-users' layout proper: the fixtures on the session's loop, each
    # test on its own. Requests run on the test's loop, as through the
    # project's own httpx fixtures; the lifespan is not watched there.
    files = {
        "conftest.py": FROM_FIXTURES + SESSION_LOOP_FIXTURES,
        "test_it.py": """
            import asyncio

            LOOPS = set()

            async def test_get(client, lifespan_app):
                assert (await client.get("/")).text == "sqlite://default"
                LOOPS.add(asyncio.get_running_loop())

            async def test_again(client):
                assert (await client.get("/")).text == "sqlite://default"
                LOOPS.add(asyncio.get_running_loop())
                assert len(LOOPS) == 2  # a loop each
        """,
    }
    ini = """
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = session
    """
    result, raised = session(pytester, files, "-p", "asyncio", ini=ini)
    result.assert_outcomes(passed=2)
    assert not raised


ANYIO_MARKED = """
    import pytest

    pytestmark = pytest.mark.anyio

    @pytest.fixture
    def anyio_backend():
        return "{backend}"

    async def test_get(lifespan_client):
        assert (await lifespan_client.get("/")).text == "from-the-ini"
"""


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("loaded", ["anyio first", "pytest-asyncio first"])
def test_anyio_marked_tests_under_pytest_asyncio_auto_mode(
    pytester: pytest.Pytester, loaded: str, backend: str
) -> None:
    # sse-starlette's layout. pytest-asyncio runs the test; anyio's plugin
    # runs its async fixtures if its hook comes first (pytest-asyncio 1.x
    # decides at setup, in the order the plugins were loaded): then the
    # lifespan cannot be on the test's loop, and the test is told why.
    plugins = ("-p", "anyio", *AUTO)
    if loaded == "pytest-asyncio first":
        plugins = (*AUTO, "-p", "anyio")
    ini = "asgi_app = myapp:app\n"
    tests = ANYIO_MARKED.format(backend=backend)
    result, raised = session(pytester, {"test_it.py": tests}, *plugins, ini=ini)
    version = importlib.metadata.version("pytest-asyncio")
    if loaded == "anyio first" or ASYNCIO_VERSION < (1, 0):
        result.assert_outcomes(passed=1)
        return
    result.assert_outcomes(failed=1)
    assert str(raised["test_get", "call"]).endswith(
        f"test_get is marked for anyio, but pytest-asyncio {version} runs it (in "
        "auto mode it runs every async test), while anyio's plugin runs the async "
        "fixtures it uses, on a loop of anyio's: mark such tests "
        "@pytest.mark.asyncio instead of @pytest.mark.anyio, or set asyncio_mode "
        "= strict so that anyio's plugin runs them"
    )


# The app module from the ini file's folder, once ----------------------------


def test_the_app_is_imported_once_from_the_ini_files_folder(
    pytester: pytest.Pytester,
) -> None:
    # The ini and the app in settings/, the rootdir elsewhere: the folder is
    # put on sys.path once, however many lifespans the session holds.
    (pytester.path / "settings").mkdir()
    (pytester.path / "settings" / "deployed.py").write_text(APP)
    (pytester.path / "settings" / "pytest.ini").write_text(
        "[pytest]\nasgi_app = deployed:app\n"
    )
    (pytester.path / "tests").mkdir()
    (pytester.path / "tests" / "test_many.py").write_text(
        textwrap.dedent(
            """
            import sys
            import pytest

            @pytest.mark.parametrize("n", range(20))
            async def test_get(lifespan_client, n):
                assert (await lifespan_client.get("/")).text == "from-the-ini"

            def test_path():
                folders = [p for p in sys.path if p.endswith("settings")]
                assert len(folders) == 1, folders
            """
        )
    )
    result = pytester.runpytest_inprocess(
        *SESSION_OPTIONS,
        *PLUGIN,
        *TRIO,
        "-c",
        "settings/pytest.ini",
        "--rootdir",
        str(pytester.path),
        "tests",
    )
    result.assert_outcomes(passed=21)


# What a hostile review found --------------------------------------------------


@pytest.mark.parametrize("plugin", ["pytest-trio", "pytest-asyncio", "anyio-asyncio"])
@pytest.mark.parametrize("which", ["async asgi_app", "async settings"])
def test_an_asgi_app_built_by_async_fixtures(
    pytester: pytest.Pytester, plugin: str, which: str
) -> None:
    # pytest-trio runs a fixture given an async fixture's value in the
    # test's trio.run: the lifespan fixtures must not be given asgi_app.
    options, text = header(plugin)
    decorator = (
        "pytest_asyncio.fixture" if plugin == "pytest-asyncio" else "pytest.fixture"
    )
    conftest = f"""
    import pytest
    import pytest_asyncio
    import myapp

    @{decorator}
    async def settings():
        return {{"database_url": "async"}}
    """
    if which == "async asgi_app":
        conftest += f"""
    @{decorator}
    async def asgi_app(settings):
        return myapp.make_app(settings)
    """
    else:
        conftest += """
    @pytest.fixture
    def asgi_app(settings):
        return myapp.make_app(settings)
    """
    tests = f"""
    {text}
    async def test_get(lifespan_client, lifespan_app):
        assert (await lifespan_client.get("/")).text == "async"
        assert lifespan_client.lifespan is lifespan_app
    """
    files = {"conftest.py": conftest, "test_it.py": tests}
    result, raised = session(pytester, files, *options)
    result.assert_outcomes(passed=1)
    assert not raised


@pytest.mark.parametrize("plugins", [AUTO, TRIO], ids=["pytest-asyncio", "pytest-trio"])
def test_a_fixture_that_overrides_one_of_its_name_is_watched_alone(
    pytester: pytest.Pytester, plugins: tuple[str, ...]
) -> None:
    # The module's db uses the lifespan and the conftest's db it overrides;
    # that one does not, and is not watched (no lifespan is held yet).
    files = {
        "conftest.py": FROM_FIXTURES
        + """
    @pytest.fixture
    async def db():
        return ["base"]
    """,
        "test_it.py": """
    import pytest

    @pytest.fixture
    async def db(db, lifespan_client):
        return db + [(await lifespan_client.get("/")).text]

    async def test_db(db):
        assert db == ["base", "sqlite://default"]
    """,
    }
    result, raised = session(pytester, files, *plugins)
    result.assert_outcomes(passed=1)
    assert not raised


def test_fixtures_of_a_plugin_named_with_p_win(pytester: pytest.Pytester) -> None:
    # -p plugins are registered before the entry points: ours come last all
    # the same.
    files = {
        "their_plugin.py": THEIR_FIXTURES
        + """
    @pytest.fixture
    def asgi_app():
        return "their app"
    """,
        "test_it.py": """
    def test_theirs(lifespan_client, lifespan_app, asgi_app):
        assert lifespan_client == "their lifespan_client"
        assert lifespan_app == "their lifespan_app"
        assert asgi_app == "their app"
    """,
    }
    pytester.syspathinsert()
    # As pytest loads them: -p plugins first, then the entry points (ours).
    ours_after = ("-p", "their_plugin", *PLUGIN, *AUTO)
    result, raised = session(pytester, files, *ours_after)
    result.assert_outcomes(passed=1)
    assert not raised


def test_async_plugins_loaded_by_module_name(pytester: pytest.Pytester) -> None:
    tests = """
    import pytest

    @pytest.mark.trio
    async def test_trio(lifespan_client):
        assert (await lifespan_client.get("/")).text == "from-the-ini"

    @pytest.mark.asyncio
    async def test_asyncio(lifespan_client):
        assert (await lifespan_client.get("/")).text == "from-the-ini"
    """
    options = ("-p", "pytest_trio.plugin", "-p", "pytest_asyncio.plugin")
    ini = "asgi_app = myapp:app\n"
    if ASYNCIO_VERSION >= (0, 24):
        ini += "asyncio_default_fixture_loop_scope = function\n"
    result, raised = session(pytester, {"test_it.py": tests}, *options, ini=ini)
    result.assert_outcomes(passed=2)
    assert not raised


def test_a_crash_cancels_every_watched_fixture_pytest_trio_sets_up(
    pytester: pytest.Pytester,
) -> None:
    # pytest-trio sets up a test's async fixtures side by side: the crash
    # cancels each that runs (here one waits for ever), not only the last.
    from .test_plugin import APPS, assert_the_crash  # noqa: PLC0415

    tests = """
    import anyio
    import pytest

    @pytest.fixture
    async def waiting(lifespan_client):
        await anyio.sleep_forever()  # only the watch ends this

    @pytest.fixture
    async def breaking(lifespan_client):
        await anyio.sleep(0.01)
        await lifespan_client.get("/break")

    async def test_crash(waiting, breaking):
        raise AssertionError("must not run")
    """
    files = {"plugin_apps.py": APPS, "test_it.py": tests}
    ini = "asgi_app = plugin_apps:starlette\n"
    result, raised = session(pytester, files, *TRIO, ini=ini)
    result.assert_outcomes(failed=1)
    assert_the_crash(raised["test_crash", "call"])


def test_help_does_not_import_the_app(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasgi_app = nowhere:app\n")
    result = pytester.runpytest_inprocess(*SESSION_OPTIONS, *PLUGIN, "--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*asgi_app (string)*"])


def test_a_wrong_option_is_one_usage_error_with_an_asgi_app_fixture(
    pytester: pytest.Pytester,
) -> None:
    files = {
        "sub/conftest.py": FROM_FIXTURES,
        "sub/test_it.py": "async def test_get(lifespan_client):\n    pass\n",
        "test_other.py": FROM_FIXTURES
        + "\nasync def test_x(lifespan_app):\n    pass\n",
    }
    ini = "lifespan_startup_timeout = soon\n"
    result, raised = session(pytester, files, *TRIO, ini=ini)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert not raised
    assert result.stderr.lines[0] == (
        "ERROR: trio_lifespan: lifespan_startup_timeout must be a number of seconds "
        "or 'none', not 'soon' (in the pytest ini)"
    )


def test_an_asgi_app_narrower_than_the_lifespan_is_told_what_to_widen(
    pytester: pytest.Pytester,
) -> None:
    ini, conftest, module_header = on_one_loop("session")
    files = {
        "conftest.py": textwrap.dedent(FROM_FIXTURES) + textwrap.dedent(conftest),
        "test_it.py": module_header
        + "async def test_get(lifespan_client):\n    pass\n",
    }
    ini = f"lifespan_scope = session\nasyncio_mode = auto\n{ini}"
    result, raised = session(pytester, files, "-p", "asyncio", ini=ini)
    result.assert_outcomes(errors=1)
    error = raised["test_get", "setup"]
    assert type(error) is RuntimeError
    assert str(error) == (
        "lifespan_scope = session in the pytest ini, but the asgi_app fixture "
        'lives for less than a session: give it @pytest.fixture(scope="session") '
        "(or a wider scope), or set lifespan_scope to its scope"
    )


def test_pytests_own_scope_errors_below_asgi_app_come_out_as_they_are(
    pytester: pytest.Pytester,
) -> None:
    # asgi_app is wide enough; what it depends on is not: pytest's words.
    conftest = textwrap.dedent(FROM_FIXTURES).replace(
        "@pytest.fixture\ndef asgi_app",
        '@pytest.fixture(scope="session")\ndef asgi_app',
    )
    files = {
        "conftest.py": conftest,
        "test_it.py": "async def test_get(lifespan_client):\n    pass\n",
    }
    result, raised = session(pytester, files, *TRIO)
    result.assert_outcomes(errors=1)
    error = raised["test_get", "setup"]
    assert type(error) is pytest.fail.Exception
    assert "ScopeMismatch" in str(error)
    assert "function scoped fixture settings with a session scoped" in str(error)


def test_an_asgi_app_fixture_that_returns_the_factory_is_told_to_call_it(
    pytester: pytest.Pytester,
) -> None:
    conftest = """
    import pytest
    import myapp

    @pytest.fixture
    def asgi_app():
        return myapp.make_app
    """
    files = {
        "conftest.py": conftest,
        "test_it.py": "async def test_get(lifespan_app):\n    pass\n",
    }
    result, raised = session(pytester, files, *AUTO)
    result.assert_outcomes(errors=1)
    error = raised["test_get", "setup"]
    assert type(error).__name__ == "LifespanNotASGIApp"
    assert getattr(error, "__notes__", [""])[-1] == (
        "(pytest plugin: the asgi_app fixture returned the plain function "
        "make_app: if it makes the app, return make_app() instead)"
    )


def test_a_class_that_overrides_what_a_wide_app_is_made_from_is_refused(
    pytester: pytest.Pytester,
) -> None:
    # The module's lifespan was made for test_first, from the module's
    # database_url; the class overrides it for its tests alone. pytest would
    # refuse such a graph (a narrower fixture below a wider one); it must
    # not be served the module's app silently.
    ini, conftest, module_header = on_one_loop("module")
    conftest = textwrap.dedent(conftest) + textwrap.dedent(
        FROM_FIXTURES.replace("@pytest.fixture\n", '@pytest.fixture(scope="module")\n')
    )
    tests = module_header + textwrap.dedent(
        """
        import pytest

        async def test_first(lifespan_client):
            assert (await lifespan_client.get("/")).text == "sqlite://default"

        class TestOther:
            @pytest.fixture
            def database_url(self):
                return "sqlite://other"

            async def test_other(self, lifespan_client):
                raise AssertionError("must not run")
        """
    )
    ini = f"lifespan_scope = module\nasyncio_mode = auto\n{ini}"
    files = {"conftest.py": conftest, "test_it.py": tests}
    result, raised = session(pytester, files, "-p", "asyncio", ini=ini)
    if (0, 23) <= ASYNCIO_VERSION < (0, 24):  # refuses module lifespans first
        result.assert_outcomes(errors=2)
        return
    result.assert_outcomes(passed=1, failed=1)
    error = raised["test_other", "call"]
    assert type(error) is RuntimeError
    assert str(error) == (
        "test_other overrides what the asgi_app fixture is made from "
        "(database_url), but the app and its lifespan are held for the whole "
        "module (lifespan_scope = module in the pytest ini), made for another "
        'test: override it for the whole module (a fixture of scope="module" in '
        "its module or conftest.py), or set lifespan_scope = function"
    )
