"""Options shared by every entry point, checked once, and the choice of driver."""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING

import sniffio

from ._errors import LifespanNotASGIApp

if TYPE_CHECKING:  # types only: a Protocol class costs import time
    from collections.abc import Sequence
    from contextlib import AbstractAsyncContextManager
    from typing import Any, NoReturn, Protocol

    from ._state import AppT, LifespanApp
    from ._types import AnyASGIApp

    class Backend(Protocol):
        """What a driver module offers for its async library."""

        def open_one(
            self, app: AppT, options: Options, /
        ) -> AbstractAsyncContextManager[LifespanApp[AppT]]:
            """Run one app's lifespan around a block."""
            ...

        def open_many(
            self, apps: Sequence[AnyASGIApp], options: Options, /
        ) -> AbstractAsyncContextManager[tuple[LifespanApp[Any], ...]]:
            """Run several apps' lifespans around a block."""
            ...

        async def sleep_forever(self) -> NoReturn:
            """Wait until cancelled."""
            ...


SUPPORTED_LIBRARIES = ("trio", "asyncio")


class Options:
    """How one lifespan is run: the keyword options of ``open_lifespan``.

    A plain class rather than a NamedTuple: this module is imported with the
    package, and a NamedTuple costs more to create than the whole rest of it.
    """

    __slots__ = ("allow_unsupported", "shutdown_timeout", "startup_timeout")

    def __init__(
        self, startup_timeout: float, shutdown_timeout: float, allow_unsupported: bool
    ) -> None:
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.allow_unsupported = allow_unsupported


def _seconds(name: str, value: object) -> float:
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        if value >= 0:  # NaN fails this
            try:
                return float(value)
            except OverflowError:  # an int past the largest float
                raise ValueError(
                    f"{name} must be at most {sys.float_info.max!r} seconds or None, "
                    f"not an int of {int(value).bit_length()} bits"
                ) from None
        if isinstance(value, int) and value.bit_length() > _FLOAT_BITS:
            # Past any float, and maybe too long for repr() to print.
            shown = f"a negative int of {value.bit_length()} bits"
        else:
            shown = repr(value)
        raise ValueError(f"{name} must be non-negative or None, not {shown}")
    if value is None:
        return math.inf
    raise TypeError(
        f"{name} must be a number of seconds or None, not {type(value).__name__}"
    )


#: No int with more bits than this fits in a float.
_FLOAT_BITS = sys.float_info.max_exp


def check_options(
    startup_timeout: object, shutdown_timeout: object, allow_unsupported: object
) -> Options:
    """Check the options at the call, so misuse fails where it is written."""
    startup = _seconds("startup_timeout", startup_timeout)
    shutdown = _seconds("shutdown_timeout", shutdown_timeout)
    if type(allow_unsupported) is not bool:  # not bool(): "no" is no True
        raise TypeError(
            "allow_unsupported must be True or False, not "
            f"{type(allow_unsupported).__name__}"
        )
    return Options(startup, shutdown, allow_unsupported)


def check_app(app: object, name: str = "app") -> None:
    """An app must at least be callable; say so where it is passed."""
    if not callable(app):
        raise LifespanNotASGIApp(
            f"{name} must be an ASGI app (an async callable taking scope, receive "
            f"and send), not {type(app).__name__}"
        )


_BACKENDS: dict[str, Backend] = {}  # each driver module, once it is imported


def current_backend(caller: str) -> Backend:
    """The driver for the async library running now."""
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        raise RuntimeError(
            f"{caller}() found no running async library: use it inside an "
            f"async function run by one of: {', '.join(SUPPORTED_LIBRARIES)}"
        ) from None
    backend = _BACKENDS.get(library)
    if backend is None:
        backend = _BACKENDS[library] = _load(caller, library)
    return backend


def _load(caller: str, library: str) -> Backend:
    """Import the driver for ``library``: trio is imported only if used."""
    if library == "trio":
        from . import _trio  # noqa: PLC0415

        return _trio.BACKEND
    if library == "asyncio":
        from . import _asyncio  # noqa: PLC0415

        return _asyncio.BACKEND
    raise RuntimeError(
        f"{caller}() is running under {library!r}, which trio_lifespan does "
        f"not support; supported: {', '.join(SUPPORTED_LIBRARIES)}"
    )
