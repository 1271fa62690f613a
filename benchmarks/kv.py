"""KV-cache compression benchmark: recall accuracy, KV bytes, prefill/decode time per press and ratio,
and episode-KV reuse time-to-first-token vs re-prefill. Runs offline.

Default model: the associative-recall toy Llama of :mod:`memsvc.gpu.toy` (compiled induction circuit +
a short noisy fine-tune, cached under ``cache_dir``). Contexts are BOS + filler with ``n_pairs``
``key value`` needles in their first half; the question ``Q key`` asks for one value. With ``--model``
any Hugging Face causal LM runs a text version of the same task ("The pass code of <name> is <n>.").

Protocol per sample: prefill the context once (full cache), capture each attention layer's input, then
for every press and ratio build its compressed cache offline (:func:`memsvc.gpu.cache.compress_cache`,
equivalent to compressing during prefill) and ask the question *after* compression; accuracy is the
share of first answer tokens (toy) or answers (text) that are right. In the default *query-aware*
layout the question is also the last thing in the context (SnapKV's setting); ``query_agnostic=True``
leaves it out (the episode-store setting: the question is unknown when the KV is compressed).
Timings use batch 1 and the real hook path (``with press(model)``): the fastest of ``timing_runs``\nruns after a warm-up (on a shared machine noise only ever adds time).

Output (stdout of ``memsvc bench kv``): ``{"model", "device", "context_tokens", "full": {...}, "presses":
{name: {ratio: {"accuracy", "kv_bytes", "prefill_ms", "decode_ms_per_token"}}}, "episode_reuse":
{"ttft_reprefill_ms", "ttft_reuse_ms"}}``, exactly: ``presses`` holds the configured ratios only
(0.5, 0.75, 0.875); entries at other ratios (quantization alone, ratio 0) go to the extras. The results
file adds the configuration, machine, commit and extra detail (query-agnostic numbers, the reuse speedup
and answers, compressed-episode reuse).
"""

from __future__ import annotations

import json
import platform
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import DynamicCache

from memsvc.gpu.cache import capture_attention_inputs, compress_cache, kv_bytes
from memsvc.gpu.episode_store import EpisodeKVStore
from memsvc.gpu.policies import PRESSES, KIVIPress
from memsvc.gpu.toy import RecallTask, load_or_build

__all__ = ["DEFAULT_CONFIG", "build_presses", "load_config", "run", "write_results"]

DEFAULT_CONFIG_PATH = Path(__file__).parent / "configs" / "kv.yaml"
DEFAULT_CONFIG: dict[str, Any] = {
    "samples": 256,
    "context_tokens": 1024,
    "n_pairs": 16,
    "ratios": [0.5, 0.75, 0.875],
    "query_aware": True,
    "timing_runs": 3,
    "decode_tokens": 32,
    "reuse_context_tokens": 4096,
    "batch_size": 16,
    "seed": 0,
    "toy": {"steps": 60, "noise": 0.02},
    "presses": {
        "streaming_llm": {"press": "streaming_llm"},
        "knorm": {"press": "knorm"},
        "snapkv": {"press": "snapkv"},
        "expected_attention": {"press": "expected_attention"},
        "snapkv+kivi4": {"press": "kivi", "options": {"nbits": 4}, "inner": "snapkv"},
        "kivi4": {"press": "kivi", "options": {"nbits": 4}, "ratios": [0.0]},
        "kivi8": {"press": "kivi", "options": {"nbits": 8}, "ratios": [0.0]},
    },
}


def load_config(path: Path | None = None, **overrides: Any) -> dict[str, Any]:
    """The benchmark configuration: defaults < YAML file < non-None overrides."""
    cfg = deepcopy(DEFAULT_CONFIG)
    path = path or (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None)
    if path is not None:
        cfg.update(yaml.safe_load(Path(path).read_text()) or {})
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def build_presses(cfg: dict[str, Any]) -> dict[str, dict[str, Callable[[], Any]]]:
    """``{name: {ratio_key: factory}}`` from the ``presses`` section."""
    out: dict[str, dict[str, Callable[[], Any]]] = {}
    for name, spec in cfg["presses"].items():
        ratios = spec.get("ratios", cfg["ratios"])
        out[name] = {}
        for r in ratios:

            def make(spec: dict[str, Any] = spec, r: float = float(r)) -> Any:
                opts = dict(spec.get("options", {}))
                if spec["press"] == "kivi":
                    inner = spec.get("inner")
                    return KIVIPress(
                        **opts, press=PRESSES.create(inner, compression_ratio=r) if inner else None
                    )
                return PRESSES.create(spec["press"], compression_ratio=r, **opts)

            out[name][str(float(r))] = make
    return out


def _best_ms(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Fastest of ``runs`` timed calls after one warm-up (the shared CPU's noise only adds time)."""
    fn()
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(min(times), 2), result


# -- toy model (token space) ---------------------------------------------------------------------------
def _toy_accuracy(
    model: Any,
    task: RecallTask,
    presses: dict[str, dict[str, Callable[[], Any]]],
    cfg: dict[str, Any],
    query_aware: bool,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Accuracy (%) and mean KV bytes per sequence for the full cache and every press/ratio."""
    g = torch.Generator().manual_seed(cfg["seed"] + 1)
    n, bs = cfg["samples"], cfg["batch_size"]
    right: dict[tuple[str, str], int] = {}
    nbytes: dict[tuple[str, str], int] = {}
    with torch.inference_mode():
        for start in range(0, n, bs):
            m = min(bs, n - start)
            ctx, question, answer = task.sample(m, g, query_aware=query_aware)
            cache = DynamicCache(config=model.config)
            with capture_attention_inputs(model) as cap:
                model(input_ids=ctx, past_key_values=cache)
            runs: dict[tuple[str, str], Any] = {("full", ""): cache}
            for name, by_ratio in presses.items():
                for rk, make in by_ratio.items():
                    runs[(name, rk)] = compress_cache(model, cache, make(), cap)
            for key, c in runs.items():
                nbytes[key] = nbytes.get(key, 0) + kv_bytes(c)
                pred = model(input_ids=question, past_key_values=c).logits[:, -1].argmax(-1)
                right[key] = right.get(key, 0) + int((pred == answer).sum())
    full = {"accuracy": round(100 * right[("full", "")] / n, 2), "kv_bytes": nbytes[("full", "")] // n}
    per: dict[str, dict[str, Any]] = {}
    for (name, rk), r in right.items():
        if name != "full":
            per.setdefault(name, {})[rk] = {
                "accuracy": round(100 * r / n, 2),
                "kv_bytes": nbytes[(name, rk)] // n,
            }
    return full, per


def _toy_timing(
    model: Any, task: RecallTask, press: Any, cfg: dict[str, Any], query_aware: bool
) -> dict[str, float]:
    """Batch-1 prefill time (press hooks active) and decode time per token after compression."""
    g = torch.Generator().manual_seed(cfg["seed"] + 2)
    ctx, question, _ = task.sample(1, g, query_aware=query_aware)
    return _timing(model, ctx, question, press, cfg)


def _timing(model: Any, ctx: torch.Tensor, question: torch.Tensor, press: Any, cfg: dict[str, Any]) -> dict[str, float]:
    """Prefill ``ctx`` under ``press`` (best of ``timing_runs``), then ms per decoded token after ``question``."""

    def prefill() -> DynamicCache:
        cache = DynamicCache(config=model.config)
        with torch.inference_mode():
            if press is None:
                model(input_ids=ctx, past_key_values=cache)
            else:
                with press(model):
                    model(input_ids=ctx, past_key_values=cache)
        return cache

    prefill_ms, _ = _best_ms(prefill, cfg["timing_runs"])
    steps = cfg["decode_tokens"]

    def decode() -> float:
        cache = prefill()
        with torch.inference_mode():
            tok = model(input_ids=question, past_key_values=cache).logits[:, -1:].argmax(-1)
            t0 = time.perf_counter()
            for _ in range(steps):
                tok = model(input_ids=tok, past_key_values=cache).logits[:, -1:].argmax(-1)
            return (time.perf_counter() - t0) * 1000 / steps

    decode()
    per_token = min(decode() for _ in range(cfg["timing_runs"]))
    return {"prefill_ms": prefill_ms, "decode_ms_per_token": round(per_token, 3)}


def _episode_reuse(
    model: Any, task: RecallTask, cfg: dict[str, Any], model_id: str, press: Any = None
) -> dict[str, Any]:
    """TTFT at ``reuse_context_tokens``: re-prefill context+question vs load stored KV + question."""
    g = torch.Generator().manual_seed(cfg["seed"] + 3)
    ctx, question, answer = task.sample(1, g, context_tokens=cfg["reuse_context_tokens"])
    return _reuse(model, ctx, question, int(answer), cfg, model_id, press)


def _reuse(
    model: Any, ctx: torch.Tensor, question: torch.Tensor, answer: int, cfg: dict[str, Any], model_id: str,
    press: Any = None,
) -> dict[str, Any]:
    """Time to first token: prefill context + question vs load the stored context KV + question forward."""
    L = int(ctx.shape[1])
    runs = cfg["timing_runs"]
    with torch.inference_mode():

        def reprefill() -> int:
            return int(model(input_ids=torch.cat([ctx, question], 1)).logits[0, -1].argmax())

        ttft_full, tok_full = _best_ms(reprefill, runs)
        with tempfile.TemporaryDirectory() as tmp:
            store = EpisodeKVStore(tmp, model_id)
            cache = DynamicCache(config=model.config)
            if press is None:
                model(input_ids=ctx, past_key_values=cache)
            else:
                with press(model):
                    model(input_ids=ctx, past_key_values=cache)
            chash = store.content_hash(ctx[0].tolist())
            spec = repr(press) if press is not None else "none"
            store.put("episode", cache, content_hash=chash, token_ids=ctx, press_spec=spec)

            def reuse() -> int:
                hit = store.get(
                    "episode", content_hash=chash, press_spec=spec, dtype=next(model.parameters()).dtype,
                    device=ctx.device,
                )
                if hit is None:
                    raise RuntimeError("episode cache written above was not found")
                return int(model(input_ids=question, past_key_values=hit.cache).logits[0, -1].argmax())

            ttft_reuse, tok_reuse = _best_ms(reuse, runs)
            disk = store.nbytes()
    return {
        "ttft_reprefill_ms": ttft_full,
        "ttft_reuse_ms": ttft_reuse,
        "context_tokens": L,
        "speedup": round(ttft_full / ttft_reuse, 2),
        "answer_reprefill_right": tok_full == int(answer),
        "answer_reuse_right": tok_reuse == int(answer),
        "stored_bytes": disk,
        "press": "none" if press is None else repr(press),
    }


def run_toy(cfg: dict[str, Any], cache_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(report, extras)`` for the toy model."""
    task = RecallTask(context_tokens=cfg["context_tokens"], n_pairs=cfg["n_pairs"])
    model, info = load_or_build(
        cache_dir,
        task,
        steps=cfg["toy"]["steps"],
        noise=cfg["toy"]["noise"],
        max_positions=max(8192, cfg["reuse_context_tokens"] + 64),
    )
    presses = build_presses(cfg)
    qa = bool(cfg["query_aware"])
    full, per = _toy_accuracy(model, task, presses, cfg, qa)
    full.update(_toy_timing(model, task, None, cfg, qa))
    for name, by_ratio in presses.items():
        for rk, make in by_ratio.items():
            per[name][rk].update(_toy_timing(model, task, make(), cfg, qa))
    reuse = _episode_reuse(model, task, cfg, "toy-recall-llama")
    per, off_grid = _split_ratios(per, cfg)
    report = _report(
        f"toy-recall-llama ({Path(info['path']).name})",
        str(next(model.parameters()).device),
        cfg["context_tokens"] + (2 if qa else 0),
        full,
        per,
        reuse,
    )
    extras: dict[str, Any] = {
        "model_info": {k: v for k, v in info.items() if k != "train_log"},
        "train_log": info.get("train_log"),
        "episode_reuse_detail": reuse,
        "other_ratios": off_grid,
    }
    if cfg.get("also_other_layout", True):
        _, other = _toy_accuracy(model, task, presses, cfg, not qa)
        extras["query_agnostic" if qa else "query_aware"] = {
            name: {rk: v["accuracy"] for rk, v in by.items()} for name, by in other.items()
        }
    best = cfg.get("reuse_compressed_press")
    if best:
        extras["episode_reuse_compressed"] = _episode_reuse(
            model, task, cfg, "toy-recall-llama", PRESSES.create(best["press"], **best.get("options", {}))
        )
    return report, extras


def _split_ratios(
    per: dict[str, dict[str, Any]], cfg: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``(on_grid, off_grid)``: the report keeps the configured ratios only (0.5/0.75/0.875 by default);
    entries at other ratios (quantization alone: ratio 0) go to the extras."""
    grid = {str(float(r)) for r in cfg["ratios"]}
    on = {n: {r: v for r, v in by.items() if r in grid} for n, by in per.items()}
    off = {n: {r: v for r, v in by.items() if r not in grid} for n, by in per.items()}
    return {n: by for n, by in on.items() if by}, {n: by for n, by in off.items() if by}


def _report(
    model: str, device: str, context_tokens: int, full: dict[str, Any], per: dict[str, Any], reuse: dict[str, Any]
) -> dict[str, Any]:
    """The issue's output shape, exactly."""
    return {
        "model": model,
        "device": device,
        "context_tokens": context_tokens,
        "full": full,
        "presses": per,
        "episode_reuse": {"ttft_reprefill_ms": reuse["ttft_reprefill_ms"], "ttft_reuse_ms": reuse["ttft_reuse_ms"]},
    }


# -- any Hugging Face model (text) ------------------------------------------------------------------------
_FILLER = [
    "The grass is green and the sky is blue.",
    "The sun rises in the east and sets in the west.",
    "Rivers flow down to the sea.",
    "A calm day follows a stormy night.",
    "Birds sing in the morning.",
]


def _text_sample(
    rng: random.Random, tok: Any, n_pairs: int, context_tokens: int, query_aware: bool
) -> tuple[str, str, str]:
    names = [
        "".join(rng.choice("bcdfghjklmnpqrstvwxz") + rng.choice("aeiou") for _ in range(3))
        for _ in range(n_pairs)
    ]
    codes = [str(rng.randint(1000, 9999)) for _ in range(n_pairs)]
    facts = [f"The pass code of {n} is {c}." for n, c in zip(names, codes, strict=True)]
    sents: list[str] = []
    while len(tok(" ".join(sents)).input_ids) < context_tokens:
        sents.extend(rng.sample(_FILLER, len(_FILLER)))
    half = len(sents) // 2
    for f in facts:
        sents.insert(rng.randint(0, half), f)
    i = rng.randrange(n_pairs)
    q = f"What is the pass code of {names[i]}?"
    context = "Remember these records.\n" + " ".join(sents) + "\n"
    if query_aware:
        context += f"Question: {q}\n"
    return context, f"Question: {q}\nAnswer: The pass code of {names[i]} is", codes[i]


def run_hf(
    model_path: str, cfg: dict[str, Any], device: str = "auto", dtype: str = "auto"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(report, extras)`` for a Hugging Face causal LM on the text recall task (batch 1)."""
    from memsvc.gpu.llm import LLM

    llm = LLM(model_path, device=device, dtype=dtype)
    model, tok = llm.model, llm.tokenizer
    presses = build_presses(cfg)
    rng = random.Random(cfg["seed"])
    qa = bool(cfg["query_aware"])
    right: dict[tuple[str, str], int] = {}
    nbytes: dict[tuple[str, str], int] = {}
    n = cfg["samples"]
    lengths = []
    for _ in range(n):
        context, suffix, code = _text_sample(rng, tok, cfg["n_pairs"], cfg["context_tokens"], qa)
        ids = tok(context, return_tensors="pt").input_ids.to(llm.device)
        suf = tok(suffix, add_special_tokens=False, return_tensors="pt").input_ids.to(llm.device)
        lengths.append(ids.shape[1])
        with torch.inference_mode():
            cache = DynamicCache(config=model.config)
            with capture_attention_inputs(model) as cap:
                model(input_ids=ids, past_key_values=cache)
            runs = {("full", ""): deepcopy(cache)}
            for name, by_ratio in presses.items():
                for rk, make in by_ratio.items():
                    runs[(name, rk)] = compress_cache(model, cache, make(), cap)
            for key, c in runs.items():
                nbytes[key] = nbytes.get(key, 0) + kv_bytes(c)
                logits = model(input_ids=suf, past_key_values=c).logits[:, -1:]
                out = []
                for _ in range(6):
                    t = logits.argmax(-1)
                    out.append(int(t))
                    logits = model(input_ids=t, past_key_values=c).logits[:, -1:]
                right[key] = right.get(key, 0) + int(code in tok.decode(out))
    full = {"accuracy": round(100 * right[("full", "")] / n, 2), "kv_bytes": nbytes[("full", "")] // n}
    per: dict[str, dict[str, Any]] = {}
    for (name, rk), r in right.items():
        if name != "full":
            per.setdefault(name, {})[rk] = {
                "accuracy": round(100 * r / n, 2),
                "kv_bytes": nbytes[(name, rk)] // n,
            }
    # timings on one sample (batch 1), then episode reuse at reuse_context_tokens
    context, suffix, _ = _text_sample(random.Random(cfg["seed"] + 2), tok, cfg["n_pairs"], cfg["context_tokens"], qa)
    ids = tok(context, return_tensors="pt").input_ids.to(llm.device)
    suf = tok(suffix, add_special_tokens=False, return_tensors="pt").input_ids.to(llm.device)
    full.update(_timing(model, ids, suf, None, cfg))
    for name, by_ratio in presses.items():
        for rk, make in by_ratio.items():
            per[name][rk].update(_timing(model, ids, suf, make(), cfg))
    context, suffix, code = _text_sample(
        random.Random(cfg["seed"] + 3), tok, cfg["n_pairs"], cfg["reuse_context_tokens"], False
    )
    ctx = tok(context, return_tensors="pt").input_ids.to(llm.device)
    suf = tok(suffix, add_special_tokens=False, return_tensors="pt").input_ids.to(llm.device)
    answer = tok(" " + code, add_special_tokens=False).input_ids[0]
    reuse = _reuse(model, ctx, suf, int(answer), cfg, model_path)
    per, off_grid = _split_ratios(per, cfg)
    report = _report(model_path, llm.device, int(statistics.mean(lengths)), full, per, reuse)
    return report, {"task": "text", "dtype": str(llm.dtype), "episode_reuse_detail": reuse, "other_ratios": off_grid}


# -- driver ----------------------------------------------------------------------------------------------
def run(
    model: str | None = None,
    cache_dir: Path | str = "~/.cache/memsvc/bench-kv",
    config: Path | None = None,
    **overrides: Any,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Run the benchmark; returns ``(report, extras, config)`` (``config["commit"]``: the code run)."""
    cfg = load_config(config, **overrides)
    cfg["commit"] = _git_commit()  # at start: the code that ran, even if the tree changes meanwhile
    cache = Path(cache_dir).expanduser()
    if model:
        report, extras = run_hf(model, cfg, overrides.get("device") or "auto", overrides.get("dtype") or "auto")
    else:
        report, extras = run_toy(cfg, cache)
    return report, extras, cfg


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_results(
    report: dict[str, Any],
    extras: dict[str, Any],
    cfg: dict[str, Any],
    out_dir: Path | str = "benchmarks/results",
    elapsed_s: float | None = None,
) -> Path:
    """Write ``kv-<date>-<commit>.json`` with the report, configuration, machine and commit."""
    import transformers

    commit = cfg.get("commit") or _git_commit()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"kv-{time.strftime('%Y%m%d-%H%M%S')}-{commit}.json"
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": __import__("os").cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    body = {
        "benchmark": "kv",
        "commit": commit,
        "machine": machine,
        "config": cfg,
        "elapsed_s": elapsed_s,
        "report": report,
        "extras": extras,
    }
    path.write_text(json.dumps(body, indent=1))
    return path
