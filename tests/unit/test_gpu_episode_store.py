"""Episode KV store: bit-exact round trip, answers without re-prefill, invalidation on change/delete."""

from __future__ import annotations

from pathlib import Path

import pytest
import safetensors  # noqa: F401  (a [dev] dependency: a broken install fails here)
import torch

from memsvc.gpu.cache import as_compressed  # noqa: E402
from memsvc.gpu.episode_store import EpisodeKVStore  # noqa: E402
from memsvc.gpu.policies import KIVIPress, SnapKVPress  # noqa: E402
from tests.unit.gpu_fixtures import prefill, tiny_llama  # noqa: E402


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return tiny_llama()


PRESSES = {
    "full": None,
    "snapkv": SnapKVPress(0.75, window_size=8),
    "snapkv+kivi4": KIVIPress(
        nbits=4, group_size=8, residual_length=8, press=SnapKVPress(0.5, window_size=8)
    ),
}


@pytest.mark.parametrize("name", list(PRESSES))
def test_round_trip_is_bit_exact_and_answers_the_same(model, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    press = PRESSES[name]
    ids, question = torch.randint(3, 64, (1, 70)), torch.randint(3, 64, (1, 3))
    cache, _ = prefill(model, ids, press)
    store = EpisodeKVStore(tmp_path, "tiny-llama", revision="abc")
    chash = store.content_hash("episode text v1")
    store.put("ep-1", cache, content_hash=chash, token_ids=ids, press_spec=repr(press))
    hit = store.get("ep-1", content_hash=chash, press_spec=repr(press))
    assert hit is not None
    for a, b in zip(cache.layers, hit.cache.layers, strict=True):
        ta, tb = as_compressed(a).to_tensors(), b.to_tensors()
        assert ta.keys() == tb.keys()
        for k in ta:
            assert ta[k].dtype == tb[k].dtype and torch.equal(ta[k], tb[k]), k
        assert as_compressed(a).to_meta() == b.to_meta()
    meta = hit.meta
    assert meta["model_id"] == "tiny-llama" and meta["revision"] == "abc" and meta["dtype"] == "float32"
    assert meta["logical_length"] == 70 and meta["num_layers"] == 2 and meta["kv_heads"] == 2
    assert meta["head_dim"] == 8 and meta["token_ids_sha256"] == store.content_hash(ids[0].tolist())
    assert [lm["kept"] for lm in meta["layers"]] == [layer.physical_length() for layer in hit.cache.layers]
    with torch.inference_mode():
        want = model(input_ids=question, past_key_values=cache).logits
        got = model(input_ids=question, past_key_values=hit.cache).logits
    assert torch.equal(want, got)


def test_changed_episode_invalidates_its_kv(model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = EpisodeKVStore(tmp_path, "tiny-llama")
    ids = torch.randint(3, 64, (1, 20))
    cache, _ = prefill(model, ids)
    old, new = store.content_hash("Ann adopted Rex"), store.content_hash("Ann adopted Max")
    path = store.put("ep-1", cache, content_hash=old, token_ids=ids)
    assert store.get("ep-1", content_hash=new) is None
    assert not path.exists()  # the stale entry was removed, not just skipped
    assert store.get("ep-1", content_hash=old) is None


def test_new_text_replaces_old_entry_on_put(model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = EpisodeKVStore(tmp_path, "tiny-llama")
    ids = torch.randint(3, 64, (1, 20))
    cache, _ = prefill(model, ids)
    store.put("ep-1", cache, content_hash=store.content_hash("v1"), token_ids=ids)
    store.put("ep-1", cache, content_hash=store.content_hash("v2"), token_ids=ids)
    assert [m["content_hash"] for m in store.entries("ep-1")] == [store.content_hash("v2")]


def test_invalidate_deletes_units_and_ignores_unknown_ids(model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = EpisodeKVStore(tmp_path, "tiny-llama")
    ids = torch.randint(3, 64, (1, 20))
    cache, _ = prefill(model, ids)
    h = store.content_hash("t")
    for uid in ("a", "b"):
        store.put(uid, cache, content_hash=h, token_ids=ids)
        store.put(uid, cache, content_hash=h, token_ids=ids, press_spec="other")
    assert store.invalidate(["a", "missing"]) == 2
    assert store.get("a", content_hash=h) is None
    assert store.get("b", content_hash=h) is not None
    assert len(store.entries()) == 2


def test_other_model_does_not_see_the_entry(model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids = torch.randint(3, 64, (1, 20))
    cache, _ = prefill(model, ids)
    h = EpisodeKVStore.content_hash("t")
    EpisodeKVStore(tmp_path, "model-a").put("u", cache, content_hash=h, token_ids=ids)
    assert EpisodeKVStore(tmp_path, "model-b").get("u", content_hash=h) is None


def test_invalidate_scope_removes_a_users_entries(model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = EpisodeKVStore(tmp_path, "tiny-llama")
    ids = torch.randint(3, 64, (1, 20))
    cache, _ = prefill(model, ids)
    h = store.content_hash("t")
    store.put("a1", cache, content_hash=h, token_ids=ids, scope="default/ann")
    store.put("a2", cache, content_hash=h, token_ids=ids, scope="default/ann")
    store.put("b1", cache, content_hash=h, token_ids=ids, scope="default/bob")
    assert store.invalidate_scope("default/ann") == 2
    assert [m["unit_id"] for m in store.entries()] == ["b1"]
    assert store.invalidate_scope("default/nobody") == 0
