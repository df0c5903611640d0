"""Real frameworks, each on every backend it supports, through real requests.

Requests go through ``httpx.AsyncClient(transport=httpx.ASGITransport(app=...))``
against the app ``open_lifespan`` yields. These run on real event loops
(anyio's pytest plugin), bounded by ``fail_after`` so nothing hangs.
"""

from __future__ import annotations

import time

import anyio
import pytest

from trio_lifespan import (
    LifespanError,
    LifespanNotSupported,
    LifespanShutdownFailed,
    LifespanStartupFailed,
    open_lifespan,
)

from .apps import client
from .frameworks import (
    FRAMEWORKS,
    STATE_VALUE,
    UNREAD_BODY_WARNINGS,
    HookFailed,
    django,
)

pytestmark = UNREAD_BODY_WARNINGS

CASES = [
    pytest.param(name, backend, id=f"{name}-{backend}")
    for name, (_, backends) in FRAMEWORKS.items()
    for backend in backends
]
GUARD = 20  # seconds: far above what any of these takes

# What each framework makes of a hook that raises: its own exception, or a
# report without one. Pinned here so a change in a framework shows up.
STARTUP_ERROR = {
    "starlette": HookFailed,
    "fastapi": HookFailed,
    "litestar": HookFailed,
    "quart": LifespanStartupFailed,
    "quart-trio": LifespanStartupFailed,
    "falcon": LifespanStartupFailed,
    "blacksheep": LifespanStartupFailed,
}
SHUTDOWN_ERROR = {
    "starlette": HookFailed,
    "fastapi": HookFailed,
    "litestar": HookFailed,
    "quart": LifespanShutdownFailed,
    "quart-trio": LifespanShutdownFailed,
    "falcon": LifespanShutdownFailed,
    "blacksheep": HookFailed,
}


@pytest.mark.anyio
@pytest.mark.parametrize(("framework", "anyio_backend"), CASES)
async def test_hooks_run_and_state_reaches_requests(
    framework: str, anyio_backend: str
) -> None:
    built = FRAMEWORKS[framework][0](None)
    with anyio.fail_after(GUARD):
        async with open_lifespan(built.app) as app:
            assert built.events == ["startup"]
            async with client(app) as http:
                response = await http.get(built.path)
            assert response.status_code == 200
            assert response.text == STATE_VALUE
            assert built.events == ["startup"]
    assert built.events == ["startup", "shutdown"]


@pytest.mark.anyio
@pytest.mark.parametrize(("framework", "anyio_backend"), CASES)
async def test_a_startup_hook_that_raises_fails_entry_at_once(
    framework: str, anyio_backend: str
) -> None:
    built = FRAMEWORKS[framework][0]("startup")
    began = time.monotonic()
    body_ran = False
    with anyio.fail_after(GUARD), pytest.raises(STARTUP_ERROR[framework]) as caught:
        async with open_lifespan(built.app, startup_timeout=GUARD):
            body_ran = True  # pragma: no cover
    assert time.monotonic() - began < 5  # not by waiting out the timeout
    assert not body_ran
    assert built.events == ["startup"]
    assert "startup hook failed" in str(caught.value) or isinstance(
        caught.value, LifespanStartupFailed
    )


@pytest.mark.anyio
@pytest.mark.parametrize(("framework", "anyio_backend"), CASES)
async def test_a_shutdown_hook_that_raises_fails_exit(
    framework: str, anyio_backend: str
) -> None:
    built = FRAMEWORKS[framework][0]("shutdown")
    began = time.monotonic()
    with anyio.fail_after(GUARD), pytest.raises(SHUTDOWN_ERROR[framework]) as caught:
        async with open_lifespan(built.app, shutdown_timeout=GUARD):
            assert built.events == ["startup"]
    assert time.monotonic() - began < 5
    assert built.events == ["startup", "shutdown"]
    assert isinstance(caught.value, (HookFailed, LifespanError))


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_django_rejects_lifespan_by_default(anyio_backend: str) -> None:
    with anyio.fail_after(GUARD), pytest.raises(LifespanNotSupported) as caught:
        async with open_lifespan(django()):
            pass  # pragma: no cover
    assert isinstance(caught.value.__cause__, ValueError)
    assert "Django can only handle ASGI/HTTP connections" in str(caught.value)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_django_runs_with_allow_unsupported(anyio_backend: str) -> None:
    with anyio.fail_after(GUARD):
        async with open_lifespan(django(), allow_unsupported=True) as app:
            assert not app.supported
            async with client(app) as http:
                response = await http.get("/hello")
    assert response.status_code == 200
    assert response.text == "django says hello"
