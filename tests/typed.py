"""pytest's helpers that pytest 9.2 leaves partially typed, typed once here."""

from __future__ import annotations

from typing import Any

import pytest


def approx(
    expected: float, *, rel: float | None = None, abs: float | None = None
) -> Any:
    """``pytest.approx`` (its result compares equal to numbers near ``expected``)."""
    return pytest.approx(expected, rel=rel, abs=abs)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]


def makepyfile(pytester: pytest.Pytester, **files: str) -> None:
    """``pytester.makepyfile``: each keyword a module name, its value the code."""
    pytester.makepyfile(**files)  # pyright: ignore[reportUnknownMemberType]
