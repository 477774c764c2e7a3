"""Our sandboxed HumanEval+ checker against EvalPlus 0.3.1, side by side in one process tree.

Measures, alternating the two tools in each round so that machine load hits both alike:

* warm grading: the 164 canonical solutions with expected outputs already cached
  (ours: `HumanEvalChecker.check_many`; EvalPlus: `evaluate(parallel=2)`),
* cold preparation: expected outputs from scratch
  (ours: `HumanEvalChecker.prepare`; EvalPlus: its ground-truth step `get_groundtruth`),

and prints the ratios (ours / EvalPlus) and our cache size. Absolute times are printed only next
to the ratio they belong to.

    python benchmarks/bench_executor.py [--rounds N] [--data PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "humanevalplus" / "HumanEvalPlus-v0.1.10.jsonl.gz"


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-executor-"))
    os.environ["HUMANEVAL_OVERRIDE_PATH"] = str(args.data)  # read by evalplus at import
    os.environ["XDG_CACHE_HOME"] = str(work / "xdg")  # evalplus' ground-truth cache lives here
    sys.path.insert(0, str(ROOT))
    with contextlib.redirect_stdout(io.StringIO()):
        from evalplus.data import get_human_eval_plus, get_human_eval_plus_hash
        from evalplus.data.utils import CACHE_DIR
        from evalplus.evaluate import evaluate, get_groundtruth

    from codal_bench.humaneval.checker import HumanEvalChecker

    with gzip.open(args.data, "rt") as f:
        rows = [json.loads(line) for line in f]
    samples = work / "samples.jsonl"
    samples.write_text(
        "".join(
            json.dumps({"task_id": r["task_id"], "solution": r["prompt"] + r["canonical_solution"]})
            + "\n"
            for r in rows
        )
    )
    problems = get_human_eval_plus()
    dataset_hash = get_human_eval_plus_hash()
    jobs = [(r, r["prompt"] + r["canonical_solution"]) for r in rows]

    cold_ratios, warm_ratios, cache_sizes = [], [], []
    for rnd in range(args.rounds):
        ours_cache = work / f"ours-{rnd}"
        shutil.rmtree(CACHE_DIR, ignore_errors=True)

        checker = HumanEvalChecker(cache_dir=ours_cache, workers=2, progress=False)
        t0 = time.perf_counter()
        checker.prepare(rows)
        ours_cold = time.perf_counter() - t0
        cache_sizes.append(_dir_size(ours_cache))

        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            get_groundtruth(problems, dataset_hash, [])
        theirs_cold = time.perf_counter() - t0

        # Warm: a fresh checker reads the cache from disk, as a new run would.
        checker = HumanEvalChecker(cache_dir=ours_cache, workers=2, progress=False)
        t0 = time.perf_counter()
        expected = checker.prepare(rows)
        results = checker.check_many(jobs, expected)
        ours_warm = time.perf_counter() - t0
        passed = sum(r.status == "pass" for r in results)

        result_file = work / "samples_eval_results.json"
        result_file.unlink(missing_ok=True)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            evaluate("humaneval", samples=str(samples), parallel=2)
        theirs_warm = time.perf_counter() - t0
        theirs = json.loads(result_file.read_text())["eval"]
        theirs_passed = sum(
            e["base_status"] == e["plus_status"] == "pass" for v in theirs.values() for e in v
        )

        cold_ratios.append(ours_cold / theirs_cold)
        warm_ratios.append(ours_warm / theirs_warm)
        print(
            f"round {rnd + 1}: cold prepare ratio {cold_ratios[-1]:.3f} "
            f"(ours {ours_cold:.1f}s / EvalPlus ground truth {theirs_cold:.1f}s); "
            f"warm grading ratio {warm_ratios[-1]:.3f} "
            f"(ours {ours_warm:.1f}s / EvalPlus evaluate(parallel=2) {theirs_warm:.1f}s); "
            f"passed ours {passed}/164, EvalPlus {theirs_passed}/164; "
            f"our cache {cache_sizes[-1] / 1e6:.2f} MB",
            flush=True,
        )

    print(
        f"median over {args.rounds} round(s): cold ratio {statistics.median(cold_ratios):.3f} "
        f"(target <= 0.5), warm ratio {statistics.median(warm_ratios):.3f} (target <= 0.5), "
        f"cache {max(cache_sizes) / 1e6:.2f} MB (target <= 25 MB)"
    )
    shutil.rmtree(work, ignore_errors=True)
    ok = (
        statistics.median(cold_ratios) <= 0.5
        and statistics.median(warm_ratios) <= 0.5
        and max(cache_sizes) <= 25e6
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
