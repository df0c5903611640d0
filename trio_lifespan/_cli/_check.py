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
from .._errors import (
    LifespanCrashed,
    LifespanError,
    LifespanNotASGIApp,
    LifespanNotSupported,
    LifespanProtocolError,
    LifespanTimeout,
    LifespanUnavailable,
)
from .._exceptions import chained
from .._open import open_lifespan
from ._exits import (
    EXIT_BAD_STATUS,
    EXIT_CRASHED,
    EXIT_NOT_SUPPORTED,
    EXIT_OK,
    EXIT_PROTOCOL,
    EXIT_SHUTDOWN_FAILED,
    EXIT_STARTUP_FAILED,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    EXIT_WRONG_BACKEND,
)

if TYPE_CHECKING:
    from .._backend import Backend
    from .._types import ASGIApp, Message
    from ._report import Report

TIMED_OUT = "no response in time (see --request-timeout)"


@dataclass
class Request:
    """One request to send, and what its response must be.

    Attributes:
        method: ``GET``, ``POST``...
        path: The path (and query string) as given.
        expect: The status it must get; ``None`` for any 2xx or 3xx.
        headers: Headers to send, ``(name, value)``.
        body: The body to send.
        expect_headers: Headers the response must have: ``(name, value)``,
            or ``(name, None)`` for any value.
        expect_body: Text the response's body must contain, if any.
    """

    method: str
    path: str
    expect: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list[tuple[str, str]])
    body: bytes = b""
    expect_headers: list[tuple[str, str | None]] = field(
        default_factory=list[tuple[str, "str | None"]]
    )
    expect_body: str | None = None

    def expected(self) -> dict[str, Any]:
        """What the response must be, as the JSON report says it."""
        return {
            "status": self.expect,
            "headers": [list(pair) for pair in self.expect_headers],
            "body": self.expect_body,
        }


@dataclass
class Check:
    """What to check, from the command line.

    Attributes:
        requests: The requests to send, in order, each with its expectations.
        startup_timeout: The startup's limit in seconds (``math.inf``: none).
        shutdown_timeout: The shutdown's limit in seconds (``math.inf``: none).
        request_timeout: Each request's limit in seconds (``math.inf``: none).
        allow_unsupported: Whether an app without lifespan support still runs.
        show_traceback: Whether an error's traceback goes to stderr.
        backend: The library the app runs on (for the hints).
        maybe_factory: Whether the app is a plain function that was not
            called: if it cannot be run, ``--factory`` is suggested.
    """

    requests: list[Request]
    startup_timeout: float
    shutdown_timeout: float
    request_timeout: float
    allow_unsupported: bool
    show_traceback: bool
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


def _headers(request: Request) -> list[tuple[bytes, bytes]]:
    """The request's headers: the defaults, then ``--header`` (which win), then
    the body's length."""
    given = {name.lower() for name, _ in request.headers}
    headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in [("host", "localhost"), ("user-agent", "trio-lifespan")]
        if name not in given
    ]
    headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in request.headers
    ]
    if request.body and "content-length" not in given:
        headers.append((b"content-length", str(len(request.body)).encode()))
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
    #: Bytes the body must contain (``--expect-body``), and whether it does:
    #: looked for as the body comes, keeping only a needle's length of it.
    needle: bytes = b""
    found: bool = False
    _tail: bytes = b""

    def __post_init__(self) -> None:
        self.found = not self.needle  # (an empty text is in every body)

    def add(self, chunk: bytes) -> None:
        if len(self.start) <= BODY_SHOWN:
            self.start += chunk[: BODY_SHOWN + 1 - len(self.start)]
        self.length += len(chunk)
        if self.needle and not self.found:
            seen = self._tail + chunk
            self.found = self.needle in seen
            self._tail = seen[max(0, len(seen) - len(self.needle) + 1) :]

    def header_values(self, name: str) -> list[str]:
        """The values of the response's headers called ``name`` (any case)."""
        return [v for n, v in self.headers if n.lower() == name.lower()]

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
    request: Request,
    check: Check,
    backend: Backend,
    *,
    response: Response,
) -> tuple[int | None, str, BaseException | None]:
    """Send ``request`` through ``app``; what came back goes in ``response``.

    Returns:
        The status (``None`` if none came), any problem, and the exception
        the app raised, if it raised one.
    """
    decoded, raw_path, query = request_target(request.path)
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": "http",
        "path": decoded,
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": _headers(request),
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
            return {"type": "http.request", "body": request.body, "more_body": False}
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

    began = time.perf_counter()
    in_time = await backend.within(check.request_timeout, call)
    # (an app that ignores its cancellation ends late: still too late)
    in_time = in_time and time.perf_counter() - began <= check.request_timeout
    if failures:
        exc = failures[0]
        return (status[0] if status else None), f"{type(exc).__name__}: {exc}", exc
    if not in_time:
        return None, TIMED_OUT, None
    if not status:
        return None, "the app returned without sending a response", None
    return status[0], "", None


def _matches(expected: str, value: str) -> bool:
    """Whether a header's ``value`` is the ``expected`` one: the same, any
    case, or the same before its parameters (``text/plain`` matches
    ``text/plain; charset=utf-8``), unless parameters are expected too."""
    value = value.strip().lower()
    expected = expected.lower()
    return value == expected or value.partition(";")[0].rstrip() == expected


def verdict(request: Request, status: int, response: Response) -> str:
    """What is wrong with ``response`` (status ``status``) for ``request``;
    ``""`` if it is what was expected."""
    wrong: list[str] = []
    if request.expect is None:
        if not 200 <= status < 400:
            wrong.append("expected 2xx or 3xx")
    elif status != request.expect:
        wrong.append(f"expected {request.expect}")
    for name, value in request.expect_headers:
        got = response.header_values(name)
        if value is None and not got:
            wrong.append(f"expected a {name} header; none came")
        elif value is not None and not any(_matches(value, each) for each in got):
            came = "got " + ", ".join(map(repr, got)) if got else "none came"
            wrong.append(f"expected {name}: {value}; {came}")
    if request.expect_body is not None and not response.found:
        wrong.append(f"expected the body to contain {request.expect_body!r}")
    return "; ".join([*wrong, response.summary()]) if wrong else ""


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
    crashed = False  # a request found the lifespan failed under it
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
            for request in check.requests:
                began = time.perf_counter()
                response = Response(needle=(request.expect_body or "").encode())
                status, problem, raised = await _send(
                    wrapped, request, check, backend, response=response
                )
                wrong = wrong_backend(raised, check.backend) if raised else None
                needs = wrong[0] if wrong else None
                crashed = crashed or isinstance(raised, LifespanUnavailable)
                if wrong:
                    problem = report.wrong_backend("requests", wrong[1], 0.0, wrong[0])
                elif not problem and status is not None:
                    problem = verdict(request, status, response)
                ok = not problem
                report.request(
                    request,
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
                        EXIT_WRONG_BACKEND
                        if needs
                        else EXIT_TIMEOUT
                        if problem == TIMED_OUT
                        else EXIT_BAD_STATUS
                    )
            phase = "shutdown"
            start = time.perf_counter()
        report.phase("shutdown", time.perf_counter() - start)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the app's, reported
        status, phase = _classify(exc, phase)
        if crashed and status == EXIT_SHUTDOWN_FAILED:  # it died while running
            status, phase = EXIT_CRASHED, "running"
        wrong = None if status == EXIT_TIMEOUT else wrong_backend(exc, check.backend)
        if wrong:
            status = EXIT_WRONG_BACKEND
            report.wrong_backend(phase, wrong[1], time.perf_counter() - start, wrong[0])
        else:
            report.failure(phase, exc, time.perf_counter() - start)
        report.hint(hint_for(exc, check))
        if check.show_traceback:
            traceback.print_exception(exc, file=sys.stderr)
        return status
    if EXIT_WRONG_BACKEND in failures:  # what to fix first, whatever else failed
        return EXIT_WRONG_BACKEND
    return min(failures, default=EXIT_OK)


_BY_TYPE: tuple[tuple[type[Exception], int], ...] = (
    (LifespanNotASGIApp, EXIT_USAGE),
    (LifespanNotSupported, EXIT_NOT_SUPPORTED),
    (LifespanProtocolError, EXIT_PROTOCOL),
)


def _classify(exc: BaseException, phase: str) -> tuple[int, str]:
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


#: What an app says when it runs on a library other than the one it needs:
#: for each library needed, the texts of its errors on the other one.
_SAYS_IT_NEEDS = {
    # trio's "received unrecognized yield message", asyncio's own message
    # and an asyncio.Event, Lock or Queue made at import, waited on under trio
    "asyncio": (
        "unrecognized yield message",
        "no running event loop",
        "'NoneType' object has no attribute 'create_future'",
    ),
    # trio's, when its functions run on asyncio; asyncio's, for trio's traps
    "trio": (
        "must be called from async context",
        "'RunContext' object has no attribute 'runner'",
        "Task got bad yield: <class 'trio.",
    ),
}


def wrong_backend(exc: BaseException, running: str) -> tuple[str, BaseException] | None:
    """The library ``exc`` says the app needs, if not ``running``, and the
    exception that says it (``exc`` or one in its chain); else ``None``."""
    other = "asyncio" if running == "trio" else "trio"
    # The app's own error first: ours quote it (LifespanNotSupported does).
    for one in sorted(chained(exc), key=lambda one: isinstance(one, LifespanError)):
        if any(text in str(one) for text in _SAYS_IT_NEEDS[other]):
            return other, one
    return None


def needs_other(exc: BaseException, running: str) -> str | None:
    """The library ``exc`` says the app needs, if not ``running``; else ``None``."""
    found = wrong_backend(exc, running)
    return found[0] if found else None


def hint_for(exc: BaseException, check: Check) -> str:
    """What to try when ``exc`` ended the check or a request; ``""`` if nothing."""
    if isinstance(exc, LifespanNotASGIApp) and check.maybe_factory:
        return "if the app is made by calling that function, pass --factory"
    if isinstance(exc, LifespanTimeout):  # (its message speaks the Python API)
        return f"the limit is --{exc.phase}-timeout SECONDS here (none waits for ever)"
    needs = needs_other(exc, check.backend)
    if needs:
        return f"the app seems to need {needs}: try --backend {needs}"
    return ""
