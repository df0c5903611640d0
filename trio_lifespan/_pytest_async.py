"""The pytest plugin's one place that knows the async plugins.

Each async plugin that can run a test (pytest-trio, anyio's plugin,
pytest-asyncio) is an :class:`AsyncPlugin`: whether it runs a given test,
how to make an async fixture it will run, which lifespan scopes it can hold,
and what to tell a project whose tests and lifespan are on different loops.
pytest-asyncio's answers depend on its version, decided once per session
(:func:`asyncio_plugin`): the rest of the plugin never asks which library or
which version runs.

Versions of pytest-asyncio, as this module treats them:

- 0.21 and 0.22: one ``event_loop`` fixture, function-scoped unless the
  project overrides it; fixtures take no loop argument.
- 0.23: a loop per scope, chosen by the fixture's scope (``scope=``); tests
  choose theirs with ``@pytest.mark.asyncio(scope=...)``. It binds a
  plugin's class-, module- or package-scoped fixture to the loop of the
  first module collected, so only function and session lifespans work.
- 0.24 and 0.25: ``loop_scope=`` on fixtures and marks, and
  ``asyncio_default_fixture_loop_scope``; no ini option for the tests' loop.
- 0.26 and 1.x: ``asyncio_default_test_loop_scope`` too.

Imported only once a project uses the plugin's fixtures.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from ._pytest_plugin import Scope

from ._pytest_plugin import SCOPES, is_scope

#: The kinds of async fixture: ``plain`` ones (``pytest.fixture``), which
#: pytest-trio and anyio run, and pytest-asyncio's own.
PLAIN, ASYNCIO = "plain", "asyncio"


class AsyncPlugin(abc.ABC):
    """One async plugin, as the lifespan fixtures need to know it."""

    #: How messages name it (``pytest-asyncio 0.23.8``).
    name: str
    #: The kind of async fixture it runs (:data:`PLAIN` or :data:`ASYNCIO`).
    kind: str

    @abc.abstractmethod
    def runs(self, item: pytest.Item) -> bool:
        """Whether this plugin runs ``item``, a test."""
        ...

    def make(self, function: Callable[..., object], name: str, scope: Scope) -> object:
        """An async fixture of ``scope`` that this plugin runs."""
        import pytest  # noqa: PLC0415

        return pytest.fixture(function, scope=scope, name=name)

    @contextlib.contextmanager
    def setting_up(self, item: pytest.Item) -> Generator[None]:
        """Around the setup of one of our fixtures of this plugin's kind, for
        ``item``: whatever it takes for this plugin, not another, to run it."""
        yield

    def loop_scope(self, scope: Scope) -> tuple[Scope, str]:
        """The scope of the loop a lifespan of ``scope`` is held on, and the
        ini option that chose it."""
        return scope, f"lifespan_scope = {scope}"

    def loops_differ_by_choice(self, scope: Scope) -> bool:
        """Whether tests on another loop than a lifespan of ``scope`` are the
        project's own layout, to be served as its own fixtures serve them."""
        return False

    def scope_error(self, scope: Scope, item: pytest.Item) -> str | None:
        """Why a lifespan of ``scope`` cannot be held for ``item``, if it cannot."""
        if scope == "function":
            return None
        return (
            f"lifespan_scope = {scope} in the pytest ini, but {item.name} runs "
            f"under {self.name}, where the lifespan fixtures live as long as one "
            "test: set lifespan_scope = function (or leave it out); wider scopes "
            "work with pytest-asyncio"
        )

    def loop_advice(self, scope: Scope, item: pytest.Item) -> str:
        """What to do so that ``item``, its fixtures and the lifespan run on
        ``scope``'s loop."""
        return (
            f"{self.name} runs each test and its fixtures on a loop of their "
            "own: set lifespan_scope = function in the pytest ini"
        )


class Trio(AsyncPlugin):
    """pytest-trio: a test marked ``trio`` (trio mode marks every async test)."""

    name = "pytest-trio"
    kind = PLAIN

    def runs(self, item: pytest.Item) -> bool:
        return item.get_closest_marker("trio") is not None


class Anyio(AsyncPlugin):
    """anyio's plugin: a test that uses the ``anyio_backend`` fixture."""

    name = "anyio's plugin"
    kind = PLAIN

    def runs(self, item: pytest.Item) -> bool:
        return "anyio_backend" in getattr(item, "fixturenames", ())


class Asyncio(AsyncPlugin):
    """pytest-asyncio: a test it marked ``asyncio`` (auto mode marks every
    async test, those marked for anyio too)."""

    kind = ASYNCIO

    def __init__(
        self, version: tuple[int, int], text: str, fixture_loop: str = ""
    ) -> None:
        self.version = version
        self.name = f"pytest-asyncio {text}"
        #: asyncio_default_fixture_loop_scope (0.24 and later), if a scope.
        self.fixture_loop: Scope | None = (
            fixture_loop if is_scope(fixture_loop) else None
        )

    def loop_scope(self, scope: Scope) -> tuple[Scope, str]:
        """The lifespan is held on the loop the project's own fixtures use
        (asyncio_default_fixture_loop_scope), if it is no narrower."""
        loop = self.fixture_loop
        if loop is not None and SCOPES.index(loop) > SCOPES.index(scope):
            return loop, f"asyncio_default_fixture_loop_scope = {loop}"
        return super().loop_scope(scope)

    def loops_differ_by_choice(self, scope: Scope) -> bool:
        """With its fixtures on a wider loop than its tests' (fastapi-users'
        layout: asyncio_default_fixture_loop_scope = session, tests on their
        own loops), a project's own fixtures serve its tests across loops, as
        httpx's transport does: a request runs on the test's loop. So do the
        lifespan fixtures, held on the fixtures' loop; the watch, which needs
        the lifespan's loop running, does not apply there."""
        return self.loop_scope(scope)[0] != scope

    def runs(self, item: pytest.Item) -> bool:
        return item.get_closest_marker("asyncio") is not None

    def make(self, function: Callable[..., object], name: str, scope: Scope) -> object:
        import pytest_asyncio  # noqa: PLC0415 - loaded already: it is this plugin

        fixture: Any = pytest_asyncio.fixture  # (its overloads differ by version)
        if self.version >= (0, 24):
            loop, _ = self.loop_scope(scope)
            return fixture(function, scope=scope, name=name, loop_scope=loop)
        return fixture(function, scope=scope, name=name)

    @contextlib.contextmanager
    def setting_up(self, item: pytest.Item) -> Generator[None]:
        """Hide ``anyio_backend`` from anyio's plugin while our fixture is set
        up: in auto mode pytest-asyncio runs the tests marked for anyio, but
        anyio's plugin, if its hook comes first, would run the async fixtures
        of such a test on a loop of its own, not the test's."""
        names: list[str] = getattr(item, "fixturenames", [])
        if "anyio_backend" not in names:
            yield
            return
        writable: Any = item  # (pytest's fixturenames is a plain list attribute)
        writable.fixturenames = [name for name in names if name != "anyio_backend"]
        try:
            yield
        finally:
            writable.fixturenames = names

    def scope_error(self, scope: Scope, item: pytest.Item) -> str | None:
        if (0, 23) <= self.version < (0, 24) and scope not in ("function", "session"):
            return (
                f"lifespan_scope = {scope} in the pytest ini, but {self.name} "
                f"binds a plugin's {scope}-scoped fixtures to the loop of the "
                f"first {scope} it collects, so other {scope}s cannot use them: "
                "set lifespan_scope = session (with "
                '@pytest.mark.asyncio(scope="session") on the tests) or '
                "function, or upgrade to pytest-asyncio 0.24 or later"
            )
        return None

    def loop_advice(self, scope: Scope, item: pytest.Item) -> str:
        if "anyio_backend" in getattr(item, "fixturenames", ()):
            return (
                f"{item.name} is marked for anyio, but {self.name} runs it (in "
                "auto mode it runs every async test), while anyio's plugin runs "
                "the async fixtures it uses, on a loop of anyio's: mark such tests "
                "@pytest.mark.asyncio instead of @pytest.mark.anyio, or set "
                "asyncio_mode = strict so that anyio's plugin runs them"
            )
        return (
            f"run the tests and their fixtures on that loop ({self._advice(scope)}), "
            "or set lifespan_scope to the loop scope they use"
        )

    def _advice(self, scope: Scope) -> str:
        if self.version < (0, 23):
            return (
                f"with {self.name}, override its event_loop fixture with "
                f"scope={scope!r} in your conftest.py"
            )
        if self.version < (0, 24):
            return (
                f"with {self.name}, mark the tests "
                f'@pytest.mark.asyncio(scope="{scope}"), with pytestmark in a '
                "module or in a conftest.py's pytest_collection_modifyitems"
            )
        if self.version < (0, 26):
            return (
                f"with {self.name}, mark the tests "
                f'@pytest.mark.asyncio(loop_scope="{scope}"), with pytestmark in a '
                "module or in a conftest.py's pytest_collection_modifyitems (this "
                "version has no ini option for the tests' loop), and set "
                f"asyncio_default_fixture_loop_scope = {scope} in the pytest ini"
            )
        return (
            f"asyncio_default_test_loop_scope = {scope} and "
            f"asyncio_default_fixture_loop_scope = {scope} in the pytest ini, or "
            f'loop_scope="{scope}" in their marks and decorators'
        )


def asyncio_plugin(config: pytest.Config) -> Asyncio:
    """pytest-asyncio as installed (it is loaded: its version decides)."""
    from importlib.metadata import version  # noqa: PLC0415

    text = version("pytest-asyncio")
    parsed = parse_version(text)
    # (0.21 and 0.23 have no such option: their fixtures' loops are theirs)
    option = "asyncio_default_fixture_loop_scope"
    fixture_loop = str(config.getini(option) or "") if parsed >= (0, 24) else ""
    return Asyncio(parsed, text, fixture_loop)


def parse_version(text: str) -> tuple[int, int]:
    """``(major, minor)`` of a version like ``0.23.8`` or ``1.0.0rc1``."""
    parts = [
        int("".join(c for c in part if c.isdigit()) or 0)
        for part in text.split(".")[:2]
    ]
    return (parts[0], parts[1] if len(parts) > 1 else 0)


def async_plugins(config: pytest.Config) -> list[AsyncPlugin]:
    """The async plugins loaded in this session, the one to ask first first.

    pytest-asyncio comes first: in auto mode it runs every async test, those
    marked for anyio included.
    """
    plugins: list[AsyncPlugin] = []
    if _loaded(config, "asyncio", "pytest_asyncio.plugin"):
        plugins.append(asyncio_plugin(config))
    if _loaded(config, "trio", "pytest_trio.plugin"):
        plugins.append(Trio())
    if _loaded(config, "anyio", "anyio.pytest_plugin"):
        plugins.append(Anyio())
    return plugins


def _loaded(config: pytest.Config, name: str, module: str) -> bool:
    """Whether the plugin is loaded: by its entry point's ``name``, or as
    ``module`` (``-p pytest_trio.plugin``, ``pytest_plugins = [...]``)."""
    import sys  # noqa: PLC0415

    manager = config.pluginmanager
    loaded = sys.modules.get(module)
    return manager.hasplugin(name) or (
        loaded is not None and manager.is_registered(loaded)
    )


def not_run_error(fixture: str, item: pytest.Item) -> str:
    """The message for a test that no async plugin runs."""
    return (
        f"{fixture} is an async fixture, but {item.name} is not run by an async "
        "plugin: mark it for pytest-trio (@pytest.mark.trio, or trio_mode = "
        "true), pytest-asyncio (@pytest.mark.asyncio, or asyncio_mode = auto) or "
        "anyio (@pytest.mark.anyio), and make it an async def"
    )
