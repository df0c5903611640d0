"""The yielded types are inferred without casts (checked by mypy and pyright).

``assert_type`` does nothing at run time; the static checkers in CI fail on a
wrong type. The test also runs, so the code it checks is real.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import falcon.asgi
import pytest
import trio
from litestar import Litestar
from quart_trio import QuartTrio
from starlette.applications import Starlette
from typing_extensions import assert_type

from trio_lifespan import (
    LifespanApp,
    LifespanManager,
    open_lifespan,
    open_lifespans,
    serve_lifespan,
)

from .apps import GoodApp
from .backends import TrioBackend


@pytest.mark.trio
async def test_types_are_inferred() -> None:
    good = GoodApp(TrioBackend())
    star = Starlette()
    async with open_lifespan(good) as wrapped:
        assert_type(wrapped, LifespanApp[GoodApp])
        assert_type(wrapped.app, GoodApp)
        assert_type(wrapped.state, Mapping[str, Any])
    async with open_lifespans(good) as (only,):
        assert_type(only, LifespanApp[GoodApp])
    async with open_lifespans(GoodApp(TrioBackend()), star) as (one, two):
        assert_type(one, LifespanApp[GoodApp])
        assert_type(two, LifespanApp[Starlette])
    async with open_lifespans(star, star, star) as three:
        assert_type(
            three,
            tuple[
                LifespanApp[Starlette], LifespanApp[Starlette], LifespanApp[Starlette]
            ],
        )
    async with open_lifespans(star, star, star, star) as many:
        assert_type(many, tuple[LifespanApp[Any], ...])
    async with LifespanManager(GoodApp(TrioBackend())) as manager:
        assert_type(manager, LifespanManager[GoodApp])
        assert_type(manager.app, LifespanApp[GoodApp])
        assert_type(manager.state, Mapping[str, Any])
    async with trio.open_nursery() as nursery:
        started = await nursery.start(serve_lifespan, GoodApp(TrioBackend()))
        assert isinstance(started, LifespanApp)
        nursery.cancel_scope.cancel()
    assert len(many) == 4


@pytest.mark.trio
async def test_frameworks_with_narrow_asgi_types_are_accepted() -> None:
    # Regression: Litestar, Quart and Falcon type __call__ with TypedDict
    # scopes, which an app bound of Callable[[MutableMapping, ...], ...]
    # rejected under mypy and pyright strict.
    lite, quart, falcon_app = Litestar(), QuartTrio(__name__), falcon.asgi.App()
    async with open_lifespan(lite) as wrapped:
        assert_type(wrapped, LifespanApp[Litestar])
    async with open_lifespans(quart, falcon_app) as (one, two):
        assert_type(one, LifespanApp[QuartTrio])
        assert_type(
            two, LifespanApp[falcon.asgi.App[falcon.asgi.Request, falcon.asgi.Response]]
        )
    async with LifespanManager(lite) as manager:
        assert_type(manager.app.app, Litestar)
