"""``MemsvcClient`` / ``AsyncMemsvcClient`` against a real uvicorn server on loopback: parity with the
embedded ``Memory`` (same calls, same dataclasses, same errors), retries, and the ``memsvc serve`` /
``memsvc keys`` commands end to end in subprocesses."""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from api_support import Live, hashing_settings

from memsvc import AsyncMemory, ChatEvent, Hit, Level, Memory, MemoryRecord, VideoEvent
from memsvc import exceptions as ex
from memsvc.client import AsyncMemsvcClient, AuthenticationError, MemsvcClient, PermissionDeniedError

T0 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
DOG = [
    {"role": "user", "content": "I adopted a puppy named Rex last week", "name": "Ann", "client_id": "c1"},
    {"role": "assistant", "content": "Congratulations! What breed is Rex?", "client_id": "c2"},
    {"role": "user", "content": "He is a golden retriever, very playful", "name": "Ann", "client_id": "c3"},
]
JOB = [{"role": "user", "content": "I started a new job as a nurse at the city hospital", "name": "Ann"}]
METHODS = ["add", "add_events", "add_frames", "search", "context", "get", "history", "delete", "delete_user",
           "consolidate", "stats"]


def test_same_method_names_and_signatures() -> None:
    for name in METHODS:
        want = list(inspect.signature(getattr(Memory, name)).parameters.values())
        for cls in (MemsvcClient, AsyncMemsvcClient):
            have = list(inspect.signature(getattr(cls, name)).parameters.values())
            assert [(p.name, p.kind, p.default) for p in have] == [(p.name, p.kind, p.default) for p in want], \
                (cls.__name__, name)
        assert inspect.iscoroutinefunction(getattr(AsyncMemsvcClient, name))
        assert inspect.iscoroutinefunction(getattr(AsyncMemory, name))


def _hits(hits: list[Hit]) -> list[tuple[Any, ...]]:
    """Comparable hits: a single-turn episode ties with its turn (same text and score), ties come back
    in either order and packing keeps the first, so compare sorted views without the level."""
    return sorted((h.text, round(h.score, 5), h.start_time, h.end_time, len(h.source_ids), h.session_id,
                   h.stream_id, h.tokens, h.user_id) for h in hits)


def _rec_view(r: MemoryRecord) -> tuple[Any, ...]:
    return (r.kind, r.text, r.user_id, r.start_time, r.end_time, r.session_id, r.stream_id, r.role, r.name,
            r.metadata)


def _script(m: Any) -> dict[str, Any]:
    """The same calls against any memory; returns comparable views."""
    out: dict[str, Any] = {}
    ids = m.add(DOG, user_id="ann", session_id="s1", timestamp=T0, metadata={"src": "chat"})
    out["idempotent"] = m.add(DOG, user_id="ann", session_id="s1", timestamp=T0) == ids
    m.add(JOB, user_id="ann", session_id="s2", timestamp=T0 + timedelta(days=3))
    m.add("a bare string message", user_id="bob", timestamp=T0)
    m.add_events([ChatEvent(user_id="bob", text="I like green tea", timestamp=T0, client_id="e1"),
                  VideoEvent(user_id="bob", stream_id="cam", timestamp=T0, caption="a cup of green tea")])
    emb = np.random.default_rng(0).normal(size=(3, 16)).astype(np.float32)
    out["frames"] = len(m.add_frames("cam1", "ann", [T0 + timedelta(seconds=i) for i in range(3)], embeddings=emb,
                                     captions=["a dog runs", "a dog jumps", None]))
    every = m.search("what breed is the dog?", user_id="ann", limit=50)
    out["hits"] = _hits(every)
    out["levels_known"] = all(isinstance(h.level, Level) for h in every)
    out["hits_types"] = {type(h) for h in m.search("dog", user_id="ann")}
    out["budget"] = _hits(m.search("nurse job", user_id="ann", budget_tokens=40))
    out["range"] = _hits(m.search("dog", "ann", 50, None, (T0 + timedelta(days=1), None)))
    out["filtered"] = _hits(m.search("dog", "ann", levels=["turn"], session_id="s1"))
    out["context"] = m.context("what breed is the dog?", user_id="ann", budget_tokens=60)
    out["history"] = [_rec_view(r) for r in m.history("ann", session_id="s1", limit=2, offset=1)]
    out["get"] = _rec_view(m.get(ids[0]))
    out["get_user"] = _rec_view(m.get(ids[1], "ann"))
    out["delete"] = m.delete(ids[2])
    out["after_delete"] = [_rec_view(r) for r in m.history("ann", session_id="s1")]
    out["stats"] = m.stats("ann")
    out["consolidate"] = sorted(m.consolidate())
    out["delete_user"] = m.delete_user("bob") > 0
    out["bob_gone"] = m.history("bob") == []
    errors = {}
    bad: list[tuple[str, Any]] = [
        ("empty", lambda: m.add([{"role": "user", "content": " "}], user_id="ann")),
        ("long", lambda: m.add([{"role": "user", "content": "x" * 40_000}], user_id="ann")),
        ("naive", lambda: m.add(JOB, user_id="ann", timestamp=datetime(2023, 1, 1))),
        ("role", lambda: m.add([{"role": "robot", "content": "hi"}], user_id="ann")),
        ("unknown_key", lambda: m.add([{"content": "hi", "colour": "red"}], user_id="ann")),
        ("user_type", lambda: m.search("q", user_id=5)),
        ("blank_user", lambda: m.search("q", user_id="  ")),
        ("limit", lambda: m.search("q", user_id="ann", limit=0)),
        ("range", lambda: m.search("q", "ann", time_range=(T0, T0 - timedelta(days=1)))),
        ("levels", lambda: m.search("q", "ann", levels=["nope"])),
        ("missing", lambda: m.get("no-such-id")),
        ("missing_delete", lambda: m.delete("no-such-id", "ann")),
        ("slash_id", lambda: m.get("a/../b")),
        ("frames_nan", lambda: m.add_frames("cam", "ann", [T0], embeddings=[[float("nan"), 1.0]])),
        ("frames_empty", lambda: m.add_frames("cam", "ann", [])),
        ("history_page", lambda: m.history("ann", limit=0)),
    ]
    for name, call in bad:
        try:
            call()
            errors[name] = None
        except ex.MemsvcError as e:
            errors[name] = type(e)
    out["errors"] = errors
    return out


def test_client_parity_with_embedded_memory(live: Live, tmp_path: Path) -> None:
    embedded = Memory(hashing_settings(tmp_path / "embedded"), tenant="acme")
    try:
        want = _script(embedded)
    finally:
        embedded.close()
    with MemsvcClient(live.url, api_key=live.api.acme) as remote:  # the one line that changes
        have = _script(remote)
    assert have["hits_types"] == {Hit}
    for k in want:
        assert have[k] == want[k], k
    assert all(v is not None for v in want["errors"].values()), want["errors"]


def test_async_client_parity_and_concurrency(live: Live, tmp_path: Path) -> None:
    async def run() -> None:
        async with AsyncMemsvcClient(live.url, api_key=live.api.globex) as c:
            results = await asyncio.gather(*(
                c.add([{"role": "user", "content": f"fact {i}: the sky has colour {i}"}], user_id=f"u{i % 3}",
                      timestamp=T0) for i in range(24)))
            assert len({r[0] for r in results}) == 24
            hits = await c.search("sky colour 7", user_id="u1", limit=3)
            assert hits and isinstance(hits[0], Hit)
            pages = await asyncio.gather(*(c.history(f"u{i}") for i in range(3)))
            assert sum(len(p) for p in pages) == 24
            with pytest.raises(ex.RecordNotFound):
                await c.get("nope")
            with pytest.raises(ex.EmptyTextError):
                await c.add("   ", user_id="u1")

    asyncio.run(run())


def test_errors_for_keys_and_unreachable_servers(live: Live) -> None:
    with MemsvcClient(live.url, api_key="msk_nope_nope") as bad, pytest.raises(AuthenticationError) as e:
        bad.search("q", user_id="ann")
    assert e.value.status == 401 and e.value.request_id  # type: ignore[attr-defined]
    with MemsvcClient(live.url, api_key=live.api.admin) as adm, pytest.raises(PermissionDeniedError):
        adm.history("ann")
    with MemsvcClient(live.url, api_key=live.api.acme) as c, pytest.raises(ex.InvalidInputError):
        c.stats()  # tenant-wide counts are not served over REST
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with MemsvcClient(dead, api_key="k", retries=1, backoff_s=0.01) as c, pytest.raises(ex.StoreUnavailable):
        c.search("q", user_id="ann")


def test_retried_write_is_stored_once(live: Live) -> None:
    """A transport that drops the first answer: the client retries with the same Idempotency-Key."""
    sent: list[str] = []

    class DropFirstResponse(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            resp = super().handle_request(request)
            if request.method == "POST":
                sent.append(request.headers["idempotency-key"])
                if len(sent) == 1:
                    resp.read()
                    raise httpx.ReadError("connection reset", request=request)
            return resp

    with MemsvcClient(live.url, api_key=live.api.acme, transport=DropFirstResponse(), backoff_s=0.01) as c:
        ids = c.add(JOB, user_id="zoe", timestamp=T0)
        assert len(sent) == 2 and sent[0] == sent[1]
        assert [r.id for r in c.history("zoe")] == ids


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_memsvc_serve_and_keys_commands(tmp_path: Path) -> None:
    env = {**os.environ, "MEMSVC_EMBEDDER__BACKEND": "hashing", "HF_HUB_OFFLINE": "1"}
    cli = [sys.executable, "-c", "from memsvc.cli import main; main()"]
    data = str(tmp_path / "served")
    out = subprocess.run([*cli, "keys", "create", "--tenant", "acme", "--data-dir", data], env=env,
                         capture_output=True, text=True, check=True, timeout=120)
    key = out.stdout.strip().splitlines()[-1]
    assert key.startswith("msk_")
    port = _free_port()
    server = subprocess.Popen([*cli, "serve", "--port", str(port), "--data-dir", data], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "memsvc serve did not come up"
            time.sleep(0.2)
        with MemsvcClient(url, api_key=key) as m:
            ids = m.add(JOB, user_id="ann", timestamp=T0)
            assert m.search("nurse", user_id="ann")[0].source_ids == ids
        listed = subprocess.run([*cli, "keys", "list", "--data-dir", data], env=env, capture_output=True,
                                text=True, check=True, timeout=120).stdout
        assert '"tenant": "acme"' in listed and key not in listed
        subprocess.run([*cli, "keys", "revoke", key, "--data-dir", data], env=env, check=True, timeout=120,
                       capture_output=True)
        time.sleep(2.1)  # the server's auth cache
        with MemsvcClient(url, api_key=key) as m, pytest.raises(AuthenticationError):
            m.history("ann")
    finally:
        server.terminate()
        log, _ = server.communicate(timeout=60)
    # graceful: uvicorn finishes the lifespan (Memory closed), then re-raises SIGTERM
    assert server.returncode in (0, -15) and "Application shutdown complete" in log, log
