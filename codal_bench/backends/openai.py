"""OpenAI chat completions (and any OpenAI-compatible server) through the official async SDK.

The SDK's own retries are off: the dispatcher retries, honours retry-after and stores what still
fails as an error, so two retry layers would only multiply waits. `-M` options the backend does
not know go into the request body unchanged (`-M top_k=40` for vLLM), and are part of identity()
because they can change the answer.
"""

from __future__ import annotations

from typing import Any

from ..failures import MalformedResponse, short_body
from ..types import Generation, Request
from ._http import HTTPBackend, dump


class OpenAIBackend(HTTPBackend):
    name = "openai"
    key_env = "OPENAI_API_KEY"
    url_env = "OPENAI_BASE_URL"
    official_url = "https://api.openai.com/v1"
    official_host = "api.openai.com"
    no_key_hint = "export it, or pass --base-url for an OpenAI-compatible server that needs no key"

    def _configure(self, opts: dict[str, Any]) -> None:
        # The official API wants max_completion_tokens (reasoning models refuse max_tokens);
        # compatible servers know max_tokens for sure.
        default_field = "max_tokens" if self.base_url else "max_completion_tokens"
        self.max_tokens_field = str(opts.pop("max_tokens_field", default_field))

    def _make_client(self) -> Any:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            api_key=self._api_key,
            # Explicit, because the SDK would take an empty *_BASE_URL variable literally.
            base_url=self.base_url or self.official_url,
            timeout=self.timeout_s,
            max_retries=0,
        )

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
            raise MalformedResponse(f"no choices in response: {short_body(dump(resp))}")
        choice = choices[0]
        message = getattr(choice, "message", None)
        if message is None:
            raise MalformedResponse(f"choice without a message: {short_body(dump(resp))}")
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
