"""``open_client``: an httpx client whose requests go to an app with its lifespan.

This module does not import httpx: :func:`open_client` does, when it is
called, so that importing the package costs nothing for those who never use
the client, and a missing httpx is one clear error at the call.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import TYPE_CHECKING, Any, cast

from ._options import check_app, check_bool, check_options

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from ._httpx import LifespanClient
    from ._options import Options
    from ._state import AppT
    from ._types import AnyASGIApp

#: What to install for the client, said by every error about a missing part.
EXTRA = "pip install 'trio-lifespan[client]'"

# Client arguments that would cut the client off from the app: the transport
# is ours, and mounts would send some requests elsewhere.
_OURS = ("transport", "mounts")


def open_client(
    app: AppT,
    *,
    startup_timeout: float | None = 5.0,
    shutdown_timeout: float | None = 5.0,
    allow_unsupported: bool = False,
    base_url: str = "http://testserver",
    raise_app_exceptions: bool = True,
    httpx: str | None = None,
    **client_options: Any,
) -> AbstractAsyncContextManager[LifespanClient[AppT]]:
    """Run an app's lifespan and yield an httpx client that sends it requests.

    ::

        async with open_client(app) as client:
            response = await client.get("/users")  # the startup has run
            client.lifespan.state["db"]             # the lifespan's state

    On entry the app's lifespan is opened as :func:`open_lifespan` opens it,
    then the client. The client is a ``httpx.AsyncClient`` (a subclass,
    :class:`LifespanClient`), so every httpx feature works; its transport
    calls the app through the :class:`LifespanApp`, so each request sees a
    copy of the lifespan state, and :attr:`LifespanClient.lifespan` is that
    :class:`LifespanApp`. On exit the client is closed, then the lifespan:
    every failure comes out as it comes out of :func:`open_lifespan`.

    The transport is the package's own. A response read whole
    (``client.get()``, every request but ``client.stream()``) calls the app
    in the caller's own task, as httpx's transport does (its background tasks
    run before ``get()`` returns; cancelling the call cancels the app with
    it). A streamed one (``client.stream(...)``) runs the app in a task of
    its own (on trio in the lifespan's nursery, on asyncio on the caller's
    loop), so responses stream as the app sends them (endless ones too), and
    leaving one tells the app (``http.disconnect``) and gives it
    ``shutdown_timeout`` to end, then cancels it. Nothing is tied to the
    task that entered the client: a pytest-asyncio fixture may set it up in
    one task and tear it down in another. The read timeout (``timeout=``,
    httpx's default 5 s) bounds each wait for the app's next message, as a
    server's would; the client's exit gives every app still running
    ``shutdown_timeout`` to end, then cancels it. See :doc:`howto/streaming`.

    Websockets: ``async with client.websocket_connect("/ws") as ws:``
    (:meth:`LifespanClient.websocket_connect`), with ASGI messages handed
    between tasks; ``httpx_ws.aconnect_ws("/ws", client)`` works too when
    httpx-ws is installed.

    Args:
        app: The ASGI app.
        startup_timeout: As for :func:`open_lifespan`.
        shutdown_timeout: As for :func:`open_lifespan`.
        allow_unsupported: As for :func:`open_lifespan`.
        base_url: The URL that relative request URLs are joined to.
        httpx: The package the client is made from: ``"httpx2"`` (an
            ``httpx2.AsyncClient``) or ``"httpx"``. Default: the environment
            variable ``TRIO_LIFESPAN_HTTPX`` if set, else httpx2 where it is
            installed (as Starlette's TestClient chooses), else httpx.
        raise_app_exceptions: Whether an exception the app raises while it
            handles a request is raised in the test (the default), or turned
            into a ``500`` response, as a server would (Starlette's
            ``TestClient(raise_server_exceptions=False)``).
        **client_options: Passed to ``httpx.AsyncClient``: ``headers``,
            ``cookies``, ``params``, ``auth``, ``follow_redirects``,
            ``timeout``, ``event_hooks``, ... All but ``transport`` and
            ``mounts``, which would send requests somewhere else.

    Returns:
        An async context manager that yields a :class:`LifespanClient`.

    Raises:
        ModuleNotFoundError: httpx is not installed; the message says what to
            install (``pip install 'trio-lifespan[client]'``).
        TypeError: An option is of the wrong type, or not one that
            ``httpx.AsyncClient`` takes, or is ``transport`` or
            ``mounts``.

    And everything :func:`open_lifespan` raises, in the same cases.
    """
    check_app(app)
    options = check_options(startup_timeout, shutdown_timeout, allow_unsupported)
    check_bool("raise_app_exceptions", raise_app_exceptions)
    for name in _OURS:
        if name in client_options:
            raise TypeError(
                f"open_client() got {name}=, but the client's transport is its "
                "own: it sends every request to the app given to open_client. "
                "To use another transport, open the lifespan with "
                "open_lifespan() and make the httpx client yourself"
            )
    return cast(
        "AbstractAsyncContextManager[LifespanClient[AppT]]",
        make_open_client(
            app,
            options,
            base_url,
            client_options,
            raise_app_exceptions=raise_app_exceptions,
            httpx=httpx,
            caller="open_client()",
        ),
    )


#: The packages a client can be made from, the preferred first.
PACKAGES = ("httpx2", "httpx")

#: The environment variable that chooses one, for a whole test suite.
CHOICE = "TRIO_LIFESPAN_HTTPX"


def choose_httpx(httpx: str | None) -> str:
    """The package to make the client from (see :func:`open_client`).

    Raises:
        ValueError: ``httpx`` (or the environment variable) names another.
        ModuleNotFoundError: Neither is installed.
    """
    given = httpx if httpx is not None else os.environ.get(CHOICE) or None
    if given is not None:
        if given not in PACKAGES:
            said = f"httpx={given!r}" if httpx is not None else f"{CHOICE}={given!r}"
            raise ValueError(
                f"open_client() got {said}: give 'httpx2' or 'httpx', the package "
                "the client is made from"
            )
        return given
    for name in PACKAGES:
        if name in sys.modules:  # (imported, or blocked: None)
            if cast("object", sys.modules[name]) is not None:
                return name
        elif importlib.util.find_spec(name) is not None:
            return name
    raise ModuleNotFoundError(
        f"open_client() needs httpx, which is not installed: {EXTRA}", name="httpx"
    )


def make_open_client(
    app: AnyASGIApp,
    options: Options,
    base_url: str,
    client_options: dict[str, Any],
    *,
    raise_app_exceptions: bool = True,
    httpx: str | None = None,
    caller: str,
) -> AbstractAsyncContextManager[Any]:
    """The lifespan and the client, as one (``OpenClient``), made from the
    package chosen; only that one is imported."""
    name = choose_httpx(httpx)
    try:
        if name == "httpx2":
            from . import _httpx2 as chosen  # noqa: PLC0415 - only if used
        else:
            from . import _httpx as chosen  # type: ignore[no-redef]  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in (name, "httpcore"):
            raise
        raise ModuleNotFoundError(
            f"{caller} needs {name}, which is not installed: "
            + (EXTRA if name == "httpx" else HTTPX2),
            name=exc.name,
        ) from exc
    from ._clientbase import OpenClient  # noqa: PLC0415

    return OpenClient(
        app,
        options,
        base_url,
        client_options,
        raise_app_exceptions=raise_app_exceptions,
        client_class=chosen.CLIENT,
        transport_class=chosen.TRANSPORT,
    )


#: What to install for httpx2.
HTTPX2 = "pip install 'trio-lifespan[httpx2]'"
