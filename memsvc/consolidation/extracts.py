"""Turn extracts: each chat turn's line as an extractive summary keeps it, packed where it is cheaper.

A turn such as ``"Mel: Wow, that's so cool! I ran a charity 5k with my kids last Sunday. How was your
week?"`` reads, in an episode summary, ``"Mel: I ran a charity 5k with my kids last Sunday."``: the
extractive summarizer's ``denoise`` keeps the turn's most informative sentences, verbatim, until they
hold ``extract_keep_share`` (80 %) of its informative words, and drops chit-chat. The ``extract`` job
stores that line on the turn (``meta.extract``, with ``meta.extract_of``, a hash of the text it was
made from; the turn's text itself never changes). When ``search`` packs a token budget, a turn hit whose
extract is shorter is packed as its extract (its ``source_ids`` are still the turn's event, the full
text goes to ``metadata["full_text"]``), so more evidence fits in the budget. Ranking still reads the
full turn.

Idempotent: a turn whose ``extract_of`` matches its current text is skipped; a turn whose text changed
(e.g. compressed by decay) is extracted again, and ``apply_extracts`` ignores an extract made from
another text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from memsvc.compressors.summary.extractive import denoise
from memsvc.consolidation._common import config, store
from memsvc.models import Hit
from memsvc.stores import Scope
from memsvc.tokens import count_tokens

if TYPE_CHECKING:
    from memsvc.service import MemoryService

__all__ = ["apply_extracts", "extract_text", "extract_turns", "text_digest"]

MIN_SAVING = 3
"""Tokens an extract must save over its turn to be stored."""


def text_digest(text: str) -> str:
    """The hash ``meta.extract_of`` holds: which text an extract was made from."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def extract_text(text: str, keep_share: float = 0.8) -> str | None:
    """The turn's extract (speaker prefix kept), or None when it would not save ``MIN_SAVING`` tokens."""
    head, sep, body = text.partition(": ")
    if not sep or not head or len(head) > 64 or "\n" in head:
        head, sep, body = "", "", text
    short = denoise(body, keep_share)
    if not short:
        return None
    out = f"{head}{sep}{short}"
    return out if count_tokens(out) + MIN_SAVING <= count_tokens(text) else None


def extract_turns(svc: MemoryService, scope: Scope) -> dict[str, int]:
    """Store extracts on the user's chat turns that have none for their current text."""
    cfg = config(svc)
    if not cfg.turn_extracts:
        return {"turn_extracts": 0}
    st = store(svc)
    todo: dict[str, dict[str, object]] = {}
    made = 0
    for u in st.live_units(scope, ["turn"]):
        meta = dict(u.meta or {})
        if u.stream_id is not None or not u.text or meta.get("extract_of") == text_digest(u.text):
            continue
        ext = extract_text(u.text, cfg.extract_keep_share)
        meta["extract"] = ext
        meta["extract_of"] = text_digest(u.text)
        made += ext is not None
        todo[u.id] = {"meta": meta}
    for u in st.live_units(scope, ["episode"], ["closed"]):  # an episode reads as its turns' extracts
        meta = dict(u.meta or {})
        if u.stream_id is not None or not u.text or meta.get("extract_of") == text_digest(u.text):
            continue
        lines = u.text.split("\n")
        short = "\n".join(extract_text(ln, cfg.extract_keep_share) or ln for ln in lines)
        meta["extract"] = short if count_tokens(short) + MIN_SAVING <= count_tokens(u.text) else None
        meta["extract_of"] = text_digest(u.text)
        todo[u.id] = {"meta": meta}
    for k in range(0, len(todo), 500):  # small transactions: a kill loses at most one batch of work
        st.update_units(dict(list(todo.items())[k : k + 500]))
    return {"turn_extracts": made}


def apply_extracts(hits: Sequence[Hit], use: bool = True) -> list[Hit]:
    """Hits as the packer should see them: with ``use``, turns with a valid, shorter extract carry it as
    their text; either way the extract bookkeeping leaves ``metadata``."""
    for h in hits:
        md = h.metadata
        if "extract_of" not in md:
            continue
        ext = md.pop("extract", None)
        made_from = md.pop("extract_of")
        if use and ext and made_from == text_digest(h.text):
            md["full_text"] = h.text
            h.text = ext
    return list(hits)
