"""``memsvc demo``: a built-in conversation and a synthetic video stream, stored and searched.

The sample (``memsvc/data/sample_conversation.json``) holds three chat sessions, a video stream
description (scenes of captioned frames) and the demo queries. Frame embeddings are synthetic: one
random direction per scene plus noise, as a vision encoder would give for frames of one scene.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer

from memsvc.cli import app
from memsvc.config import Settings

__all__ = ["demo", "load_sample"]

FRAME_DIM = 512


def load_sample() -> dict[str, Any]:
    """The packaged sample conversation, video description and queries."""
    text = resources.files("memsvc").joinpath("data/sample_conversation.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def _frames(video: dict[str, Any], seed: int = 7) -> tuple[list[datetime], Any, list[str | None]]:
    """Timestamps, clustered random embeddings (one cluster per scene) and captions of the stream.

    A scene's captions are spread evenly over its frames; the frames between carry only an embedding
    (a captioner that runs on some frames).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    start = datetime.fromisoformat(video["start"])
    step = timedelta(seconds=float(video["frame_interval_s"]))
    rows, captions = [], []
    for scene in video["scenes"]:
        center = rng.normal(size=FRAME_DIM)
        center /= np.linalg.norm(center)
        frames, caps = int(scene["frames"]), scene["captions"]
        every = max(1, frames // len(caps))
        for k in range(frames):
            v = center + rng.normal(scale=0.25 / np.sqrt(FRAME_DIM), size=FRAME_DIM)
            rows.append(v / np.linalg.norm(v))
            captioned = k % every == 0 and k // every < len(caps)
            captions.append(caps[k // every] if captioned else None)
    stamps = [start + i * step for i in range(len(rows))]
    return stamps, np.asarray(rows, dtype=np.float32), captions


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _print_hits(hits: list[Any], took_ms: float) -> None:
    typer.echo(f"   {len(hits)} hits in {took_ms:.1f} ms")
    typer.echo(f"   {'#':>2} {'score':>6}  {'level':<8} {'time (UTC)':<19}  {'source':<26} text")
    for i, h in enumerate(hits, 1):
        n = len(h.source_ids)
        if h.stream_id:
            src = f"video {h.stream_id}" + (f" ({n} frames)" if n > 1 else "")
        else:
            src = f"chat {h.session_id}" + (f" ({n} turns)" if n > 1 else "")
        typer.echo(
            f"   {i:>2} {h.score:6.3f}  {h.level!s:<8} {h.start_time:%Y-%m-%d %H:%M:%S}  "
            f"{_one_line(src, 26):<26} {_one_line(h.text, 64)}"
        )


@app.command()
def demo(
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep the store in this folder (default: a temporary one).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Hits shown per query.")] = 3,
    budget: Annotated[int, typer.Option(min=20, help="Token budget of the demo context.")] = 300,
) -> None:
    """Store a sample conversation and video stream, then search them (temporary embedded store)."""
    with tempfile.TemporaryDirectory(prefix="memsvc-demo-") as tmp:
        _demo(Settings(data_dir=data_dir or Path(tmp)), limit, budget, keep=data_dir is not None)


def _demo(settings: Settings, limit: int, budget: int, keep: bool) -> None:
    from memsvc import Memory
    from memsvc.tokens import count_tokens

    sample = load_sample()
    user = sample["user_id"]
    typer.secho(f"memsvc demo: embedded store in {settings.data_dir}", bold=True)
    t0 = time.perf_counter()
    with Memory(settings) as m:
        m.service.embedder.embed(["warm up"])
        typer.echo(
            f"opened store and loaded embedder {m.service.embedder.name!r} in "
            f"{time.perf_counter() - t0:.1f} s\n"
        )

        typer.secho("1. chat: three sessions", bold=True)
        for s in sample["sessions"]:
            start = datetime.fromisoformat(s["start"])
            msgs = [
                {
                    "role": t["role"],
                    "name": t["name"],
                    "content": t["text"],
                    "timestamp": start + timedelta(minutes=2 * k),
                }
                for k, t in enumerate(s["turns"])
            ]
            t1 = time.perf_counter()
            ids = m.add(messages=msgs, user_id=user, session_id=s["session_id"])
            typer.echo(
                f"   session {s['session_id']}: {len(ids)} turns stored in "
                f"{1000 * (time.perf_counter() - t1):.0f} ms"
            )

        video = sample["video"]
        stamps, emb, caps = _frames(video)
        t1 = time.perf_counter()
        m.add_frames(
            stream_id=video["stream_id"], user_id=user, timestamps=stamps, embeddings=emb, captions=caps
        )
        typer.secho("\n2. video: a synthetic camera stream", bold=True)
        typer.echo(
            f"   stream {video['stream_id']}: {len(stamps)} frames ({FRAME_DIM}-d embeddings in "
            f"{len(video['scenes'])} clusters, {sum(c is not None for c in caps)} captions) stored in "
            f"{1000 * (time.perf_counter() - t1):.0f} ms"
        )
        stats = m.stats(user)
        typer.echo("   stored: " + ", ".join(f"{k} {v}" for k, v in stats.items()))

        typer.secho("\n3. search", bold=True)
        for q in sample["queries"]:
            typer.echo(f"\n » {q['text']}" + (f"   [stream {q['stream_id']}]" if q.get("stream_id") else ""))
            t1 = time.perf_counter()
            hits = m.search(q["text"], user_id=user, limit=limit, stream_id=q.get("stream_id"))
            _print_hits(hits, 1000 * (time.perf_counter() - t1))

        question = sample["context_query"]
        typer.secho(f"\n4. context for an LLM prompt (budget {budget} tokens)", bold=True)
        typer.echo(f" » {question}")
        t1 = time.perf_counter()
        ctx = m.context(question, user_id=user, budget_tokens=budget)
        took = 1000 * (time.perf_counter() - t1)
        typer.echo(f"   {count_tokens(ctx)} cl100k tokens in {took:.1f} ms:")
        for line in ctx.splitlines():
            typer.echo(f"   | {line}")
    typer.secho(
        f"\ndone: the store is kept in {settings.data_dir}"
        if keep
        else "\ndone: the temporary store is removed",
        bold=True,
    )
