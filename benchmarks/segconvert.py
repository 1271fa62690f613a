"""Build segmentation benchmark files (jsonl: utterances, segmentation_label, roles) from other data.

    python -m memsvc.benchmarks.segconvert mtbenchplus ../shared/data/mtbenchplus/mtbenchplus.json OUT.jsonl
    python -m memsvc.benchmarks.segconvert joined ../shared/data/longmemeval/longmemeval_s_dev100.json.gz OUT.jsonl

``mtbenchplus``: the user turns of each MT-Bench+ conversation (its assistant turns are empty), a
segment per run of the same ``turn-info`` topic tag; the closing long-range question (tag ``-Q``) is
left out. ``joined``: a DialSeg711-style set (Xu et al. 2021 joined whole task-oriented dialogues, so a
boundary is where one dialogue ends): for every LongMemEval question, 3 to 5 of its haystack sessions
(user/assistant conversations) are cut to their first 4 to 8 turns and joined; boundaries are the
joins. Deterministic (seed 0). The results go outside the repository (the data licenses apply).
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["joined_sessions", "mtbenchplus"]


def mtbenchplus(path: str | Path) -> Iterator[dict[str, Any]]:
    """One dialogue per MT-Bench+ conversation (user turns; segments = topic tags)."""
    for conv in json.loads(Path(path).read_text(encoding="utf-8")):
        turns = [c for c in conv["conversations"] if c["from"] == "human" and c["value"].strip()]
        turns = [c for c in turns if not str(c.get("turn-info", "")).endswith("-Q")]
        topics = [str(c.get("turn-info", "")).rsplit("-", 1)[0] for c in turns]
        labels = [int(i == len(topics) - 1 or topics[i] != topics[i + 1]) for i in range(len(topics))]
        labels[-1] = 0
        yield {"dial_id": conv["id"], "utterances": [c["value"] for c in turns], "segmentation_label": labels,
               "roles": ["user"] * len(turns)}


def joined_sessions(path: str | Path, seed: int = 0) -> Iterator[dict[str, Any]]:
    """DialSeg711-style dialogues: 3-5 haystack sessions, first 4-8 turns each, joined."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        data = json.load(f)
    rng = np.random.default_rng(seed)
    for q in data:
        sessions = [s for s in q["haystack_sessions"] if len(s) >= 4]
        if len(sessions) < 3:
            continue
        pick = rng.choice(len(sessions), size=int(rng.integers(3, 6)), replace=False)
        utts: list[str] = []
        roles: list[str] = []
        labels: list[int] = []
        for k in pick:
            part = sessions[int(k)][: int(rng.integers(4, 9))]
            utts += [str(t["content"]) for t in part]
            roles += [str(t["role"]) for t in part]
            labels += [0] * (len(part) - 1) + [1]
        labels[-1] = 0
        yield {"dial_id": q["question_id"], "utterances": utts, "segmentation_label": labels, "roles": roles}


def main(argv: Sequence[str] | None = None) -> int:
    """``segconvert mtbenchplus|joined IN OUT``."""
    kind, src, dst = argv if argv is not None else sys.argv[1:]
    rows = mtbenchplus(src) if kind == "mtbenchplus" else joined_sessions(src)
    with open(dst, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
