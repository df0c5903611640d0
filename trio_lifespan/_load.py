"""Loading the app: ``module:attribute``, ``--factory``, ``--app-dir``.

Shared by the command line and the pytest plugin. Anything that stops the app
from being loaded is a :class:`UsageError`, which the command line prints as
one line (exit status 2) and the plugin as a usage error of the session.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from ._types import ASGIApp

#: The app checked when the command line names none: shipped in the package.
DEMO_APP = "trio_lifespan._demo:app"


class UsageError(Exception):
    """The command line, or the app it names, cannot be used."""


def load_app(reference: str, *, factory: bool, app_dir: str) -> ASGIApp:
    """Import ``module:attribute`` (dotted attributes allowed), as uvicorn does.

    Args:
        reference: The app as ``module:attribute``.
        factory: Whether the attribute is a function to call for the app.
        app_dir: A folder put first on ``sys.path`` to import the module from
            (once: a folder already there is left where it is).

    Returns:
        The app: something callable, trusted to be an ASGI app.

    Raises:
        UsageError: With one line that says what is wrong; its ``__cause__``
            is the exception that the import or the factory raised, if any.
    """
    return make_app(
        find_app(reference, factory=factory, app_dir=app_dir),
        reference,
        factory=factory,
    )


def find_app(reference: str, *, factory: bool, app_dir: str) -> object:
    """Import what ``module:attribute`` names (the app, or its factory).

    Raises:
        UsageError: As :func:`load_app`; a factory that is not callable too.
    """
    module_name, colon, attribute = reference.partition(":")
    if not colon or not module_name or not attribute:
        raise UsageError(
            f"app reference {reference!r} must look like 'module:attribute', "
            "for example 'myproject.main:app'"
        )
    folder = Path(app_dir)
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise UsageError(f"--app-dir {app_dir!r}: {problem}")
    path = str(folder.resolve())
    if path not in sys.path:  # each call would add a copy, each then scanned
        sys.path.insert(0, path)
    try:
        obj: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # (a module may call sys.exit())
        raise UsageError(
            f"could not import module {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    what = f"module {module_name!r}"
    done: list[str] = []
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(
                f"{reference!r}: {what} has no attribute {part!r}"
            ) from None
        done.append(part)
        what = f"{module_name + ':' + '.'.join(done)!r} ({_kind(obj)})"
    if factory and not callable(obj):
        raise UsageError(f"{reference!r} is {_kind(obj)}, not a factory to call")
    return obj


def make_app(found: object, reference: str, *, factory: bool) -> ASGIApp:
    """The app from what :func:`find_app` found: called, if it is a factory.

    Raises:
        UsageError: As :func:`load_app`.
    """
    obj: Any = found
    if factory:
        try:
            obj = obj()
        except (Exception, SystemExit) as exc:
            raise UsageError(
                f"calling the factory {reference!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
    if not callable(obj):
        raise UsageError(
            f"{reference!r} is {_kind(obj)}, not an ASGI app (an async "
            "callable taking scope, receive and send)"
        )
    return cast("ASGIApp", obj)  # callable, imported by name: trust it as an app


def _kind(obj: object) -> str:
    """What ``obj`` is, with its article: ``a Settings``, ``an int``, ``a class``."""
    name = "class" if isinstance(obj, type) else type(obj).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def looks_like_factory(obj: object) -> bool:
    """Whether ``obj`` is a plain (not async) function: maybe a factory."""
    return inspect.isfunction(obj) and not inspect.iscoroutinefunction(obj)
