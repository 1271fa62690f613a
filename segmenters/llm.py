"""LLM segmenter: any LangChain chat model proposes the boundaries; the default segmenter backs it up.

    Segmenter --> LLMSegmenter

The turns of the open episode are numbered in a prompt and the model answers with structured output
``{"boundaries": [i, ...]}`` (i = index of the last turn of a topic segment), through the model's
``with_structured_output`` when it has one and as JSON in plain text otherwise (local models often
lack tool calling). The answer is validated (integers, in range, increasing); anything else —
malformed JSON, prose, out-of-range or unordered indices, an exception from the model — falls back
to the ``fallback`` segmenter (the default learned one) for that call, so ingest never fails because of
the LLM. SeCom (Pan et al., 2025) segments with GPT-4 zero-shot the same way.

Online, the model is called only once ``window`` items are open (or at session end): every segment it
proposes but the last is closed, the last stays open. Pauses over ``max_gap_s`` and ``max_size`` close
episodes as in the other segmenters. Unlike the gap segmenters, an LLM sees a different prompt online
than offline, so its cuts may differ between the two.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memsvc.segmenters.base import Segmenter, SegmentItem
from pydantic import BaseModel, Field, StrictInt, ValidationError

from memsvc.exceptions import ConfigError, MissingDependencyError, SegmentationError

__all__ = ["Boundaries", "LLMSegmenter", "parse_boundaries"]

log = logging.getLogger(__name__)

PROMPT = """Split this conversation into topically coherent segments. The turns are numbered 0 to {last}.
Answer with JSON only, in this form: {{"boundaries": [i, ...]}}, where each i is the number of the LAST
turn of a segment, in increasing order; do not list {last} (the conversation may continue).
Keep a question together with its answer. Return {{"boundaries": []}} if it is all one topic.

{turns}"""


class Boundaries(BaseModel):
    """Structured answer of the model."""

    boundaries: list[StrictInt] = Field(description="Index of the last turn of each topic segment, increasing.")


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_boundaries(raw: Any, n: int) -> list[int]:
    """Validate a model answer (a ``Boundaries``, a dict, or text holding JSON) for ``n`` turns.

    Returns the boundaries (each < n - 1, strictly increasing); raises ``SegmentationError`` if invalid.
    """
    value: Any = raw
    if isinstance(raw, Boundaries):
        value = raw.boundaries
    elif isinstance(raw, str):
        text = raw.strip()
        m = _FENCE.search(text)
        if m:
            text = m.group(1).strip()
        start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
        if start < 0:
            raise SegmentationError(f"no JSON in model output: {raw[:120]!r}")
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
        except json.JSONDecodeError as exc:
            raise SegmentationError(f"malformed JSON in model output: {exc}") from exc
    if isinstance(value, dict):
        try:
            value = Boundaries.model_validate(value).boundaries
        except ValidationError as exc:
            raise SegmentationError(f"model output does not match the schema: {exc}") from exc
    if not isinstance(value, list) or not all(isinstance(b, int) and not isinstance(b, bool) for b in value):
        raise SegmentationError(f"boundaries must be a list of integers, got {value!r}")
    if any(b < 0 or b > n - 1 for b in value):
        raise SegmentationError(f"boundary out of range for {n} turns: {value!r}")
    cuts = [b for b in value if b != n - 1]
    if any(b <= a for a, b in zip(cuts, cuts[1:], strict=False)):
        raise SegmentationError(f"boundaries must be strictly increasing: {value!r}")
    return cuts


def _build_chat_model(spec: Any, options: dict[str, Any]) -> Any:
    if not isinstance(spec, str):
        return spec
    module_name, _, attr = spec.replace(":", ".").rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"cannot import chat model {spec!r}: {exc}") from exc
    return cls(**options)


@dataclass
class LLMSegmenter:
    """Boundaries from a LangChain ``BaseChatModel``; ``fallback`` when its answer is unusable."""

    chat_model: Any = None
    """A ``BaseChatModel`` instance, or the dotted path of its class (built with ``chat_options``)."""
    chat_options: dict[str, Any] = field(default_factory=dict)
    window: int = 12
    """Open items that trigger a model call online (the session end always does)."""
    max_size: int = 24
    max_gap_s: float = 1800.0
    structured: bool = True
    """Try the model's ``with_structured_output`` first (plain JSON text when it has none)."""
    fallback: Any = None
    """Segmenter used when the answer is invalid (default: ``BoundarySegmenter()``), or its registry name."""
    name: str = "llm"

    def __post_init__(self) -> None:
        if self.chat_model is None:
            raise ConfigError("the llm segmenter needs chat_model (an instance or a dotted class path)")
        try:
            from langchain_core.messages import HumanMessage  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError("pip install memsvc[langchain]") from exc
        if not 2 <= self.window <= self.max_size:
            raise ConfigError("need 2 <= window <= max_size")
        self._model = _build_chat_model(self.chat_model, self.chat_options)
        from memsvc.segmenters import SEGMENTERS

        if self.fallback is None or isinstance(self.fallback, str):
            self._fallback: Segmenter = SEGMENTERS.create(self.fallback or "boundary", max_gap_s=self.max_gap_s)
        else:
            self._fallback = self.fallback
        self.failures = 0
        """How many calls fell back (for monitoring)."""

    def split(self, items: Sequence[SegmentItem], final: bool = False) -> list[int]:
        n = len(items)
        stretch = n
        for g in range(n - 1):
            if (items[g + 1].timestamp - items[g].timestamp).total_seconds() > self.max_gap_s:
                stretch = g + 1
                break
        closes = final or stretch < n
        if stretch == 0 or (not closes and stretch < self.window):
            return []
        part = items[:stretch]
        cuts = self._ask(part)
        if cuts is None:
            sizes = self._fallback.split(part, final=True)
        else:
            sizes, s = [], 0
            for c in [*cuts, stretch - 1]:
                sizes.append(c + 1 - s)
                s = c + 1
        sizes = [piece for size in sizes for piece in _cap(size, self.max_size)]
        if not closes:
            sizes = sizes[:-1]  # the last proposed segment may go on
            rest = n - sum(sizes)
            while rest >= self.max_size:
                sizes.append(self.max_size)
                rest -= self.max_size
        return sizes

    def _ask(self, items: Sequence[SegmentItem]) -> list[int] | None:
        from langchain_core.messages import HumanMessage

        n = len(items)
        if n < 2:
            return []
        turns = "\n".join(
            f"{i}. {it.speaker + ': ' if it.speaker else ''}{' '.join(it.text.split())}" for i, it in enumerate(items)
        )
        msg = [HumanMessage(content=PROMPT.format(last=n - 1, turns=turns))]
        try:
            raw: Any = None
            if self.structured:
                try:
                    out = self._model.with_structured_output(Boundaries, include_raw=True).invoke(msg)
                    raw = out.get("parsed") or getattr(out.get("raw"), "content", None)
                except NotImplementedError:
                    raw = None
            if raw is None:
                raw = self._model.invoke(msg).content
            return parse_boundaries(raw, n)
        except SegmentationError as exc:
            log.warning("LLM segmenter output rejected, using %s: %s", self._fallback.name, exc)
        except Exception as exc:  # noqa: BLE001 - any model/provider failure must not break ingest
            log.warning("LLM segmenter call failed, using %s: %s", self._fallback.name, exc)
        self.failures += 1
        return None


def _cap(size: int, max_size: int) -> list[int]:
    out = [max_size] * (size // max_size)
    if size % max_size:
        out.append(size % max_size)
    return out
