"""Options shared by every entry point, checked once at the call."""

from __future__ import annotations

import math
import sys

from ._errors import LifespanNotASGIApp


class Options:
    """How one lifespan is run: the keyword options of ``open_lifespan``.

    A plain class rather than a NamedTuple: this module is imported with the
    package, and a NamedTuple costs more to create than the whole rest of it.
    """

    __slots__ = ("allow_unsupported", "shutdown_timeout", "startup_timeout")

    def __init__(
        self, startup_timeout: float, shutdown_timeout: float, allow_unsupported: bool
    ) -> None:
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.allow_unsupported = allow_unsupported


def _seconds(name: str, value: object) -> float:
    if isinstance(value, (float, int)) and not isinstance(value, bool):
        if value >= 0:  # NaN fails this
            try:
                return float(value)
            except OverflowError:  # an int past the largest float
                raise ValueError(
                    f"{name} must be at most {sys.float_info.max!r} seconds or None, "
                    f"not an int of {int(value).bit_length()} bits"
                ) from None
        if isinstance(value, int) and value.bit_length() > _FLOAT_BITS:
            # Past any float, and maybe too long for repr() to print.
            shown = f"a negative int of {value.bit_length()} bits"
        else:
            shown = repr(value)
        raise ValueError(f"{name} must be non-negative or None, not {shown}")
    if value is None:
        return math.inf
    raise TypeError(
        f"{name} must be a number of seconds or None, not {type(value).__name__}"
    )


#: No int with more bits than this fits in a float.
_FLOAT_BITS = sys.float_info.max_exp


def parse_seconds(name: str, text: str) -> float:
    """Read a limit in seconds from text, as a command line gives it.

    Args:
        name: What the limit is called, for the error messages.
        text: A number of seconds, or ``none`` or ``inf`` (any case) for no
            limit.

    Returns:
        The seconds, as :func:`check_options` takes them: ``math.inf`` for no
        limit.

    Raises:
        TypeError: ``text`` is not a number.
        ValueError: The number is negative or NaN.
    """
    if text.lower() in ("none", "inf"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise TypeError(
            f"{name} must be a number of seconds or 'none', not {text!r}"
        ) from None
    if not value >= 0:  # NaN fails this
        raise ValueError(
            f"{name} must be a non-negative number of seconds or 'none', not {text!r}"
        )
    return value


def check_options(
    startup_timeout: object, shutdown_timeout: object, allow_unsupported: object
) -> Options:
    """Check the options at the call, so misuse fails where it is written."""
    startup = _seconds("startup_timeout", startup_timeout)
    shutdown = _seconds("shutdown_timeout", shutdown_timeout)
    return Options(
        startup, shutdown, check_bool("allow_unsupported", allow_unsupported)
    )


def check_bool(name: str, value: object) -> bool:
    """A flag must be a bool: not bool(value), for "no" is no True."""
    if type(value) is not bool:
        raise TypeError(f"{name} must be True or False, not {type(value).__name__}")
    return value


def check_app(app: object, name: str = "app") -> None:
    """An app must at least be callable; say so where it is passed."""
    if not callable(app):
        raise LifespanNotASGIApp(
            f"{name} must be an ASGI app (an async callable taking scope, receive "
            f"and send), not {type(app).__name__}"
        )
