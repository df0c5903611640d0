"""asyncio-only behaviour: no trio import, the usual runners, asyncio cancellation."""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import gc
import math
import sys
import textwrap
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, cast

import anyio
import looptime
import pytest
import pytest_asyncio
import sniffio
from starlette.applications import Starlette

from trio_lifespan import (
    LifespanApp,
    LifespanNotSupported,
    LifespanTimeout,
    lifespan_of,
    open_lifespan,
    open_lifespans,
    serve_lifespan,
)
from trio_lifespan._asyncio_tasks import HereJob, current_task, start_task
from trio_lifespan._compat import BaseExceptionGroup
from trio_lifespan._types import ASGIApp, Receive, Scope, Send

from .apps import GoodApp, http_request, run_python
from .backends import AsyncioBackend, Backend

ASYNCIO = AsyncioBackend()


def test_using_it_on_asyncio_does_not_import_trio() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        import trio_lifespan

        async def app(scope, receive, send):
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})

        async def main():
            async with trio_lifespan.open_lifespan(app):
                pass

        asyncio.run(main())
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("trio", "outcome")))
        """
    )
    assert run_python("-c", script) == "[]\n"


def test_the_command_line_on_asyncio_does_not_import_trio() -> None:
    script = textwrap.dedent(
        """
        import sys
        from trio_lifespan._cli import main

        status = main(["check", "--backend", "asyncio", "--json"])
        print(status, sorted(m for m in sys.modules if m.split(".")[0] == "trio"))
        """
    )
    assert run_python("-c", script).splitlines()[-1] == "0 []"


def test_it_works_under_asyncio_run() -> None:
    app = GoodApp(ASYNCIO)

    async def main() -> dict[str, Any]:
        async with open_lifespan(app) as wrapped:
            scope = await http_request(wrapped)
        return dict(scope["state"])

    assert asyncio.run(main()) == {"shared": app.shared, "name": "good"}
    assert app.events[-1] == "returned"


@pytest_asyncio.fixture
async def asyncio_app() -> AsyncGenerator[LifespanApp[GoodApp]]:
    async with open_lifespan(GoodApp(ASYNCIO)) as wrapped:
        yield wrapped


@pytest.mark.asyncio
async def test_it_works_as_a_pytest_asyncio_fixture(
    asyncio_app: LifespanApp[GoodApp],
) -> None:
    scope = await http_request(asyncio_app)
    assert scope["state"]["name"] == "good"
    assert asyncio_app.app.events == ["lifespan.startup", "request http"]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.mark.anyio
async def test_it_works_under_anyios_plugin(anyio_backend: str) -> None:
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            events.append((await receive())["type"])
            scope["state"]["library"] = sniffio.current_async_library()
            await send({"type": "lifespan.startup.complete"})
            events.append((await receive())["type"])
            await send({"type": "lifespan.shutdown.complete"})

    async with open_lifespan(app) as wrapped:
        assert wrapped.state == {"library": anyio_backend}
    assert events == ["lifespan.startup", "lifespan.shutdown"]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is 3.11+")
def test_an_outer_asyncio_timeout_gets_a_graceful_shutdown() -> None:
    app = GoodApp(ASYNCIO)

    async def main(backend: Backend) -> None:
        if sys.version_info >= (3, 11):
            with pytest.raises(TimeoutError) as caught:
                async with asyncio.timeout(1):
                    async with open_lifespan(app):
                        await asyncio.sleep(10)
            assert type(caught.value) is TimeoutError
        assert backend.now() == 1
        assert app.events[-2:] == ["cleanup", "returned"]

    ASYNCIO.run(main, {"backend": ASYNCIO})


def test_a_second_cancel_does_not_cut_the_shutdown_short() -> None:
    # anyio, for one, cancels again and again; the shutdown after a body
    # error stands firm, bounded by shutdown_timeout.
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await asyncio.sleep(2)
        events.append(f"cleaned up at {asyncio.get_running_loop().time()}")
        await send({"type": "lifespan.shutdown.complete"})

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        error = KeyError("body")
        with pytest.raises(KeyError) as caught:
            async with open_lifespan(app):
                loop.call_later(1, task.cancel)
                raise error
        assert caught.value is error
        assert events == ["cleaned up at 2.0"]
        if sys.version_info >= (3, 11):
            task.uncancel()

    ASYNCIO.run(main, {})


def test_no_task_outlives_exit_even_when_cancelled_again() -> None:
    # The app, cancelled at its time limit, cleans up for a few turns of the
    # loop (swallowing any cancellation), and the caller is cancelled again
    # meanwhile: the exit still waits for the app's task, and the timeout
    # comes out.
    events: list[str] = []
    callers: list[asyncio.Task[Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            for turn in range(5):
                if turn == 2:  # by now the caller waits for this task to end
                    callers[0].cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(0)
            events.append(f"app done at {asyncio.get_running_loop().time()}")
            raise

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        callers.append(task)
        with pytest.raises(LifespanTimeout):
            async with open_lifespan(app, startup_timeout=1):
                pass  # pragma: no cover
        assert events == ["app done at 1.0"]
        if sys.version_info >= (3, 11):
            task.uncancel()

    ASYNCIO.run(main, {})


def test_a_cleanup_awaited_after_the_cancellation_is_waited_for() -> None:
    # asyncio cancels once, as asyncio.timeout does: the app's cleanup, even
    # one shielded from anyio's or asyncio's cancellation, runs to its end,
    # and the exit waits for it (docs/howto/timeouts.rst).
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            with anyio.CancelScope(shield=True):
                await asyncio.sleep(50)  # a pool's close that takes long
            events.append(f"closed at {asyncio.get_running_loop().time()}")
            raise

    async def main() -> None:
        with pytest.raises(LifespanTimeout):
            async with open_lifespan(app, startup_timeout=1):
                pass  # pragma: no cover
        assert events == ["closed at 51.0"]

    ASYNCIO.run(main, {})


def test_serve_lifespan_in_an_anyio_task_group_on_asyncio() -> None:
    app = GoodApp(ASYNCIO)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            wrapped = await group.start(serve_lifespan, app)
            assert (await http_request(wrapped))["state"]["name"] == "good"
            group.cancel_scope.cancel()

    anyio.run(main, backend="asyncio")
    assert app.events[-2:] == ["cleanup", "returned"]


# An eager task factory (Python 3.12+) runs a task's first step inside
# create_task; our tasks must still start after their caller holds them.

needs_eager = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="asyncio.eager_task_factory is 3.12+"
)


class Crash(Exception):
    pass


async def crashes_at_once(scope: Scope, receive: Receive, send: Send) -> None:
    raise Crash("at once")


async def crashes_after_receive(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    raise Crash("after receive")


def eagerly(fn: Callable[[], Awaitable[None]]) -> None:
    """Run ``fn`` on the guarded asyncio loop with an eager task factory."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        if sys.version_info >= (3, 12):  # (older: the tests are skipped)
            loop.set_task_factory(asyncio.eager_task_factory)
        await fn()

    ASYNCIO.run(main, {})


@needs_eager
def test_an_eager_task_factory_runs_a_good_app() -> None:
    app = GoodApp(ASYNCIO)

    async def body() -> None:
        async with open_lifespans(app, GoodApp(ASYNCIO)) as (wrapped, _):
            assert (await http_request(wrapped))["state"]["name"] == "good"

    eagerly(body)
    assert app.events[-2:] == ["cleanup", "returned"]


@needs_eager
@pytest.mark.parametrize("crash", [crashes_at_once, crashes_after_receive])
@pytest.mark.parametrize("opener", ["open_lifespan", "open_lifespans", "lifespan_of"])
def test_an_eager_task_factory_gets_each_failure(crash: ASGIApp, opener: str) -> None:
    # Once, the holders' first step failed before their list existed, and
    # lifespan_of hung.
    good = GoodApp(ASYNCIO)
    raised: list[BaseException] = []

    async def body() -> None:
        try:
            if opener == "open_lifespan":
                async with open_lifespan(crash):
                    raise AssertionError("the body must not run")
            elif opener == "open_lifespans":
                async with open_lifespans(good, crash, GoodApp(ASYNCIO)):
                    raise AssertionError("the body must not run")
            else:
                parent = Starlette(lifespan=lifespan_of(good, crash))
                async with open_lifespan(parent):
                    raise AssertionError("the body must not run")
        except Exception as exc:  # noqa: BLE001 - checked below
            raised.append(exc)

    eagerly(body)
    [error] = raised
    if crash is crashes_at_once:  # before its first receive(): no lifespan
        assert type(error) is LifespanNotSupported
        assert type(error.__cause__) is Crash
    else:
        assert type(error) is Crash
    if opener != "open_lifespan":  # the good app that started was shut down
        assert "cleanup" in good.events or "lifespan.startup" not in good.events


# A task factory (tracing, error capture) sees our tasks too; they still
# start at the loop's next turn.


def recording_factory(
    made: list[asyncio.Task[Any]],
) -> Callable[[asyncio.AbstractEventLoop, Any], asyncio.Task[Any]]:
    def factory(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop)
        made.append(task)
        return task

    return factory


def test_a_task_factory_makes_our_tasks() -> None:
    made: list[asyncio.Task[Any]] = []
    app_tasks: list[asyncio.Task[Any] | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        app_tasks.append(asyncio.current_task())
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    async def main() -> None:
        asyncio.get_running_loop().set_task_factory(recording_factory(made))
        async with open_lifespans(app, app):
            pass
        assert len(made) == 4  # the two holders', the two apps'

    ASYNCIO.run(main, {})
    assert len(app_tasks) == 2
    assert all(task in made for task in app_tasks)


def test_a_task_of_ours_cancelled_before_it_began_never_runs() -> None:
    ran: list[str] = []

    async def step() -> None:
        ran.append("ran")  # pragma: no cover - it must not run

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(recording_factory([]))
        task = start_task(loop, step())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    ASYNCIO.run(main, {})  # (and no "never awaited" warning: the run is -W error)
    assert ran == []


# A request's app called in its reader's task (_asyncio_tasks.HereJob) -------------


def raised(exc: BaseException | None) -> None:
    """What a call here tells at its end: raise what it raised."""
    if exc is not None:
        raise exc


def test_a_call_here_is_cancelled_once_and_never_after_it_ended() -> None:
    async def main() -> None:
        job = HereJob(math.inf)
        woken: list[str] = []

        async def call() -> None:
            try:
                await asyncio.sleep(math.inf)
            except asyncio.CancelledError:
                woken.append("cancelled")
                raise

        async def cancel_twice() -> None:
            await asyncio.sleep(1)
            job.cancel()
            job.cancel()  # (the second is nothing)

        canceller = asyncio.get_running_loop().create_task(cancel_twice())
        await job.run(call(), raised)  # (our cancellation, taken back: nothing raised)
        await canceller
        assert woken == ["cancelled"]
        if sys.version_info >= (3, 11):
            assert current_task().cancelling() == 0
        job.cancel()  # ended: this task has moved on, and is not cancelled
        await asyncio.sleep(0)
        assert await job.wait(1) is True

    ASYNCIO.run(main, {})


@pytest.mark.skipif(sys.version_info < (3, 11), reason="uncancel() is 3.11+")
def test_the_callers_own_cancellation_during_ours_comes_out() -> None:
    async def main() -> None:
        job = HereJob(1.0)
        reader = current_task()

        async def call() -> None:
            try:
                await asyncio.sleep(math.inf)  # the read timeout ends this
            except asyncio.CancelledError:
                reader.cancel()  # (the caller's own, meanwhile)
                await asyncio.sleep(0.5)  # its clean-up, cut short

        with pytest.raises(asyncio.CancelledError):
            await job.run(call(), raised)
        assert job.timed_out
        if sys.version_info >= (3, 11):
            assert reader.uncancel() == 0  # (only the caller's was left)

    ASYNCIO.run(main, {})


def test_a_call_here_on_a_closed_loop_is_neither_cancelled_nor_waited_for() -> None:
    made: list[HereJob] = []

    async def hold() -> None:
        job = HereJob(math.inf)
        made.append(job)
        await job.run(asyncio.sleep(math.inf), raised)

    loop = asyncio.new_event_loop()
    task = loop.create_task(hold())
    loop.run_until_complete(asyncio.sleep(0))  # (the call waits)
    loop.close()  # (as pytest-asyncio closes a test's loop under a session client)

    async def later() -> bool:
        made[0].cancel()
        return await made[0].wait(1)

    assert asyncio.run(later()) is False
    assert not task.done()
    task._log_destroy_pending = False  # type: ignore[attr-defined]  # (left on purpose)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is 3.11+")
def test_an_app_task_groups_failure_comes_out_as_the_app_raised_it() -> None:
    # On Python 3.11 and 3.12 a TaskGroup whose child fails while the app
    # waits in its exit leaves its cancellation of the app's task counted:
    # that is not the caller's, and the app's own group comes out.
    from trio_lifespan import open_client  # noqa: PLC0415 - needs httpx

    raised: list[BaseException] = []
    good = GoodApp(ASYNCIO)
    task_group = cast(  # (Python 3.11+: the type checkers read 3.10's asyncio)
        "Callable[[], contextlib.AbstractAsyncContextManager[Any]]",
        vars(asyncio)["TaskGroup"],
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or scope["query_string"]:
            await good(scope, receive, send)  # (the next request: as before)
            return

        async def child() -> None:
            await asyncio.sleep(0)
            raise ValueError("the child failed")

        try:
            async with task_group() as group:
                group.create_task(child())  # (fails while the app waits in exit)
        except BaseException as exc:
            raised.append(exc)
            raise

    async def main() -> None:
        async with open_client(app) as client:
            with pytest.raises(BaseExceptionGroup) as caught:
                await client.get("/")
            assert caught.value is raised[0]
            assert caught.value.subgroup(ValueError) is not None
            if sys.version_info >= (3, 11):  # (the TaskGroup's own, taken back)
                assert current_task().cancelling() == 0
            assert (await client.get("/", params={"q": 1})).status_code == 200

    ASYNCIO.run(main, {})


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is 3.11+")
@pytest.mark.parametrize(
    "then",
    [
        "answers",
        "answers-late",
        "outer-timeout",
        "outer-timeout-after-the-body-failed",
        "in-a-context-manager",
        "inner-timeout",
    ],
)
def test_an_app_that_handles_its_task_groups_failure_is_read_as_answering(
    then: str,
) -> None:
    # The same group's cancellation (Python 3.11 and 3.12: left counted),
    # but the app catches the group and answers, as a FastAPI endpoint that
    # fans out does: the answer is read (httpx's transport reads it too), a
    # read timeout after it is a timeout, and the test's own timeout that
    # fires meanwhile still comes out as one (its cancellation is the
    # caller's, and counted apart from the group's), also when it is thrown
    # into a group whose body had failed (that group withdrew its own). A
    # group inside a context manager of the app's is found too, and the
    # app's own timeout around such a group fires as a timeout.
    import httpx  # noqa: PLC0415 - the client's extra

    from trio_lifespan import open_client  # noqa: PLC0415 - needs httpx

    good = GoodApp(ASYNCIO)
    task_group = cast(  # (Python 3.11+: the type checkers read 3.10's asyncio)
        "Callable[[], contextlib.AbstractAsyncContextManager[Any]]",
        vars(asyncio)["TaskGroup"],
    )
    timeout = cast(
        "Callable[[float], contextlib.AbstractAsyncContextManager[Any]]",
        vars(asyncio)["timeout"],
    )

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("the child failed")

    async def cleans_up_slowly() -> None:
        try:
            await asyncio.sleep(math.inf)
        finally:
            await asyncio.sleep(1)  # (the test's timeout fires meanwhile)

    @contextlib.asynccontextmanager
    async def fanned_out() -> AsyncGenerator[Any, None]:
        async with task_group() as group:
            yield group

    async def fan_out() -> None:
        if then == "in-a-context-manager":
            async with fanned_out() as group:
                group.create_task(fails())
            return
        async with task_group() as group:
            group.create_task(fails())  # (fails while the app waits in exit)
            if then.startswith("outer-timeout"):
                group.create_task(cleans_up_slowly())
            if then == "outer-timeout-after-the-body-failed":
                await asyncio.sleep(math.inf)  # (the child fails meanwhile)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await good(scope, receive, send)
            return
        if then == "inner-timeout":
            try:
                async with timeout(0.5):
                    with contextlib.suppress(BaseExceptionGroup):
                        await fan_out()
                    await asyncio.sleep(1)
            except TimeoutError:
                await send({"type": "http.response.start", "status": 504})
                await send({"type": "http.response.body", "body": b"timed out"})
            return
        try:
            await fan_out()
        except BaseExceptionGroup:
            if then == "answers-late":
                await asyncio.sleep(10)
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b"handled"})

    async def main() -> None:
        async with open_client(app, timeout=2, httpx="httpx") as client:
            if then == "answers-late":
                with pytest.raises(httpx.ReadTimeout):
                    await client.get("/")
            elif then.startswith("outer-timeout"):
                began = asyncio.get_running_loop().time()
                with pytest.raises(TimeoutError):
                    async with timeout(0.5):
                        await client.get("/")
                assert asyncio.get_running_loop().time() - began == pytest.approx(1)
            else:
                response = await client.get("/")
                expected = (
                    (504, "timed out") if then == "inner-timeout" else (502, "handled")
                )
                assert (response.status_code, response.text) == expected
            if sys.version_info >= (3, 11):  # (the group's own taken back)
                assert current_task().cancelling() == 0
            with pytest.raises(TimeoutError):  # (a later timeout still works)
                async with timeout(0.1):
                    await asyncio.sleep(1)

    ASYNCIO.run(main, {})


@pytest.mark.skipif(sys.version_info < (3, 11), reason="cancelling() is 3.11+")
def test_the_callers_cancellation_swallowed_by_the_app_still_comes_out() -> None:
    from trio_lifespan import open_client  # noqa: PLC0415 - needs httpx

    async def swallows(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        try:
            await asyncio.sleep(math.inf)
        except asyncio.CancelledError:  # (it should not; some apps do)
            await send({"type": "http.response.start", "status": 499, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    async def main() -> None:
        async with open_client(swallows, timeout=None) as client:
            if sys.version_info >= (3, 11):
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(1):
                        await client.get("/")  # (the app answers 499)
                assert current_task().cancelling() == 0

    ASYNCIO.run(main, {})


def fake_time_loop(complaints: list[str]) -> asyncio.AbstractEventLoop:
    """A loop on fake time, its complaints kept."""
    loop = looptime.new_event_loop(start=0.0, end=60.0, idle_timeout=1.0)
    loop.set_exception_handler(lambda _, context: complaints.append(context["message"]))
    return loop


#: What a test loop that closed with tasks left on it says of them later.
LEFT_ON_A_CLOSED_LOOP = "Task was destroyed but it is pending!"


@pytest.mark.parametrize("left", ["stream", "stream-cut", "websocket", "whole"])
def test_a_call_left_on_a_test_loop_that_closed_is_not_the_apps_error(
    left: str,
) -> None:
    # A session-scoped client on the fixture's loop, a test on a loop of its
    # own (pytest-asyncio's function loops) that leaves a call running when
    # its loop closes (pytest-asyncio before 1.1 leaves such tasks, unended):
    # the app's task will never run again, and the client's exit ends
    # cleanly. The loop's end closes the app's async generators first, which
    # can make a handler raise (Starlette's task group, an anyio cancel scope
    # left in another task): that came of the loop's end too. What a handler
    # raised while its loop still ran is another matter: that is the app's
    # error, and comes out (the next test).
    from trio_lifespan import open_client  # noqa: PLC0415 - needs httpx

    good = GoodApp(ASYNCIO)

    @contextlib.asynccontextmanager
    async def guarded() -> AsyncGenerator[None, None]:
        handler = current_task()
        try:
            yield
        finally:  # (closed by the loop's end, in a task of its own)
            handler.cancel()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await good(scope, receive, send)
        elif scope["path"] == "/cut":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            try:
                async with guarded():
                    await asyncio.sleep(math.inf)
            except asyncio.CancelledError:
                raise RuntimeError("cut short as its loop ended") from None
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await asyncio.sleep(math.inf)
        else:  # (a long poll: it waits for the client)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            while (await receive())["type"] != "http.disconnect":
                pass

    complaints: list[str] = []
    fixture_loop, test_loop = fake_time_loop(complaints), fake_time_loop(complaints)
    opened = open_client(app)
    client = fixture_loop.run_until_complete(opened.__aenter__())
    kept: list[object] = []

    async def the_test() -> None:
        if left.startswith("stream"):
            path = "/cut" if left == "stream-cut" else "/"
            request = client.build_request("GET", path)
            kept.append(await client.send(request, stream=True))
        elif left == "websocket":
            kept.append(await client.websocket_connect("/ws").__aenter__())
        else:
            kept.append(test_loop.create_task(client.get("/")))
        await asyncio.sleep(0.1)  # (the app waits)

    try:
        test_loop.run_until_complete(the_test())
        test_loop.run_until_complete(test_loop.shutdown_asyncgens())
    finally:
        test_loop.close()  # (the call still running)
    try:
        fixture_loop.run_until_complete(opened.__aexit__(None, None, None))
        assert good.events[-1] == "returned"  # (the lifespan ended)
    finally:
        fixture_loop.close()
    kept.clear()  # (what was left on the closed loop, collected)
    gc.collect()
    assert set(complaints) <= {LEFT_ON_A_CLOSED_LOOP}


@pytest.mark.parametrize("left", ["stream", "stream-iterated", "websocket"])
def test_an_error_raised_before_the_test_loop_closed_comes_out(left: str) -> None:
    # The loop's end closes what iterates the response (httpx2's aiter_raw,
    # which then closes the response; httpx's leaves it open): what that
    # raised would be logged by the loop at most, and comes out of the
    # client's exit instead.
    from trio_lifespan import open_client  # noqa: PLC0415 - needs httpx

    good = GoodApp(ASYNCIO)
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await good(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"1", "more_body": True})
        await asyncio.sleep(0.01)
        raised.append(ValueError("the handler crashed"))
        raise raised[0]

    complaints: list[str] = []
    fixture_loop, test_loop = fake_time_loop(complaints), fake_time_loop(complaints)
    library = "httpx"
    if left == "stream-iterated":
        pytest.importorskip("httpx2", reason="httpx2 closes the response")
        library = "httpx2"
    opened = open_client(app, httpx=library)
    client = fixture_loop.run_until_complete(opened.__aenter__())
    kept: list[object] = []

    async def the_test() -> None:
        if left == "websocket":
            kept.append(await client.websocket_connect("/ws").__aenter__())
        else:
            request = client.build_request("GET", "/")
            response = await client.send(request, stream=True)
            kept.append(response)
            if left == "stream-iterated":
                chunks = response.aiter_raw()
                kept.append(chunks)  # (alive when the loop ends: it closes it)
                assert await chunks.__anext__() == b"1"  # (then left unfinished)
        await asyncio.sleep(0.1)  # (the handler crashes meanwhile)

    try:
        test_loop.run_until_complete(the_test())
        for each in kept:  # (as the loop's end closes the iterators left open)
            if isinstance(each, collections.abc.AsyncGenerator):
                test_loop.run_until_complete(each.aclose())
    finally:
        test_loop.close()
    try:
        with pytest.raises(ValueError, match="the handler crashed") as caught:
            fixture_loop.run_until_complete(opened.__aexit__(None, None, None))
        assert caught.value is raised[0]
        assert good.events[-1] == "returned"
    finally:
        fixture_loop.close()
    kept.clear()  # (what was left on the closed loop, collected)
    gc.collect()
    assert set(complaints) <= {LEFT_ON_A_CLOSED_LOOP}


@pytest.mark.parametrize("closing", ["response", "websocket"])
def test_a_close_left_unfinished_is_closed_without_waiting(closing: str) -> None:
    # A test whose loop ended while it closed a response or a websocket (the
    # handler given its grace): the garbage collector closes that coroutine
    # (GeneratorExit), which cannot wait; the client's exit ends the app.
    from trio_lifespan import open_client  # noqa: PLC0415 - needs httpx

    good = GoodApp(ASYNCIO)
    ended: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await good(scope, receive, send)
            return
        try:
            if scope["type"] == "websocket":
                await receive()
                await send({"type": "websocket.accept"})
            else:
                await send({"type": "http.response.start", "status": 200})
            await asyncio.sleep(math.inf)  # (deaf to the disconnect)
        finally:
            ended.append(scope["type"])

    async def main() -> None:
        async with open_client(app, shutdown_timeout=5) as client:
            if closing == "websocket":
                session = await client.websocket_connect("/ws").__aenter__()
                unfinished = session.close()
            else:
                request = client.build_request("GET", "/")
                response = await client.send(request, stream=True)
                unfinished = response.aclose()
            unfinished.send(None)  # (it waits for the handler: the grace)
            unfinished.close()  # (as the garbage collector closes it)
            assert ended == []
        assert ended == ["websocket" if closing == "websocket" else "http"]

    ASYNCIO.run(main, {})


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is 3.11+")
def test_a_fastapi_endpoint_that_fans_out_and_handles_a_failure_answers() -> None:
    # The same with FastAPI, as users write it: a TaskGroup fan-out whose
    # failure the endpoint catches (except*) and answers 502. The answer is
    # read, and the test's task is left as it was (Python 3.11 and 3.12:
    # the group's own cancellation withdrawn).
    from fastapi import FastAPI  # noqa: PLC0415 - a framework of the tests'
    from fastapi.responses import JSONResponse  # noqa: PLC0415

    from trio_lifespan import open_client  # noqa: PLC0415 - needs httpx

    task_group = cast(  # (Python 3.11+: the type checkers read 3.10's asyncio)
        "Callable[[], contextlib.AbstractAsyncContextManager[Any]]",
        vars(asyncio)["TaskGroup"],
    )
    api = FastAPI()

    async def upstream(name: str) -> str:
        await asyncio.sleep(0.01)
        if name == "b":
            raise ConnectionError(f"upstream {name} is down")
        return name

    @api.get("/fan-out")
    async def fan_out() -> object:  # pyright: ignore[reportUnusedFunction]
        try:
            async with task_group() as group:
                for name in ("a", "b"):
                    group.create_task(upstream(name))
        except BaseExceptionGroup as failed:
            [error] = failed.exceptions
            return JSONResponse({"error": str(error)}, status_code=502)
        return {"ok": True}

    async def main() -> None:
        async with open_client(api, httpx="httpx") as client:
            response = await client.get("/fan-out")
            assert response.status_code == 502
            assert response.json() == {"error": "upstream b is down"}
            if sys.version_info >= (3, 11):  # (the group's own withdrawn)
                assert current_task().cancelling() == 0
            with pytest.raises(TimeoutError):  # (a later timeout still works)
                async with cast(
                    "Callable[[float], contextlib.AbstractAsyncContextManager[Any]]",
                    vars(asyncio)["timeout"],
                )(0.1):
                    await asyncio.sleep(1)

    ASYNCIO.run(main, {})
