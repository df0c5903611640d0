"""How-to: the same fixture for pytest-trio, pytest-asyncio and anyio."""

from collections.abc import AsyncGenerator

import pytest
import pytest_asyncio

from trio_lifespan import LifespanApp, open_lifespan


async def app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def, type-arg]
    if scope["type"] == "lifespan":
        await receive()
        scope["state"]["greeting"] = "hello"
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})


# pytest-trio: an async fixture, run in the test's trio run.
@pytest.fixture
async def trio_app() -> AsyncGenerator[LifespanApp]:  # type: ignore[type-arg]
    async with open_lifespan(app) as wrapped:
        yield wrapped


@pytest.mark.trio
async def test_on_trio(trio_app: LifespanApp) -> None:  # type: ignore[type-arg]
    assert trio_app.state["greeting"] == "hello"


# pytest-asyncio: the same body, declared with its fixture decorator.
@pytest_asyncio.fixture
async def asyncio_app() -> AsyncGenerator[LifespanApp]:  # type: ignore[type-arg]
    async with open_lifespan(app) as wrapped:
        yield wrapped


@pytest.mark.asyncio
async def test_on_asyncio(asyncio_app: LifespanApp) -> None:  # type: ignore[type-arg]
    assert asyncio_app.state["greeting"] == "hello"


# pytest-asyncio, one lifespan for the whole module: the fixture and the tests
# that use it run on the module's event loop.
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_app() -> AsyncGenerator[LifespanApp]:  # type: ignore[type-arg]
    async with open_lifespan(app) as wrapped:
        yield wrapped


@pytest.mark.asyncio(loop_scope="module")
async def test_on_the_module_loop(module_app: LifespanApp) -> None:  # type: ignore[type-arg]
    assert module_app.state["greeting"] == "hello"


# anyio's plugin: one fixture, both backends.
@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def any_app(anyio_backend: str) -> AsyncGenerator[LifespanApp]:  # type: ignore[type-arg]
    async with open_lifespan(app) as wrapped:
        yield wrapped


@pytest.mark.anyio
async def test_on_either(any_app: LifespanApp) -> None:  # type: ignore[type-arg]
    assert dict(any_app.state) == {"greeting": "hello"}
