"""Drives a backend over many requests: bounded concurrency, retries, timeouts, budget, storage.

Backends stay small because everything about *how* requests are sent lives here. An async
backend (`agenerate`) gets at most `concurrency` requests in flight, each attempt under a timeout,
retried with exponential backoff and jitter that never undercuts the server's `retry-after`. A
request that still fails comes back as an error Generation (text None), so it is stored as an
error and retried by the next run instead of being scored as an empty answer. Finished results go
to `sink` in batches, because one SQLite commit per answer costs more than the API call's own
overhead at high concurrency. A sync batch backend (vLLM) is fed in chunks instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from .cost import Price, generation_cost, request_cost_bound
from .failures import Failure, MalformedResponse, TransientError, classify
from .types import Backend, CodalError, Generation, Request, UsageError

__all__ = [
    "BackendFailed",
    "BudgetExceeded",
    "DispatchOptions",
    "MalformedResponse",
    "TransientError",
    "generate_all",
]

Sink = Callable[[list[Generation]], None]
Progress = Callable[[int], None]


@dataclass
class DispatchOptions:
    """How to send; the CLI maps --concurrency, --max-cost and friends onto these."""

    concurrency: int = 8
    timeout_s: float | None = 120.0  # per attempt
    max_attempts: int = 6  # including the first
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    max_retry_after_s: float = 300.0  # a longer retry-after fails the request instead of waiting
    unreachable_burst: int = 5  # this many failed connects in a row, none answered: stop
    flush_every: int = 64
    flush_interval_s: float = 2.0
    batch_size: int = 256  # sync backends: requests per generate() call
    max_cost_usd: float | None = None
    price: Price | None = None
    spent_usd: float = 0.0  # already spent by earlier calls in this run (e.g. the model's answers)


class BudgetExceeded(CodalError):
    """--max-cost reached: nothing more was sent; finished answers were handed to the sink."""

    def __init__(self, message: str, results: list[Generation | None], spent_usd: float) -> None:
        super().__init__(message)
        self.results = results
        self.spent_usd = spent_usd


class BackendFailed(CodalError):
    """An error every further request would repeat (bad key, unknown model): the run stops."""

    def __init__(self, message: str, results: list[Generation | None]) -> None:
        super().__init__(message)
        self.results = results


class _State:
    """Mutable bookkeeping of one generate_all call, shared by its workers."""

    def __init__(self, n: int, opts: DispatchOptions, sink: Sink, progress: Progress | None):
        self.results: list[Generation | None] = [None] * n
        self.buffer: list[Generation] = []
        self.last_flush = time.monotonic()
        self.opts = opts
        self.sink = sink
        self.progress = progress
        self.spent = opts.spent_usd
        self.in_flight_bound = 0.0
        self.stop_reason: str | None = None
        self.fatal: str | None = None
        self.sink_error: Exception | None = None
        self.unreachable = 0  # failed connects in a row, while no attempt has been answered
        self.answered = False

    def attempt_failed(self, exc: BaseException) -> None:
        """A burst of refused connections or unknown hosts, with nothing ever answered, means
        the endpoint is not there: stop the run instead of retrying every request."""
        if self.answered or not unreachable(exc):
            self.unreachable = 0
            return
        self.unreachable += 1
        if self.unreachable >= self.opts.unreachable_burst and self.fatal is None:
            self.fatal = f"endpoint unreachable ({self.unreachable} connections failed): " + (
                classify(exc).message
            )
            self.stop_reason = self.stop_reason or "fatal"

    def admit(self, req: Request) -> float | None:
        """Reserve the request's worst-case cost; None (and stop) when that breaks the budget."""
        o = self.opts
        if o.max_cost_usd is None or o.price is None:
            return 0.0
        bound = request_cost_bound(req, o.price)
        if self.spent + self.in_flight_bound + bound > o.max_cost_usd + 1e-12:
            self.stop_reason = self.stop_reason or "budget"
            return None
        self.in_flight_bound += bound
        return bound

    def finish(self, index: int, gen: Generation, reserved: float) -> None:
        self.in_flight_bound -= reserved
        if self.opts.price is not None and gen.error is None:
            self.spent += generation_cost(gen, self.opts.price)
        self.results[index] = gen
        self.buffer.append(gen)
        if self.progress is not None:
            self.progress(1)
        o = self.opts
        if len(self.buffer) >= o.flush_every or (
            time.monotonic() - self.last_flush >= o.flush_interval_s
        ):
            self.flush()

    def flush(self) -> None:
        self.last_flush = time.monotonic()
        if self.buffer:
            self.sink(self.buffer)  # sync, so nothing is appended meanwhile
            self.buffer = []  # only once stored: a failed write is tried again at the end


def _wait_policy(opts: DispatchOptions) -> Callable[[RetryCallState], float]:
    backoff = wait_exponential(
        multiplier=opts.backoff_initial_s, max=opts.backoff_max_s
    ) + wait_random(0, opts.backoff_initial_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = classify(exc).retry_after if exc is not None else None
        if hint is not None:
            # The server said when: wait that long, plus a little spread so that every request
            # told the same thing does not come back in the same millisecond.
            return hint + random.uniform(0.0, min(opts.backoff_initial_s, 1.0))
        return float(backoff(state))

    return wait


def _stop_policy(opts: DispatchOptions) -> Callable[[RetryCallState], bool]:
    attempts = stop_after_attempt(max(1, opts.max_attempts))

    def stop(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None:
            hint = classify(exc).retry_after
            if hint is not None and hint > opts.max_retry_after_s:
                return True
        return bool(attempts(state))

    return stop


def _retryable(exc: BaseException) -> bool:
    return classify(exc).kind == "retry"


def unreachable(exc: BaseException) -> bool:
    """The connection itself failed (refused, no such host), not a slow or failing server."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        names = {t.__name__ for t in type(e).__mro__}
        if isinstance(e, ConnectionRefusedError) or names & {"gaierror", "ConnectError"}:
            return "Timeout" not in type(e).__name__
        e = e.__cause__ or e.__context__
    return False


def _error_generation(req: Request, exc: BaseException, attempts: int, t0: float) -> Generation:
    failure: Failure = classify(exc)
    note = f" (after {attempts} attempts)" if attempts > 1 else ""
    if failure.retry_after is not None and failure.kind == "retry":
        note += f" (retry-after {failure.retry_after:g}s)"
    return Generation(req.key, None, error=failure.message + note, latency_s=time.monotonic() - t0)


async def _call(backend: Any, req: Request, timeout_s: float | None) -> Any:
    if timeout_s is None:
        return await backend.agenerate(req)
    if sys.version_info >= (3, 11):  # no extra task per attempt, unlike wait_for
        async with asyncio.timeout(timeout_s):
            return await backend.agenerate(req)
    return await asyncio.wait_for(backend.agenerate(req), timeout_s)


async def _one(backend: Any, req: Request, opts: DispatchOptions, state: _State) -> Generation:
    """One request through its retries; always returns a Generation, an answer or an error."""
    retrying = AsyncRetrying(
        stop=_stop_policy(opts),
        wait=_wait_policy(opts),
        retry=retry_if_exception(lambda e: state.fatal is None and _retryable(e)),
        reraise=True,
    )
    t0 = time.monotonic()
    attempts = 0
    try:
        async for attempt in retrying:
            with attempt:
                attempts += 1
                started = time.monotonic()
                try:
                    gen = await _call(backend, req, opts.timeout_s)
                except Exception as exc:
                    state.attempt_failed(exc)
                    raise
                state.answered = True
        if not isinstance(gen, Generation):
            raise TypeError(f"{type(backend).__name__}.agenerate returned {type(gen).__name__}")
        gen.key = req.key
        if gen.latency_s is None:
            gen.latency_s = time.monotonic() - started
        return gen
    except Exception as exc:
        if isinstance(exc, asyncio.TimeoutError) and opts.timeout_s is not None:
            exc = asyncio.TimeoutError(f"no answer within {opts.timeout_s:g}s")
        if classify(exc).kind == "fatal" and state.fatal is None:
            state.fatal = classify(exc).message
            state.stop_reason = state.stop_reason or "fatal"
        return _error_generation(req, exc, attempts, t0)


async def _run_async(
    backend: Any, requests: Sequence[Request], opts: DispatchOptions, state: _State
) -> None:
    order = iter(range(len(requests)))

    async def worker() -> None:
        for i in order:
            if state.stop_reason is not None:
                return
            reserved = state.admit(requests[i])
            if reserved is None:
                return
            gen = await _one(backend, requests[i], opts, state)
            state.finish(i, gen, reserved)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(opts.flush_interval_s)
            if time.monotonic() - state.last_flush >= opts.flush_interval_s:
                try:
                    state.flush()
                except Exception as exc:  # the store failed: stop sending, report it below
                    state.sink_error = exc
                    state.stop_reason = "sink"
                    return

    workers = [asyncio.ensure_future(worker()) for _ in range(max(1, opts.concurrency))]
    tick = asyncio.ensure_future(ticker())
    try:
        await asyncio.gather(*workers)
        if state.sink_error is not None:
            raise state.sink_error
    finally:
        tick.cancel()
        for w in workers:
            w.cancel()
        # Whatever finished reaches the sink, also when we are being cancelled (Ctrl-C).
        state.flush()
        aclose = getattr(backend, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except Exception:  # closing is best effort; the results are safe already
                pass


def _run_sync(backend: Backend, requests: Sequence[Request], state: _State) -> None:
    opts = state.opts
    size = max(1, opts.batch_size)
    retrying = Retrying(
        stop=_stop_policy(opts),
        wait=_wait_policy(opts),
        retry=retry_if_exception(_retryable),
        reraise=True,
    )
    for start in range(0, len(requests), size):
        chunk = list(requests[start : start + size])
        reserved = [state.admit(r) for r in chunk]
        if any(r is None for r in reserved):
            state.in_flight_bound -= sum(r for r in reserved if r is not None)
            return
        t0 = time.monotonic()
        try:
            gens = retrying(backend.generate, chunk)
            if len(gens) != len(chunk):
                raise TypeError(
                    f"{type(backend).__name__}.generate returned {len(gens)} results "
                    f"for {len(chunk)} requests"
                )
        except Exception as exc:
            failure = classify(exc)
            if failure.kind == "fatal" or isinstance(exc, TypeError):
                state.fatal = failure.message
                state.stop_reason = "fatal"
                return
            gens = [_error_generation(r, exc, opts.max_attempts, t0) for r in chunk]
        for k, (req, gen) in enumerate(zip(chunk, gens, strict=True)):
            gen.key = req.key
            state.finish(start + k, gen, reserved[k] or 0.0)
        state.flush()
        if state.stop_reason is not None:
            return


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def generate_all(
    backend: Backend | Any,
    requests: Sequence[Request],
    *,
    options: DispatchOptions,
    sink: Sink,
    progress: Progress | None = None,
) -> list[Generation]:
    """One Generation per request, in input order; each batch handed to `sink` as it finishes.

    Raises BudgetExceeded when --max-cost would be passed and BackendFailed on an error every
    request would repeat (both after flushing what finished; `exc.results` holds it, None for
    requests never sent). Ctrl-C likewise flushes what finished before propagating.
    """
    if options.max_cost_usd is not None and options.price is None:
        raise UsageError(
            "--max-cost needs a price for this model: add it to a price table named by "
            "CODAL_BENCH_PRICES (USD per million tokens, see codal_bench/prices.yaml)"
        )
    state = _State(len(requests), options, sink, progress)
    if requests:
        if hasattr(backend, "agenerate"):
            coro = _run_async(backend, requests, options, state)
            if _in_running_loop():  # called from async code (a notebook): use a fresh thread
                with concurrent.futures.ThreadPoolExecutor(1) as pool:
                    pool.submit(asyncio.run, coro).result()
            else:
                asyncio.run(coro)
        else:
            try:
                _run_sync(backend, requests, state)
            finally:
                state.flush()
    if state.fatal is not None:
        raise BackendFailed(f"backend failed: {state.fatal}", state.results)
    if state.stop_reason == "budget":
        sent = sum(1 for g in state.results if g is not None)
        raise BudgetExceeded(
            f"--max-cost ${options.max_cost_usd:g} reached: spent ${state.spent:.4f}, "
            f"{len(requests) - sent} of {len(requests)} requests not sent",
            state.results,
            state.spent,
        )
    missing = [i for i, g in enumerate(state.results) if g is None]
    if missing:  # cannot happen without an exception above; guard the contract anyway
        raise CodalError(f"{len(missing)} requests got no result")
    return [g for g in state.results if g is not None]
