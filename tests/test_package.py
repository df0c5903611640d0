"""The package itself: its public names, their docs, its errors, and no loop.

Tests of what the package promises whatever library runs it; each driver's
own behaviour is in ``test_trio.py`` and ``test_asyncio.py``.
"""

from __future__ import annotations

import pickle

import pytest

import trio_lifespan
from trio_lifespan import (
    LifespanCancelled,
    LifespanCrashed,
    LifespanError,
    LifespanNotSupported,
    LifespanProtocolError,
    LifespanShutdownFailed,
    LifespanStartupFailed,
    LifespanStateConflict,
    LifespanTimeout,
    LifespanUnavailable,
    open_lifespan,
)

from .test_behaviour import returns_at_once


def test_no_running_library_is_a_clear_error() -> None:
    async def enter() -> None:
        async with open_lifespan(returns_at_once):
            raise AssertionError("the block must not run")

    coro = enter()
    with pytest.raises(
        RuntimeError,
        match=r"^open_lifespan\(\) found no running async library: use it inside an "
        r"async function run by one of: trio, asyncio$",
    ):
        coro.send(None)


@pytest.mark.parametrize(
    "error",
    [
        LifespanStartupFailed("m"),
        LifespanShutdownFailed(""),
        LifespanNotSupported("text"),
        LifespanTimeout("shutdown", 2.0),
        LifespanProtocolError("text", {"type": "x"}, ("a", "b")),
        LifespanCrashed("the pool died"),
        LifespanCancelled("cancelled from inside"),
        LifespanUnavailable(ValueError("gone")),
        LifespanStateConflict("db", "apps[0] (Users)", "apps[1] (Billing)"),
    ],
)
def test_errors_pickle_with_their_data(error: LifespanError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert repr(copy.args) == repr(error.args)  # (an exception in args: by repr)
    assert str(copy) == str(error)


def test_the_public_names() -> None:
    # (pytest adds names that are not identifiers when it rewrites asserts.)
    public = {
        name
        for name in dir(trio_lifespan)
        if not name.startswith("_") and name.isidentifier()
    }
    # LifespanClient needs httpx: out of __all__, so `import *` never loads it.
    assert set(trio_lifespan.__all__) == public - {"LifespanClient"} | {"__version__"}
    assert "LifespanClient" in public
    assert trio_lifespan.__version__


def test_the_client_class_is_documented_and_named_where_found() -> None:
    cls = trio_lifespan.LifespanClient
    assert cls.__module__ == "trio_lifespan"
    assert cls.__doc__
    assert len(cls.__doc__.strip()) > 20


def test_the_default_task_status_names_itself() -> None:
    assert (
        repr(trio_lifespan.TASK_STATUS_IGNORED) == "trio_lifespan.TASK_STATUS_IGNORED"
    )
    trio_lifespan.TASK_STATUS_IGNORED.started(None)  # accepted and ignored


@pytest.mark.parametrize("name", trio_lifespan.__all__)
def test_every_public_name_is_documented(name: str) -> None:
    obj = getattr(trio_lifespan, name)
    if name != "__version__":
        doc = (
            obj.__doc__ if isinstance(obj, type) or callable(obj) else type(obj).__doc__
        )
        assert doc
        assert len(doc.strip()) > 20


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(
        AttributeError, match=r"^module 'trio_lifespan' has no attribute 'nope'$"
    ):
        trio_lifespan.nope
