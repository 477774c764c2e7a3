"""The dispatcher with fake backends: order, bounds, retries, timeouts, batching, budget, Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from codal_bench.cost import estimate_tokens, request_cost_bound
from codal_bench.dispatch import BackendFailed, BudgetExceeded, DispatchOptions, generate_all
from codal_bench.failures import TransientError, classify, parse_retry_after
from codal_bench.store import Store
from codal_bench.types import Generation, Message, Request, SamplingParams, UsageError

FAST = dict(backoff_initial_s=0.01, backoff_max_s=0.05, timeout_s=2.0)


def make_requests(n: int, max_tokens: int = 10) -> list[Request]:
    return [
        Request.make(
            {"backend": "fake"}, [Message("user", f"q{i}")], SamplingParams(max_tokens=max_tokens)
        )
        for i in range(n)
    ]


class FakeAsync:
    """Answers after `delay(i)` seconds; `script(i, attempt)` may raise to inject a failure."""

    def __init__(
        self,
        delay: Callable[[int], float] = lambda i: 0.0,
        script: Callable[[int, int], None] | None = None,
    ) -> None:
        self.delay = delay
        self.script = script
        self.in_flight = 0
        self.max_in_flight = 0
        self.calls: dict[int, int] = {}
        self.call_times: dict[int, list[float]] = {}
        self.closed = 0

    def identity(self) -> dict[str, Any]:
        return {"backend": "fake"}

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        raise AssertionError("the dispatcher should use agenerate")

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        self.closed += 1

    async def agenerate(self, request: Request) -> Generation:
        i = int(request.messages[0].content[1:])
        self.calls[i] = self.calls.get(i, 0) + 1
        self.call_times.setdefault(i, []).append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay(i))
            if self.script is not None:
                self.script(i, self.calls[i])
            return Generation(
                "", f"a{i}", prompt_tokens=5, completion_tokens=7, finish_reason="stop"
            )
        finally:
            self.in_flight -= 1


class Batches:
    def __init__(self) -> None:
        self.batches: list[list[Generation]] = []

    def __call__(self, batch: list[Generation]) -> None:
        self.batches.append(list(batch))

    @property
    def all(self) -> list[Generation]:
        return [g for b in self.batches for g in b]


def test_order_and_bounded_concurrency() -> None:
    reqs = make_requests(40)
    backend = FakeAsync(delay=lambda i: 0.002 * ((i * 7) % 11))
    sink = Batches()
    done: list[int] = []
    out = generate_all(
        backend,
        reqs,
        options=DispatchOptions(concurrency=4, **FAST),
        sink=sink,
        progress=done.append,
    )
    assert [g.text for g in out] == [f"a{i}" for i in range(40)]
    assert [g.key for g in out] == [r.key for r in reqs]
    assert backend.max_in_flight == 4
    assert sum(done) == 40
    assert sorted(g.key for g in sink.all) == sorted(r.key for r in reqs)
    assert all(g.latency_s is not None for g in out)
    assert backend.closed == 1  # loop-bound resources released at the end of the call


def test_transient_failures_are_retried() -> None:
    def script(i: int, attempt: int) -> None:
        if i % 2 == 0 and attempt <= 2:
            raise TransientError("try again")

    backend = FakeAsync(script=script)
    out = generate_all(backend, make_requests(6), options=DispatchOptions(**FAST), sink=Batches())
    assert all(g.ok for g in out)
    assert backend.calls == {0: 3, 1: 1, 2: 3, 3: 1, 4: 3, 5: 1}


def test_exhausted_retries_become_errors_not_empty_answers(tmp_path: Any) -> None:
    def script(i: int, attempt: int) -> None:
        if i == 1:
            raise TransientError("server on fire")
        if i == 2:
            raise ValueError("a bug: not worth retrying")

    backend = FakeAsync(script=script)
    store = Store(tmp_path / "s.sqlite")
    reqs = make_requests(3)
    opts = DispatchOptions(max_attempts=3, **FAST)
    out = generate_all(
        backend, reqs, options=opts, sink=lambda b: store.put_generations(b, "fake", {})
    )
    assert out[0].ok
    assert out[1].text is None and out[1].error and "server on fire" in out[1].error
    assert "after 3 attempts" in out[1].error
    assert out[2].text is None and out[2].error and out[2].error.startswith("ValueError")
    assert backend.calls[1] == 3 and backend.calls[2] == 1
    stored = store.get_generations([r.key for r in reqs], ok_only=False)
    assert stored[reqs[1].key].error and stored[reqs[1].key].text is None
    assert set(store.get_generations([r.key for r in reqs])) == {reqs[0].key}


def test_timeout_per_attempt_then_retry() -> None:
    backend = FakeAsync(delay=lambda i: 0.0)
    slow_first = {0}

    async def agenerate(request: Request) -> Generation:
        i = int(request.messages[0].content[1:])
        backend.calls[i] = backend.calls.get(i, 0) + 1
        if i in slow_first and backend.calls[i] == 1:
            await asyncio.sleep(30)
        return Generation("", f"a{i}")

    backend.agenerate = agenerate  # type: ignore[method-assign]
    t0 = time.monotonic()
    opts = DispatchOptions(timeout_s=0.2, backoff_initial_s=0.01, backoff_max_s=0.02)
    out = generate_all(backend, make_requests(2), options=opts, sink=Batches())
    assert [g.text for g in out] == ["a0", "a1"]
    assert backend.calls[0] == 2
    assert time.monotonic() - t0 < 5


def test_timeout_error_message() -> None:
    async def hang(request: Request) -> Generation:
        await asyncio.sleep(30)
        raise AssertionError

    backend = FakeAsync()
    backend.agenerate = hang  # type: ignore[method-assign]
    opts = DispatchOptions(timeout_s=0.05, max_attempts=2, backoff_initial_s=0.01)
    (g,) = generate_all(backend, make_requests(1), options=opts, sink=Batches())
    assert g.text is None and g.error and "no answer within 0.05s" in g.error


def test_retry_after_is_honoured() -> None:
    def script(i: int, attempt: int) -> None:
        if attempt == 1:
            raise TransientError("429", retry_after=0.4)

    backend = FakeAsync(script=script)
    generate_all(backend, make_requests(2), options=DispatchOptions(**FAST), sink=Batches())
    for times in backend.call_times.values():
        assert 0.4 <= times[1] - times[0] < 0.4 + 0.01 + 0.3


def test_retry_after_beyond_cap_fails_at_once() -> None:
    def script(i: int, attempt: int) -> None:
        raise TransientError("come back tomorrow", retry_after=86400)

    backend = FakeAsync(script=script)
    opts = DispatchOptions(max_retry_after_s=60, **FAST)
    (g,) = generate_all(backend, make_requests(1), options=opts, sink=Batches())
    assert backend.calls[0] == 1
    assert g.error and "retry-after 86400s" in g.error


def test_sink_batches_by_count_and_time() -> None:
    sink = Batches()
    opts = DispatchOptions(concurrency=1, flush_every=5, flush_interval_s=60, **FAST)
    generate_all(FakeAsync(), make_requests(12), options=opts, sink=sink)
    assert [len(b) for b in sink.batches] == [5, 5, 2]

    # Slow answers: the interval flushes them while the run goes on.
    sink = Batches()
    seen_during: list[int] = []

    def delay(i: int) -> float:
        seen_during.append(len(sink.all))
        return 0.0 if i == 0 else 0.3

    opts = DispatchOptions(concurrency=1, flush_every=100, flush_interval_s=0.1, **FAST)
    generate_all(FakeAsync(delay=delay), make_requests(3), options=opts, sink=sink)
    assert seen_during[-1] >= 1  # the first answer was stored before the last request started
    assert len(sink.all) == 3


def test_fatal_error_stops_the_run_after_flushing() -> None:
    class Unauthorized(Exception):
        status_code = 401
        response = None

    def script(i: int, attempt: int) -> None:
        if i == 3:
            raise Unauthorized("bad key")

    sink = Batches()
    backend = FakeAsync(script=script)
    with pytest.raises(BackendFailed, match="bad key") as info:
        generate_all(
            backend, make_requests(50), options=DispatchOptions(concurrency=2, **FAST), sink=sink
        )
    assert len(backend.calls) < 50
    results = info.value.results
    assert results[3] is not None and results[3].error
    assert {g.key for g in sink.all} == {g.key for g in results if g is not None}


def test_budget_stops_before_overspending() -> None:
    reqs = make_requests(20, max_tokens=10)
    price = (1e-3, 1e-3)
    bound = request_cost_bound(reqs[0], price)
    assert bound == pytest.approx((estimate_tokens(reqs[0].messages) + 10) * 1e-3)
    limit = bound * 5.5
    sink = Batches()
    opts = DispatchOptions(concurrency=3, max_cost_usd=limit, price=price, **FAST)
    with pytest.raises(BudgetExceeded) as info:
        generate_all(FakeAsync(), reqs, options=opts, sink=sink)
    exc = info.value
    sent = [g for g in exc.results if g is not None]
    assert 5 <= len(sent) < 20
    assert exc.spent_usd == pytest.approx(len(sent) * 12 * 1e-3)
    assert exc.spent_usd <= limit
    assert len(sink.all) == len(sent)
    assert "not sent" in str(exc)


def test_budget_needs_a_price() -> None:
    with pytest.raises(UsageError, match="price"):
        generate_all(
            FakeAsync(), make_requests(1), options=DispatchOptions(max_cost_usd=1.0), sink=Batches()
        )


def test_sync_batch_backend_is_chunked() -> None:
    class Batch:
        def __init__(self) -> None:
            self.sizes: list[int] = []

        def identity(self) -> dict[str, Any]:
            return {"backend": "batch"}

        def generate(self, requests: Sequence[Request]) -> list[Generation]:
            self.sizes.append(len(requests))
            return [Generation(r.key, r.messages[0].content.upper()) for r in requests]

        def close(self) -> None:
            pass

    b, sink, done = Batch(), Batches(), []
    out = generate_all(
        b, make_requests(7), options=DispatchOptions(batch_size=3), sink=sink, progress=done.append
    )
    assert b.sizes == [3, 3, 1] and [len(x) for x in sink.batches] == [3, 3, 1]
    assert [g.text for g in out] == [f"Q{i}" for i in range(7)]
    assert sum(done) == 7


def test_ctrl_c_flushes_finished_results() -> None:
    def script(i: int, attempt: int) -> None:
        if i == 6:
            os.kill(os.getpid(), signal.SIGINT)

    sink = Batches()
    backend = FakeAsync(delay=lambda i: 0.0 if i < 6 else 0.05, script=script)
    opts = DispatchOptions(concurrency=1, flush_every=1000, flush_interval_s=600, **FAST)
    with pytest.raises(KeyboardInterrupt):
        generate_all(backend, make_requests(20), options=opts, sink=sink)
    assert [g.text for g in sink.all][:6] == [f"a{i}" for i in range(6)]
    assert len(sink.all) < 20


def test_works_from_inside_a_running_loop() -> None:
    async def main() -> list[Generation]:
        return generate_all(
            FakeAsync(), make_requests(3), options=DispatchOptions(), sink=Batches()
        )

    assert [g.text for g in asyncio.run(main())] == ["a0", "a1", "a2"]


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(
        10.0
    )
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_classify_shapes() -> None:
    class Status(Exception):
        def __init__(self, status: int) -> None:
            super().__init__(f"status {status}")
            self.status_code = status

    assert classify(Status(429)).kind == "retry"
    assert classify(Status(503)).kind == "retry"
    assert classify(Status(400)).kind == "final"
    assert classify(Status(401)).kind == "fatal"
    assert classify(ConnectionResetError()).kind == "retry"
    assert classify(asyncio.TimeoutError()).kind == "retry"
    assert classify(KeyError("x")).kind == "final"


def test_a_failing_store_stops_the_run_and_is_reported() -> None:
    calls: list[int] = []

    def sink(batch: list[Generation]) -> None:
        calls.append(len(batch))
        raise OSError("disk full")

    opts = DispatchOptions(concurrency=1, flush_every=1000, flush_interval_s=0.05, **FAST)
    backend = FakeAsync(delay=lambda i: 0.03)
    with pytest.raises(OSError, match="disk full"):
        generate_all(backend, make_requests(50), options=opts, sink=sink)
    assert len(backend.calls) < 50  # it stopped sending
    assert calls[-1] >= calls[0]  # the unstored batch was offered again, not dropped


def test_a_burst_of_refused_connections_stops_early() -> None:
    """An endpoint that refuses every connection stops the run after a short burst, instead of
    six attempts with backoff for every request."""

    class Down:
        calls = 0

        def identity(self) -> dict[str, Any]:
            return {"name": "down"}

        def close(self) -> None:
            pass

        async def agenerate(self, request: Request) -> Generation:
            Down.calls += 1
            raise ConnectionRefusedError(111, "Connection refused")

    reqs = make_requests(40)
    t0 = time.monotonic()
    with pytest.raises(BackendFailed, match="unreachable") as info:
        generate_all(Down(), reqs, options=DispatchOptions(concurrency=4), sink=lambda _: None)
    assert time.monotonic() - t0 < 10
    assert Down.calls <= 5 + 4  # the burst, plus what was in flight when it was called
    assert sum(g is None for g in info.value.results) >= 30  # most were never sent
