"""Failure paths of issue 12 with hand-written apps, on every backend.

Each test pins one promise of README.md and docs/behaviour.rst about what
comes out when an app fails in a way real apps do: a crash report while
running, a failure in the same turn as the startup reply, a cancelled
receive(), a Ctrl-C, a group of our own cancellations. Real frameworks get
the same treatment in ``test_framework_failures.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, cast

import anyio
import pytest
import trio
import trio.testing

from trio_lifespan import (
    LifespanCancelled,
    LifespanCrashed,
    LifespanError,
    LifespanNotSupported,
    LifespanShutdownFailed,
    LifespanTimeout,
    LifespanUnavailable,
    lifespan_of,
    open_lifespan,
    open_lifespans,
)
from trio_lifespan._exceptions import members
from trio_lifespan._types import Message, Receive, Scope, Send

from .apps import Boom, GoodApp, http_request
from .backends import Backend, forever
from .typed import approx

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup


class CrashingApp:
    """Starts, then crashes ``after`` seconds into the body, as Starlette does:
    it reports ``lifespan.shutdown.failed`` unasked, then raises, returns or
    waits on."""

    def __init__(self, backend: Backend, then: str, after: float = 1.0) -> None:
        self.backend = backend
        self.then = then
        self.after = after
        self.error = Boom("the pool died")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await self.backend.sleep(self.after)
        await send({"type": "lifespan.shutdown.failed", "message": "the pool died"})
        if self.then == "raise":
            raise self.error
        if self.then == "wait":
            await receive()


# 2. A crash after startup ----------------------------------------------------


async def test_a_crash_report_then_a_raise_cancels_the_body_and_comes_out_bare(
    backend: Backend,
) -> None:
    app = CrashingApp(backend, "raise")
    body_cancelled_at: list[float] = []
    with pytest.raises(Boom) as caught:
        async with open_lifespan(app):
            try:
                await backend.sleep(forever())
            finally:
                body_cancelled_at.append(backend.now())
    assert caught.value is app.error
    assert body_cancelled_at == [approx(1.0)]


@pytest.mark.parametrize("then", ["return", "wait"])
async def test_a_crash_report_alone_is_lifespan_crashed_with_its_message(
    backend: Backend, then: str
) -> None:
    app = CrashingApp(backend, then)
    with pytest.raises(LifespanCrashed) as caught:
        async with open_lifespan(app):
            await backend.sleep(forever())
    assert backend.now() == approx(1.0)
    assert isinstance(caught.value, LifespanShutdownFailed)
    assert caught.value.message == "the pool died"
    assert str(caught.value).startswith(
        "the app reported a failure ('lifespan.shutdown.failed') while it was "
        "running, before its shutdown was asked for, with the message: the pool died."
    )


async def test_a_crash_report_as_the_body_ends_is_not_lost(backend: Backend) -> None:
    # The report arrives while our task is about to send the shutdown: the
    # shutdown is not sent to an app on its way out, and the crash comes out.
    app = CrashingApp(backend, "raise", after=0.0)
    with pytest.raises(Boom) as caught:
        async with open_lifespan(app):
            pass
    assert caught.value is app.error


async def test_the_cancellation_of_the_body_names_the_crash(backend: Backend) -> None:
    app = CrashingApp(backend, "raise")
    seen: list[BaseException] = []
    with pytest.raises(Boom):
        async with open_lifespan(app):
            try:
                await backend.sleep(forever())
            except backend.cancelled as exc:
                seen.append(exc)
                raise
    (cancelled,) = seen
    assert "trio_lifespan: the app's lifespan failed: Boom: the pool died" in str(
        cancelled
    )


# 3. A failed lifespan refuses requests -----------------------------------------


async def test_requests_after_a_crash_are_refused_naming_the_crash(
    backend: Backend,
) -> None:
    app = CrashingApp(backend, "raise")
    held: list[Any] = []
    with pytest.raises(Boom):
        async with open_lifespan(app) as wrapped:
            held.append(wrapped)
            await http_request(wrapped)  # before the crash: passes
            await backend.sleep(forever())
    with pytest.raises(LifespanUnavailable) as caught:
        await http_request(held[0])
    assert caught.value.__cause__ is app.error
    assert caught.value.error is app.error
    assert isinstance(caught.value, LifespanError)
    assert str(caught.value) == (
        "the app's lifespan has failed, so requests are not passed to it: "
        "Boom: the pool died. Fix that failure first; it is raised where the "
        "lifespan was opened (an `async with` block, the pytest plugin's "
        "fixture, a server's lifespan), or has been."
    )


async def test_requests_after_a_clean_exit_still_pass(backend: Backend) -> None:
    app = GoodApp(backend)
    async with open_lifespan(app) as wrapped:
        pass
    await http_request(wrapped)
    assert app.events[-1] == "request http"


async def test_requests_after_a_failed_shutdown_are_refused(backend: Backend) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.failed", "message": "no"})

    held: list[Any] = []
    with pytest.raises(LifespanShutdownFailed) as caught:
        async with open_lifespan(app) as wrapped:
            held.append(wrapped)
    with pytest.raises(LifespanUnavailable) as refused:
        await http_request(held[0])
    assert refused.value.__cause__ is caught.value


# 5. Our own cancellations, in a group, are ours ---------------------------------


async def test_a_crash_while_the_body_has_a_nursery_open_comes_out_bare(
    backend: Backend,
) -> None:
    app = CrashingApp(backend, "raise")
    with pytest.raises(Boom) as caught:
        async with open_lifespan(app):
            await _in_a_task_group(backend, backend.sleep(forever()))
    assert caught.value is app.error


async def test_an_outer_cancel_and_a_failed_shutdown_with_a_nursery_in_the_body(
    backend: Backend,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise Boom("the shutdown failed")

    with pytest.raises(Boom, match=r"^the shutdown failed$"):
        with backend.move_on_after(1):
            async with open_lifespan(app):
                await _in_a_task_group(backend, backend.sleep(forever()))


async def _in_a_task_group(backend: Backend, awaitable: Any) -> None:
    """Await ``awaitable`` in a child task of a nursery / task group."""

    async def child() -> None:
        await awaitable

    # On trio, anyio's task group is a trio nursery.
    async with anyio.create_task_group() as group:
        group.start_soon(child)


# 8. Every message once, in order ---------------------------------------------------


async def test_an_app_that_cancels_its_own_first_receive_gets_every_message(
    backend: Backend,
) -> None:
    got: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # Cancelled on trio (its receive checkpoints first); on asyncio a
        # receive() with a message waiting returns without suspending.
        with backend.move_on_after(0):
            got.append((await receive())["type"])
        if not got:
            got.append((await receive())["type"])
        await send({"type": "lifespan.startup.complete"})
        got.append((await receive())["type"])
        await send({"type": "lifespan.shutdown.complete"})

    async with open_lifespan(app):
        pass
    assert got == ["lifespan.startup", "lifespan.shutdown"]


def test_trio_an_app_that_answers_without_taking_its_message_gets_it_later() -> None:
    got: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        with trio.move_on_after(0):
            await receive()  # cancelled: 'lifespan.startup' stays queued
        await send({"type": "lifespan.startup.complete"})
        got.append((await receive())["type"])
        got.append((await receive())["type"])
        await send({"type": "lifespan.shutdown.complete"})

    async def main() -> None:
        with trio.fail_after(60):
            async with open_lifespan(app):
                pass

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert got == ["lifespan.startup", "lifespan.shutdown"]


# 9. Ctrl-C and exits from the app come out bare -----------------------------------


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("allow_unsupported", [False, True])
async def test_an_interrupt_before_the_first_receive_comes_out_bare(
    backend: Backend, kind: type[BaseException], allow_unsupported: bool
) -> None:
    error = kind("stop")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise error

    with pytest.raises(kind) as caught:
        async with open_lifespan(app, allow_unsupported=allow_unsupported):
            pass  # pragma: no cover
    assert caught.value is error
    assert not isinstance(caught.value, LifespanNotSupported)


# 13, 14. open_lifespans ------------------------------------------------------------


async def test_an_apps_stop_async_iteration_comes_out_bare(backend: Backend) -> None:
    error = StopAsyncIteration("no more")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        raise error

    with pytest.raises(StopAsyncIteration) as caught:
        async with open_lifespans(app, GoodApp(backend)):
            pass  # pragma: no cover
    assert caught.value is error
    with pytest.raises(StopAsyncIteration) as caught:
        async with open_lifespan(app):
            pass  # pragma: no cover
    assert caught.value is error


async def test_a_crash_in_a_group_cancels_the_body_naming_it(backend: Backend) -> None:
    good = GoodApp(backend)
    crashing = CrashingApp(backend, "raise")
    seen: list[BaseException] = []
    with pytest.raises(Boom) as caught:
        async with open_lifespans(good, crashing):
            try:
                await backend.sleep(forever())
            except backend.cancelled as exc:
                seen.append(exc)
                raise
    assert caught.value is crashing.error
    assert "the app's lifespan failed: Boom: the pool died" in str(seen[0])
    assert good.events[-2:] == ["cleanup", "returned"]


# 15. No time at all --------------------------------------------------------------


@pytest.mark.parametrize("stage", ["startup", "shutdown"])
async def test_a_timeout_of_zero_times_out_on_every_backend(
    backend: Backend, stage: str
) -> None:
    app = GoodApp(backend)
    options: dict[str, Any] = {f"{stage}_timeout": 0}
    with pytest.raises(LifespanTimeout) as caught:
        async with open_lifespan(app, **options):
            pass
    assert caught.value.phase == stage
    assert caught.value.timeout == 0
    assert backend.now() == 0


# asyncio only: the caller's task as found, and messages never lost --------------------


def _run_asyncio(main: Any) -> None:
    from .backends import AsyncioBackend  # noqa: PLC0415

    AsyncioBackend().run(main, {})


@pytest.mark.parametrize("failure", ["reply twice", "raise after the reply"])
def test_asyncio_a_failure_in_the_startup_turn_leaves_the_callers_task_alone(
    failure: str,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        if failure == "reply twice":
            await send({"type": "lifespan.startup.complete"})
        raise Boom("right after")

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        with pytest.raises(LifespanError if failure == "reply twice" else Boom):
            async with open_lifespan(app):
                pass  # pragma: no cover
        if sys.version_info >= (3, 11):
            assert task.cancelling() == 0
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1):
                    await asyncio.sleep(2)

    _run_asyncio(main)


def test_asyncio_a_receive_cancelled_after_the_hand_over_keeps_the_message() -> None:
    got: list[str] = []
    receiving: list[asyncio.Future[Message]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        receiving.append(asyncio.ensure_future(receive()))
        with pytest.raises(asyncio.CancelledError):
            await receiving[0]
        got.append((await receive())["type"])
        await send({"type": "lifespan.shutdown.complete"})

    async def main() -> None:
        async with open_lifespan(app):
            await asyncio.sleep(1)
            # Runs after our exit handed the shutdown to the waiting
            # receive(), before that receive() resumes.
            asyncio.get_running_loop().call_soon(receiving[0].cancel)

    _run_asyncio(main)
    assert got == ["lifespan.shutdown"]


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="asyncio.run turns Ctrl-C into a cancellation from 3.11 on",
)
def test_asyncio_ctrl_c_during_the_shutdown_after_a_body_error_wins() -> None:
    stopped: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        signal.raise_signal(signal.SIGINT)  # Ctrl-C during the shutdown hook
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            stopped.append("app cancelled")

    body_error = Boom("the body failed")

    async def main() -> None:
        async with open_lifespan(app, shutdown_timeout=2):
            raise body_error

    with pytest.raises(KeyboardInterrupt) as caught:
        asyncio.run(main())
    assert stopped == ["app cancelled"]
    # asyncio.run raises KeyboardInterrupt from the main task's cancellation,
    # whose context chain holds the body's exception: nothing is lost.
    chain: list[BaseException] = []
    link: BaseException | None = caught.value
    while link is not None:
        chain.append(link)
        link = link.__context__
    assert body_error in chain


def open_by(opener: str, app: Any) -> Any:
    """``app``'s lifespan, opened by ``opener`` (one of ``OPENERS``)."""
    if opener == "open_lifespan":
        return open_lifespan(app)
    if opener == "open_lifespans":
        return open_lifespans(app)
    return lifespan_of(app)(None)


OPENERS = ["open_lifespan", "open_lifespans", "lifespan_of"]


def assert_a_ctrl_c_noting(
    main: Callable[[], Coroutine[Any, Any, None]], error: str
) -> None:
    """``asyncio.run(main())`` raises KeyboardInterrupt, whose context, the
    cancellation asyncio.run made of the Ctrl-C, notes the app's ``error``."""
    # (Caught broadly: a KeyboardInterrupt escaping would end the session.)
    with pytest.raises(BaseException) as caught:  # noqa: PT011 - checked below
        asyncio.run(main())
    assert type(caught.value) is KeyboardInterrupt
    cancelled = caught.value.__context__
    assert isinstance(cancelled, asyncio.CancelledError)
    notes = getattr(cancelled, "__notes__", [])
    assert any(
        f"the app's lifespan failed too, after this exception: {error}" in note
        for note in notes
    ), notes


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="asyncio.run turns Ctrl-C into a cancellation from 3.11 on",
)
@pytest.mark.parametrize("opener", OPENERS)
def test_asyncio_ctrl_c_in_the_body_wins_over_a_failed_shutdown(opener: str) -> None:
    # asyncio.run turns Ctrl-C into a cancellation of its main task, and
    # raises KeyboardInterrupt only if that cancellation comes out: the
    # shutdown's error must not take its place (as on trio, where the
    # KeyboardInterrupt wins), and it is kept as a note.
    shutdown_error = Boom("the pool would not close")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise shutdown_error

    async def main() -> None:
        async with open_by(opener, app):
            signal.raise_signal(signal.SIGINT)  # Ctrl-C while the body runs
            await asyncio.sleep(10)

    assert_a_ctrl_c_noting(main, "Boom: the pool would not close")


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="asyncio.run turns Ctrl-C into a cancellation from 3.11 on",
)
@pytest.mark.parametrize("opener", OPENERS)
@pytest.mark.parametrize("phase", ["startup", "shutdown"])
def test_asyncio_ctrl_c_while_waiting_on_the_app_wins_over_its_failure(
    opener: str, phase: str
) -> None:
    # A Ctrl-C while we wait for the app's startup or shutdown, and the app
    # fails as it stops: KeyboardInterrupt comes out (as on trio), the app's
    # error as a note. Once, the app's error took its place.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        if phase == "shutdown":
            await send({"type": "lifespan.startup.complete"})
            await receive()
        signal.raise_signal(signal.SIGINT)
        with contextlib.suppress(asyncio.CancelledError):
            for _ in range(3):
                await asyncio.sleep(0)
        raise Boom("the cleanup failed")

    async def main() -> None:
        async with open_by(opener, app):
            if phase == "startup":
                raise AssertionError("the body must not run")

    assert_a_ctrl_c_noting(main, "Boom: the cleanup failed")


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="asyncio.run turns Ctrl-C into a cancellation from 3.11 on",
)
def test_asyncio_ctrl_c_with_the_lifespan_in_a_child_task_keeps_the_error() -> None:
    # The Ctrl-C cancels the main task; the child holding the lifespan is
    # cancelled by its TaskGroup, which would drop that cancellation and any
    # note on it: there the shutdown's error comes out, as for any other
    # cancellation, and reaches what asyncio.run raises.
    shutdown_error = Boom("the pool would not close")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise shutdown_error

    async def child() -> None:
        async with open_lifespan(app):
            signal.raise_signal(signal.SIGINT)  # Ctrl-C while the body runs
            await asyncio.sleep(10)

    async def main() -> None:
        if sys.version_info >= (3, 11):  # (skipped before)
            async with asyncio.TaskGroup() as group:
                group.create_task(child())

    # (Caught broadly: a KeyboardInterrupt escaping would end the session.)
    with pytest.raises(BaseException) as caught:  # noqa: PT011 - checked below
        asyncio.run(main())
    assert type(caught.value) is ExceptionGroup
    assert members(caught.value) == (shutdown_error,)  # pyright: ignore[reportUnknownArgumentType]


# trio only: checkpoints ------------------------------------------------------------


def test_trio_open_lifespans_with_no_apps_checkpoints_on_entry_and_exit() -> None:
    async def main() -> None:
        manager = open_lifespans()
        with trio.testing.assert_checkpoints():
            await manager.__aenter__()
        with trio.testing.assert_checkpoints():
            await manager.__aexit__(None, None, None)

    trio.run(main)


def test_asyncio_open_lifespans_with_no_apps_yields_on_entry_and_exit() -> None:
    async def main() -> None:
        turns = 0

        async def count() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        counter = asyncio.ensure_future(count())
        await asyncio.sleep(0)
        before = turns
        async with open_lifespans():
            assert turns > before
            inside = turns
        assert turns > inside
        counter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await counter

    asyncio.run(main())


# Edges of the same paths -----------------------------------------------------------


async def test_an_app_that_keeps_breaking_the_protocol_is_stopped_once(
    backend: Backend,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await backend.sleep(1)
        for _ in range(2):  # swallows its cancellation once, and sends again
            with contextlib.suppress(backend.cancelled):
                await send({"type": "nonsense"})

    cancelled_at: list[float] = []
    with pytest.raises(LifespanError, match=r"^the app sent \{'type': 'nonsense'\}"):
        async with open_lifespan(app):
            try:
                await backend.sleep(forever())
            finally:
                cancelled_at.append(backend.now())
    assert cancelled_at == [1.0]


async def test_a_cancellation_while_a_lingering_app_is_stopped_gives_way_to_the_body(
    backend: Backend,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        try:
            await backend.sleep(forever())
        except backend.cancelled:
            # Lingers a while on being stopped (asyncio lets it; a trio
            # scope stays cancelled, so there it is stopped at once).
            with contextlib.suppress(backend.cancelled):
                await backend.sleep(2)

    body_error = Boom("the body failed")
    with pytest.raises(Boom) as caught:
        with backend.move_on_after(1):
            async with open_lifespan(app):
                raise body_error
    assert caught.value is body_error


async def test_apps_failing_together_come_out_as_one_group(
    backend: Backend,
) -> None:
    errors = [Boom(f"app {index}") for index in range(3)]

    def failing(error: Boom) -> Any:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await receive()
            raise error

        return app

    with pytest.raises(ExceptionGroup) as caught:
        async with open_lifespans(*[failing(error) for error in errors]):
            pass  # pragma: no cover
    # In the order they happened, which trio's scheduler may shuffle.
    assert {id(error) for error in caught.value.exceptions} == set(map(id, errors))
    assert len(caught.value.exceptions) == len(errors)
    assert caught.value.message == "3 lifespans failed"


async def test_an_unsupported_app_that_exits_later_refuses_requests(
    backend: Backend,
) -> None:
    error = SystemExit("bye")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200})
            await backend.sleep(forever())
        finally:
            raise error

    held: list[Any] = []
    with pytest.raises(SystemExit) as caught:
        async with open_lifespan(app, allow_unsupported=True) as wrapped:
            held.append(wrapped)
            assert not wrapped.supported
            await backend.checkpoint()
    assert caught.value is error
    with pytest.raises(LifespanUnavailable) as refused:
        await http_request(held[0])
    assert refused.value.__cause__ is error


def test_asyncio_an_empty_group_cancelled_on_exit_is_cancelled() -> None:
    async def main() -> None:
        with pytest.raises(asyncio.CancelledError):
            async with open_lifespans():
                task = asyncio.current_task()
                assert task is not None
                task.cancel()
        if sys.version_info >= (3, 11):
            assert task.uncancel() == 0

    _run_asyncio(main)


def test_trio_an_empty_group_cancelled_on_exit_is_cancelled() -> None:
    async def main() -> None:
        with trio.CancelScope() as scope:
            async with open_lifespans():
                scope.cancel()  # (lands at the exit's checkpoint)
        assert scope.cancelled_caught

    trio.run(main)


def test_functions_marked_before_trio_loads_are_protected_once_it_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from trio_lifespan import _compat  # noqa: PLC0415

    def critical() -> bool:
        return trio.lowlevel.currently_ki_protected()

    with monkeypatch.context() as patched:
        patched.delitem(sys.modules, "trio")
        assert _compat.ki_protected(critical) is critical
    assert [critical] == _compat._KI_PROTECTED  # pyright: ignore[reportPrivateUsage]

    async def main() -> tuple[bool, bool]:
        before = critical()
        _compat.mark_ki_protected()
        return before, critical()

    assert trio.run(main) == (False, True)
    assert _compat._KI_PROTECTED == []  # pyright: ignore[reportPrivateUsage]


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="asyncio.run turns Ctrl-C into a cancellation from 3.11 on",
)
def test_asyncio_ctrl_c_while_a_group_shuts_down_after_a_body_error_wins() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        signal.raise_signal(signal.SIGINT)  # Ctrl-C during the shutdown hook
        await asyncio.sleep(0)
        await send({"type": "lifespan.shutdown.complete"})

    body_error = Boom("the body failed")

    async def main() -> None:
        async with open_lifespans(app):
            raise body_error

    with pytest.raises(KeyboardInterrupt) as caught:
        asyncio.run(main())
    chain: list[BaseException] = []
    link: BaseException | None = caught.value
    while link is not None:
        chain.append(link)
        link = link.__context__
    assert body_error in chain


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
async def test_an_interrupt_from_the_app_in_the_shutdown_wins_over_the_body(
    backend: Backend, kind: type[BaseException]
) -> None:
    error = kind()
    body_error = Boom("the body failed")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise error

    with pytest.raises(kind) as caught:
        async with open_lifespan(app):
            raise body_error
    assert caught.value is error
    assert caught.value.__context__ is body_error


async def test_a_refused_request_in_the_body_gives_way_to_the_crash(
    backend: Backend,
) -> None:
    app = CrashingApp(backend, "raise")
    refused: list[LifespanUnavailable] = []
    with pytest.raises(Boom) as caught:
        async with open_lifespan(app) as wrapped:
            try:
                await backend.sleep(forever())
            except backend.cancelled:
                # (On trio a body can get here before any cancellation.)
                try:
                    await http_request(wrapped)
                except LifespanUnavailable as exc:
                    refused.append(exc)
                    raise
    assert caught.value is app.error
    assert [exc.error for exc in refused] == [app.error]


async def test_a_refused_request_in_a_groups_body_gives_way_to_the_crash(
    backend: Backend,
) -> None:
    app = CrashingApp(backend, "raise")
    with pytest.raises(Boom) as caught:
        async with open_lifespans(app, GoodApp(backend)) as (wrapped, _):
            try:
                await backend.sleep(forever())
            except backend.cancelled:
                await http_request(wrapped)
    assert caught.value is app.error


@pytest.mark.parametrize("message", ["the pool died", ""])
async def test_a_report_that_is_the_traceback_of_the_raise_is_not_a_note(
    backend: Backend, message: str
) -> None:
    error = Boom(message)
    report = "Traceback (most recent call last):\n  ...\ntests.Boom" + (
        f": {message}\n" if message else "\n"
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": report})
        raise error

    with pytest.raises(Boom) as caught:
        async with open_lifespan(app):
            pass  # pragma: no cover
    assert caught.value is error
    assert getattr(error, "__notes__", []) == []


async def test_a_report_that_is_another_text_is_a_note(backend: Backend) -> None:
    error = Boom("the pool died")
    report = "Traceback (most recent call last):\n  ...\nOtherError: elsewhere\n"

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": report})
        raise error

    with pytest.raises(Boom):
        async with open_lifespan(app):
            pass  # pragma: no cover
    assert getattr(error, "__notes__", []) == [report]


async def test_a_cancellation_as_the_startup_completes_still_shuts_down(
    backend: Backend,
) -> None:
    events: list[str] = []
    host: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        host[0]()  # the caller is cancelled in the same turn
        events.append((await receive())["type"])
        await send({"type": "lifespan.shutdown.complete"})

    body_ran: list[bool] = []
    cancelled: list[BaseException] = []
    task = asyncio.current_task() if backend.name == "asyncio" else None
    with backend.move_on_after(forever()) as scope:
        trio_scope = cast("trio.CancelScope", scope)
        host.append(task.cancel if task is not None else trio_scope.cancel)
        try:
            async with open_lifespan(app):
                body_ran.append(True)  # trio: the body runs to its checkpoint
                await backend.checkpoint()
        except backend.cancelled as exc:
            cancelled.append(exc)
            if backend.name == "trio":
                raise
    assert events == ["lifespan.shutdown"]
    assert len(cancelled) == 1  # the cancellation goes on after the shutdown
    if task is not None:
        assert body_ran == []
        if sys.version_info >= (3, 11):
            assert task.uncancel() == 0
    else:
        assert body_ran == [True]
        assert scope.cancelled_caught


@pytest.mark.parametrize("when", ["startup", "running", "shutdown"])
def test_asyncio_a_cancellation_the_app_made_itself_is_lifespan_cancelled(
    when: str,
) -> None:
    made: list[BaseException] = []

    async def cancel_itself() -> None:
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        try:
            await future
        except asyncio.CancelledError as exc:
            made.append(exc)
            raise

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        if when == "startup":
            await cancel_itself()
        await send({"type": "lifespan.startup.complete"})
        if when == "running":
            await asyncio.sleep(1)
            await cancel_itself()
        await receive()
        await cancel_itself()

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        with pytest.raises(LifespanCancelled) as caught:
            async with open_lifespan(app):
                await asyncio.sleep(2)
        assert caught.value.__cause__ is made[0]
        during = {
            "startup": "during its startup",
            "running": "while it was running",
            "shutdown": "during its shutdown",
        }[when]
        assert str(caught.value) == (
            f"the app's lifespan ended with CancelledError() {during}, but nobody "
            "cancelled it: something inside the app did (a cancel scope or task "
            "group in its lifespan, after a background task failed; or a future "
            "it awaited was cancelled). Look at the app's logs for the failure it "
            "lost. (Or something cancelled the app's task from outside: an event "
            "loop that is closing, as after a server's forced exit, cancels every "
            "task.)"
        )
        if sys.version_info >= (3, 11):
            assert task.cancelling() == 0

    _run_asyncio(main)
