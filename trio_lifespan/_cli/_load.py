"""Loading the app: ``module:attribute``, ``--factory``, ``--app-dir``.

Anything that stops the app from being loaded is a :class:`UsageError`, which
the command line prints as one line (exit status 2).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from .._types import ASGIApp

#: The app checked when the command line names none: shipped in the package.
DEMO_APP = "trio_lifespan._demo:app"


class UsageError(Exception):
    """The command line, or the app it names, cannot be used."""


def load_app(reference: str, *, factory: bool, app_dir: str) -> ASGIApp:
    """Import ``module:attribute`` (dotted attributes allowed), as uvicorn does.

    Args:
        reference: The app as ``module:attribute``.
        factory: Whether the attribute is a function to call for the app.
        app_dir: A folder put first on ``sys.path`` to import the module from.

    Returns:
        The app: something callable, trusted to be an ASGI app.

    Raises:
        UsageError: With one line that says what is wrong; its ``__cause__``
            is the exception that the import or the factory raised, if any.
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
