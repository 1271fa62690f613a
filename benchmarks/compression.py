"""Prompt-compression benchmark: tokens before/after, speed, protected-token survival.

Input: a LoCoMo-style JSON file (``conversation.session_N`` turns), a JSONL file of ``{"text": ...}``
lines, or a plain text file (one unit per blank-line-separated block). LoCoMo turns are grouped into
units of ``group`` consecutive turns of one session, the way episodes are stored.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memsvc.compressors import PROMPT_COMPRESSORS
from memsvc.compressors.prompt import protected_tokens

__all__ = ["load_units", "run_compression"]


def load_units(path: Path, group: int = 8) -> list[str]:
    """Texts to compress from ``path`` (see module docstring)."""
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(raw)
        units: list[str] = []
        for conv in data if isinstance(data, list) else [data]:
            c = conv["conversation"]
            n = 1
            while f"session_{n}" in c:
                turns = [
                    f"{t['speaker']}: {t['text']}" + (f" [shares a photo: {t['blip_caption']}]" if t.get("blip_caption") else "")
                    for t in c[f"session_{n}"]
                ]
                units += ["\n".join(turns[i : i + group]) for i in range(0, len(turns), group)]
                n += 1
        return units
    if path.suffix == ".jsonl":
        return [json.loads(line)["text"] for line in raw.splitlines() if line.strip()]
    return [b.strip() for b in re.split(r"\n\s*\n", raw) if b.strip()]


def run_compression(units: Sequence[str], compressor: str = "selfinfo", rate: float = 0.7,
                    options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compress every unit; report token counts, time per 1k tokens and protected-token survival."""
    comp = PROMPT_COMPRESSORS.create(compressor, **(options or {}))
    comp.compress(units[:1], rate=rate)  # load models outside the timing
    t0 = time.perf_counter()
    out = comp.compress(list(units), rate=rate)
    elapsed = time.perf_counter() - t0
    before = sum(o.original_tokens for o in out)
    after = sum(o.compressed_tokens for o in out)
    total_prot = kept_prot = 0
    for src, o in zip(units, out, strict=True):
        prot = protected_tokens(src)
        total_prot += len(prot)
        kept_prot += sum(1 for p in prot if p in o.text)
    return {
        "compressor": compressor,
        "rate": rate,
        "units": len(units),
        "tokens_before": before,
        "tokens_after": after,
        "token_reduction_pct": round(100 * (1 - after / before), 2) if before else 0.0,
        "ms_per_1k_tokens": round(1000 * elapsed / max(before, 1) * 1000, 3),
        "protected_tokens": total_prot,
        "protected_survival_pct": round(100 * kept_prot / total_prot, 3) if total_prot else 100.0,
    }
