"""Boundary features for one candidate gap, computed only from what an online segmenter can see.

A candidate gap ``j`` lies between items ``j`` and ``j + 1`` of a *context*: the items of the episode
that is still open (from its first item) up to at most ``lookahead`` items after the gap. Every feature
is a function of that context alone, so feeding a dialogue in pieces gives the same features, and the
same cuts, as feeding it whole.

Features (``FEATURE_NAMES``, in order):
    cos_w1, cos_w2, cos_w3   cosine of the mean embeddings of the w items before and after the gap
                             (TextTiling's block comparison; the left block never crosses the episode start)
    cos_seg_next             open-episode centroid vs the next item
    cos_seg_right            open-episode centroid vs the mean of the lookahead items
    max_seg_next             best cosine of the next item to any item of the open episode
    depth_w2                 TextTiling depth of the gap over the w=2 similarity curve inside the context
    drop_w1                  cos_w1 minus the mean adjacent cosine inside the open episode
    right_coh, left_coh      cosine of the two items after / before the gap
    log_len                  log of the open episode's length (items before the gap)
    lookahead                share of the lookahead that exists (below 1 only at the end of a session)
    q_cur_end, q_cur_any     the item before the gap ends with / contains a question mark
    q_next_end, q_next_any   the same for the item after the gap
    words_cur, words_next    log word counts
    spk_known, spk_change    speakers are known; the speaker changes at the gap
    spk_first                the next item's speaker is the one who opened the episode
    skip_left, skip_right    cosine of the item before the gap's predecessor with the next item, and of the
                             item before the gap with the one two after it (cos_w1 where they do not exist):
                             in a two-party chat these pair turns of the same speaker, so a speaker's name
                             in the embedded text ("speaker: text", as Memory.add embeds turns) does not
                             pull them apart (+0.005 Score in 4-fold TIAGE cross-validation)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memsvc._types import Matrix

__all__ = ["FEATURE_NAMES", "gap_features", "similarity_curve"]

FEATURE_NAMES: tuple[str, ...] = (
    "cos_w1", "cos_w2", "cos_w3", "cos_seg_next", "cos_seg_right", "max_seg_next", "depth_w2", "drop_w1",
    "right_coh", "left_coh", "log_len", "lookahead", "q_cur_end", "q_cur_any", "q_next_end", "q_next_any",
    "words_cur", "words_next", "spk_known", "spk_change", "spk_first", "skip_left", "skip_right",
)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na < 1e-9 or nb < 1e-9:
        return 0.0
    return float(a @ b) / (na * nb)


def _block_cos(emb: Matrix, j: int, w: int) -> float:
    """Cosine between the mean of items (j-w, j] and of items (j, j+w], clipped to the context."""
    left = emb[max(0, j - w + 1) : j + 1].mean(0)
    right = emb[j + 1 : j + 1 + w].mean(0)
    return _cos(left, right)


def similarity_curve(emb: Matrix, w: int) -> np.ndarray:
    """Block cosine at every gap of ``emb`` (len - 1 values)."""
    return np.array([_block_cos(emb, j, w) for j in range(len(emb) - 1)], dtype=np.float64)


def depth_at(curve: np.ndarray, j: int) -> float:
    """TextTiling depth: climb left and right from ``j`` while similarity rises; sum of the two rises."""
    lo = curve[j]
    k = j
    while k > 0 and curve[k - 1] >= lo:
        k -= 1
        lo = curve[k]
    hi = curve[j]
    k = j
    while k < len(curve) - 1 and curve[k + 1] >= hi:
        k += 1
        hi = curve[k]
    return float(lo + hi - 2 * curve[j])


def _words(text: str) -> float:
    return float(np.log1p(len(text.split())))


def gap_features(
    emb: Matrix,
    texts: Sequence[str],
    speakers: Sequence[str | None],
    j: int,
    lookahead: int,
) -> np.ndarray:
    """Feature vector of the gap after item ``j`` of a context (see the module docstring).

    Args:
        emb: (m, d) L2-normalised embeddings of the context: the open episode's items, then at most
            ``lookahead`` items after the gap (m - j - 1 <= lookahead, >= 1).
        texts: the items' texts ("" for frames).
        speakers: the items' speakers (None when unknown).
        j: index of the last item before the gap.
        lookahead: the lookahead the segmenter asks for (to normalise the share that exists).
    """
    m = len(emb)
    seg = emb[: j + 1]
    nxt = emb[j + 1]
    centroid = seg.mean(0)
    curve = similarity_curve(emb, 2)
    adj = np.einsum("ij,ij->i", emb[:-1], emb[1:]) if m > 1 else np.zeros(0)
    cos_w1 = float(adj[j])
    drop = cos_w1 - float(adj[:j].mean()) if j > 0 else 0.0
    right_coh = float(adj[j + 1]) if j + 1 < m - 1 else cos_w1
    left_coh = float(adj[j - 1]) if j > 0 else cos_w1
    cur, nx = texts[j] or "", texts[j + 1] or ""
    s_cur, s_nxt, s_first = speakers[j], speakers[j + 1], speakers[0]
    known = s_cur is not None and s_nxt is not None
    return np.array(
        [
            cos_w1,
            _block_cos(emb, j, 2),
            _block_cos(emb, j, 3),
            _cos(centroid, nxt),
            _cos(centroid, emb[j + 1 :].mean(0)),
            float((seg @ nxt).max()),
            depth_at(curve, j),
            drop,
            right_coh,
            left_coh,
            float(np.log(j + 1)),
            (m - j - 1) / max(lookahead, 1),
            float(cur.rstrip().endswith("?")),
            float("?" in cur),
            float(nx.rstrip().endswith("?")),
            float("?" in nx),
            _words(cur),
            _words(nx),
            float(known),
            float(known and s_cur != s_nxt),
            float(known and s_first is not None and s_nxt == s_first),
            float(emb[j - 1] @ nxt) if j > 0 else cos_w1,
            float(emb[j] @ emb[j + 2]) if j + 2 < m else cos_w1,
        ],
        dtype=np.float32,
    )
