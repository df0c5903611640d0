"""How-to: the recipe lifespan_of replaces, and lifespan_of nested in your own.

``exit_stack_lifespan`` is the recipe from Starlette issue #649, as it is
usually written for the apps mounted in a Starlette or FastAPI app (here for
any list of them). ``nested_lifespan`` is lifespan_of inside a lifespan of
your own: the other way to compose with it, besides its ``lifespan=``.
"""

from contextlib import AsyncExitStack, asynccontextmanager

from trio_lifespan import lifespan_of


def exit_stack_lifespan(*mounted):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app):  # type: ignore[no-untyped-def]
        async with AsyncExitStack() as stack:
            for sub_app in mounted:
                context = sub_app.router.lifespan_context(sub_app)
                await stack.enter_async_context(context)
            yield

    return lifespan


def nested_lifespan(*mounted):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app):  # type: ignore[no-untyped-def]
        async with lifespan_of(*mounted)(app) as state:
            # Your own startup, with the mounted apps started.
            yield {**state, "greeting": "hello"}
            # Your own shutdown, before theirs.

    return lifespan
