"""What the two SDK backends share: keys and base URLs from the usual places, identity, closing.

The SDK clients themselves differ (and are built by the subclasses); everything around them —
where the key comes from, what goes into a cache key, how connections close — is the same.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any, ClassVar

from ..failures import classify, describe, register_secret
from ..types import Generation, PreflightError, Request, UsageError
from ._common import LoopBound, coerce, float_option, is_loopback_url, public, url_host

PLACEHOLDER_KEY = "EMPTY"  # self-hosted servers usually accept any key
DEFAULT_TIMEOUT_S = 600.0


class HTTPBackend:
    name: ClassVar[str]
    key_env: ClassVar[str]
    url_env: ClassVar[str]
    official_url: ClassVar[str]
    official_host: ClassVar[str]
    no_key_hint: ClassVar[str]

    def __init__(self, model: str, **options: Any) -> None:
        opts = dict(options)
        self.model = model
        self.base_url: str | None = opts.pop("base_url", None) or os.environ.get(self.url_env)
        key = opts.pop("api_key", None) or os.environ.get(self.key_env)
        if not key:
            if not self.base_url:
                raise UsageError(f"{self.key_env} is not set: {self.no_key_hint}")
            key = PLACEHOLDER_KEY
        self._api_key: str = key
        register_secret(key)
        self.timeout_s = float_option(opts, "timeout", DEFAULT_TIMEOUT_S)
        self._configure(opts)
        self.extra_body = {k: coerce(v) for k, v in opts.items()}
        self._client: LoopBound[Any] = LoopBound(self._make_client)

    def _configure(self, opts: dict[str, Any]) -> None:
        """Take the backend's own options out of `opts`; the rest go into the request body."""

    def _make_client(self) -> Any:
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        ident: dict[str, Any] = {
            "backend": self.name,
            "model": self.model,
            "host": url_host(self.base_url, self.official_host),
        }
        if self.extra_body:
            ident["options"] = public(self.extra_body)
        return ident

    @property
    def is_local(self) -> bool:
        return bool(self.base_url) and is_loopback_url(self.base_url or "")

    async def agenerate(self, request: Request) -> Generation:
        raise NotImplementedError

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """The Backend protocol's batch call, for callers without the runner: the dispatcher
        (retries, concurrency) with nothing stored. The engine knows no backend; a backend may
        use the engine."""
        from ..dispatch import DispatchOptions, generate_all

        return generate_all(self, requests, options=DispatchOptions(), sink=lambda _: None)

    PREFLIGHT_TIMEOUT_S: ClassVar[float] = 10.0

    def endpoint(self) -> str:
        """host:port of the server this backend talks to (never a key), for messages."""
        return url_host(self.base_url or self.official_url, "")

    def preflight(self) -> None:
        """One models listing: the endpoint answers and takes the key. Nothing is generated.

        Any HTTP answer but 401/403 counts as "there" (a server without a models route answers
        404, one that is failing answers 5xx: the run's retries deal with those); a refused
        connection, an unknown host, a timeout or a rejected key stops the run before it starts.
        """

        async def probe() -> None:
            try:
                client = self._client.get().with_options(timeout=self.PREFLIGHT_TIMEOUT_S)
                await client.models.list()
            finally:
                await self.aclose()

        try:
            asyncio.run(probe())
        except Exception as exc:
            status = classify(exc).status
            if status is not None and status not in (401, 403):
                return
            raise PreflightError(
                f"{self.name} endpoint {self.endpoint()} ({self.model}) is not usable: "
                f"{describe(exc)}"
            ) from exc

    async def aclose(self) -> None:
        """Close the connections of the current event loop; the backend stays usable."""
        await self._client.aclose()

    def close(self) -> None:
        self._client.close()


def dump(resp: Any) -> Any:
    """A response as plain data, for error messages about malformed bodies."""
    fn = getattr(resp, "model_dump", None)
    return fn() if callable(fn) else resp
