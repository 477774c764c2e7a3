"""OpenAI chat completions (and any OpenAI-compatible server) through the official async SDK.

The SDK's own retries are off: the dispatcher retries, honours retry-after and stores what still
fails as an error, so two retry layers would only multiply waits. `-M` options the backend does
not know go into the request body unchanged (`-M top_k=40` for vLLM), and are part of identity()
because they can change the answer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..types import Generation, Request, UsageError
from ._common import LoopBound, coerce, float_option, is_loopback_url, public, url_host
from ._errors import MalformedResponse, register_secret, short_body

PLACEHOLDER_KEY = "EMPTY"
OFFICIAL_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT_S = 600.0


class OpenAIBackend:
    name = "openai"

    def __init__(self, model: str, **options: Any) -> None:
        opts = dict(options)
        self.model = model
        self.base_url: str | None = opts.pop("base_url", None) or os.environ.get("OPENAI_BASE_URL")
        key = opts.pop("api_key", None) or os.environ.get("OPENAI_API_KEY")
        if not key:
            if not self.base_url:
                raise UsageError(
                    "OPENAI_API_KEY is not set: export it, or pass --base-url for an "
                    "OpenAI-compatible server that needs no key"
                )
            key = PLACEHOLDER_KEY  # self-hosted servers usually accept any key
        self._api_key: str = key
        register_secret(key)
        self.timeout_s = float_option(opts, "timeout", DEFAULT_TIMEOUT_S)
        # The official API wants max_completion_tokens (reasoning models refuse max_tokens);
        # compatible servers know max_tokens for sure.
        default_field = "max_tokens" if self.base_url else "max_completion_tokens"
        self.max_tokens_field = str(opts.pop("max_tokens_field", default_field))
        self.extra_body = {k: coerce(v) for k, v in opts.items()}
        self._client: LoopBound[Any] = LoopBound(self._make_client)

    def _make_client(self) -> Any:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
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
            "host": url_host(self.base_url, "api.openai.com"),
        }
        if self.extra_body:
            ident["options"] = public(self.extra_body)
        return ident

    @property
    def is_local(self) -> bool:
        return bool(self.base_url) and is_loopback_url(self.base_url or "")

    def _body(self, request: Request) -> dict[str, Any]:
        p = request.params
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": p.temperature,
            "top_p": p.top_p,
            self.max_tokens_field: p.max_tokens,
        }
        if p.seed is not None:
            body["seed"] = p.seed
        if p.stop:
            body["stop"] = list(p.stop)
        return body

    async def agenerate(self, request: Request) -> Generation:
        body = self._body(request)
        extra = dict(self.extra_body)
        if self.max_tokens_field not in ("max_tokens", "max_completion_tokens"):
            extra[self.max_tokens_field] = body.pop(self.max_tokens_field)
        resp = await self._client.get().chat.completions.create(**body, extra_body=extra or None)
        choices = getattr(resp, "choices", None)
        if not choices:
            raise MalformedResponse(f"no choices in response: {short_body(_dump(resp))}")
        choice = choices[0]
        message = getattr(choice, "message", None)
        if message is None:
            raise MalformedResponse(f"choice without a message: {short_body(_dump(resp))}")
        text = message.content
        if text is None:
            text = getattr(message, "refusal", None) or ""
        if not isinstance(text, str):
            raise MalformedResponse(f"message content is not text: {short_body(text)}")
        usage = getattr(resp, "usage", None)
        return Generation(
            request.key,
            text,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            finish_reason=getattr(choice, "finish_reason", None),
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
