"""Framework integrations, each behind its own extra: ``langchain`` (chat history, retriever) and
``langgraph`` (long-term ``BaseStore``). Import the submodule you need; nothing is imported here."""

from __future__ import annotations

__all__: list[str] = []
