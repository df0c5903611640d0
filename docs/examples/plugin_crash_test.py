"""How-to: the plugin's fixtures, and an app that crashes in a test.

``test_the_crash`` fails on purpose: it shows what a crash looks like.
"""

from typing import Any

import anyio

from trio_lifespan import LifespanClient


async def test_before_the_crash(lifespan_client: LifespanClient[Any]) -> None:
    assert (await lifespan_client.get("/users")).json() == {"users": 3}


async def test_the_crash(lifespan_client: LifespanClient[Any]) -> None:
    await lifespan_client.get("/break-the-pool")  # the pool's task dies
    await anyio.sleep(5)  # the crash ends the test here, at once


async def test_after_the_crash(lifespan_client: LifespanClient[Any]) -> None:
    assert (await lifespan_client.get("/users")).json() == {"users": 3}
