"""``--backend auto``: the event loop library the app needs, from its code.

The rule (docs/howto/cli.rst says it too): trio when the app's own code uses
trio or a trio-only framework: a name bound to something of ``trio`` or
``quart_trio`` in the module the reference names, in a module of the same
package that importing the app loaded, or in the module of the app's class
(``QuartTrio``). Otherwise asyncio: what uvicorn and hypercorn run by default,
and what anyio-based frameworks (Starlette, FastAPI, Litestar) run on as well
as trio.

That trio was imported at all says nothing: libraries the app uses import it
when it is installed (httpcore does, to offer both), so only the app's own
modules count. Nothing is run to decide: a startup may have effects
(migrations, files), so the app is never started twice to find out.
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
    module = reference.partition(":")[0]
    package = module.partition(".")[0]
    app_class = app if isinstance(app, type) else type(app)
    candidates = [
        module,
        *sorted(m for m in loaded if m.partition(".")[0] == package),
        getattr(app, "__module__", None),
        getattr(app_class, "__module__", None),
    ]
    for name in dict.fromkeys(m for m in candidates if isinstance(m, str)):
        if name.partition(".")[0] in TRIO_PACKAGES or _uses_trio(name):
            return "trio", f"{name} uses trio"
    return "asyncio", "the app does not use trio, and asyncio is uvicorn's default"
