"""Differences between the Python versions we support, in one place."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])

if sys.version_info < (3, 11):  # pragma: no cover - py310 tox environment
    from exceptiongroup import BaseExceptionGroup as BaseExceptionGroup
else:
    from builtins import BaseExceptionGroup as BaseExceptionGroup

if sys.version_info >= (3, 11):

    def add_note(exc: BaseException, note: str) -> None:
        """Attach ``note`` to ``exc`` (shown under its traceback)."""
        exc.add_note(note)

else:  # pragma: no cover - exercised by the py310 tox environment

    def add_note(exc: BaseException, note: str) -> None:
        """Attach ``note`` to ``exc`` (the exceptiongroup backport shows it)."""
        notes: list[str] | None = getattr(exc, "__notes__", None)
        if notes is None:
            notes = []
            exc.__notes__ = notes  # type: ignore[attr-defined]
        notes.append(note)


_KI_PROTECTED: list[Callable[..., object]] = []


def ki_protected(function: F) -> F:
    """Mark ``function`` as trio marks its own primitives: KeyboardInterrupt-safe.

    Under trio a Ctrl-C is raised wherever the main task's code happens to be,
    unless that code is KI-protected: then it waits for the next checkpoint.
    Code that enters or leaves a nursery by hand, or hands over a task, must
    not be cut in half. trio is imported only by the trio driver, so a
    function marked before that is remembered, and the driver marks it when
    it loads (:func:`mark_ki_protected`); after, it is marked at once.
    """
    trio = sys.modules.get("trio")
    if trio is None:
        _KI_PROTECTED.append(function)
    else:
        trio.lowlevel.enable_ki_protection(function)
    return function


def mark_ki_protected() -> None:
    """Mark every function :func:`ki_protected` remembered (trio is loaded)."""
    import trio  # noqa: PLC0415 - only the trio driver calls this

    while _KI_PROTECTED:
        trio.lowlevel.enable_ki_protection(_KI_PROTECTED.pop())
