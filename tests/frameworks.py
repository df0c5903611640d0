# pyright: reportMissingTypeStubs=false
"""Real framework apps, each written with the framework's own lifespan API.

Every builder returns a :class:`Built`: the app, the list its hooks append
to, the path of a route that answers with a value the startup put in the
app's state, and which backends the framework runs on. ``fail`` makes the
startup or the shutdown hook raise :class:`HookFailed`.
"""

# No `from __future__ import annotations`: FastAPI and Litestar read the
# handlers' annotations at run time.
import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import falcon as falcon_
import falcon.asgi
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

STATE_VALUE = "set at startup"


class HookFailed(Exception):
    """What a failing hook raises."""


@dataclass
class Built:
    app: AnyASGIApp
    events: list[str] = field(default_factory=list[str])
    path: str = "/state"


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


def starlette(fail: str | None) -> Built:
    events: list[str] = []
    startup, shutdown = _hooks(events, fail)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, Any]]:
        startup()
        yield {"value": STATE_VALUE}
        shutdown()

    async def state(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.state.value)

    return Built(Starlette(routes=[Route("/state", state)], lifespan=lifespan), events)


def fastapi(fail: str | None) -> Built:
    events: list[str] = []
    startup, shutdown = _hooks(events, fail)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncGenerator[dict[str, Any]]:
        startup()
        yield {"value": STATE_VALUE}
        shutdown()

    app = FastAPI(lifespan=lifespan)

    @app.get("/state", response_class=FastAPIText)
    async def state(request: FastAPIRequest) -> str:  # pyright: ignore[reportUnusedFunction]
        return str(request.state.value)

    return Built(app, events)


def litestar(fail: str | None) -> Built:
    events: list[str] = []
    startup, shutdown = _hooks(events, fail)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None]:
        startup()
        app.state.value = STATE_VALUE
        yield
        shutdown()

    @get("/state", sync_to_thread=False)
    def state(request: LitestarRequest[Any, Any, Any]) -> str:
        return str(request.app.state.value)

    return Built(Litestar(route_handlers=[state], lifespan=[lifespan]), events)


def _quart_routes(app: Any, events: list[str], fail: str | None) -> None:
    startup, shutdown = _hooks(events, fail)

    @app.before_serving  # type: ignore[untyped-decorator]
    async def on_startup() -> None:
        startup()
        app.config["VALUE"] = STATE_VALUE

    @app.after_serving  # type: ignore[untyped-decorator]
    async def on_shutdown() -> None:
        shutdown()

    @app.route("/state")  # type: ignore[untyped-decorator]
    async def state() -> str:
        return str(app.config["VALUE"])


def quart(fail: str | None) -> Built:
    app = Quart(__name__)
    events: list[str] = []
    _quart_routes(app, events, fail)
    return Built(app, events)


def quart_trio(fail: str | None) -> Built:
    app = QuartTrio(__name__)
    events: list[str] = []
    _quart_routes(app, events, fail)
    return Built(app, events)


def falcon_app(fail: str | None) -> Built:
    events: list[str] = []
    startup, shutdown = _hooks(events, fail)

    class Lifespan:
        async def process_startup(
            self, scope: Mapping[str, Any], event: Mapping[str, Any]
        ) -> None:
            startup()
            scope["state"]["value"] = STATE_VALUE

        async def process_shutdown(
            self, scope: Mapping[str, Any], event: Mapping[str, Any]
        ) -> None:
            shutdown()

    class State:
        async def on_get(self, req: Any, resp: Any) -> None:
            resp.content_type = falcon_.MEDIA_TEXT
            resp.text = req.scope["state"]["value"]

    app = falcon.asgi.App(middleware=[Lifespan()])
    app.add_route("/state", State())
    return Built(app, events)


def blacksheep(fail: str | None) -> Built:
    events: list[str] = []
    startup, shutdown = _hooks(events, fail)
    app = Application()
    shared: dict[str, str] = {}

    async def on_start(application: Application) -> None:
        startup()
        shared["value"] = STATE_VALUE

    async def on_stop(application: Application) -> None:
        shutdown()

    app.on_start += on_start
    app.on_stop += on_stop

    @app.router.get("/state")
    async def state(request: BlacksheepRequest) -> Any:
        return text(shared["value"])

    return Built(app, events)


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


FRAMEWORKS: dict[str, tuple[Callable[[str | None], Built], tuple[str, ...]]] = {
    "starlette": (starlette, ("trio", "asyncio")),
    "fastapi": (fastapi, ("trio", "asyncio")),
    "litestar": (litestar, ("trio", "asyncio")),
    "quart": (quart, ("asyncio",)),
    "quart-trio": (quart_trio, ("trio",)),
    "falcon": (falcon_app, ("trio", "asyncio")),
    "blacksheep": (blacksheep, ("asyncio",)),
}
