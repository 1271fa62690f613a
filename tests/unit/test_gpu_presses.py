"""KV presses: budgets, promises (sinks, window), exact positions after pruning, needle retention."""

from __future__ import annotations

import pytest
import torch
import transformers  # noqa: F401  (a [dev] dependency: a broken install fails here)
from transformers import DynamicCache  # noqa: E402

from memsvc.exceptions import ConfigError  # noqa: E402
from memsvc.gpu.cache import CompressedLayer, capture_attention_inputs, compress_cache, kv_bytes  # noqa: E402
from memsvc.gpu.policies import (  # noqa: E402
    PRESSES,
    ExpectedAttentionPress,
    KIVIPress,
    KnormPress,
    ScorerPress,
    SnapKVPress,
    StreamingLLMPress,
)
from memsvc.gpu.toy import RecallTask, build_recall_model, finetune  # noqa: E402
from tests.unit.gpu_fixtures import prefill, tiny_llama  # noqa: E402

SCORERS = ["streaming_llm", "knorm", "snapkv", "expected_attention"]


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return tiny_llama()


@pytest.fixture(scope="module")
def toy():  # type: ignore[no-untyped-def]
    """The toy recall model: compiled, then perturbed and trained for 10 steps (a few seconds on an idle 2-core CPU)."""
    task = RecallTask(context_tokens=256)
    torch.manual_seed(0)
    return finetune(build_recall_model(task), task, steps=10, noise=0.02, max_context=128)


@pytest.mark.parametrize("name", SCORERS)
@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.875])
def test_press_never_exceeds_budget(model, name: str, ratio: float) -> None:  # type: ignore[no-untyped-def]
    n = 96
    press = PRESSES.create(name, compression_ratio=ratio, **({"window_size": 16} if name == "snapkv" else {}))
    cache, _ = prefill(model, torch.randint(3, 64, (2, n)), press)
    budget = max(1, int(n * (1 - ratio)))
    for layer in cache.layers:
        assert isinstance(layer, CompressedLayer)
        assert layer.keys.shape[-2] == layer.values.shape[-2] == budget
        assert layer.get_seq_length() == n
        pos = layer.positions.long()
        assert pos.shape == (2, 2, budget)
        assert bool((pos[..., 1:] > pos[..., :-1]).all()) and int(pos.min()) >= 0 and int(pos.max()) < n


def test_streaming_llm_keeps_sinks_and_recent_window(model) -> None:  # type: ignore[no-untyped-def]
    n, ratio = 80, 0.75
    cache, _ = prefill(model, torch.randint(3, 64, (1, n)), StreamingLLMPress(ratio, n_sink=4))
    k = int(n * (1 - ratio))
    want = list(range(4)) + list(range(n - (k - 4), n))
    for layer in cache.layers:
        for head in layer.positions[0]:
            assert head.tolist() == want


def test_snapkv_always_keeps_its_window(model) -> None:  # type: ignore[no-untyped-def]
    n, w = 128, 16
    cache, _ = prefill(model, torch.randint(3, 64, (2, n)), SnapKVPress(0.75, window_size=w))
    for layer in cache.layers:
        tail = layer.positions[..., -w:].long()
        assert bool((tail == torch.arange(n - w, n)).all())


def test_pruned_cache_decodes_like_masked_full_cache(model) -> None:  # type: ignore[no-untyped-def]
    """Same kept positions in every head: the pruned cache must equal the full cache with the dropped
    positions masked out, for a multi-token suffix (RoPE positions + causal mask) and a decode step."""
    n = 40
    ids, suffix = torch.randint(3, 64, (1, n)), torch.randint(3, 64, (1, 3))
    pruned, _ = prefill(model, ids, StreamingLLMPress(0.5, n_sink=4))
    kept = pruned.layers[0].positions[0, 0].long()
    full, _ = prefill(model, ids)
    mask = torch.zeros(1, n + 3, dtype=torch.long)
    mask[0, kept] = 1
    mask[0, n:] = 1
    with torch.inference_mode():
        a = model(input_ids=suffix, past_key_values=pruned).logits
        b = model(input_ids=suffix, past_key_values=full, attention_mask=mask).logits
        assert torch.allclose(a, b, atol=1e-5)
        nxt = a[:, -1:].argmax(-1)
        a2 = model(input_ids=nxt, past_key_values=pruned).logits
        b2 = model(
            input_ids=nxt,
            past_key_values=full,
            attention_mask=torch.cat([mask, torch.ones(1, 1, dtype=torch.long)], 1),
        ).logits
        assert torch.allclose(a2, b2, atol=1e-5)
    assert pruned.get_seq_length() == n + 4
    assert pruned.layers[0].positions[0, 0, -4:].tolist() == [n, n + 1, n + 2, n + 3]


def test_generate_runs_on_a_pruned_cache(model) -> None:  # type: ignore[no-untyped-def]
    ids = torch.randint(3, 64, (1, 48))
    cache, _ = prefill(model, ids, KnormPress(0.5))
    out = model.generate(
        input_ids=torch.cat([ids, torch.tensor([[5, 6]])], 1),
        past_key_values=cache,
        max_new_tokens=4,
        do_sample=False,
    )
    assert out.shape == (1, 54)


def test_offline_compression_equals_hook_compression(model) -> None:  # type: ignore[no-untyped-def]
    ids = torch.randint(3, 64, (2, 64))
    press = SnapKVPress(0.5, window_size=8)
    hooked, _ = prefill(model, ids, press)
    cache = DynamicCache(config=model.config)
    with torch.inference_mode(), capture_attention_inputs(model) as cap:
        model(input_ids=ids, past_key_values=cache)
    offline = compress_cache(model, cache, press, cap)
    for x, y in zip(hooked.layers, offline.layers, strict=True):
        assert torch.equal(x.keys, y.keys) and torch.equal(x.positions, y.positions)
    assert kv_bytes(offline) * 2 == kv_bytes(cache)


def _needle_run(toy, press):  # type: ignore[no-untyped-def]
    task = RecallTask(context_tokens=256)
    ctx, question, answer = task.sample(16, torch.Generator().manual_seed(5), query_aware=True)
    with torch.inference_mode():
        full, _ = prefill(toy, ctx)
        want = toy(input_ids=question, past_key_values=full).logits[:, -1].argmax(-1)
        pruned, _ = prefill(toy, ctx, press)
        got = toy(input_ids=question, past_key_values=pruned).logits[:, -1].argmax(-1)
    needle = (ctx[:, :-2] == question[:, 1:]).nonzero()  # (row, key position); the value sits one after
    kept = torch.tensor([bool((pruned.layers[1].positions[r, 0] == p + 1).any()) for r, p in needle.tolist()])
    return want, got, answer, kept


def test_pruned_cache_answers_like_full_cache_when_needle_kept(toy) -> None:  # type: ignore[no-untyped-def]
    want, got, answer, kept = _needle_run(toy, SnapKVPress(0.75, window_size=16))
    assert torch.equal(want, answer)  # the toy model recalls with the full cache
    assert bool(kept.all())
    assert torch.equal(got[kept], want[kept])


def test_dropping_the_needle_loses_the_answer(toy) -> None:  # type: ignore[no-untyped-def]
    want, got, answer, kept = _needle_run(toy, StreamingLLMPress(0.875))
    assert float(kept.float().mean()) < 0.25  # needles sit in the first half; only a sink may catch one
    assert float((got[~kept] == answer[~kept]).float().mean()) < 0.5


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_bad_ratio_is_a_config_error(ratio: float) -> None:
    with pytest.raises(ConfigError):
        KnormPress(ratio)


def test_registry_names_dotted_paths_and_bad_names() -> None:
    assert set(PRESSES.names()) >= {"streaming_llm", "knorm", "snapkv", "expected_attention", "kivi"}
    assert isinstance(PRESSES.create("memsvc.gpu.policies.KnormPress", compression_ratio=0.5), ScorerPress)
    with pytest.raises(ConfigError):
        PRESSES.create("nope")
    with pytest.raises(ConfigError):
        PRESSES.create("memsvc.gpu.policies.NoSuchPress")
    with pytest.raises(ConfigError):
        SnapKVPress(0.5, kernel_size=4)


def test_expected_attention_scores_shape_and_gqa(model) -> None:  # type: ignore[no-untyped-def]
    cache = DynamicCache(config=model.config)
    ids = torch.randint(3, 64, (2, 50))
    with torch.inference_mode(), capture_attention_inputs(model) as cap:
        model(input_ids=ids, past_key_values=cache)
        attn = [m for n, m in model.named_modules() if n.endswith("self_attn")][0]
        hidden, pos = cap[0]
        layer = cache.layers[0]
        s = ExpectedAttentionPress(0.5).score(attn, hidden, layer.keys, layer.values, pos)
    assert s.shape == (2, 2, 50) and bool((s >= 0).all())


def test_kivi_quantized_cache_is_close_and_smaller(model) -> None:  # type: ignore[no-untyped-def]
    ids, suffix = torch.randint(3, 64, (1, 100)), torch.randint(3, 64, (1, 2))
    full, _ = prefill(model, ids)
    q8, _ = prefill(model, ids, KIVIPress(nbits=8, group_size=16, residual_length=16))
    q4, _ = prefill(model, ids, KIVIPress(nbits=4, group_size=16, residual_length=16))
    assert kv_bytes(q4) < kv_bytes(q8) < kv_bytes(full)
    with torch.inference_mode():
        ref = model(input_ids=suffix, past_key_values=full).logits
        for cache, tol in ((q8, 0.02), (q4, 0.2)):
            out = model(input_ids=suffix, past_key_values=cache).logits
            assert float((out - ref).abs().max()) < tol
            assert cache.get_seq_length() == 102
        # decode far enough to fold the full-precision tail into the quantized part
        for _ in range(40):
            q4_out = model(input_ids=torch.tensor([[7]]), past_key_values=q4).logits
        layer = q4.layers[0]
        assert layer.physical_length() == 142 and layer.keys.shape[-2] < 16 + 16
        assert q4_out.isfinite().all()


def test_kivi_after_pruning_composes(model) -> None:  # type: ignore[no-untyped-def]
    ids = torch.randint(3, 64, (1, 128))
    cache, _ = prefill(
        model,
        ids,
        KIVIPress(nbits=2, group_size=16, residual_length=8, press=SnapKVPress(0.5, window_size=8)),
    )
    layer = cache.layers[0]
    assert layer.physical_length() == 64 and layer.get_seq_length() == 128
