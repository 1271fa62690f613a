"""``memsvc bench segmentation``: dialogue topic segmentation quality (Pk, WindowDiff, F1, Score)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from memsvc.cli import bench_app


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


@bench_app.command("segmentation")
def bench_segmentation(
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="jsonl: utterances + segmentation_label.")],
    segmenter: Annotated[str, typer.Option(help="Segmenter backend name or dotted class path.")] = "boundary",
    options: Annotated[str, typer.Option(help="Segmenter options as JSON.")] = "{}",
    predictions: Annotated[
        Path | None, typer.Option(help="Also write one {'segmentation_label': [...]} line per dialogue.")
    ] = None,
    roles: Annotated[bool, typer.Option(help="Use the file's 'roles' (when present) as speakers.")] = True,
    online: Annotated[bool, typer.Option(help="Feed turns one at a time, as the ingest pipeline does.")] = False,
    ingested: Annotated[bool | None, typer.Option(
        "--as-ingested/--bare",
        help="Embed 'speaker: text' with a speaker on every turn, as Memory.add does, or the bare utterances "
        "(default: what the segmenter's model was trained on).",
    )] = None,
    results_dir: Annotated[
        Path | None, typer.Option(help="Also write the metrics with run details (commit, timings) here.")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Reuse utterance embeddings kept here (timings then exclude them).")
    ] = None,
) -> None:
    """Segment every dialogue of DATA and print the metrics as JSON."""
    from memsvc.benchmarks.segmentation import run

    result, details = run(data, segmenter, json.loads(options), predictions=predictions, use_roles=roles,
                          online=online, cache_dir=cache_dir, ingested=ingested)
    typer.echo(json.dumps(result))
    print(f"{details['utterances']} utterances: {details['utterances_per_s']} utterances/s (embedding included), "
          f"{details['embed_only_utterances_per_s']} embedding only ({details['embedder']}, "
          f"{details['embedder_runtime']}{', cached' if details['embeddings_cached'] else ''}), "
          f"{details['segment_only_utterances_per_s']} segmenting only; per CPU-second (all threads): "
          f"{details['utterances_per_cpu_s']}, {details['embed_only_utterances_per_cpu_s']} and "
          f"{details['segment_only_utterances_per_cpu_s']}; load average {details['load_average']}", file=sys.stderr)
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = results_dir / f"segmentation-{segmenter}-{data.stem}-{stamp}.json"
        path.write_text(json.dumps({"result": result, **details, "commit": _commit()}, indent=1))
