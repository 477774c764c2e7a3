"""The library log's header line records the command, never a credential given on it."""

from __future__ import annotations

from codal_bench.logs import redacted


def test_credentials_on_the_command_line_are_masked_in_the_log_header() -> None:
    argv = [
        "--model", "openai:m", "-M", "api_key=sk-AAA", "-M", "top_k=40",
        "-J", "Authorization=Bearer BBB", "--api-key", "sk-CCC", "--judge-token=DDD",
        "--judge", "openai:gpt-4",
    ]  # fmt: skip
    out = " ".join(redacted(argv))
    for secret in ("sk-AAA", "BBB", "sk-CCC", "DDD"):
        assert secret not in out
    # what is not a credential stays readable
    assert "top_k=40" in out and "openai:gpt-4" in out and "api_key=***" in out
