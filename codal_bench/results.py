"""A run as files: `results.json` (what was run and what it scored) and a per-sample JSONL log.

The store is the source of truth, but people coming from lm-evaluation-harness, inspect or
EvalPlus expect a results file per run that they can keep, diff and attach to a report. So
`--output-path DIR` writes `DIR/<run name or id>/results.json` (never over another run's folder)
and, with `--log-samples`, `samples.jsonl` beside it: every (item, sample, repeat) with the prompt,
the answer, the verdict or rating, the judge's prompt and reply, and what the task adds from the
item's own data (a reference answer, the extracted code that was run). `export` writes the same
sample records, and `runs show --format json` the same document, so the three always agree.

The document's shape is a JSON Schema in the package (`schemas/results.schema.json`).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from . import registry
from .scoring import MetricScores
from .store import RunInfo, Store
from .summary import rows_by_task

SCHEMA = "codal-eval.results/1"
N_BOOT, SEED = 2000, 0
SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "results.schema.json"


def load_schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return data


def interval(ms: MetricScores, n_boot: int = N_BOOT, seed: int = SEED) -> list[float] | None:
    """95 % percentile bootstrap interval, items resampled within each stratum."""
    import numpy as np

    from .stats import bootstrap_drops, percentile_interval

    strata = [s for s in ms.weights if ms.strata.get(s)]
    if not strata:
        return None
    arrays = [np.array(list(ms.strata[s].values()), dtype=float) for s in strata]
    boot = bootstrap_drops(arrays, [ms.weights[s] for s in strata], n_boot, seed)[:, 0]
    lo, hi = percentile_interval(boot)
    return [float(lo), float(hi)]


def metric_entries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every metric of every task: value, 95 % interval and n, as the task's scoring face says."""
    out = []
    for task, trows in rows_by_task(rows).items():
        for ms in registry.scoring(task).score(trows):
            m = ms.metric
            out.append(
                {
                    "task": task,
                    "name": m.name,
                    "label": m.label,
                    "value": ms.value,
                    "interval": interval(ms),
                    "n": ms.n,
                    "percent": m.percent,
                    "headline": m.headline,
                    "scale": list(m.scale),
                }
            )
    return out


def git_info(cwd: Path | None = None) -> dict[str, Any] | None:
    """The commit of the git checkout the command ran in (None outside one, or without git)."""

    def git(*args: str) -> str | None:
        try:
            p = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return p.stdout.strip() if p.returncode == 0 else None

    sha = git("rev-parse", "HEAD")
    if not sha:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha, "dirty": bool(status), "toplevel": git("rev-parse", "--show-toplevel")}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def warnings_of(info: RunInfo) -> list[str]:
    """Readable lines for what qualifies the run's scores, from each task's stored report."""
    out = []
    for task, report in info.record.reports.items():
        if isinstance(report, dict):
            try:
                face = registry.scoring(task)
            except Exception:  # a task no longer installed: its report stays in the JSON
                continue
            warn = getattr(face, "warnings", None)
            out += [f"{task}: {w}" for w in (warn(report) if warn else [])]
    return out


def run_document(store: Store, info: RunInfo, *, git: bool = True) -> dict[str, Any]:
    """The results document of one run (`results.json`, `runs show --format json`)."""
    rows = store.results(info.run_id)
    rec = info.record
    return {
        "schema": SCHEMA,
        "run_id": info.run_id,
        "name": info.name,
        "tags": list(info.tags),
        "state": info.status,
        "model": info.model,
        "judge": info.judge,
        "created": _iso(info.created),
        "updated": _iso(info.updated),
        "config": info.config.to_dict(),
        "versions": dict(rec.versions),
        "git": git_info() if git else None,
        "metrics": metric_entries(rows),
        "counts": dict(rec.counts),
        "tokens": dict(rec.tokens),
        "cost_usd": rec.cost_usd,
        "errors": rec.summary.get("errors", rec.errors),
        "empty_answers": rec.summary.get("empty_answers", 0),
        "notes": {t: v.get("notes", []) for t, v in (rec.summary.get("tasks") or {}).items()},
        "warnings": warnings_of(info),
        "reports": rec.reports,
        "bootstrap": {"n_boot": N_BOOT, "seed": SEED, "level": 0.95},
        "samples": None,
    }


# -- per-sample records ------------------------------------------------------------------------


def sample_data(info: RunInfo) -> dict[tuple[str, str], dict[str, Any]]:
    """(task, item id) -> the item's data, loaded again as the run loaded it; best effort: a task
    whose data cannot be read here gives no entries (its records then lack those fields)."""
    from .runner import make_task

    opts = info.config.rerun_options(info.record.items, info.model)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for name in info.config.tasks:
        try:
            task = make_task(name, opts)
            ids = info.record.items.get(name) or None
            for s in task.load(opts.data.get(name), None, ids):
                out[(name, s.item_id)] = s.data
        except Exception:  # noqa: BLE001 - missing data must not stop an export
            continue
    return out


def _requests(store: Store, keys: set[str]) -> dict[str, tuple[Any, str | None]]:
    """generation key -> (its request's messages, its text)."""
    out: dict[str, tuple[Any, str | None]] = {}
    keys_l = sorted(k for k in keys if k)
    for i in range(0, len(keys_l), 500):
        chunk = keys_l[i : i + 500]
        marks = ",".join("?" * len(chunk))
        for r in store.conn.execute(
            f"SELECT key, request, text FROM generations WHERE key IN ({marks})", chunk
        ):
            req = json.loads(r["request"] or "{}")
            out[r["key"]] = (req.get("messages"), r["text"])
    return out


def error_of(r: dict[str, Any]) -> str | None:
    """Why a row has no usable answer or grade (the rule that scores it as a failure)."""
    if r.get("gen_error"):
        return str(r["gen_error"])
    if r.get("status") == "judge_error":
        return str((r.get("details") or {}).get("error") or "the judge call failed")
    if r.get("answer") is None:
        return "no answer (not sent: the run stopped first)"
    if r.get("status") is None:
        return "not graded"
    return None


def sample_records(
    store: Store, info: RunInfo, data: dict[tuple[str, str], dict[str, Any]] | None = None
) -> Iterator[dict[str, Any]]:
    """One record per (item, sample, repeat): prompt, answer, verdict or rating, judge prompt and
    reply, and the task's own fields (`export_fields`, `sample_fields`)."""
    rows = store.results(info.run_id)
    judge_keys = {(r["details"] or {}).get("request_key") for r in rows}
    requests = _requests(store, {r["gen_key"] for r in rows} | {k for k in judge_keys if k})
    faces: dict[str, Any] = {}
    for r in rows:
        task = r["task"]
        if task not in faces:
            faces[task] = registry.scoring(task)
        face = faces[task]
        d = r["details"] or {}
        judge_call = requests.get(d.get("request_key") or "")
        record: dict[str, Any] = {
            "run_id": info.run_id,
            "run_name": info.name,
            "task": task,
            "task_id": r["item_id"],
            "group": r["group"],
            "sample_index": r["sample_index"],
            "repeat": r["repeat"],
            "prompt": requests.get(r["gen_key"], (None, None))[0],
            "answer": r["answer"],
            "error": error_of(r),
            "status": r["status"],
            "run_status": info.status,
            "rating": r["rating"],
            "judge": (
                {"prompt": judge_call[0], "reply": judge_call[1]}
                if judge_call is not None
                else None
            ),
            **face.export_fields(r),
        }
        fields = getattr(face, "sample_fields", None)
        if fields is not None and data is not None:
            record.update(fields(r, data.get((task, r["item_id"])), info.config.tasks.get(task)))
        yield record


def write_samples(records: Iterator[dict[str, Any]], out: TextIO) -> int:
    n = 0
    for rec in records:
        out.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")
        n += 1
    return n


# -- the run's folder --------------------------------------------------------------------------


def run_folder(out_dir: Path, info: RunInfo) -> Path:
    """`out_dir/<name or id>`; a folder holding another run's results gets a numbered sibling."""
    base = re.sub(r"[^A-Za-z0-9._+@=-]", "_", info.label)
    for n in range(1, 1000):
        folder = out_dir / (base if n == 1 else f"{base}-{n}")
        existing = folder / "results.json"
        if not existing.exists():
            return folder
        try:
            if json.loads(existing.read_text(encoding="utf-8")).get("run_id") == info.run_id:
                return folder  # the same run written again (e.g. after a re-grade of its files)
        except (OSError, ValueError):
            pass
    raise OSError(f"{out_dir}: too many folders named {base}")


def write_run_files(
    store: Store,
    ref: str,
    out_dir: str | Path,
    log_samples: bool = False,
    data: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> Path:
    """Write `results.json` (and `samples.jsonl`) for one run; returns the folder."""
    info = store.run(ref)
    folder = run_folder(Path(out_dir), info)
    folder.mkdir(parents=True, exist_ok=True)
    doc = run_document(store, info)
    if log_samples:
        with open(folder / "samples.jsonl", "w", encoding="utf-8") as f:
            write_samples(sample_records(store, info, data or sample_data(info)), f)
        doc["samples"] = "samples.jsonl"
    text = json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"
    (folder / "results.json").write_text(text, encoding="utf-8")
    return folder
