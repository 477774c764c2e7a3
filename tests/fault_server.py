"""A local HTTP server that speaks OpenAI chat completions and Anthropic messages, badly on demand.

Real servers do not fail when a test wants them to, so this one reads its script from the prompt:
a user message containing `FAULTS=429,500` gets a 429 on its first attempt, a 500 on its second and
an answer from the third on; a trailing `*` repeats the last fault forever (`FAULTS=500*`). Faults:

  429        rate limited, `retry-after: <retry_after>` seconds (`429@1.5` for another value)
  429date    rate limited, retry-after as an HTTP date
  500 / 503 / 529 / 400 / 401 / 404   that status with the API's error body
  hang       accept the request and say nothing for `hang_s`
  malformed  200 with a truncated JSON body
  drop       read the request, then close the connection without a word
  ok         a normal answer

It runs an asyncio loop in a daemon thread on 127.0.0.1 (one thread, however many connections;
hangs are bounded by `hang_s` and cancelled on stop), counts attempts per prompt, and logs every
request with its arrival time so tests can measure how long a client waited.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_MARK = re.compile(r"FAULTS=([\w@.,*]+)")


@dataclass
class Hit:
    t: float
    path: str
    prompt: str
    attempt: int
    fault: str
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


class FaultServer:
    def __init__(self, retry_after: float = 1.0, hang_s: float = 30.0, delay_s: float = 0.0):
        self.retry_after = retry_after
        self.hang_s = hang_s
        self.delay_s = delay_s
        self.hits: list[Hit] = []
        self.attempts: dict[str, int] = {}
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def start() -> None:
                self._server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
                self.port = self._server.sockets[0].getsockname()[1]
                ready.set()

            loop.run_until_complete(start())
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fault-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is None:
            return

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.sleep(0)
            loop.stop()

        asyncio.run_coroutine_threadsafe(stop(), loop)
        if self._thread is not None:
            self._thread.join(10)

    def hits_for(self, marker: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if marker in h.prompt]

    # -- protocol -------------------------------------------------------------------------

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if not await self._answer(method, path, headers, body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _answer(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        raw: bytes,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Write one response; False when the connection is to be dropped."""
        anthropic = path.rstrip("/").endswith("/messages")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        prompt = _prompt_of(body)
        with self._lock:
            attempt = self.attempts.get(prompt, 0) + 1
            self.attempts[prompt] = attempt
            fault = _fault_for(prompt, attempt)
            self.hits.append(Hit(time.monotonic(), path, prompt, attempt, fault, headers, body))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        kind, _, arg = fault.partition("@")
        if kind == "drop":
            writer.transport.abort()
            return False
        if kind == "hang":
            await asyncio.sleep(self.hang_s)
            writer.transport.abort()
            return False
        if kind == "malformed":
            self._write(writer, 200, b'{"id": "x", "choices": [{"mess', {})
            return True
        if kind in ("429", "429date"):
            wait = float(arg) if arg else self.retry_after
            value = (
                email.utils.formatdate(time.time() + wait, usegmt=True)
                if kind == "429date"
                else f"{wait:g}"
            )
            self._error(writer, 429, anthropic, {"retry-after": value})
            return True
        if kind.isdigit():
            self._error(writer, int(kind), anthropic, {})
            return True
        self._write(writer, 200, json.dumps(_ok(body, prompt, anthropic)).encode(), {})
        return True

    def _error(
        self, writer: asyncio.StreamWriter, status: int, anthropic: bool, extra: dict[str, str]
    ) -> None:
        names = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                 429: "rate_limit_error", 529: "overloaded_error"}  # fmt: skip
        kind = names.get(status, "api_error")
        message = f"injected {status}"
        if anthropic:
            payload: dict[str, Any] = {
                "type": "error",
                "error": {"type": kind, "message": message},
            }
        else:
            payload = {"error": {"message": message, "type": kind, "code": str(status)}}
        self._write(writer, status, json.dumps(payload).encode(), extra)

    @staticmethod
    def _write(
        writer: asyncio.StreamWriter, status: int, payload: bytes, extra: dict[str, str]
    ) -> None:
        head = [f"HTTP/1.1 {status} X", "content-type: application/json",
                f"content-length: {len(payload)}", "connection: keep-alive"]  # fmt: skip
        head += [f"{k}: {v}" for k, v in extra.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)


def _prompt_of(body: dict[str, Any]) -> str:
    parts = [str(body.get("system", ""))]
    for m in body.get("messages", []) or []:
        parts.append(str(m.get("content", "")))
    return "\n".join(parts)


def _fault_for(prompt: str, attempt: int) -> str:
    m = _MARK.search(prompt)
    if not m:
        return "ok"
    plan = m.group(1).split(",")
    forever = plan[-1].endswith("*")
    plan[-1] = plan[-1].rstrip("*")
    if attempt <= len(plan):
        return plan[attempt - 1]
    return plan[-1] if forever else "ok"


def _ok(body: dict[str, Any], prompt: str, anthropic: bool) -> dict[str, Any]:
    text = f"echo: {prompt.strip()[:60]}"
    p_tok, c_tok = len(prompt) // 4 + 1, len(text) // 4 + 1
    if anthropic:
        return {
            "id": "msg_1", "type": "message", "role": "assistant", "model": body.get("model"),
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": p_tok, "output_tokens": c_tok},
        }  # fmt: skip
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": p_tok, "completion_tokens": c_tok,
                  "total_tokens": p_tok + c_tok},
    }  # fmt: skip
