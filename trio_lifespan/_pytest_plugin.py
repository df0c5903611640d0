"""The pytest plugin: ``lifespan_app`` and ``lifespan_client`` fixtures.

Loaded by pytest through the ``pytest11`` entry point and inert until the
ini file names the app (``asgi_app`` or ``asgi_app_factory``). It works under
pytest-trio, pytest-asyncio and anyio's plugin alike, because it relies on
none of them to hold the lifespan:

- The lifespan (and the client, which closes first) runs in a task of its
  own, started by the fixture (:class:`Holder`): a system task on trio, a
  plain task on asyncio. No fixture ``yield`` is inside its ``async with``,
  so no cancellation ever crosses one.
- Each test that uses the fixtures runs inside a watch
  (:func:`watched`): if the app crashes while the test runs, the watch
  cancels the test and fails it with the app's own error. A test that starts
  after the lifespan failed (a wider scope) fails at once with
  :exc:`LifespanUnavailable`.
- The public fixtures are plain fixtures that pick, per test, the async
  fixture that the test's plugin runs (an ``asyncio``-marked one for
  pytest-asyncio, a plain one that pytest-trio and anyio run).

This module imports only pytest at import time: every session of everyone
who has trio_lifespan installed loads it.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import types
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeGuard, cast

import pytest

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from ._backend import Event
    from ._httpx import LifespanClient
    from ._options import Options
    from ._state import LifespanApp
    from ._types import ASGIApp

Scope = Literal["function", "class", "module", "package", "session"]
SCOPES: tuple[Scope, ...] = ("function", "class", "module", "package", "session")
FIXTURES = ("lifespan_app", "lifespan_client")
# The async fixtures behind the public ones, per kind of async plugin.
PLAIN, ASYNCIO = "plain", "asyncio"

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


def pytest_configure(config: pytest.Config) -> None:
    fixtures = Fixtures(
        Settings.read(config),
        asyncio_loaded=config.pluginmanager.hasplugin("asyncio"),
    )
    config.pluginmanager.register(fixtures, "trio_lifespan.watch")
    config.pluginmanager.register(fixtures.module(), "trio_lifespan.fixtures")


class Settings:
    """The ini options, read and checked once per session."""

    def __init__(
        self,
        *,
        reference: str | None,
        factory: bool,
        scope: Scope,
        options: Options | None,
        base_url: str,
        app_dir: str,
    ) -> None:
        self.reference = reference
        self.factory = factory
        self.scope: Scope = scope
        self.options = options
        self.base_url = base_url
        self.app_dir = app_dir

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
        if not _is_scope(scope):
            raise pytest.UsageError(
                f"trio_lifespan: lifespan_scope = {scope!r} is not a fixture "
                f"scope; use one of: {', '.join(SCOPES)}"
            )
        options = None
        if app or factory:  # the plugin is inert otherwise: import nothing
            options = _read_options(config)
        return cls(
            reference=(app or factory or None),
            factory=bool(factory),
            scope=scope,
            options=options,
            base_url=str(config.getini("lifespan_base_url")),
            app_dir=str(config.rootpath),
        )

    def load(self) -> ASGIApp:
        """Import the app (or call the factory for a new one)."""
        from ._cli._load import UsageError, load_app  # noqa: PLC0415

        assert self.reference is not None
        option = "asgi_app_factory" if self.factory else "asgi_app"
        try:
            return load_app(self.reference, factory=self.factory, app_dir=self.app_dir)
        except UsageError as exc:
            raise RuntimeError(
                f"trio_lifespan: {option} = {self.reference} in the pytest ini: {exc}"
            ) from exc.__cause__


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


class Fixtures:
    """The plugin's fixtures and the watch around the tests that use them."""

    def __init__(self, settings: Settings, *, asyncio_loaded: bool) -> None:
        self.settings = settings
        #: Whether pytest-asyncio is loaded: it runs only fixtures it made.
        self.asyncio_loaded = asyncio_loaded
        #: The lifespans held now (one per live fixture scope), for the watch.
        self.holders: list[Holder] = []
        #: The async fixtures that use ours, directly or through another.
        self.watched_fixtures: set[str] = set()

    def module(self) -> types.ModuleType:
        """The fixtures, with the scope the ini file asks for, in a module.

        A module, for pytest finds a plugin object's fixtures on its type
        (and warns about wide-scoped fixtures that are methods).
        """
        module = types.ModuleType("trio_lifespan.fixtures")
        this = self

        def lifespan_app(request: pytest.FixtureRequest) -> LifespanApp[Any]:
            """The app's LifespanApp, after its startup (trio_lifespan)."""
            app: LifespanApp[Any] = request.getfixturevalue(
                f"_trio_lifespan_app_{this.kind(request)}"
            )
            return app

        def lifespan_client(request: pytest.FixtureRequest) -> LifespanClient[Any]:
            """An httpx client for the app, after its startup (trio_lifespan)."""
            client: LifespanClient[Any] = request.getfixturevalue(
                f"_trio_lifespan_client_{this.kind(request)}"
            )
            return client

        def holding() -> Callable[[], AsyncGenerator[Holder]]:
            # A new function for each kind of fixture: pytest-asyncio marks
            # the function it is given as its own, and would then run the
            # plain fixture (pytest-trio's, anyio's) on its loop too.
            async def hold() -> AsyncGenerator[Holder]:
                holder = Holder(this.settings)
                await holder.start()
                this.holders.append(holder)
                try:
                    yield holder
                finally:
                    this.holders.remove(holder)
                    await holder.stop()

            return hold

        async def app(holder: Holder) -> LifespanApp[Any]:
            return holder.app

        async def client(holder: Holder) -> LifespanClient[Any]:
            return holder.get_client()

        plain = _fixture_maker(pytest.fixture, self.settings.scope)
        for public in (lifespan_app, lifespan_client):
            setattr(module, public.__name__, plain(public, public.__name__))
        for kind, make in self._async_fixture_makers():
            holder_name = f"_trio_lifespan_holder_{kind}"
            setattr(module, holder_name, make(holding(), holder_name))
            for name, function in (("app", app), ("client", client)):
                fixture_name = f"_trio_lifespan_{name}_{kind}"
                setattr(
                    module,
                    fixture_name,
                    make(_taking(function, holder_name), fixture_name),
                )
        return module

    def _async_fixture_makers(self) -> list[tuple[str, MakeFixture]]:
        """The plain maker (pytest-trio and anyio run what it makes), and
        pytest-asyncio's when it is installed (for it runs only those)."""
        scope = self.settings.scope
        makers = [(PLAIN, _fixture_maker(pytest.fixture, scope))]
        if self.asyncio_loaded:
            import pytest_asyncio  # noqa: PLC0415

            makers.append((ASYNCIO, _fixture_maker(pytest_asyncio.fixture, scope)))
        return makers

    def kind(self, request: pytest.FixtureRequest) -> str:
        """Which async fixtures this test can use, or a clear error."""
        settings = self.settings
        if settings.reference is None:
            raise RuntimeError(
                "the lifespan_app and lifespan_client fixtures need the app: set "
                "asgi_app = module:attribute (or asgi_app_factory = "
                "module:function) in the [pytest] section of your ini file"
            )
        item: pytest.Item = getattr(request, "_pyfuncitem", request.node)
        anyio = "anyio_backend" in request.fixturenames
        if anyio or item.get_closest_marker("trio") is not None:
            if settings.scope != "function":
                plugin = "anyio's plugin" if anyio else "pytest-trio"
                raise RuntimeError(
                    f"lifespan_scope = {settings.scope} in the pytest ini, but "
                    f"{item.name} runs under {plugin}, where the lifespan "
                    "fixtures live as long as one test: set lifespan_scope = "
                    "function (or leave it out); wider scopes work with "
                    "pytest-asyncio"
                )
            return PLAIN
        if item.get_closest_marker("asyncio") is not None and self.asyncio_loaded:
            return ASYNCIO
        raise RuntimeError(
            f"{request.fixturename} is an async fixture, but {item.name} is not "
            "run by an async plugin: mark it for pytest-trio "
            "(@pytest.mark.trio, or trio_mode = true), pytest-asyncio "
            "(@pytest.mark.asyncio, or asyncio_mode = auto) or anyio "
            "(@pytest.mark.anyio), and make it an async def"
        )

    # The watch around each test, and each async fixture that uses ours -------

    @pytest.hookimpl(tryfirst=True, hookwrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None]:
        function = fixturedef.func
        uses = FIXTURES + tuple(self.watched_fixtures)
        if (
            self.settings.reference is None
            or not (
                inspect.iscoroutinefunction(function)
                or inspect.isasyncgenfunction(function)
            )
            or not any(name in uses for name in fixturedef.argnames)
        ):
            yield
            return
        # Before the async plugin's own hook (it wraps what it finds here).
        self.watched_fixtures.add(fixturedef.argname)
        swappable: Any = fixturedef  # (typed final; the async plugins swap it too)
        swappable.func = watched_fixture(self, function)
        try:
            yield
        finally:
            swappable.func = function

    @pytest.hookimpl(tryfirst=True, hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None]:
        test = getattr(item, "obj", None)
        if (
            self.settings.reference is None
            or not inspect.iscoroutinefunction(test)
            or not any(name in getattr(item, "fixturenames", ()) for name in FIXTURES)
        ):
            yield
            return
        item.obj = watched(self, test)  # type: ignore[attr-defined]
        try:
            yield
        finally:
            item.obj = test  # type: ignore[attr-defined]


MakeFixture = Callable[[Callable[..., object], str], object]


def _fixture_maker(decorator: Callable[..., object], scope: Scope) -> MakeFixture:
    """Make fixtures with ``decorator`` (``pytest.fixture`` or
    ``pytest_asyncio.fixture``), all of ``scope``, on the loop of that scope."""
    loop = {} if decorator is pytest.fixture else {"loop_scope": scope}

    def make(function: Callable[..., object], name: str) -> object:
        return decorator(function, scope=scope, name=name, **loop)

    return make


def _is_scope(text: str) -> TypeGuard[Scope]:
    return text in SCOPES


def _taking(
    function: Callable[[Holder], Coroutine[Any, Any, object]], name: str
) -> Callable[..., Coroutine[Any, Any, object]]:
    """``function``, taking its holder as the fixture argument ``name``."""

    async def fixture(**kwargs: Holder) -> object:
        return await function(kwargs[name])

    parameter = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY)
    fixture.__signature__ = inspect.Signature([parameter])  # type: ignore[attr-defined]
    fixture.__name__ = fixture.__qualname__ = function.__name__
    return fixture


def watched(
    fixtures: Fixtures, test: Callable[..., Coroutine[Any, Any, object]]
) -> Callable[..., Coroutine[Any, Any, object]]:
    """``test``, run so that a lifespan that fails while it runs fails it."""

    @functools.wraps(test, updated=())  # not __dict__: plugins look there
    async def watched_test(*args: Any, **kwargs: Any) -> object:
        __tracebackhide__ = True
        return await _watched_step(
            fixtures, f"test {test.__name__}", lambda: test(*args, **kwargs)
        )

    return watched_test


def watched_fixture(
    fixtures: Fixtures, function: Callable[..., Any]
) -> Callable[..., Any]:
    """An async fixture that uses the lifespan, run as :func:`watched` runs a
    test: each half of a generator fixture (its setup, its teardown) is
    watched, and neither crosses the ``yield``."""
    what = f"fixture {function.__name__}"
    if inspect.isasyncgenfunction(function):

        @functools.wraps(function)  # its __dict__ too: the async plugins mark it
        async def watched_generator(*args: Any, **kwargs: Any) -> AsyncGenerator[Any]:
            __tracebackhide__ = True
            generator = function(*args, **kwargs)
            yield await _watched_step(fixtures, what, generator.__anext__)
            await _watched_step(
                fixtures, what, lambda: _the_end(generator, function.__name__)
            )

        return watched_generator

    @functools.wraps(function)
    async def watched_coroutine(*args: Any, **kwargs: Any) -> object:
        __tracebackhide__ = True
        return await _watched_step(fixtures, what, lambda: function(*args, **kwargs))

    return watched_coroutine


async def _the_end(generator: AsyncGenerator[Any], name: str) -> None:
    """Run a generator fixture's teardown: the rest of the generator."""
    try:
        await generator.__anext__()
    except StopAsyncIteration:
        return
    raise RuntimeError(f"fixture {name} yielded more than once")


async def _watched_step(
    fixtures: Fixtures, what: str, start: Callable[[], Awaitable[Any]]
) -> Any:
    """Run a step of a test or fixture (``what``: ``test test_x``, ``fixture
    db``; the step is what ``start`` returns) under the watch of the lifespan
    held last (a fixture scope holds one at a time)."""
    __tracebackhide__ = True
    holder = fixtures.holders[-1]
    holder.check_here(what)  # (before the step is made: never left unawaited)
    step = start()
    try:
        if holder.library == "trio":
            return await _watch_trio(holder, step)
        return await _watch_asyncio(holder, step)
    except BaseException as exc:
        holder.seen_by_a_test(exc)
        raise


async def _watch_trio(holder: Holder, test: Awaitable[Any]) -> Any:
    __tracebackhide__ = True
    import trio  # noqa: PLC0415

    with trio.CancelScope() as scope:
        holder.watcher = scope.cancel
        try:
            return await test
        finally:
            holder.watcher = None
    holder.raise_failure()  # only a failed lifespan cancels the scope
    raise AssertionError("unreachable")


async def _watch_asyncio(holder: Holder, test: Awaitable[Any]) -> Any:
    __tracebackhide__ = True
    import asyncio  # noqa: PLC0415

    from ._asyncio import _BodyCanceller  # noqa: PLC0415

    task = asyncio.current_task()
    assert task is not None
    canceller = _BodyCanceller(task)
    holder.watcher = lambda: canceller.cancel(holder.failure())
    try:
        return await test
    except asyncio.CancelledError:
        if not canceller.ended():  # not ours alone: the test's own
            raise
        holder.raise_failure()
        raise AssertionError("unreachable") from None
    finally:
        holder.watcher = None
        canceller.ended()


def _chained(exc: BaseException) -> list[BaseException]:
    """``exc``, the exceptions in it if it is a group, and those they chain
    to (cause, context), each once."""
    from ._compat import BaseExceptionGroup  # noqa: PLC0415

    found: list[BaseException] = []
    seen: set[int] = set()
    todo = [exc]
    while todo:
        each = todo.pop()
        if id(each) in seen:
            continue
        seen.add(id(each))
        found.append(each)
        if isinstance(each, BaseExceptionGroup):
            todo.extend(each.exceptions)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
        todo.extend(e for e in (each.__cause__, each.__context__) if e is not None)
    return found


class Holder:
    """One lifespan (and its client), held in a task of its own.

    The task is started by the fixture and outlives its setup: a system task
    on trio (which must never raise, so every error is kept here), a task on
    asyncio. It ends when :meth:`stop` asks, or when the app fails.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: Cancels the test that runs now, if any (the watch sets it).
        self.watcher: Callable[[], None] | None = None
        self.error: BaseException | None = None
        #: Whether a test or the setup has raised :attr:`error` already.
        self.reported = False
        #: The lifespan errors that tests' LifespanUnavailable named.
        self.named: list[BaseException] = []
        self._app: LifespanApp[Any] | None = None
        self._client: LifespanClient[Any] | None = None
        self._client_error: ModuleNotFoundError | None = None
        #: What the ini named, once loaded (for the hints).
        self._loaded: object = None

    @property
    def app(self) -> LifespanApp[Any]:
        assert self._app is not None
        return self._app

    def get_client(self) -> LifespanClient[Any]:
        if self._client is None:
            assert self._client_error is not None
            raise self._client_error
        return self._client

    async def start(self) -> None:
        """Start the task and wait for the app's startup; raise its failure."""
        __tracebackhide__ = True
        import sniffio  # noqa: PLC0415

        from ._backend import current_backend  # noqa: PLC0415

        self.library = sniffio.current_async_library()
        backend = self._backend = current_backend("lifespan_app")
        self._settled = backend.event()
        self._done = backend.event()
        self._stopping = backend.event()
        if self.library == "trio":
            import trio  # noqa: PLC0415

            self._loop: object = trio.lowlevel.current_trio_token()
            self._scope = trio.CancelScope()
            trio.lowlevel.spawn_system_task(
                self._run_trio,
                name="trio_lifespan holder",
                context=contextvars.copy_context(),
            )
        else:
            import asyncio  # noqa: PLC0415

            from ._asyncio import start_task  # noqa: PLC0415

            loop = self._loop = asyncio.get_running_loop()
            self._task = start_task(loop, self._run())
        await self._wait_for(self._settled)
        if self.error is not None:
            self.reported = True
            raise self._with_ini_hint(self.error)

    async def stop(self) -> None:
        """Close the client and the lifespan; raise a failure no test has raised."""
        __tracebackhide__ = True
        self._stopping.set()
        await self._wait_for(self._done)
        error = self.error
        named = any(each is error for each in self.named)
        if error is not None and not self.reported and not named:
            self.reported = True
            scope = self.settings.scope
            if scope != "function":  # pytest blames the scope's last test
                from ._compat import add_note  # noqa: PLC0415

                add_note(
                    error,
                    f"(pytest plugin: the lifespan held for this {scope} ended "
                    "with this error, when the fixtures' scope ended)",
                )
            raise self._with_ini_hint(error)

    def _with_ini_hint(self, error: BaseException) -> BaseException:
        """``error``, with a note naming the ini option that the fix is in.

        The library's messages name its keyword arguments; plugin users set
        them in the pytest ini, under other names.
        """
        from ._cli._load import looks_like_factory  # noqa: PLC0415
        from ._compat import add_note  # noqa: PLC0415
        from ._errors import (  # noqa: PLC0415
            LifespanNotASGIApp,
            LifespanNotSupported,
            LifespanTimeout,
        )

        if (
            isinstance(error, LifespanNotASGIApp)
            and not self.settings.factory
            and looks_like_factory(self._loaded)
        ):
            reference = self.settings.reference
            add_note(
                error,
                f"(pytest plugin: if the app is made by calling {reference}, set "
                f"asgi_app_factory = {reference} in the pytest ini, instead of "
                "asgi_app)",
            )
        elif isinstance(error, LifespanTimeout):
            add_note(
                error,
                f"(pytest plugin: the limit is lifespan_{error.phase}_timeout in the "
                "pytest ini)",
            )
        elif isinstance(error, LifespanNotSupported):
            add_note(
                error,
                "(pytest plugin: to run it anyway, set lifespan_allow_unsupported = "
                "true in the pytest ini)",
            )
        return error

    def check_here(self, what: str) -> None:
        """Raise a clear error when ``what`` (``test test_x``, ``fixture db``)
        runs on another loop than the lifespan, or the lifespan has failed."""
        __tracebackhide__ = True
        if self.library == "trio":
            import trio  # noqa: PLC0415

            here: object = trio.lowlevel.current_trio_token()
        else:
            import asyncio  # noqa: PLC0415

            here = asyncio.get_running_loop()
        if here is not self._loop:
            scope = self.settings.scope
            raise RuntimeError(
                f"the lifespan_app and lifespan_client fixtures are held on the "
                f"{scope}-scoped event loop (lifespan_scope = {scope} in the "
                f"pytest ini), but {what} runs on another loop, "
                "where the app's resources would not work: run the tests and "
                f"their fixtures on that loop (asyncio_default_test_loop_scope = "
                f"{scope} and asyncio_default_fixture_loop_scope = {scope} in the "
                f'pytest ini, or loop_scope="{scope}" in their marks and '
                "decorators), or set lifespan_scope to the loop scope they use"
            )
        if self.error is not None:
            from ._errors import LifespanUnavailable  # noqa: PLC0415

            self.reported = True
            raise LifespanUnavailable(self.error)

    def seen_by_a_test(self, exc: BaseException) -> None:
        """Note the lifespan errors that ``exc``, which a test raised, names.

        A request sent after the app failed, before this holder saw it fail,
        raises :exc:`LifespanUnavailable` in the test, naming the error: the
        test has reported it, so the teardown does not report it again.
        """
        from ._errors import LifespanUnavailable  # noqa: PLC0415

        for each in _chained(exc):
            if isinstance(each, LifespanUnavailable):
                self.named.append(each.error)

    def failure(self) -> BaseException:
        """The lifespan's error, now that it failed."""
        assert self.error is not None
        return self.error

    def raise_failure(self) -> NoReturn:
        """Raise the lifespan's error, in the test it failed."""
        self.reported = True
        raise self.failure()

    async def _wait_for(self, event: Event) -> None:
        """Wait for ``event``; if the wait is interrupted (a cancellation, a
        Ctrl-C), stop the task and wait until it is gone, then go on."""
        try:
            await event.wait()
        except BaseException:
            self._abort()
            await self._wait_done()
            raise

    def _abort(self) -> None:
        if self.library == "trio":
            self._scope.cancel()
        else:
            self._task.cancel()

    async def _wait_done(self) -> None:
        """Wait for the task, shielded: it is bounded by the lifespan's timeouts."""
        if self.library == "trio":
            import trio  # noqa: PLC0415

            with trio.CancelScope(shield=True):
                await self._done.wait()
        else:
            import asyncio  # noqa: PLC0415

            await asyncio.shield(self._done.wait())

    async def _run_trio(self) -> None:
        with self._scope:
            await self._run()

    async def _run(self) -> None:
        """The task: hold the lifespan until told to stop, or until it fails."""
        settings = self.settings
        options = settings.options
        assert options is not None
        try:
            app = self._loaded = settings.load()
            opened: AbstractAsyncContextManager[LifespanApp[Any] | LifespanClient[Any]]
            try:
                from ._httpx import OpenClient  # noqa: PLC0415
            except ModuleNotFoundError as exc:
                from ._client import EXTRA  # noqa: PLC0415

                self._client_error = ModuleNotFoundError(
                    f"the lifespan_client fixture needs httpx, which is not "
                    f"installed: {EXTRA}",
                    name=exc.name,
                )
                opened = self._backend.open_one(app, options)
            else:
                opened = OpenClient(app, options, settings.base_url, {})
            async with opened as held:
                if self._client_error is None:  # the client, then its app
                    self._client = cast("LifespanClient[Any]", held)
                    self._app = self._client.lifespan
                else:
                    self._app = cast("LifespanApp[Any]", held)
                self._settled.set()
                await self._stopping.wait()
        except BaseException as exc:  # noqa: BLE001 - kept for the tests to raise
            self.error = exc
            if self.watcher is not None:
                self.watcher()
        finally:
            self._settled.set()
            self._done.set()
