"""Real pytest sessions: an app crashes while a test holds its lifespan.

Each test here runs one inner pytest session (pytester; in this process but
for one) with exactly one async plugin loaded: pytest-trio, pytest-asyncio or
anyio's. The sessions run the examples that docs/howto/fixtures.rst shows: a
Starlette app whose lifespan keeps a background task (a pretend db pool) in
an anyio task group, and a route that makes that task raise
``RuntimeError("db pool died")``. Each test checks what the session reports
(its outcome counts and the lines that name the crash), what each test phase
raised (the exception objects themselves, caught by a small plugin), and
that it ended well within its time limit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trio_lifespan import LifespanUnavailable

from .typed import makepyfile

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup, ExceptionGroup

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
# Seconds: pytest-timeout's limit on each inner test, and the bound on the
# whole session. A session takes a fraction of a second; one that hangs
# fails here instead of holding up the suite.
LIMIT = 15

Phases = dict[tuple[str, str], BaseException]


class Raised:
    """A plugin for the inner session: what each test's phases raised."""

    def __init__(self) -> None:
        self.phases: Phases = {}

    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> None:
        if call.excinfo is not None:
            self.phases[item.name, call.when] = call.excinfo.value


def example(name: str) -> str:
    return (EXAMPLES / f"{name}.py").read_text()


def run_session(
    pytester: pytest.Pytester, tests: str, *options: str
) -> tuple[pytest.RunResult, Phases]:
    """Run ``tests`` as test_crash.py beside the crashing app, in this process.

    No plugin is loaded but those ``options`` name (``-p trio``, ...) and
    pytest-timeout; warnings are errors.
    """
    makepyfile(pytester, crashing_app=example("crashing_app"), test_crash=tests)
    raised = Raised()
    result = pytester.runpytest_inprocess(
        *SESSION_OPTIONS,
        # In this process the plugins are imported already, too late for
        # pytest to rewrite their asserts: not the session's concern.
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        *options,
        plugins=[raised],
    )
    assert result.duration < LIMIT, result.stdout.str()
    return result, raised.phases


# No plugin is loaded but those named: PYTEST_DISABLE_PLUGIN_AUTOLOAD, set by
# the fixture below (pytest 7.4 has no --disable-plugin-autoload).
SESSION_OPTIONS = (
    "-p",
    "timeout",
    "-o",
    f"timeout={LIMIT}",
    "-p",
    "no:cacheprovider",
    "-W",
    "error",
)


@pytest.fixture(autouse=True)
def _only_the_plugins_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def the_app_error(unavailable: BaseException) -> BaseException:
    """The app's error that a request's ``LifespanUnavailable`` names."""
    assert type(unavailable) is LifespanUnavailable
    error = unavailable.__cause__
    assert type(error) is RuntimeError
    assert str(error) == "db pool died"
    assert unavailable.error is error
    return error


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions in ``exc``, a group's at any depth, groups left out."""
    if isinstance(exc, BaseExceptionGroup):
        members: tuple[BaseException, ...] = exc.exceptions  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        return [leaf for member in members for leaf in leaves(member)]
    return [exc]


UNAVAILABLE_LINE = (
    "*trio_lifespan.LifespanUnavailable: the app's lifespan has failed, so "
    "requests are not passed to it: RuntimeError: db pool died. *"
)


# pytest-trio -------------------------------------------------------------------


def test_pytest_trio_fails_the_test_that_crashed_the_app(
    pytester: pytest.Pytester,
) -> None:
    # The fixture runs in a task of its own: the crash cancels it, pytest-trio
    # then cancels the test and fails it with everything that was raised.
    result, raised = run_session(pytester, example("crash_trio"), "-p", "trio")
    result.assert_outcomes(passed=2, failed=1)
    assert list(raised) == [("test_the_crash", "call")]
    # pytest-trio's own groups: one for the test's request, one for the
    # fixture's exit.
    group = raised["test_the_crash", "call"]
    assert type(group) is ExceptionGroup
    unavailable, error = sorted(
        leaves(group), key=lambda exc: type(exc) is not LifespanUnavailable
    )
    # The fixture's `async with` raised the very error the request named.
    assert the_app_error(unavailable) is error
    result.stdout.fnmatch_lines(
        [
            "FAILED test_crash.py::test_the_crash - *ExceptionGroup: errors *",
            "*1 failed, 2 passed in *",
        ]
    )
    result.stdout.fnmatch_lines([UNAVAILABLE_LINE])
    result.stdout.fnmatch_lines(["*| RuntimeError: db pool died"])


def test_pytest_trio_refuses_a_fixture_wider_than_a_function(
    pytester: pytest.Pytester,
) -> None:
    wider = example("crash_trio").replace(
        "@pytest.fixture  #", '@pytest.fixture(scope="module")  #'
    )
    result, raised = run_session(pytester, wider, "-p", "trio", "-k", "before")
    result.assert_outcomes(errors=1, deselected=2)
    error = raised["test_before_the_crash", "setup"]
    assert type(error) is RuntimeError
    assert str(error) == "Trio fixtures must be function-scope"


# pytest-asyncio ----------------------------------------------------------------


def asyncio_example(scope: str) -> str:
    source = example("crash_asyncio")
    assert source.count('"module"') == 3
    return source.replace('"module"', f'"{scope}"')


ASYNCIO_OPTIONS = ("-p", "asyncio", "-o", "asyncio_default_fixture_loop_scope=function")


def test_pytest_asyncio_function_scope(pytester: pytest.Pytester) -> None:
    # The fixture's setup, the test and the teardown each run in a task of
    # their own: the crash cannot cancel the test, so its next request fails.
    result, raised = run_session(
        pytester, asyncio_example("function"), *ASYNCIO_OPTIONS
    )
    result.assert_outcomes(passed=2, failed=1, errors=1)
    assert list(raised) == [("test_the_crash", "call"), ("test_the_crash", "teardown")]
    error = the_app_error(raised["test_the_crash", "call"])
    assert raised["test_the_crash", "teardown"] is error  # the `async with` exit
    result.stdout.fnmatch_lines([UNAVAILABLE_LINE])
    result.stdout.fnmatch_lines(
        [
            "FAILED test_crash.py::test_the_crash - trio_lifespan.LifespanUnavailable*",
            "ERROR test_crash.py::test_the_crash - RuntimeError: db pool died",
            "*1 failed, 2 passed, 1 error in *",
        ]
    )


@pytest.mark.parametrize("scope", ["module", "session"])
def test_pytest_asyncio_wider_scopes(pytester: pytest.Pytester, scope: str) -> None:
    # Every test after the crash that uses the fixture fails at its first
    # request; the error comes out of the fixture's teardown when its scope
    # ends.
    result, raised = run_session(pytester, asyncio_example(scope), *ASYNCIO_OPTIONS)
    result.assert_outcomes(passed=1, failed=2, errors=1)
    assert list(raised) == [
        ("test_the_crash", "call"),
        ("test_after_the_crash", "call"),
        ("test_after_the_crash", "teardown"),
    ]
    error = the_app_error(raised["test_the_crash", "call"])
    assert the_app_error(raised["test_after_the_crash", "call"]) is error
    assert raised["test_after_the_crash", "teardown"] is error
    result.stdout.fnmatch_lines([UNAVAILABLE_LINE, UNAVAILABLE_LINE])
    result.stdout.fnmatch_lines(
        [
            "FAILED test_crash.py::test_the_crash - trio_lifespan.LifespanUnavailable*",
            "FAILED test_crash.py::test_after_the_crash - trio_lifespan.LifespanUnav*",
            "ERROR test_crash.py::test_after_the_crash - RuntimeError: db pool died",
            "*2 failed, 1 passed, 1 error in *",
        ]
    )


# anyio's plugin ----------------------------------------------------------------


def test_anyio_with_the_lifespan_opened_in_the_test(pytester: pytest.Pytester) -> None:
    # The crash ends the test's block; the app's own error comes out of it,
    # bare, on both backends.
    result, raised = run_session(pytester, example("crash_anyio"), "-p", "anyio")
    result.assert_outcomes(passed=4, failed=2)
    assert list(raised) == [
        ("test_the_crash[asyncio]", "call"),
        ("test_the_crash[trio]", "call"),
    ]
    for error in raised.values():
        assert type(error) is RuntimeError
        assert str(error) == "db pool died"
    result.stdout.fnmatch_lines(
        [
            "FAILED test_crash.py::test_the_crash[asyncio] - RuntimeError: db pool died",
            "FAILED test_crash.py::test_the_crash[trio] - RuntimeError: db pool died",
            "*2 failed, 4 passed in *",
        ]
    )


def test_anyio_a_request_in_the_block_after_the_crash(
    pytester: pytest.Pytester,
) -> None:
    # On asyncio the crash cancels the test where the route left off; on trio
    # nothing checkpoints before the next request, which is refused. Either
    # way the block ends with the app's own error, not with the refusal it
    # caused.
    source = example("crash_anyio")
    crash = (
        'await client.get("/break-the-pool")  # the pool\'s task dies, and the block\n'
    )
    assert source.count(crash) == 1
    source = source.replace(crash, crash + '        await client.get("/users")\n')
    result, raised = run_session(pytester, source, "-p", "anyio")
    result.assert_outcomes(passed=4, failed=2)
    for backend in ("asyncio", "trio"):
        error = raised[f"test_the_crash[{backend}]", "call"]
        assert type(error) is RuntimeError, backend
        assert str(error) == "db pool died"


# What the how-to warns about: with anyio's plugin the fixture and the test
# share one task, so the crash cancels anyio's runner itself. (On trio the
# session hangs in the fixture's teardown, so that one is not run here.)
ANYIO_FIXTURE = """
from collections.abc import AsyncGenerator

import httpx
import pytest
from crashing_app import app

from trio_lifespan import open_lifespan

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client() -> AsyncGenerator[httpx.AsyncClient]:
    async with open_lifespan(app) as asgi_app:
        transport = httpx.ASGITransport(app=asgi_app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://app"
        ) as client:
            yield client


async def test_the_crash(client: httpx.AsyncClient) -> None:
    await client.get("/break-the-pool")


async def test_after_the_crash(client: httpx.AsyncClient) -> None:
    assert (await client.get("/users")).json() == {"users": 3}
"""


def test_anyio_on_asyncio_with_the_lifespan_in_a_fixture(
    pytester: pytest.Pytester,
) -> None:
    # In a process of its own: anyio's runner leaves the fixture's generator
    # unfinished, and its garbage must not reach the tests that come after.
    makepyfile(pytester, crashing_app=example("crashing_app"), test_crash=ANYIO_FIXTURE)
    result = pytester.runpytest_subprocess(
        *SESSION_OPTIONS, "-p", "anyio", timeout=LIMIT
    )
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            # The cancellation of the test names the crash...
            "E * asyncio.exceptions.CancelledError: *RuntimeError: db pool died",
            # ... but it ended anyio's runner task, so the fixture's teardown
            # never reached the `async with` exit.
            "FAILED test_crash.py::test_the_crash - asyncio.exceptions.CancelledError*",
            "ERROR test_crash.py::test_the_crash - anyio.*ClosedResource*",
            "*1 failed, 1 passed, 1 error in *",
        ]
    )
