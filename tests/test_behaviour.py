"""The behaviour of ``open_lifespan``, the same on every backend.

Each test is one point of the core issue. Tests run on fake time (see
``backends.py``): a timeout test takes microseconds, and a hang fails.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
from collections import UserDict
from typing import Any, NoReturn

import pytest

from trio_lifespan import (
    LifespanError,
    LifespanNotASGIApp,
    LifespanNotSupported,
    LifespanProtocolError,
    LifespanShutdownFailed,
    LifespanStartupFailed,
    LifespanTimeout,
    open_lifespan,
)
from trio_lifespan._types import Message, Receive, Scope, Send

from .apps import Boom, GoodApp, http_request

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup
from .backends import Backend, forever
from .typed import approx


def notes(exc: BaseException) -> list[str]:
    """The notes attached to ``exc`` (none: an empty list)."""
    found: list[str] = getattr(exc, "__notes__", [])
    return found


# 1. Scope and entry ----------------------------------------------------------


async def test_app_gets_the_lifespan_scope_and_entry_waits_for_startup(
    backend: Backend,
) -> None:
    app = GoodApp(backend, startup_delay=3.0)
    before = backend.now()
    async with open_lifespan(app) as wrapped:
        assert backend.now() - before == approx(3.0)
        assert app.events == ["lifespan.startup"]
        assert app.lifespan_scope == {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": {},
        }
        assert wrapped.app is app
    assert app.events == [
        "lifespan.startup",
        "lifespan.shutdown",
        "cleanup",
        "returned",
    ]


# 2. The yielded app and the state --------------------------------------------


async def test_each_request_gets_a_shallow_copy_of_the_state(
    backend: Backend,
) -> None:
    app = GoodApp(backend)
    async with open_lifespan(app) as wrapped:
        first = await http_request(wrapped)
        first["state"]["added"] = 1
        del first["state"]["name"]
        second = await http_request(wrapped, kind="websocket")
        assert second["state"] == {"shared": app.shared, "name": "good"}
        assert second["state"] is not first["state"]
        assert second["state"]["shared"] is app.shared  # values are shared
        assert dict(wrapped.state) == {"shared": app.shared, "name": "good"}
    assert app.events[1:3] == ["request http", "request websocket"]


async def test_state_is_a_read_only_view(backend: Backend) -> None:
    app = GoodApp(backend)
    async with open_lifespan(app) as wrapped:
        with pytest.raises(TypeError):
            wrapped.state["x"] = 1  # type: ignore[index]
        assert wrapped.state["name"] == "good"


async def test_other_scope_types_pass_through_untouched(backend: Backend) -> None:
    app = GoodApp(backend)
    async with open_lifespan(app) as wrapped:
        scope = await http_request(wrapped, kind="custom")
        assert scope == {"type": "custom", "path": "/", "headers": []}
        assert app.request_scopes == [scope]


# 3. Normal exit ----------------------------------------------------------------


async def test_exit_cancels_an_app_that_lingers_in_receive(backend: Backend) -> None:
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        try:
            while True:
                await receive()
        except backend.cancelled:
            events.append("cancelled")
            raise

    async with open_lifespan(app):
        pass
    assert events == ["cancelled"]


async def test_exit_cancels_an_app_that_sleeps_after_shutdown(
    backend: Backend,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        await backend.sleep(forever())

    before = backend.now()
    async with open_lifespan(app):
        pass
    assert backend.now() == before


# 4 and 5. Reported failures ----------------------------------------------------


def reporting_app(
    backend: Backend, phase: str, then: str, message: str | None = "it broke"
) -> Any:
    """An app whose ``phase`` sends '.failed', then returns, waits or raises."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        if phase == "shutdown":
            await send({"type": "lifespan.startup.complete"})
            await receive()
        report: Message = {"type": f"lifespan.{phase}.failed"}
        if message is not None:
            report["message"] = message
        await send(report)
        if then == "raise":
            raise Boom("from the hook")
        if then == "receive":
            await receive()
        if then == "sleep":
            await backend.sleep(forever())

    return app


FAILED = {"startup": LifespanStartupFailed, "shutdown": LifespanShutdownFailed}


@pytest.mark.parametrize("phase", ["startup", "shutdown"])
@pytest.mark.parametrize("then", ["return", "receive", "sleep"])
async def test_a_reported_failure_comes_out_at_once(
    backend: Backend, phase: str, then: str
) -> None:
    body_ran = False
    before = backend.now()
    with pytest.raises(FAILED[phase]) as caught:
        async with open_lifespan(reporting_app(backend, phase, then)):
            body_ran = True
    assert backend.now() == before  # not by waiting out a timeout
    assert body_ran == (phase == "shutdown")
    assert caught.value.message == "it broke"
    assert str(caught.value) == (
        f"the app reported that its {phase} failed ('lifespan.{phase}.failed') "
        "with the message: it broke. Look at the app's "
        + (
            "startup hooks (on_startup, the lifespan context manager)"
            if phase == "startup"
            else "shutdown hooks (on_shutdown, the code after `yield` in the "
            "lifespan context manager)"
        )
        + " and at the app's logs for the cause."
    )
    assert isinstance(caught.value, LifespanError)


@pytest.mark.parametrize("phase", ["startup", "shutdown"])
async def test_a_failure_report_without_message(backend: Backend, phase: str) -> None:
    with pytest.raises(FAILED[phase]) as caught:
        async with open_lifespan(reporting_app(backend, phase, "return", None)):
            pass
    assert caught.value.message == ""
    assert "failed ('lifespan." + phase + ".failed') without a message" in str(
        caught.value
    )


@pytest.mark.parametrize("phase", ["startup", "shutdown"])
@pytest.mark.parametrize("message", ["it broke", "", None])
async def test_the_apps_own_exception_comes_out_bare_with_the_report_as_note(
    backend: Backend, phase: str, message: str | None
) -> None:
    with pytest.raises(Boom) as caught:
        async with open_lifespan(reporting_app(backend, phase, "raise", message)):
            pass
    assert type(caught.value) is Boom
    assert notes(caught.value) == (["it broke"] if message else [])


@pytest.mark.parametrize("phase", ["startup", "shutdown"])
async def test_an_app_that_raises_without_a_report(
    backend: Backend, phase: str
) -> None:
    error = Boom("no report")
    body_ran = False

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        if phase == "shutdown":
            await send({"type": "lifespan.startup.complete"})
            await receive()
        raise error

    with pytest.raises(Boom) as caught:
        async with open_lifespan(app):
            body_ran = True
    assert caught.value is error
    assert body_ran == (phase == "shutdown")
    assert notes(error) == []


# 6. Lifespan not supported ---------------------------------------------------


async def django_like(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        raise ValueError(
            f"Django can only handle ASGI/HTTP connections, not {scope['type']}."
        )
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"django"})


async def http_only(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": b"plain"})


async def returns_at_once(scope: Scope, receive: Receive, send: Send) -> None:
    return


UNSUPPORTED = {
    "raises": (
        django_like,
        r"^the app raised ValueError\(Django can only handle ASGI/HTTP "
        r"connections, not lifespan\.\) before its first receive\(\)\. So the app "
        r"does not support the ASGI lifespan protocol\. If the app should support "
        r"lifespan, make it handle scope\['type'\] == 'lifespan' \(most frameworks "
        r"do this for you\); to run it anyway, pass allow_unsupported=True\.$",
    ),
    "sends first": (
        http_only,
        r"^the app called send\(\{'type': 'http\.response\.start', 'status': 200\}\) "
        r"before its first receive\(\): it treats the lifespan scope like a "
        r"request\. So the app does not support",
    ),
    "returns": (
        returns_at_once,
        r"^the app returned without ever calling receive\(\)\. So the app does not",
    ),
}


@pytest.mark.parametrize("case", list(UNSUPPORTED))
async def test_an_app_without_lifespan_is_reported(backend: Backend, case: str) -> None:
    app, pattern = UNSUPPORTED[case]
    body_ran = False
    with pytest.raises(LifespanNotSupported, match=pattern) as caught:
        async with open_lifespan(app):
            body_ran = True
    assert not body_ran
    if case == "raises":
        assert isinstance(caught.value.__cause__, ValueError)
    else:
        assert caught.value.__cause__ is None


@pytest.mark.parametrize("case", list(UNSUPPORTED))
async def test_allow_unsupported_runs_the_body_with_the_app_unchanged(
    backend: Backend, case: str
) -> None:
    app, _ = UNSUPPORTED[case]
    async with open_lifespan(app, allow_unsupported=True) as wrapped:
        assert wrapped.app is app
        assert dict(wrapped.state) == {}
        if case != "returns":
            scope = await http_request(wrapped)
            assert "state" not in scope


async def test_allow_unsupported_sends_nothing_at_exit(backend: Backend) -> None:
    calls: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope["type"])
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")

    async with open_lifespan(app, allow_unsupported=True) as wrapped:
        await http_request(wrapped)
    assert calls == ["lifespan", "http"]


async def test_allow_unsupported_still_reports_a_supported_apps_failure(
    backend: Backend,
) -> None:
    with pytest.raises(LifespanStartupFailed):
        async with open_lifespan(
            reporting_app(backend, "startup", "return"), allow_unsupported=True
        ):
            pass


# 7. Timeouts -----------------------------------------------------------------


def slow_app(backend: Backend, phase: str, events: list[str]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        if phase == "shutdown":
            await send({"type": "lifespan.startup.complete"})
            await receive()
        try:
            await backend.sleep(forever())
        except backend.cancelled:
            events.append(f"cancelled at {backend.now()}")
            raise

    return app


@pytest.mark.parametrize("phase", ["startup", "shutdown"])
async def test_a_timeout_cancels_the_app_and_says_what_happened(
    backend: Backend, phase: str
) -> None:
    events: list[str] = []
    start = backend.now()
    with pytest.raises(LifespanTimeout) as caught:
        async with open_lifespan(
            slow_app(backend, phase, events),
            startup_timeout=2.5 if phase == "startup" else 5.0,
            shutdown_timeout=2.5 if phase == "shutdown" else 5.0,
        ):
            pass
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, LifespanError)
    assert caught.value.phase == phase
    assert caught.value.timeout == 2.5
    assert str(caught.value).startswith(
        f"the app's {phase} did not complete within {phase}_timeout=2.5 seconds, "
        "so it was cancelled. A " + phase + " hook is probably "
    )
    assert events == [f"cancelled at {start + 2.5}"]


async def test_default_timeouts_are_five_seconds(backend: Backend) -> None:
    events: list[str] = []
    start = backend.now()
    with pytest.raises(LifespanTimeout):
        async with open_lifespan(slow_app(backend, "startup", events)):
            pass
    assert backend.now() - start == approx(5.0)


async def test_none_means_no_limit(backend: Backend) -> None:
    app = GoodApp(backend, startup_delay=5000)
    async with open_lifespan(app, startup_timeout=None, shutdown_timeout=None):
        pass
    assert app.events[-1] == "returned"


@pytest.mark.parametrize("name", ["startup_timeout", "shutdown_timeout"])
@pytest.mark.parametrize("value", [-1, -0.5, math.nan, -math.inf])
def test_a_negative_or_nan_timeout_is_a_value_error(name: str, value: float) -> None:
    with pytest.raises(
        ValueError, match=rf"^{name} must be non-negative or None, not "
    ):
        if name == "startup_timeout":
            open_lifespan(returns_at_once, startup_timeout=value)
        else:
            open_lifespan(returns_at_once, shutdown_timeout=value)


@pytest.mark.parametrize("value", ["5", True, [1]])
def test_a_timeout_that_is_not_a_number_is_a_type_error(value: object) -> None:
    with pytest.raises(
        TypeError,
        match=r"^startup_timeout must be a number of seconds or None, not "
        + type(value).__name__
        + "$",
    ):
        open_lifespan(returns_at_once, startup_timeout=value)  # type: ignore[arg-type]


def test_an_app_that_is_not_callable_is_a_type_error() -> None:
    with pytest.raises(
        LifespanNotASGIApp, match=r"^app must be an ASGI app .*, not str$"
    ) as caught:
        open_lifespan("main:app")  # type: ignore[type-var]
    assert isinstance(caught.value, TypeError)
    assert isinstance(caught.value, LifespanError)


def sync_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A plain function: calling it gives nothing to await."""


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    raise AssertionError("never called with two arguments here")  # pragma: no cover


class Asgi2App:
    """An ASGI 2 app: built from the scope, then awaited with receive and send."""

    def __init__(self, scope: Scope) -> None:
        raise AssertionError("never built with one argument here")  # pragma: no cover


async def scope_only(scope: Scope) -> None:
    raise AssertionError("never called with one argument here")  # pragma: no cover


NOT_ASGI: dict[str, tuple[Any, str]] = {
    "plain def": (
        sync_app,
        r"TypeError: object NoneType can't be used in 'await' expression|"
        r"TypeError: 'NoneType' object can't be awaited",
    ),
    "wsgi": (wsgi_app, r"TypeError: wsgi_app\(\) takes 2 positional arguments"),
    "asgi 2": (Asgi2App, r"TypeError: Asgi2App.__init__\(\) takes 2 positional"),
    "wrong arguments": (scope_only, r"TypeError: scope_only\(\) takes 1 positional"),
}


@pytest.mark.parametrize("allow_unsupported", [False, True])
@pytest.mark.parametrize("case", list(NOT_ASGI))
async def test_an_app_that_cannot_be_called_as_asgi_is_named(
    backend: Backend, case: str, allow_unsupported: bool
) -> None:
    app, failure = NOT_ASGI[case]
    with pytest.raises(LifespanNotASGIApp) as caught:
        async with open_lifespan(app, allow_unsupported=allow_unsupported):
            raise AssertionError("the body must not run")  # pragma: no cover
    text = str(caught.value)
    assert text.startswith(
        "the app could not be run: calling it as app(scope, receive, send) failed "
        "with TypeError: "
    )
    assert re.search(failure, text)
    assert "An ASGI app is an async callable taking (scope, receive, send)" in text
    assert isinstance(caught.value.__cause__, TypeError)
    assert isinstance(caught.value, TypeError)


async def test_no_time_at_all_still_names_an_app_that_is_not_asgi(
    backend: Backend,
) -> None:
    app: Any = sync_app  # type checkers reject it already; this is at run time
    with pytest.raises(LifespanNotASGIApp):
        async with open_lifespan(app, startup_timeout=0):
            raise AssertionError("the body must not run")  # pragma: no cover


async def test_an_apps_own_type_error_before_receive_is_still_its_own(
    backend: Backend,
) -> None:
    # Raised inside the app's code, not by calling it: the app has no lifespan.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise TypeError("only http scopes, please")

    with pytest.raises(LifespanNotSupported) as caught:
        async with open_lifespan(app):
            raise AssertionError("the body must not run")  # pragma: no cover
    assert isinstance(caught.value.__cause__, TypeError)
    async with open_lifespan(app, allow_unsupported=True) as wrapped:
        assert not wrapped.supported


async def test_zero_timeout_and_infinity_are_accepted(backend: Backend) -> None:
    async with open_lifespan(
        GoodApp(backend), startup_timeout=math.inf, shutdown_timeout=1
    ):
        pass
    with pytest.raises(LifespanTimeout):
        async with open_lifespan(GoodApp(backend, startup_delay=1), startup_timeout=0):
            pass


# 8. The body raises ----------------------------------------------------------


async def test_the_body_raising_still_runs_the_shutdown(backend: Backend) -> None:
    app = GoodApp(backend)
    error = Boom("in the body")
    with pytest.raises(Boom) as caught:
        async with open_lifespan(app):
            raise error
    assert caught.value is error
    assert notes(error) == []
    assert app.events == [
        "lifespan.startup",
        "lifespan.shutdown",
        "cleanup",
        "returned",
    ]


async def test_the_body_exception_wins_over_a_failed_shutdown(
    backend: Backend,
) -> None:
    error = Boom("in the body")
    with pytest.raises(Boom) as caught:
        async with open_lifespan(reporting_app(backend, "shutdown", "return")):
            raise error
    assert caught.value is error
    assert notes(error) == [
        "trio_lifespan: the app's lifespan failed too, after this exception: "
        "LifespanShutdownFailed: the app reported that its shutdown failed "
        "('lifespan.shutdown.failed') with the message: it broke. Look at the "
        "app's shutdown hooks (on_shutdown, the code after `yield` in the lifespan "
        "context manager) and at the app's logs for the cause."
    ]


async def test_the_shutdown_after_a_body_error_is_bounded(backend: Backend) -> None:
    events: list[str] = []
    error = Boom("in the body")
    start = backend.now()
    with pytest.raises(Boom) as caught:
        async with open_lifespan(
            slow_app(backend, "shutdown", events), shutdown_timeout=3
        ):
            raise error
    assert caught.value is error
    assert events == [f"cancelled at {start + 3}"]
    assert "LifespanTimeout: the app's shutdown did not complete" in notes(error)[0]


# 9. Cancellation from outside ------------------------------------------------


async def test_outer_cancel_in_the_body_still_shuts_down_gracefully(
    backend: Backend,
) -> None:
    app = GoodApp(backend)
    start = backend.now()
    with backend.move_on_after(1) as deadline:
        async with open_lifespan(app):
            await backend.sleep(forever())
    assert deadline.cancelled_caught
    assert backend.now() == start + 1
    assert app.events == [
        "lifespan.startup",
        "lifespan.shutdown",
        "cleanup",
        "returned",
    ]


async def test_outer_cancel_shutdown_is_bounded_by_the_shutdown_timeout(
    backend: Backend,
) -> None:
    events: list[str] = []
    start = backend.now()
    with pytest.raises(LifespanTimeout):  # not lost to the cancel scope
        with backend.move_on_after(1):
            async with open_lifespan(
                slow_app(backend, "shutdown", events), shutdown_timeout=2
            ):
                await backend.sleep(forever())
    assert events == [f"cancelled at {start + 3}"]


async def test_outer_cancel_during_startup_cancels_the_app(backend: Backend) -> None:
    events: list[str] = []
    body_ran = False
    with backend.move_on_after(1) as deadline:
        async with open_lifespan(slow_app(backend, "startup", events)):
            body_ran = True
    assert deadline.cancelled_caught
    assert not body_ran
    assert events == [f"cancelled at {backend.now()}"]


async def test_keyboard_interrupt_in_the_body_shuts_down_first(
    backend: Backend,
) -> None:
    app = GoodApp(backend)
    interrupt = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt) as caught:
        async with open_lifespan(app):
            raise interrupt
    assert caught.value is interrupt
    assert app.events[-1] == "returned"


# 10. The app crashes while the body runs -------------------------------------


async def test_an_app_crash_cancels_the_body_and_comes_out_bare(
    backend: Backend,
) -> None:
    error = Boom("crashed")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await backend.sleep(2)
        raise error

    body: list[str] = []
    with pytest.raises(Boom) as caught:
        async with open_lifespan(app):
            try:
                await backend.sleep(forever())
            except backend.cancelled:
                body.append(f"cancelled at {backend.now()}")
                raise
    assert caught.value is error
    assert body == [f"cancelled at {backend.now()}"]
    assert notes(error) == []


async def test_a_body_error_during_the_crash_wins_with_a_note(
    backend: Backend,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await backend.sleep(1)
        raise Boom("crashed")

    cleanup_error = KeyError("cleanup")
    with pytest.raises(KeyError) as caught:
        async with open_lifespan(app):
            try:
                await backend.sleep(forever())
            finally:
                raise cleanup_error
    assert caught.value is cleanup_error
    assert notes(caught.value) == [
        "trio_lifespan: the app's lifespan failed too, after this exception: "
        "Boom: crashed"
    ]


async def test_an_error_after_shutdown_complete_comes_out(backend: Backend) -> None:
    error = Boom("after complete")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        raise error

    with pytest.raises(Boom) as caught:
        async with open_lifespan(app):
            pass
    assert caught.value is error


async def test_an_error_raised_while_being_cancelled_is_noted(
    backend: Backend,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        try:
            await backend.sleep(forever())
        finally:
            raise Boom("while cancelled")

    with pytest.raises(LifespanTimeout) as caught:
        async with open_lifespan(app, startup_timeout=1):
            pass
    assert notes(caught.value) == [
        "trio_lifespan: while it was being stopped, the app's lifespan also "
        "raised Boom: while cancelled"
    ]


# 11. Protocol errors ---------------------------------------------------------


def scripted(backend: Backend, *steps: object) -> Any:
    """An app that receives once, then sends each step.

    A ``None`` step receives instead, a float step sleeps that long.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        for step in steps:
            if step is None:
                await receive()
            elif isinstance(step, float):
                await backend.sleep(step)
            else:
                await send(step)  # type: ignore[arg-type]
        await backend.sleep(forever())

    return app


HINT = (
    r" A lifespan app answers each 'lifespan\.startup' and 'lifespan\.shutdown' "
    r"with exactly one '\.complete' or '\.failed' message \(see the ASGI lifespan "
    r"spec\)\.$"
)
STARTUP_REPLIES = ("lifespan.startup.complete", "lifespan.startup.failed")
SHUTDOWN_REPLIES = ("lifespan.shutdown.complete", "lifespan.shutdown.failed")
COMPLETE: Message = {"type": "lifespan.startup.complete"}

#: case: (what the app does, the error text, its `expected`, when it comes out:
#: at once in startup (0), when the app breaks it while the body sleeps (1), or
#: at the shutdown that follows the 10 s body (10)).
PROTOCOL_ERRORS: dict[str, tuple[tuple[object, ...], str, tuple[str, ...], float]] = {
    "unknown type": (
        ({"type": "http.response.start"},),
        r"^the app sent \{'type': 'http\.response\.start'\} in reply to "
        r"'lifespan\.startup'; expected 'lifespan\.startup\.complete' or "
        r"'lifespan\.startup\.failed'\. 'http\.response\.start' is not a lifespan "
        r"message type\." + HINT,
        STARTUP_REPLIES,
        0.0,
    ),
    "startup complete twice": (
        (COMPLETE, 1.0, COMPLETE),
        r"^the app sent \{'type': 'lifespan\.startup\.complete'\} after its startup "
        r"had completed and before 'lifespan\.shutdown' was sent; expected no "
        r"message until 'lifespan\.shutdown' is sent\." + HINT,
        (),
        1.0,
    ),
    "shutdown reply before shutdown": (
        (COMPLETE, 1.0, {"type": "lifespan.shutdown.complete"}),
        r"^the app sent \{'type': 'lifespan\.shutdown\.complete'\} after its "
        r"startup had completed and before 'lifespan\.shutdown' was sent",
        (),
        1.0,
    ),
    "shutdown reply during startup": (
        ({"type": "lifespan.shutdown.complete"},),
        r"^the app sent \{'type': 'lifespan\.shutdown\.complete'\} in reply to "
        r"'lifespan\.startup'; expected 'lifespan\.startup\.complete' or "
        r"'lifespan\.startup\.failed'\." + HINT,
        STARTUP_REPLIES,
        0.0,
    ),
    "not a mapping": (
        ("lifespan.startup.complete",),
        r"^the app sent 'lifespan\.startup\.complete', which is not an ASGI "
        r"message: a mapping with a string 'type' such as \{'type': "
        r"'lifespan\.startup\.complete'\}\." + HINT,
        STARTUP_REPLIES,
        0.0,
    ),
    "no type": (
        ({"status": 200},),
        r"^the app sent \{'status': 200\}, which is not an ASGI message",
        STARTUP_REPLIES,
        0.0,
    ),
    "type not a string": (
        ({"type": 3},),
        r"^the app sent \{'type': 3\}, which is not an ASGI message",
        STARTUP_REPLIES,
        0.0,
    ),
    "failed message not a string": (
        ({"type": "lifespan.startup.failed", "message": 42},),
        r"^the app sent \{'type': 'lifespan\.startup\.failed', 'message': 42\}: its "
        r"'message' must be a string, not int\." + HINT,
        STARTUP_REPLIES,
        0.0,
    ),
    "complete after failed": (
        ({"type": "lifespan.startup.failed"}, COMPLETE),
        r"^the app sent \{'type': 'lifespan\.startup\.complete'\} in reply to "
        r"'lifespan\.startup'; expected nothing after its '\.failed' report \(it "
        r"should return or raise\)\." + HINT,
        (),
        0.0,
    ),
    "shutdown complete twice": (
        (
            COMPLETE,
            None,
            {"type": "lifespan.shutdown.complete"},
            {"type": "lifespan.shutdown.complete"},
        ),
        r"^the app sent \{'type': 'lifespan\.shutdown\.complete'\} after its "
        r"shutdown had completed; expected no further message\." + HINT,
        (),
        10.0,
    ),
    "wrong reply to shutdown": (
        (COMPLETE, None, COMPLETE),
        r"^the app sent \{'type': 'lifespan\.startup\.complete'\} in reply to "
        r"'lifespan\.shutdown'; expected 'lifespan\.shutdown\.complete' or "
        r"'lifespan\.shutdown\.failed'\." + HINT,
        SHUTDOWN_REPLIES,
        10.0,
    ),
}


@pytest.mark.parametrize("case", list(PROTOCOL_ERRORS))
async def test_a_protocol_breach_is_named(backend: Backend, case: str) -> None:
    steps, pattern, expected, when = PROTOCOL_ERRORS[case]
    body_ran = False
    before = backend.now()
    with pytest.raises(LifespanProtocolError, match=pattern) as caught:
        async with open_lifespan(scripted(backend, *steps)):
            body_ran = True
            await backend.sleep(10)
    assert backend.now() - before == when  # at once, never by a timeout
    assert body_ran == (when > 0)
    assert caught.value.expected == expected
    received = [step for step in steps if not isinstance(step, (float, type(None)))][-1]
    assert caught.value.received == received


async def test_a_message_that_is_a_mapping_but_not_a_dict_is_understood(
    backend: Backend,
) -> None:
    # The spec's messages are dicts; any other mapping reads the same.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        scope["state"]["seen"] = True
        await send(UserDict({"type": "lifespan.startup.complete"}))
        await receive()
        await send(UserDict({"type": "lifespan.shutdown.failed"}))

    with pytest.raises(LifespanShutdownFailed) as caught:
        async with open_lifespan(app) as wrapped:
            assert wrapped.state == {"seen": True}
    assert caught.value.message == ""


async def test_a_long_message_is_shortened_in_the_error(backend: Backend) -> None:
    with pytest.raises(LifespanProtocolError) as caught:
        async with open_lifespan(scripted(backend, {"type": "x" * 500})):
            pass
    assert "x" * 150 + "..." in str(caught.value)
    assert "x" * 300 not in str(caught.value)


@pytest.mark.parametrize("phase", ["startup", "shutdown"])
async def test_returning_without_a_reply_is_a_protocol_error(
    backend: Backend, phase: str
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        if phase == "shutdown":
            await send(COMPLETE)
            await receive()

    with pytest.raises(
        LifespanProtocolError,
        match=rf"^the app's lifespan returned during its {phase} without sending "
        rf"'lifespan\.{phase}\.complete' or 'lifespan\.{phase}\.failed'\." + HINT,
    ) as caught:
        async with open_lifespan(app):
            pass
    assert caught.value.received is None


async def test_returning_before_shutdown_is_a_protocol_error_at_exit(
    backend: Backend,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send(COMPLETE)

    body: list[str] = []
    with pytest.raises(
        LifespanProtocolError,
        match=r"^the app's lifespan returned after 'lifespan\.startup\.complete' "
        r"without waiting for 'lifespan\.shutdown', so its shutdown never ran\.",
    ):
        async with open_lifespan(app):
            await backend.sleep(10)
            body.append("finished")
    assert body == ["finished"]


async def test_an_app_that_keeps_sending_after_a_breach_is_stopped(
    backend: Backend,
) -> None:
    sent: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        while True:
            with contextlib.suppress(Exception):  # a careless app swallows errors
                await send({"type": "nonsense"})
            sent.append(1)

    with pytest.raises(LifespanProtocolError):
        async with open_lifespan(app):
            pass
    assert len(sent) < 3


# 12 and 13. Errors share a base ----------------------------------------------


def test_every_error_is_a_lifespan_error() -> None:
    for error in (
        LifespanStartupFailed("x"),
        LifespanShutdownFailed("x"),
        LifespanNotSupported("x"),
        LifespanTimeout("startup", 1.0),
        LifespanProtocolError("x"),
    ):
        assert isinstance(error, LifespanError)
        assert type(error).__module__ == "trio_lifespan"


def fail(*args: Any) -> NoReturn:
    raise AssertionError(args)


@pytest.mark.parametrize(
    ("message", "shown"), [(42, "int 42"), (b"x", "bytes b'x'"), ([1], "list [1]")]
)
async def test_a_message_of_the_wrong_kind_is_shown_with_its_type(
    backend: Backend, message: object, shown: str
) -> None:
    with pytest.raises(
        LifespanProtocolError,
        match=rf"^the app sent {re.escape(shown)}, which is not an ASGI message",
    ):
        async with open_lifespan(scripted(backend, message)):
            pass


async def test_a_hostile_app_that_swallows_cancellation_is_still_stopped(
    backend: Backend,
) -> None:
    attempts: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        for kind in ("nonsense", "more nonsense"):
            try:
                await send({"type": kind})
            except BaseException as exc:  # noqa: BLE001 - hostile on purpose
                attempts.append(type(exc).__name__)
        await receive()  # and then it waits on: stopped at once

    with pytest.raises(
        LifespanProtocolError, match=r"^the app sent \{'type': 'nonsense'\}"
    ):
        async with open_lifespan(app):
            pass
    assert attempts == [backend.cancelled.__name__] * 2


async def test_outer_cancel_during_a_normal_shutdown_cancels_the_app(
    backend: Backend,
) -> None:
    events: list[str] = []
    with backend.move_on_after(1) as deadline:
        async with open_lifespan(slow_app(backend, "shutdown", events)):
            pass
    assert deadline.cancelled_caught
    assert events == [f"cancelled at {backend.now()}"]
    assert backend.now() == 1


async def test_an_apps_group_of_one_comes_out_as_the_one(backend: Backend) -> None:
    error = Boom("in a task group")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        raise BaseExceptionGroup("outer", [BaseExceptionGroup("inner", [error])])

    with pytest.raises(Boom) as caught:
        async with open_lifespan(app):
            pass
    assert caught.value is error


async def test_an_apps_group_of_several_comes_out_whole(backend: Backend) -> None:
    group = BaseExceptionGroup("two", [Boom(1), KeyError(2)])

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        raise group

    with pytest.raises(BaseExceptionGroup) as caught:
        async with open_lifespan(app):
            pass
    assert caught.value is group
