"""Answering runtime: a transformers causal LM that answers from memory with a compressed KV cache.

    from memsvc.gpu.llm import LLM
    llm = LLM("Qwen/Qwen2.5-0.5B-Instruct", press="expected_attention", press_options={"compression_ratio": 0.75})
    print(llm.answer("what is Ann's dog called?", memory=m, user_id="ann"))       # Memory.context(...)
    for piece in llm.stream("when did Ann move?", episode=("unit-42", episode_text)):  # stored episode KV
        print(piece, end="")

Flow: the prompt is split into a *memory prefix* (system prompt + retrieved context or one episode's
text) and a *question suffix*. The prefix is prefilled under the press (its KV compressed as each layer
is filled) — or, for an ``episode``, loaded from the :class:`~memsvc.gpu.episode_store.EpisodeKVStore`
when a cache for that text exists (else prefilled, compressed and stored) — then the suffix is fed on the
compressed cache and tokens are decoded one at a time (greedy or sampled) and streamed as text.
Query-agnostic presses (ExpectedAttention, Knorm, StreamingLLM, KIVI) fit this split; SnapKV, which
reads the question from its observation window, does best with ``query_aware=True`` (the question is
prefilled with the context and compressed with it, as in the SnapKV paper).

Device: ``device="auto"`` picks CUDA when available, else CPU; ``dtype="auto"`` is bfloat16 on CUDA and
float32 on CPU. One generation runs at a time per ``LLM`` (a lock serialises callers).

Bigger deployments: keep memsvc for memory and point the chat endpoint at an external vLLM or SGLang
OpenAI-compatible server (with prefix caching) instead of this runtime — see docs/GPU.md.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from memsvc.exceptions import ConfigError, GPUOutOfMemory, MissingDependencyError, ModelError

__all__ = ["LLM", "ContextSource", "resolve_device"]

DEFAULT_SYSTEM = (
    "You are a helpful assistant with a long-term memory. Answer the user's question using the memory "
    "below when it is relevant; say you don't know when it is not there."
)


class ContextSource(Protocol):
    """Anything with ``Memory.context``'s signature (``Memory``, ``MemoryService``)."""

    def context(self, query: str, user_id: str, budget_tokens: int = 1000, **kwargs: Any) -> str: ...


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when available, else ``"cpu"``; anything else is returned as is."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _resolve_press(press: Any, options: dict[str, Any] | None) -> Any:
    if press is None or not isinstance(press, str):
        return press
    from memsvc.gpu.policies import PRESSES

    return PRESSES.create(press, **(options or {}))


class LLM:
    """A Hugging Face causal LM with a KV press, an episode KV store and a streaming decode loop.

    Args:
        model: hub name or local path of any causal LM (``AutoModelForCausalLM``).
        device: ``"auto"``, ``"cuda"``, ``"cuda:1"``, ``"cpu"``...
        dtype: ``"auto"``, ``"bfloat16"``, ``"float16"``, ``"float32"``.
        press: a press instance, a registered press name (``PRESSES.names()``) or ``None`` (full cache).
        press_options: keyword options when ``press`` is a name.
        episode_store: an ``EpisodeKVStore`` or a directory for one (enables ``episode=`` answers).
        revision: model revision to load (recorded with stored caches).
        system_prompt: the instruction that opens every prompt.
        query_aware: prefill the question with the memory (SnapKV-style) instead of after compression.
        max_new_tokens: default answer length.

    ``memsvc.gpu.runtime.answerer_from_config(settings.gpu)`` builds one from ``Settings``.
    """

    def __init__(
        self,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        press: Any = None,
        press_options: dict[str, Any] | None = None,
        episode_store: Any = None,
        revision: str | None = None,
        system_prompt: str = DEFAULT_SYSTEM,
        query_aware: bool = False,
        trust_remote_code: bool = False,
        max_new_tokens: int = 256,
    ):
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError("the answering runtime needs: pip install memsvc[gpu]") from exc
        self.model_id, self.revision = model, revision
        self.device = resolve_device(device)
        if dtype == "auto":
            dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
        if not hasattr(torch, dtype):
            raise ConfigError(f"unknown dtype {dtype!r}")
        self.dtype = getattr(torch, dtype)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                model, revision=revision, trust_remote_code=trust_remote_code
            )
            self.model: Any = (
                AutoModelForCausalLM.from_pretrained(
                    model, revision=revision, dtype=self.dtype, trust_remote_code=trust_remote_code
                )
                .to(self.device)  # type: ignore[arg-type]
                .eval()
            )
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot load model {model!r}: {exc}") from exc
        self.press = _resolve_press(press, press_options)
        self.system_prompt = system_prompt
        self.query_aware = query_aware
        self.max_new_tokens = max_new_tokens
        if episode_store is not None and not hasattr(episode_store, "invalidate"):
            from memsvc.gpu.episode_store import EpisodeKVStore

            episode_store = EpisodeKVStore(Path(episode_store), model, revision)
        self.episode_store = episode_store
        self._lock = threading.Lock()
        eos = self.model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {int(e) for e in [*eos_ids, self.tokenizer.eos_token_id] if e is not None}

    # -- prompts ------------------------------------------------------------------------------------
    def split_prompt(
        self, question: str, memory_text: str = "", history: Sequence[dict[str, str]] = ()
    ) -> tuple[str, str]:
        """``(prefix, suffix)`` texts: the memory prefix (cacheable) and the question suffix."""
        system = self.system_prompt + (f"\n\nMemory:\n{memory_text}" if memory_text else "")
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            head = [{"role": "system", "content": system}]
            full = tok.apply_chat_template(
                [*head, *history, {"role": "user", "content": question}],
                tokenize=False,
                add_generation_prompt=True,
            )
            prefix = tok.apply_chat_template(head, tokenize=False)
            if isinstance(full, str) and isinstance(prefix, str) and full.startswith(prefix):
                return prefix, full[len(prefix) :]
            return "", str(full)  # template cannot be split: no prefix reuse
        turns = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in history)
        return f"{system}\n\n", f"{turns}Question: {question}\nAnswer:"

    def _encode(self, text: str, first: bool) -> Any:
        tok = self.tokenizer
        templated = bool(getattr(tok, "chat_template", None))
        ids = tok(text, add_special_tokens=first and not templated, return_tensors="pt").input_ids
        return ids.to(self.device)

    # -- caches ---------------------------------------------------------------------------------------
    def prefill(self, ids: Any, press: Any = None) -> tuple[Any, Any]:
        """Prefill ``ids`` ``[1, n]`` under ``press``; returns ``(cache, last_logits)``."""
        import torch
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        with self._oom(), torch.inference_mode():
            if press is None:
                out = self.model(input_ids=ids, past_key_values=cache, use_cache=True)
            else:
                with press(self.model):
                    out = self.model(input_ids=ids, past_key_values=cache, use_cache=True)
        return cache, out.logits[:, -1]

    def press_spec(self, press: Any = None) -> str:
        """A stable string naming the press configuration (part of episode-store keys)."""
        press = self.press if press is None else press
        return "none" if press is None else repr(press)

    def episode_cache(
        self, unit_id: str, text: str, press: Any = None, scope: str | None = None
    ) -> tuple[Any, bool]:
        """The memory-prefix cache for one episode: loaded from the store (``True``) or prefilled,
        compressed and stored (``False``, tagged with ``scope`` such as ``"<tenant>/<user>"``)."""
        if self.episode_store is None:
            raise ConfigError("episode answers need an episode_store")
        press = self.press if press is None else press
        prefix, _ = self.split_prompt("?", text)
        chash = self.episode_store.content_hash(prefix)
        spec = self.press_spec(press)
        hit = self.episode_store.get(
            unit_id, content_hash=chash, press_spec=spec, dtype=self.dtype, device=self.device
        )
        if hit is not None:
            return hit.cache, True
        self.episode_store.check_store(unit_id, chash)  # a deleted unit or old text: refuse before prefill
        ids = self._encode(prefix, first=True)
        cache, _ = self.prefill(ids, press)
        self.episode_store.put(
            unit_id,
            cache,
            content_hash=chash,
            token_ids=ids,
            press_spec=spec,
            scope=scope,
            extra={"kind": "episode_prefix"},
        )
        return cache, False

    # -- generation -----------------------------------------------------------------------------------
    def stream(
        self,
        question: str,
        *,
        context: str | None = None,
        memory: ContextSource | None = None,
        user_id: str | None = None,
        budget_tokens: int = 1000,
        episode: tuple[str, str] | tuple[str, str, str] | None = None,
        history: Sequence[dict[str, str]] = (),
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        press: Any = None,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Stream the answer to ``question`` as text pieces.

        Memory comes from ``context`` (text), ``memory.context(question, user_id, budget_tokens)``, or a
        stored ``episode=(unit_id, text[, scope])`` KV cache; ``press`` overrides the instance's press.
        """
        press = self.press if press is None else press
        if memory is not None:
            if user_id is None:
                raise ConfigError("memory= needs user_id=")
            context = memory.context(question, user_id=user_id, budget_tokens=budget_tokens)
        with self._lock:
            if episode is not None:
                scope = episode[2] if len(episode) > 2 else None  # type: ignore[misc]
                cache, _ = self.episode_cache(episode[0], episode[1], press, scope=scope)
                _, suffix = self.split_prompt(question, episode[1], history)
                first = self._feed(cache, self._encode(suffix, first=False))
            else:
                prefix, suffix = self.split_prompt(question, context or "", history)
                if self.query_aware or not prefix:
                    cache, first = self.prefill(self._encode(prefix + suffix, first=True), press)
                else:
                    cache, _ = self.prefill(self._encode(prefix, first=True), press)
                    first = self._feed(cache, self._encode(suffix, first=False))
            limit = self.max_new_tokens if max_new_tokens is None else max_new_tokens
            yield from self._decode(cache, first, limit, temperature, top_p, seed)

    def answer(self, question: str, **kwargs: Any) -> str:
        """The whole answer (``stream`` joined)."""
        return "".join(self.stream(question, **kwargs))

    def stream_chat(self, messages: Sequence[dict[str, str]], **kwargs: Any) -> Iterator[str]:
        """OpenAI-style ``messages``: system messages become memory context, the last user message the
        question, earlier turns history."""
        system = "\n".join(m["content"] for m in messages if m.get("role") == "system")
        turns = [m for m in messages if m.get("role") in ("user", "assistant")]
        if not turns or turns[-1]["role"] != "user":
            raise ConfigError("messages must end with a user message")
        extra = kwargs.pop("context", None)
        context = "\n\n".join(t for t in (system, extra) if t)
        return self.stream(turns[-1]["content"], context=context, history=turns[:-1], **kwargs)

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` under this model's tokenizer."""
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def _feed(self, cache: Any, ids: Any) -> Any:
        import torch

        with self._oom(), torch.inference_mode():
            return self.model(input_ids=ids, past_key_values=cache, use_cache=True).logits[:, -1]

    def _decode(
        self, cache: Any, logits: Any, max_new_tokens: int, temperature: float, top_p: float, seed: int | None
    ) -> Iterator[str]:
        import torch

        gen = torch.Generator(device=logits.device)
        if seed is not None:
            gen.manual_seed(seed)
        ids: list[int] = []
        shown = ""
        for step in range(max_new_tokens):
            tok = _sample(logits.float(), temperature, top_p, gen)
            if tok in self.eos_ids:
                break
            ids.append(tok)
            text = str(self.tokenizer.decode(ids, skip_special_tokens=True))
            if not text.endswith("\ufffd") and len(text) > len(shown):  # hold back split UTF-8 sequences
                yield text[len(shown) :]
                shown = text
            if step + 1 < max_new_tokens:
                logits = self._feed(cache, torch.tensor([[tok]], device=self.device))
        text = str(self.tokenizer.decode(ids, skip_special_tokens=True))
        if len(text) > len(shown):
            yield text[len(shown) :]

    def _oom(self) -> Any:
        import contextlib

        import torch

        @contextlib.contextmanager
        def guard() -> Iterator[None]:
            try:
                yield
            except torch.cuda.OutOfMemoryError as exc:
                raise GPUOutOfMemory(f"{self.model_id}: out of GPU memory ({exc})") from exc

        return guard()


def _sample(logits: Any, temperature: float, top_p: float, gen: Any) -> int:
    """Greedy at temperature 0, else nucleus sampling."""
    import torch

    if temperature <= 0:
        return int(logits.argmax(-1)[0])
    probs = (logits[0] / temperature).softmax(-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
    return int(torch.multinomial(probs / probs.sum(), 1, generator=gen)[0])
