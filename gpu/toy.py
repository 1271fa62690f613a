"""A tiny Llama that does associative recall, for offline KV-compression benchmarks and tests.

Task (:class:`RecallTask`): a context of ``context_tokens`` tokens — BOS, then filler tokens with
``n_pairs`` ``key value`` pairs placed in its first ``early_fraction`` — followed by a question
``Q key``; the answer is the value that followed that key. In the *query-aware* layout the question is
also the last thing in the compressed context (as SnapKV assumes), and is asked again after compression.

Model (:func:`build_recall_model`): a 2-layer ``LlamaForCausalLM`` (4 query heads, 2 KV heads, RoPE
base 1e9) whose weights are *compiled*, Tracr-style, into an induction circuit, then optionally
*fine-tuned* with noise (:func:`finetune`):

* layer 0, head 0 is a previous-token head: a constant direction of every embedding gives each token the
  same pre-RoPE query and key, with the key pre-rotated by one position, so the high-frequency RoPE pairs
  make ``q_i . k_j`` peak at ``j = i - 1`` (gap >= 20 logits up to 8k tokens). Its value copies "which
  key token am I" into a *previous-key* subspace of the residual stream.
* layer 1, head 0 is the retrieval (induction) head: the query of a key token matches, in the
  lowest-frequency RoPE pairs (position-insensitive), the key of the token whose previous token was that
  key — the needle's value token — and copies the value's identity to an output subspace read by the
  LM head.

Training from scratch was tried first: 600 AdamW steps (about 6 CPU minutes on the shared 2-core
machine) left recall at chance, as induction heads form late; compiling the circuit gives a model that
is correct at any context length the RoPE construction allows, in milliseconds, and the short noisy
fine-tune adds realistic clutter (every head attends somewhere, residual noise) while training restores
recall. Press rankings on this toy reflect its circuit: needle information sits in one KV head of one
layer, on the value token that follows the key.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

__all__ = ["RecallTask", "build_recall_model", "finetune", "load_or_build", "recall_accuracy"]

PAD, BOS, Q, SEP = 0, 1, 2, 3
_VERSION = 2  # bump when the construction changes (invalidates cached models)


@dataclass(frozen=True)
class RecallTask:
    """Synthetic associative recall in token space (vocabulary 256)."""

    context_tokens: int = 1024
    """Tokens in the context (BOS + haystack), without the question."""
    n_pairs: int = 16
    """``key value`` pairs per context (distinct keys)."""
    early_fraction: float = 0.5
    """Pairs sit in this leading fraction of the context."""
    n_keys: int = 32
    n_values: int = 32
    n_filler: int = 128

    @property
    def key0(self) -> int:
        return 4

    @property
    def value0(self) -> int:
        return self.key0 + self.n_keys

    @property
    def filler0(self) -> int:
        return self.value0 + self.n_values

    def sample(
        self,
        n: int,
        generator: torch.Generator,
        *,
        query_aware: bool = False,
        context_tokens: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(context [n, L(+2)], question [n, 2], answer [n])``; query-aware contexts end with the question."""
        L = context_tokens or self.context_tokens
        g = generator
        x = torch.randint(self.filler0, self.filler0 + self.n_filler, (n, L), generator=g)
        x[:, 0] = BOS
        slots = max(self.n_pairs, int((L - 2) * self.early_fraction) // 2)
        start = torch.rand(n, slots, generator=g).argsort(dim=1)[:, : self.n_pairs] * 2 + 1
        keys = torch.rand(n, self.n_keys, generator=g).argsort(dim=1)[:, : self.n_pairs] + self.key0
        vals = torch.randint(self.value0, self.value0 + self.n_values, (n, self.n_pairs), generator=g)
        x.scatter_(1, start, keys)
        x.scatter_(1, start + 1, vals)
        pick = torch.randint(0, self.n_pairs, (n, 1), generator=g)
        question = torch.cat([torch.full((n, 1), Q), keys.gather(1, pick)], dim=1)
        answer = vals.gather(1, pick).squeeze(1)
        if query_aware:
            x = torch.cat([x, question], dim=1)
        return x, question, answer

    def training_batch(
        self,
        n: int,
        generator: torch.Generator,
        context_tokens: int,
        n_questions: int = 8,
        query_aware: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ids, labels)``: a context, then ``n_questions`` ``Q key value`` triples; loss on the values.

        ``query_aware`` puts an unanswered ``Q key`` (the first question's) right after the context, the
        layout the benchmark's query-aware mode uses.
        """
        x, _, _ = self.sample(n, generator, context_tokens=context_tokens)
        # questions about pairs present in each context (read back from the context itself)
        is_key = (x >= self.key0) & (x < self.value0)
        blocks = []
        for i in range(n):
            pos = is_key[i].nonzero().squeeze(1)
            pick = pos[torch.randint(0, len(pos), (n_questions,), generator=generator)]
            triples = torch.stack([torch.full((n_questions,), Q), x[i, pick], x[i, pick + 1]], 1).flatten()
            head = torch.tensor([Q, int(x[i, pick[0]])]) if query_aware else triples[:0]
            blocks.append(torch.cat([head, triples]))
        ids = torch.cat([x, torch.stack(blocks)], dim=1)
        labels = torch.full_like(ids, -100)
        first = context_tokens + (2 if query_aware else 0)
        at = first + torch.arange(n_questions) * 3 + 1  # logits at the key predict the value
        labels[:, at] = ids[:, at + 1]
        return ids, labels


def _config(task: RecallTask, max_positions: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=256,
        hidden_size=160,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        max_position_embeddings=max_positions,
        rope_parameters={"rope_type": "default", "rope_theta": 1e9},
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        bos_token_id=BOS,
        pad_token_id=PAD,
        eos_token_id=None,
        attention_bias=False,
        mlp_bias=False,
    )


def build_recall_model(
    task: RecallTask | None = None, max_positions: int = 8192, seed: int = 0
) -> LlamaForCausalLM:
    """The compiled induction model (float32, eval mode). Deterministic for a given ``seed``."""
    task = task or RecallTask()
    if task.n_keys > 32 or task.n_values > 32:
        raise ValueError("the compiled model has slots for at most 32 keys and 32 values")
    cfg = _config(task, max_positions)
    model: Any = LlamaForCausalLM(cfg)
    hd, D = int(cfg.head_dim or 0), int(cfg.hidden_size)
    g = torch.Generator().manual_seed(seed)
    # residual layout: 0 const | keys 1..32 | values 33..64 | specials 65..68 | filler 69..84 |
    # previous-key 85..116 | output 117..148 | spare
    I_KEY, I_VAL, I_SPEC, I_FILL, PREV, OUT = 1, 33, 65, 69, 85, 117
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for mod in model.modules():
            if hasattr(mod, "variance_epsilon"):
                mod.weight.fill_(1.0)
        E = model.model.embed_tokens.weight
        E[:, 0] = 1.0
        for t in range(4):
            E[t, I_SPEC + t] = 1.0
        for i in range(task.n_keys):
            E[task.key0 + i, I_KEY + i] = 1.0
        for i in range(task.n_values):
            E[task.value0 + i, I_VAL + i] = 1.0
        fill = torch.randn(task.n_filler, 16, generator=g)
        E[task.filler0 : task.filler0 + task.n_filler, I_FILL : I_FILL + 16] = fill / fill.norm(
            dim=1, keepdim=True
        )
        h1 = 1.0 / math.sqrt(2.0 / D)  # RMSNorm gain at layer 0 (|x|^2 = 2 for every token)
        theta = 1e9 ** (-torch.arange(hd // 2, dtype=torch.float64) / (hd // 2))

        # layer 0, head 0 (KV head 0): previous-token head on the 7 highest RoPE frequencies
        a0 = model.model.layers[0].self_attn
        w = 0.8 ** torch.arange(7, dtype=torch.float64)
        w = w / w.sum()
        amp = torch.sqrt(math.sqrt(hd) * 150.0 * w)  # peak logit 150, gap >= 0.14 * 150
        for f in range(7):
            a0.q_proj.weight[f, 0] = amp[f] / h1
            a0.k_proj.weight[f, 0] = amp[f] * math.cos(theta[f]) / h1
            a0.k_proj.weight[f + hd // 2, 0] = amp[f] * math.sin(theta[f]) / h1
        for i in range(task.n_keys):
            a0.v_proj.weight[i, I_KEY + i] = 1.0 / h1
            a0.o_proj.weight[PREV + i, i] = 1.0

        # layer 1, head 0: query "key i" meets key "previous token was key i" in the 16 lowest pairs
        a1 = model.model.layers[1].self_attn
        h2 = 1.0 / math.sqrt(2.0 / D)
        h3 = 1.0 / math.sqrt(3.0 / D)
        gain = math.sqrt(25.0 * math.sqrt(hd) / (h2 * h3))  # matching logit ~25
        for i in range(task.n_keys):
            slot = hd // 4 + i // 2 + (hd // 2 if i % 2 else 0)  # pairs 16..31, x or y component
            a1.q_proj.weight[slot, I_KEY + i] = gain
            a1.k_proj.weight[slot, PREV + i] = gain
        for i in range(task.n_values):
            a1.v_proj.weight[i, I_VAL + i] = 1.0 / h3
            a1.o_proj.weight[OUT + i, i] = 1.0
            model.lm_head.weight[task.value0 + i, OUT + i] = 15.0 / h3
    return model.eval()


def recall_accuracy(
    model: LlamaForCausalLM,
    task: RecallTask,
    n: int = 256,
    seed: int = 1234,
    batch_size: int = 32,
    context_tokens: int | None = None,
    query_aware: bool = False,
) -> float:
    """Percent of questions answered right with the full context in one forward (no cache)."""
    g = torch.Generator().manual_seed(seed)
    right = 0
    with torch.no_grad():
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            ctx, question, answer = task.sample(m, g, context_tokens=context_tokens, query_aware=query_aware)
            logits = model(input_ids=torch.cat([ctx, question], dim=1)).logits[:, -1]
            right += int((logits.argmax(-1) == answer).sum())
    return 100.0 * right / n


def finetune(
    model: LlamaForCausalLM,
    task: RecallTask,
    steps: int = 60,
    noise: float = 0.02,
    lr: float = 1e-3,
    batch_size: int = 8,
    max_context: int = 512,
    seed: int = 0,
    log: list[dict[str, float]] | None = None,
) -> LlamaForCausalLM:
    """Perturb every weight with N(0, noise) then train on recall for ``steps`` AdamW steps (in place)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.add_(torch.randn(p.shape, generator=g) * noise)
    if steps <= 0:
        return model.eval()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    for step in range(steps):
        L = int(torch.randint(64, max_context + 1, (1,), generator=g))
        qa = bool(torch.rand(1, generator=g) < 0.5)
        ids, labels = task.training_batch(batch_size, g, context_tokens=L, query_aware=qa)
        logits = model(input_ids=ids).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if log is not None and (step % 25 == 0 or step == steps - 1):
            log.append({"step": step, "context": L, "loss": round(loss.item(), 4)})
    return model.eval()


def load_or_build(
    cache_dir: Path | str,
    task: RecallTask | None = None,
    steps: int = 60,
    noise: float = 0.02,
    seed: int = 0,
    max_positions: int = 8192,
) -> tuple[LlamaForCausalLM, dict[str, Any]]:
    """The fine-tuned toy model, built and trained once and cached under ``cache_dir``.

    Returns ``(model, info)``; ``info`` records how it was made (and ``path``, ``cached``, ``build_s``).
    """
    task = task or RecallTask()
    recipe = {
        "version": _VERSION,
        "task": asdict(task),
        "steps": steps,
        "noise": noise,
        "seed": seed,
        "max_positions": max_positions,
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"recall-llama-{key}"
    if (path / "recipe.json").exists():
        model = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        info = json.loads((path / "recipe.json").read_text())
        return model, {**info, "path": str(path), "cached": True}
    t0 = time.perf_counter()
    model = build_recall_model(task, max_positions=max_positions, seed=seed)
    acc_compiled = recall_accuracy(model, task, n=64, context_tokens=min(task.context_tokens, 512))
    log: list[dict[str, float]] = []
    finetune(
        model, task, steps=steps, noise=noise, seed=seed, log=log, max_context=min(task.context_tokens, 512)
    )
    check = min(task.context_tokens, 512)
    info = {
        **recipe,
        "train_log": log,
        "compiled_accuracy_512": acc_compiled,
        "finetuned_accuracy_512": recall_accuracy(model, task, n=64, context_tokens=check),
        "finetuned_accuracy_512_query_aware": recall_accuracy(
            model, task, n=64, context_tokens=check, query_aware=True
        ),
        "build_s": round(time.perf_counter() - t0, 1),
    }
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    (path / "recipe.json").write_text(json.dumps(info, indent=1))
    return model, {**info, "path": str(path), "cached": False}
