"""Run the shared async tests on every backend, on fake time."""

from __future__ import annotations

import inspect
import os
from typing import cast

import pytest

from .backends import BACKENDS, Backend


@pytest.fixture(params=BACKENDS, ids=lambda backend: backend.name)
def backend(request: pytest.FixtureRequest) -> Backend:
    """The event loop library the test runs on."""
    return cast("Backend", request.param)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests that take ``backend`` on that backend."""
    if "backend" not in pyfuncitem.fixturenames or not inspect.iscoroutinefunction(
        pyfuncitem.obj
    ):
        return None
    kwargs = {
        name: pyfuncitem.funcargs[name]
        for name in pyfuncitem._fixtureinfo.argnames  # pyright: ignore[reportPrivateUsage]
    }
    backend = cast("Backend", pyfuncitem.funcargs["backend"])
    backend.run(pyfuncitem.obj, kwargs)
    return True


# The suite's clients are httpx's (tests/test_httpx2.py tries httpx2's): set
# before any test, so the sessions and scripts the tests start inherit it.
os.environ.setdefault("TRIO_LIFESPAN_HTTPX", "httpx")
