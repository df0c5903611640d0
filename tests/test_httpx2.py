"""``open_client`` made from httpx2 (trio_lifespan/_client.py's choice,
_httpx2.py): the default where httpx2 is installed, as Starlette's TestClient
chooses; httpx when asked, by argument or by ``TRIO_LIFESPAN_HTTPX``."""

from __future__ import annotations

import datetime
import importlib.util
import sys

import anyio
import httpx
import pytest

import trio_lifespan
from trio_lifespan._client import choose_httpx

from .backends import Backend
from .test_transport import body, lifespan, start
from .test_websocket import chat
from .typed import approx

# (httpx2 needs Python 3.11: on 3.10 the client is httpx's, and this skips)
httpx2 = pytest.importorskip("httpx2")


async def app(scope: dict[str, object], receive: object, send: object) -> None:
    if await lifespan(scope, receive, send):  # type: ignore[arg-type]
        return
    if scope["path"] == "/slow":
        await send(start())  # type: ignore[operator]
        await anyio.sleep_forever()  # (the read timeout ends the wait)
    await send(start(headers=[(b"content-type", b"text/plain")]))  # type: ignore[operator]
    await send(body(b"one ", more=True))  # type: ignore[operator]
    await anyio.sleep(1)  # (so that a stream has something to stream)
    await send(body(b"two"))  # type: ignore[operator]


@pytest.fixture
def no_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a project: nothing set (the suite sets httpx in conftest.py)."""
    monkeypatch.delenv("TRIO_LIFESPAN_HTTPX", raising=False)


@pytest.mark.usefixtures("no_choice")
async def test_httpx2_is_the_default_where_it_is_installed(backend: Backend) -> None:
    async with trio_lifespan.open_client(app) as opened:
        client: object = opened  # (typed as httpx's LifespanClient: its twin)
        assert isinstance(client, httpx2.AsyncClient)
        assert type(client).__name__ == "LifespanClient2"
        assert (await client.get("/")).text == "one two"
        async with client.stream("GET", "/") as response:
            assert [chunk async for chunk in response.aiter_bytes()] == [
                b"one ",
                b"two",
            ]


@pytest.mark.usefixtures("no_choice")
async def test_httpx2_a_response_read_whole_is_timed_and_closed(
    backend: Backend,
) -> None:
    async with trio_lifespan.open_client(app) as client:
        response = await client.get("/")
        assert (response.text, response.is_closed) == ("one two", True)
        assert response.elapsed >= datetime.timedelta(0)
        assert response.num_bytes_downloaded == len(b"one two")


@pytest.mark.usefixtures("no_choice")
async def test_httpx2_reads_and_websockets(backend: Backend) -> None:
    async with trio_lifespan.open_client(chat(backend, []), timeout=1) as client:
        async with client.websocket_connect("/ws") as websocket:
            await websocket.send_text("hi")
            assert await websocket.receive_text() == "hi!"
    async with trio_lifespan.open_client(app, timeout=1) as client:
        began = backend.now()
        with pytest.raises(httpx2.ReadTimeout):
            await client.get("/slow")
        assert backend.now() - began == approx(1)


async def test_httpx_when_asked(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with trio_lifespan.open_client(app, httpx="httpx") as client:
        assert isinstance(client, httpx.AsyncClient)
        assert isinstance(client, trio_lifespan.LifespanClient)
    monkeypatch.setenv("TRIO_LIFESPAN_HTTPX", "httpx2")
    async with trio_lifespan.open_client(app) as opened:
        chosen: object = opened
        assert isinstance(chosen, httpx2.AsyncClient)
    async with trio_lifespan.open_client(app, httpx="httpx") as client:  # (wins)
        assert isinstance(client, httpx.AsyncClient)


def test_a_choice_that_is_neither_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"^open_client\(\) got httpx='requests': "):
        trio_lifespan.open_client(app, httpx="requests")
    monkeypatch.setenv("TRIO_LIFESPAN_HTTPX", "niquests")
    with pytest.raises(ValueError, match="TRIO_LIFESPAN_HTTPX") as caught:
        trio_lifespan.open_client(app)
    assert str(caught.value) == (
        "open_client() got TRIO_LIFESPAN_HTTPX='niquests': give 'httpx2' or "
        "'httpx', the package the client is made from"
    )


@pytest.mark.usefixtures("no_choice")
def test_without_httpx2_the_client_is_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx2", None)
    assert choose_httpx(None) == "httpx"
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(ModuleNotFoundError, match=r"needs httpx, which is not"):
        choose_httpx(None)


def test_httpx2_asked_for_and_missing_names_its_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "httpx2", None)
    monkeypatch.delitem(sys.modules, "trio_lifespan._httpx2", raising=False)
    monkeypatch.delattr(trio_lifespan, "_httpx2", raising=False)
    with pytest.raises(ModuleNotFoundError) as caught:
        trio_lifespan.open_client(app, httpx="httpx2")
    assert str(caught.value) == (
        "open_client() needs httpx2, which is not installed: pip install "
        "'trio-lifespan[httpx2]'"
    )


def test_not_installed_is_found_without_importing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "httpx2")  # (found by its spec, not loaded)
    monkeypatch.delenv("TRIO_LIFESPAN_HTTPX", raising=False)
    assert choose_httpx(None) == "httpx2"
    assert "httpx2" not in sys.modules


def test_a_package_not_installed_is_passed_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TRIO_LIFESPAN_HTTPX", raising=False)
    monkeypatch.delitem(sys.modules, "httpx2")
    real = importlib.util.find_spec

    def find_spec(name: str) -> object:
        return None if name == "httpx2" else real(name)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert choose_httpx(None) == "httpx"
