"""pytest's helpers that pytest 9.2 leaves partially typed, typed once here."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, TypeVar, cast

import pytest

T = TypeVar("T")


def approx(
    expected: float, *, rel: float | None = None, abs: float | None = None
) -> Any:
    """``pytest.approx`` (its result compares equal to numbers near ``expected``)."""
    return pytest.approx(expected, rel=rel, abs=abs)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]


def makepyfile(pytester: pytest.Pytester, **files: str) -> None:
    """``pytester.makepyfile``: each keyword a module name, its value the code."""
    pytester.makepyfile(**files)  # pyright: ignore[reportUnknownMemberType]


def closing(iterator: AsyncIterator[T]) -> aclosing[AsyncGenerator[T]]:
    """``contextlib.aclosing`` for httpx's ``aiter_*`` (async generators that
    httpx types as iterators)."""
    return aclosing(cast("AsyncGenerator[T]", iterator))
