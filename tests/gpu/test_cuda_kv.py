"""CUDA checks: presses, positions and episode reuse in bfloat16 on the GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu


def test_needle_survives_snapkv_in_bf16(device: str) -> None:
    import torch
    from transformers import DynamicCache

    from memsvc.gpu.policies import SnapKVPress, StreamingLLMPress
    from memsvc.gpu.toy import RecallTask, build_recall_model

    task = RecallTask(context_tokens=2048)
    model = build_recall_model(task).to(device=device, dtype=torch.bfloat16)
    ctx, question, answer = task.sample(8, torch.Generator().manual_seed(0), query_aware=True)
    ctx, question, answer = ctx.to(device), question.to(device), answer.to(device)
    results = {}
    for name, press in {
        "full": None,
        "snapkv": SnapKVPress(0.875),
        "streaming": StreamingLLMPress(0.875),
    }.items():
        cache = DynamicCache(config=model.config)
        with torch.inference_mode():
            if press is None:
                model(input_ids=ctx, past_key_values=cache)
            else:
                with press(model):
                    model(input_ids=ctx, past_key_values=cache)
            pred = model(input_ids=question, past_key_values=cache).logits[:, -1].argmax(-1)
        results[name] = float((pred == answer).float().mean())
    assert results["full"] == 1.0 and results["snapkv"] == 1.0 and results["streaming"] < 0.5


def test_episode_reuse_on_gpu(tmp_path: Path, device: str) -> None:
    import torch
    from transformers import DynamicCache

    from memsvc.gpu.episode_store import EpisodeKVStore
    from memsvc.gpu.policies import ExpectedAttentionPress
    from memsvc.gpu.toy import RecallTask, build_recall_model

    task = RecallTask(context_tokens=4096)
    model = build_recall_model(task).to(device=device, dtype=torch.bfloat16)
    ctx, question, _ = task.sample(1, torch.Generator().manual_seed(1))
    ctx, question = ctx.to(device), question.to(device)
    cache = DynamicCache(config=model.config)
    with torch.inference_mode(), ExpectedAttentionPress(0.75)(model):
        model(input_ids=ctx, past_key_values=cache)
    store = EpisodeKVStore(tmp_path, "toy")
    store.put("e", cache, content_hash="h" * 64, token_ids=ctx, press_spec="ea")
    hit = store.get("e", content_hash="h" * 64, press_spec="ea", dtype=torch.bfloat16, device=device)
    assert hit is not None
    with torch.inference_mode():
        a = model(input_ids=question, past_key_values=cache).logits
        b = model(input_ids=question, past_key_values=hit.cache).logits
    assert torch.equal(a, b)


def test_llm_picks_cuda(tmp_path: Path) -> None:
    from memsvc.gpu.llm import LLM
    from tests.unit.gpu_fixtures import save_tiny_chat_model

    llm = LLM(
        str(save_tiny_chat_model(tmp_path / "m")), press="knorm", press_options={"compression_ratio": 0.5}
    )
    assert llm.device == "cuda"
    assert isinstance(llm.answer("hi", context="x", max_new_tokens=4), str)
