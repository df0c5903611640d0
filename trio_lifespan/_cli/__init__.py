"""``trio-lifespan check``: start an app, ask it a few things, shut it down.

A deployment smoke check that needs no server: the app's lifespan is run with
:func:`trio_lifespan.open_lifespan`, requests go through the wrapped app as
plain ASGI calls, and the exit status says what went wrong, if anything.

This module is the command line itself: the argument parser, :func:`main` and
the console script. The rooms behind it: :mod:`._load` loads the app,
:mod:`._check` runs the check and turns failures into exit statuses, and
:mod:`._report` prints what the check saw.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import TYPE_CHECKING, TextIO

from .._options import parse_seconds
from ._check import EXIT_STATUSES, EXIT_USAGE, Check, check_on
from ._load import DEMO_APP, UsageError, load_app
from ._report import Report

if TYPE_CHECKING:
    from collections.abc import Sequence


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
            type=_seconds,
            default=5.0,
            metavar="SECONDS",
            help=f"how long the {phase} may take, or 'none' (default: 5)",
        )
    check.add_argument(
        "--request-timeout",
        type=_seconds,
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
        request_timeout=args.request_timeout,
        allow_unsupported=args.allow_unsupported,
        show_traceback=args.traceback,
    )
    status = check_on(args.backend, app, check, report)
    report.finish(status)
    return status


def console_script() -> None:
    """The ``trio-lifespan`` command."""
    sys.exit(main())
