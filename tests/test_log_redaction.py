"""The library log's header line records the command, never a credential given on it."""

from __future__ import annotations

from codal_bench.config import is_secret, public
from codal_bench.logs import redacted


def test_credentials_on_the_command_line_are_masked_in_the_log_header() -> None:
    argv = [
        "--model", "openai:m", "-M", "api_key=sk-AAA", "-M", "top_k=40",
        "-J", "Authorization=Bearer BBB", "--api-key", "sk-CCC", "--judge-token=DDD",
        "--base-url", "https://user:sk-EEE@host/v1", "-M", "api_base=https://h/v1?key=sk-FFF&x=GGG",
        "-M", "auth=HHH", "-M", 'extra_headers={"Authorization": "Bearer III"}',
        "-M", "max_tokens=1024", "--judge-max-tokens", "512", "--judge", "openai:gpt-4",
    ]  # fmt: skip
    out = " ".join(redacted(argv))
    for secret in ("sk-AAA", "BBB", "sk-CCC", "DDD", "sk-EEE", "sk-FFF", "GGG", "HHH", "III"):
        assert secret not in out, (secret, out)
    # what is not a credential stays readable
    for kept in ("top_k=40", "openai:gpt-4", "api_key=***", "max_tokens=1024", "512", "@host/v1"):
        assert kept in out, (kept, out)


def test_token_counts_are_not_credentials() -> None:
    assert not is_secret("max_tokens") and not is_secret("--judge-max-tokens")
    assert is_secret("api_token") and is_secret("X-Api-Key") and is_secret("passwd")
    assert public({"max_tokens": 5, "api_key": "k", "extra_headers": "h"}) == {"max_tokens": 5}
