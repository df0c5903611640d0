"""Composing exceptions: unwrapping, merging, and raising the one that leaves.

Pure functions on exception objects, shared by the protocol and both
drivers. Nothing here knows about lifespans; :mod:`._protocol` decides which
exception matters and uses these to say it.
"""

from __future__ import annotations

from typing import NoReturn

from ._compat import BaseExceptionGroup, add_note


def members(group: BaseExceptionGroup[BaseException]) -> tuple[BaseException, ...]:
    """A group's exceptions."""
    return group.exceptions


def chained(exc: BaseException) -> list[BaseException]:
    """``exc``, the members of every group in it, and every exception they
    chain to (cause, context), each once (by identity: exceptions may compare
    equal), depth first from ``exc``."""
    seen: dict[int, BaseException] = {}
    todo = [exc]
    while todo:
        one = todo.pop()
        if id(one) in seen:
            continue
        seen[id(one)] = one
        if isinstance(one, BaseExceptionGroup):
            todo += members(one)  # pyright: ignore[reportUnknownArgumentType]
        todo += [e for e in (one.__cause__, one.__context__) if e is not None]
    return list(seen.values())


def unwrap_single(exc: BaseException | None) -> BaseException | None:
    """The one exception inside a group of one (at any depth), or ``exc``.

    An app whose task group or nursery saw one failure raises a group of one;
    the user gets the exception that matters, the very object the app raised.
    """
    while isinstance(exc, BaseExceptionGroup):
        inside = members(exc)  # pyright: ignore[reportUnknownArgumentType]
        if len(inside) != 1:
            break
        exc = inside[0]
    return exc  # pyright: ignore[reportUnknownVariableType]


def only_cancellations(
    exc: BaseException | None,
    kinds: type[BaseException] | tuple[type[BaseException], ...],
) -> bool:
    """Whether ``exc`` is one of ``kinds``, or a group made only of them.

    A body with a nursery or task group open turns one cancellation into a
    group of them: it is still just the cancellation.
    """
    if isinstance(exc, BaseExceptionGroup):
        inside = members(exc)  # pyright: ignore[reportUnknownArgumentType]
        return all(only_cancellations(member, kinds) for member in inside)
    return isinstance(exc, kinds)


def interruption(exc: BaseException, raised: BaseException | None) -> BaseException:
    """What to raise when ``exc`` interrupted a wait, after ``raised``.

    A ``KeyboardInterrupt`` that reaches a trio nursery while it waits comes
    out of it in a group of one: the one is what matters. It wins over
    ``raised`` (what the body raised: Ctrl-C must stop the program), which
    becomes its ``__context__`` rather than being lost.
    """
    one = unwrap_single(exc)
    assert one is not None
    if raised is not None and one.__context__ is None:
        one.__context__ = raised
    return one


#: How :func:`name_the_app` begins its note.
_FROM = "trio_lifespan: from "


def describe(error: BaseException) -> str:
    """``Type: message``, and which app it came from if it says (see
    :func:`name_the_app`); for a group, each of its members too."""
    text = f"{type(error).__name__}: {error}"
    origins = [
        note.removeprefix(_FROM)
        for note in getattr(error, "__notes__", ())
        if isinstance(note, str) and note.startswith(_FROM)
    ]
    if origins:
        text += " (from " + ", from ".join(origins) + ")"
    if isinstance(error, BaseExceptionGroup):
        inside = members(error)  # pyright: ignore[reportUnknownArgumentType]
        text += " (" + "; ".join(map(describe, inside)) + ")"
    return text


def combine(
    raised: BaseException | None,
    error: BaseException | None,
    *,
    raised_gives_way: bool,
    what: str = "the app's lifespan failed too",
) -> BaseException | None:
    """The one exception that leaves, of what was raised and the lifespan's error.

    Args:
        raised: What the ``async with`` body raised, or what interrupted the
            driver (a cancellation or ``KeyboardInterrupt``).
        error: The lifespan's own error.
        raised_gives_way: ``raised`` yields to ``error``: it is the event
            loop's cancellation (delivered again at the next checkpoint, while
            the error would be lost), or a consequence of ``error``.
        what: What the note on ``raised`` says happened (then ``error``).

    Returns:
        The exception to raise, or ``None``. The body's exception wins and
        carries the lifespan error as a note, unless that error is a
        ``KeyboardInterrupt`` or ``SystemExit``, which win.
    """
    if raised is None or error is None:
        return raised if error is None else error
    if raised_gives_way:
        return error
    if isinstance(error, (KeyboardInterrupt, SystemExit)):
        # Ctrl-C (or an exit) from the app wins, as a Ctrl-C anywhere else
        # does; the body's exception is its context.
        return interruption(error, raised)
    add_note(raised, f"trio_lifespan: {what}, after this exception: {describe(error)}")
    return raised


def combine_many(
    raised: BaseException | None,
    errors: list[BaseException],
    *,
    raised_gives_way: bool,
) -> BaseException | None:
    """Like :func:`combine`, for several lifespans' errors.

    One error stands for itself; several independent ones become one group,
    in the order they happened.
    """
    if len(errors) > 1:
        return combine(
            raised,
            BaseExceptionGroup(f"{len(errors)} lifespans failed", errors),
            raised_gives_way=raised_gives_way,
        )
    return combine(
        raised, errors[0] if errors else None, raised_gives_way=raised_gives_way
    )


def reraise(exc: BaseException) -> NoReturn:
    """Raise ``exc`` again, exactly as it was.

    ``raise`` inside a handler sets the new exception's context to the one
    being handled. Our callers raise from within ``__aexit__``, where Python is
    handling the body's exception, so an app's exception would come out with a
    made-up "during handling of the above exception" chain: the context is put
    back. The frame's references go too (no cycle through the traceback), as
    ``outcome.Error.unwrap`` does; outcome itself is not imported here, so that
    asyncio users load neither it nor attrs.
    """
    __tracebackhide__ = True
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context


def name_the_app(error: BaseException, name: str) -> None:
    """Note which of several apps ``error`` came from (``apps[1] (Starlette)``),
    unless it is a cancellation, a Ctrl-C or an exit, which no app raised."""
    if isinstance(error, Exception):
        add_note(error, _FROM + name)
