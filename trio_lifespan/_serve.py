"""``serve_lifespan``: a lifespan as a task, for ``nursery.start``."""

from __future__ import annotations

from typing import Any, NoReturn, Protocol, TypeVar

from ._backend import current_backend
from ._open import open_lifespan
from ._state import AppT, LifespanApp

T_contra = TypeVar("T_contra", contravariant=True)


class TaskStatus(Protocol[T_contra]):
    """What ``nursery.start`` (trio) or ``TaskGroup.start`` (anyio) passes in."""

    def started(self, value: T_contra, /) -> None:
        """Report that the task is ready, with the value ``start`` returns."""
        ...


class _TaskStatusIgnored:
    """The default ``task_status``: nobody is waiting for the report."""

    def started(self, value: object = None, /) -> None:
        """Do nothing."""

    def __repr__(self) -> str:
        return "trio_lifespan.TASK_STATUS_IGNORED"


#: The default ``task_status`` of :func:`serve_lifespan`, as
#: ``trio.TASK_STATUS_IGNORED`` is trio's. Ours does not need trio imported.
TASK_STATUS_IGNORED: TaskStatus[Any] = _TaskStatusIgnored()


async def serve_lifespan(
    app: AppT,
    *,
    task_status: TaskStatus[LifespanApp[AppT]] = TASK_STATUS_IGNORED,
    startup_timeout: float | None = 5.0,
    shutdown_timeout: float | None = 5.0,
    allow_unsupported: bool = False,
) -> NoReturn:
    """Keep an ASGI app's lifespan up as a task, until the task is cancelled.

    Meant for ``nursery.start`` (or anyio's ``TaskGroup.start``)::

        async with trio.open_nursery() as nursery:
            app = await nursery.start(serve_lifespan, app)
            ...  # the app has started; requests through `app` see its state
            nursery.cancel_scope.cancel()  # the app shuts down gracefully

    Once the app's startup completes, the wrapped app (a :class:`LifespanApp`)
    is reported through ``task_status.started()``. The lifespan then stays up
    until the task's scope is cancelled; the graceful shutdown runs shielded
    from that cancellation and bounded by ``shutdown_timeout``.

    Args:
        app: The ASGI app.
        task_status: Filled in by ``nursery.start``.
        startup_timeout: As for :func:`open_lifespan`.
        shutdown_timeout: As for :func:`open_lifespan`.
        allow_unsupported: As for :func:`open_lifespan`.

    Raises:
        Everything :func:`open_lifespan` raises. A startup failure comes out
        of ``nursery.start`` as it is, and the task never reports started.
    """
    async with open_lifespan(
        app,
        startup_timeout=startup_timeout,
        shutdown_timeout=shutdown_timeout,
        allow_unsupported=allow_unsupported,
    ) as wrapped:
        task_status.started(wrapped)
        await current_backend("serve_lifespan").sleep_forever()
