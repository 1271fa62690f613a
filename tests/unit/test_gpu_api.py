"""The OpenAI-compatible chat routes on the real REST app (httpx ASGI transport): mounted from
``Settings.gpu``, behind tenant keys, streaming and not; a tiny random Llama on CPU answers, or an
external OpenAI-compatible server (a fake at the HTTP wire, on loopback) when ``gpu.base_url`` is set."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch  # noqa: F401  (a [dev] dependency: a broken install fails here)
import transformers  # noqa: F401  (a [dev] dependency: a broken install fails here)
from pydantic import ValidationError  # noqa: E402

from memsvc import Memory, Settings  # noqa: E402
from memsvc.api import create_app  # noqa: E402
from memsvc.gpu.llm import LLM  # noqa: E402
from memsvc.gpu.policies import KIVIPress, SnapKVPress  # noqa: E402
from memsvc.gpu.runtime import answerer_from_config, press_from_config  # noqa: E402
from tests.unit.gpu_fixtures import save_tiny_chat_model  # noqa: E402

MEMORY = [
    {"role": "user", "name": "Ann", "content": "I adopted a puppy named Rex, a golden retriever."},
    {"role": "user", "name": "Mel", "content": "Rex sounds adorable!"},
]


def _base(path: Path, gpu: dict[str, Any]) -> Settings:
    return Settings(data_dir=path, embedder={"backend": "hashing"}, vector={"backend": "memory"},
                    lexical={"backend": "memory"}, gpu=gpu)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_chat_model(tmp_path_factory.mktemp("tiny-llm"))


class App:
    def __init__(self, memory: Memory) -> None:
        self.app = create_app(memory=memory)
        keys = self.app.state.api.keys
        self.acme, self.globex = keys.create("acme")[1], keys.create("globex")[1]
        self.admin = keys.create(None, admin=True)[1]

    def client(self, key: str | None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://memsvc.test",
                                 headers=headers)


@pytest.fixture(scope="module")
def local(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    gpu = {"model": str(model_dir), "device": "cpu", "press": "knorm", "compression_ratio": 0.5,
           "max_new_tokens": 6, "budget_tokens": 200}
    with Memory(_base(tmp_path_factory.mktemp("mem"), gpu)) as m:
        m.for_tenant("acme").add(MEMORY, user_id="ann", session_id="s1")
        yield App(m)


def _sse(text: str) -> list[dict[str, Any]]:
    lines = [ln for ln in text.splitlines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(ln[6:]) for ln in lines[:-1]]


@pytest.mark.anyio
async def test_settings_model_mounts_the_chat_routes_behind_tenant_keys(local: App) -> None:
    assert isinstance(local.app.state.answerer, LLM)
    assert local.app.state.answerer.max_new_tokens == 6 and local.app.state.answerer.device == "cpu"
    body = {"messages": [{"role": "user", "content": "what is the dog called?"}], "user": "ann"}
    async with local.client(None) as c:
        r = await c.post("/v1/chat/completions", json=body)
        assert r.status_code == 401 and r.json()["error"]["type"] == "AuthenticationError"
        assert (await c.get("/v1/models")).status_code == 401
    async with local.client("not-a-key") as c:
        assert (await c.post("/v1/chat/completions", json=body)).status_code == 401
    async with local.client(local.admin) as c:
        assert (await c.post("/v1/chat/completions", json=body)).status_code == 403
    async with local.client(local.acme) as c:
        r = await c.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["object"] == "chat.completion" and data["choices"][0]["finish_reason"] == "length"
        assert data["usage"]["completion_tokens"] >= 1
        models = (await c.get("/v1/models")).json()
        assert models["data"][0]["id"] == local.app.state.answerer.model_id


@pytest.mark.anyio
async def test_streaming_matches_the_plain_answer(local: App) -> None:
    body = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "dog?"}],
            "user": "ann", "max_tokens": 5}
    async with local.client(local.acme) as c:
        plain = (await c.post("/v1/chat/completions", json=body)).json()["choices"][0]
        async with c.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            chunks = _sse((await r.aread()).decode())
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks) == plain["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == plain["finish_reason"] == "length"


@pytest.mark.anyio
async def test_memory_comes_from_the_keys_tenant_and_the_requests_user(local: App) -> None:
    def body(user: str | None) -> dict[str, Any]:
        b: dict[str, Any] = {"messages": [{"role": "user", "content": "what is Ann's puppy called?"}],
                             "max_tokens": 1}
        return {**b, "user": user} if user else b

    async with local.client(local.acme) as c:
        bare = (await c.post("/v1/chat/completions", json=body(None))).json()["usage"]["prompt_tokens"]
        ann = (await c.post("/v1/chat/completions", json=body("ann"))).json()["usage"]["prompt_tokens"]
        bob = (await c.post("/v1/chat/completions", json=body("bob"))).json()["usage"]["prompt_tokens"]
        bad = await c.post("/v1/chat/completions", json=body("a" * 300))
    async with local.client(local.globex) as c:
        other_tenant = (await c.post("/v1/chat/completions", json=body("ann"))).json()["usage"]["prompt_tokens"]
    assert ann > bare  # acme's ann has memory: its context is in the prompt
    assert bob == bare and other_tenant == bare  # another user, another tenant: nothing of acme/ann
    assert bad.status_code == 422 and bad.json()["error"]["type"] == "InvalidInputError"


@pytest.mark.anyio
async def test_no_model_configured_means_no_chat_routes(tmp_path: Path) -> None:
    with Memory(_base(tmp_path, {})) as m:
        app = App(m)
        assert app.app.state.answerer is None
        async with app.client(app.acme) as c:
            r = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 404


# -- settings ----------------------------------------------------------------------------------------------
def test_gpu_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MEMSVC_GPU__MODEL", "/models/qwen")
    monkeypatch.setenv("MEMSVC_GPU__DEVICE", "cuda:1")
    monkeypatch.setenv("MEMSVC_GPU__DTYPE", "bfloat16")
    monkeypatch.setenv("MEMSVC_GPU__PRESS", "snapkv")
    monkeypatch.setenv("MEMSVC_GPU__COMPRESSION_RATIO", "0.75")
    monkeypatch.setenv("MEMSVC_GPU__KV_BITS", "4")
    monkeypatch.setenv("MEMSVC_GPU__EPISODE_KV_DIR", str(tmp_path / "kv"))
    monkeypatch.setenv("MEMSVC_GPU__MAX_NEW_TOKENS", "64")
    g = Settings().gpu
    assert (g.model, g.device, g.dtype, g.press, g.compression_ratio, g.kv_bits, g.max_new_tokens) == (
        "/models/qwen", "cuda:1", "bfloat16", "snapkv", 0.75, 4, 64)
    assert g.episode_kv_dir == tmp_path / "kv" and g.enabled
    press = press_from_config(g)
    assert isinstance(press, KIVIPress) and press.nbits == 4
    assert isinstance(press.press, SnapKVPress) and press.press.compression_ratio == 0.75


@pytest.mark.parametrize("bad", [{"device": "tpu"}, {"device": "cpu:0"}, {"kv_bits": 3},
                                 {"compression_ratio": 1.0}, {"base_url": "http://x/v1"}, {"dtype": "int8"}])
def test_bad_gpu_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(gpu=bad)


def test_no_model_no_answerer() -> None:
    assert answerer_from_config(Settings().gpu) is None and not Settings().gpu.enabled


# -- an external OpenAI-compatible server (vLLM / SGLang), faked at the HTTP wire ------------------------
class FakeOpenAI(BaseHTTPRequestHandler):
    """``POST /v1/chat/completions`` as vLLM answers it (SSE when ``stream``); records each request."""

    seen: list[dict[str, Any]] = []
    fail: int | None = None

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeOpenAI.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if FakeOpenAI.fail:
            self.send_response(FakeOpenAI.fail)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "model overloaded"}}')
            return
        pieces = ["Rex", " is", " the", " puppy"]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i, p in enumerate(pieces):
            chunk = {"id": "x", "object": "chat.completion.chunk", "model": body["model"],
                     "choices": [{"index": 0, "delta": {"content": p},
                                  "finish_reason": "stop" if i == len(pieces) - 1 else None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        usage = {"prompt_tokens": 42, "completion_tokens": 4, "total_tokens": 46}
        self.wfile.write(f"data: {json.dumps({'id': 'x', 'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())


@pytest.fixture
def upstream() -> Iterator[str]:
    FakeOpenAI.seen, FakeOpenAI.fail = [], None
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def remote(upstream: str, tmp_path: Path) -> Iterator[App]:
    gpu = {"base_url": upstream, "model": "Qwen/Qwen2.5-7B-Instruct", "api_key": "upstream-secret",
           "max_new_tokens": 32, "budget_tokens": 300}
    with Memory(_base(tmp_path, gpu)) as m:
        m.for_tenant("acme").add(MEMORY, user_id="ann", session_id="s1")
        yield App(m)


@pytest.mark.anyio
async def test_external_server_answers_with_memory_in_the_system_message(remote: App) -> None:
    body = {"messages": [{"role": "user", "content": "what is Ann's puppy called?"}], "user": "ann"}
    async with remote.client(remote.acme) as c:
        plain = (await c.post("/v1/chat/completions", json=body)).json()
        async with c.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
            chunks = _sse((await r.aread()).decode())
    assert plain["choices"][0]["message"]["content"] == "Rex is the puppy"
    assert plain["choices"][0]["finish_reason"] == "stop"
    assert plain["usage"] == {"prompt_tokens": 42, "completion_tokens": 4, "total_tokens": 46}
    assert "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks) == "Rex is the puppy"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    first = FakeOpenAI.seen[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer upstream-secret"
    sent = first["body"]
    assert sent["model"] == "Qwen/Qwen2.5-7B-Instruct" and sent["max_tokens"] == 32 and sent["stream"] is True
    system, question = sent["messages"]
    assert system["role"] == "system" and "Memory:" in system["content"] and "puppy named Rex" in system["content"]
    assert question == {"role": "user", "content": "what is Ann's puppy called?"}
    assert FakeOpenAI.seen[1]["body"]["messages"] == sent["messages"]  # a stable prefix for the server's cache


@pytest.mark.anyio
async def test_external_server_failures_answer_502(remote: App, upstream: str) -> None:
    FakeOpenAI.fail = 503
    body = {"messages": [{"role": "user", "content": "hi"}]}
    async with remote.client(remote.acme) as c:
        r = await c.post("/v1/chat/completions", json=body)
        assert r.status_code == 502 and "503" in r.json()["error"]["message"]
        assert (await c.post("/v1/chat/completions", json={**body, "stream": True})).status_code == 502
    async with remote.client(remote.globex) as c:  # tenant keys still apply
        assert (await c.post("/v1/chat/completions", json={**body, "user": "ann"})).status_code == 502
    assert all("Memory:" not in s["body"]["messages"][0]["content"] for s in FakeOpenAI.seen)
