"""What the HTTP API backends share: option coercion, loopback detection, one client per loop.

Kept free of SDK imports so that `codal_bench.cost` and `--help` stay light.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Callable
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

from ..config import SECRET_WORDS

C = TypeVar("C")


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url if "//" in url else f"//{url}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(url: str | None, default: str) -> str:
    """Host and port (never credentials): two servers on one machine are two different models."""
    if not url:
        return default
    parts = urlsplit(url if "//" in url else f"//{url}")
    host = parts.hostname or default
    return f"{host}:{parts.port}" if parts.port else host


def coerce(value: Any) -> Any:
    """`-M k=v` values arrive as strings; "40", "0.5", "true", "[...]" mean numbers and JSON."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def public(options: dict[str, Any]) -> dict[str, Any]:
    """Options that may appear in an identity (and so in the store): no credentials."""
    return {k: v for k, v in options.items() if not any(w in k.lower() for w in SECRET_WORDS)}


def float_option(options: dict[str, Any], name: str, default: float | None) -> float | None:
    value = options.pop(name, None)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        from ..types import UsageError

        raise UsageError(f"-M {name}={value!r}: expected a number") from exc


class LoopBound(Generic[C]):
    """An SDK async client tied to the event loop it was made in.

    httpx connection pools belong to one loop, and every `generate_all` call runs its own loop, so
    a client is made on first use in a loop and closed by `aclose()` at the end of that loop.
    """

    def __init__(self, factory: Callable[[], C]) -> None:
        self._factory = factory
        self._client: C | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> C:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = self._factory()
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        client, self._client, self._loop = self._client, None, None
        close = getattr(client, "close", None)
        if close is not None:
            try:
                await close()
            except Exception:  # closing a pool of a finished loop: nothing left to free
                pass

    def close(self) -> None:
        """Sync close outside any loop: connections of a finished loop are just dropped."""
        self._client = None
        self._loop = None
