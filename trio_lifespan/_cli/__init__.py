"""``trio-lifespan check``: start an app, ask it a few things, shut it down.

A deployment smoke check that needs no server: the app's lifespan is run with
:func:`trio_lifespan.open_lifespan`, requests go through the wrapped app as
plain ASGI calls, and the exit status says what went wrong, if anything.

This module is the command line itself: the argument parser, :func:`main` and
the console script. The rooms behind it: :mod:`trio_lifespan._load` loads the app,
:mod:`._check` runs the check and turns failures into exit statuses, and
:mod:`._report` prints what the check saw.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, TextIO
from urllib.parse import urlsplit

from .._load import DEMO_APP, UsageError, load_app, looks_like_factory
from .._options import parse_seconds
from .._version import __version__
from ._auto import choose
from ._check import Check, Request, check_on
from ._exits import EXIT_INTERRUPTED, EXIT_STATUSES, EXIT_USAGE
from ._report import Report

if TYPE_CHECKING:
    from collections.abc import Generator, Sequence


def _seconds(text: str) -> float:
    """A limit in seconds, or ``math.inf`` for ``none``/``inf``; else a usage error."""
    try:
        return parse_seconds("SECONDS", text)
    except TypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds (or 'none')"
        ) from None
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be zero or more seconds"
        ) from None


def _status(text: str) -> int:
    """An HTTP status, 100 to 599; else a usage error."""
    if not text.isdigit() or not 100 <= int(text) <= 599:
        raise argparse.ArgumentTypeError(f"{text!r} is not an HTTP status (100-599)")
    return int(text)


class _ParserError(Exception):
    """A usage error found by ``parser``: ``main`` says it, as text or JSON."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors ``main`` reports (and can put in JSON)."""

    def error(self, message: str) -> NoReturn:
        raise _ParserError(self, message)


def _header(text: str) -> tuple[str, str]:
    """``NAME:VALUE`` as a pair; else a usage error."""
    name, colon, value = text.partition(":")
    if not colon or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a header: give NAME:VALUE, as in "
            "--header 'content-type: application/json'"
        )
    try:
        value.encode("latin-1")
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        raise argparse.ArgumentTypeError(
            f"{text!r}: a header's value is sent as Latin-1 bytes, and {bad!r} "
            "is not Latin-1: percent-encode it, or leave it out"
        ) from None
    return name, value.strip()


def _data(text: str) -> bytes:
    """The body, as UTF-8; else a usage error (bytes the shell passed that
    are not UTF-8 text come here as surrogates)."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(
            "is not UTF-8 text: give the body as text (bytes that are not "
            "UTF-8 cannot be passed this way)"
        ) from None


class _Once(argparse.Action):
    """An option that takes one value: given twice, a usage error (argparse
    would keep the last, silently)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        seen: set[str] = namespace.__dict__.setdefault("_given_once", set())
        if self.dest in seen:
            raise argparse.ArgumentError(self, "given twice: give it once")
        seen.add(self.dest)
        setattr(namespace, self.dest, values)


def _expected_header(text: str) -> tuple[str, str | None]:
    """``NAME:VALUE`` (that value) or ``NAME`` / ``NAME:`` (any value); else a
    usage error."""
    name, _, value = text.partition(":")
    if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a header to expect: give NAME (any value) or "
            "NAME:VALUE, as in --expect-header 'content-type: application/json'"
        )
    return name.lower(), (_text(value).strip() or None)


def _text(text: str) -> str:
    """``text`` if it is UTF-8 (the shell's bytes that are not come here as
    surrogates); else a usage error."""
    try:
        text.encode()
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not UTF-8 text: give it as text"
        ) from None
    return text


def _problem(option: str, method: str, path: str) -> str | None:
    """What is wrong with the request ``method path``, or ``None``."""
    if not re.fullmatch(r"[A-Za-z]+", method):
        return f"argument {option}: {method!r} is not an HTTP method (GET, POST...)"
    if path.startswith("/"):
        return None
    shown = "--get" if option == "--get" else f"--request {method.upper()}"
    if "://" in path:
        url = urlsplit(path)
        fixed = (url.path or "/") + (f"?{url.query}" if url.query else "")
        return f"argument {option}: {path!r} is a URL: give its path, {shown} {fixed}"
    return f"argument {option}: {path!r} must start with /, as in {shown} /{path}"


@dataclass
class _Scope:
    """The request options given before any request (``request`` is
    ``None``: they apply to every request) or after one (they are its own)."""

    request: tuple[str, str, str] | None = None  # option, METHOD, PATH
    given: set[str] = field(default_factory=set[str])
    values: dict[str, Any] = field(default_factory=dict[str, Any])

    def named(self) -> str:
        if self.request is None:
            return "before any request"
        option, method, path = self.request
        return f"for {'--get' if option == '--get' else option + ' ' + method} {path}"


def _scopes(namespace: argparse.Namespace) -> list[_Scope]:
    scopes: list[_Scope] = namespace.__dict__.setdefault("_scopes", [_Scope()])
    return scopes


class _NewRequest(argparse.Action):
    """``--get PATH``, ``--request METHOD PATH`` or ``--request 'METHOD PATH'``:
    a request, to which the request options after it belong."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        option = option_string or "--request"
        if option == "--get":
            method, path = "GET", str(values)
        else:
            words: list[str] = list(values)
            first = words[0].split()
            if len(first) == 2:  # --request 'POST /items'
                (method, path), rest = first, words[1:]
            elif len(first) == 1 and len(words) >= 2:
                (method, path), rest = words[:2], words[2:]
            else:
                raise argparse.ArgumentError(
                    self,
                    f"{words[0]!r}: give one METHOD and one PATH, as in --request "
                    "POST /items or --request 'POST /items'",
                )
            # (the app's reference may follow: nargs="+" took it too)
            namespace.__dict__.setdefault("_stray", []).extend(rest)
        try:
            _text(path)
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        problem = _problem(option, method, path)
        if problem:
            raise argparse.ArgumentError(None, problem)
        _scopes(namespace).append(_Scope((option, method.upper(), path)))


class _ForRequest(argparse.Action):
    """A request option: for every request when given before the first one,
    else for the request it follows. Given twice for the same one: a usage
    error, unless it is one that adds (``--header``, ``--expect-header``)."""

    adds = False

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        scope = _scopes(namespace)[-1]
        if self.adds:
            scope.values.setdefault(self.dest, []).append(values)
            return
        if self.dest in scope.given:
            raise argparse.ArgumentError(
                self, f"given twice {scope.named()}: give it once"
            )
        scope.given.add(self.dest)
        scope.values[self.dest] = values


class _AddsForRequest(_ForRequest):
    adds = True


def _requests(scopes: list[_Scope]) -> list[Request]:
    """The requests, each with its own options over the ones for every request."""
    every = scopes[0].values
    made: list[Request] = []
    for scope in scopes[1:]:
        assert scope.request is not None  # (only the first has none)
        _, method, path = scope.request
        own = scope.values

        def pairs(name: str, own: dict[str, Any] = own) -> list[Any]:
            mine: list[tuple[str, Any]] = own.get(name, [])
            names = {n.lower() for n, _ in mine}
            kept = [p for p in every.get(name, []) if p[0].lower() not in names]
            return kept + mine

        made.append(
            Request(
                method,
                path,
                expect=own.get("expect", every.get("expect")),
                headers=pairs("header"),
                body=own.get("data", every.get("data", b"")),
                expect_headers=pairs("expect_header"),
                expect_body=own.get("expect_body", every.get("expect_body")),
            )
        )
    return made


def build_parser() -> argparse.ArgumentParser:
    """The ``trio-lifespan`` argument parser."""
    parser = _Parser(
        prog="trio-lifespan",
        description="Run an ASGI app's lifespan without a server.",
        allow_abbrev=False,  # (--js is not --json: main looks for --json itself)
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check",
        allow_abbrev=False,
        help="start the app, send it requests, shut it down, and say how it went",
        description=(
            "Start an ASGI app (its lifespan startup), send it requests as "
            "plain ASGI calls, then shut it down, printing each step with its "
            "duration. No server is started."
        ),
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.set_defaults(command_parser=check)  # for errors found after parsing
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
        action=_Once,
        help="a folder to import the app from, put first on sys.path (default: .)",
    )
    requests = check.add_argument_group(
        "requests",
        "Sent in order once the app has started. The request options below "
        "apply to every request when given before the first one, and to one "
        "request when given after it (until the next --get or --request).",
    )
    requests.add_argument(
        "--get",
        action=_NewRequest,
        metavar="PATH",
        help="send GET PATH (repeatable)",
    )
    requests.add_argument(
        "--request",
        action=_NewRequest,
        nargs="+",
        metavar="'METHOD PATH'",
        help="send METHOD PATH: --request POST /items or --request 'POST /items'",
    )
    requests.add_argument(
        "--header",
        action=_AddsForRequest,
        type=_header,
        metavar="NAME:VALUE",
        help="a header to send (repeatable)",
    )
    requests.add_argument(
        "--data",
        action=_ForRequest,
        type=_data,
        metavar="TEXT",
        help="the body to send, as UTF-8",
    )
    requests.add_argument(
        "--expect",
        type=_status,
        action=_ForRequest,
        metavar="STATUS",
        help="the status the response must have (default: any 2xx or 3xx)",
    )
    requests.add_argument(
        "--expect-header",
        type=_expected_header,
        action=_AddsForRequest,
        metavar="NAME[:VALUE]",
        help="a header the response must have, with that value if given (repeatable)",
    )
    requests.add_argument(
        "--expect-body",
        action=_ForRequest,
        type=_text,
        metavar="TEXT",
        help="text the response's body must contain",
    )
    check.add_argument(
        "--backend",
        choices=("auto", "trio", "asyncio"),
        action=_Once,
        default="auto",
        help=(
            "the event loop library to run the app on (default: auto: trio if "
            "the app uses trio, else asyncio)"
        ),
    )
    for phase in ("startup", "shutdown"):
        check.add_argument(
            f"--{phase}-timeout",
            type=_seconds,
            action=_Once,
            default=5.0,
            metavar="SECONDS",
            help=f"how long the {phase} may take, or 'none' (default: 5)",
        )
    check.add_argument(
        "--request-timeout",
        type=_seconds,
        action=_Once,
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
    """Run the command line.

    Args:
        argv: The arguments, without the program's name (default:
            ``sys.argv[1:]``).
        out: Where the report goes (default: ``sys.stdout``); errors about
            the command line itself go to ``sys.stderr``.

    Returns:
        The exit status.
    """
    stream = sys.stdout if out is None else out
    argv = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in argv  # before parsing: its errors are JSON too
    report = Report("", "", as_json, stream)
    with _app_output(report):
        try:
            return _run(argv, report)
        except _ParserError as exc:
            exc.parser.print_usage(sys.stderr)
            hint = f"'{exc.parser.prog} --help' lists the options"
            return _usage_error(report, str(exc), hint, exc.parser.prog)
        except UsageError as exc:
            return _usage_error(report, str(exc), _usage_hint(exc))
        except KeyboardInterrupt:
            print("trio-lifespan: interrupted (Ctrl-C)", file=sys.stderr)
            if as_json:
                report.interrupted()
                report.finish(EXIT_INTERRUPTED)
            return EXIT_INTERRUPTED


@contextlib.contextmanager
def _app_output(report: Report) -> Generator[None]:
    """With ``--json``, whatever the app writes goes to stderr: stdout is for
    the one document. Where stdout is the process's own (file descriptor 1),
    that descriptor is pointed at stderr for the check, so that what a
    subprocess of the app writes (a migration tool) goes there too, and the
    document is written to a copy of the real one."""
    if not report.as_json:
        yield
        return
    real = _real_stdout() if report.out is sys.stdout else None
    if real is not None:
        sys.stdout.flush()
        os.dup2(2, 1)
        report.out = open(real, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if real is not None:
            report.out.close()
            os.dup2(real, 1)
            os.close(real)


def _real_stdout() -> int | None:
    """A copy of file descriptor 1, if ``sys.stdout`` writes there; else ``None``."""
    try:
        if sys.stdout.fileno() != 1:
            return None
    except (AttributeError, OSError, ValueError):  # (a stream of no descriptor)
        return None
    return os.dup(1)


def _usage_hint(exc: UsageError) -> str:
    """What to try for a usage error found while loading the app."""
    message = str(exc)
    if message.startswith("--app-dir"):
        return "give --app-dir a folder that exists (the default is the current one)"
    if message.startswith("calling the factory") and "positional argument" in message:
        return (
            "if the reference names the app itself, not a function that makes "
            "it, leave out --factory"
        )
    if exc.__cause__ is not None:
        return "--traceback shows where it failed"
    return (
        "name the app as uvicorn does, module:attribute, with --app-dir DIR for "
        "the folder to import it from (and --factory for a function that makes it)"
    )


def _usage_error(
    report: Report, message: str, hint: str, prog: str = "trio-lifespan"
) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    if report.as_json:
        report.usage_error(message, hint)
        report.finish(EXIT_USAGE)
    return EXIT_USAGE


def _run(argv: list[str], report: Report) -> int:
    """Parse ``argv``, load the app and check it; usage errors raise."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    check_parser: argparse.ArgumentParser = args.command_parser
    if extra:  # the command's usage, not the program's
        check_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    stray: list[str] = vars(args).get("_stray", [])
    if stray and args.app is None:
        args.app = stray.pop(0)  # (after --request METHOD PATH, nargs="+" took it)
    if stray:
        check_parser.error(f"unrecognized arguments: {' '.join(stray)}")
    reference = args.app or DEMO_APP
    report.app = reference
    scopes = _scopes(args)
    requests = _requests(scopes)
    if not requests and not args.app:  # the demo's pages
        pages = [_Scope(("--get", "GET", page)) for page in ("/", "/health")]
        requests = _requests([scopes[0], *pages])
    if not requests:
        for dest in scopes[0].values:
            check_parser.error(
                f"--{dest.replace('_', '-')} applies to the requests, and none is "
                "sent: add --get PATH or --request METHOD PATH"
            )
    before = set(sys.modules)
    try:
        app = load_app(reference, factory=args.factory, app_dir=args.app_dir)
    except UsageError as exc:
        if args.traceback and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        raise
    backend, why = args.backend, ""
    if backend == "auto":
        backend, why = choose(reference, app, set(sys.modules) - before)
    report.backend, report.backend_reason = backend, why
    chosen = f" (auto: {why})" if why else ""
    report.say(f"checking {reference} on {backend}{chosen}")
    check = Check(
        requests=requests,
        startup_timeout=args.startup_timeout,
        shutdown_timeout=args.shutdown_timeout,
        request_timeout=args.request_timeout,
        allow_unsupported=args.allow_unsupported,
        show_traceback=args.traceback,
        backend=backend,
        maybe_factory=not args.factory and looks_like_factory(app),
    )
    status = check_on(backend, app, check, report)
    report.finish(status)
    return status


def console_script() -> None:
    """The ``trio-lifespan`` command."""
    sys.exit(main())
