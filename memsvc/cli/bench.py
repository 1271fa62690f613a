"""``memsvc bench locomo|longmemeval|latency``: the result as JSON on stdout, a copy with its metadata
(commit, machine, full settings, date) in ``benchmarks/results/``. Progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from memsvc.cli import bench_app
from memsvc.config import Settings

__all__ = ["bench_latency", "bench_locomo", "bench_longmemeval", "bench_settings", "parse_budgets"]

ResultsDir = Annotated[
    Path | None,
    typer.Option("--results-dir", help="Where the result file goes (default benchmarks/results/)."),
]


def parse_budgets(text: str) -> list[int]:
    """``"500,1000"`` -> ``[500, 1000]`` (positive integers, order kept, duplicates dropped)."""
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"budgets must be comma-separated integers, got {text!r}") from exc
    if not out or any(b < 1 for b in out):
        raise typer.BadParameter("budgets must be positive integers")
    return list(dict.fromkeys(out))


def _choice(*allowed: str) -> Any:
    def check(value: str) -> str:
        if value not in allowed:
            raise typer.BadParameter(f"expected one of {', '.join(allowed)}, got {value!r}")
        return value

    return check


Quantization = Annotated[
    str,
    typer.Option("--vector-quantization", callback=_choice("none", "int8", "binary"),
                 help="Vector quantization in the index (scalar int8 or binary, with oversampling + rescoring)."),
]
HnswThreshold = Annotated[
    int | None,
    typer.Option("--hnsw-threshold", min=1, help="qdrant-edge builds its HNSW index (and int8 copies) from this "
                 "many unindexed points; 1 builds them after every write (default: the settings' value)."),
]
Oversampling = Annotated[
    float | None, typer.Option(min=1.0, help="Quantized candidates rescored per hit (default: the store's).")
]
Rescore = Annotated[bool, typer.Option("--rescore/--no-rescore", help="Rescore quantized candidates.")]


def bench_settings(
    compressor: str = "none",
    compress_rate: float = 0.7,
    compress_return: str = "original",
    compress_lexical: str = "original",
    quantization: str = "none",
    hnsw_threshold: int | None = None,
    oversampling: float | None = None,
    rescore: bool = True,
    denoise: bool = True,
) -> Settings:
    """``Settings()`` (environment included) with the bench options applied: a compressor other than
    ``none`` compresses turns at ``compress_rate`` (and embeds the compressed text when ``denoise``)."""
    base = Settings()
    update: dict[str, Any] = {}
    if compressor != "none":
        update["compressor"] = {**base.compressor.model_dump(), "backend": compressor, "denoise": denoise,
                                "rate": compress_rate, "returns": compress_return, "lexical": compress_lexical}
    elif compress_return != "original" or compress_lexical != "original":
        raise typer.BadParameter("--compress-return/--compress-lexical need --compressor")
    vec = base.vector.model_dump()
    vec["quantization"] = quantization
    if hnsw_threshold is not None:
        vec["hnsw_threshold"] = hnsw_threshold
    opts = dict(vec.get("options") or {})
    if oversampling is not None:
        opts["oversampling"] = oversampling
    if not rescore:
        opts["rescore"] = False
    vec["options"] = opts
    update["vector"] = vec
    return Settings.model_validate({**base.model_dump(), **update})


def _log(msg: str) -> None:
    typer.echo(msg, err=True)


def _start() -> dict[str, Any]:
    from memsvc.benchmarks.results import run_start

    return run_start()


def _finish(
    bench: str,
    result: dict[str, Any],
    settings: Settings,
    config: dict[str, Any],
    results_dir: Path | None,
    started: dict[str, Any],
) -> None:
    from memsvc.benchmarks.results import write_result

    path = write_result(bench, result, settings, config, results_dir, started)
    typer.echo(json.dumps(result, indent=2))
    _log(f"wrote {path}")


@bench_app.command("locomo")
def bench_locomo(
    data: Annotated[Path, typer.Option("--data", exists=True, dir_okay=False, help="LoCoMo JSON file.")],
    budgets: Annotated[str, typer.Option(help="Comma-separated token budgets.")] = "500,1000,2000,4000",
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N conversations.")] = None,
    compressor: Annotated[str, typer.Option(help="Denoise turns with this prompt compressor (selfinfo, "
                                            "llmlingua2; none: off).")] = "none",
    compress_rate: Annotated[float, typer.Option(min=0.05, max=1.0, help="Share of tokens kept.")] = 0.7,
    compress_return: Annotated[str, typer.Option(callback=_choice("original", "compressed"),
                                                 help="Text search returns.")] = "original",
    compress_lexical: Annotated[str, typer.Option(callback=_choice("original", "compressed"),
                                                  help="Text the keyword index holds.")] = "original",
    vector_quantization: Quantization = "none",
    hnsw_threshold: HnswThreshold = None,
    oversampling: Oversampling = None,
    rescore: Rescore = True,
    denoise: Annotated[bool, typer.Option("--denoise/--no-denoise", help="With --compressor: embed the "
                                          "compressed text (else only store/return it).")] = True,
    embed_cache: Annotated[Path | None, typer.Option(help="Keep embedder outputs in this .npz file between "
                                                     "runs (same vectors, computed once).")] = None,
    results_dir: ResultsDir = None,
    segmenter: Annotated[
        str | None, typer.Option(help="Segmenter backend (settings.segmenter.backend), e.g. boundary, tiling, turn.")
    ] = None,
) -> None:
    """LoCoMo evidence recall (categories 1-4) at token budgets, tokens returned, add/search latency."""
    from memsvc.benchmarks.locomo import run_locomo

    started = _start()
    bs = parse_budgets(budgets)
    settings = bench_settings(compressor, compress_rate, compress_return, compress_lexical, vector_quantization,
                              hnsw_threshold, oversampling, rescore, denoise)
    if segmenter is not None:
        settings.segmenter.backend = segmenter
    embedder = None
    if embed_cache is not None:
        from memsvc.benchmarks.embed_cache import CachedEmbedder
        from memsvc.embedders import EMBEDDERS

        embedder = CachedEmbedder(EMBEDDERS.create(settings.embedder.backend, **settings.embedder.options), embed_cache)
    result = run_locomo(data, bs, settings, limit, progress=_log, embedder=embedder)
    config = {"data": str(data), "budgets": bs, "limit": limit, "compressor": compressor,
              "compress_rate": compress_rate, "compress_return": compress_return,
              "compress_lexical": compress_lexical, "denoise": denoise, "vector_quantization": vector_quantization,
              "hnsw_threshold": hnsw_threshold, "oversampling": oversampling, "rescore": rescore,
              "embed_cache": str(embed_cache) if embed_cache else None, "segmenter": segmenter}
    _finish("locomo", result, settings, config, results_dir, started)


@bench_app.command("longmemeval")
def bench_longmemeval(
    data: Annotated[
        Path, typer.Option("--data", exists=True, dir_okay=False, help="LongMemEval JSON(.gz) file.")
    ],
    budgets: Annotated[str, typer.Option(help="Comma-separated token budgets.")] = "1000,2000,4000",
    step: Annotated[int, typer.Option(min=1, help="Every S-th question (the dev figures use 4).")] = 1,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Only the first N questions (after --step).")
    ] = None,
    embed_cache: Annotated[Path | None, typer.Option(help="Keep embedder outputs in this .npz file between "
                                                     "runs (same vectors, computed once).")] = None,
    results_dir: ResultsDir = None,
) -> None:
    """LongMemEval has_answer turn recall and all-answer-sessions recall at token budgets."""
    from memsvc.benchmarks.longmemeval import run_longmemeval

    started = _start()
    bs = parse_budgets(budgets)
    settings = Settings()
    embedder = None
    if embed_cache is not None:
        from memsvc.benchmarks.embed_cache import CachedEmbedder
        from memsvc.embedders import EMBEDDERS

        embedder = CachedEmbedder(EMBEDDERS.create(settings.embedder.backend, **settings.embedder.options), embed_cache)
    result = run_longmemeval(data, bs, settings, step, limit, progress=_log, embedder=embedder)
    _finish(
        "longmemeval",
        result,
        settings,
        {"data": str(data), "budgets": bs, "step": step, "limit": limit,
         "embed_cache": str(embed_cache) if embed_cache else None},
        results_dir,
        started,
    )


@bench_app.command("latency")
def bench_latency(
    n: Annotated[int, typer.Option("--n", min=1, help="Memories (turns) stored before timing.")] = 100_000,
    users: Annotated[int, typer.Option(min=1, help="Users the turns are spread over.")] = 10,
    batch: Annotated[int, typer.Option(min=1, help="Events per bulk add_events call.")] = 2_000,
    samples: Annotated[
        int, typer.Option(min=1, help="Timed single adds, and timed searches per kind.")
    ] = 200,
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep the store here (default: a temporary folder).")
    ] = None,
    reuse: Annotated[
        bool, typer.Option(help="--data-dir already holds the store an earlier run loaded: time only.")
    ] = False,
    vector_quantization: Quantization = "none",
    hnsw_threshold: HnswThreshold = None,
    oversampling: Oversampling = None,
    rescore: Rescore = True,
    results_dir: ResultsDir = None,
) -> None:
    """Single-turn add and search latency (p50/p95, query embedding included) at N stored turns."""
    from tqdm import tqdm

    from memsvc.benchmarks.latency import run_latency

    started = _start()
    settings = bench_settings(quantization=vector_quantization, hnsw_threshold=hnsw_threshold,
                              oversampling=oversampling, rescore=rescore)
    with tqdm(total=n, unit="turn", desc="bulk load", file=sys.stderr, dynamic_ncols=True) as bar:
        result = run_latency(n, settings, users, batch, samples, data_dir=data_dir, progress=bar.update,
                             reuse=reuse)
    config = {"n": n, "users": users, "batch": batch, "samples": samples, "reuse": reuse,
              "vector_quantization": vector_quantization, "hnsw_threshold": hnsw_threshold,
              "oversampling": oversampling, "rescore": rescore}
    _finish("latency", result, settings, config, results_dir, started)
