"""Differences between the Python versions we support, in one place."""

from __future__ import annotations

import sys

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
