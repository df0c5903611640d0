"""The plugin's one place that knows the async plugins, without a session.

What differs between pytest-trio, anyio's plugin and each version of
pytest-asyncio is data in ``trio_lifespan._pytest_async``: walked here for
every version the plugin treats differently (the sessions that run them are
in tests/test_plugin_layouts.py, and CI runs those under each version).
"""

from __future__ import annotations

from typing import Any

import pytest

from trio_lifespan import _pytest_async as table
from trio_lifespan._pytest_plugin import SCOPES

pytest_plugins = ["pytester"]

VERSIONS = {
    "0.21.2": (0, 21),
    "0.23.8": (0, 23),
    "0.25.3": (0, 25),
    "1.0.0": (1, 0),
    "1.5.0rc1": (1, 5),
    "2": (2, 0),
    "0.x": (0, 0),
}


@pytest.mark.parametrize(("text", "parsed"), VERSIONS.items())
def test_versions_are_read_as_major_and_minor(
    text: str, parsed: tuple[int, int]
) -> None:
    assert table.parse_version(text) == parsed


class Item:
    """What the table reads of a test: its name, marks and fixtures."""

    def __init__(self, *marks: str, fixturenames: tuple[str, ...] = ()) -> None:
        self.name = "test_x"
        self.marks = marks
        self.fixturenames = list(fixturenames)

    def get_closest_marker(self, name: str) -> object:
        return name if name in self.marks else None


def item(*marks: str, fixturenames: tuple[str, ...] = ()) -> Any:
    return Item(*marks, fixturenames=fixturenames)


def asyncio_at(version: str, fixture_loop: str = "") -> table.Asyncio:
    return table.Asyncio(table.parse_version(version), version, fixture_loop)


def test_each_plugin_runs_the_tests_it_marks() -> None:
    trio, anyio, asyncio = table.Trio(), table.Anyio(), asyncio_at("1.5.0")
    assert trio.runs(item("trio"))
    assert not trio.runs(item("asyncio"))
    assert asyncio.runs(item("asyncio"))
    assert not asyncio.runs(item("trio"))
    assert anyio.runs(item(fixturenames=("anyio_backend",)))
    assert not anyio.runs(item("anyio"))  # the mark alone: anyio_backend decides
    assert {trio.kind, anyio.kind, asyncio.kind} == {table.PLAIN, table.ASYNCIO}


@pytest.mark.parametrize("scope", SCOPES)
def test_pytest_trio_and_anyio_hold_a_lifespan_per_test(scope: Any) -> None:
    for plugin in (table.Trio(), table.Anyio()):
        error = plugin.scope_error(scope, item())
        if scope == "function":
            assert error is None
            continue
        assert error == (
            f"lifespan_scope = {scope} in the pytest ini, but test_x runs under "
            f"{plugin.name}, where the lifespan fixtures live as long as one "
            "test: set lifespan_scope = function (or leave it out); wider scopes "
            "work with pytest-asyncio"
        )
        assert plugin.loop_scope(scope) == (scope, f"lifespan_scope = {scope}")
        assert plugin.loop_advice(scope, item()) == (
            f"{plugin.name} runs each test and its fixtures on a loop of their "
            "own: set lifespan_scope = function in the pytest ini"
        )


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("version", ["0.21.2", "0.23.8", "0.25.3", "1.5.0"])
def test_pytest_asyncio_holds_which_scopes(version: str, scope: Any) -> None:
    error = asyncio_at(version).scope_error(scope, item("asyncio"))
    if version == "0.23.8" and scope in ("class", "module", "package"):
        assert error == (
            f"lifespan_scope = {scope} in the pytest ini, but pytest-asyncio "
            f"0.23.8 binds a plugin's {scope}-scoped fixtures to the loop of the "
            f"first {scope} it collects, so other {scope}s cannot use them: set "
            'lifespan_scope = session (with @pytest.mark.asyncio(scope="session") '
            "on the tests) or function, or upgrade to pytest-asyncio 0.24 or later"
        )
    else:
        assert error is None


ADVICE = {
    "0.21.2": (
        "run the tests and their fixtures on that loop (with pytest-asyncio "
        "0.21.2, override its event_loop fixture with scope='module' in your "
        "conftest.py), or set lifespan_scope to the loop scope they use"
    ),
    "0.23.8": (
        "run the tests and their fixtures on that loop (with pytest-asyncio "
        '0.23.8, mark the tests @pytest.mark.asyncio(scope="module"), with '
        "pytestmark in a module or in a conftest.py's "
        "pytest_collection_modifyitems), or set lifespan_scope to the loop "
        "scope they use"
    ),
    "0.25.3": (
        "run the tests and their fixtures on that loop (with pytest-asyncio "
        '0.25.3, mark the tests @pytest.mark.asyncio(loop_scope="module"), with '
        "pytestmark in a module or in a conftest.py's "
        "pytest_collection_modifyitems (this version has no ini option for the "
        "tests' loop), and set asyncio_default_fixture_loop_scope = module in "
        "the pytest ini), or set lifespan_scope to the loop scope they use"
    ),
    "1.5.0": (
        "run the tests and their fixtures on that loop "
        "(asyncio_default_test_loop_scope = module and "
        "asyncio_default_fixture_loop_scope = module in the pytest ini, or "
        'loop_scope="module" in their marks and decorators), or set '
        "lifespan_scope to the loop scope they use"
    ),
}


@pytest.mark.parametrize("version", ADVICE)
def test_pytest_asyncio_advice_names_what_works_in_that_version(version: str) -> None:
    plugin = asyncio_at(version)
    assert plugin.loop_advice("module", item("asyncio")) == ADVICE[version]


@pytest.mark.parametrize("version", ["0.25.3", "1.5.0"])
def test_an_anyio_marked_test_pytest_asyncio_runs_is_told_what_to_mark(
    version: str,
) -> None:
    plugin = asyncio_at(version)
    test = item("asyncio", "anyio", fixturenames=("anyio_backend",))
    assert plugin.loop_advice("function", test) == (
        f"test_x is marked for anyio, but pytest-asyncio {version} runs it (in auto "
        "mode it runs every async test), while anyio's plugin runs the async "
        "fixtures it uses, on a loop of anyio's: mark such tests "
        "@pytest.mark.asyncio instead of @pytest.mark.anyio, or set asyncio_mode = "
        "strict so that anyio's plugin runs them"
    )


@pytest.mark.parametrize(
    ("fixture_loop", "scope", "expected"),
    [
        ("", "function", ("function", "lifespan_scope = function")),
        ("function", "module", ("module", "lifespan_scope = module")),
        (
            "session",
            "class",
            ("session", "asyncio_default_fixture_loop_scope = session"),
        ),
        ("session", "session", ("session", "lifespan_scope = session")),
        ("nonsense", "module", ("module", "lifespan_scope = module")),
    ],
)
def test_the_lifespan_is_held_on_the_projects_fixture_loop_if_no_narrower(
    fixture_loop: str, scope: Any, expected: tuple[str, str]
) -> None:
    plugin = asyncio_at("1.5.0", fixture_loop)
    assert plugin.loop_scope(scope) == expected
    # Tests on their own loops are the project's choice only then.
    assert plugin.loops_differ_by_choice(scope) == (expected[0] != scope)
    assert not table.Trio().loops_differ_by_choice(scope)


@pytest.mark.parametrize(
    ("version", "kwargs"),
    [
        ("0.21.2", {"scope": "module", "name": "x"}),
        ("0.23.8", {"scope": "module", "name": "x"}),
        ("0.24.0", {"scope": "module", "name": "x", "loop_scope": "session"}),
        ("1.5.0", {"scope": "module", "name": "x", "loop_scope": "session"}),
    ],
)
def test_pytest_asyncio_fixtures_are_made_with_what_that_version_takes(
    monkeypatch: pytest.MonkeyPatch, version: str, kwargs: dict[str, str]
) -> None:
    # pytest-asyncio 0.21 and 0.23 refuse loop_scope: every session stopped.
    import pytest_asyncio  # noqa: PLC0415

    calls: list[tuple[object, dict[str, str]]] = []

    def fixture(function: object, **given: str) -> object:
        calls.append((function, given))
        return "made"

    monkeypatch.setattr(pytest_asyncio, "fixture", fixture)
    plugin = asyncio_at(version, "session")

    def function() -> None: ...

    assert plugin.make(function, "x", "module") == "made"
    assert calls == [(function, kwargs)]


def test_only_the_loaded_async_plugins_are_asked(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig("-p", "no:asyncio", "-p", "no:anyio", "-p", "trio")
    assert [type(p).__name__ for p in table.async_plugins(config)] == ["Trio"]
