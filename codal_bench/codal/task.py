"""CODAL-Bench: loading (HF dataset or a local file), schema checks and the candidate prompt.

The candidate prompt follows the paper: an empty system message and a user message made of one
guideline sentence for the row's preference, a blank line, and the instruction.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..files import file_sha256, read_jsonl
from ..resources import data_dir
from ..scores import PREFERENCES
from ..taskfiles import task_config
from ..types import Message, Sample, UsageError, content_hash

REFERENCE_COLUMNS = (
    "gpt-4-turbo_response",
    "gpt-3.5-turbo_response",
    "claude-3-sonnet-20240229_response",
)


def item_id(preference: str, instruction: str) -> str:
    """Stable across files and orderings: the same question is the same item everywhere."""
    return hashlib.sha256(f"{preference}\n{instruction}".encode()).hexdigest()[:16]


def _read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a local jsonl / json / parquet file, with the line of any corrupt JSON."""
    if not path.is_file():
        raise UsageError(f"CODAL-Bench data file {path} does not exist")
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pandas as pd

        try:
            return list(pd.read_parquet(path).to_dict(orient="records"))
        except Exception as exc:
            raise UsageError(f"{path}: not a readable parquet file ({exc})") from exc
    if name.endswith(".json") or name.endswith(".json.gz"):
        opener: Any = gzip.open if name.endswith(".gz") else open
        try:
            with opener(path, "rt", encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: cannot read ({exc})") from exc
        if isinstance(data, dict) and "rows" in data:
            data = data["rows"]
        if not isinstance(data, list):
            raise UsageError(f"{path}: expected a JSON list of rows")
        return data
    return [row for _, row in read_jsonl(path)]


def validate_rows(rows: list[dict[str, Any]], source: str) -> list[str]:
    """Check the schema; returns the reference columns present."""
    if not rows:
        raise UsageError(f"{source}: no rows")
    columns = set().union(*(r.keys() for r in rows))
    missing = [c for c in ("instruction", "preference") if c not in columns]
    refs = [c for c in REFERENCE_COLUMNS if c in columns]
    extra_refs = sorted(c for c in columns if c.endswith("_response") and c not in refs)
    refs += extra_refs
    if missing or not refs:
        need = ", ".join(missing + ([] if refs else ["a *_response reference column"]))
        found = ", ".join(sorted(columns))
        raise UsageError(f"{source}: not CODAL-Bench data: missing {need} (columns found: {found})")
    for n, r in enumerate(rows, 1):
        if r.get("preference") not in PREFERENCES:
            raise UsageError(
                f"{source}: row {n}: preference {r.get('preference')!r} is not one of "
                f"{', '.join(PREFERENCES)}"
            )
        if not isinstance(r.get("instruction"), str) or not r["instruction"].strip():
            raise UsageError(f"{source}: row {n}: field 'instruction' is missing or empty")
    return refs


class CodalBenchTask:
    name = "codal-bench"
    judge_kinds = ("codal",)

    def __init__(self, principles: str | None = None) -> None:
        self.config = task_config(self.name)
        self.principles_path = principles
        self.guidelines, self.prompt_set = self._guidelines(principles)
        self.source = ""
        self.data_sha256 = ""
        self.reference_columns: list[str] = []

    def _guidelines(self, principles: str | None) -> tuple[dict[str, str], dict[str, str]]:
        if principles is None:
            given = self.config.get("guidelines")
            given = given if isinstance(given, dict) else {}
            missing = [p for p in PREFERENCES if not str(given.get(p) or "").strip()]
            if missing:
                raise UsageError(
                    f"{data_dir('tasks') / 'codal-bench.yaml'}: 'guidelines' has no entry for "
                    f"{', '.join(missing)}"
                )
            g = {p: str(given[p]).strip() for p in PREFERENCES}
            return g, {"name": "codal", "sha256": content_hash(g)}
        path = Path(principles)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsageError(f"--principles {path}: {exc.strerror or exc}") from exc
        except json.JSONDecodeError as exc:
            raise UsageError(f"--principles {path}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
        bad = [p for p in PREFERENCES if not (isinstance(data.get(p), list) and data[p])]
        if bad:
            raise UsageError(f"--principles {path}: no principles for {', '.join(bad)}")
        g = {p: str(data[p][0]) for p in PREFERENCES}
        return g, {"name": str(path.resolve()), "sha256": content_hash(g)}

    def _load_rows(self, data: str | None) -> list[dict[str, Any]]:
        src = self.config.get("source")
        if not isinstance(src, dict) or "hf_dataset" not in src:
            raise UsageError(
                f"{data_dir('tasks') / 'codal-bench.yaml'}: 'source' needs hf_dataset and split"
            )
        local = data or os.environ.get(src.get("env", "CODAL_BENCH_DATA"))
        if local:
            path = Path(local).expanduser()
            rows = _read_rows(path)
            self.source = str(path.resolve())
            self.data_sha256 = file_sha256(path)
            return rows
        try:
            import datasets

            ds = datasets.load_dataset(src["hf_dataset"], split=src["split"])
        except Exception as exc:
            raise UsageError(
                f"cannot download {src['hf_dataset']} ({type(exc).__name__}); offline, point "
                f"--data or ${src.get('env', 'CODAL_BENCH_DATA')} at a local parquet/jsonl copy"
            ) from exc
        rows = [dict(r) for r in ds]
        self.source = f"hf:{src['hf_dataset']}:{src['split']}:{ds._fingerprint}"
        self.data_sha256 = content_hash(rows)
        return rows

    def load(
        self, data: str | None = None, limit: int | None = None, ids: Sequence[str] | None = None
    ) -> list[Sample]:
        rows = self._load_rows(data)
        self.reference_columns = validate_rows(rows, self.source)
        samples: list[Sample] = []
        taken: dict[str, int] = {}
        wanted = set(ids) if ids else None
        for r in rows:
            pref = r["preference"]
            iid = item_id(pref, r["instruction"])
            if wanted is not None and iid not in wanted:
                continue
            if limit is not None and taken.get(pref, 0) >= limit:
                continue
            taken[pref] = taken.get(pref, 0) + 1
            fields = {"instruction": r["instruction"], "preference": pref}
            fields.update({c: r[c] for c in self.reference_columns if isinstance(r.get(c), str)})
            samples.append(Sample(self.name, iid, pref, fields))
        if wanted is not None:
            unknown = wanted - {s.item_id for s in samples}
            if unknown:
                raise UsageError(f"unknown CODAL-Bench item ids: {', '.join(sorted(unknown)[:5])}")
        return samples

    def messages(self, sample: Sample) -> list[Message]:
        guideline = self.guidelines[sample.data["preference"]]
        return [
            Message("system", ""),
            Message("user", f"{guideline}\n\n{sample.data['instruction']}"),
        ]

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "data_sha256": self.data_sha256,
            "prompt_sha256": self.prompt_set["sha256"],
            "reference_columns": self.reference_columns,
        }
