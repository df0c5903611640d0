"""``trio-lifespan check``: start an app, ask it a few things, shut it down.

A deployment smoke check that needs no server: the app's lifespan is run with
:func:`trio_lifespan.open_lifespan`, requests go through the wrapped app as
plain ASGI calls, and the exit status says what went wrong, if anything.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

from ._errors import (
    LifespanCrashed,
    LifespanNotASGIApp,
    LifespanNotSupported,
    LifespanProtocolError,
    LifespanTimeout,
)
from ._open import open_lifespan
from ._types import ASGIApp, Message

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_STARTUP_FAILED = 3
EXIT_SHUTDOWN_FAILED = 4
EXIT_NOT_SUPPORTED = 5
EXIT_TIMEOUT = 6
EXIT_BAD_STATUS = 7
EXIT_PROTOCOL = 8
EXIT_CRASHED = 9

DEMO_APP = "trio_lifespan._demo:app"

EXIT_STATUSES = f"""\
exit statuses:
  {EXIT_OK}  the app started, answered as expected, and shut down cleanly
  {EXIT_USAGE}  bad usage: wrong options, or the app could not be imported or called
  {EXIT_STARTUP_FAILED}  the app's startup failed
  {EXIT_SHUTDOWN_FAILED}  the app's shutdown failed
  {EXIT_NOT_SUPPORTED}  the app does not support the lifespan protocol
     (see --allow-unsupported)
  {EXIT_TIMEOUT}  the startup, the shutdown or a request took too long
  {EXIT_BAD_STATUS}  a request got an unexpected status, or raised
  {EXIT_PROTOCOL}  the app broke the ASGI lifespan protocol
  {EXIT_CRASHED}  the app's lifespan crashed while it was running (after its startup)
"""


TIMED_OUT = "no response in time (see --request-timeout)"


class UsageError(Exception):
    """The command line, or the app it names, cannot be used."""


# Loading the app -----------------------------------------------------------------


def load_app(reference: str, *, factory: bool, app_dir: str) -> ASGIApp:
    """Import ``module:attribute`` (dotted attributes allowed), as uvicorn does.

    Raises:
        UsageError: With one line that says what is wrong.
    """
    module_name, colon, attribute = reference.partition(":")
    if not colon or not module_name or not attribute:
        raise UsageError(
            f"app reference {reference!r} must look like 'module:attribute', "
            "for example 'myproject.main:app'"
        )
    sys.path.insert(0, str(Path(app_dir).resolve()))
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise UsageError(
            f"could not import module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(
                f"{reference!r}: {type(obj).__name__} {getattr(obj, '__name__', '')!r}"
                f" has no attribute {part!r}"
            ) from None
    if factory:
        if not callable(obj):
            raise UsageError(
                f"{reference!r} is a {type(obj).__name__}, not a factory to call"
            )
        try:
            obj = obj()
        except Exception as exc:
            raise UsageError(
                f"calling the factory {reference!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
    if not callable(obj):
        raise UsageError(
            f"{reference!r} is a {type(obj).__name__}, not an ASGI app (an async "
            "callable taking scope, receive and send)"
        )
    return cast("ASGIApp", obj)  # callable, imported by name: trust it as an app


# Reporting -----------------------------------------------------------------------


@dataclass
class Report:
    """What the check saw, printed as it happens (or as JSON at the end)."""

    app: str
    backend: str
    as_json: bool
    out: TextIO
    phases: dict[str, dict[str, Any]] = field(default_factory=dict[str, dict[str, Any]])
    requests: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    error: dict[str, Any] | None = None

    def say(self, line: str) -> None:
        if not self.as_json:
            print(line, file=self.out, flush=True)

    def phase(self, name: str, seconds: float, **details: Any) -> None:
        self.phases[name] = {"ok": True, "seconds": seconds, **details}
        extra = ""
        if "state_keys" in details:
            keys = details["state_keys"]
            extra = "  state: " + (", ".join(keys) if keys else "(empty)")
        if details.get("lifespan") is False:
            extra = "  (the app has no lifespan; allowed)"
        self.say(f"{name:<9} ok  {_ms(seconds)}{extra}")

    def request(
        self, path: str, status: int | None, ok: bool, seconds: float, problem: str
    ) -> None:
        self.requests.append(
            {
                "method": "GET",
                "path": path,
                "status": status,
                "ok": ok,
                "seconds": seconds,
                "problem": problem or None,
            }
        )
        shown = "---" if status is None else str(status)
        verdict = "ok" if ok else f"FAILED: {problem}"
        self.say(f"{'GET':<9} {shown:<4}{_ms(seconds)}  {path}  {verdict}")

    def failure(self, phase: str, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}"
        self.error = {"phase": phase, "type": type(exc).__name__, "message": str(exc)}
        self.phases.setdefault(phase, {"ok": False})
        self.say(f"{phase:<9} FAILED  {text}")

    def finish(self, status: int) -> None:
        if self.as_json:
            document = {
                "app": self.app,
                "backend": self.backend,
                "ok": status == EXIT_OK,
                "exit_status": status,
                "startup": self.phases.get("startup"),
                "requests": self.requests,
                "shutdown": self.phases.get("shutdown"),
                "error": self.error,
            }
            json.dump(document, self.out, indent=2)
            print(file=self.out)
        else:
            self.say(
                "passed" if status == EXIT_OK else f"failed (exit status {status})"
            )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


# Running the check ---------------------------------------------------------------


@dataclass
class Check:
    """What to check, from the command line."""

    paths: list[str]
    expect: int | None
    startup_timeout: float | None
    shutdown_timeout: float | None
    request_timeout: float
    allow_unsupported: bool
    show_traceback: bool


def _expected(status: int, expect: int | None) -> bool:
    return status == expect if expect is not None else 200 <= status < 400


class _Primitives:
    """The two things a request needs from the event loop."""

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def event(self) -> Any:
        if self.backend == "trio":
            import trio  # noqa: PLC0415 - only the chosen library is imported

            return trio.Event()
        import asyncio  # noqa: PLC0415

        return asyncio.Event()

    def cancelled(self) -> type[BaseException]:
        """The event loop's cancellation, which a request lets through."""
        if self.backend == "trio":
            import trio  # noqa: PLC0415

            return trio.Cancelled
        import asyncio  # noqa: PLC0415

        return asyncio.CancelledError

    async def within(self, seconds: float, call: Callable[[], Awaitable[None]]) -> bool:
        """Run ``call()``; whether it finished within ``seconds``."""
        if self.backend == "trio":
            import trio  # noqa: PLC0415

            with trio.move_on_after(seconds):
                await call()
                return True
            return False
        import asyncio  # noqa: PLC0415

        try:
            await asyncio.wait_for(call(), seconds)
        except asyncio.TimeoutError:
            return False
        return True


async def _get(
    app: ASGIApp, path: str, primitives: _Primitives, seconds: float
) -> tuple[int | None, str]:
    """Send ``GET path`` through ``app``; returns the status and any problem."""
    raw_path, _, query = path.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"user-agent", b"trio-lifespan")],
        "client": ("127.0.0.1", 0),
        "server": ("localhost", 80),
    }
    status: list[int] = []
    finished = primitives.event()
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(int(message["status"]))
        elif message["type"] == "http.response.body" and not message.get(
            "more_body", False
        ):
            finished.set()

    failures: list[BaseException] = []

    async def call() -> None:
        try:
            await app(scope, receive, send)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, primitives.cancelled())):
                raise
            # Anything else the app raises, SystemExit included, fails this
            # request (not the whole check, and never silently).
            failures.append(exc)

    in_time = await primitives.within(seconds, call)
    if failures:
        exc = failures[0]
        return (status[0] if status else None), f"{type(exc).__name__}: {exc}"
    if not in_time:
        return None, TIMED_OUT
    if not status:
        return None, "the app returned without sending a response"
    return status[0], ""


async def run_check(
    app: ASGIApp, check: Check, report: Report, primitives: _Primitives
) -> int:
    """Start ``app``, send the requests, shut it down; returns the exit status."""
    phase = "startup"
    failures: set[int] = set()
    start = time.perf_counter()
    try:
        async with open_lifespan(
            app,
            startup_timeout=check.startup_timeout,
            shutdown_timeout=check.shutdown_timeout,
            allow_unsupported=check.allow_unsupported,
        ) as wrapped:
            report.phase(
                "startup",
                time.perf_counter() - start,
                # Keys need not be strings: shown as text, never failing.
                state_keys=sorted(map(str, wrapped.state)),
                **({} if wrapped.supported else {"lifespan": False}),
            )
            phase = "requests"
            for path in check.paths:
                began = time.perf_counter()
                status, problem = await _get(
                    wrapped, path, primitives, check.request_timeout
                )
                ok = (
                    not problem
                    and status is not None
                    and _expected(status, check.expect)
                )
                if not problem and not ok:
                    wanted = check.expect if check.expect is not None else "2xx or 3xx"
                    problem = f"expected {wanted}"
                report.request(path, status, ok, time.perf_counter() - began, problem)
                if not ok:
                    failures.add(
                        EXIT_TIMEOUT if problem == TIMED_OUT else EXIT_BAD_STATUS
                    )
            phase = "shutdown"
            start = time.perf_counter()
        report.phase("shutdown", time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - the app's failure, reported
        status, phase = _classify(exc, phase)
        report.failure(phase, exc)
        if check.show_traceback:
            traceback.print_exception(exc, file=sys.stderr)
        return status
    return min(failures, default=EXIT_OK)


_BY_TYPE: tuple[tuple[type[Exception], int], ...] = (
    (LifespanNotASGIApp, EXIT_USAGE),
    (LifespanNotSupported, EXIT_NOT_SUPPORTED),
    (LifespanProtocolError, EXIT_PROTOCOL),
)


def _classify(exc: Exception, phase: str) -> tuple[int, str]:
    """The exit status for ``exc``, and the phase it belongs to."""
    if isinstance(exc, LifespanTimeout):
        return EXIT_TIMEOUT, exc.phase
    for kind, status in _BY_TYPE:
        if isinstance(exc, kind):
            return status, phase
    if isinstance(exc, LifespanCrashed) or phase == "requests":
        # It came out while the requests were under way: the lifespan died
        # under them, before any shutdown was asked for.
        return EXIT_CRASHED, "running"
    if phase == "startup":
        return EXIT_STARTUP_FAILED, phase
    return EXIT_SHUTDOWN_FAILED, "shutdown"


# The command line ----------------------------------------------------------------


def _seconds_or_none(text: str) -> float | None:
    if text.lower() in ("none", "inf"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds (or 'none')"
        ) from None
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be zero or more seconds")
    return value


def _status(text: str) -> int:
    if not text.isdigit() or not 100 <= int(text) <= 599:
        raise argparse.ArgumentTypeError(f"{text!r} is not an HTTP status (100-599)")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The ``trio-lifespan`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="trio-lifespan",
        description="Run an ASGI app's lifespan without a server.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="start the app, send it requests, shut it down, and say how it went",
        description=(
            "Start an ASGI app (its lifespan startup), send it GET requests as "
            "plain ASGI calls, then shut it down, printing each step with its "
            "duration. No server is started."
        ),
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "app",
        nargs="?",
        default=None,
        help=(
            "the app as 'module:attribute' (default: a demo app shipped in the "
            f"package, {DEMO_APP}, asked for / and /health)"
        ),
    )
    check.add_argument(
        "--factory",
        action="store_true",
        help="the reference names a function that returns the app: call it",
    )
    check.add_argument(
        "--app-dir",
        default=".",
        help="a folder to import the app from, put first on sys.path (default: .)",
    )
    check.add_argument(
        "--get",
        action="append",
        default=[],
        metavar="PATH",
        help="send GET PATH once the app has started (repeatable; in order)",
    )
    check.add_argument(
        "--expect",
        type=_status,
        default=None,
        metavar="STATUS",
        help="the status every request must get (default: any 2xx or 3xx)",
    )
    check.add_argument(
        "--backend",
        choices=("trio", "asyncio"),
        default="trio",
        help="the event loop library to run the app on (default: trio)",
    )
    for phase in ("startup", "shutdown"):
        check.add_argument(
            f"--{phase}-timeout",
            type=_seconds_or_none,
            default=5.0,
            metavar="SECONDS",
            help=f"how long the {phase} may take, or 'none' (default: 5)",
        )
    check.add_argument(
        "--request-timeout",
        type=_seconds_or_none,
        default=10.0,
        metavar="SECONDS",
        help="how long each request may take, or 'none' (default: 10)",
    )
    check.add_argument(
        "--allow-unsupported",
        action="store_true",
        help="run an app that does not support lifespan (its requests still go)",
    )
    check.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document at the end instead of a line per step",
    )
    check.add_argument(
        "--traceback",
        action="store_true",
        help="show the full traceback of an error",
    )
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    stream = sys.stdout if out is None else out
    args = build_parser().parse_args(argv)
    reference = args.app or DEMO_APP
    try:
        app = load_app(reference, factory=args.factory, app_dir=args.app_dir)
    except UsageError as exc:
        print(f"trio-lifespan: error: {exc}", file=sys.stderr)
        if args.traceback and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        return EXIT_USAGE
    paths = args.get or ([] if args.app else ["/", "/health"])  # the demo answers
    report = Report(reference, args.backend, args.json, stream)
    report.say(f"checking {reference} on {args.backend}")
    check = Check(
        paths=paths,
        expect=args.expect,
        startup_timeout=args.startup_timeout,
        shutdown_timeout=args.shutdown_timeout,
        request_timeout=float("inf")
        if args.request_timeout is None
        else args.request_timeout,
        allow_unsupported=args.allow_unsupported,
        show_traceback=args.traceback,
    )
    primitives = _Primitives(args.backend)
    if args.backend == "trio":
        import trio  # noqa: PLC0415 - only the chosen library is imported

        status = trio.run(run_check, app, check, report, primitives)
    else:
        import asyncio  # noqa: PLC0415

        status = asyncio.run(run_check(app, check, report, primitives))
    report.finish(status)
    return status


def console_script() -> None:
    """The ``trio-lifespan`` command."""
    sys.exit(main())
