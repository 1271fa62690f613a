"""EM-LLM surprise segmenter with a tiny random causal LM built from a config in a temp dir."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from memsvc.benchmarks.segmentation import segment_online
from memsvc.exceptions import ConfigError
from memsvc.segmenters import SEGMENTERS, SegmentItem, SurpriseSegmenter
from memsvc.segmenters.surprise import modularity

WORDS = ["the", "a", "i", "you", "we", "to", "of", "and", "is", "it", "do", "like", "my", "cats", "dogs", "music", "jazz", "rain", "weather", "cold", "hot", "today", "where", "what", "how"]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("tiny-lm")
    vocab = {w: i for i, w in enumerate(["[UNK]", "[BOS]", ":", "?", ".", *WORDS])}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", bos_token="[BOS]").save_pretrained(path)
    cfg = GPT2Config(vocab_size=len(vocab), n_positions=256, n_embd=16, n_layer=1, n_head=2,
                     bos_token_id=1, eos_token_id=1)
    GPT2LMHeadModel(cfg).save_pretrained(path)
    return str(path)


def _items() -> list[SegmentItem]:
    rng = np.random.default_rng(0)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    texts = ["i like cats", "do you like dogs ?", "my dogs like music", "jazz is hot", "where is the rain ?",
             "it is cold today", "what do you like ?", "i like jazz", "the weather is hot", "how are you ?"]
    return [SegmentItem(rng.normal(size=8).astype(np.float32), t0 + timedelta(seconds=i), t, "AB"[i % 2])
            for i, t in enumerate(texts * 2)]


@pytest.mark.parametrize("refine", [0, 2])
def test_runs_and_online_equals_offline(tiny_lm: str, refine: int) -> None:
    items = _items()
    seg = SurpriseSegmenter(model=tiny_lm, threshold=0.5, refine=refine, min_size=1)
    offline = seg.split(items, final=True)
    assert sum(offline) == len(items)
    fresh = SEGMENTERS.create("surprise", model=tiny_lm, threshold=0.5, refine=refine, min_size=1)
    assert segment_online(fresh, items) == offline


def test_surprise_is_a_mean_negative_log_probability(tiny_lm: str) -> None:
    seg = SurpriseSegmenter(model=tiny_lm)
    s = seg._surprise(("i like cats\n", "do you like dogs ?\n"))
    vocab_size = len(WORDS) + 5
    assert 0 < s < 3 * np.log(vocab_size)  # a random model is near uniform


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        SurpriseSegmenter()
    with pytest.raises(ConfigError):
        SurpriseSegmenter(model="x", window=1)


def test_modularity_prefers_the_true_split() -> None:
    a = np.zeros((6, 6))
    a[:3, :3] = 1
    a[3:, 3:] = 1
    np.fill_diagonal(a, 0)
    assert modularity(a, [0, 0, 0, 1, 1, 1]) > modularity(a, [0, 0, 1, 1, 1, 1])
    assert modularity(np.zeros((3, 3)), [0, 1, 1]) == 0.0


def test_missing_model_is_a_model_error(tmp_path: Path) -> None:
    from memsvc.exceptions import ModelError

    seg = SurpriseSegmenter(model=str(tmp_path / "nothing-here"))
    with pytest.raises(ModelError):
        seg.split(_items()[:5], final=True)
