"""CODAL-Bench: loading (HF dataset or a local file), schema checks and the candidate prompt.

The candidate prompt follows the paper: an empty system message and a user message made of one
guideline sentence for the row's preference, a blank line, and the instruction. The sentences are
by default the paper's (entry 0 of `principles[preference]` in the authors' pinned
`src/templates/principles.py`, see upstream.py); `codal-eval` names our own sentences (in
tasks/codal-bench.yaml), and a path names an upstream-style principles.json.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..files import file_sha256, read_jsonl
from ..resources import data_dir
from ..taskfiles import task_config
from ..types import Message, Sample, UsageError, canonical_json, content_hash
from .scores import PREFERENCES
from .scoring import CodalScoring

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


PAPER_GUIDELINES = "paper"
OWN_GUIDELINES = "codal-eval"
GUIDELINE_SETS = (PAPER_GUIDELINES, OWN_GUIDELINES)
# Protocol presets for the lead's --protocol wiring: candidate guidelines, judge templates,
# candidate sampling and samples per item. The paper: greedy decoding, up to 1024 new tokens.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "principles": PAPER_GUIDELINES,
        "judge_templates": "paper",
        "sampling": {"temperature": 0.0, "top_p": 1.0, "max_tokens": 1024},
        "samples": 1,
    },
    "codal-eval": {
        "principles": OWN_GUIDELINES,
        "judge_templates": "codal-eval",
        "sampling": {"temperature": 0.0, "top_p": 1.0, "max_tokens": 1024},
        "samples": 1,
    },
}


_COMMIT = re.compile(r"[0-9a-f]{40}")


def _download(
    repo: str, split: str, revision: str | None, src: dict[str, Any]
) -> tuple[list[dict[str, Any]], str]:
    """The rows of `repo` at `revision` (default: the newest) and the commit `datasets` resolved
    it to (the builder's hash is the Hub commit the files were read at)."""
    try:
        import datasets

        builder = datasets.load_dataset_builder(repo, revision=revision)
        builder.download_and_prepare()
        ds = builder.as_dataset(split=split)
    except Exception as exc:
        raise UsageError(
            f"cannot download {repo}{'@' + revision if revision else ''} ({type(exc).__name__}); "
            f"offline, point --data or ${src.get('env', 'CODAL_BENCH_DATA')} at a local "
            "parquet/jsonl copy"
        ) from exc
    resolved = str(builder.hash)
    if revision and _COMMIT.fullmatch(revision) and resolved != revision:
        # offline, `datasets` falls back to whatever copy it cached last, whatever was asked
        raise UsageError(
            f"{repo}: asked for commit {revision}, but `datasets` read {resolved} (an older "
            "cached copy? offline?); connect, or give a local copy with --data"
        )
    return [dict(r) for r in ds], resolved


class CodalBenchTask:
    name = "codal-bench"
    scoring = CodalScoring()
    presets = PRESETS

    def __init__(
        self, principles: str | None = None, data_revision: str | None = None, **_options: object
    ) -> None:
        self.config = task_config(self.name)
        self.data_revision = data_revision
        self.judge_kinds = tuple(self.config.get("judges") or ())
        self.principles_path = principles
        self.guidelines, self.prompt_set = self._guidelines(principles)
        self.source = ""
        self.data_sha256 = ""
        self.content_sha256 = ""
        self.reference_columns: list[str] = []
        self.dataset: dict[str, Any] = {}

    def _guidelines(self, principles: str | None) -> tuple[dict[str, str], dict[str, Any]]:
        """(preference -> guideline sentence, the prompt set's name and hash for the record)."""
        principles = {"codal": OWN_GUIDELINES}.get(principles or "", principles)
        if principles in (None, PAPER_GUIDELINES):
            from . import upstream

            paper = upstream.paper_prompts()
            missing = [p for p in PREFERENCES if not paper.principles.get(p)]
            if missing:
                raise UsageError(f"{upstream.PRINCIPLES_FILE}: no principles for {missing}")
            g = {p: paper.principles[p][0] for p in PREFERENCES}
            return g, {
                "name": PAPER_GUIDELINES,
                "sha256": content_hash(g),
                "upstream": {
                    "repository": upstream.REPOSITORY,
                    "commit": upstream.COMMIT,
                    "files": {upstream.PRINCIPLES_FILE: upstream.PINNED[upstream.PRINCIPLES_FILE]},
                },
            }
        if principles == OWN_GUIDELINES:
            given = self.config.get("guidelines")
            given = given if isinstance(given, dict) else {}
            missing = [p for p in PREFERENCES if not str(given.get(p) or "").strip()]
            if missing:
                raise UsageError(
                    f"{data_dir('tasks') / 'codal-bench.yaml'}: 'guidelines' has no entry for "
                    f"{', '.join(missing)}"
                )
            g = {p: str(given[p]).strip() for p in PREFERENCES}
            return g, {"name": OWN_GUIDELINES, "sha256": content_hash(g)}
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
        revision = self.data_revision or os.environ.get(
            str(src.get("revision_env", "CODAL_BENCH_REVISION"))
        )
        local = data or os.environ.get(src.get("env", "CODAL_BENCH_DATA"))
        if local:
            path = Path(local).expanduser()
            rows = _read_rows(path)
            self.source = str(path.resolve())
            self.data_sha256 = file_sha256(path)
            # A local copy cannot prove where it came from: the revision is the user's word.
            self.dataset = {
                "repo": src["hf_dataset"],
                "split": src["split"],
                "revision": revision,
                "revision_from": "declared" if revision else None,
            }
            return rows
        rows, resolved = _download(src["hf_dataset"], src["split"], revision, src)
        self.source = f"hf:{src['hf_dataset']}:{src['split']}@{resolved}"
        self.data_sha256 = content_hash(rows)
        self.dataset = {
            "repo": src["hf_dataset"],
            "split": src["split"],
            "revision": resolved,
            "revision_from": "datasets",
            "requested": revision,
        }
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
            # Every reference column on every item: an empty cell stays visible as None/"" and is
            # an error for that item at grading, never a reason to read another column.
            fields.update(
                {c: r[c] if isinstance(r.get(c), str) else None for c in self.reference_columns}
            )
            samples.append(Sample(self.name, iid, pref, fields))
        if wanted is not None:
            unknown = wanted - {s.item_id for s in samples}
            if unknown:
                raise UsageError(f"unknown CODAL-Bench item ids: {', '.join(sorted(unknown)[:5])}")
        # What the candidates and the judge see, however the rows were read: the data hash of a
        # local copy is of its file, so it cannot show that the copy's reference cells are the
        # published ones; this can (a published protocol pins it).
        seen = sorted(canonical_json([s.item_id, s.data]) for s in samples)  # ids may repeat
        self.content_sha256 = content_hash(seen)
        return samples

    def messages(self, sample: Sample, backend: str = "openai") -> list[Message]:
        """The same for every backend: the paper sent API and local models the same messages."""
        guideline = self.guidelines[sample.data["preference"]]
        return [
            Message("system", ""),
            Message("user", f"{guideline}\n\n{sample.data['instruction']}"),
        ]

    def recognizes(self, path: str) -> bool:
        return "codal" in Path(path).name.lower()

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "data_sha256": self.data_sha256,
            "content_sha256": self.content_sha256,
            "prompt_sha256": self.prompt_set["sha256"],
            "prompt_set": self.prompt_set,
            "reference_columns": self.reference_columns,
            "dataset": self.dataset,
        }
