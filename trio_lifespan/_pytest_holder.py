"""The pytest plugin at work: the lifespan held in a task, and the watch.

Imported once a test uses the lifespan fixtures (``_pytest_plugin.py`` is
what every session loads).

- The lifespan (and the client, which closes first) runs in a task of its
  own, started by the fixture (:class:`Holder`): a system task on trio, a
  plain task on asyncio. No fixture ``yield`` is inside its ``async with``,
  so no cancellation ever crosses one, and the fixture's setup and teardown
  may run in different tasks (pytest-asyncio's do).
- Each test, and each async fixture, that depends on the lifespan (found from
  the test's fixture closure, :func:`depending`) runs inside a watch
  (:func:`watched`): if the app crashes while it runs, the watch cancels it
  and fails it with the app's own error. A test that starts after the
  lifespan failed (a wider scope) fails at once with
  :exc:`LifespanUnavailable`.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import types
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, cast

import pytest

from ._pytest_async import AsyncPlugin, async_plugins, not_run_error
from ._pytest_plugin import OURS

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from ._backend import Event
    from ._httpx import LifespanClient
    from ._pytest_plugin import Settings
    from ._state import LifespanApp
    from ._types import ASGIApp

DEPENDING = pytest.StashKey[frozenset[int]]()


def depending(item: pytest.Item) -> frozenset[int]:
    """The fixtures in ``item``'s closure that depend on the lifespan (ours
    among them), as the ids of their definitions, worked out once per test.

    Resolved as pytest resolves them for this test: a fixture that overrides
    one of the same name depends on what it uses, the one it overrides
    included (as ``super()`` would), and the overridden one on what it uses.
    """
    found = item.stash.get(DEPENDING, None)
    if found is None:
        found = item.stash[DEPENDING] = _depending(item)
    return found


def _depending(item: pytest.Item) -> frozenset[int]:
    info: Any = getattr(item, "_fixtureinfo", None)
    name2defs: dict[str, tuple[Any, ...]] = getattr(info, "name2fixturedefs", {})
    known: dict[tuple[str, int], bool] = {}

    def depends(name: str, index: int) -> bool:
        defs = name2defs.get(name, ())
        if not -len(defs) <= index < 0:
            return False
        key = (name, index)
        if key not in known:
            known[key] = False  # (a cycle: pytest reports it, we need not)
            fixturedef = defs[index]
            known[key] = getattr(fixturedef.func, OURS, False) or any(
                depends(*argument) for argument in _arguments(name, index, fixturedef)
            )
        return known[key]

    for name in name2defs:
        depends(name, -1)
    return frozenset(
        id(name2defs[name][index]) for (name, index), yes in known.items() if yes
    )


def watched(
    holders: list[Holder],
    test: Callable[..., Coroutine[Any, Any, object]],
    item: pytest.Item,
) -> Callable[..., Coroutine[Any, Any, object]]:
    """``test``, run so that a lifespan that fails while it runs fails it."""

    @functools.wraps(test, updated=())  # not __dict__: plugins look there
    async def watched_test(*args: Any, **kwargs: Any) -> object:
        __tracebackhide__ = True
        return await _watched_step(
            holders, f"test {test.__name__}", item, lambda: test(*args, **kwargs)
        )

    return watched_test


def watched_fixture(
    holders: list[Holder], function: Callable[..., Any], item: pytest.Item
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
            yield await _watched_step(holders, what, item, generator.__anext__)
            await _watched_step(
                holders, what, item, lambda: _the_end(generator, function.__name__)
            )

        return watched_generator

    @functools.wraps(function)
    async def watched_coroutine(*args: Any, **kwargs: Any) -> object:
        __tracebackhide__ = True
        return await _watched_step(
            holders, what, item, lambda: function(*args, **kwargs)
        )

    return watched_coroutine


async def _the_end(generator: AsyncGenerator[Any], name: str) -> None:
    """Run a generator fixture's teardown: the rest of the generator."""
    try:
        await generator.__anext__()
    except StopAsyncIteration:
        return
    raise RuntimeError(f"fixture {name} yielded more than once")


async def _watched_step(
    holders: list[Holder],
    what: str,
    item: pytest.Item,
    start: Callable[[], Awaitable[Any]],
) -> Any:
    """Run a step of a test or fixture (``what``: ``test test_x``, ``fixture
    db``; the step is what ``start`` returns) under the watch of the lifespan
    held last (the one this test's closure set up most recently)."""
    __tracebackhide__ = True
    holder = holders[-1]  # (set up before what depends on it, torn down after)
    # (checked before the step is made: never left unawaited)
    watchable = holder.check_here(what, item)
    step = start()
    try:
        if not watchable:
            return await step
        return await holder.backend.watch(step, holder.watchers, holder.failure)
    except BaseException as exc:
        if exc is holder.error:  # (the lifespan failed under the step)
            holder.reported = True
        holder.seen_by_a_test(exc)
        raise


class Holder:
    """One lifespan (and its client), held in a task of its own.

    The task is started by the fixture and outlives its setup: a system task
    on trio (which must never raise, so every error is kept here), a task on
    asyncio. It ends when :meth:`stop` asks, or when the app fails.
    """

    def __init__(
        self,
        settings: Settings,
        app: ASGIApp,
        plugin: AsyncPlugin,
        made_from: dict[int, str] | None = None,
    ) -> None:
        self.settings = settings
        #: What asgi_app was made from, for the test that made it
        #: (:func:`app_fixtures`).
        self.made_from = made_from or {}
        self.plugin = plugin
        #: The app, as the asgi_app fixture gave it (for the hints).
        self._loaded: object = app
        #: Each cancels a watched step that runs now: the test, or its async
        #: fixtures (pytest-trio sets those up side by side).
        self.watchers: set[Callable[[], None]] = set()
        self.error: BaseException | None = None
        #: Whether a test or the setup has raised :attr:`error` already.
        self.reported = False
        #: The lifespan errors that tests' LifespanUnavailable named.
        self.named: list[BaseException] = []
        self._app: LifespanApp[Any] | None = None
        self._client: LifespanClient[Any] | None = None
        self._client_error: ModuleNotFoundError | None = None

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
        from ._backend import current_backend  # noqa: PLC0415

        backend = self.backend = current_backend("lifespan_app")
        self._settled = backend.event()
        self._done = backend.event()
        self._stopping = backend.event()
        self._loop = backend.loop_here()
        self._task = backend.start_background(self._run, "trio_lifespan holder")
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
        from ._compat import add_note  # noqa: PLC0415
        from ._errors import (  # noqa: PLC0415
            LifespanNotASGIApp,
            LifespanNotSupported,
            LifespanTimeout,
        )
        from ._load import looks_like_factory  # noqa: PLC0415

        if isinstance(error, LifespanNotASGIApp) and looks_like_factory(self._loaded):
            reference = self.settings.reference
            factory = getattr(self._loaded, "__name__", "?")
            add_note(
                error,
                f"(pytest plugin: if the app is made by calling {reference}, set "
                f"asgi_app_factory = {reference} in the pytest ini, instead of "
                "asgi_app)"
                if reference is not None and not self.settings.factory
                else "(pytest plugin: the asgi_app fixture returned the plain "
                f"function {factory}: if it makes the app, return {factory}() "
                "instead)",
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

    def check_here(self, what: str, item: pytest.Item) -> bool:
        """Whether ``what`` (``test test_x``, ``fixture db``) runs on the
        lifespan's loop, where it can be watched; a clear error if the
        lifespan has failed, or if it runs on another loop that the project
        did not choose (its fixtures' loop option: then it runs as with the
        project's own fixtures, unwatched)."""
        __tracebackhide__ = True
        # (None under another library: anyio's trio, say)
        here = self.backend.loop_here()
        same = here is self._loop
        if not same and (
            here is None or not self.plugin.loops_differ_by_choice(self.settings.scope)
        ):
            loop, chosen_by = self.plugin.loop_scope(self.settings.scope)
            raise RuntimeError(
                f"the lifespan_app and lifespan_client fixtures are held on the "
                f"{loop}-scoped event loop ({chosen_by} in the pytest ini), but "
                f"{what} runs on another loop, where the app's resources would "
                f"not work: {self.plugin.loop_advice(loop, item)}"
            )
        if self.error is not None:
            from ._errors import LifespanUnavailable  # noqa: PLC0415

            self.reported = True
            raise LifespanUnavailable(self.error)
        return same

    def seen_by_a_test(self, exc: BaseException) -> None:
        """Note the lifespan errors that ``exc``, which a test raised, names.

        A request sent after the app failed, before this holder saw it fail,
        raises :exc:`LifespanUnavailable` in the test, naming the error: the
        test has reported it, so the teardown does not report it again.
        """
        from ._errors import LifespanUnavailable  # noqa: PLC0415
        from ._exceptions import chained  # noqa: PLC0415

        for each in chained(exc):
            if isinstance(each, LifespanUnavailable):
                self.named.append(each.error)

    def failure(self) -> BaseException:
        """The lifespan's error, now that it failed."""
        assert self.error is not None
        return self.error

    def _failed_under(self, app: LifespanApp[Any] | None) -> None:
        """The lifespan has failed, and cancelled our wait: the steps it
        watches are stopped now, with its error, not once the client and the
        lifespan have closed (a request in flight, which their exit ends,
        would raise first). Anything else that ended the wait (a Ctrl-C, the
        session ending) is left to the exit."""
        failure: BaseException | None = getattr(app, "failure", None)
        if failure is None:
            return
        self.error = failure
        self._stop_watched()

    def _stop_watched(self) -> None:
        """Stop every step watched now, once each (a watcher stopped is
        forgotten: asyncio's cancels a task, and a second would stay)."""
        watchers = list(self.watchers)
        self.watchers.clear()
        for watcher in watchers:
            watcher()

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
        self._task.cancel()

    async def _wait_done(self) -> None:
        """Wait for the task, shielded: it is bounded by the lifespan's timeouts."""
        await self.backend.wait_shielded(self._done.wait)

    async def _run(self) -> None:
        """The task: hold the lifespan until told to stop, or until it fails."""
        settings = self.settings
        options = settings.options
        app = cast("ASGIApp", self._loaded)
        try:
            opened: AbstractAsyncContextManager[LifespanApp[Any] | LifespanClient[Any]]
            from ._client import make_open_client  # noqa: PLC0415

            try:
                opened = make_open_client(
                    app,
                    options,
                    settings.base_url,
                    {},
                    caller="the lifespan_client fixture",
                )
            except ModuleNotFoundError as exc:
                self._client_error = exc
                opened = self.backend.open_one(app, options)
            async with opened as held:
                if self._client_error is None:  # the client, then its app
                    self._client = cast("LifespanClient[Any]", held)
                    self._app = self._client.lifespan
                else:
                    self._app = cast("LifespanApp[Any]", held)
                self._settled.set()
                try:
                    await self._stopping.wait()
                except BaseException:
                    self._failed_under(self._app)
                    raise
        except BaseException as exc:  # noqa: BLE001 - kept for the tests to raise
            if self.error is None:
                self.error = exc
            self._stop_watched()
        finally:
            self._settled.set()
            self._done.set()


class Watch:
    """The plugin once used: the async fixtures of each kind, the choice
    between them for each test, and the watch around what depends on them."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.settings = settings
        self.plugins = async_plugins(config)
        #: The lifespans held now (one per live fixture scope), last newest.
        self.holders: list[Holder] = []
        #: Our async fixtures, by name, and the async plugin each is for.
        self.made: dict[str, AsyncPlugin] = {}

    def fixtures(self) -> types.ModuleType:
        """The async fixtures, one set per kind that the loaded async plugins
        run, in a module (pytest finds a plugin object's fixtures on its type,
        and warns about wide-scoped fixtures that are methods)."""
        module = types.ModuleType("trio_lifespan.fixtures")
        scope = self.settings.scope
        made: set[str] = set()
        for plugin in self.plugins:
            if plugin.kind in made:
                continue
            made.add(plugin.kind)
            holder_name = f"_trio_lifespan_holder_{plugin.kind}"
            functions = (
                (holder_name, self._holding(plugin)),
                (f"_trio_lifespan_app_{plugin.kind}", _taking(_app, holder_name)),
                (f"_trio_lifespan_client_{plugin.kind}", _taking(_client, holder_name)),
            )
            for name, function in functions:
                setattr(function, OURS, True)
                # (listed with the public ones by pytest --fixtures -v)
                function.__module__ = "trio_lifespan._pytest_plugin"
                setattr(module, name, plugin.make(function, name, scope))
                self.made[name] = plugin
        return module

    def _holding(self, plugin: AsyncPlugin) -> Callable[..., AsyncGenerator[Holder]]:
        # A new function for each kind of fixture: pytest-asyncio marks the
        # function it is given as its own, and would then run the plain
        # fixture (pytest-trio's, anyio's) on its loop too.
        watch = self

        async def hold(
            asgi_app: ASGIApp, request: pytest.FixtureRequest
        ) -> AsyncGenerator[Holder]:
            made_from = app_fixtures(request._pyfuncitem)
            holder = Holder(watch.settings, asgi_app, plugin, made_from)
            await holder.start()
            watch.holders.append(holder)
            try:
                yield holder
            finally:
                watch.holders.remove(holder)
                await holder.stop()

        return hold

    def held(self, request: pytest.FixtureRequest, what: str) -> Any:
        """The app or the client (``what``) of the lifespan held by our async
        fixture of the kind this test's plugin runs.

        pytest-asyncio and anyio run an async fixture when it is asked for,
        so the holder is there to ask at once; pytest-trio runs them inside
        the test's ``trio.run`` and hands back a stand-in, which our small
        async fixture ``what`` turns into the value there.
        """
        __tracebackhide__ = True
        plugin = self.pick(request._pyfuncitem, request.fixturename)
        try:
            holder = request.getfixturevalue(f"_trio_lifespan_holder_{plugin.kind}")
        except pytest.fail.Exception as exc:
            if " scoped fixture asgi_app with a " not in str(exc):
                raise
            scope = self.settings.scope
            raise RuntimeError(
                f"lifespan_scope = {scope} in the pytest ini, but the asgi_app "
                f"fixture lives for less than a {scope}: give it "
                f'@pytest.fixture(scope="{scope}") (or a wider scope), or set '
                "lifespan_scope to its scope"
            ) from None
        if isinstance(holder, Holder):
            return holder.app if what == "app" else holder.get_client()
        return request.getfixturevalue(f"_trio_lifespan_{what}_{plugin.kind}")

    def pick(self, item: pytest.Item, fixture: str | None) -> AsyncPlugin:
        """The async plugin that runs ``item``, or a clear error."""
        __tracebackhide__ = True
        for plugin in self.plugins:
            if plugin.runs(item):
                error = plugin.scope_error(self.settings.scope, item)
                if error is not None:
                    raise RuntimeError(error)
                return plugin
        raise RuntimeError(not_run_error(fixture or "lifespan_app", item))

    # The watch around each test, and each async fixture, that depends on the
    # lifespan -----------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True, hookwrapper=True)
    def pytest_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
    ) -> Generator[None]:
        function = fixturedef.func
        item = request._pyfuncitem
        if getattr(function, OURS, False):  # ours: not watched; the async ones
            made_for = self.made.get(fixturedef.argname)  # run by their plugin
            with made_for.setting_up(item) if made_for else contextlib.nullcontext():
                yield
            return
        if not (
            inspect.iscoroutinefunction(function)
            or inspect.isasyncgenfunction(function)
        ) or id(fixturedef) not in depending(item):
            yield
            return
        # Before the async plugin's own hook (it wraps what it finds here).
        swappable: Any = fixturedef  # (typed final; the async plugins swap it too)
        swappable.func = watched_fixture(self.holders, function, item)
        try:
            yield
        finally:
            swappable.func = function

    @pytest.hookimpl(tryfirst=True, hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None]:
        test = getattr(item, "obj", None)
        if not inspect.iscoroutinefunction(test) or not depending(item):
            yield
            return
        if self.settings.scope != "function":
            self.check_the_app_serves(item)
        item.obj = watched(self.holders, test, item)  # type: ignore[attr-defined]
        try:
            yield
        finally:
            item.obj = test  # type: ignore[attr-defined]

    def check_the_app_serves(self, item: pytest.Item) -> None:
        """A wide lifespan is kept for every test of its scope: refuse a test
        whose asgi_app, as pytest resolves it for this test, is made of other
        fixtures (a class that overrides a settings fixture at a narrower
        scope) rather than give it the app made for another test."""
        __tracebackhide__ = True
        holder = self.holders[-1]
        here = app_fixtures(item)
        if here == holder.made_from:
            return
        names = sorted(
            {
                here.get(key) or holder.made_from[key]
                for key in set(here) ^ set(holder.made_from)
            }
        )
        scope = self.settings.scope
        raise RuntimeError(
            f"{item.name} overrides what the asgi_app fixture is made from "
            f"({', '.join(names)}), but the app and its lifespan are held for the "
            f"whole {scope} (lifespan_scope = {scope} in the pytest ini), made "
            f"for another test: override it for the whole {scope} (a fixture of "
            f'scope="{scope}" in its module or conftest.py), or set '
            "lifespan_scope = function"
        )


def app_fixtures(item: pytest.Item) -> dict[int, str]:
    """The fixtures the asgi_app fixture is made from, for ``item``, itself
    included: their definitions' ids and names."""
    manager: Any = item.session._fixturemanager
    found: dict[int, str] = {}
    todo = [("asgi_app", -1)]
    while todo:
        name, index = todo.pop()
        defs: tuple[Any, ...]
        try:  # (the lifespan fixtures ask for asgi_app as they run: not in
            # the test's closure; pytest looks it up by node from 8.1 on)
            defs = tuple(manager.getfixturedefs(name, item) or ())
        except (AttributeError, TypeError):  # pragma: no cover - pytest before 8.1
            defs = tuple(manager.getfixturedefs(name, item.nodeid) or ())
        if not -len(defs) <= index < 0 or id(defs[index]) in found:
            continue
        found[id(defs[index])] = name
        todo += _arguments(name, index, defs[index])
    return found


def _arguments(name: str, index: int, fixturedef: Any) -> list[tuple[str, int]]:
    """The fixtures that the definition of ``name`` at ``index`` (-1 for the
    one a test gets, -2 for the one it overrides...) takes, each as a name and
    the index of its definition: an argument of its own name is the one it
    overrides, any other the one the test gets."""
    argnames: tuple[str, ...] = fixturedef.argnames
    return [(arg, index - 1 if arg == name else -1) for arg in argnames]


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


async def _app(holder: Holder) -> LifespanApp[Any]:
    return holder.app


async def _client(holder: Holder) -> LifespanClient[Any]:
    return holder.get_client()
