"""Running the check: start the app, send the requests, shut it down.

Runs on the driver's backend object for the library asked for (only that
library is imported), and classifies what went wrong into an exit status.
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from .._backend import backend_named
from .._compat import BaseExceptionGroup
from .._errors import (
    LifespanCrashed,
    LifespanNotASGIApp,
    LifespanNotSupported,
    LifespanProtocolError,
    LifespanTimeout,
)
from .._exceptions import members
from .._open import open_lifespan

if TYPE_CHECKING:
    from .._backend import Backend
    from .._types import ASGIApp, Message
    from ._report import Report

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_STARTUP_FAILED = 3
EXIT_SHUTDOWN_FAILED = 4
EXIT_NOT_SUPPORTED = 5
EXIT_TIMEOUT = 6
EXIT_BAD_STATUS = 7
EXIT_PROTOCOL = 8
EXIT_CRASHED = 9
#: A check stopped by Ctrl-C: 128 + SIGINT, as shells say it.
EXIT_INTERRUPTED = 130

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
  {EXIT_INTERRUPTED}  stopped by Ctrl-C
"""

TIMED_OUT = "no response in time (see --request-timeout)"


@dataclass
class Check:
    """What to check, from the command line.

    Attributes:
        requests: The requests to send, in order: ``(method, path)``.
        expect: The status every request must get; ``None`` for any 2xx or 3xx.
        startup_timeout: The startup's limit in seconds (``math.inf``: none).
        shutdown_timeout: The shutdown's limit in seconds (``math.inf``: none).
        request_timeout: Each request's limit in seconds (``math.inf``: none).
        allow_unsupported: Whether an app without lifespan support still runs.
        show_traceback: Whether an error's traceback goes to stderr.
        headers: Headers sent with every request, ``(name, value)``.
        body: The body sent with every request.
        backend: The library the app runs on (for the hints).
        maybe_factory: Whether the app is a plain function that was not
            called: if it cannot be run, ``--factory`` is suggested.
    """

    requests: list[tuple[str, str]]
    expect: int | None
    startup_timeout: float
    shutdown_timeout: float
    request_timeout: float
    allow_unsupported: bool
    show_traceback: bool
    headers: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])
    body: bytes = b""
    backend: str = "trio"
    maybe_factory: bool = False


def check_on(library: str, app: ASGIApp, check: Check, report: Report) -> int:
    """Run :func:`run_check` in a new event loop of ``library``.

    Args:
        library: ``"trio"`` or ``"asyncio"``; only that library is imported.
        app: The app to check.
        check: What to check.
        report: Where to say what happened.

    Returns:
        The exit status.
    """
    backend = backend_named(library, "check_on")
    return backend.run(lambda: run_check(app, check, report, backend))


def _expected(status: int, expect: int | None) -> bool:
    return status == expect if expect is not None else 200 <= status < 400


def _headers(check: Check) -> list[tuple[bytes, bytes]]:
    """The request's headers: the defaults, then ``--header`` (which win), then
    the body's length."""
    given = {name.lower() for name, _ in check.headers}
    headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in [("host", "localhost"), ("user-agent", "trio-lifespan")]
        if name not in given
    ]
    headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in check.headers
    ]
    if check.body and "content-length" not in given:
        headers.append((b"content-length", str(len(check.body)).encode()))
    return headers


def request_target(path: str) -> tuple[str, bytes, bytes]:
    """The scope's ``path``, ``raw_path`` and ``query_string`` for ``path``
    (``--get PATH``), as uvicorn and hypercorn build them from the request
    line: what is not ASCII percent-encoded as a client sends it, then the
    path percent-decoded, ``raw_path`` and the query string as sent."""
    target = quote(path, safe="/:@!$&'()*+,;=?%~")
    raw, _, query = target.partition("?")
    return unquote(raw), raw.encode("ascii"), query.encode("ascii")


#: How much of a response's body the report keeps: enough for the reason
#: a readiness route gives ("migrations pending"), not a whole page.
BODY_SHOWN = 200


@dataclass
class Response:
    """What came back for a request, as much as the report shows."""

    headers: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])
    #: The body's first bytes (at most :data:`BODY_SHOWN` of them are shown).
    start: bytes = b""
    #: The whole body's length.
    length: int = 0

    def add(self, chunk: bytes) -> None:
        if len(self.start) <= BODY_SHOWN:
            self.start += chunk[: BODY_SHOWN + 1 - len(self.start)]
        self.length += len(chunk)

    def text(self) -> str | None:
        """The body's start as text, ``...`` if it goes on; ``None`` if binary."""
        shown = self.start[:BODY_SHOWN]
        try:
            text = shown.decode()
        except UnicodeDecodeError as exc:
            if exc.reason != "unexpected end of data":  # not a character cut short
                return None
            text = shown[: exc.start].decode()
        if any(not c.isprintable() and c not in "\r\n\t" for c in text):
            return None
        return text + ("..." if self.length > len(text.encode()) else "")

    def summary(self) -> str:
        """The body, said in a line: its text, or what it is."""
        if not self.length:
            return "the body is empty"
        text = self.text()
        if text is None:
            return f"the body: {self.length} bytes, not text"
        return f"the body: {' '.join(text.split())!r}"


async def _send(
    app: ASGIApp,
    method: str,
    path: str,
    check: Check,
    backend: Backend,
    *,
    response: Response,
) -> tuple[int | None, str, BaseException | None]:
    """Send ``method path`` through ``app``; what came back goes in ``response``.

    Returns:
        The status (``None`` if none came), any problem, and the exception
        the app raised, if it raised one.
    """
    decoded, raw_path, query = request_target(path)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": decoded,
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": _headers(check),
        "client": ("127.0.0.1", 0),
        "server": ("localhost", 80),
    }
    status: list[int] = []
    finished = backend.event()
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": check.body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(int(message["status"]))
            response.headers = [
                (bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
                for name, value in message.get("headers", [])
            ]
        elif message["type"] == "http.response.body":
            response.add(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                finished.set()

    failures: list[BaseException] = []

    async def call() -> None:
        try:
            await app(scope, receive, send)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, backend.cancelled)):
                raise
            # Anything else the app raises, SystemExit included, fails this
            # request (not the whole check, and never silently).
            failures.append(exc)

    in_time = await backend.within(check.request_timeout, call)
    if failures:
        exc = failures[0]
        return (status[0] if status else None), f"{type(exc).__name__}: {exc}", exc
    if not in_time:
        return None, TIMED_OUT, None
    if not status:
        return None, "the app returned without sending a response", None
    return status[0], "", None


async def run_check(
    app: ASGIApp, check: Check, report: Report, backend: Backend
) -> int:
    """Start ``app``, send the requests, shut it down.

    Args:
        app: The app to check.
        check: What to check.
        report: Where each step is said as it happens.
        backend: The driver's backend for the library running this.

    Returns:
        The exit status: that of the app's failure if the lifespan failed,
        else the lowest of the requests' failures, else :data:`EXIT_OK`.
    """
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
            start = time.perf_counter()
            for method, path in check.requests:
                began = time.perf_counter()
                response = Response()
                status, problem, raised = await _send(
                    wrapped, method, path, check, backend, response=response
                )
                ok = (
                    not problem
                    and status is not None
                    and _expected(status, check.expect)
                )
                if not problem and not ok:
                    wanted = check.expect if check.expect is not None else "2xx or 3xx"
                    problem = f"expected {wanted}; {response.summary()}"
                report.request(
                    method,
                    path,
                    status=status,
                    ok=ok,
                    seconds=time.perf_counter() - began,
                    problem=problem,
                    response=response,
                )
                if raised is not None:
                    report.hint(hint_for(raised, check))
                    if check.show_traceback:
                        traceback.print_exception(raised, file=sys.stderr)
                if not ok:
                    failures.add(
                        EXIT_TIMEOUT if problem == TIMED_OUT else EXIT_BAD_STATUS
                    )
            phase = "shutdown"
            start = time.perf_counter()
        report.phase("shutdown", time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - the app's failure, reported
        status, phase = _classify(exc, phase)
        report.failure(phase, exc, time.perf_counter() - start)
        report.hint(hint_for(exc, check))
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


#: What an asyncio-only app says when it runs on trio.
_ASYNCIO_ONLY = ("unrecognized yield message", "no running event loop")


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, its causes and contexts, and a group's members, each once."""
    seen: dict[int, BaseException] = {}  # by identity: exceptions may compare equal
    todo = [exc]
    while todo:
        one = todo.pop()
        if id(one) in seen:
            continue
        seen[id(one)] = one
        if isinstance(one, BaseExceptionGroup):
            todo += members(one)  # pyright: ignore[reportUnknownArgumentType]
        todo += [e for e in (one.__cause__, one.__context__) if e is not None]
    return list(seen.values())


def hint_for(exc: BaseException, check: Check) -> str:
    """What to try when ``exc`` ended the check or a request; ``""`` if nothing."""
    if isinstance(exc, LifespanNotASGIApp) and check.maybe_factory:
        return "if the app is made by calling that function, pass --factory"
    if isinstance(exc, LifespanTimeout):  # (its message speaks the Python API)
        return f"the limit is --{exc.phase}-timeout SECONDS here (none waits for ever)"
    if check.backend == "trio" and any(
        text in str(one) for one in _chain(exc) for text in _ASYNCIO_ONLY
    ):
        return "the app seems to need asyncio: try --backend asyncio"
    return ""
