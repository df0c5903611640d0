"""Which driver runs a lifespan: the async library running now, found by sniffio.

Each driver module is imported the first time its library asks for one, so
an asyncio program never imports trio. The drivers import nothing from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sniffio

if TYPE_CHECKING:  # types only: a Protocol class costs import time
    from collections.abc import Awaitable, Callable, Coroutine, Sequence
    from contextlib import AbstractAsyncContextManager
    from typing import Any, NoReturn, Protocol, TypeVar

    T = TypeVar("T")

    from ._options import Options
    from ._state import AppT, LifespanApp
    from ._types import AnyASGIApp

    class Event(Protocol):
        """The event the library offers (``trio.Event``, ``asyncio.Event``)."""

        def set(self) -> None:
            """Wake every task waiting on it."""

        async def wait(self) -> object:
            """Wait until it is set."""

    class Backend(Protocol):
        """What a driver module offers for its async library.

        The first three run lifespans; the rest are the few primitives the
        command line needs to run its check on the library it was asked for.
        """

        @property
        def cancelled(self) -> type[BaseException]:
            """The library's cancellation exception."""
            ...

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

        def run(self, fn: Callable[[], Coroutine[Any, Any, T]], /) -> T:
            """Run ``fn()`` in a new event loop of the library; its result."""
            ...

        def event(self) -> Event:
            """A new event."""
            ...

        async def within(
            self, seconds: float, fn: Callable[[], Awaitable[None]], /
        ) -> bool:
            """Run ``fn()``; whether it finished within ``seconds``."""
            ...


SUPPORTED_LIBRARIES = ("trio", "asyncio")


_BACKENDS: dict[str, Backend] = {}  # each driver module, once it is imported


def backend_named(library: str, caller: str) -> Backend:
    """The driver for ``library``, by name (the command line's ``--backend``)."""
    backend = _BACKENDS.get(library)
    if backend is None:
        backend = _BACKENDS[library] = _load(caller, library)
    return backend


def current_backend(caller: str) -> Backend:
    """The driver for the async library running now."""
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        raise RuntimeError(
            f"{caller}() found no running async library: use it inside an "
            f"async function run by one of: {', '.join(SUPPORTED_LIBRARIES)}"
        ) from None
    backend = _BACKENDS.get(library)  # the common case, without a call
    return backend if backend is not None else backend_named(library, caller)


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
