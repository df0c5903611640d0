"""Lifespans of mounted sub-apps: ``lifespan_of`` and ``with_lifespans``.

A server talks lifespan to the app it serves, never to the apps mounted
inside it (``Mount("/admin", admin)``, an MCP server's streamable-HTTP app, a
dispatcher in front of several apps), so their startups never run. Both
entry points here run them with ``open_lifespans``' semantics, in one of two
shapes:

- :func:`lifespan_of`: what a framework takes as its ``lifespan=``
  (Starlette, FastAPI; Litestar's ``lifespan=[...]``);
- :func:`with_lifespans`: an ASGI app around any app, for any server.

Under both is one stack (:class:`_Stack`): the sub-apps' group, started
concurrently and shut down in reverse order of startup completion (the
driver's, ``Backend.open_stack``: a ``_group.LifespanStack``); inside
it, once they have all started, the parent's own lifespan, run as one more
app by the driver, so it is bounded and judged the same way;
inside that, the server's serving. Every app's lifespan state is merged into
one dict, which requests see.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from ._backend import current_backend
from ._compat import ki_protected
from ._errors import LifespanStateConflict, LifespanUnavailable
from ._exceptions import name_the_app
from ._options import Options, check_app, check_options

if TYPE_CHECKING:
    from typing import TypeAlias

    from ._backend import Stack
    from ._state import LifespanApp
    from ._types import AnyASGIApp, ASGIApp, Receive, Scope, Send

    #: A framework's lifespan: called with the app, it returns an async
    #: context manager that may yield the state to add (Starlette's shape).
    OwnLifespan: TypeAlias = Callable[
        [Any], AbstractAsyncContextManager[Mapping[str, Any] | None]
    ]

_REQUESTS = frozenset({"http", "websocket"})


def _check_once_each(apps: Sequence[object], names: Sequence[str]) -> None:
    """The same app twice would have its lifespan run twice (two pools, or an
    MCP session manager that refuses a second start)."""
    seen: dict[int, str] = {}
    for app, name in zip(apps, names, strict=True):
        first = seen.setdefault(id(app), name)
        if first != name:
            raise ValueError(
                f"{first} and {name} are the same app: its lifespan would run "
                "twice. Pass each app once, at the level where it is mounted "
                "(an app that runs its sub-apps' lifespans itself, as hypercorn's "
                "DispatcherMiddleware does, needs none of them here)"
            )


def _name(app: object) -> str:
    if isinstance(app, _LifespanOf):  # nested: what it runs, not our class
        return repr(app)
    return getattr(app, "__qualname__", type(app).__qualname__)


def _check_own_lifespan(lifespan: object) -> None:
    """A clear error at the call for what ``lifespan=`` cannot be."""
    wants = (
        "lifespan must be a callable that takes the app and returns an async "
        "context manager (as lifespan= takes)"
    )
    if not callable(lifespan):
        raise TypeError(f"{wants}, not {type(lifespan).__name__}")
    if inspect.isasyncgenfunction(lifespan):
        raise TypeError(
            f"{wants}; {_name(lifespan)} is an async generator function: "
            "decorate it with @contextlib.asynccontextmanager"
        )
    try:
        signature = inspect.signature(lifespan)
    except (TypeError, ValueError):  # no signature to read: trust it
        return
    try:
        signature.bind(None)
    except TypeError:
        raise TypeError(
            f"{wants}; {_name(lifespan)} cannot be called with one argument, "
            f"the app: {_name(lifespan)}{signature}. An ASGI app to run the "
            "lifespan of goes among the apps, not in lifespan="
        ) from None


def _merge(
    state: dict[str, Any], owners: dict[str, str], owner: str, more: Mapping[str, Any]
) -> None:
    """Add ``owner``'s state to ``state``; a key set twice is a conflict."""
    for key, value in more.items():
        first = owners.setdefault(key, owner)
        if first != owner:
            raise LifespanStateConflict(key, first, owner)
        state[key] = value


class _Stack:
    """Run the sub-apps' lifespans, then ``last``'s (an app and its name),
    around a block; yield every app's state merged.

    A class with KI-protected ``__aenter__`` and ``__aexit__`` (not an
    ``asynccontextmanager``, whose frames between the group's hand-entered
    nursery and the block a Ctrl-C could cut in half). A conflict between
    two states is raised where the startups are over, so the apps that
    started are shut down as after any failed startup.
    """

    __slots__ = ("_apps", "_caller", "_group", "_last", "_names", "_options", "_own")

    def __init__(
        self,
        caller: str,
        apps: Sequence[AnyASGIApp],
        names: Sequence[str],
        last: tuple[AnyASGIApp, str] | None,
        options: Options,
    ) -> None:
        self._caller = caller
        self._apps = apps
        self._names = names
        self._last = last
        self._options = options
        self._group: Stack | None = None
        self._own: AbstractAsyncContextManager[LifespanApp[Any]] | None = None

    @ki_protected
    async def __aenter__(self) -> dict[str, Any]:
        __tracebackhide__ = True
        backend = current_backend(self._caller)
        group = self._group = backend.open_stack(self._apps, self._options, self._names)
        started = await group.__aenter__()
        state: dict[str, Any] = {}
        owners: dict[str, str] = {}
        try:
            for name, wrapped in zip(self._names, started, strict=True):
                _merge(state, owners, name, wrapped.state)
            if self._last is not None:
                app, name = self._last
                own = self._own = backend.open_one(app, self._options)
                try:
                    wrapped = await own.__aenter__()
                except BaseException as exc:
                    name_the_app(exc, name)
                    raise
                try:
                    _merge(state, owners, name, wrapped.state)
                except BaseException as exc:
                    # (Its exit raises what matters, or returns False.)
                    await own.__aexit__(type(exc), exc, exc.__traceback__)
                    raise
        except BaseException as exc:
            await group.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return state

    @ki_protected
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        __tracebackhide__ = True
        group = self._group
        assert group is not None, "entered first: only this module makes stacks"
        own = self._own
        if own is not None:
            # A sub-app failing now does not cut the parent's shutdown short.
            group.stack.guard_the_body()
            try:
                await own.__aexit__(exc_type, exc, tb)
            except BaseException as error:
                # (Never the block's own exception: that the exit returns.)
                assert self._last is not None
                name_the_app(error, self._last[1])
                # The parent's own lifespan failed: the group's exit judges
                # it as it judges a block's exception.
                await group.__aexit__(type(error), error, error.__traceback__)
                raise
        return await group.__aexit__(exc_type, exc, tb)


def _own_lifespan_app(lifespan: OwnLifespan, parent: Any) -> ASGIApp:
    """A framework-style lifespan as an ASGI app, as Starlette runs one."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        manager = lifespan(parent)
        if not isinstance(cast("object", manager), AbstractAsyncContextManager):
            raise TypeError(
                f"lifespan= {_name(lifespan)} returned {type(manager).__name__}, "
                "not an async context manager: make it an async function "
                "decorated with @contextlib.asynccontextmanager"
            )
        async with manager as state:
            if state is not None:
                if not isinstance(cast("object", state), Mapping):
                    raise TypeError(
                        f"lifespan= {_name(lifespan)} yielded "
                        f"{type(state).__name__}, not a mapping of state to add "
                        "(a dict) or None"
                    )
                scope["state"].update(state)
            await send({"type": "lifespan.startup.complete"})
            await receive()
        await send({"type": "lifespan.shutdown.complete"})

    return app


class _LifespanOf:
    """What :func:`lifespan_of` returns: a framework's ``lifespan=``."""

    __slots__ = ("_apps", "_lifespan", "_options", "every_app", "names")

    def __init__(
        self,
        apps: tuple[AnyASGIApp, ...],
        lifespan: OwnLifespan | None,
        options: Options,
    ) -> None:
        self._apps = apps
        self.names = [f"apps[{index}] ({_name(app)})" for index, app in enumerate(apps)]
        self._lifespan = lifespan
        self._options = options
        #: Every app whose lifespan this runs, with its name, nested
        #: ``lifespan_of`` in ``lifespan=`` included.
        self.every_app: list[tuple[object, str]] = list(
            zip(apps, self.names, strict=True)
        )
        if isinstance(lifespan, _LifespanOf):
            self.every_app += [
                (app, f"lifespan's {name}") for app, name in lifespan.every_app
            ]

    def __call__(self, app: Any) -> AbstractAsyncContextManager[dict[str, Any]]:
        own = self._lifespan
        last = None
        if own is not None:
            last = (_own_lifespan_app(own, app), f"lifespan ({_name(own)})")
        return _Stack("lifespan_of", self._apps, self.names, last, self._options)

    def __repr__(self) -> str:
        shown = [_name(app) for app in self._apps]
        if self._lifespan is not None:
            shown.append(f"lifespan={_name(self._lifespan)}")
        return f"lifespan_of({', '.join(shown)})"


def lifespan_of(
    *apps: AnyASGIApp,
    lifespan: OwnLifespan | None = None,
    startup_timeout: float | None = 5.0,
    shutdown_timeout: float | None = 5.0,
    allow_unsupported: bool = False,
) -> Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]:
    """Run mounted apps' lifespans as part of their parent's: a ``lifespan=``.

    The result is what Starlette and FastAPI take as ``lifespan=``, and
    Litestar as one of its ``lifespan=[...]``: called with the parent app, it
    returns an async context manager. Entering it starts every app given
    here, concurrently, as :func:`open_lifespans` does; then, if given, the
    parent's own ``lifespan``; and yields their lifespan states merged into
    one dict. Starlette and FastAPI put that dict in the state every request
    gets, so a request routed to a mounted app sees the state its own startup
    set. Leaving it shuts the parent's own lifespan down first, then the apps
    one at a time, in reverse order of their startups' completion.

    Args:
        *apps: The mounted ASGI apps (Starlette, FastAPI, Litestar, an MCP
            server's ``streamable_http_app()``, ...).
        lifespan: The parent's own lifespan, in the shape ``lifespan=`` takes
            (a callable that takes the app and returns an async context
            manager, which may yield a mapping of state). It starts once the
            apps have started, so it can use them, and it stops before them.
        startup_timeout: Seconds each startup may take (each app's, then the
            parent's own), or ``None`` for no limit.
        shutdown_timeout: Seconds each shutdown may take, or ``None``.
        allow_unsupported: Run apps that do not support lifespan.

    Returns:
        A callable taking the parent app and returning an async context
        manager that yields the merged state.

    Raises:
        TypeError: An option has the wrong type, or ``lifespan`` is not
            a callable that takes the app (an async generator function not
            yet made a context manager, an ASGI app).
        LifespanNotASGIApp: An app is not callable.
        ValueError: A timeout is negative, NaN, or an int too large for a
            float; or the same app is given twice.

    What comes out of the context manager when things fail is what
    :func:`open_lifespans` raises: one exception, bare, never a group of
    one. An app's failed startup fails the parent's startup (the server then
    reports ``lifespan.startup.failed`` and refuses to start), once the apps
    that had started are shut down. Two apps whose states have the same key:
    :exc:`LifespanStateConflict`, at startup. An app that crashes while the
    parent runs: the parent's lifespan is cancelled and the app's error comes
    out of it.

    Example::

        mcp_app = mcp.streamable_http_app()
        app = FastAPI(lifespan=lifespan_of(mcp_app, admin, lifespan=own))
        app.mount("/mcp", mcp_app)
        app.mount("/admin", admin)
    """
    for index, app in enumerate(apps):
        check_app(app, f"apps[{index}]")
    if lifespan is not None:
        _check_own_lifespan(lifespan)
    options = check_options(startup_timeout, shutdown_timeout, allow_unsupported)
    lifespan_of = _LifespanOf(apps, lifespan, options)
    every_app = lifespan_of.every_app
    _check_once_each([app for app, _ in every_app], [name for _, name in every_app])
    return lifespan_of


class _WithLifespans:
    """The ASGI app :func:`with_lifespans` returns."""

    __slots__ = ("_app", "_failure", "_options", "_state", "_sub_apps", "names")

    def __init__(
        self, app: AnyASGIApp, sub_apps: tuple[AnyASGIApp, ...], options: Options
    ) -> None:
        self._app = app
        self._sub_apps = sub_apps
        self.names = [
            f"sub_apps[{index}] ({_name(sub)})" for index, sub in enumerate(sub_apps)
        ]
        #: The lifespan's error once it failed: requests are refused then.
        self._failure: BaseException | None = None
        self._options = options
        # The merged state requests get from us: only when the server put no
        # "state" in the lifespan scope (else the server copies it into them).
        self._state: dict[str, Any] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if self._failure is not None and kind in _REQUESTS:
            # As the app open_lifespan yields: no request reaches apps whose
            # lifespans are gone (the server answers 500 and logs the cause).
            raise LifespanUnavailable(self._failure)
        state = self._state
        if state is not None and kind in _REQUESTS:
            given = scope.get("state")
            scope["state"] = state.copy() if given is None else {**state, **given}
        await self._app(scope, receive, send)

    @ki_protected
    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        # KI-protected, like the drivers: between the stack's entry and its
        # block a Ctrl-C would leave the group's nursery open. (A Ctrl-C
        # waits for the next checkpoint, where the driver running us gets it.)
        self._state = self._failure = None
        await receive()  # lifespan.startup
        started = False
        last = (self._app, f"app ({_name(self._app)})")
        try:
            async with _Stack(
                "with_lifespans", self._sub_apps, self.names, last, self._options
            ) as state:
                server_state = scope.get("state")
                if server_state is None:
                    self._state = state
                else:
                    server_state.update(state)
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()  # lifespan.shutdown
        except Exception as exc:
            self._failure = exc
            # As Starlette does: the report carries the traceback, which
            # servers log, and the error goes on to the server.
            phase = "shutdown" if started else "startup"
            await send(
                {"type": f"lifespan.{phase}.failed", "message": traceback.format_exc()}
            )
            raise
        await send({"type": "lifespan.shutdown.complete"})

    def __repr__(self) -> str:
        shown = [_name(app) for app in (self._app, *self._sub_apps)]
        return f"with_lifespans({', '.join(shown)})"


def with_lifespans(
    app: AnyASGIApp,
    *sub_apps: AnyASGIApp,
    startup_timeout: float | None = 5.0,
    shutdown_timeout: float | None = 5.0,
    allow_unsupported: bool = False,
) -> ASGIApp:
    """Wrap an ASGI app so that a server runs the lifespans of the apps inside it.

    The result is an ASGI app to serve in place of ``app``, for any framework
    or none (a dispatcher, a plain router, Quart, Falcon, Litestar). On the
    ``lifespan`` scope it starts the ``sub_apps`` concurrently, as
    :func:`open_lifespans` does, then ``app``'s own lifespan, and reports the
    startup complete to the server; on the server's shutdown it shuts
    ``app`` down first, then the sub-apps one at a time, in reverse order of
    their startups' completion. Every other scope goes to ``app`` unchanged,
    with every app's lifespan state merged into the request's ``"state"``:
    the server copies it there when it put a ``"state"`` in the lifespan
    scope; otherwise this app puts a shallow copy there itself.

    Args:
        app: The ASGI app the server would serve, which routes requests to
            the sub-apps.
        *sub_apps: The apps mounted in it, whose lifespans the server does
            not run.
        startup_timeout: Seconds each startup may take (each sub-app's, then
            ``app``'s), or ``None`` for no limit.
        shutdown_timeout: Seconds each shutdown may take, or ``None``.
        allow_unsupported: Run apps that do not support lifespan, ``app``
            included: a dispatcher or router without a lifespan of its own
            needs it.

    Returns:
        An ASGI app.

    Raises:
        TypeError: An option has the wrong type.
        LifespanNotASGIApp: ``app`` or a sub-app is not callable.
        ValueError: A timeout is negative, NaN, or an int too large for a
            float; or the same app is given twice.

    A failure is reported to the server as ``lifespan.startup.failed`` (or
    ``lifespan.shutdown.failed``) with the traceback as the message, which
    servers log, and then raised, as Starlette does; the error is what
    :func:`open_lifespans` would raise, bare. Two apps whose states have the
    same key: :exc:`LifespanStateConflict`, at startup.

    Example::

        app = with_lifespans(dispatcher, users, billing, allow_unsupported=True)
        # uvicorn module:app, hypercorn module:app, ...
    """
    check_app(app)
    for index, sub in enumerate(sub_apps):
        check_app(sub, f"sub_apps[{index}]")
    options = check_options(startup_timeout, shutdown_timeout, allow_unsupported)
    middleware = _WithLifespans(app, sub_apps, options)
    _check_once_each((app, *sub_apps), (f"app ({_name(app)})", *middleware.names))
    return middleware
