"""The client's own pipeline: what ``open_client``'s client does lighter than
a plain ``AsyncClient``, with the same outcome.

It remembers each URL string's merge with the base URL (httpx parses it twice
per request), and its cookies skip the cookie jar for a response that sets
none (as httpx2's own do). Each is checked against a plain client of the same
httpx, on each backend, through real requests.
"""

from __future__ import annotations

import importlib.util
from http.cookiejar import CookieJar
from typing import Any, cast

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from trio_lifespan import open_client
from trio_lifespan._clientbase import BASE_URLS, MAX_URL_LENGTH, MAX_URLS

from .backends import Backend
from .test_transport import body, lifespan, start

LIBRARIES = ["httpx"] + (["httpx2"] if importlib.util.find_spec("httpx2") else [])


def library(name: str) -> Any:
    """httpx or httpx2, by name."""
    return importlib.import_module(name)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the path and query it got and the cookies sent to it;
    ``/set`` sets the cookie its query names (by the header ``SET_BY`` names:
    ``Set-Cookie2``, or one whose name is not ASCII)."""
    if await lifespan(scope, receive, send):
        return
    headers = [(b"content-type", b"text/plain")]
    if scope["path"] in SET_BY:
        headers.append((SET_BY[scope["path"]], scope["query_string"] + b"; Path=/"))
    await send(start(headers=headers))
    cookie = dict(scope["headers"]).get(b"cookie", b"")
    target = scope["raw_path"] + b"?" + scope["query_string"]
    await send(body(target + b" " + cookie))


SET_BY = {
    "/set": b"Set-Cookie",
    "/set2": b"set-cookie2",
    # (a Kelvin sign: lowercased, in Python's text, it is a "k")
    "/setk": "set-coo\u212aie".encode(),
}


class CountingJar(CookieJar):
    """A cookie jar that counts the responses it is shown."""

    shown = 0

    def extract_cookies(self, response: Any, request: Any) -> None:
        self.shown += 1
        super().extract_cookies(response, request)


URLS = [
    "/",
    "",
    "items/7",
    "/items/7?sort=name&x=%2F",
    "/caf\u00e9 bar",
    "http://elsewhere.example/abs?q=1",
    "//other.example/path",
]


@pytest.mark.parametrize("name", LIBRARIES)
async def test_a_merged_url_is_what_a_plain_client_merges(
    backend: Backend, name: str
) -> None:
    plain = library(name).AsyncClient(base_url="http://testserver/sub")
    async with open_client(app, httpx=name, base_url="http://testserver/sub") as client:
        for url in URLS:
            expected = plain.build_request("GET", url).url
            first = client.build_request("GET", url).url
            again = client.build_request("GET", url).url
            assert first == again == expected, url
            # A URL (not a string) is merged as httpx merges it.
            given = library(name).URL(url)
            assert client.build_request("GET", given).url == expected
        response = await client.get("/items/7?sort=name")
        assert response.text == "/sub/items/7?sort=name "
        # httpx's requests come through the merge (a renamed merge would not)
        assert "/items/7?sort=name" in (client._merged or {})  # pyright: ignore[reportPrivateUsage]
        # The merge is remembered: the same URL, not merged afresh.
        assert client._merge_url("/a") is client._merge_url("/a")  # pyright: ignore[reportPrivateUsage]
    await plain.aclose()


@pytest.mark.parametrize("name", LIBRARIES)
async def test_a_new_base_url_merges_afresh(backend: Backend, name: str) -> None:
    async with open_client(app, httpx=name) as client:
        assert (await client.get("/x")).text == "/x? "
        client.base_url = "http://testserver/v2"
        assert client.build_request("GET", "/x").url == "http://testserver/v2/x"
        assert (await client.get("/x")).text == "/v2/x? "
        client.base_url = "http://testserver/v2"  # (the same, as a new URL)
        assert (await client.get("/x")).text == "/v2/x? "


@pytest.mark.parametrize("name", LIBRARIES)
async def test_many_urls_are_each_merged_right(backend: Backend, name: str) -> None:
    async with open_client(app, httpx=name) as client:
        for number in range(MAX_URLS * 2 + 3):
            url = f"/items/{number}"
            assert client.build_request("GET", url).url == f"http://testserver{url}"
        remembered = client._merged  # pyright: ignore[reportPrivateUsage]
        assert remembered is not None
        assert 0 < len(remembered) <= MAX_URLS  # (bounded)
        assert (await client.get("/items/1")).text == "/items/1? "
        # A long URL (a query of data) is merged, not remembered.
        for length in (MAX_URL_LENGTH, MAX_URL_LENGTH + 1):
            url = "/q?" + "x" * (length - 3)
            merged = client.build_request("GET", url).url
            assert merged == f"http://testserver{url}"
            assert (url in remembered) == (length == MAX_URL_LENGTH)
        assert (await client.get("/q?" + "y" * MAX_URL_LENGTH)).status_code == 200


@pytest.mark.parametrize("name", LIBRARIES)
async def test_cookies_set_by_the_app_are_kept_and_sent(
    backend: Backend, name: str
) -> None:
    async with open_client(app, httpx=name) as client:
        assert (await client.get("/")).text == "/? "
        await client.get("/set?session=abc")
        assert client.cookies.get("session") == "abc"
        assert (await client.get("/")).text == "/? session=abc"
        await client.get("/")  # (a response that sets none keeps them)
        assert dict(client.cookies) == {"session": "abc"}
        assert isinstance(client.cookies, library(name).Cookies)


async def outcomes(client: Any, paths: list[str]) -> list[object]:
    """What each GET of ``paths`` gives, then the cookies the client keeps."""
    seen: list[object] = []
    for path in paths:
        try:
            response = await client.get(path)
        except Exception as exc:  # noqa: BLE001 - compared, whatever it is
            seen.append((type(exc), str(exc)))
        else:
            seen.append((response.status_code, response.text))
    seen.append(sorted(dict(client.cookies).items()))
    return seen


PATHS = [
    "/",
    "/set?a=1",
    "/",
    "/set2?b=2",
    "/setk?k=3",
    "/set?a=; Max-Age=0",
    "/",
]


@pytest.mark.parametrize("name", LIBRARIES)
@pytest.mark.parametrize("base_url", ["http://testserver", "", "/prefix"])
async def test_cookies_come_out_as_from_a_plain_client(
    backend: Backend, name: str, base_url: str
) -> None:
    ours_jar, plain_jar = CountingJar(), CountingJar()
    async with open_client(app, httpx=name, base_url=base_url) as client:
        # A plain client of the same library, on the same transport.
        plain = library(name).AsyncClient(
            transport=client._transport,  # pyright: ignore[reportPrivateUsage]
            base_url=base_url,
        )
        assert await outcomes(client, PATHS) == await outcomes(plain, PATHS)
        # A jar of the user's own sees what it would see in a plain client.
        client.cookies, plain.cookies = ours_jar, plain_jar
        assert client.cookies.jar is ours_jar  # (the jar itself, shared)
        assert await outcomes(client, PATHS) == await outcomes(plain, PATHS)
        assert ours_jar.shown == plain_jar.shown
        for cookies in ({"c": "3"}, [("c", "4")], library(name).Cookies({"c": "5"})):
            client.cookies, plain.cookies = cookies, cookies
            assert await outcomes(client, PATHS) == await outcomes(plain, PATHS)


@pytest.mark.parametrize("name", LIBRARIES)
async def test_pythons_own_jar_is_not_shown_a_response_without_cookies(
    backend: Backend, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[str] = []
    extract = CookieJar.extract_cookies

    def counted(jar: CookieJar, response: Any, request: Any) -> None:
        shown.append(request.get_full_url())
        extract(jar, response, request)

    monkeypatch.setattr(CookieJar, "extract_cookies", counted)
    async with open_client(app, httpx=name) as client:
        await client.get("/")
        await client.get("/set?a=1")
        await client.get("/")
        # (httpx2 shows the jar the URL without its query)
        assert [url.partition("?")[0] for url in shown] == ["http://testserver/set"]
        assert dict(client.cookies) == {"a": "1"}


@pytest.mark.parametrize("name", LIBRARIES)
async def test_a_base_url_is_parsed_once_and_kept_apart(
    backend: Backend, name: str
) -> None:
    given = "http://testserver/api"  # (no trailing slash: httpx adds one)
    expected = library(name).AsyncClient(base_url=given).base_url
    classes: set[type[Any]] = set()
    for _ in range(2):  # (the second client is made with the parsed URL)
        async with open_client(app, httpx=name, base_url=given) as client:
            assert isinstance(client.base_url, library(name).URL)
            assert client.base_url == expected == "http://testserver/api/"
            assert (await client.get("x")).text == "/api/x? "
            classes.add(type(client))
    # (by client class: an httpx2 client is never given httpx's URL)
    (made,) = classes
    remembered = BASE_URLS[made, given]
    assert type(remembered) is library(name).URL
    assert remembered == expected


async def test_base_urls_of_every_kind(backend: Backend) -> None:
    url = httpx.URL("http://given.example/v1")
    async with open_client(app, base_url=url) as client:  # type: ignore[arg-type]
        assert client.base_url == "http://given.example/v1/"
        assert (await client.get("/x")).text == "/v1/x? "
    assert all(type(key[1]) is str for key in BASE_URLS)  # (only strings)
    with pytest.raises(httpx.InvalidURL):
        open_client(app, base_url="http://host:port")
    assert all(key[1] != "http://host:port" for key in BASE_URLS)
    for number in range(MAX_URLS + 3):
        open_client(app, base_url=f"http://host{number}.example")
    assert 0 < len(BASE_URLS) <= MAX_URLS  # (bounded)
    long = "http://testserver/" + "p" * MAX_URL_LENGTH
    async with open_client(app, base_url=long) as client:
        assert client.base_url == long + "/"
    assert all(key[1] != long for key in BASE_URLS)  # (not remembered)
    plain = httpx.AsyncClient(base_url="http://host1.example")
    async with open_client(app, base_url="http://host1.example") as client:
        assert client.base_url == plain.base_url
        assert (await client.get("/x")).text == "/x? "


@pytest.mark.parametrize("name", LIBRARIES)
async def test_a_starlette_login_cookie_round_trip(backend: Backend, name: str) -> None:
    # A real framework's Set-Cookie (attributes, deletion), kept and sent as
    # a plain client keeps and sends it.
    async def login(request: Request) -> PlainTextResponse:
        response = PlainTextResponse("in")
        response.set_cookie("session", "abc", httponly=True, samesite="lax")
        return response

    async def me(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.cookies.get("session", "nobody"))

    async def logout(request: Request) -> PlainTextResponse:
        response = PlainTextResponse("out")
        response.delete_cookie("session")
        return response

    site = Starlette(
        routes=[Route("/login", login), Route("/me", me), Route("/logout", logout)]
    )
    paths = ["/me", "/login", "/me", "/me", "/logout", "/me"]
    async with open_client(site, httpx=name) as client:
        plain = library(name).AsyncClient(
            transport=client._transport,  # pyright: ignore[reportPrivateUsage]
            base_url=client.base_url,
        )
        seen = await outcomes(client, paths)
        assert seen == await outcomes(plain, paths)
    texts = [cast("tuple[int, str]", one)[1] for one in seen[:-1]]
    assert texts == ["nobody", "in", "abc", "abc", "out", "nobody"]
