"""Answering through an external OpenAI-compatible server (vLLM, SGLang) instead of a local model.

    RemoteLLM       stream_chat / count_tokens like ``memsvc.gpu.llm.LLM``, over HTTP (httpx, no torch)
    RemoteStream    the pieces of one answer; ``finish_reason`` and ``usage`` as the server reported

``Settings(gpu={"base_url": "http://gpu-host:8001/v1", "model": "Qwen/Qwen2.5-7B-Instruct"})`` makes the
REST app's ``/v1/chat/completions`` add the caller's memory context (``Memory.context``) to the system
message and forward the request to ``<base_url>/chat/completions``; the server's prefix cache reuses
the KV of a repeated memory prefix. The memory goes in the system message before the conversation,
in the same place and wording as the local runtime (``LLM.split_prompt``), so it stays a stable prefix.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from memsvc.exceptions import ConfigError, ModelError
from memsvc.gpu.llm import DEFAULT_SYSTEM

__all__ = ["RemoteLLM", "RemoteStream"]


class RemoteStream:
    """The text pieces of one streamed answer (iterate once); ``finish_reason`` and ``usage`` are set
    from the server's chunks as they arrive."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None

    def __iter__(self) -> Iterator[str]:
        try:
            for line in self._response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                if chunk.get("usage"):
                    self.usage = chunk["usage"]
                for choice in chunk.get("choices") or []:
                    if choice.get("finish_reason"):
                        self.finish_reason = choice["finish_reason"]
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        yield piece
        except httpx.HTTPError as exc:
            raise ModelError(f"the answering server broke off the stream: {exc}") from exc
        finally:
            self._response.close()


class RemoteLLM:
    """Chat answers from an OpenAI-compatible server (``base_url`` ends in ``/v1``).

    Args:
        base_url: e.g. ``http://gpu-host:8001/v1``.
        model: model name on that server.
        api_key: bearer key, if the server wants one.
        system_prompt: instruction that opens every prompt (the memory follows it).
        timeout_s: connect/read timeout.
        transport: an ``httpx`` transport (tests, proxies).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        system_prompt: str = DEFAULT_SYSTEM,
        timeout_s: float = 300.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must be an http(s) URL, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.model_id = model
        self.system_prompt = system_prompt
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=httpx.Timeout(timeout_s), transport=transport
        )

    def messages(self, messages: Sequence[dict[str, str]], context: str | None = None) -> list[dict[str, str]]:
        """The messages sent upstream: one system message (instruction, caller's system messages,
        memory), then the conversation."""
        system = "\n".join(m["content"] for m in messages if m.get("role") == "system")
        head = "\n\n".join(t for t in (self.system_prompt, system) if t)
        if context:
            head += f"\n\nMemory:\n{context}"
        turns = [{"role": m["role"], "content": m["content"]} for m in messages if m.get("role") != "system"]
        if not turns or turns[-1]["role"] != "user":
            raise ConfigError("messages must end with a user message")
        return [{"role": "system", "content": head}, *turns]

    def stream_chat(
        self,
        messages: Sequence[dict[str, str]],
        *,
        context: str | None = None,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> RemoteStream:
        """Send the chat request (streaming) and return its pieces; the request is made here, so a
        server that refuses or cannot be reached raises ``ModelError`` before any piece."""
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": self.messages(messages, context),
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if seed is not None:
            body["seed"] = seed
        try:
            req = self._client.build_request("POST", "/chat/completions", json=body)
            resp = self._client.send(req, stream=True)
        except httpx.HTTPError as exc:
            raise ModelError(f"cannot reach the answering server at {self.base_url}: {exc}") from exc
        if resp.status_code != 200:
            detail = resp.read().decode("utf-8", "replace")[:500]
            resp.close()
            raise ModelError(f"the answering server answered {resp.status_code}: {detail}")
        return RemoteStream(resp)

    def count_tokens(self, text: str) -> int:
        """Approximate tokens (cl100k_base; the server's own counts come back as ``usage``)."""
        from memsvc.tokens import count_tokens

        return count_tokens(text)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()
