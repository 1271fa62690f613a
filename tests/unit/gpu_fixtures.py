"""Shared builders for the gpu/ unit tests: a tiny random GQA Llama and a byte-level tokenizer."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM


def tiny_llama(vocab_size: int = 64, seed: int = 0) -> LlamaForCausalLM:
    """2 layers, 4 query heads sharing 2 KV heads (GQA), random weights."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return LlamaForCausalLM(cfg).eval()


def prefill(
    model: LlamaForCausalLM, ids: torch.Tensor, press: object = None
) -> tuple[DynamicCache, torch.Tensor]:
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        if press is None:
            out = model(input_ids=ids, past_key_values=cache)
        else:
            with press(model):  # type: ignore[operator]
                out = model(input_ids=ids, past_key_values=cache)
    return cache, out.logits


def save_tiny_chat_model(path: Path, chat_template: str | None = None) -> Path:
    """A random tiny Llama plus a byte-level tokenizer, saved like a hub checkpoint."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {"<s>": 0, "</s>": 1, **{c: i + 2 for i, c in enumerate(alphabet)}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")
    if chat_template:
        fast.chat_template = chat_template
    fast.save_pretrained(path)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=0,
        eos_token_id=1,
    )
    LlamaForCausalLM(cfg).save_pretrained(path)
    return path
