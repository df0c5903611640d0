"""Which driver runs a lifespan: the async library running now, found by sniffio.

Each driver module is imported the first time its library asks for one, so
an asyncio program never imports trio. The drivers import nothing from here.
"""

from __future__ import annotations

import sys
import time
import types
from typing import TYPE_CHECKING

import sniffio

if TYPE_CHECKING:  # types only: a Protocol class costs import time
    from collections.abc import (
        Awaitable,
        Callable,
        Coroutine,
        Generator,
        Iterable,
        Sequence,
    )
    from contextlib import AbstractAsyncContextManager
    from contextvars import Context
    from typing import Any, NoReturn, Protocol, TypeVar

    T = TypeVar("T")

    from types import TracebackType

    from ._group_protocol import StackProtocol
    from ._options import Options
    from ._state import AppT, LifespanApp
    from ._types import AnyASGIApp

    class Event(Protocol):
        """The event the library offers (``trio.Event``, ``asyncio.Event``)."""

        def set(self) -> None:
            """Wake every task waiting on it."""

        async def wait(self) -> object:
            """Wait until it is set."""

        def is_set(self) -> bool:
            """Whether it is set."""
            ...

    class Handoff(Protocol):
        """Messages from a task to one reader, in order, a few held at most."""

        async def put(self, item: Any) -> bool:
            """Hand ``item`` over (waits while it holds as many as it may);
            ``False`` once the reader has left, or after :meth:`end`."""
            ...

        def put_nowait(self, item: Any) -> None:
            """Hand ``item`` over at once (a handoff of no limit, or a reader
            that has left: then it is dropped)."""

        def end(self) -> None:
            """No more items: the reader's next :meth:`take` returns ``None``."""

        def take_nowait(self) -> Any:
            """The next item if it has come, ``None`` once ended, else
            :data:`._types.EMPTY`."""
            ...

        async def take(self, seconds: float) -> Any:
            """The next item, or ``None`` once ended.

            Raises:
                TimeoutError: None came within ``seconds``.
            """
            ...

        def leave(self) -> None:
            """The reader has gone: every :meth:`put` returns ``False``."""

    class Job(Protocol):
        """A task started by :meth:`Backend.spawn`."""

        @property
        def lost(self) -> bool:
            """Whether its event loop closed under it (asyncio: a test's, that
            left it running): it will never run again, nor end."""
            ...

        def cancel(self) -> None:
            """Cancel it (it ends at its next checkpoint)."""

        async def wait(self, seconds: float) -> bool:
            """Wait for it to end; whether it did within ``seconds``."""
            ...

    class HereJob(Job, Protocol):
        """An app's call run in the caller's own task (:meth:`Backend.here`)."""

        @property
        def waited(self) -> bool:
            """Whether the call has waited yet (its timeout is running)."""
            ...

        async def run(
            self,
            coro: Coroutine[Any, Any, None],
            ended: Callable[[BaseException | None], None],
            /,
        ) -> None:
            """Await ``coro`` here, in a context of its own, bounded by the
            timeout; then tell ``ended`` what it raised (``None``: it
            returned), which raises what must go on (a cancellation)."""

        def first_wait(self) -> None:
            """The call waits for the first time: its timeout starts."""

        def pause(self) -> None:
            """The call waits for the client (the request's body): its
            timeout does not run until :meth:`resume`."""

        def resume(self) -> None:
            """The client has answered: the timeout starts again."""

        def heard(self) -> None:
            """A message came from the call, once it has waited: its timeout
            starts again."""

        @property
        def timed_out(self) -> bool:
            """Whether the timeout cut the call short."""
            ...

        @property
        def stopped(self) -> bool:
            """Whether :meth:`cancel` cut the call short."""
            ...

        @property
        def late(self) -> bool:
            """Whether a message came once the timeout had passed."""
            ...

    class Background(Protocol):
        """A task started by :meth:`Backend.start_background`."""

        def cancel(self) -> None:
            """Cancel it."""

    class Holders(Protocol):
        """The moves of a group of lifespans (:class:`._group.LifespanGroup`)
        that differ between the libraries: ``count`` holders, each a task."""

        async def enter(self) -> None:
            """The group is entered: the body runs in this task from now on."""

        def start(
            self,
            index: int,
            hold: Callable[[int, Any], Coroutine[Any, Any, None]],
            app: Any,
            /,
        ) -> None:
            """Start holder ``index``: a task running ``hold(index, app)``
            (which does not raise)."""

        def stop(self, index: int, /) -> None:
            """Cancel holder ``index`` (nothing, once it has returned)."""

        def stop_body(self, error: BaseException, /) -> None:
            """Cancel the body, because of ``error``."""

        def ready(self) -> None:
            """Every app has started, or one failed: the entry goes on."""

        async def wait_ready(self) -> None:
            """Wait until :meth:`ready` (a checkpoint at least)."""

        def body_was_ours(self) -> bool:
            """Whether a cancellation the body raised can only be ours."""
            ...

        def is_ctrl_c(self, exc: BaseException, /) -> bool:
            """Whether ``exc``, which interrupted us, is a Ctrl-C."""
            ...

        def interruption_wins(self) -> bool:
            """Whether what interrupts the wait at the end wins over the
            body's exception (trio: it can only be a Ctrl-C)."""
            ...

        def cut_short(self, interrupted: BaseException, /) -> bool:
            """Whether ``interrupted`` ends the stack's walk of shutdowns."""
            ...

        async def wait_for(self, indices: Iterable[int], /) -> BaseException | None:
            """Wait until these holders have returned, shielded from
            cancellation; what interrupted the wait, if anything."""
            ...

        async def checkpoint(self) -> BaseException | None:
            """Yield once (a group of no apps); what interrupted that."""
            ...

        async def exit(self) -> BaseException | None:
            """Leave what holds the holders (it waits for each); what
            interrupted that."""
            ...

    class Stack(Protocol):
        """The mounted apps' group (:meth:`Backend.open_stack`)."""

        @property
        def stack(self) -> StackProtocol:
            """What decides for it."""
            ...

        async def __aenter__(self) -> tuple[LifespanApp[Any], ...]: ...

        async def __aexit__(
            self,
            exc_type: type[BaseException] | None,
            exc: BaseException | None,
            tb: TracebackType | None,
            /,
        ) -> bool: ...

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

        def holders(self, count: int, /) -> Holders:
            """The moves of a group of ``count`` lifespans, for this library."""
            ...

        def open_stack(
            self, apps: Sequence[AnyASGIApp], options: Options, names: Sequence[str], /
        ) -> Stack:
            """Run mounted apps' lifespans around a block: started together,
            shut down as a stack (``names`` name each app in its errors)."""
            ...

        async def sleep_forever(self) -> NoReturn:
            """Wait until cancelled."""
            ...

        async def checkpoint(self) -> None:
            """Let the other tasks that can run, run (a task just spawned)."""

        async def checkpoint_when_due(self) -> None:
            """For a call that returns without waiting: raise the calling
            task's pending cancellation at once, and let the other tasks run
            when a turn is due (:func:`turn_due`)."""

        def cancel_mark(self) -> object:
            """Where the calling task's cancellations stand now, for
            :meth:`cancelled_since`."""
            ...

        def cancelled_since(self, mark: object, /) -> bool:
            """Whether the calling task is being cancelled: on asyncio (3.11
            and later), a cancellation asked of it since ``mark`` (if made in
            this task) and not withdrawn, which its next wait would not see
            again; on trio never (a wait in a cancelled scope raises at once).
            (Since a mark, not ever: on Python 3.11 and 3.12 a TaskGroup may
            leave one of its own counted.)"""
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

        def now(self) -> float:
            """The library's clock, in seconds (trio's follows a test's
            ``MockClock``)."""
            ...

        def handoff(self, capacity: float = 1, /) -> Handoff:
            """A new handoff that holds up to ``capacity`` items (``math.inf``:
            :meth:`Handoff.put` never waits)."""
            ...

        def spawn(
            self, app: LifespanApp[Any], fn: Callable[[], Awaitable[None]], /
        ) -> Job:
            """Start ``fn()`` in a task of its own, beside the caller: on trio
            in the nursery of ``app``'s lifespan, on asyncio on the running
            loop. ``fn`` must not raise (its errors are its own to hand on)."""
            ...

        def here(self, timeout: float, /) -> HereJob:
            """A job to run a call in the caller's own task, its waits bounded
            by ``timeout`` from the call's last message."""
            ...

        # What the pytest plugin's holder needs: a task that no task of the
        # caller's holds, the loop's identity, and a watched test.

        def start_background(
            self, fn: Callable[[], Awaitable[None]], name: str, /
        ) -> Background:
            """Start ``fn()`` in a task that neither the caller's task nor a
            nursery of its holds (trio: a system task; asyncio: a task of the
            running loop): set up in one task, it may be stopped from
            another. ``fn`` must not raise."""
            ...

        def loop_here(self) -> object | None:
            """What the running event loop is (trio's token, asyncio's loop),
            to compare; ``None`` where this library's loop is not running."""
            ...

        async def wait_shielded(self, wait: Callable[[], Awaitable[object]], /) -> None:
            """Await ``wait()`` (an event's), shielded from cancellation
            (whatever ends it is bounded by time limits of its own)."""

        async def watch(
            self,
            step: Awaitable[T],
            watchers: set[Callable[[], None]],
            failure: Callable[[], BaseException],
            /,
        ) -> T:
            """Await ``step`` in this task, where a call of the function this
            puts in ``watchers`` (while it runs) cancels it: then raise
            ``failure()`` in its place. (A test, watched by a lifespan that
            may fail under it.)"""
            ...


#: What :func:`first_step` returns for a call that ended in its first step.
DONE: Any = object()


def first_step(
    context: Context,
    coro: Coroutine[Any, Any, None],
    ended: Callable[[BaseException | None], None],
) -> Any:
    """Run ``coro``'s first step in this task, in ``context``: what it then
    waits on (its first trap, for :func:`stepped`), or :data:`DONE` if it
    ended in that step (most apps answer at once), told to ``ended``: what it
    raised, ``None`` if it returned. ``ended`` raises what must go on (a
    cancellation). Either library's."""
    try:
        return context.run(coro.send, None)
    except BaseException as exc:  # noqa: BLE001 - ended() judges it
        ended(None if type(exc) is StopIteration else exc)
        return DONE


@types.coroutine
def stepped(
    context: Context,
    coro: Coroutine[Any, Any, None],
    trap: Any,
    ended: Callable[[BaseException | None], None],
    thrown: Callable[[BaseException], None] | None = None,
) -> Generator[Any, Any, None]:
    """Await the rest of ``coro`` in this task, from the ``trap`` its first
    step yielded (its first wait), each of its steps run in ``context`` (what
    it sets stays its own, as in a task of its own); then tell ``ended`` how
    it ended, as :func:`first_step` does. What it yields goes to the event
    loop as this task's, and what the loop sends or throws back goes to it
    (what it throws shown first to ``thrown``, if given). Either library's."""
    run = context.run
    while True:
        step: Callable[[Any], Any]
        try:
            value = yield trap
        except BaseException as exc:  # noqa: BLE001 - the coroutine's to handle
            step, value = coro.throw, exc
            if thrown is not None:  # pragma: no branch - trio never throws (it sends)
                thrown(exc)
        else:
            step = coro.send
        try:
            trap = run(step, value)
        except BaseException as exc:  # noqa: BLE001 - ended() judges it
            ended(None if type(exc) is StopIteration else exc)
            return


#: When a call made in its caller's task last let the event loop run
#: (``time.perf_counter()``): one clock for the thread's calls, both libraries'.
_last_turn = 0.0


def turn_due(asked: bool = False) -> bool:
    """Whether a call that never waited lets the event loop run now (then
    it is noted): when ``asked``, or once every two of Python's thread switch
    intervals (10 ms; a poll loop lets the task it waits for run, a deadline
    around a loop of requests fires). A turn for every request would cost
    one of about 130 µs some 6 µs on trio, 4 on asyncio; and turns more often
    than the switch interval starve other threads of the GIL (each short
    release restarts a waiting thread's wait for it): a job in a worker
    thread took seconds to finish beside a loop of requests with a turn
    every millisecond."""
    global _last_turn  # noqa: PLW0603 - one clock for the thread's calls
    now = time.perf_counter()
    if asked or now - _last_turn >= 2 * sys.getswitchinterval():
        _last_turn = now
        return True
    return False


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
