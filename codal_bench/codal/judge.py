"""The CODAL-Bench LLM judge: reference-guided single-answer grading through any Backend.

The judge never talks to an API itself: it turns (item, answer) pairs into Requests and hands the
whole batch to the runner's `generate`, which caches, retries and stores them like candidate
generations. That is why any model spec can judge, and why a re-grade with the same judge costs
nothing.

Two upstream bugs are deliberately not reproduced: the judge sees only the answer text (upstream
sent the whole record), and the requested reference column is the one used (upstream ignored it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

from ..types import (
    Backend,
    GenerateFn,
    Generation,
    Grade,
    GradeInput,
    Message,
    Request,
    SamplingParams,
    UsageError,
    content_hash,
)
from .templates import TemplateSet, load_templates

REFERENCE_SUFFIX = "_response"
# Paper order: the fallback when the judge has no reference column of its own.
REFERENCE_MODELS = ("gpt-4-turbo", "gpt-3.5-turbo", "claude-3-sonnet-20240229")
_OWN_REFERENCE = (
    ("gpt-3.5", "gpt-3.5-turbo"),
    ("gpt-4", "gpt-4-turbo"),
    ("claude", "claude-3-sonnet-20240229"),
)
# Vendor-level families: self-preference is documented across one vendor's models, not just
# within one checkpoint. Order matters (codellama before llama).
_FAMILIES = (
    (r"gpt-|chatgpt|^o\d|text-davinci", "openai"),
    (r"claude", "anthropic"),
    (r"code-?llama|llama", "llama"),
    (r"deepseek", "deepseek"),
    (r"qwen", "qwen"),
    (r"mistral|mixtral|codestral", "mistral"),
    (r"gemma|gemini", "google"),
    (r"phi-?\d", "phi"),
    (r"smollm", "smollm"),
    (r"starcoder", "starcoder"),
    (r"wizard", "wizard"),
)


def model_family(name: str) -> str:
    """A coarse family for a model name, spec or checkpoint path (its last path component)."""
    base = PurePath(name.split(":", 1)[-1].rstrip("/")).name.lower() or name.lower()
    for pattern, family in _FAMILIES:
        if re.search(pattern, base):
            return family
    m = re.match(r"[a-z]+", base)
    return m.group(0) if m else base


def own_reference_model(model_name: str) -> str | None:
    """The reference model of the judge's own line (paper pairing), or None for other judges."""
    base = PurePath(model_name.split(":", 1)[-1].rstrip("/")).name.lower()
    for prefix, ref_model in _OWN_REFERENCE:
        if base.startswith(prefix):
            return ref_model
    return None


def _column(short_or_full: str) -> str:
    return (
        short_or_full
        if short_or_full.endswith(REFERENCE_SUFFIX)
        else short_or_full + REFERENCE_SUFFIX
    )


def reference_column(
    model_name: str, available_columns: Sequence[str], requested: str | None = None
) -> str:
    """Which reference column the judge sees.

    Requested (short or full name) wins and must exist; otherwise the paper's pairing (a GPT-3.5
    judge saw GPT-3.5 references, and so on), else the first present in the paper's order.
    """
    present = [c for c in available_columns if c.endswith(REFERENCE_SUFFIX)]
    if requested:
        col = _column(requested.strip())
        if col not in present:
            raise UsageError(
                f"reference {requested!r}: column {col!r} is not in the data "
                f"(present: {', '.join(present) or 'none'})"
            )
        return col
    own = own_reference_model(model_name)
    if own and _column(own) in present:
        return _column(own)
    for ref_model in REFERENCE_MODELS:
        if _column(ref_model) in present:
            return _column(ref_model)
    if present:
        return present[0]
    raise UsageError("the CODAL data has no reference column (*_response): cannot judge")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclasses.dataclass
class ParsedRating:
    rating: float | None
    rationale: str
    out_of_range: bool


def parse_rating(text: str, pattern: re.Pattern[str], scale: tuple[float, float]) -> ParsedRating:
    """First regex match wins, as published; the value is kept even outside the scale."""
    m = pattern.search(text)
    if m is None:
        return ParsedRating(None, text.strip(), False)
    rating = float(m.group(1))
    line_start = text.rfind("\n", 0, m.start()) + 1
    rationale = re.sub(r"^\s*\**Rationale:?\**\s*", "", text[:line_start].strip(), flags=re.I)
    return ParsedRating(rating, rationale.strip(), not scale[0] <= rating <= scale[1])


class LLMJudge:
    """A CODAL judge on any backend, with a template set and a reference policy."""

    kind = "llm"

    def __init__(
        self,
        backend: Backend,
        *,
        model_name: str,
        templates: str | None = None,
        reference: str | None = None,
        repeats: int = 1,
        temperature: float | None = None,
        max_tokens: int | None = None,
    ) -> None:
        if repeats < 1:
            raise UsageError(f"--judge-repeats must be at least 1, got {repeats}")
        self.backend = backend
        self.model_name = model_name
        self.templates: TemplateSet = load_templates(templates)
        self.requested_reference = reference
        self.repeats = repeats
        self.temperature = self.templates.temperature if temperature is None else temperature
        self.max_tokens = self.templates.max_tokens if max_tokens is None else int(max_tokens)
        if self.temperature < 0 or self.max_tokens < 1:
            raise UsageError("judge temperature must be >= 0 and max tokens >= 1")
        self._pattern = self.templates.pattern
        self._identity: dict[str, Any] | None = None

    @classmethod
    def audit(cls, store: Any, **options: Any) -> Any:
        """`judge-audit`: rate answers whose pass/fail execution established (see `audit.py`).

        Offered on the class so the command line reaches it through the judge registry without
        naming a benchmark; the judge class is handed over so `audit` does not import this module.
        """
        from .audit import run_audit

        return run_audit(cls, store, **options)

    # -- identity and keys -------------------------------------------------------------------

    @property
    def params(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens)

    def sampling(self) -> dict[str, Any]:
        """For the run config (`judge_sampling`)."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}

    def identity(self) -> dict[str, Any]:
        # The backend names the model; `model_name` only picks the reference, whose text is keyed
        # separately. Templates enter by hash: the same files loaded from elsewhere are the same.
        if self._identity is None:
            self._identity = {
                "kind": "llm",
                "backend": self.backend.identity(),
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
                "templates_sha256": self.templates.sha256,
            }
        return self._identity

    def reference_for(self, columns: Sequence[str]) -> str:
        """The column this judge uses given the data's columns (for the run config)."""
        return reference_column(self.model_name, columns, self.requested_reference)

    def prepare(self, task_data: dict[str, Any]) -> None:
        """Resolve the reference column now, so a missing one fails before any call."""
        self.reference_for(task_data.get("reference_columns", []))

    def settings(self, task_data: dict[str, Any]) -> dict[str, Any]:
        """What the run config records about this judge for a task it grades."""
        return {
            "templates": self.templates.describe(),
            "sampling": self.sampling(),
            "reference": self.reference_for(task_data.get("reference_columns", [])),
        }

    def _inputs(self, item: GradeInput) -> tuple[str, str, str, str]:
        """(preference, instruction, reference column, reference text) of one item."""
        data = item.sample.data
        pref = str(data.get("preference") or item.sample.group)
        if "instruction" not in data:
            raise UsageError(f"item {item.sample.item_id!r} has no 'instruction': not CODAL data")
        cols = [k for k, v in data.items() if k.endswith(REFERENCE_SUFFIX) and v is not None]
        col = self.reference_for(cols)
        return pref, str(data["instruction"]), col, str(data[col])

    def grade_key(self, item: GradeInput) -> str:
        pref, instruction, col, ref = self._inputs(item)
        return content_hash(
            {
                "kind": "grade",
                "judge": self.identity(),
                "templates_sha256": self.templates.sha256,
                "answer_sha256": _sha(item.answer),
                "reference_sha256": _sha(ref),
                "instruction_sha256": _sha(instruction),
                "preference": pref,
                "repeat": item.repeat,
            }
        )

    def expand_repeats(self, items: Sequence[GradeInput]) -> list[GradeInput]:
        """Each answer once per repeat index 0..K-1; the runner grades (and stores) all of them."""
        return [dataclasses.replace(it, repeat=r) for it in items for r in range(self.repeats)]

    # -- grading -------------------------------------------------------------------------------

    def messages(self, item: GradeInput) -> list[Message]:
        pref, instruction, _, ref = self._inputs(item)
        values = {"instruction": instruction, "reference": ref, "response": item.answer}
        system = self.templates.render_system(preference=pref, **values)
        user = self.templates.render_user(pref, **values)
        return [Message("system", system), Message("user", user)]

    def request(self, item: GradeInput) -> Request:
        return Request.make(
            self.backend.identity(),
            self.messages(item),
            self.params,
            sample_index=item.repeat,
            item_id=item.sample.item_id,
            task=item.sample.task,
        )

    def grade(self, items: Sequence[GradeInput], generate: GenerateFn) -> list[Grade]:
        """One request per input (inputs already carry their repeat index), one batch call."""
        if not items:
            return []
        # Build everything first: a template or data problem fails before any paid call.
        prepared = [(it, self._inputs(it)[2], self.request(it), self.grade_key(it)) for it in items]
        unique: dict[str, Request] = {}
        for _, _, req, _ in prepared:
            unique.setdefault(req.key, req)
        # Failed calls come back as Generations with `error` set (the runner owns retries); an
        # exception here is the runner's own failure (store, interrupt) and must propagate.
        by_key = {g.key: g for g in generate(list(unique.values()))}
        return [
            self._grade_one(it, col, req, key, by_key.get(req.key))
            for it, col, req, key in prepared
        ]

    def _grade_one(
        self,
        item: GradeInput,
        column: str,
        req: Request,
        key: str,
        gen: Generation | None,
    ) -> Grade:
        details: dict[str, Any] = {
            "reference_column": column,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "judge_model": self.model_name,
            "templates": {"name": self.templates.name, "sha256": self.templates.sha256},
            "repeat": item.repeat,
            "request_key": req.key,
            "answer_chars": len(item.answer),
        }
        if gen is None or not gen.ok:
            error = (gen.error if gen is not None else None) or "the judge returned no output"
            details.update(error=error, out_of_range=False)
            return Grade(key, "judge_error", None, None, details)
        text = gen.text or ""
        parsed = parse_rating(text, self._pattern, self.templates.scale)
        details.update(
            judge_output=text,
            out_of_range=parsed.out_of_range,
            finish_reason=gen.finish_reason,
        )
        if parsed.rating is None:
            return Grade(key, "parse_failure", None, parsed.rationale, details)
        return Grade(key, "rated", parsed.rating, parsed.rationale, details)
