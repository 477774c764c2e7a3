"""Anthropic Messages API (and servers that speak it, such as vLLM) through the official async SDK.

The Messages API differs from chat completions in three ways that matter here: the system prompt
is its own field, max_tokens is required, and this SDK's `messages.create()` takes no sampling
parameters, so temperature and top_p travel in `extra_body`. Retries are the dispatcher's.
"""

from __future__ import annotations

from typing import Any

from ..failures import MalformedResponse, short_body
from ..types import Generation, Request
from ._http import HTTPBackend, dump


class AnthropicBackend(HTTPBackend):
    name = "anthropic"
    key_env = "ANTHROPIC_API_KEY"
    url_env = "ANTHROPIC_BASE_URL"
    official_url = "https://api.anthropic.com"
    official_host = "api.anthropic.com"
    no_key_hint = "export it, or pass --base-url for a server speaking the Messages API"

    def _make_client(self) -> Any:
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(
            api_key=self._api_key,
            # Explicit, because the SDK would take an empty *_BASE_URL variable literally.
            base_url=self.base_url or self.official_url,
            timeout=self.timeout_s,
            max_retries=0,
        )

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
            raise MalformedResponse(f"no content in response: {short_body(dump(resp))}")
        texts = [getattr(b, "text", None) for b in blocks if getattr(b, "type", None) == "text"]
        if blocks and not texts:
            raise MalformedResponse(f"no text block in response: {short_body(dump(resp))}")
        usage = getattr(resp, "usage", None)
        return Generation(
            request.key,
            "".join(t for t in texts if isinstance(t, str)),
            prompt_tokens=getattr(usage, "input_tokens", None),
            completion_tokens=getattr(usage, "output_tokens", None),
            finish_reason=getattr(resp, "stop_reason", None),
        )
