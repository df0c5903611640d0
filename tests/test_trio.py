"""trio-only behaviour: checkpoints, Ctrl-C, the library found at entry, a real framework."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import AsyncGenerator

import httpx
import pytest
import sniffio
import trio
import trio.testing
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trio_lifespan import (
    LifespanApp,
    LifespanTimeout,
    open_lifespan,
    open_lifespans,
    serve_lifespan,
)
from trio_lifespan._types import Receive, Scope, Send

from .apps import GoodApp, http_request
from .backends import TrioBackend
from .test_behaviour import returns_at_once

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup


@pytest.mark.trio
async def test_entry_and_exit_are_checkpoints() -> None:
    cm = open_lifespan(GoodApp(TrioBackend()))
    with trio.testing.assert_checkpoints():
        await cm.__aenter__()
    with trio.testing.assert_checkpoints():
        await cm.__aexit__(None, None, None)


@pytest.mark.trio
async def test_entry_and_exit_checkpoint_without_lifespan_too() -> None:
    cm = open_lifespan(returns_at_once, allow_unsupported=True)
    with trio.testing.assert_checkpoints():
        await cm.__aenter__()
    with trio.testing.assert_checkpoints():
        await cm.__aexit__(None, None, None)


@pytest.mark.trio
async def test_a_startup_answered_after_its_deadline_cancelled_the_app_times_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The app shields itself past its deadline, then answers. Trio's deadline
    # has already cancelled it, so it cannot serve: the limit is the error,
    # not "the app returned without waiting for shutdown".
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        with trio.CancelScope(shield=True):
            await trio.sleep(2)
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise AssertionError("the app's scope is cancelled")  # pragma: no cover

    with pytest.raises(LifespanTimeout) as caught:
        async with open_lifespan(app, startup_timeout=1):
            await trio.sleep_forever()  # cancelled by the app's failure, if it runs
    assert (caught.value.phase, caught.value.timeout) == ("startup", 1.0)
    assert trio.current_time() == 2


@trio.lowlevel.enable_ki_protection
def press_ctrl_c() -> None:
    # Raised where KeyboardInterrupt is deferred, trio hands it to its main
    # task, here waiting for the app to finish: as if it came at that moment.
    signal.raise_signal(signal.SIGINT)


@pytest.mark.parametrize("several", [False, True])
@pytest.mark.parametrize("body_raises", [False, True])
def test_ctrl_c_while_waiting_for_a_lingering_app_comes_out_bare(
    body_raises: bool, several: bool
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        with trio.CancelScope(shield=True):  # lingers, and cannot be hurried
            press_ctrl_c()
            await trio.sleep(1)

    body_error = ValueError("the body failed")

    async def main() -> None:
        cm = (
            open_lifespans(app, GoodApp(TrioBackend()))
            if several
            else open_lifespan(app)
        )
        async with cm:
            if body_raises:
                raise body_error

    with pytest.raises(KeyboardInterrupt) as caught:
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert type(caught.value) is KeyboardInterrupt  # not a group of one
    assert caught.value.__context__ is (body_error if body_raises else None)


@pytest.mark.trio
async def test_an_unsupported_library_is_named() -> None:
    sniffio.thread_local.name = "curio"
    try:
        with pytest.raises(
            RuntimeError,
            match=r"^open_lifespan\(\) is running under 'curio', which trio_lifespan "
            r"does not support; supported: trio, asyncio$",
        ):
            async with open_lifespan(returns_at_once):
                pass  # pragma: no cover
    finally:
        sniffio.thread_local.name = "trio"


@pytest.mark.trio
async def test_a_context_manager_is_entered_once() -> None:
    cm = open_lifespan(GoodApp(TrioBackend()))
    async with cm:
        with pytest.raises(RuntimeError, match=r"^this open_lifespan\(\) context "):
            await cm.__aenter__()


@pytest.mark.trio
async def test_the_wrapped_app_has_a_helpful_repr() -> None:
    app = GoodApp(TrioBackend())
    async with open_lifespan(app) as wrapped:
        assert repr(wrapped).startswith("<function LifespanApp[GoodApp] at 0x")


@pytest.mark.trio
async def test_a_body_exception_group_is_the_bodys_own(
    autojump_clock: trio.testing.MockClock,
) -> None:
    group = ExceptionGroup("two", [ValueError(1), KeyError(2)])
    with pytest.raises(ExceptionGroup) as caught:
        async with open_lifespan(GoodApp(TrioBackend())):
            raise group
    assert caught.value is group


@pytest.mark.trio
async def test_the_apps_exception_keeps_its_own_context() -> None:
    original = KeyError("first")
    error = ValueError("second")
    error.__context__ = original

    async def app(scope: object, receive: object, send: object) -> None:
        await receive()  # type: ignore[operator]
        raise error

    try:
        raise RuntimeError("the caller was handling this")
    except RuntimeError:
        with pytest.raises(ValueError, match=r"^second$") as caught:
            async with open_lifespan(app):
                pass  # pragma: no cover
    assert caught.value is error
    assert error.__context__ is original


@pytest.mark.trio
async def test_starlette_with_httpx_on_trio() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[dict[str, object]]:
        events.append("startup")
        yield {"greeting": "hello"}
        events.append("shutdown")

    async def home(request: Request) -> JSONResponse:
        return JSONResponse({"greeting": request.state.greeting})

    app = Starlette(routes=[Route("/", home)], lifespan=lifespan)
    async with open_lifespan(app) as wrapped:
        assert events == ["startup"]
        assert wrapped.state == {"greeting": "hello"}
        transport = httpx.ASGITransport(app=wrapped)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t"
        ) as client:
            response = await client.get("/")
        assert response.json() == {"greeting": "hello"}
        scope = await http_request(wrapped, "/nowhere")
        assert scope["state"] == {"greeting": "hello"}
    assert events == ["startup", "shutdown"]


@pytest.mark.trio
async def test_serve_lifespan_with_nursery_start(
    autojump_clock: trio.testing.MockClock,
) -> None:
    app = GoodApp(TrioBackend())
    async with trio.open_nursery() as nursery:
        wrapped = await nursery.start(serve_lifespan, app)
        assert isinstance(wrapped, LifespanApp)
        assert (await http_request(wrapped))["state"]["name"] == "good"
        nursery.cancel_scope.cancel()
    assert app.events[-1] == "returned"


@pytest.mark.trio
async def test_serve_lifespan_startup_error_comes_out_of_start_bare() -> None:
    error = ValueError("startup")

    async def app(scope: object, receive: object, send: object) -> None:
        await receive()  # type: ignore[operator]
        raise error

    async with trio.open_nursery() as nursery:
        with pytest.raises(ValueError, match=r"^startup$") as caught:
            await nursery.start(serve_lifespan, app)
    assert caught.value is error
