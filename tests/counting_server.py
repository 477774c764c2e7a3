"""A local OpenAI/Anthropic-compatible server that answers deterministically and counts requests.

The reliability tests run the real CLI in a subprocess against this server, so "no finished item
was requested twice" and "zero paid requests were made" are proven by what the server saw.

What it answers depends on the `model` field of the request:

  judge*        "Rationale: ...\\nRating: N", N in 1..10 from a hash of the prompt
  oracle*       a judge that knows: "Rating: 2" when the prompt carries the marker BROKEN, else 9
  invert*       the oracle turned round: 9 for BROKEN, else 2
  mute*         a judge that never gives a rating ("I cannot decide.")
  empty*        an empty completion ("")
  echo-key*     HTTP 400 whose error message repeats the request's credentials (a careless proxy)
  anything else an answer derived from the model name and a hash of the prompt

Every request is recorded (path, model, body, headers, time). The server runs a
`ThreadingHTTPServer` on 127.0.0.1 in daemon threads and is bounded: after `max_requests` it
answers 400, and after `lifetime_s` it shuts itself down, so a stuck test cannot leave it behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Hit:
    t: float
    path: str
    model: str
    prompt: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case


def prompt_of(body: dict[str, Any]) -> str:
    """System and message contents joined, the same for both APIs."""
    parts = [str(body.get("system", ""))]
    for m in body.get("messages", []) or []:
        parts.append(str(m.get("content", "")))
    return "\n".join(parts)


BROKEN_MARK = "BROKEN"  # what the oracle judges look for in the answer under review


def judge_rating(prompt: str) -> int:
    return 1 + hashlib.sha256(prompt.encode("utf-8")).digest()[0] % 10


def reply_for(model: str, prompt: str) -> str:
    """The text this server answers `model` with; tests use it to predict stored answers."""
    digest = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12]
    if model.startswith("judge"):
        rating = judge_rating(prompt)
        return f"Rationale: the answer addresses the question ({digest}).\nRating: {rating}"
    if model.startswith(("oracle", "invert")):
        broken = BROKEN_MARK in prompt
        rating = 2 if broken == model.startswith("oracle") else 9
        said = "is" if broken else "is not"
        return f"Rationale: the answer {said} marked broken.\nRating: {rating}"
    if model.startswith("mute"):
        return "I cannot decide."
    if model.startswith("empty"):
        return ""
    return f"Answer from {model} to {digest}:\n\n```python\ndef f():\n    return 1\n```\n"


class CountingServer:
    """Use as a context manager; `url` is the OpenAI base URL (with /v1), `root` the bare one."""

    def __init__(
        self,
        delay_s: float = 0.0,
        lifetime_s: float = 600.0,
        max_requests: int = 5000,
        reply: Any = None,
    ) -> None:
        self.reply = reply or reply_for  # (model, prompt) -> text
        self.delay_s = delay_s
        self.lifetime_s = lifetime_s
        self.max_requests = max_requests
        self.hits: list[Hit] = []
        self.gets: list[str] = []  # GET paths (a models listing: the preflight)
        self.broken: set[str] = set()  # model-name prefixes answered with HTTP 500
        self.muted: set[str] = set()  # model-name prefixes answered without a rating
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.root}/v1"

    def __enter__(self) -> CountingServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                with server._lock:
                    server.gets.append(self.path)
                data = json.dumps({"object": "list", "data": [{"id": "any", "object": "model"}]})
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data.encode("utf-8"))

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, payload = server._answer(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, raw
                )
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                if status >= 500:
                    self.send_header("retry-after", "0")  # retried at once: tests stay fast
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except ConnectionError:  # the client was killed or interrupted: expected here
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(self.lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            httpd, thread, self._thread = self._httpd, self._thread, None
        if httpd is not None and thread is not None:
            httpd.shutdown()
            httpd.server_close()
            thread.join(10)

    # -- what was asked -------------------------------------------------------------------

    def hits_for(self, prefix: str) -> list[Hit]:
        """Requests whose model name starts with `prefix`."""
        with self._lock:
            return [h for h in self.hits if h.model.startswith(prefix)]

    def count(self, prefix: str = "") -> int:
        return len(self.hits_for(prefix))

    def any_requests(self) -> int:
        """Requests of any kind: completions and models listings."""
        with self._lock:
            return len(self.hits) + len(self.gets)

    # -- protocol -------------------------------------------------------------------------

    def _answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, Any]:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return 400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}}
        model = str(body.get("model", ""))
        prompt = prompt_of(body)
        anthropic = path.rstrip("/").endswith("/messages")
        with self._lock:
            self.hits.append(Hit(time.monotonic(), path, model, prompt, body, headers))
            over = len(self.hits) > self.max_requests
        if over:
            return 400, _error("test server request budget exhausted", anthropic)
        if self.delay_s:
            time.sleep(self.delay_s)
        if model.startswith("echo-key"):
            creds = {
                k: v for k, v in headers.items() if k.lower() in ("authorization", "x-api-key")
            }
            return 400, _error(f"invalid request with credentials {creds}", anthropic)
        if any(model.startswith(p) for p in self.broken):
            return 500, _error("the server had an error while processing your request", anthropic)
        text = self.reply("mute" if any(model.startswith(p) for p in self.muted) else model, prompt)
        p_tok, c_tok = len(prompt) // 4 + 1, len(text) // 4 + 1
        if anthropic:
            return 200, {
                "id": "msg_1", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
                "stop_sequence": None, "usage": {"input_tokens": p_tok, "output_tokens": c_tok},
            }  # fmt: skip
        return 200, {
            "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": p_tok, "completion_tokens": c_tok,
                      "total_tokens": p_tok + c_tok},
        }  # fmt: skip


def stored_generations(store: Path) -> list[dict[str, Any]]:
    """Every generation row of a store file, read with plain sqlite3 (also while a run writes).

    Each row: model (spec string), messages (as sent), text, error.
    """
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT model, request, text, error FROM generations").fetchall()
    except sqlite3.OperationalError:  # not created yet
        rows = []
    finally:
        conn.close()
    out = []
    for model, request, text, error in rows:
        req = json.loads(request)
        out.append({"model": model, "messages": messages_key(req.get("messages", [])),
                    "text": text, "error": error})  # fmt: skip
    return out


def messages_key(messages: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """Messages as a hashable value, the same for a stored request and a request body."""
    return tuple((str(m.get("role")), str(m.get("content"))) for m in messages)


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`codal-eval ARGS` as a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "codal_bench.cli", *args], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )  # fmt: skip


def one_error_line(p: subprocess.CompletedProcess[str]) -> str:
    """The single non-empty stderr line of a failed command (no traceback)."""
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert "Traceback" not in p.stderr, p.stderr
    assert len(lines) == 1, p.stderr
    return lines[0]


def _error(message: str, anthropic: bool) -> dict[str, Any]:
    if anthropic:
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return {"error": {"message": message, "type": "invalid_request_error", "code": "400"}}
