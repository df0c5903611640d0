"""The httpx2 side of ``open_client``: its client class and transport for httpx2.

Imported by :func:`trio_lifespan.open_client` when it makes an httpx2 client
(the default where httpx2 is installed): the one module that imports httpx2.
"""

from __future__ import annotations

from typing import Generic

import httpx2

from ._clientbase import ClientMixin
from ._state import AppT_co
from ._transport import transport_class


class LifespanClient2(ClientMixin[AppT_co], httpx2.AsyncClient, Generic[AppT_co]):
    """The ``httpx2.AsyncClient`` that :func:`open_client` yields where httpx2
    is installed (or ``httpx="httpx2"``): :class:`LifespanClient`'s twin."""


LifespanClient2.__module__ = "trio_lifespan"

#: The client class, and the transport class, made for httpx2.
CLIENT = LifespanClient2
TRANSPORT = transport_class(httpx2)
