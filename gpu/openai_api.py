"""An OpenAI-compatible ``/v1/chat/completions`` (and ``/v1/models``) router over :class:`~memsvc.gpu.llm.LLM`.

    from fastapi import FastAPI
    from memsvc.gpu.openai_api import create_openai_router
    app = FastAPI()
    app.include_router(create_openai_router(llm, memory=memory))   # the REST app does this when a model is set

Any OpenAI client works against it (``base_url="http://host:port/v1"``). With ``memory`` given and a
``user`` field in the request, the memory context for the last user message
(``memory.context(question, user_id=user, budget_tokens=...)``) is added to the prompt; otherwise the
request is answered from its messages alone. ``memory_dependency`` instead resolves the memory per
request (a FastAPI dependency: the REST app passes one that authenticates the API key and returns its
tenant's view, so a request reaches only its own tenant's users). ``stream: true`` returns server-sent
events (``chat.completion.chunk`` objects, then ``data: [DONE]``). Generation runs in the server's
thread pool. ``llm`` may be a local :class:`~memsvc.gpu.llm.LLM` or a
:class:`~memsvc.gpu.remote.RemoteLLM` (an external vLLM/SGLang server; its finish reason and token
usage are passed through). An unreachable or failing model answers 502.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from memsvc.exceptions import ConfigError, ModelError

__all__ = ["ChatCompletionRequest", "ChatMessage", "create_openai_router"]


class ChatMessage(BaseModel):
    """One chat message (text content only)."""

    role: Literal["system", "user", "assistant", "developer"]
    content: str


class ChatCompletionRequest(BaseModel):
    """The subset of OpenAI's chat completion request this endpoint honours (other fields are ignored)."""

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stream: bool = False
    seed: int | None = None
    user: str | None = None
    """memsvc user id whose memory is added to the prompt (when the router has a memory)."""


def create_openai_router(
    llm: Any,
    *,
    model_name: str | None = None,
    memory: Any = None,
    memory_dependency: Callable[..., Any] | None = None,
    budget_tokens: int = 1000,
    default_max_tokens: int = 256,
    dependencies: list[Any] | None = None,
) -> APIRouter:
    """A FastAPI router serving ``POST /v1/chat/completions`` and ``GET /v1/models`` with ``llm``.

    Args:
        llm: an :class:`~memsvc.gpu.llm.LLM` (anything with ``stream_chat`` and ``count_tokens``).
        model_name: id reported to clients (default ``llm.model_id``).
        memory: optional ``Memory``-like object with ``context(query, user_id, budget_tokens)``.
        memory_dependency: a FastAPI dependency returning that object per request (overrides ``memory``).
        budget_tokens: memory context budget per request.
        default_max_tokens: completion length when the request sets none.
        dependencies: FastAPI dependencies run for every route (e.g. authentication).
    """
    router = APIRouter(tags=["openai"], dependencies=dependencies or [])
    name = model_name or str(getattr(llm, "model_id", "memsvc-llm"))

    def fixed_memory() -> Any:
        return memory

    memory_dep = Depends(memory_dependency or fixed_memory)

    @router.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": "memsvc"}],
        }

    @router.post("/v1/chat/completions", response_model=None)
    def chat_completions(
        req: ChatCompletionRequest, mem: Any = memory_dep
    ) -> dict[str, Any] | StreamingResponse:
        messages = [
            {"role": "system" if m.role == "developer" else m.role, "content": m.content}
            for m in req.messages
        ]
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), None)
        if question is None or messages[-1]["role"] != "user":
            raise HTTPException(status_code=400, detail="messages must end with a user message")
        context = None
        if mem is not None and req.user:
            context = mem.context(question, user_id=req.user, budget_tokens=budget_tokens)
        kwargs: dict[str, Any] = {
            "max_new_tokens": req.max_completion_tokens or req.max_tokens or default_max_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "seed": req.seed,
            "context": context,
        }
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        try:
            pieces = llm.stream_chat(messages, **kwargs)
        except ConfigError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        except ModelError as exc:
            raise HTTPException(status_code=502, detail=str(exc)) from exc
        limit = kwargs["max_new_tokens"]
        if req.stream:
            return StreamingResponse(
                _sse(pieces, cid, created, name, llm, limit), media_type="text/event-stream"
            )
        try:
            text = "".join(pieces)
        except ModelError as exc:
            raise HTTPException(status_code=502, detail=str(exc)) from exc
        finish = _finish(pieces, llm, text, limit)
        prompt_tokens = sum(llm.count_tokens(m["content"]) for m in messages) + (
            llm.count_tokens(context) if context else 0
        )
        usage = getattr(pieces, "usage", None)
        if usage and {"prompt_tokens", "completion_tokens"} <= set(usage):
            return _completion(cid, created, name, text, finish, usage["prompt_tokens"], usage["completion_tokens"])
        return _completion(cid, created, name, text, finish, prompt_tokens, llm.count_tokens(text))

    return router


def _finish(pieces: Any, llm: Any, text: str, limit: int) -> str:
    """The server's finish reason when the pieces carry one, else ``length`` at the token limit."""
    given = getattr(pieces, "finish_reason", None)
    if given:
        return str(given)
    return "length" if llm.count_tokens(text) >= limit else "stop"


def _completion(
    cid: str, created: int, name: str, text: str, finish: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": name,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _sse(pieces: Iterator[str], cid: str, created: int, model: str, llm: Any, limit: int) -> Iterator[str]:
    def chunk(delta: dict[str, str], finish: str | None) -> str:
        body = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    text = []
    try:
        for piece in pieces:
            text.append(piece)
            yield chunk({"content": piece}, None)
    except ModelError as exc:  # headers are sent: report in-band, as OpenAI-style servers do
        yield f"data: {json.dumps({'error': {'type': 'ModelError', 'message': str(exc), 'code': 502}})}\n\n"
        return
    yield chunk({}, _finish(pieces, llm, "".join(text), limit))
    yield "data: [DONE]\n\n"
