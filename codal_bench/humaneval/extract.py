"""The program to run for a model's reply (shared by the judge and the per-sample log)."""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


def extract_code(reply: str, prompt: str, entry_point: str) -> str:
    """The program to run for a model's reply.

    Takes the fenced block that defines `entry_point` (else the first fenced block, else the raw
    reply). If the code does not define `entry_point`, it is taken as a body completion and
    put after the prompt, which is how EvalPlus treats a `completion`.
    """
    blocks = _FENCE.findall(reply)
    defines = re.compile(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.MULTILINE)
    code = next((b for b in blocks if defines.search(b)), blocks[0] if blocks else reply)
    if defines.search(code):
        return code
    return prompt + code
