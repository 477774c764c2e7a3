"""Print the item pin of CODAL-Bench for leaderboard/published.yaml (`protocols.codal-paper`).

The paper's rows may stand beside a run only when the run saw the paper's whole item set: the 500
instructions of `coseal/codal-bench` at one Hub commit. This reads the dataset the way a run does
(`datasets` at `--revision`, default the newest commit; or a local copy with the revision it was
taken from) and prints the values a maintainer records there (the item set, and the hash of what
candidates and judge see of it: instructions, preferences and reference cells):

    python -m codal_bench.codal.pin [--revision REV] [--data FILE]
"""

from __future__ import annotations

import argparse
import os
import sys

from ..types import UsageError, content_hash
from .task import CodalBenchTask

_ENV = ("CODAL_BENCH_DATA", "CODAL_BENCH_REVISION")


def pin(revision: str | None = None, data: str | None = None) -> dict[str, object]:
    """The dataset revision, item count and item-set hash, as runs record them. Only the flags
    count here (not $CODAL_BENCH_DATA or $CODAL_BENCH_REVISION, which `make` exports): a pin
    read off the wrong copy would hold every run to it."""
    if data and not revision:
        raise UsageError("--data needs --revision: the commit the local copy was taken from")
    hidden = {k: os.environ.pop(k) for k in _ENV if k in os.environ}
    try:
        task = CodalBenchTask(principles="codal-eval", data_revision=revision)
        samples = task.load(data)
        items = sorted(s.item_id for s in samples)
    finally:
        os.environ.update(hidden)
    return {
        "dataset.revision": task.dataset.get("revision"),
        "n_items": len(items),
        "items": content_hash(items),
        "data.content_sha256": task.content_sha256,
        "read from": f"{task.source} (revision {task.dataset.get('revision_from')})",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--revision", help="Hub commit, tag or branch (default: the newest)")
    ap.add_argument("--data", help="a local copy instead of the download (give --revision too)")
    args = ap.parse_args(argv)
    try:
        found = pin(args.revision, args.data)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4
    for k, v in found.items():
        print(f"      {k}: {v}" if k != "read from" else f"      # read from {v}")
    if found["n_items"] != 500:
        print(f"warning: {found['n_items']} items, not the paper's 500", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
