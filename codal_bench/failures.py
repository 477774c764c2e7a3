"""Sorting failed API calls into "try again", "give up on this request" and "give up on the run".

The dispatcher retries; the SDKs are told not to (max_retries=0), so this module is the single
place that decides. A backend says what is retryable by what it raises: `TransientError` (or an
exception with `retryable = True`) is tried again, honouring its `retry_after`; `retryable =
False` is final for that request. Everything else is judged by its shape (status code, response
headers, class name) rather than by each SDK's class tree, so the openai and anthropic SDKs,
plugins and plain network errors all follow the same rules.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["retry", "final", "fatal"]

# A 4xx that a retry can fix. 408 request timeout, 409 conflict (OpenAI uses it for transient
# lock contention), 425 too early, 429 rate limited.
_RETRY_STATUS = {408, 409, 425, 429}
# A 4xx that says every other request will fail the same way: stop the run instead of storing
# hundreds of identical errors (wrong key, no access, no such model or endpoint).
_FATAL_STATUS = {401, 403, 404}
_TRANSIENT_NAMES = (
    "APITimeoutError",
    "APIConnectionError",
    "APIResponseValidationError",
    "RemoteProtocolError",
    "ReadError",
    "WriteError",
    "ConnectError",
    "ReadTimeout",
    "WriteTimeout",
    "ConnectTimeout",
    "PoolTimeout",
    "TimeoutException",
    "NetworkError",
    "ProtocolError",
)


class TransientError(Exception):
    """Raise from a backend for a failure worth retrying (optionally after `retry_after` s)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MalformedResponse(TransientError):
    """The server answered 2xx but not with what the API promises (bad JSON, no choices)."""


@dataclass(frozen=True)
class Failure:
    kind: Kind
    message: str
    retry_after: float | None = None
    status: int | None = None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `retry-after` value: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def retry_after_of(exc: BaseException) -> float | None:
    """`retry-after-ms` / `retry-after` from an exception's response, or its own hint."""
    hinted = getattr(exc, "retry_after", None)
    if isinstance(hinted, (int, float)):
        return max(0.0, float(hinted))
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
    except (TypeError, ValueError):
        pass
    try:
        return parse_retry_after(headers.get("retry-after"))
    except Exception:
        return None


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a credential so that no message we store or print can carry it."""
    if value and len(value) >= 8 and value != "EMPTY":
        _SECRETS.add(value)


def redact(text: str) -> str:
    """Servers sometimes echo the caller's key in an error body: blank out every known secret."""
    import os
    import re

    from .config import is_secret

    secrets = set(_SECRETS)
    secrets.update(
        v for k, v in os.environ.items()
        if len(v) >= 8 and is_secret(k)
    )  # fmt: skip
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return re.sub(r"(?i)\b(bearer\s+)[^\s'\"]+", r"\1***", text)


def describe(exc: BaseException, limit: int = 300) -> str:
    """One line for the store: class name and the server's message, never a header or a key."""
    text = redact(str(exc)).replace("\n", " ").strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def classify(exc: BaseException) -> Failure:
    """Decide what one failed attempt means for its request and for the run."""
    message = describe(exc)
    if isinstance(exc, TransientError) or getattr(exc, "retryable", None) is True:
        return Failure("retry", message, retry_after_of(exc))
    if getattr(exc, "retryable", None) is False:
        return Failure("final", message)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Failure("retry", message or "timeout")
    status = _status_of(exc) if hasattr(exc, "response") or hasattr(exc, "status_code") else None
    if status is not None and status >= 400:
        if status in _RETRY_STATUS or status >= 500:
            return Failure("retry", message, retry_after_of(exc), status)
        if status in _FATAL_STATUS:
            return Failure("fatal", message, None, status)
        return Failure("final", message, None, status)
    if any(t.__name__ in _TRANSIENT_NAMES for t in type(exc).__mro__):
        return Failure("retry", message)
    if isinstance(exc, (ConnectionError, json.JSONDecodeError, UnicodeDecodeError)):
        return Failure("retry", message)
    if isinstance(exc, OSError):
        return Failure("retry", message)
    # A bug in a backend (TypeError, KeyError...) will not go away by asking again.
    return Failure("final", message)


def short_body(obj: Any, limit: int = 200) -> str:
    """A response fragment for an error message (what came back instead of an answer)."""
    try:
        text = json.dumps(obj, default=str)
    except (TypeError, ValueError):
        text = repr(obj)
    return text if len(text) <= limit else text[: limit - 1] + "…"
