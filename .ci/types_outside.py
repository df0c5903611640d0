# pyright: strict
"""A program outside the repository, type-checked against the installed package.

.ci/run copies it to an empty temporary folder and runs mypy --strict and
pyright on it there, so the type checkers find trio_lifespan through the
install (the editable one, in compat mode), not through the working folder.
It is only checked, never run.
"""

from __future__ import annotations

from trio_lifespan import LifespanError, LifespanTimeout, open_lifespan


async def app(scope: dict[str, object], receive: object, send: object) -> None:
    """An ASGI app, as far as the types go."""


async def main() -> None:
    async with open_lifespan(app, startup_timeout=1.0) as running:
        assert running.app is app
    assert issubclass(LifespanTimeout, LifespanError)


def wrong() -> None:
    # Were trio_lifespan untyped (found as Any), this ignore would be unused,
    # and mypy --strict (warn_unused_ignores) would fail on it.
    open_lifespan(app, startup_timeout="soon")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
