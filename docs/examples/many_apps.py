"""How-to: host several apps at once, with open_lifespans and serve_lifespan."""

import trio

from trio_lifespan import open_lifespans, serve_lifespan


def make_app(name: str, log: list[str]):  # type: ignore[no-untyped-def]
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            await receive()
            log.append(f"{name} started")
            scope["state"]["name"] = name
            await send({"type": "lifespan.startup.complete"})
            await receive()
            log.append(f"{name} stopped")
            await send({"type": "lifespan.shutdown.complete"})

    return app


async def main() -> None:
    log: list[str] = []
    users, billing = make_app("users", log), make_app("billing", log)

    # Several apps around one block: they start and stop concurrently.
    async with open_lifespans(users, billing) as (users_app, billing_app):
        print(users_app.state["name"], billing_app.state["name"])

    # An app as a task of a nursery that lives as long as your program.
    async with trio.open_nursery() as nursery:
        users_app = await nursery.start(serve_lifespan, users)
        print("serving", users_app.state["name"])
        nursery.cancel_scope.cancel()  # a graceful shutdown follows

    print(sorted(log))


if __name__ == "__main__":
    trio.run(main)
