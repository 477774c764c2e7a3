"""Our sandboxed HumanEval+ checker against EvalPlus 0.3.1 (and a baseline checkout of ours).

Measures, alternating the tools in each round so that machine load hits all alike:

* warm grading: the 164 canonical solutions with expected outputs already cached
  (ours: `HumanEvalChecker.check_many`, 2 workers; EvalPlus: `evaluate(parallel=2)`),
* cold preparation: expected outputs from scratch
  (ours: `HumanEvalChecker.prepare`; EvalPlus: its ground-truth step `get_groundtruth`),

and prints per round the ratios ours / EvalPlus side by side with the baseline's (another
checkout of this project, e.g. the commit before a change: ``--baseline DIR``) and ours /
baseline. Each of our checkers runs in a subprocess importing its own checkout, timed from
inside (after imports). Absolute times are printed only next to the ratio they belong to.

Beside them runs the **floor** of warm grading: the canonical solutions called on all their
inputs by the sandbox's interpreter in 2 plain forked processes, longest task first, with no
isolation, no limits, no copies of inputs and no comparison: the answers' own work, which any
checker must do. floor / EvalPlus is about the smallest warm ratio the machine allows in that
round (EvalPlus runs on the harness's interpreter, which may be a little faster or slower), and
ours / floor is what our isolation and checking cost.

    python benchmarks/bench_executor.py [--rounds N] [--data PATH] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import marshal
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "humanevalplus" / "HumanEvalPlus-v0.1.10.jsonl.gz"

_WORKER = r"""
import gzip, json, sys, time
from codal_bench.humaneval.checker import HumanEvalChecker
data, cache = sys.argv[1:3]
with gzip.open(data, "rt") as f:
    rows = [json.loads(line) for line in f]
checker = HumanEvalChecker(cache_dir=cache, workers=2, progress=False)
t0 = time.perf_counter()
expected = checker.prepare(rows)
prepared = time.perf_counter() - t0
results = checker.check_many([(r, r["prompt"] + r["canonical_solution"]) for r in rows], expected)
total = time.perf_counter() - t0
print(json.dumps({"prepare": prepared, "total": total,
                  "passed": sum(r.status == "pass" for r in results)}))
"""


_FLOOR = r"""
import json, marshal, os, sys, time
sys.setrecursionlimit(10000)
folder, order = sys.argv[1], json.loads(sys.argv[2])
r, w = os.pipe()
t0 = time.perf_counter()
pids = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        os.close(w)
        cpu = {}
        while len(raw := os.read(r, 4)) == 4:
            i = int.from_bytes(raw, "little")
            with open(os.path.join(folder, str(i)), "rb") as f:
                code, entry, inputs = marshal.load(f)
            ns = {}
            exec(compile(code, "<s>", "exec"), ns)
            fn, c0 = ns[entry], time.process_time()
            for args in inputs:
                fn(*args)
            cpu[i] = time.process_time() - c0
            del ns, fn, inputs
        sys.stdout.write(json.dumps(cpu) + "\n")
        sys.stdout.flush()
        os._exit(0)
    pids.append(pid)
os.close(r)
for i in order:  # 4-byte writes to a pipe are atomic: each worker pulls whole indices
    os.write(w, i.to_bytes(4, "little"))
os.close(w)
for pid in pids:
    os.waitpid(pid, 0)
print(json.dumps({"wall": time.perf_counter() - t0}))
"""


def _floor(python: str, folder: Path, order: list[int]) -> tuple[float, list[float]]:
    """Wall time of the floor run, and each task's CPU time in it (to order the next round).

    Each task is read from its own file (code, entry point, inputs), so that a worker holds one
    task's inputs at a time, as a sandboxed answer does."""
    p = subprocess.run(
        [python, "-I", "-c", _FLOOR, str(folder), json.dumps(order)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    cpu = [0.0] * len(order)
    for part in lines[:-1]:
        for k, v in part.items():
            cpu[int(k)] = v
    return float(lines[-1]["wall"]), cpu


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _ours(checkout: Path, data: Path, cache: Path) -> dict[str, float]:
    """One fresh process of `checkout`'s checker: prepare (cold or from cache), then grade."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    p = subprocess.run(
        [sys.executable, "-c", _WORKER, str(data), str(cache)],
        cwd=checkout, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if p.returncode != 0:
        raise SystemExit(f"{checkout}: {p.stderr[-2000:]}")
    out: dict[str, float] = json.loads(p.stdout.splitlines()[-1])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--baseline", type=Path, help="another checkout to measure beside ours")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-executor-"))
    os.environ["HUMANEVAL_OVERRIDE_PATH"] = str(args.data)  # read by evalplus at import
    os.environ["XDG_CACHE_HOME"] = str(work / "xdg")  # evalplus' ground-truth cache lives here
    with contextlib.redirect_stdout(io.StringIO()):
        from evalplus.data import get_human_eval_plus, get_human_eval_plus_hash
        from evalplus.data.utils import CACHE_DIR
        from evalplus.evaluate import evaluate, get_groundtruth

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
    sys.path.insert(0, str(ROOT))
    from codal_bench.executors.sandbox import SandboxExecutor

    python = SandboxExecutor().python  # the floor runs on the interpreter answers run on
    floor_dir = work / "floor"
    floor_dir.mkdir()
    for i, r in enumerate(rows):
        code = r["prompt"] + r["canonical_solution"]
        data = (code, r["entry_point"], r["base_input"] + r["plus_input"])
        (floor_dir / str(i)).write_bytes(marshal.dumps(data, 4))
    _, floor_cpu = _floor(python, floor_dir, list(range(len(rows))))  # a warm-up: task costs
    problems = get_human_eval_plus()
    dataset_hash = get_human_eval_plus_hash()
    mode = "rootless" if os.geteuid() else "root"
    tools = {"ours": ROOT} | ({"base": args.baseline.resolve()} if args.baseline else {})
    ratios: dict[str, list[float]] = {f"{k}-{t}": [] for k in ("cold", "warm") for t in tools}
    ratios |= {"floor": [], "ours-floor": []}
    cache_sizes = []
    print(f"mode {mode}; tools {', '.join(f'{k}={v}' for k, v in tools.items())}", flush=True)
    for rnd in range(args.rounds):
        caches = {t: work / f"{t}-{rnd}" for t in tools}
        cold, warm, passed = {}, {}, {}
        for t, checkout in tools.items():  # cold: from scratch (grading done there not timed)
            cold[t] = _ours(checkout, args.data, caches[t])["prepare"]
        shutil.rmtree(CACHE_DIR, ignore_errors=True)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            get_groundtruth(problems, dataset_hash, [])
        theirs_cold = time.perf_counter() - t0
        cache_sizes.append(_dir_size(caches["ours"]))
        for t, checkout in tools.items():  # warm: a new process reads the cache, as a run would
            res = _ours(checkout, args.data, caches[t])
            warm[t], passed[t] = res["total"], int(res["passed"])
        result_file = work / "samples_eval_results.json"
        result_file.unlink(missing_ok=True)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            evaluate("humaneval", samples=str(samples), parallel=2)
        theirs_warm = time.perf_counter() - t0
        order = sorted(range(len(rows)), key=lambda i: -floor_cpu[i])
        floor, floor_cpu = _floor(python, floor_dir, order)
        theirs = json.loads(result_file.read_text())["eval"]
        theirs_passed = sum(
            e["base_status"] == e["plus_status"] == "pass" for v in theirs.values() for e in v
        )
        parts = []
        for t in tools:
            ratios[f"cold-{t}"].append(cold[t] / theirs_cold)
            ratios[f"warm-{t}"].append(warm[t] / theirs_warm)
            parts.append(
                f"{t}: cold {ratios[f'cold-{t}'][-1]:.3f} ({cold[t]:.1f}s / {theirs_cold:.1f}s)"
                f", warm {ratios[f'warm-{t}'][-1]:.3f} ({warm[t]:.1f}s / {theirs_warm:.1f}s)"
                f", passed {passed[t]}/164"
            )
        ratios["floor"].append(floor / theirs_warm)
        ratios["ours-floor"].append(warm["ours"] / floor)
        parts.append(
            f"floor: warm {ratios['floor'][-1]:.3f} ({floor:.1f}s), "
            f"ours/floor {ratios['ours-floor'][-1]:.3f}"
        )
        if "base" in tools:
            parts.append(
                f"ours/base: cold {cold['ours'] / cold['base']:.3f}, "
                f"warm {warm['ours'] / warm['base']:.3f}"
            )
        parts.append(f"EvalPlus passed {theirs_passed}/164")
        parts.append(f"our cache {cache_sizes[-1] / 1e6:.2f} MB")
        print(f"round {rnd + 1} [{mode}]: " + "; ".join(parts), flush=True)

    med = {k: statistics.median(v) for k, v in ratios.items()}
    line = (
        f"median over {args.rounds} round(s) [{mode}]: ours cold {med['cold-ours']:.3f} "
        f"(target <= 0.5), ours warm {med['warm-ours']:.3f} (target <= 0.35); "
        f"floor warm {med['floor']:.3f}, ours/floor {med['ours-floor']:.3f}"
    )
    ok = med["cold-ours"] <= 0.5 and med["warm-ours"] <= 0.35 and max(cache_sizes) <= 25e6
    if "base" in tools:
        rel_cold = med["cold-ours"] / med["cold-base"]
        rel_warm = med["warm-ours"] / med["warm-base"]
        line += (
            f"; base cold {med['cold-base']:.3f}, base warm {med['warm-base']:.3f}; "
            f"ours/base ratio: cold {rel_cold:.3f}, warm {rel_warm:.3f} (target <= 1.10)"
        )
        ok = ok and rel_cold <= 1.10 and rel_warm <= 1.10
    print(line + f"; cache {max(cache_sizes) / 1e6:.2f} MB (target <= 25 MB)")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
