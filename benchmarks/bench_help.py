"""`codal-eval --help` against `python -c "import click, rich"`, interleaved in one run.

Prints the ratio of medians; the promise is at most 1.5x. Absolute times on this machine are
noise, so only the ratio is printed as the result.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time


def _time(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def measure(rounds: int = 15) -> float:
    exe = shutil.which("codal-eval")
    help_cmd = [exe, "--help"] if exe else [sys.executable, "-m", "codal_bench.cli", "--help"]
    base_cmd = [sys.executable, "-c", "import click, rich"]
    ours, base = [], []
    _time(help_cmd), _time(base_cmd)  # warm the page cache for both
    for _ in range(rounds):
        ours.append(_time(help_cmd))
        base.append(_time(base_cmd))
    return statistics.median(ours) / statistics.median(base)


if __name__ == "__main__":
    ratio = measure()
    print(f"codal-eval --help / python -c 'import click, rich' (medians of 15): {ratio:.2f}x")
    sys.exit(0 if ratio <= 1.5 else 1)
