"""Tenant and user isolation as a property (hypothesis): random tenants, users, texts and queries, written
and read through the SDK (``Memory.for_tenant``), REST (a served ``memsvc`` app with one key per tenant,
through ``MemsvcClient``) and LangChain (``MemsvcRetriever`` and ``MemsvcChatMessageHistory`` over both),
and no result ever belongs to another tenant or user.

Every stored text carries a unique marker (``zq<n>x``) mapped to the (tenant, user) that wrote it; the
texts otherwise share one small vocabulary, so an unscoped search would return other scopes' texts.
Every hit, packed context, document and history message is checked for foreign markers, and every hit's
user and source ids against the scope that asked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import ThreadServer, hashing_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage

from memsvc import Memory
from memsvc.api import create_app
from memsvc.client import MemsvcClient
from memsvc.exceptions import RecordNotFound
from memsvc.integrations.langchain import MemsvcChatMessageHistory, MemsvcRetriever

TENANTS = ["acme", "globex", "initech"]
USERS = ["ann", "bob", "cy"]
WORDS = ["dog", "beach", "Lisbon", "coffee", "piano", "Kyoto", "sister", "bicycle", "tea", "garden"]
MARK = re.compile(r"zq\d+x")
PATHS = ["sdk", "rest", "lc-sdk", "lc-rest"]


@dataclass
class World:
    memory: Memory
    url: str
    keys: dict[str, str]
    owner: dict[str, tuple[str, str]] = field(default_factory=dict)  # marker -> (tenant, user)
    ids: dict[str, tuple[str, str]] = field(default_factory=dict)  # event id -> (tenant, user)
    clients: dict[str, MemsvcClient] = field(default_factory=dict)
    n: int = 0
    seen: int = 0

    def client(self, tenant: str) -> MemsvcClient:
        if tenant not in self.clients:
            self.clients[tenant] = MemsvcClient(self.url, self.keys[tenant])
        return self.clients[tenant]

    def backend(self, path: str, tenant: str) -> Any:
        return self.memory.for_tenant(tenant) if path in ("sdk", "lc-sdk") else self.client(tenant)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    m = Memory(hashing_settings(tmp_path / "iso"))
    app = create_app(memory=m)
    keys = {t: app.state.api.keys.create(t)[1] for t in TENANTS}
    with ThreadServer(app) as url:
        w = World(m, url, keys)
        yield w
        for c in w.clients.values():
            c.close()
    m.close()


def check_text(w: World, text: str, scope: tuple[str, str], where: str) -> None:
    for mark in MARK.findall(text):
        w.seen += 1
        assert w.owner[mark] == scope, f"{where}: {mark} of {w.owner[mark]} reached {scope}"


writes = st.lists(st.tuples(st.sampled_from(TENANTS), st.sampled_from(USERS),
                            st.lists(st.sampled_from(WORDS), min_size=1, max_size=5), st.sampled_from(PATHS)),
                  min_size=1, max_size=6)
reads = st.lists(st.tuples(st.sampled_from(TENANTS), st.sampled_from(USERS),
                           st.lists(st.sampled_from(WORDS), min_size=1, max_size=3), st.sampled_from(PATHS)),
                 min_size=1, max_size=6)


def test_no_result_crosses_a_tenant_or_user(world: World) -> None:
    w = world

    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(writes=writes, reads=reads)
    def prop(writes: list[tuple[str, str, list[str], str]], reads: list[tuple[str, str, list[str], str]]) -> None:
        for tenant, user, words, path in writes:
            w.n += 1
            mark = f"zq{w.n}x"
            w.owner[mark] = (tenant, user)
            text = f"{' '.join(words)} {mark}"
            backend = w.backend(path, tenant)
            if path.startswith("lc"):
                hist = MemsvcChatMessageHistory(backend, user, "chat")
                hist.add_messages([HumanMessage(text, id=f"h-{mark}"), AIMessage(f"noted {mark}", id=f"a-{mark}")])
            else:
                for eid in backend.add([{"role": "user", "content": text}], user_id=user, session_id="chat"):
                    w.ids[eid] = (tenant, user)
        for tenant, user, words, path in reads:
            scope = (tenant, user)
            query = " ".join(words)
            backend = w.backend(path, tenant)
            if path.startswith("lc"):
                docs = MemsvcRetriever(memory=backend, user_id=user, limit=20).invoke(query)
                for d in docs:
                    assert d.metadata["user_id"] == user
                    check_text(w, d.page_content, scope, f"{path} retriever")
                for msg in MemsvcChatMessageHistory(backend, user, "chat").messages:
                    check_text(w, str(msg.content), scope, f"{path} history")
            else:
                for h in backend.search(query, user_id=user, limit=20):
                    assert h.user_id == user
                    assert all(w.ids.get(s, scope) == scope for s in h.source_ids), h
                    check_text(w, h.text, scope, f"{path} search")
                check_text(w, backend.context(query, user_id=user, budget_tokens=2000), scope, f"{path} context")
                for r in backend.history(user, limit=1000):
                    assert r.user_id == user and w.ids.get(r.id, scope) == scope
                    check_text(w, r.text or "", scope, f"{path} history")
        # an id of another scope is unknown here: not readable, not deletable
        tenant, user, _, path = reads[0]
        foreign = [i for i, sc in w.ids.items() if sc != (tenant, user)][-3:]
        backend = w.backend(path, tenant)
        for i in foreign:
            if w.ids[i][0] != tenant:  # another tenant: invisible even without a user
                with pytest.raises(RecordNotFound):
                    backend.get(i)
                with pytest.raises(RecordNotFound):
                    backend.delete(i)
            with pytest.raises(RecordNotFound):
                backend.get(i, user_id=user)

    prop()
    assert w.seen > 50  # the property looked at many results, not at empty answers


def test_rest_keys_only_reach_their_tenant(world: World) -> None:
    """A key never reads another tenant's user, whatever user id it names."""
    w = world
    w.memory.for_tenant("acme").add("ann keeps a dog on the beach", user_id="ann")
    with httpx.Client(base_url=w.url, headers={"Authorization": f"Bearer {w.keys['globex']}"}) as c:
        r = c.post("/v1/search", json={"query": "dog beach", "user_id": "ann"})
        assert r.status_code == 200 and r.json() == {"hits": []}
        assert c.get("/v1/history", params={"user_id": "ann"}).json()["items"] == []
        assert c.get("/v1/stats", params={"user_id": "ann"}).json()["counts"]["events"] == 0
    assert w.memory.for_tenant("globex").stats()["events"] == 0
    assert w.memory.for_tenant("acme").stats()["events"] == 1
