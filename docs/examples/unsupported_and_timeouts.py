"""How-to: apps without lifespan, and time limits."""

import trio

from trio_lifespan import LifespanNotSupported, LifespanTimeout, open_lifespan


async def django_like(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        raise ValueError(f"only http, not {scope['type']}")


async def slow_to_start(scope, receive, send):  # type: ignore[no-untyped-def]
    await receive()
    await trio.sleep(60)  # waiting on a database that is not there


async def main() -> None:
    try:
        async with open_lifespan(django_like):
            pass
    except LifespanNotSupported:
        print("not supported, as expected")

    async with open_lifespan(django_like, allow_unsupported=True) as app:
        print("supported:", app.supported)

    try:
        async with open_lifespan(slow_to_start, startup_timeout=0.1):
            pass
    except LifespanTimeout as exc:  # also a TimeoutError
        print("timed out in", exc.phase, "after", exc.timeout, "s")


if __name__ == "__main__":
    trio.run(main)
