"""The httpx side of ``open_client``: its client class and transport for httpx.

Imported by :func:`trio_lifespan.open_client` when it makes an httpx client,
never by the package itself: the one module that imports httpx.
"""

from __future__ import annotations

from http.cookiejar import CookieJar
from typing import TYPE_CHECKING, Any, Generic

import httpx

from ._clientbase import ClientMixin
from ._state import AppT_co
from ._transport import transport_class

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._state import LifespanApp
    from ._websocket import WebSocketSession


class _Cookies(httpx.Cookies):
    """httpx's cookies, which do not show Python's own cookie jar a response
    that sets no cookie (as httpx2's do not): the jar's round trip, through
    urllib's request and an email message, costs about 9 us a request, and
    does nothing there."""

    def extract_cookies(self, response: httpx.Response) -> None:
        """Load the cookies that ``response``'s ``Set-Cookie`` headers set."""
        headers = response.headers
        if (
            type(self.jar) is CookieJar  # (a jar of the user's own sees all)
            and headers.encoding == "ascii"  # (the jar's header names: ASCII's)
            and response.request.url.scheme  # (urllib refuses a URL without)
            and "set-cookie" not in headers
            and "set-cookie2" not in headers
        ):
            return
        super().extract_cookies(response)


class LifespanClient(ClientMixin[AppT_co], httpx.AsyncClient, Generic[AppT_co]):
    """The ``httpx.AsyncClient`` that :func:`open_client` yields.

    It is an ``AsyncClient`` in every way; its transport sends each request
    to the app through :attr:`lifespan`, so requests see the lifespan state.
    (With httpx2, the client is the same, made from ``httpx2.AsyncClient``.)

    Two things it does lighter than a plain client, with the same outcome:
    it remembers each URL string's merge with the base URL (httpx parses the
    URL twice for it, each request), and its ``cookies`` do not show
    Python's own cookie jar a response that sets no cookie (as httpx2's own
    do not: there the jar does nothing).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cookies = _Cookies(self._cookies.jar)  # (the same jar)

    @property
    def cookies(self) -> httpx.Cookies:
        """Cookie values to include when sending requests (httpx's)."""
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: httpx._types.CookieTypes) -> None:  # pyright: ignore[reportPrivateUsage]
        self._cookies = _Cookies(cookies)

    if TYPE_CHECKING:

        @property
        def lifespan(self) -> LifespanApp[AppT_co]:
            """The :class:`LifespanApp` that requests go through."""
            ...

        def websocket_connect(
            self,
            url: httpx.URL | str,
            *,
            subprotocols: Sequence[str] = (),
            headers: httpx._types.HeaderTypes | None = None,  # pyright: ignore[reportPrivateUsage]
        ) -> WebSocketSession:
            """A websocket session with the app at ``url``."""
            ...

        async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            """Send ``request``, as httpx does."""
            ...


# Reprs and tracebacks name it where users find it.
LifespanClient.__module__ = "trio_lifespan"

#: The client class, and the transport class, made for httpx.
CLIENT = LifespanClient
TRANSPORT = transport_class(httpx)
