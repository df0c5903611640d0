"""The pytest plugin: the ``asgi_app``, ``lifespan_app`` and ``lifespan_client``
fixtures.

Loaded by pytest through the ``pytest11`` entry point, in every session of
everyone who has trio_lifespan installed, so until a project uses it, it is
inert: it reads its ini options, defines the three fixtures (registered
before any conftest.py, so a project's own fixtures of these names always
win) and imports nothing more. It comes to life (:meth:`Plugin.activate`)
once the ini names the app (``asgi_app``/``asgi_app_factory``), a conftest.py
or a ``pytest_plugins`` module defines an ``asgi_app`` fixture, or a test
asks for the lifespan; only then does it make the async fixtures each async
plugin runs and watch the tests that depend on the lifespan
(``_pytest_holder.py``). What differs between pytest-trio, anyio's plugin and
pytest-asyncio's versions is decided in one place, ``_pytest_async.py``.

The app comes from the ``asgi_app`` fixture: by default the ini's, imported
once when the session starts, from the ini file's folder; a project may
define its own (any scope no narrower than the lifespan's, built from any
fixtures it likes: settings, containers, dependency overrides), and the
fixtures it depends on are set up before the app's startup.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

import pytest

if TYPE_CHECKING:
    from ._httpx import LifespanClient
    from ._options import Options
    from ._pytest_holder import Watch
    from ._state import LifespanApp
    from ._types import ASGIApp

Scope = Literal["function", "class", "module", "package", "session"]
SCOPES: tuple[Scope, ...] = ("function", "class", "module", "package", "session")
#: Set on our own fixture functions: what a test's closure is searched for.
OURS = "_trio_lifespan_fixture"

INI: dict[str, tuple[str, str | bool | None]] = {
    "asgi_app": (
        "trio_lifespan: the ASGI app for the lifespan_app and lifespan_client "
        "fixtures, as module:attribute",
        None,
    ),
    "asgi_app_factory": (
        "trio_lifespan: a function that makes the ASGI app, as module:attribute "
        "(called once per fixture scope)",
        None,
    ),
    "lifespan_scope": (
        "trio_lifespan: the fixtures' scope: function (default), or with "
        "pytest-asyncio class, module, package or session",
        "function",
    ),
    "lifespan_startup_timeout": (
        "trio_lifespan: seconds the app's startup may take, or none",
        "5",
    ),
    "lifespan_shutdown_timeout": (
        "trio_lifespan: seconds the app's shutdown may take, or none",
        "5",
    ),
    "lifespan_allow_unsupported": (
        "trio_lifespan: run an app that does not support lifespan",
        False,
    ),
    "lifespan_base_url": (
        "trio_lifespan: the base URL of lifespan_client",
        "http://testserver",
    ),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    for name, (help_, default) in INI.items():
        type_: Literal["bool", "string"] = (
            "bool" if isinstance(default, bool) else "string"
        )
        parser.addini(name, help_, type=type_, default=default)


PLUGIN = pytest.StashKey["Plugin"]()


def pytest_configure(config: pytest.Config) -> None:
    plugin = Plugin(config, Settings.read(config))
    config.stash[PLUGIN] = plugin
    # Registered now, it is told of every plugin registered so far (the
    # hook is historic), the conftest.py files read before this too.
    config.pluginmanager.register(plugin, "trio_lifespan.plugin")


def _plugin(request: pytest.FixtureRequest) -> Plugin:
    return request.config.stash[PLUGIN]


def _scope(fixture_name: str, config: pytest.Config) -> Scope:
    """The fixtures' scope: the ini's ``lifespan_scope`` (checked at configure)."""
    plugin = config.stash.get(PLUGIN, None)
    return "function" if plugin is None else plugin.settings.scope


def _ours(function: Any) -> Any:
    setattr(function, OURS, True)
    return function


@pytest.fixture(scope=_scope)
def asgi_app(request: pytest.FixtureRequest) -> ASGIApp:
    """The ASGI app whose lifespan lifespan_app and lifespan_client run
    (trio_lifespan): the ini's asgi_app or asgi_app_factory. Define your own
    asgi_app fixture to build the app from other fixtures."""
    return _plugin(request).app_from_ini()


# The lifespan fixtures take the app through their async fixture (which asks
# for asgi_app, so that asgi_app and what it depends on are set up first),
# not as an argument: under pytest-trio, a fixture given an async fixture's
# value becomes one of the fixtures it runs in the test's trio.run.
@pytest.fixture(scope=_scope)
@_ours
def lifespan_app(request: pytest.FixtureRequest) -> LifespanApp[Any]:
    """The asgi_app fixture's app, after its startup (trio_lifespan)."""
    app: LifespanApp[Any] = _plugin(request).held(request, "app")
    return app


@pytest.fixture(scope=_scope)
@_ours
def lifespan_client(request: pytest.FixtureRequest) -> LifespanClient[Any]:
    """An httpx client for the asgi_app fixture's app, after its startup
    (trio_lifespan)."""
    client: LifespanClient[Any] = _plugin(request).held(request, "client")
    return client


class Settings:
    """The ini options, read and checked once per session."""

    def __init__(
        self,
        *,
        reference: str | None,
        factory: bool,
        scope: Scope,
        options: Options,
        base_url: str,
        app_dir: str,
    ) -> None:
        self.reference = reference
        self.factory = factory
        self.scope: Scope = scope
        self.options = options
        self.base_url = base_url
        self.app_dir = app_dir

    def in_the_ini(self, problem: object) -> str:
        """``problem`` (a loader's :class:`UsageError`), said of the ini option
        that names the app."""
        option = "asgi_app_factory" if self.factory else "asgi_app"
        return (
            f"trio_lifespan: {option} = {self.reference} in the pytest ini: {problem}"
        )

    @classmethod
    def read(cls, config: pytest.Config) -> Settings:
        """Read the ini options.

        Raises:
            pytest.UsageError: An option is wrong; the message says which and
                how to set it.
        """
        app = str(config.getini("asgi_app") or "")
        factory = str(config.getini("asgi_app_factory") or "")
        scope = str(config.getini("lifespan_scope")).strip()
        if app and factory:
            raise pytest.UsageError(
                "trio_lifespan: set either asgi_app or asgi_app_factory in the "
                f"pytest ini, not both (asgi_app = {app}, asgi_app_factory = "
                f"{factory})"
            )
        if not is_scope(scope):
            raise pytest.UsageError(
                f"trio_lifespan: lifespan_scope = {scope!r} is not a fixture "
                f"scope; use one of: {', '.join(SCOPES)}"
            )
        inipath = getattr(config, "inipath", None)
        return cls(
            reference=(app or factory or None),
            factory=bool(factory),
            scope=scope,
            # (checked whoever hands over the app: a wrong one is one usage
            # error when the session starts, however the plugin comes to life)
            options=_read_options(config),
            base_url=str(config.getini("lifespan_base_url")),
            # The ini file's folder, as documented, whatever --rootdir says.
            app_dir=str(inipath.parent if inipath is not None else config.rootpath),
        )


def _read_options(config: pytest.Config) -> Options:
    from ._options import check_options, parse_seconds  # noqa: PLC0415

    seconds: list[float] = []
    for name in ("lifespan_startup_timeout", "lifespan_shutdown_timeout"):
        try:
            seconds.append(parse_seconds(name, str(config.getini(name)).strip()))
        except (TypeError, ValueError) as exc:
            raise pytest.UsageError(
                f"trio_lifespan: {exc} (in the pytest ini)"
            ) from None
    try:
        allow = bool(config.getini("lifespan_allow_unsupported"))
    except (pytest.UsageError, ValueError) as exc:  # "invalid truth value 'x'"
        raise pytest.UsageError(
            f"trio_lifespan: lifespan_allow_unsupported must be true or false "
            f"in the pytest ini ({exc})"
        ) from None
    return check_options(seconds[0], seconds[1], allow)


def is_scope(text: str) -> TypeGuard[Scope]:
    return text in SCOPES


def _defines_asgi_app(where: object) -> bool:
    """Whether ``where`` (a conftest.py, a ``pytest_plugins`` module, a test
    module or class) defines a fixture named ``asgi_app``."""
    if (
        not isinstance(where, (types.ModuleType, type))
        or where is sys.modules[__name__]
    ):
        return False
    for attribute, value in vars(where).items():
        try:
            if _fixture_name(value, attribute) == "asgi_app":
                return True
        except Exception:  # noqa: BLE001 - a proxy that raises is no fixture
            continue  # (werkzeug's LocalProxy: Quart's and Flask's request)
    return False


def _fixture_name(value: object, attribute: str) -> str | None:
    """The name of the fixture that ``value`` (a module's ``attribute``)
    defines, if it is one."""
    marker: Any = getattr(value, "_pytestfixturefunction", None)  # pytest < 8.4
    if marker is None and type(value).__name__ == "FixtureFunctionDefinition":
        marker = value  # pytest 8.4 and later: the fixture is the definition
    if marker is None:
        return None
    return getattr(marker, "name", None) or attribute


def _ours_last_resort(session: pytest.Session) -> None:
    """Put our three fixtures behind every other plugin's of the same names.

    pytest prefers, among plugins' fixtures, the one registered last, and our
    module is registered before any conftest.py (so its ``pytest_plugins``
    win) but after the plugins named with ``-p``. pytest offers no public
    way to say "use this one only if there is no other"; its fixture table
    is what pytest-asyncio reads too: up to pytest 9.1 a list per name, the
    last registered last (and preferred); from 9.2 a list per name and node,
    the last registered first.
    """
    manager = getattr(session, "_fixturemanager", None)
    by_name: Any = getattr(manager, "_arg2fixturedefs", {})
    by_node: Any = getattr(manager, "_arg2node2fixturedefs", {})
    for name in ("asgi_app", "lifespan_app", "lifespan_client"):
        # (each list, and whether its least preferred end is its front)
        lists: list[tuple[list[Any], bool]] = [(by_name.get(name, []), True)]
        lists += [(defs, False) for defs in by_node.get(name, {}).values()]
        for defs, front in lists:
            for index, fixturedef in enumerate(defs):
                if getattr(fixturedef.func, "__module__", None) == __name__:
                    ours = defs.pop(index)
                    defs.insert(0 if front else len(defs), ours)
                    break


class Plugin:
    """The session's plugin: inert until :meth:`activate`."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.watch: Watch | None = None
        self._found: object = None
        #: The modules and classes looked at for an asgi_app fixture.
        self._scanned: set[pytest.Collector] = set()
        if settings.reference is not None:
            self.activate()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # Not at configure: pytest --help and --markers configure too, and
        # should not import the app. Not in an xdist controller, which runs
        # no test (each worker imports it).
        config = self.config
        controller = getattr(config.option, "dist", "no") != "no" and not hasattr(
            config, "workerinput"
        )
        if self.settings.reference is not None and not controller:
            self._found = self._find()
        _ours_last_resort(session)

    def pytest_plugin_registered(self, plugin: object) -> None:
        if self.watch is None and _defines_asgi_app(plugin):
            self.activate()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_pycollect_makeitem(self, collector: pytest.Collector) -> Generator[None]:
        # An asgi_app fixture in a test module or class: active before the
        # module's names are made into items (pytest-asyncio before 1.0 makes
        # its async fixtures then, from every fixture defined so far).
        if self.watch is None and collector not in self._scanned:
            self._scanned.add(collector)
            if _defines_asgi_app(getattr(collector, "obj", None)):
                self.activate()
        yield

    def activate(self) -> Watch:
        """Make the async fixtures, and watch the tests that use them."""
        if self.watch is None:
            from ._pytest_holder import Watch  # noqa: PLC0415

            self.watch = watch = Watch(self.config, self.settings)
            manager = self.config.pluginmanager
            manager.register(watch, "trio_lifespan.watch")
            manager.register(watch.fixtures(), "trio_lifespan.fixtures")
        return self.watch

    def held(self, request: pytest.FixtureRequest, what: str) -> Any:
        """The value of our async fixture ``what`` (``app``, ``client``) of
        the kind the async plugin that runs this test runs."""
        __tracebackhide__ = True
        return self.activate().held(request, what)

    def _find(self) -> object:
        """Import what the ini names, once, when the session starts."""
        from ._load import UsageError, find_app, make_app  # noqa: PLC0415

        settings = self.settings
        assert settings.reference is not None
        try:
            found = find_app(
                settings.reference, factory=settings.factory, app_dir=settings.app_dir
            )
            return (
                found
                if settings.factory
                else make_app(found, settings.reference, factory=False)
            )
        except UsageError as exc:
            raise pytest.UsageError(settings.in_the_ini(exc)) from exc.__cause__

    def app_from_ini(self) -> ASGIApp:
        """The ini's app (a new one from its factory, for each fixture scope)."""
        __tracebackhide__ = True
        settings = self.settings
        if settings.reference is None:
            raise RuntimeError(
                "the lifespan_app and lifespan_client fixtures need the app: "
                "define an asgi_app fixture that returns it (in a conftest.py), "
                "or set asgi_app = module:attribute (or asgi_app_factory = "
                "module:function) in the [pytest] section of your ini file"
            )
        if not settings.factory:
            app: ASGIApp = self._found  # type: ignore[assignment]  # checked at start
            return app
        from ._load import UsageError, make_app  # noqa: PLC0415

        try:
            return make_app(self._found, settings.reference, factory=True)
        except UsageError as exc:
            raise RuntimeError(settings.in_the_ini(exc)) from exc.__cause__
