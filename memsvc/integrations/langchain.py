"""LangChain integration (``pip install 'memsvc[langchain]'``): chat history and a retriever over memsvc.

    BaseChatMessageHistory --> MemsvcChatMessageHistory    one (user, session) conversation, stored as events
    BaseRetriever          --> MemsvcRetriever             memsvc search results as Documents

Both take any memsvc memory: ``Memory`` or ``MemsvcClient`` (sync; the async LangChain methods run
them in a worker thread), or ``AsyncMemory`` / ``AsyncMemsvcClient`` (async; then only the async
LangChain methods work: ``ainvoke``, ``aget_messages``, ...).

    history = MemsvcChatMessageHistory(memory, user_id="ann", session_id="s1")
    chain = RunnableWithMessageHistory(prompt | model, lambda sid: MemsvcChatMessageHistory(memory, "ann", sid),
                                       input_messages_key="question", history_messages_key="history")
    retriever = MemsvcRetriever(memory=memory, user_id="ann", budget_tokens=1000)

Messages map to memsvc roles by type (human -> user, ai -> assistant, system, tool; a ``ChatMessage``
keeps its role when memsvc knows it, else becomes ``user``); a message's ``id`` is its memsvc client id
(adding the same message twice stores it once) and comes back as its id; the rest of the message
(``tool_calls``, ``additional_kwargs``, ...) is kept in the event metadata. A message without text and
without tool calls is skipped: memsvc stores no empty memories.

The LangGraph long-term store (``BaseStore``) lives in ``memsvc.integrations.langgraph`` (extra
``[langgraph]``, which installs cleanly from the package index).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from memsvc.models import Hit, MemoryRecord

__all__ = ["MemsvcChatMessageHistory", "MemsvcRetriever", "hit_to_document"]

_ROLE_OF_TYPE = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}
_TYPE_OF_ROLE = {"user": "human", "human": "human", "assistant": "ai", "ai": "ai", "system": "system",
                 "tool": "tool"}
_META = "langchain"
"""Event metadata key holding the rest of a LangChain message."""


def _is_async(memory: Any) -> bool:
    return inspect.iscoroutinefunction(getattr(memory, "search", None))


def _text(msg: BaseMessage) -> str:
    t: Any = msg.text  # a str-like property in langchain-core 1.x, a method in 0.3
    return str(t) if isinstance(t, str) else str(t())


def _to_memsvc(msg: BaseMessage) -> dict[str, Any] | None:
    """A memsvc message dict for a LangChain message (None for one with nothing to remember)."""
    data = message_to_dict(msg)["data"]
    text = _text(msg)
    tool_calls = getattr(msg, "tool_calls", None) or []
    if not text.strip():
        if not tool_calls:
            return None
        text = "calls " + ", ".join(f"{c.get('name')}({c.get('args')})" for c in tool_calls)
    role = _ROLE_OF_TYPE.get(msg.type)
    if role is None:  # ChatMessage: keep a role memsvc knows
        r = str(getattr(msg, "role", "user")).lower()
        role = r if r in _TYPE_OF_ROLE else "user"
    extra = {k: v for k, v in data.items() if k not in ("content", "id", "name") and v not in (None, {}, [])}
    extra["type"] = msg.type
    if msg.id:
        extra["id"] = msg.id
    if data.get("content") != text:  # multimodal or empty content: keep the original
        extra["content"] = data.get("content")
    out: dict[str, Any] = {"role": role, "content": text, "metadata": {_META: extra}}
    if msg.name:
        out["name"] = msg.name
    if msg.id:
        out["client_id"] = msg.id
    return out


def _from_record(rec: MemoryRecord) -> BaseMessage:
    extra = dict(rec.metadata.get(_META) or {})
    mtype = extra.pop("type", None) or _TYPE_OF_ROLE.get(rec.role or "user", "human")
    data = {"content": extra.pop("content", rec.text or ""), "id": extra.pop("id", None) or rec.id,
            "name": rec.name, **extra}
    if mtype == "tool" and "tool_call_id" not in data:
        data["tool_call_id"] = ""
    return messages_from_dict([{"type": mtype, "data": data}])[0]


class MemsvcChatMessageHistory(BaseChatMessageHistory):
    """The messages of one ``(user_id, session_id)`` conversation, kept as memsvc events: the same turns
    are searchable long-term memory for that user."""

    page_size = 1000

    def __init__(self, memory: Any, user_id: str, session_id: str) -> None:
        self.memory = memory
        self.user_id = user_id
        self.session_id = session_id

    def _sync_only(self) -> None:
        if _is_async(self.memory):
            raise TypeError("this history wraps an async memory: use aget_messages/aadd_messages/aclear "
                            "(and ainvoke on runnables)")

    def _to_add(self, messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
        out = []
        for m in messages:
            d = _to_memsvc(m)
            if d is not None:
                out.append(d)
        return out

    # -- sync --------------------------------------------------------------------------------------
    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """Every message of the session, oldest first."""
        self._sync_only()
        out: list[MemoryRecord] = []
        while True:
            page = self.memory.history(self.user_id, session_id=self.session_id, limit=self.page_size,
                                       offset=len(out))
            out += page
            if len(page) < self.page_size:
                return [_from_record(r) for r in out]

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        self._sync_only()
        batch = self._to_add(messages)
        if batch:
            self.memory.add(batch, user_id=self.user_id, session_id=self.session_id)

    def clear(self) -> None:
        """Delete the session's messages (and the memories built from them)."""
        self._sync_only()
        while True:
            page = self.memory.history(self.user_id, session_id=self.session_id, limit=self.page_size)
            for r in page:
                self.memory.delete(r.id, self.user_id)
            if len(page) < self.page_size:
                return

    # -- async -------------------------------------------------------------------------------------
    async def aget_messages(self) -> list[BaseMessage]:
        if not _is_async(self.memory):
            return await super().aget_messages()
        out: list[MemoryRecord] = []
        while True:
            page = await self.memory.history(self.user_id, session_id=self.session_id, limit=self.page_size,
                                             offset=len(out))
            out += page
            if len(page) < self.page_size:
                return [_from_record(r) for r in out]

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        if not _is_async(self.memory):
            return await super().aadd_messages(messages)
        batch = self._to_add(messages)
        if batch:
            await self.memory.add(batch, user_id=self.user_id, session_id=self.session_id)
        return None

    async def aclear(self) -> None:
        if not _is_async(self.memory):
            return await super().aclear()
        while True:
            page = await self.memory.history(self.user_id, session_id=self.session_id, limit=self.page_size)
            for r in page:
                await self.memory.delete(r.id, self.user_id)
            if len(page) < self.page_size:
                return None


def hit_to_document(hit: Hit) -> Document:
    """A ``Document`` for a hit: its text, and score, times (ISO-8601) and provenance as metadata."""
    meta = {
        "id": hit.id, "score": hit.score, "level": str(hit.level), "start_time": hit.start_time.isoformat(),
        "end_time": hit.end_time.isoformat(), "source_ids": list(hit.source_ids), "user_id": hit.user_id,
        "session_id": hit.session_id, "stream_id": hit.stream_id, "tokens": hit.tokens,
        "components": dict(hit.components), **{f"memsvc_{k}": v for k, v in hit.metadata.items()},
    }
    return Document(page_content=hit.text, metadata=meta, id=hit.id)


class MemsvcRetriever(BaseRetriever):
    """memsvc search as a LangChain retriever (sync and async).

    Example:
        ``(MemsvcRetriever(memory=m, user_id="ann", budget_tokens=1000) | format_docs).invoke("dog?")``
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: Any
    """A ``Memory``, ``AsyncMemory``, ``MemsvcClient`` or ``AsyncMemsvcClient``."""
    user_id: str
    """Whose memories to search."""
    limit: int | None = 10
    """Most documents to return (with ``budget_tokens``: at most this many of those that fit)."""
    budget_tokens: int | None = None
    """Return only the hits that fit this many cl100k_base tokens, as ``Memory.context`` packs them."""
    time_range: tuple[datetime | None, datetime | None] | None = None
    """Only memories overlapping ``(start, end)`` (aware datetimes, either side open)."""
    levels: list[str] | None = None
    """Memory levels to search (``turn``, ``episode``, ``summary``, ``semantic``); default all."""
    session_id: str | None = None
    stream_id: str | None = None
    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Any other ``Memory.search`` keyword (e.g. ``query_time``)."""

    def _kwargs(self) -> dict[str, Any]:
        return {"limit": self.limit, "budget_tokens": self.budget_tokens, "time_range": self.time_range,
                "levels": self.levels, "session_id": self.session_id, "stream_id": self.stream_id,
                **self.search_kwargs}

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        if _is_async(self.memory):
            raise TypeError("this retriever wraps an async memory: use ainvoke")
        return [hit_to_document(h) for h in self.memory.search(query, self.user_id, **self._kwargs())]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        if not _is_async(self.memory):
            return await super()._aget_relevant_documents(query, run_manager=run_manager)
        hits = await self.memory.search(query, self.user_id, **self._kwargs())
        return [hit_to_document(h) for h in hits]
