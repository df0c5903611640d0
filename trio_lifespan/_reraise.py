"""Raising an exception we caught earlier, exactly as it was."""

from __future__ import annotations

from typing import NoReturn


def reraise(exc: BaseException) -> NoReturn:
    """Raise ``exc`` again without letting Python rewrite its ``__context__``.

    ``raise`` inside a handler sets the new exception's context to the one
    being handled. Our callers raise from within ``__aexit__``, where Python is
    handling the body's exception, so an app's exception would come out with a
    made-up "during handling of the above exception" chain. The user gets the
    very object the app raised, unchanged.
    """
    __tracebackhide__ = True
    context = exc.__context__
    try:
        raise exc
    finally:
        exc.__context__ = context
        del exc, context
