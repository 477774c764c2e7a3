"""`codal-eval leaderboard` on 50 runs vs 5 runs, measured side by side in one run.

Each run is the typical size (500 CODAL items under one of two judges, 164 HumanEval+ tasks).
Two measurements: the command itself as a user runs it (`codal-eval leaderboard --store S`, a
process each time: start-up, imports, compile with 10,000 bootstrap resamples, the terminal
table), which is what the promise of at most 3x is about; and, stricter, the same work inside
one warm process (no start-up to dilute the per-run cost), with `--out` (all four files) timed
separately. Best of `repeats`, 5-run and 50-run measurements interleaved so machine noise hits
both alike.

    python benchmarks/bench_leaderboard.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
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


def run_command(store: Path, out: Path | None = None) -> None:
    args = [sys.executable, "-m", "codal_bench.cli", "leaderboard", "--store", str(store)]
    if out is not None:
        args += ["--out", str(out)]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def best(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(jobs: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Best time of each job over `repeats` rounds, the jobs interleaved within a round."""
    t: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(repeats):
        for k, fn in jobs.items():
            t[k].append(best(fn))
    r = {k: min(v) for k, v in t.items()}
    r["ratio"] = r["cmd50"] / r["cmd5"]
    r["ratio_out"] = r["out50"] / r["out5"]
    return r


def measure_command(repeats: int = 3, workdir: Path | None = None) -> dict[str, float]:
    """Seconds of the real command on 5 and 50 runs (and with --out), and the ratios."""
    with tempfile.TemporaryDirectory() as tmp:
        base = workdir or Path(tmp)
        s5, s50 = base / "c5.sqlite", base / "c50.sqlite"
        build(s5, 5).close()
        build(s50, 50).close()
        run_command(s5)  # warm the page cache once, outside the timings
        jobs: dict[str, Callable[[], None]] = {
            "cmd5": lambda: run_command(s5),
            "cmd50": lambda: run_command(s50),
            "out5": lambda: run_command(s5, base / "o5"),
            "out50": lambda: run_command(s50, base / "o50"),
        }
        return interleaved(jobs, repeats)


def measure(repeats: int = 3, workdir: Path | None = None) -> dict[str, float]:
    """Seconds for 5 and 50 runs inside one warm process (alone and with --out), and ratios."""
    with tempfile.TemporaryDirectory() as tmp:
        base = workdir or Path(tmp)
        small, large = build(base / "s5.sqlite", 5), build(base / "s50.sqlite", 50)
        command(small)  # warm imports and caches once, outside the timings
        jobs: dict[str, Callable[[], None]] = {
            "cmd5": lambda: command(small),
            "cmd50": lambda: command(large),
            "out5": lambda: with_out(small, base / "o5"),
            "out50": lambda: with_out(large, base / "o50"),
        }
        r = interleaved(jobs, repeats)
        small.close()
        large.close()
        return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    c = measure_command(args.repeats)
    print(f"codal-eval leaderboard command: 50 runs / 5 runs = {c['ratio']:.2f}x "
          f"(with --out: {c['ratio_out']:.2f}x; limit 3x)")  # fmt: skip
    r = measure(args.repeats)
    print(f"inside one warm process:        50 runs / 5 runs = {r['ratio']:.2f}x "
          f"(with --out: {r['ratio_out']:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
