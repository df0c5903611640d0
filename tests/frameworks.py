# pyright: reportMissingTypeStubs=false
"""Real framework apps, each written with the framework's own lifespan API.

Every builder returns a :class:`Built`: the app, the list its hooks append
to, the path of a route that answers with a value the startup put in the
app's state, and which backends the framework runs on. ``fail`` makes the
startup or the shutdown hook raise :class:`HookFailed`; ``misbehave`` (a
:class:`Misbehave`) makes a hook raise a given error or hang, or makes
something the lifespan keeps running crash, each the framework's own way.
"""

# No `from __future__ import annotations`: FastAPI and Litestar read the
# handlers' annotations at run time.
import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anyio
import falcon as falcon_
import falcon.asgi
import pytest
import sniffio
import trio
from blacksheep import Application, Request as BlacksheepRequest, text
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.http import HttpRequest, HttpResponse
from django.urls import path as django_path
from fastapi import FastAPI, Request as FastAPIRequest
from fastapi.responses import PlainTextResponse as FastAPIText
from litestar import Litestar, Request as LitestarRequest, get
from quart import Quart
from quart_trio import QuartTrio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from trio_lifespan._types import AnyASGIApp

from .backends import BACKENDS

STATE_VALUE = "set at startup"


class HookFailed(Exception):
    """What a failing hook raises."""


@dataclass(frozen=True)
class Misbehave:
    """What goes wrong in a builder's lifespan (the failure matrix).

    ``phase`` "startup" or "shutdown": that hook raises ``error``, the very
    object, or hangs (awaits for ever) when ``error`` is None. "running":
    something the lifespan keeps running raises ``error`` ``after`` seconds
    after the startup: a task in a task group the lifespan context manager
    holds (Starlette, FastAPI, Litestar), the framework's background task
    (Quart, quart-trio: ``add_background_task``), a task a startup hook starts
    outside any task group (Falcon, BlackSheep: see :class:`Unwatched`).
    """

    phase: Literal["startup", "shutdown", "running"]
    error: Exception | None = None
    after: float = 0.0
    #: A hook that hangs, once cancelled, awaits a cleanup that takes
    #: longer than the time limit (a pool's close that is slow to answer).
    stubborn: bool = False


#: How long a stubborn hook's cleanup takes.
STUBBORN_CLEANUP = 7.0


class Unwatched:
    """A task a startup hook starts outside any task group, as Falcon and
    BlackSheep apps do (BlackSheep's docs: ``loop.create_task`` in
    ``on_start``): nothing of the framework's waits for it or sees it fail.

    On asyncio an ``asyncio.Task``, which keeps its exception. trio has no
    task outside a nursery but a system task, which must not raise (trio
    would crash), so it keeps the exception the same way.
    """

    def __init__(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        if sniffio.current_async_library() == "trio":
            trio.lowlevel.spawn_system_task(self._keep, run)
        else:
            self._task = asyncio.get_running_loop().create_task(run())

    async def _keep(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            await run()
        except Exception as exc:  # noqa: BLE001 - kept, as asyncio.Task does
            self._error = exc

    def error(self) -> BaseException | None:
        """What the task raised, so far (retrieved, as asyncio wants)."""
        if self._task is None:
            return self._error
        return self._task.exception() if self._task.done() else None


@dataclass
class Built:
    app: AnyASGIApp
    events: list[str] = field(default_factory=list[str])
    path: str = "/state"
    #: Tasks the startup started outside any task group (Falcon, BlackSheep).
    unwatched: list[Unwatched] = field(default_factory=list[Unwatched])


class Builder(Protocol):
    """A builder: ``fail`` or ``misbehave`` say what goes wrong, if anything."""

    def __call__(
        self, fail: str | None, misbehave: Misbehave | None = None
    ) -> Built: ...


def _hooks(
    events: list[str], fail: str | None
) -> tuple[Callable[[], None], Callable[[], None]]:
    def startup() -> None:
        events.append("startup")
        if fail == "startup":
            raise HookFailed("startup hook failed")

    def shutdown() -> None:
        events.append("shutdown")
        if fail == "shutdown":
            raise HookFailed("shutdown hook failed")

    return startup, shutdown


async def _act(misbehave: Misbehave | None, phase: str) -> None:
    """Raise the error, or hang, if ``misbehave`` says so for this hook."""
    if misbehave is None or misbehave.phase != phase:
        return
    if misbehave.error is not None:
        raise misbehave.error
    try:
        await anyio.sleep_forever()
    except anyio.get_cancelled_exc_class():
        if misbehave.stubborn:
            await anyio.sleep(STUBBORN_CLEANUP)
        raise


def _crash(misbehave: Misbehave) -> Callable[[], Coroutine[Any, Any, None]]:
    """A background task that raises ``misbehave.error`` after a while."""

    async def crash() -> None:
        await anyio.sleep(misbehave.after)
        assert misbehave.error is not None
        raise misbehave.error

    return crash


@contextlib.asynccontextmanager
async def _task_group(misbehave: Misbehave | None) -> AsyncGenerator[None]:
    """What a lifespan context manager keeps running: a task group whose task
    crashes when ``misbehave`` says so (its shutdown cancels the group)."""
    if misbehave is None or misbehave.phase != "running":
        yield
        return
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_crash(misbehave))
        yield
        tasks.cancel_scope.cancel()


def starlette(fail: str | None, misbehave: Misbehave | None = None) -> Built:
    events: list[str] = []
    startup, shutdown = _hooks(events, fail)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, Any]]:
        startup()
        await _act(misbehave, "startup")
        async with _task_group(misbehave):
            yield {"value": STATE_VALUE}
        shutdown()
        await _act(misbehave, "shutdown")

    async def state(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.state.value)

    return Built(Starlette(routes=[Route("/state", state)], lifespan=lifespan), events)


def fastapi(fail: str | None, misbehave: Misbehave | None = None) -> Built:
    events: list[str] = []
    startup, shutdown = _hooks(events, fail)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[dict[str, Any]]:
        startup()
        await _act(misbehave, "startup")
        async with _task_group(misbehave):
            yield {"value": STATE_VALUE}
        shutdown()
        await _act(misbehave, "shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/state", response_class=FastAPIText)
    async def state(request: FastAPIRequest) -> str:  # pyright: ignore[reportUnusedFunction]
        return str(request.state.value)

    return Built(app, events)


def litestar(fail: str | None, misbehave: Misbehave | None = None) -> Built:
    events: list[str] = []
    startup, shutdown = _hooks(events, fail)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None]:
        startup()
        await _act(misbehave, "startup")
        app.state.value = STATE_VALUE
        async with _task_group(misbehave):
            yield
        shutdown()
        await _act(misbehave, "shutdown")

    @get("/state", sync_to_thread=False)
    def state(request: LitestarRequest[Any, Any, Any]) -> str:
        return str(request.app.state.value)

    return Built(Litestar(route_handlers=[state], lifespan=[lifespan]), events)


def _quart_routes(
    app: Any, events: list[str], fail: str | None, misbehave: Misbehave | None = None
) -> None:
    startup, shutdown = _hooks(events, fail)

    @app.before_serving  # type: ignore[untyped-decorator]
    async def on_startup() -> None:
        startup()
        await _act(misbehave, "startup")
        app.config["VALUE"] = STATE_VALUE
        if misbehave is not None and misbehave.phase == "running":
            app.add_background_task(_crash(misbehave))

    @app.after_serving  # type: ignore[untyped-decorator]
    async def on_shutdown() -> None:
        shutdown()
        await _act(misbehave, "shutdown")

    @app.route("/state")  # type: ignore[untyped-decorator]
    async def state() -> str:
        return str(app.config["VALUE"])


def quart(fail: str | None, misbehave: Misbehave | None = None) -> Built:
    app = Quart(__name__)
    events: list[str] = []
    _quart_routes(app, events, fail, misbehave)
    return Built(app, events)


def quart_trio(fail: str | None, misbehave: Misbehave | None = None) -> Built:
    app = QuartTrio(__name__)
    events: list[str] = []
    _quart_routes(app, events, fail, misbehave)
    return Built(app, events)


def falcon_app(fail: str | None, misbehave: Misbehave | None = None) -> Built:
    events: list[str] = []
    unwatched: list[Unwatched] = []
    startup, shutdown = _hooks(events, fail)

    class Lifespan:
        async def process_startup(
            self, scope: Mapping[str, Any], event: Mapping[str, Any]
        ) -> None:
            startup()
            await _act(misbehave, "startup")
            scope["state"]["value"] = STATE_VALUE
            if misbehave is not None and misbehave.phase == "running":
                unwatched.append(Unwatched(_crash(misbehave)))

        async def process_shutdown(
            self, scope: Mapping[str, Any], event: Mapping[str, Any]
        ) -> None:
            shutdown()
            await _act(misbehave, "shutdown")

    class State:
        async def on_get(self, req: Any, resp: Any) -> None:
            resp.content_type = falcon_.MEDIA_TEXT
            resp.text = req.scope["state"]["value"]

    app = falcon.asgi.App(middleware=[Lifespan()])
    app.add_route("/state", State())
    return Built(app, events, unwatched=unwatched)


def blacksheep(fail: str | None, misbehave: Misbehave | None = None) -> Built:
    events: list[str] = []
    unwatched: list[Unwatched] = []
    startup, shutdown = _hooks(events, fail)
    app = Application()
    shared: dict[str, str] = {}

    async def on_start(application: Application) -> None:
        startup()
        await _act(misbehave, "startup")
        shared["value"] = STATE_VALUE
        if misbehave is not None and misbehave.phase == "running":
            unwatched.append(Unwatched(_crash(misbehave)))

    async def on_stop(application: Application) -> None:
        shutdown()
        await _act(misbehave, "shutdown")

    app.on_start += on_start
    app.on_stop += on_stop

    @app.router.get("/state")
    async def state(request: BlacksheepRequest) -> Any:
        return text(shared["value"])

    return Built(app, events, unwatched=unwatched)


def django() -> AnyASGIApp:
    """A Django project's ASGI app: it rejects the lifespan scope."""
    if not settings.configured:
        settings.configure(  # pyright: ignore[reportUnknownMemberType]
            DEBUG=False,
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=__name__,
            SECRET_KEY="tests-only",
            MIDDLEWARE=[],
        )
    return get_asgi_application()  # type: ignore[no-any-return]


def _django_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"django says hello")


def _urlpatterns() -> list[Any]:
    return [django_path("hello", _django_view)]


def __getattr__(name: str) -> Any:
    # Django reads ROOT_URLCONF's urlpatterns lazily, once settings exist.
    if name == "urlpatterns":
        return _urlpatterns()
    raise AttributeError(name)


FRAMEWORKS: dict[str, tuple[Builder, tuple[str, ...]]] = {
    "starlette": (starlette, ("trio", "asyncio")),
    "fastapi": (fastapi, ("trio", "asyncio")),
    "litestar": (litestar, ("trio", "asyncio")),
    "quart": (quart, ("asyncio",)),
    "quart-trio": (quart_trio, ("trio",)),
    "falcon": (falcon_app, ("trio", "asyncio")),
    "blacksheep": (blacksheep, ("asyncio",)),
}

_BY_NAME = {backend.name: backend for backend in BACKENDS}
#: Each framework on each backend it runs on, for
#: ``@pytest.mark.parametrize(("framework", "backend"), CASES)``.
CASES = [
    pytest.param(name, _BY_NAME[backend], id=f"{name}-{backend}")
    for name, (_, backends) in FRAMEWORKS.items()
    for backend in backends
]


# Falcon does not read an empty request body, so httpx's body generator is
# left for the finalizer, which warns. Neither ours nor a lifespan matter:
# the test modules that send Falcon requests through httpx ignore it.
UNREAD_BODY_WARNINGS = [
    pytest.mark.filterwarnings(
        "ignore:Async generator 'httpx._content.ByteStream.__aiter__':ResourceWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <async_generator object ByteStream.__aiter__"
        ":pytest.PytestUnraisableExceptionWarning"
    ),
]
