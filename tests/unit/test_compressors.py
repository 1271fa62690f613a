"""Prompt compressors: protected tokens survive, rates are honoured, LLMLingua-2 runs offline on a
tiny random token classifier built here."""

from __future__ import annotations

from pathlib import Path

import pytest

from memsvc.compressors import PROMPT_COMPRESSORS, IdentityCompressor, SelfInfoCompressor
from memsvc.compressors.prompt import protected_tokens
from memsvc.exceptions import ConfigError
from memsvc.tokens import count_tokens

TEXT = (
    "Caroline: Hey Mel! Good to see you! How have you been? I went to a LGBTQ support group "
    "yesterday and it was so so powerful, um, you know, really inspiring.\n"
    "Melanie: Wow, that's really cool. I've been painting a lot lately, like a lake sunrise I painted "
    "on 8 May 2022 for my kids, and I ran a charity race for $250 last Saturday."
)


def test_selfinfo_keeps_protected_tokens_and_cuts_tokens() -> None:
    c = SelfInfoCompressor()
    for rate in (0.9, 0.7, 0.5, 0.3):
        out = c.compress([TEXT], rate=rate, keep=["lake"])[0]
        for tok in protected_tokens(TEXT, keep=["lake"]):
            assert tok in out.text, (rate, tok)
        for must in ("Caroline", "Melanie", "8", "May", "2022", "250", "Saturday", "yesterday", "LGBTQ", "lake"):
            assert must in out.text.split() or must in out.text, (rate, must)
        assert out.compressed_tokens == count_tokens(out.text) < out.original_tokens
    mid = c.compress([TEXT], rate=0.7)[0]
    assert mid.kept_ratio <= 0.75
    assert "um" not in mid.text.split() and "so so" not in mid.text


def test_selfinfo_never_adds_words_and_handles_edge_cases() -> None:
    c = SelfInfoCompressor()
    out = c.compress(["", "Ok.", "The the the."], rate=0.5)
    assert out[0].text == "" and out[0].kept_ratio == 1.0
    src_words = set(TEXT.replace("\n", " ").split())
    got = c.compress([TEXT], rate=0.4)[0].text
    assert all(w.strip(".,!?:") in TEXT for w in got.split()), src_words
    with pytest.raises(ConfigError):
        c.compress([TEXT], rate=0.0)
    with pytest.raises(ConfigError):
        SelfInfoCompressor(rate=2.0)


def test_question_words_are_kept() -> None:
    c = SelfInfoCompressor()
    out = c.compress(["I really think that the weather was quite nice during the whole trip"], rate=0.4,
                     question="How was the weather?")[0]
    assert "weather" in out.text


def test_registry_names() -> None:
    assert isinstance(PROMPT_COMPRESSORS.create("none"), IdentityCompressor)
    assert PROMPT_COMPRESSORS.create("none").compress([TEXT])[0].text == TEXT
    with pytest.raises(ConfigError):
        PROMPT_COMPRESSORS.create("gzip")


def _tiny_token_classifier(root: Path, dirname: str) -> Path:
    import string

    from transformers import BertConfig, BertForTokenClassification, BertTokenizer

    words = sorted({w.strip(".,!?:$'") for w in TEXT.split()} - {""})
    chars = string.ascii_letters + string.digits
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *string.punctuation, *words]
    vocab += [f"##{ch}" for ch in chars]
    d = root / dirname
    d.mkdir(parents=True)
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(dict.fromkeys(vocab))}, do_lower_case=False)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512, num_labels=2)
    BertForTokenClassification(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.mark.parametrize("dirname", ["tiny-classifier", "tiny-bert-base-multilingual-cased"])
def test_llmlingua2_offline_with_tiny_model(tmp_path: Path, dirname: str) -> None:
    import llmlingua  # noqa: F401  (a [dev] dependency: a broken install fails here)
    model = _tiny_token_classifier(tmp_path, dirname)
    c = PROMPT_COMPRESSORS.create("llmlingua2", model=str(model), rate=0.5)
    out = c.compress([TEXT], keep=["Caroline", "Melanie"])[0]
    assert 0 < out.compressed_tokens < out.original_tokens
    for must in ("Caroline", "Melanie", "2022", "250"):
        assert must in out.text
    # the model loads once and is reused
    assert c._compressor() is c._compressor()
