"""Soak: many enter/exit cycles must not leak tasks, channels, scopes or state.

CI runs a reduced number of cycles; ``pytest -m slow`` runs the full 10,000 on
each backend. Memory is measured with tracemalloc after a warm-up, so the
caches every first run fills do not count.
"""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from trio_lifespan import open_lifespan, open_lifespans

from .apps import GoodApp, http_request
from .backends import BACKENDS, Backend

WARM_UP = 300
#: Bytes the traced memory may grow by over the measured cycles. Real leaks
#: grow per cycle (a task, a channel or a state dict is hundreds of bytes),
#: so they blow through this long before 10,000 cycles.
BOUND = 64 * 1024


async def cycles(backend: Backend, count: int, growth: list[int]) -> None:
    async def one() -> None:
        app = GoodApp(backend)
        async with open_lifespan(app) as wrapped:
            await http_request(wrapped)
        assert app.events[-1] == "returned"

    async def pair() -> None:
        async with open_lifespans(GoodApp(backend), GoodApp(backend)) as apps:
            await http_request(apps[1])

    for _ in range(WARM_UP):
        await one()
        await pair()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    for index in range(count):
        await (one() if index % 2 else pair())
    gc.collect()
    growth.append(tracemalloc.get_traced_memory()[0] - before)


def soak(backend: Backend, count: int) -> int:
    growth: list[int] = []
    tracemalloc.start()
    try:
        backend.run(cycles, {"backend": backend, "count": count, "growth": growth})
    finally:
        tracemalloc.stop()
    return growth[0]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
def test_soak_reduced(backend: Backend) -> None:
    assert soak(backend, 1_000) < BOUND


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda backend: backend.name)
def test_soak_full(backend: Backend) -> None:
    assert soak(backend, 10_000) < BOUND


def test_the_bound_catches_a_leak() -> None:
    # The measurement itself can fail: keep 1,000 state dicts alive.
    kept: list[dict[str, object]] = []

    async def leaky(backend: Backend, count: int, growth: list[int]) -> None:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for index in range(count):
            kept.append({"cycle": index, "payload": [index] * 10})
        gc.collect()
        growth.append(tracemalloc.get_traced_memory()[0] - before)

    growth: list[int] = []
    tracemalloc.start()
    try:
        BACKENDS[0].run(
            leaky, {"backend": BACKENDS[0], "count": 1_000, "growth": growth}
        )
    finally:
        tracemalloc.stop()
    assert growth[0] > BOUND
