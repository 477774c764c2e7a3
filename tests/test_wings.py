"""Each benchmark owns its wing: nothing outside `codal_bench/codal/` and `codal_bench/humaneval/`
names a benchmark, and the package's import graph has no cycle."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "codal_bench"
WINGS = ("codal", "humaneval")
FORBIDDEN = re.compile(r"humaneval|human_eval|codal-bench|codal")
# Names that contain "codal" but name the program, not a benchmark.
ALLOWED_NAMES = re.compile(r"codal_bench|codalerror|codal_bench_\w+|codal-eval", re.IGNORECASE)

# (file, a substring of the token): the benchmark names that stay outside the wings, and why.
EXCEPTIONS = {
    ("__init__.py", "evaluate code LLMs on CODAL-Bench and HumanEval+"): (
        "the package's one-line description names the benchmarks it is built for"
    ),
    ("cli.py", "codal-bench,humaneval-plus"): "help text: which tasks run by default",
    ("cli.py", "Evaluate a code LLM on CODAL-Bench and HumanEval+"): "help text: what the tool is",
    ("cli.py", "Items per CODAL preference"): "help text: what --limit counts per task",
    ("cli.py", "Samples per HumanEval+ task"): "help text: what --samples is for",
    ("cli_results.py", "CODAL items to show"): "help text: what diff --top counts",
    ("cli_gate.py", "A stored HumanEval+ run whose answers"): (
        "help text: judge-audit --run needs a run of an execution-graded task"
    ),
    ("cli.py", "local CODAL-Bench data file"): "help epilog: the data variables of the tasks",
    ("cli.py", "CODAL_BENCH_DATA, HUMANEVAL_OVERRIDE_PATH"): (
        "help text of --data: the environment variables the built-in tasks read"
    ),
    ("cli.py", "--tasks humaneval-plus --samples 10"): "help example: a pass@k run",
    ("cli_results.py", "leaderboard --task humaneval-plus"): "help example: a leaderboard filter",
    ("cli_gate.py", "humaneval-plus=0.05"): "help text and example of check --max-drop",
    ("cli_runs.py", "--task humaneval-plus"): "help example: a runs filter",
}


def _violations() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if rel.parts[0] in WINGS:
            continue
        text = path.read_text(encoding="utf-8")
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type not in (tokenize.NAME, tokenize.STRING, tokenize.COMMENT) and (
                tok.type != getattr(tokenize, "FSTRING_MIDDLE", -1)
            ):
                continue
            rest = ALLOWED_NAMES.sub("", tok.string).lower()
            if not FORBIDDEN.search(rest):
                continue
            if any(f == str(rel) and s in tok.string for (f, s) in EXCEPTIONS):
                continue
            found.append((str(rel), tok.start[0], tok.string[:100]))
    return found


def test_no_benchmark_names_outside_the_wings() -> None:
    found = _violations()
    assert not found, "\n".join(f"{f}:{line}: {t}" for f, line, t in found)


def test_every_exception_is_still_needed() -> None:
    """An exception whose text is gone must be removed from the list, not kept as a loophole."""
    for (rel, text), why in EXCEPTIONS.items():
        assert why
        assert text in (PKG / rel).read_text(encoding="utf-8"), (rel, text)


def import_graph() -> dict[str, set[str]]:
    """module -> the codal_bench modules it imports, at any depth (functions included)."""
    graph: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        name = ".".join(parts)
        package = parts if is_pkg else parts[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - (node.level - 1)] if node.level else []
                mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
                for alias in node.names:
                    deps.add(mod)
                    deps.add(f"{mod}.{alias.name}")
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[name] = {d for d in deps if d.startswith("codal_bench")}
    known = set(graph)
    return {m: {d for d in ds if d in known and d != m} for m, ds in graph.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            # A package's __init__ re-exporting its own modules is not a cycle of its modules.
            if m.startswith(d + ".") and len(m.split(".")) > len(d.split(".")):
                continue
            if state.get(d) == 1:
                return stack[stack.index(d) :] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])
