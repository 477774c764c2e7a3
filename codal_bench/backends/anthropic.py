"""Anthropic Messages API (and servers that speak it, such as vLLM) through the official async SDK.

The Messages API differs from chat completions in three ways that matter here: the system prompt
is its own field, max_tokens is required, and this SDK's `messages.create()` takes no sampling
parameters, so temperature and top_p travel in `extra_body`. Retries are the dispatcher's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..types import Generation, Request, UsageError
from ._common import LoopBound, coerce, float_option, is_loopback_url, public, url_host
from ._errors import MalformedResponse, register_secret, short_body

PLACEHOLDER_KEY = "EMPTY"
OFFICIAL_URL = "https://api.anthropic.com"
DEFAULT_TIMEOUT_S = 600.0


class AnthropicBackend:
    name = "anthropic"

    def __init__(self, model: str, **options: Any) -> None:
        opts = dict(options)
        self.model = model
        self.base_url: str | None = opts.pop("base_url", None) or os.environ.get(
            "ANTHROPIC_BASE_URL"
        )
        key = opts.pop("api_key", None) or os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            if not self.base_url:
                raise UsageError(
                    "ANTHROPIC_API_KEY is not set: export it, or pass --base-url for a server "
                    "speaking the Messages API that needs no key"
                )
            key = PLACEHOLDER_KEY
        self._api_key: str = key
        register_secret(key)
        self.timeout_s = float_option(opts, "timeout", DEFAULT_TIMEOUT_S)
        self.extra_body = {k: coerce(v) for k, v in opts.items()}
        self._client: LoopBound[Any] = LoopBound(self._make_client)

    def _make_client(self) -> Any:
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(
            api_key=self._api_key,
            # Explicit, because the SDK would take an empty *_BASE_URL variable literally.
            base_url=self.base_url or OFFICIAL_URL,
            timeout=self.timeout_s,
            max_retries=0,
        )

    def identity(self) -> dict[str, Any]:
        ident: dict[str, Any] = {
            "backend": self.name,
            "model": self.model,
            "host": url_host(self.base_url, "api.anthropic.com"),
        }
        if self.extra_body:
            ident["options"] = public(self.extra_body)
        return ident

    @property
    def is_local(self) -> bool:
        return bool(self.base_url) and is_loopback_url(self.base_url or "")

    def _call_args(self, request: Request) -> dict[str, Any]:
        p = request.params
        system = "\n\n".join(
            m.content for m in request.messages if m.role == "system" and m.content
        )
        messages = [
            {"role": m.role, "content": m.content} for m in request.messages if m.role != "system"
        ]
        if not messages:
            raise ValueError("the Messages API needs at least one user message")
        sampling: dict[str, Any] = {"temperature": p.temperature}
        if p.top_p != 1.0:  # some models refuse temperature and top_p together
            sampling["top_p"] = p.top_p
        args: dict[str, Any] = {
            "model": self.model,
            "max_tokens": p.max_tokens,
            "messages": messages,
            "extra_body": {**sampling, **self.extra_body},
        }
        if system:
            args["system"] = system
        if p.stop:
            args["stop_sequences"] = list(p.stop)
        return args

    async def agenerate(self, request: Request) -> Generation:
        resp = await self._client.get().messages.create(**self._call_args(request))
        blocks = getattr(resp, "content", None)
        if not isinstance(blocks, list):
            raise MalformedResponse(f"no content in response: {short_body(_dump(resp))}")
        texts = [getattr(b, "text", None) for b in blocks if getattr(b, "type", None) == "text"]
        if blocks and not texts:
            raise MalformedResponse(f"no text block in response: {short_body(_dump(resp))}")
        usage = getattr(resp, "usage", None)
        return Generation(
            request.key,
            "".join(t for t in texts if isinstance(t, str)),
            prompt_tokens=getattr(usage, "input_tokens", None),
            completion_tokens=getattr(usage, "output_tokens", None),
            finish_reason=getattr(resp, "stop_reason", None),
        )

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """The Backend protocol's batch call, for callers without the runner's dispatcher."""
        from ..dispatch import DispatchOptions, generate_all

        return generate_all(self, requests, options=DispatchOptions(), sink=lambda _: None)

    async def aclose(self) -> None:
        """Close the connections of the current event loop; the backend stays usable."""
        await self._client.aclose()

    def close(self) -> None:
        self._client.close()


def _dump(resp: Any) -> Any:
    dump = getattr(resp, "model_dump", None)
    return dump() if callable(dump) else resp
