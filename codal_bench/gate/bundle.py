"""Portable baselines: one file holding a run (config, versions, answers, grades, verdicts).

Why a file: a results store kept in a CI cache is evicted, and a lost baseline means exit 4 or
paying the judge again for every baseline answer. A bundle can be committed, uploaded as an
artifact or attached to a release, and `check --baseline FILE` imports it into any store.

A bundle is untrusted input, so importing it is built to be harmless:

- verified on load: a known format and version, a SHA-256 over its canonical content (one
  changed byte is caught), every item pointing at an answer and grade it carries; and, when the
  user pins it (`--baseline-sha256`), the SHA-256 of the file itself, so an edit that recomputed
  the inner checksum is caught too;
- its answers and grades are stored under keys no run ever computes (`bundle:<sha>:<key>`), so
  the content-keyed cache can never hand them to another run: they serve the baseline only;
- the options it carries are not trusted to send anything anywhere: local paths (data files,
  principles, template folders) are dropped, and so is every judge option naming an endpoint or
  looking like a credential.
  The endpoints are kept aside; a check against the bundle refuses to start (exit 4) unless the
  user names a judge endpoint on the command line, since otherwise prompts, answers and the API
  key's bearer header would go wherever a downloaded file said.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig, RunRecord, public
from ..store import ItemRef, Store
from ..types import Generation, Grade, canonical_json
from .result import CheckError

FORMAT = "codal-eval.bundle"
VERSION = 1
SAMPLE_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")  # replay model specs, not bundles
_PATH_OPTIONS = ("data", "principles")


class BundleError(CheckError):
    """A bundle that cannot be used as a baseline (exit 4)."""


@dataclass
class Imported:
    run_id: str
    sha256: str
    source_run: str
    endpoints: dict[str, str]  # judge option -> URL the bundle named (not used unless re-named)


def is_bundle_path(text: str) -> bool:
    """An existing file is a bundle, unless it is a samples file (a replay model spec)."""
    p = Path(text).expanduser()
    return p.is_file() and not p.name.endswith(SAMPLE_SUFFIXES)


# -- writing ----------------------------------------------------------------------------------


def export_bundle(store: Store, run_id: str, out: Path) -> dict[str, Any]:
    """Write a complete run as a bundle (gzip'd canonical JSON, byte-for-byte reproducible)."""
    from importlib.metadata import version

    run = store.run(run_id)
    if run.status != "complete":
        raise CheckError(f"run {run.run_id} is {run.status}: only a complete run makes a baseline")
    rows = store.results(run.run_id)
    gen_keys = sorted({r["gen_key"] for r in rows})
    grade_keys = sorted({r["grade_key"] for r in rows if r["grade_key"]})
    gens = store.get_generations(gen_keys, ok_only=False)
    grades = _grades(store, grade_keys)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "made_by": f"codal-eval {version('codal-eval')}",
        "run": {
            "run_id": run.run_id,
            "created": run.created,
            "model": run.model,
            "judge": run.judge,
            "config": run.config.to_dict(),
            "record": run.record.to_dict(),
        },
        "generations": [
            {
                "key": k,
                "text": gens[k].text,
                "error": gens[k].error,
                "prompt_tokens": gens[k].prompt_tokens,
                "completion_tokens": gens[k].completion_tokens,
                "finish_reason": gens[k].finish_reason,
            }
            for k in gen_keys
            if k in gens
        ],
        "grades": grades,
        "items": [
            [
                r["task"],
                r["item_id"],
                r["group"],
                r["sample_index"],
                r["repeat"],
                r["gen_key"],
                r["grade_key"],
            ]
            for r in rows
        ],  # fmt: skip
    }
    payload["sha256"] = _digest(payload)
    data = gzip.compress(canonical_json(payload).encode("utf-8"), mtime=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return {"path": str(out), "sha256": hashlib.sha256(data).hexdigest(), "items": len(rows)}


def _grades(store: Store, keys: list[str]) -> list[dict[str, Any]]:
    out = []
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for r in store.conn.execute(f"SELECT * FROM grades WHERE key IN ({marks})", chunk):
            out.append(
                {
                    "key": r["key"],
                    "judge": r["judge"],
                    "status": r["status"],
                    "rating": r["rating"],
                    "rationale": r["rationale"],
                    "details": json.loads(r["details"]),
                }
            )
    return sorted(out, key=lambda g: str(g["key"]))


def _digest(payload: dict[str, Any]) -> str:
    body = {k: v for k, v in payload.items() if k != "sha256"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


# -- reading ----------------------------------------------------------------------------------


def load_bundle(path: Path, expected_sha256: str | None = None) -> tuple[dict[str, Any], str]:
    """The verified payload and the file's SHA-256; BundleError (exit 4) for anything amiss."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"baseline bundle {path}: cannot be read ({exc.strerror})") from exc
    sha = hashlib.sha256(raw).hexdigest()
    if expected_sha256 is not None and sha != expected_sha256.strip().lower():
        raise BundleError(
            f"baseline bundle {path}: SHA-256 is {sha}, not the {expected_sha256} given with "
            "--baseline-sha256 (the file was changed)"
        )
    try:
        payload = json.loads(gzip.decompress(raw).decode("utf-8"))
    except (OSError, EOFError, ValueError) as exc:
        raise BundleError(f"baseline bundle {path}: corrupt or not a bundle ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BundleError(f"baseline bundle {path}: not a codal-eval bundle")
    v = payload.get("version")
    if not isinstance(v, int) or v > VERSION or v < 1:
        raise BundleError(
            f"baseline bundle {path}: format version {v!r}; this codal-eval reads up to "
            f"{VERSION} (upgrade codal-eval)"
        )
    if payload.get("sha256") != _digest(payload):
        raise BundleError(f"baseline bundle {path}: checksum mismatch (the content was changed)")
    _check_shape(path, payload)
    return payload, sha


def _check_shape(path: Path, p: dict[str, Any]) -> None:
    try:
        gens = {g["key"] for g in p["generations"]}
        grades = {g["key"] for g in p["grades"]}
        for it in p["items"]:
            task, item, grp, si, rep, gk, dk = it
            if gk not in gens or (dk is not None and dk not in grades):
                raise ValueError(f"item {task}:{item} points at an answer or grade it lacks")
            if not all(isinstance(x, str) for x in (task, item, grp)):
                raise ValueError("item fields must be strings")
            int(si), int(rep)
        RunConfig.from_dict(p["run"]["config"])
        RunRecord.from_dict(p["run"]["record"])
        str(p["run"]["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"baseline bundle {path}: malformed ({exc})") from exc


def import_bundle(store: Store, path: Path, expected_sha256: str | None = None) -> Imported:
    """Import (once per file content) and return the baseline run it became."""
    payload, sha = load_bundle(path, expected_sha256)
    run = payload["run"]
    known = store.conn.execute(
        "SELECT run_id, endpoints FROM bundles WHERE sha256 = ?", (sha,)
    ).fetchone()
    if known is not None:
        return Imported(known["run_id"], sha, run["run_id"], json.loads(known["endpoints"]))
    config, endpoints = _untrusted_config(run["config"])
    ns = f"bundle:{sha[:16]}:"
    run_id = f"bundle-{sha[:12]}"
    with store.transaction() as c:  # an import that died half-way is redone from scratch
        c.execute("DELETE FROM run_items WHERE run_id = ?", (run_id,))
        c.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
    gens = [
        Generation(ns + g["key"], g.get("text"), g.get("error"), g.get("prompt_tokens"),
                   g.get("completion_tokens"), g.get("finish_reason"))
        for g in payload["generations"]
    ]  # fmt: skip
    grades = [
        Grade(ns + g["key"], str(g["status"]), g.get("rating"), g.get("rationale"),
              g.get("details") or {})
        for g in payload["grades"]
    ]  # fmt: skip
    refs = [
        ItemRef(t, i, grp, int(s), int(r), ns + gk, ns + dk if dk else None)
        for t, i, grp, s, r, gk, dk in payload["items"]
    ]
    store.new_run(str(run["model"]), run.get("judge"), config, run_id=run_id)
    store.put_generations(gens, str(run["model"]), {})
    for judge in sorted({str(g["judge"]) for g in payload["grades"]}):
        store.put_grades([x for x, g in zip(grades, payload["grades"], strict=True)
                          if g["judge"] == judge], judge)  # fmt: skip
    store.put_run_items(run_id, refs)
    record = RunRecord.from_dict(run["record"])
    record.owner = {}
    store.update_run(run_id, status="complete", record=record)
    with store.transaction() as c:
        c.execute(
            "INSERT INTO bundles VALUES(?,?,?,?,?,?)",
            (sha, run_id, run["run_id"], str(path), canonical_json(endpoints), time.time()),
        )
    return Imported(run_id, sha, run["run_id"], endpoints)


def _untrusted_config(raw: dict[str, Any]) -> tuple[RunConfig, dict[str, str]]:
    """The bundle's config without local paths or endpoints; the endpoints it named, aside."""
    config = RunConfig.from_dict(raw)
    opts = dict(config.options)
    endpoints: dict[str, str] = {}
    judge_opts = public(dict(opts.get("judge_options") or {}))  # no credentials either
    for k, v in list(judge_opts.items()):
        if k == "base_url" or (isinstance(v, str) and "://" in v):
            endpoints[k] = str(v)
            del judge_opts[k]
    opts["judge_options"] = judge_opts
    for k in _PATH_OPTIONS:
        opts.pop(k, None)
    templates = opts.get("judge_templates")
    if isinstance(templates, str) and ("/" in templates or templates.startswith(".")):
        opts.pop("judge_templates")
    config.options = opts
    config.model_options = {}
    config.command = "bundle"
    return config, endpoints


def guard_endpoints(imported: Imported, judge_options: dict[str, Any]) -> None:
    """Exit 4 unless the command line names the judge endpoint itself (see the module doc)."""
    if not imported.endpoints:
        return
    missing = {k: v for k, v in imported.endpoints.items() if k not in judge_options}
    if missing:
        k, url = next(iter(missing.items()))
        flag = "--judge-base-url" if k == "base_url" else f"-J {k}=URL"
        raise BundleError(
            f"the baseline bundle's judge is served at {url}, and a bundle may not choose where "
            f"prompts and keys are sent: pass {flag} on the command line to use that endpoint "
            "(or your own)"
        )


def bundle_run_ids(store: Store) -> set[str]:
    """Runs that came from bundles (their grades serve as a baseline only)."""
    return {r["run_id"] for r in store.conn.execute("SELECT run_id FROM bundles")}
