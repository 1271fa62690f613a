"""LangChain and LangGraph integrations with real runnables over real memsvc memories (embedded, async
and through the REST client); the only stand-in is LangChain's own fake chat model for the LLM."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_support import Live, hashing_settings
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.runnables.history import RunnableWithMessageHistory

from memsvc import AsyncMemory, Memory
from memsvc.client import MemsvcClient
from memsvc.integrations.langchain import MemsvcChatMessageHistory, MemsvcRetriever

T0 = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
# langchain-core 1.x deprecates RunnableWithMessageHistory in favour of LangGraph persistence; the issue
# asks for it (0.3 apps use it), and MemsvcStore covers the LangGraph side.
rwmh_deprecated = pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")


@pytest.fixture
def mem(tmp_path: Path) -> Iterator[Memory]:
    m = Memory(hashing_settings(tmp_path / "lc"))
    yield m
    m.close()


def _chat_chain(memory: Any, replies: list[str], seen: list[list[BaseMessage]]) -> RunnableWithMessageHistory:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a helpful assistant."), MessagesPlaceholder("history"), ("human", "{question}")])

    def record(p: PromptValue) -> PromptValue:
        seen.append(p.to_messages())
        return p

    model = GenericFakeChatModel(messages=iter([AIMessage(r) for r in replies]))
    return RunnableWithMessageHistory(
        prompt | RunnableLambda(record) | model,
        lambda session_id: MemsvcChatMessageHistory(memory, "ann", session_id),
        input_messages_key="question", history_messages_key="history")


@rwmh_deprecated
def test_runnable_with_message_history(mem: Memory) -> None:
    seen: list[list[BaseMessage]] = []
    chain = _chat_chain(mem, ["Congratulations on Rex!", "Rex is a golden retriever."], seen)
    cfg = {"configurable": {"session_id": "s1"}}
    assert chain.invoke({"question": "I adopted a puppy named Rex"}, config=cfg).content == "Congratulations on Rex!"
    chain.invoke({"question": "What breed is Rex? He is a golden retriever"}, config=cfg)
    # the second prompt carried the first exchange, read back from memsvc
    assert [type(m) for m in seen[1]] == [SystemMessage, HumanMessage, AIMessage, HumanMessage]
    assert seen[1][1].content == "I adopted a puppy named Rex"
    history = MemsvcChatMessageHistory(mem, "ann", "s1")
    assert [(m.type, m.content) for m in history.messages] == [
        ("human", "I adopted a puppy named Rex"), ("ai", "Congratulations on Rex!"),
        ("human", "What breed is Rex? He is a golden retriever"), ("ai", "Rex is a golden retriever.")]
    # stored as memsvc events with mapped roles, searchable as long-term memory
    assert [r.role for r in mem.history("ann", session_id="s1")] == ["user", "assistant", "user", "assistant"]
    assert any("golden retriever" in h.text for h in mem.search("golden retriever", user_id="ann"))
    assert MemsvcChatMessageHistory(mem, "ann", "s2").messages == []
    history.clear()
    assert history.messages == [] and mem.history("ann", session_id="s1") == []


def test_message_types_ids_and_round_trip(mem: Memory) -> None:
    h = MemsvcChatMessageHistory(mem, "ann", "tools")
    msgs: list[BaseMessage] = [
        SystemMessage("be brief"), HumanMessage("weather in Paris?", id="h-1"),
        AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Paris"}, "id": "call-1"}], id="a-1"),
        ToolMessage("18C and sunny", tool_call_id="call-1"), AIMessage("It is 18C and sunny.", id="a-2"),
        AIMessage(""),  # nothing to remember: skipped
    ]
    h.add_messages(msgs)
    h.add_messages(msgs[1:2])  # same id: stored once
    back = h.messages
    assert [type(m) for m in back] == [SystemMessage, HumanMessage, AIMessage, ToolMessage, AIMessage]
    assert [m.id for m in back][1:3] == ["h-1", "a-1"] and back[-1].id == "a-2"
    assert back[0].id  # a message sent without id gets its memsvc event id
    assert back[2].content == "" and back[2].tool_calls[0]["name"] == "weather"
    assert isinstance(back[3], ToolMessage) and back[3].tool_call_id == "call-1"
    assert [r.role for r in mem.history("ann", session_id="tools")] == ["system", "user", "assistant", "tool",
                                                                         "assistant"]


def _docs_text(docs: list[Document]) -> str:
    return "\n".join(d.page_content for d in docs)


def test_retriever_in_a_rag_chain(mem: Memory) -> None:
    mem.add([{"role": "user", "content": "I adopted a puppy named Rex", "name": "Ann"},
             {"role": "user", "content": "Rex is a golden retriever", "name": "Ann"}],
            user_id="ann", session_id="s1", timestamp=T0)
    mem.add([{"role": "user", "content": "I work as a nurse at the city hospital", "name": "Ann"}],
            user_id="ann", session_id="s2", timestamp=T0 + timedelta(days=30))
    mem.add("Bob's dog is a poodle", user_id="bob", timestamp=T0)
    retriever = MemsvcRetriever(memory=mem, user_id="ann", limit=3)
    docs = retriever.invoke("golden retriever puppy Rex")
    assert docs and "golden retriever" in _docs_text(docs)
    d = docs[0]
    assert {"score", "start_time", "end_time", "source_ids", "level", "session_id"} <= d.metadata.keys()
    assert d.id == d.metadata["id"] and d.metadata["user_id"] == "ann"
    assert datetime.fromisoformat(d.metadata["start_time"]) >= T0 and d.metadata["source_ids"]
    assert "poodle" not in _docs_text(docs)  # another user's memories never come back
    # configurable window and budget
    recent = MemsvcRetriever(memory=mem, user_id="ann", time_range=(T0 + timedelta(days=1), None))
    assert all("nurse" in doc.page_content for doc in recent.invoke("dog nurse"))
    tight = MemsvcRetriever(memory=mem, user_id="ann", limit=None, budget_tokens=25)
    assert sum(doc.metadata["tokens"] for doc in tight.invoke("dog")) <= 25

    prompt = ChatPromptTemplate.from_messages([("system", "Context:\n{context}"), ("human", "{question}")])
    seen: list[list[BaseMessage]] = []

    def record(p: PromptValue) -> PromptValue:
        seen.append(p.to_messages())
        return p

    rag = ({"context": retriever | RunnableLambda(_docs_text), "question": RunnablePassthrough()}
           | prompt | RunnableLambda(record) | GenericFakeChatModel(messages=iter([AIMessage("A golden retriever.")])))
    assert rag.invoke("What breed is Rex?").content == "A golden retriever."
    assert "golden retriever" in str(seen[0][0].content)
    # async path of a sync memory (worker thread)
    adocs = asyncio.run(retriever.ainvoke("golden retriever puppy Rex"))
    assert [x.id for x in adocs] == [x.id for x in docs]


@rwmh_deprecated
def test_async_memory_with_history_and_retriever(tmp_path: Path) -> None:
    async def run() -> None:
        async with AsyncMemory(hashing_settings(tmp_path / "alc")) as amem:
            seen: list[list[BaseMessage]] = []
            chain = _chat_chain(amem, ["Noted.", "Lisbon."], seen)
            cfg = {"configurable": {"session_id": "s1"}}
            await chain.ainvoke({"question": "I moved to Lisbon in May"}, config=cfg)
            await chain.ainvoke({"question": "Where do I live?"}, config=cfg)
            assert [m.content for m in seen[1][1:3]] == ["I moved to Lisbon in May", "Noted."]
            docs = await MemsvcRetriever(memory=amem, user_id="ann").ainvoke("moved to Lisbon")
            assert docs and "Lisbon" in docs[0].page_content
            with pytest.raises(TypeError):
                MemsvcChatMessageHistory(amem, "ann", "s1").messages  # noqa: B018 - sync access refused
            await MemsvcChatMessageHistory(amem, "ann", "s1").aclear()
            assert await MemsvcChatMessageHistory(amem, "ann", "s1").aget_messages() == []

    asyncio.run(run())


def test_langchain_through_rest_keeps_tenants_apart(live: Live) -> None:
    with MemsvcClient(live.url, live.api.acme) as acme, MemsvcClient(live.url, live.api.globex) as globex:
        MemsvcChatMessageHistory(acme, "ann", "s1").add_messages([HumanMessage("My cat is called Tom")])
        MemsvcChatMessageHistory(globex, "ann", "s1").add_messages([HumanMessage("My cat is called Felix")])
        assert [m.content for m in MemsvcChatMessageHistory(acme, "ann", "s1").messages] == ["My cat is called Tom"]
        docs = MemsvcRetriever(memory=globex, user_id="ann").invoke("cat name")
        assert docs and all("Felix" in d.page_content and "Tom" not in d.page_content for d in docs)


def test_langgraph_store(mem: Memory) -> None:
    import langgraph  # noqa: F401  (a [dev] dependency: a broken install fails here)
    from langgraph.graph import END, START, StateGraph
    from langgraph.store.base import BaseStore
    from typing_extensions import TypedDict

    from memsvc.integrations.langgraph import MemsvcStore

    store = MemsvcStore(mem)
    store.put(("ann", "prefs"), "food", {"text": "Ann is vegetarian", "kind": "diet"})
    store.put(("ann", "prefs"), "pet", {"text": "Ann has a puppy named Rex", "kind": "pet"})
    store.put(("ann", "work"), "job", {"text": "Ann is a nurse"}, index=False)
    store.put(("bob", "prefs"), "food", {"text": "Bob eats everything"})
    first = store.get(("ann", "prefs"), "food")
    assert first is not None and first.value["text"] == "Ann is vegetarian"
    store.put(("ann", "prefs"), "food", {"text": "Ann is vegan now", "kind": "diet"})
    item = store.get(("ann", "prefs"), "food")
    assert item is not None and item.value["text"] == "Ann is vegan now" and item.created_at == first.created_at
    assert len(mem.history("ann", session_id="lgstore:ann.prefs")) == 2  # the old version is gone
    hits = store.search(("ann",), query="puppy named Rex")
    assert hits[0].key == "pet" and hits[0].score is not None and "job" not in {h.key for h in hits}
    assert [h.key for h in store.search(("ann", "prefs"), filter={"kind": "diet"})] == ["food"]
    assert {h.key for h in store.search(("ann",))} == {"food", "pet", "job"}
    assert store.list_namespaces(prefix=("ann",)) == [("ann", "prefs"), ("ann", "work")]
    assert store.list_namespaces(prefix=("ann",), max_depth=1) == [("ann",)]
    store.delete(("ann", "prefs"), "food")
    assert store.get(("ann", "prefs"), "food") is None
    assert store.get(("bob", "prefs"), "food") is not None

    class State(TypedDict):
        user: str
        fact: str
        recalled: list[str]

    def remember(state: State, *, store: BaseStore) -> dict[str, Any]:
        store.put((state["user"], "facts"), "latest", {"text": state["fact"]})
        return {}

    def recall(state: State, *, store: BaseStore) -> dict[str, Any]:
        return {"recalled": [i.value["text"] for i in store.search((state["user"],), query=state["fact"], limit=2)]}

    graph = (StateGraph(State).add_node("remember", remember).add_node("recall", recall)
             .add_edge(START, "remember").add_edge("remember", "recall").add_edge("recall", END)
             .compile(store=store))
    out = graph.invoke({"user": "ann", "fact": "Ann runs marathons", "recalled": []})
    assert out["recalled"][0] == "Ann runs marathons"
    assert asyncio.run(store.aget(("ann", "facts"), "latest")) is not None
