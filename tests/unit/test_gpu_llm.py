"""Answering runtime and OpenAI-compatible router on a tiny random model with a byte-level tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastapi  # noqa: F401  (a [dev] dependency: a broken install fails here)
import pytest
import torch
import transformers  # noqa: F401  (a [dev] dependency: a broken install fails here)
from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from memsvc.exceptions import ConfigError, KVCacheInvalidated  # noqa: E402
from memsvc.gpu.llm import LLM, resolve_device  # noqa: E402
from memsvc.gpu.openai_api import create_openai_router  # noqa: E402
from tests.unit.gpu_fixtures import save_tiny_chat_model  # noqa: E402

CHATML = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


class StubMemory:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def context(self, query: str, user_id: str, budget_tokens: int = 1000, **kwargs: Any) -> str:
        self.calls.append((query, user_id, budget_tokens))
        return "[2023-05-08] Ann: I adopted a puppy named Rex"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_chat_model(tmp_path_factory.mktemp("tiny-llm"))


@pytest.fixture(scope="module")
def llm(model_dir: Path) -> LLM:
    return LLM(
        str(model_dir),
        device="auto",
        press="snapkv",
        press_options={"compression_ratio": 0.5, "window_size": 8},
    )


def test_device_auto_and_dtype(llm: LLM) -> None:
    assert llm.device == resolve_device("auto")
    assert llm.dtype == (torch.bfloat16 if llm.device.startswith("cuda") else torch.float32)


def test_stream_pieces_join_to_the_answer(llm: LLM) -> None:
    pieces = list(
        llm.stream("what is the dog called?", context="Ann has a dog named Rex.", max_new_tokens=12)
    )
    assert len(pieces) >= 1
    assert "".join(pieces) == llm.answer(
        "what is the dog called?", context="Ann has a dog named Rex.", max_new_tokens=12
    )


def test_memory_context_is_used(llm: LLM) -> None:
    mem = StubMemory()
    llm.answer("what is Ann's dog called?", memory=mem, user_id="ann", budget_tokens=300, max_new_tokens=3)
    assert mem.calls == [("what is Ann's dog called?", "ann", 300)]
    with pytest.raises(ConfigError):
        llm.answer("q", memory=mem)


def test_episode_answers_reuse_the_stored_kv(model_dir: Path, tmp_path: Path) -> None:
    llm = LLM(
        str(model_dir),
        press="expected_attention",
        press_options={"compression_ratio": 0.5},
        episode_store=tmp_path / "kv",
    )
    episode = ("unit-1", "Ann: I adopted a puppy named Rex.\nBob: Cute!")
    cache, hit = llm.episode_cache(*episode)
    assert not hit and cache.layers[0].physical_length() < cache.get_seq_length()
    first = llm.answer("dog name?", episode=episode, max_new_tokens=8)
    _, hit = llm.episode_cache(*episode)
    assert hit
    assert llm.answer("dog name?", episode=episode, max_new_tokens=8) == first
    # same compressed prefix computed in memory gives the same answer as the stored one
    assert llm.answer("dog name?", context=episode[1], max_new_tokens=8) == first
    assert llm.episode_store.invalidate(["unit-1"], kind="changed") == 1  # the unit's text was rewritten
    with pytest.raises(KVCacheInvalidated):
        llm.episode_cache(*episode)
    _, hit = llm.episode_cache("unit-1", episode[1] + "\nAnn: He is two now.")
    assert not hit
    assert llm.episode_store.invalidate(["unit-1"]) == 1  # deleted: nothing more is stored for it
    with pytest.raises(KVCacheInvalidated):
        llm.answer("dog name?", episode=("unit-1", "any text"), max_new_tokens=2)


def test_chat_template_prompt_splits_into_prefix_and_suffix(tmp_path: Path) -> None:
    llm = LLM(str(save_tiny_chat_model(tmp_path / "m", chat_template=CHATML)))
    prefix, suffix = llm.split_prompt("dog?", "Ann has Rex.")
    assert prefix.startswith("<|system|>") and "Ann has Rex." in prefix
    assert suffix == "<|user|>dog?\n<|assistant|>"
    assert isinstance(llm.answer("dog?", context="Ann has Rex.", max_new_tokens=4), str)


def test_sampling_is_seeded(llm: LLM) -> None:
    a = llm.answer("hi", max_new_tokens=8, temperature=1.0, top_p=0.9, seed=3)
    b = llm.answer("hi", max_new_tokens=8, temperature=1.0, top_p=0.9, seed=3)
    assert a == b


@pytest.fixture(scope="module")
def client(llm: LLM) -> TestClient:
    app = FastAPI()
    app.include_router(create_openai_router(llm, model_name="tiny", memory=StubMemory()))
    return TestClient(app)


def test_chat_completion(client: TestClient) -> None:
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 5,
        "user": "ann",
    }
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    data = r.json()
    assert data["object"] == "chat.completion" and data["model"] == "tiny"
    msg = data["choices"][0]["message"]
    assert msg["role"] == "assistant" and isinstance(msg["content"], str)
    assert (
        data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    )


def test_chat_completion_stream_matches_non_stream(client: TestClient) -> None:
    body = {
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        "max_tokens": 6,
    }
    choice = client.post("/v1/chat/completions", json=body).json()["choices"][0]
    full = choice["message"]["content"]
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(ln[6:]) for ln in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == full
    assert (
        chunks[-1]["choices"][0]["finish_reason"] == choice["finish_reason"] == "length"
    )  # 6 tokens, no EOS


def test_bad_requests(client: TestClient) -> None:
    assert client.post("/v1/chat/completions", json={"messages": []}).status_code == 422
    last_assistant = {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    assert client.post("/v1/chat/completions", json=last_assistant).status_code == 400
    assert client.get("/v1/models").json()["data"][0]["id"] == "tiny"
