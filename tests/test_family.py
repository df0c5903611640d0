"""``open_lifespans``, ``serve_lifespan`` and ``LifespanManager``, on every backend."""

from __future__ import annotations

import math
import sys
from typing import Any

import pytest

from trio_lifespan import (
    LifespanApp,
    LifespanManager,
    LifespanNotSupported,
    LifespanShutdownFailed,
    LifespanStartupFailed,
    LifespanTimeout,
    open_lifespans,
    serve_lifespan,
)
from trio_lifespan._types import Receive, Scope, Send

from .apps import Boom, GoodApp, http_request
from .backends import Backend, forever
from .test_behaviour import notes, reporting_app, returns_at_once, slow_app

if sys.version_info < (3, 11):
    from exceptiongroup import ExceptionGroup


class SlowStop(GoodApp):
    """A good app whose shutdown takes ``shutdown_delay`` seconds."""

    def __init__(self, backend: Backend, shutdown_delay: float) -> None:
        super().__init__(backend)
        self.shutdown_delay = shutdown_delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def slow_send(message: Any) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.backend.sleep(self.shutdown_delay)
            await send(message)

        await super().__call__(scope, receive, slow_send)


def crashing_app(backend: Backend, after: float, error: BaseException) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await backend.sleep(after)
        raise error

    return app


# open_lifespans ----------------------------------------------------------------


async def test_startups_run_concurrently_and_apps_come_in_order(
    backend: Backend,
) -> None:
    first, second = GoodApp(backend, startup_delay=3), GoodApp(backend, startup_delay=2)
    start = backend.now()
    async with open_lifespans(first, second) as (one, two):
        assert backend.now() - start == 3
        assert one.app is first
        assert two.app is second
        assert (await http_request(two))["state"]["name"] == "good"
    assert first.events[-1] == second.events[-1] == "returned"


async def test_shutdowns_run_concurrently_each_bounded(backend: Backend) -> None:
    apps = [SlowStop(backend, 2), SlowStop(backend, 3), SlowStop(backend, 2)]
    async with open_lifespans(*apps, shutdown_timeout=10):
        start = backend.now()
    assert backend.now() - start == 3
    assert [app.events[-1] for app in apps] == ["returned"] * 3


async def test_a_failed_startup_shuts_down_the_started_ones(backend: Backend) -> None:
    started = GoodApp(backend)

    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await backend.sleep(1)
        await send({"type": "lifespan.startup.failed", "message": "it broke"})
        raise Boom("late")

    events: list[str] = []
    slow = slow_app(backend, "startup", events)
    body_ran = False
    with pytest.raises(Boom) as caught:
        async with open_lifespans(started, failing, slow):
            body_ran = True
    assert not body_ran
    assert type(caught.value) is Boom
    assert notes(caught.value) == ["it broke"]
    assert started.events == [
        "lifespan.startup",
        "lifespan.shutdown",
        "cleanup",
        "returned",
    ]
    assert events == [f"cancelled at {backend.now()}"]


async def test_an_app_crash_in_the_body_stops_everything(backend: Backend) -> None:
    error = Boom("crashed")
    other = GoodApp(backend)
    body: list[str] = []
    with pytest.raises(Boom) as caught:
        async with open_lifespans(other, crashing_app(backend, 1, error)):
            try:
                await backend.sleep(forever())
            except backend.cancelled:
                body.append(f"cancelled at {backend.now()}")
                raise
    assert caught.value is error
    assert body == ["cancelled at 1.0"]
    assert other.events[-1] == "returned"


async def test_several_failures_come_out_as_one_group(backend: Backend) -> None:
    one = reporting_app(backend, "shutdown", "return", "first")
    two = reporting_app(backend, "shutdown", "return", "second")
    with pytest.raises(ExceptionGroup) as caught:
        async with open_lifespans(one, GoodApp(backend), two):
            pass
    assert caught.value.message == "2 lifespans failed"
    failures = caught.value.exceptions
    assert [type(f) for f in failures] == [LifespanShutdownFailed] * 2
    assert sorted(str(f.args[0]) for f in failures) == ["first", "second"]


async def test_the_body_exception_wins_and_everything_shuts_down(
    backend: Backend,
) -> None:
    apps = [GoodApp(backend), GoodApp(backend)]
    error = KeyError("body")
    with pytest.raises(KeyError) as caught:
        async with open_lifespans(
            apps[0], reporting_app(backend, "shutdown", "return"), apps[1]
        ):
            raise error
    assert caught.value is error
    assert [app.events[-1] for app in apps] == ["returned", "returned"]
    assert notes(error)[0].startswith(
        "trio_lifespan: the app's lifespan failed too, after this exception: "
        "LifespanShutdownFailed: "
    )


async def test_outer_cancel_in_the_body_shuts_every_app_down(
    backend: Backend,
) -> None:
    apps = [SlowStop(backend, 2), GoodApp(backend)]
    with backend.move_on_after(1) as deadline:
        async with open_lifespans(*apps):
            await backend.sleep(forever())
    assert deadline.cancelled_caught
    assert backend.now() == 3
    assert [app.events[-1] for app in apps] == ["returned", "returned"]


async def test_outer_cancel_in_startup_shuts_the_started_ones_down(
    backend: Backend,
) -> None:
    started = GoodApp(backend)
    events: list[str] = []
    with backend.move_on_after(1) as deadline:
        async with open_lifespans(started, slow_app(backend, "startup", events)):
            pass  # pragma: no cover
    assert deadline.cancelled_caught
    assert started.events[-1] == "returned"
    assert events == ["cancelled at 1.0"]


async def test_no_apps_is_an_empty_tuple(backend: Backend) -> None:
    async with open_lifespans() as apps:
        assert apps == ()


async def test_options_apply_to_every_app(backend: Backend) -> None:
    async with open_lifespans(
        returns_at_once, GoodApp(backend), allow_unsupported=True
    ) as (plain, good):
        assert dict(plain.state) == {}
        assert good.state["name"] == "good"
    with pytest.raises(LifespanTimeout) as caught:
        async with open_lifespans(GoodApp(backend, startup_delay=2), startup_timeout=1):
            pass  # pragma: no cover
    assert caught.value.timeout == 1


def test_open_lifespans_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match=r"^apps\[1\] must be an ASGI app .*, not int$"):
        open_lifespans(returns_at_once, 3)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match=r"^shutdown_timeout must be non-negative"):
        open_lifespans(returns_at_once, shutdown_timeout=-1)


# serve_lifespan ----------------------------------------------------------------


class Status:
    """A ``task_status`` that records what was reported."""

    def __init__(self) -> None:
        self.values: list[object] = []

    def started(self, value: object = None) -> None:
        self.values.append(value)


async def test_serve_lifespan_reports_the_app_then_serves_until_cancelled(
    backend: Backend,
) -> None:
    app = SlowStop(backend, 1)
    status = Status()
    with backend.move_on_after(5) as deadline:
        await serve_lifespan(app, task_status=status)
    assert deadline.cancelled_caught
    [wrapped] = status.values
    assert isinstance(wrapped, LifespanApp)
    assert wrapped.app is app  # pyright: ignore[reportUnknownMemberType]
    assert backend.now() == 6  # cancelled at 5, the shutdown ran to its end
    assert app.events[-2:] == ["cleanup", "returned"]


async def test_serve_lifespan_startup_errors_come_out_bare(backend: Backend) -> None:
    status = Status()
    with pytest.raises(Boom) as caught:
        await serve_lifespan(
            reporting_app(backend, "startup", "raise"), task_status=status
        )
    assert type(caught.value) is Boom
    assert status.values == []


async def test_serve_lifespan_default_task_status_is_ignored(
    backend: Backend,
) -> None:
    app = GoodApp(backend)
    with backend.move_on_after(1):
        await serve_lifespan(app)
    assert app.events[-1] == "returned"


# LifespanManager -----------------------------------------------------------------


def test_a_manager_can_be_made_outside_a_running_loop() -> None:
    manager = LifespanManager(returns_at_once, startup_timeout=None)
    assert manager.startup_timeout is None
    assert manager.shutdown_timeout == 5
    with pytest.raises(RuntimeError, match=r"^LifespanManager\.app is there once "):
        manager.app
    with pytest.raises(ValueError, match=r"^startup_timeout must be non-negative"):
        LifespanManager(returns_at_once, startup_timeout=-1)


async def test_the_manager_is_a_drop_in(backend: Backend) -> None:
    app = GoodApp(backend)
    async with LifespanManager(app) as manager:
        assert isinstance(manager, LifespanManager)
        assert manager.app.app is app
        assert manager.state["name"] == "good"
        assert (await http_request(manager.app))["state"]["name"] == "good"
    assert app.events[-1] == "returned"


async def test_manager_timeouts_are_timeout_errors(backend: Backend) -> None:
    with pytest.raises(TimeoutError):
        async with LifespanManager(GoodApp(backend, startup_delay=1), 0.5, 0.5):
            pass  # pragma: no cover


async def test_manager_raises_lifespan_not_supported(backend: Backend) -> None:
    with pytest.raises(LifespanNotSupported):
        async with LifespanManager(returns_at_once):
            pass  # pragma: no cover


async def test_manager_surfaces_a_startup_failure_at_once(backend: Backend) -> None:
    with pytest.raises(LifespanStartupFailed):
        async with LifespanManager(reporting_app(backend, "startup", "sleep")):
            pass  # pragma: no cover
    assert backend.now() == 0


@pytest.mark.parametrize("value", [math.inf, 0])
def test_manager_takes_the_usual_timeouts(value: float) -> None:
    assert LifespanManager(returns_at_once, value, value).shutdown_timeout == value


async def test_the_body_exception_names_each_app_that_failed_too(
    backend: Backend,
) -> None:
    error = KeyError("body")
    with pytest.raises(KeyError) as caught:
        async with open_lifespans(
            reporting_app(backend, "shutdown", "return", "first"),
            reporting_app(backend, "shutdown", "return", "second"),
        ):
            raise error
    assert caught.value is error
    (note,) = notes(error)
    assert note.startswith(
        "trio_lifespan: the app's lifespan failed too, after this exception: "
        "ExceptionGroup: 2 lifespans failed (2 sub-exceptions) (LifespanShutdownFailed:"
    )
    assert "with the message: first." in note
    assert "with the message: second." in note
