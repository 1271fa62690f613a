"""LLM summarizer over any LangChain ``BaseChatModel`` (runs in consolidation, never in the write path).

The model gets the numbered passages and returns JSON ``{"summary": str, "used": [passage numbers]}``,
through ``with_structured_output`` when the model supports it and by parsing its text otherwise (local
models often break structured-output prompts). A reply is validated: non-empty, within the token
budget, ``used`` numbers in range, and every number written in the summary present in the passages
(a cheap guard against invented dates and amounts). An invalid reply is retried ``retries`` times
with the reason; then the summarizer falls back to the extractive one, or raises ``CompressionError``
when ``fallback=False``. Transport errors become ``ModelError`` (retryable when the provider says so).
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memsvc.compressors.base import Summary, SummaryRequest
from memsvc.compressors.summary.extractive import ExtractiveSummarizer
from memsvc.exceptions import CompressionError, ConfigError, MissingDependencyError, ModelError

__all__ = ["ChatModelSummarizer"]

SYSTEM = (
    "You write short, faithful memory summaries of conversations. Use only facts stated in the "
    "passages; keep names, numbers and dates exactly. Reply with JSON only: "
    '{"summary": "<text>", "used": [<numbers of the passages the summary draws on>]}.'
)
_NUM = re.compile(r"\d+(?:[.,]\d+)?")
_JSON = re.compile(r"\{.*\}", re.DOTALL)


class _Retryable(ModelError):
    is_retryable = True


def _load_model(model: Any) -> Any:
    """A ``BaseChatModel`` instance, or a dotted path to one / to a zero-argument factory."""
    if not isinstance(model, str):
        return model
    module_name, _, attr = model.replace(":", ".").rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"cannot import chat model {model!r}: {exc}") from exc
    return obj() if callable(obj) else obj


@dataclass
class ChatModelSummarizer:
    """Summaries by a LangChain chat model with validation, retries and an extractive fallback."""

    model: Any = None
    """A ``BaseChatModel`` or a dotted path to one (or to a factory returning one)."""
    retries: int = 2
    fallback: bool = True
    embedder: Any = None
    name: str = "langchain"
    version: str = "1"
    _fallback: ExtractiveSummarizer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            from langchain_core.language_models import BaseChatModel
        except ImportError as exc:
            raise MissingDependencyError("pip install memsvc[langchain]") from exc
        if self.model is None:
            raise ConfigError("the langchain summarizer needs options={'model': ...}")
        self.model = _load_model(self.model)
        if not isinstance(self.model, BaseChatModel):
            raise ConfigError(f"{type(self.model).__name__} is not a langchain BaseChatModel")
        if self.retries < 0:
            raise ConfigError("retries must be >= 0")
        self.name = f"langchain:{type(self.model).__name__}"
        self._fallback = ExtractiveSummarizer(embedder=self.embedder)

    def summarize(self, requests: Sequence[SummaryRequest]) -> list[Summary]:
        return [self._one(r) for r in requests]

    def _prompt(self, req: SummaryRequest, why: str | None) -> list[tuple[str, str]]:
        lines = [f"[{i + 1}] {p.speaker + ': ' if p.speaker else ''}{p.text}" for i, p in enumerate(req.passages)]
        words = max(8, int(req.budget_tokens * 0.7))
        ask = f"Summarize in at most {words} words" + (f" (about {req.hint})" if req.hint else "") + ":\n"
        msgs = [("system", SYSTEM), ("human", ask + "\n".join(lines))]
        if why:
            msgs.append(("human", f"Your previous reply was rejected: {why}. Reply again with valid JSON."))
        return msgs

    def _ask(self, msgs: list[tuple[str, str]]) -> dict[str, Any]:
        try:
            try:
                structured = self.model.with_structured_output(
                    {"title": "MemorySummary", "type": "object",
                     "properties": {"summary": {"type": "string"}, "used": {"type": "array", "items": {"type": "integer"}}},
                     "required": ["summary"]}
                )
            except NotImplementedError:
                structured = None
            if structured is not None:
                out = structured.invoke(msgs)
                if isinstance(out, dict):
                    return out
            reply = self.model.invoke(msgs)
        except Exception as exc:  # noqa: BLE001 - provider errors of any kind are a model failure here
            retryable = getattr(exc, "is_retryable", False) or "rate" in str(exc).lower() or "timeout" in str(exc).lower()
            raise (_Retryable if retryable else ModelError)(f"chat model failed: {exc}") from exc
        text = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
        m = _JSON.search(text)
        if not m:
            return {"summary": "", "error": "no JSON object in the reply"}
        try:
            data = json.loads(m.group(0))
        except json.JSONDecodeError as exc:
            return {"summary": "", "error": f"invalid JSON ({exc.msg})"}
        return data if isinstance(data, dict) else {"summary": "", "error": "reply is not a JSON object"}

    def _check(self, data: dict[str, Any], req: SummaryRequest) -> tuple[Summary | None, str]:
        from memsvc.tokens import count_tokens

        text = data.get("summary")
        if data.get("error"):
            return None, str(data["error"])
        if not isinstance(text, str) or not text.strip():
            return None, "empty summary"
        text = text.strip()
        n = count_tokens(text)
        if n > req.budget_tokens:
            return None, f"summary has {n} tokens, the limit is {req.budget_tokens}"
        source_text = " ".join(p.text for p in req.passages)
        invented = sorted(set(_NUM.findall(text)) - set(_NUM.findall(source_text)))
        if invented:
            return None, f"numbers not in the passages: {', '.join(invented[:5])}"
        used = data.get("used") or list(range(1, len(req.passages) + 1))
        if not isinstance(used, list) or not all(isinstance(u, int) and 1 <= u <= len(req.passages) for u in used):
            return None, "'used' must list passage numbers"
        srcs = tuple(dict.fromkeys(s for u in sorted(set(used)) if (s := req.passages[u - 1].source) is not None))
        return Summary(text=text, tokens=n, sources=srcs, extractive=False, kept=tuple(u - 1 for u in sorted(set(used)))), ""

    def _one(self, req: SummaryRequest) -> Summary:
        if not req.passages:
            return Summary(text="", tokens=0)
        why: str | None = None
        for _ in range(self.retries + 1):
            summary, why = self._check(self._ask(self._prompt(req, why)), req)
            if summary is not None:
                return summary
        if self.fallback:
            return self._fallback.summarize([req])[0]
        raise CompressionError(f"chat model gave no valid summary after {self.retries + 1} tries: {why}")
