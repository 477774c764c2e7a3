"""Judge template sets: the paper's prompts (default), our YAML + jinja2 layout, upstream .txt.

`paper` (the default) is read from the authors' pinned source files (see `upstream.py`);
`codal-eval` is our own wording, available by name; a folder path loads either a folder in our
layout (judge.yaml) or the paper's prompts as separate .txt files.

A template set is everything that decides what the judge is asked and how its answer is read:
system prompt, one user template per preference, rating regex, scale and sampling defaults. Its
hash goes into every grade key, so editing a template can never reuse a stale grade.

Upstream prompt files must render exactly as the original scripts rendered them, so they are not
translated to jinja2 (which would, among other things, drop the final newline): their placeholders
are checked once at load time and the text is then rendered with `str.format` itself.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..resources import data_dir
from ..types import UsageError, canonical_json
from .scores import PREFERENCES

PAPER_SET = "paper"
OWN_SET = "codal-eval"
DEFAULT_SET = PAPER_SET
ALIASES = {"codal": OWN_SET}  # the name our own set had before the paper's became the default
YAML_FILE = "judge.yaml"
UPSTREAM_SYSTEM = "codal_judge_system_prompt.txt"
UPSTREAM_USER = "codal_judge_user_template_{preference}.txt"
# What every template may use. `preference` is extra to upstream; str.format ignores unused names.
VARIABLES = ("instruction", "reference", "response", "preference")
# The published protocol; the upstream layout carries no settings file, so these apply to it.
PAPER_SETTINGS: dict[str, Any] = {
    "rating_regex": r"\bRating:\s*(\d+)\b",
    "scale": [1, 10],
    "temperature": 0.0,
    "max_tokens": 1024,
}


@dataclass(frozen=True)
class TemplateSet:
    """A loaded, validated template set; rendering cannot fail on syntax once this exists."""

    name: str
    folder: Path
    syntax: str  # "jinja2" or "str.format"
    description: str
    system_file: str
    user_files: dict[str, str]  # preference -> file name relative to folder
    texts: dict[str, str]  # file name -> text as read (newline="" keeps line ends as in the file)
    rating_regex: str
    scale: tuple[float, float]
    temperature: float
    max_tokens: int
    variables: tuple[str, ...]
    sha256: str
    _env: Any = field(default=None, repr=False, compare=False)

    @property
    def preferences(self) -> tuple[str, ...]:
        return tuple(self.user_files)

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(self.rating_regex)

    upstream: dict[str, Any] | None = None  # the pinned upstream files, for the paper set

    def describe(self) -> dict[str, Any]:
        """What a run record stores about the templates."""
        out: dict[str, Any] = {"name": self.name, "sha256": self.sha256, "syntax": self.syntax}
        if self.upstream is not None:
            out["upstream"] = self.upstream
        return out

    def settings(self) -> dict[str, Any]:
        return {
            "rating_regex": self.rating_regex,
            "scale": list(self.scale),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def render_system(self, **values: str) -> str:
        return self._render(self.system_file, values)

    def render_user(self, preference: str, **values: str) -> str:
        if preference not in self.user_files:
            raise UsageError(
                f"judge templates {self.name!r} have no user template for preference "
                f"{preference!r} (have: {', '.join(self.user_files)})"
            )
        return self._render(self.user_files[preference], {"preference": preference, **values})

    def _render(self, fname: str, values: dict[str, str]) -> str:
        text = self.texts[fname]
        if self.syntax == "str.format":
            # Checked at load: only plain named fields, all of them known, so this is safe and is
            # by construction exactly what the upstream scripts produced.
            return text.format(**values)
        import jinja2

        try:
            rendered: str = self._env.get_template(fname).render(**values)
        except jinja2.UndefinedError as exc:
            raise UsageError(f"{self.folder / fname}: {exc.message}") from exc
        return rendered


def load_templates(spec: str | None = None) -> TemplateSet:
    """A template set by NAME (`paper`, or a folder under the judges data folder) or by DIR."""
    spec = spec or DEFAULT_SET
    spec = ALIASES.get(spec, spec)
    if spec == PAPER_SET:
        return _load_paper()
    path = Path(spec).expanduser()
    root = data_dir("judges")
    folder = root / spec
    is_name = "/" not in spec and not spec.startswith((".", "~"))
    known = is_name and ((folder / YAML_FILE).is_file() or (folder / UPSTREAM_SYSTEM).is_file())
    if known:  # a built-in name wins over a same-named folder in the working directory
        return _load_folder(folder, spec)
    if path.is_dir() or not is_name:
        if not path.is_dir():
            raise UsageError(f"judge templates folder {spec!r} does not exist")
        return _load_folder(path.resolve(), str(path.resolve()))
    from ..registry import suggest

    names = sorted([PAPER_SET, *(p.name for p in root.iterdir() if (p / YAML_FILE).is_file())])
    raise UsageError(f"unknown judge templates {spec!r}{suggest(spec, names)}")


def _load_folder(folder: Path, name: str) -> TemplateSet:
    if (folder / YAML_FILE).is_file():
        return _load_yaml(folder, name)
    if (folder / UPSTREAM_SYSTEM).is_file():
        return _load_upstream(folder, name)
    raise UsageError(
        f"{folder} is not a judge template folder: expected {YAML_FILE} (our layout) or "
        f"{UPSTREAM_SYSTEM} + {UPSTREAM_USER} (upstream layout)"
    )


def _read(path: Path) -> str:
    if not path.is_file():
        raise UsageError(f"judge template file {path} does not exist")
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"judge template file {path} cannot be read: {exc}") from exc


def _load_upstream(folder: Path, name: str) -> TemplateSet:
    users = {p: UPSTREAM_USER.format(preference=p) for p in PREFERENCES}
    missing = [f for f in users.values() if not (folder / f).is_file()]
    if missing:
        raise UsageError(f"upstream judge templates in {folder}: missing {', '.join(missing)}")
    texts = {f: _read(folder / f) for f in (UPSTREAM_SYSTEM, *users.values())}
    return _build(
        name, folder, "str.format", "upstream CODAL-Bench judge prompts", UPSTREAM_SYSTEM,
        users, texts, dict(PAPER_SETTINGS), VARIABLES, hashed=_files(folder, sorted(texts)),
    )  # fmt: skip


def _load_paper() -> TemplateSet:
    """The paper's judge prompts, read from the pinned upstream files (fetched if need be)."""
    from . import upstream

    prompts = upstream.paper_prompts()
    missing = [p for p in PREFERENCES if p not in prompts.templates]
    if missing:
        raise UsageError(f"{upstream.TEMPLATES_FILE}: no template for {', '.join(missing)}")
    system = "single_grading_system_prompt"
    users = {p: f"single_grading_templates[{p}]" for p in PREFERENCES}
    texts = {system: prompts.system, **{users[p]: prompts.templates[p] for p in PREFERENCES}}
    files = [upstream.TEMPLATES_FILE]
    hashed = [(f, upstream.fetch(f)) for f in files]
    ts = _build(
        PAPER_SET, upstream.source_dir(), "str.format",
        f"the paper's judge prompts ({upstream.REPOSITORY}@{upstream.COMMIT[:7]})", system,
        users, texts, dict(PAPER_SETTINGS), VARIABLES, hashed=hashed,
    )  # fmt: skip
    info = {"repository": upstream.REPOSITORY, "commit": upstream.COMMIT}
    return replace(ts, upstream={**info, "files": {f: upstream.PINNED[f] for f in files}})


def _load_yaml(folder: Path, name: str) -> TemplateSet:
    yaml_path = folder / YAML_FILE
    raw = _read(yaml_path)
    try:
        conf = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{yaml_path}:{mark.line + 1}:{mark.column + 1}" if mark else str(yaml_path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise UsageError(f"{where}: malformed YAML: {problem}") from exc
    if not isinstance(conf, dict):
        raise UsageError(f"{yaml_path}: expected a mapping of settings, got {type(conf).__name__}")

    def need(key: str) -> Any:
        if key not in conf:
            raise UsageError(f"{yaml_path}: missing key {key!r}")
        return conf[key]

    syntax = str(conf.get("syntax", "jinja2"))
    if syntax not in ("jinja2", "str.format"):
        raise UsageError(f"{yaml_path}: syntax must be jinja2 or str.format, not {syntax!r}")
    system = str(need("system"))
    users = need("user")
    if not isinstance(users, dict) or not users:
        raise UsageError(f"{yaml_path}: 'user' must map each preference to a template file")
    unknown = [p for p in users if p not in PREFERENCES]
    if unknown:
        raise UsageError(
            f"{yaml_path}: unknown preference(s) {', '.join(map(str, unknown))} "
            f"(known: {', '.join(PREFERENCES)})"
        )
    users = {str(p): str(f) for p, f in users.items()}
    settings = {k: conf.get(k, v) for k, v in PAPER_SETTINGS.items()}
    variables = tuple(str(v) for v in conf.get("variables", VARIABLES))
    texts = {f: _read(folder / f) for f in (system, *users.values())}
    # Every file of the folder, not only the named ones: an included partial changes prompts too.
    hashed = sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file()
        and not any(part.startswith((".", "__")) for part in p.relative_to(folder).parts)
    )
    return _build(
        name, folder, syntax, str(conf.get("description", "")).strip(), system, users, texts,
        settings, variables, hashed=_files(folder, hashed),
    )  # fmt: skip


def _files(folder: Path, rels: list[str]) -> list[tuple[str, bytes]]:
    return [(rel, (folder / rel).read_bytes()) for rel in rels]


def _build(
    name: str,
    folder: Path,
    syntax: str,
    description: str,
    system: str,
    users: dict[str, str],
    texts: dict[str, str],
    settings: dict[str, Any],
    variables: tuple[str, ...],
    *,
    hashed: list[tuple[str, bytes]],
) -> TemplateSet:
    where = folder / YAML_FILE if (folder / YAML_FILE).exists() else folder
    unsupported = [v for v in variables if v not in VARIABLES]
    if unsupported:
        raise UsageError(
            f"{where}: variables {', '.join(unsupported)} are not provided to judge templates "
            f"(available: {', '.join(VARIABLES)})"
        )
    regex = str(settings["rating_regex"])
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise UsageError(f"{where}: rating_regex {regex!r} is invalid: {exc}") from exc
    if pattern.groups < 1:
        raise UsageError(f"{where}: rating_regex {regex!r} needs a group capturing the number")
    scale = settings["scale"]
    try:
        lo, hi = (float(x) for x in scale)
        temperature = float(settings["temperature"])
        max_tokens = int(settings["max_tokens"])
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{where}: scale/temperature/max_tokens malformed: {exc}") from exc
    if not lo < hi or max_tokens < 1 or temperature < 0:
        raise UsageError(f"{where}: need scale lo < hi, max_tokens >= 1 and temperature >= 0")

    env = None
    if syntax == "str.format":
        for fname in texts:
            _check_format_fields(folder / fname, texts[fname], variables)
    else:
        env = _jinja_env(folder, texts, variables)

    digest = hashlib.sha256()
    for rel, data in hashed:
        digest.update(rel.encode("utf-8") + b"\0")
        digest.update(data + b"\0")
    resolved = {"syntax": syntax, "system": system, "user": users, **settings}
    digest.update(canonical_json(resolved).encode("utf-8"))
    return TemplateSet(
        name, folder, syntax, description, system, users, texts, regex, (lo, hi), temperature,
        max_tokens, variables, digest.hexdigest(), env,
    )  # fmt: skip


def _check_format_fields(path: Path, text: str, variables: tuple[str, ...]) -> None:
    """Allow only `{name}` fields with known names: no attribute or index access, no positions."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise UsageError(f"{path}: not a valid str.format template: {exc}") from exc
    for f in fields:
        if not re.fullmatch(r"[A-Za-z_]\w*", f):
            raise UsageError(
                f"{path}: placeholder {{{f}}} is not allowed (use only {{name}} with a name from "
                f"{', '.join(variables)}; write {{{{ and }}}} for literal braces)"
            )
        if f not in variables:
            raise UsageError(
                f"{path}: placeholder {{{f}}} is not a template variable "
                f"(available: {', '.join(variables)})"
            )


def _jinja_env(folder: Path, texts: dict[str, str], variables: tuple[str, ...]) -> Any:
    """Compile every template now, so a syntax error or unknown name fails before any request."""
    import jinja2
    from jinja2 import meta

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    for fname, text in texts.items():
        try:
            ast = env.parse(text, name=fname, filename=str(folder / fname))
            env.get_template(fname)
        except jinja2.TemplateSyntaxError as exc:
            raise UsageError(
                f"{folder / fname}:{exc.lineno}: template error: {exc.message}"
            ) from exc
        except jinja2.TemplateNotFound as exc:
            raise UsageError(f"{folder / fname}: includes missing template {exc.name!r}") from exc
        unknown = sorted(meta.find_undeclared_variables(ast) - set(variables))
        if unknown:
            raise UsageError(
                f"{folder / fname}: uses undefined variable(s) {', '.join(unknown)} "
                f"(available: {', '.join(variables)})"
            )
    return env
