"""Throughput of the API path: does the harness add overhead on top of the SDK itself?

A local server (its own process, plain asyncio) answers every chat completion after 200 ms. We send
500 requests at concurrency 64 twice per round: (a) a bare loop of the same SDK calls under an
asyncio semaphore, (b) codal-eval's dispatcher driving OpenAIBackend with every answer written to
a real Store in batches. Rounds alternate a and b so that both see the same machine; the verdict
uses the median ratio b/a (target: at most 1.15). Both are also shown against the ideal
(500 x 0.2 s / 64), which no client reaches: the SDK spends a few ms of CPU per request.

    python benchmarks/bench_throughput.py [--requests 500] [--concurrency 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DELAY_S = 0.2


# -- the server (runs in a child process) ---------------------------------------------------


async def _serve(delay: float) -> None:
    body = json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": "bench",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "def f():\n    return 1\n"},
                }
            ],
            "usage": {"prompt_tokens": 21, "completion_tokens": 9, "total_tokens": 30},
        }  # fmt: skip
    ).encode()
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: keep-alive\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n"
    )

    async def conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in raw.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                await asyncio.sleep(delay)
                writer.write(head + body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(conn, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


# -- the two clients ------------------------------------------------------------------------


def _requests(n: int):  # type: ignore[no-untyped-def]
    from codal_bench.types import Message, Request, SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=64)
    ident = {"backend": "openai", "model": "bench", "host": "127.0.0.1"}
    return [
        Request.make(
            ident, [Message("system", ""), Message("user", f"Write f number {i}.")], params
        )
        for i in range(n)
    ]


def bare_loop(base_url: str, requests: list, concurrency: int) -> float:  # type: ignore[type-arg]
    """The same SDK call the backend makes, with nothing around it but a semaphore."""
    from openai import AsyncOpenAI

    async def main() -> None:
        client = AsyncOpenAI(base_url=base_url, api_key="EMPTY", max_retries=0)
        sem = asyncio.Semaphore(concurrency)
        answers: list[str | None] = [None] * len(requests)

        async def one(i: int) -> None:
            r = requests[i]
            async with sem:
                resp = await client.chat.completions.create(
                    model="bench",
                    messages=[{"role": m.role, "content": m.content} for m in r.messages],
                    temperature=r.params.temperature,
                    top_p=r.params.top_p,
                    max_tokens=r.params.max_tokens,
                )
            answers[i] = resp.choices[0].message.content

        await asyncio.gather(*(one(i) for i in range(len(requests))))
        await client.close()
        assert all(a for a in answers)

    t0 = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - t0


def harness(base_url: str, requests: list, concurrency: int, store_path: Path) -> float:  # type: ignore[type-arg]
    from codal_bench.backends.openai import OpenAIBackend
    from codal_bench.dispatch import DispatchOptions, generate_all
    from codal_bench.store import Store

    store = Store(store_path)
    backend = OpenAIBackend("bench", base_url=base_url)
    bodies = {r.key: {"n": i} for i, r in enumerate(requests)}
    t0 = time.perf_counter()
    out = generate_all(
        backend,
        requests,
        options=DispatchOptions(concurrency=concurrency, timeout_s=60),
        sink=lambda batch: store.put_generations(batch, "openai:bench", bodies),
    )
    elapsed = time.perf_counter() - t0
    assert all(g.ok for g in out)
    stored = store.get_generations([r.key for r in requests])
    assert len(stored) == len(requests), (len(stored), len(requests))
    store.close()
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-ratio", type=float, default=1.15)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(_serve(DELAY_S))
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        base_url = f"http://127.0.0.1:{port}/v1"
        ideal = args.requests * DELAY_S / args.concurrency
        with tempfile.TemporaryDirectory() as tmp:
            warm = _requests(args.concurrency)
            bare_loop(base_url, warm, args.concurrency)
            harness(base_url, warm, args.concurrency, Path(tmp) / "warm.sqlite")
            ratios = []
            print(f"{args.requests} requests, concurrency {args.concurrency}, server delay "
                  f"{DELAY_S}s; ideal {ideal:.3f}s")  # fmt: skip
            cpu_ratios = []
            for k in range(args.rounds):
                requests = _requests(args.requests)
                store = Path(tmp) / f"r{k}.sqlite"
                # Alternate who goes first, so a machine getting busier or quieter favours neither.
                order = ("a", "b") if k % 2 == 0 else ("b", "a")
                wall: dict[str, float] = {}
                cpu: dict[str, float] = {}
                for who in order:
                    c0 = time.process_time()
                    if who == "a":
                        wall[who] = bare_loop(base_url, requests, args.concurrency)
                    else:
                        wall[who] = harness(base_url, requests, args.concurrency, store)
                    cpu[who] = time.process_time() - c0
                a, b = wall["a"], wall["b"]
                ratios.append(b / a)
                cpu_ratios.append(cpu["b"] / cpu["a"])
                print(
                    f"round {k + 1}: bare SDK {a:.3f}s ({a / ideal:.2f}x ideal)  "
                    f"harness+store {b:.3f}s ({b / ideal:.2f}x ideal)  ratio {b / a:.3f}  "
                    f"(client CPU {cpu['a']:.2f}s vs {cpu['b']:.2f}s)"
                )
        ratio = statistics.median(ratios)
        verdict = "OK" if ratio <= args.max_ratio else "TOO SLOW"
        print(
            f"median harness/bare ratio {ratio:.3f} (limit {args.max_ratio}): {verdict}; "
            f"median client-CPU ratio {statistics.median(cpu_ratios):.3f}"
        )
        return 0 if ratio <= args.max_ratio else 1
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
