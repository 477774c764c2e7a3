"""`codal-eval leaderboard` on 50 runs vs 5 runs, measured in one process.

Each run is the typical size (500 CODAL items under one of two judges, 164 HumanEval+ tasks).
What is timed is what the command does: read the store, compile (10,000 bootstrap resamples),
render the terminal table; `--out` (all four files) is timed separately. Best of `repeats`,
5-run and 50-run measurements interleaved so machine noise hits both alike.

    python benchmarks/bench_leaderboard.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codal_bench.leaderboard import compile_leaderboard, render, write_all  # noqa: E402
from codal_bench.store import Store  # noqa: E402
from tests.helpers_store import populate  # noqa: E402


def build(path: Path, n_runs: int) -> Store:
    store = Store(path)
    populate(store, n_runs, per_preference=100, n_humaneval=164, seed=n_runs)
    return store


def command(store: Store) -> None:
    render(compile_leaderboard(store), "terminal")


def with_out(store: Store, out: Path) -> None:
    write_all(compile_leaderboard(store), out)


def best(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(repeats: int = 3, workdir: Path | None = None) -> dict[str, float]:
    """Seconds for 5 and 50 runs (command alone and with --out), and the ratios."""
    with tempfile.TemporaryDirectory() as tmp:
        base = workdir or Path(tmp)
        small, large = build(base / "s5.sqlite", 5), build(base / "s50.sqlite", 50)
        command(small)  # warm imports and caches once, outside the timings
        t: dict[str, list[float]] = {"cmd5": [], "cmd50": [], "out5": [], "out50": []}
        for _ in range(repeats):
            t["cmd5"].append(best(lambda: command(small)))
            t["cmd50"].append(best(lambda: command(large)))
            t["out5"].append(best(lambda: with_out(small, base / "o5")))
            t["out50"].append(best(lambda: with_out(large, base / "o50")))
        r = {k: min(v) for k, v in t.items()}
        r["ratio"] = r["cmd50"] / r["cmd5"]
        r["ratio_out"] = r["out50"] / r["out5"]
        small.close()
        large.close()
        return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    r = measure(args.repeats)
    print(f"leaderboard,  5 runs: {r['cmd5']:.3f} s   (with --out: {r['out5']:.3f} s)")
    print(f"leaderboard, 50 runs: {r['cmd50']:.3f} s   (with --out: {r['out50']:.3f} s)")
    print(f"ratio 50/5: {r['ratio']:.2f}x   (with --out: {r['ratio_out']:.2f}x; limit 3x)")


if __name__ == "__main__":
    main()
