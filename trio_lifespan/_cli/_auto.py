"""``--backend auto``: the event loop library the app needs, from its import.

The rule, in the order it is applied (docs/howto/cli.rst says it too):

1. The app's import loaded trio (``trio`` was not imported before and is
   after): trio.
2. The module the reference names, or the module the app's class or function
   comes from, uses trio or a trio-only framework (a name in it is bound to
   something of ``trio`` or ``quart_trio``): trio.
3. Otherwise asyncio: what uvicorn and hypercorn run by default, and what
   anyio-based frameworks (Starlette, FastAPI, Litestar) run on as well as trio.

Nothing is run to decide: a startup may have effects (migrations, files), so
the app is never started twice to find out.
"""

from __future__ import annotations

import sys
from types import ModuleType

#: Packages whose use makes an app trio's.
TRIO_PACKAGES = ("trio", "quart_trio")


def _package(obj: object) -> str:
    """The top-level package ``obj`` belongs to (a module's own, or where
    an object was defined), or ``""``."""
    name = obj.__name__ if isinstance(obj, ModuleType) else None
    if name is None:
        name = getattr(obj, "__module__", None)
    return name.partition(".")[0] if isinstance(name, str) else ""


def _uses_trio(module_name: str) -> bool:
    """Whether the module ``module_name`` binds a name to something of trio's."""
    module = sys.modules.get(module_name)
    if module is None:
        return False
    return any(_package(value) in TRIO_PACKAGES for value in vars(module).values())


def choose(reference: str, app: object, loaded: set[str]) -> tuple[str, str]:
    """The library to run ``app`` on, and why, in words for the report.

    Args:
        reference: The app's reference, ``module:attribute``.
        app: The app, loaded.
        loaded: The modules its import (and its factory) loaded.

    Returns:
        ``("trio" or "asyncio", reason)``.
    """
    if "trio" in loaded:
        return "trio", "importing the app loaded trio"
    app_class = app if isinstance(app, type) else type(app)
    modules = [
        reference.partition(":")[0],
        getattr(app, "__module__", None),
        getattr(app_class, "__module__", None),
    ]
    for name in dict.fromkeys(m for m in modules if isinstance(m, str)):
        if name.partition(".")[0] in TRIO_PACKAGES or _uses_trio(name):
            return "trio", f"{name} uses trio"
    return "asyncio", "the app does not use trio, and asyncio is uvicorn's default"
