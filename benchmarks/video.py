"""Video memory benchmark (``memsvc bench video``): scene boundaries, time queries, memory, ingest rate.

On synthetic camera streams (``benchmarks.video_synth``) with ground truth:

* ``boundary``: scene-boundary precision/recall/F1 (a cut within 2 frames of a true one counts) of the
  online scene segmenter per noise level, for the depth (SceneTilling) and threshold (HippoMM) methods;
* ``ingest``: one stream through ``Memory.add_frames`` in chunks (frame embeddings and captions given)
  into the embedded store: frames/s (wall and per CPU-second), stored vectors (text + frame index)
  against frames, bytes on disk per hour of stream, online state size;
* ``time_queries``: accuracy of time-anchored questions ("around 12:30", "at minute 12", "in the first
  five minutes", "the last time the door opened") answered from scenes with ``video_search``, next to
  the same questions answered from every captioned frame kept as its own memory (no compression).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from memsvc.benchmarks.video_synth import SyntheticStream, VideoStreamConfig, boundary_f1, generate

__all__ = ["frame_baseline", "run", "write_result"]


def _dir_bytes(path: Path) -> int:
    """Bytes actually allocated on disk (index files are sparse/preallocated)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def segmentation(noises: list[float], hours: float, seed: int) -> dict[str, Any]:
    from memsvc.segmenters.video import SceneFrame, SceneSegmenter, SceneState

    out: dict[str, Any] = {}
    for noise in noises:
        s = generate(VideoStreamConfig(duration_s=hours * 3600, noise=noise, seed=seed), 0)
        frames = [SceneFrame(v, None, t.timestamp()) for v, t in zip(s.embeddings, s.timestamps, strict=True)]
        sims = (s.embeddings[1:] * s.embeddings[:-1]).sum(axis=1)
        row: dict[str, Any] = {"adjacent_cos": round(float(np.median(sims)), 3), "true_boundaries": len(s.boundaries)}
        for method in ("depth", "threshold"):
            seg = SceneSegmenter(method=method)
            st = SceneState()
            t0 = time.perf_counter()
            cuts = seg.push(st, frames) + seg.flush(st)
            row[method] = {**boundary_f1(cuts, s.boundaries), "cuts": len(cuts),
                           "frames_per_s": round(len(frames) / (time.perf_counter() - t0))}
        out[str(noise)] = row
    return out


def _correct(stream: SyntheticStream, q: Any, start: datetime, end: datetime, point: bool = False) -> bool:
    """Whether a returned span answers ``q``: it overlaps an answer scene and, for anchored questions,
    spans the anchor. A single frame (``point``) answers when it lies in an answer scene."""
    for k in q.answers:
        sc = stream.scenes[k]
        if start <= sc.end and end >= sc.start and (
            point or q.anchor is None or q.kind == "first_minutes" or start <= q.anchor <= end
        ):
            return True
    return False


def frame_baseline(stream: SyntheticStream, embedder: Any, keep: float = 0.9) -> dict[str, float]:
    """Time-query accuracy with every captioned frame as its own memory (no scenes, no compression):
    anchored questions take the captioned frame nearest the anchor, "last time" questions the latest
    frame whose caption scores within ``keep`` of the best."""
    from memsvc.video.query import parse_time_query

    idx = [i for i, c in enumerate(stream.captions) if c]
    caps = embedder.embed([stream.captions[i] for i in idx])
    times = np.array([stream.timestamps[i].timestamp() for i in idx])
    res: dict[str, list[bool]] = {}
    for q in stream.questions:
        tq = parse_time_query(q.text, stream_start=stream.timestamps[0], stream_end=stream.timestamps[-1])
        if tq.anchor is not None:
            j = int(np.argmin(np.abs(times - tq.anchor.timestamp())))
        elif tq.time_range is not None:
            lo, hi = (t.timestamp() if t else None for t in tq.time_range)
            j = int(np.argmax((times >= (lo or -1e18)) & (times <= (hi or 1e18))))
        else:
            sc = caps @ embedder.embed([tq.text])[0]
            rel = np.flatnonzero(sc >= keep * sc.max())
            j = int(rel[np.argmax(times[rel])]) if tq.order == "latest" else int(np.argmax(sc))
        t = stream.timestamps[idx[j]]
        res.setdefault(q.kind, []).append(_correct(stream, q, t, t, point=True))
    return _summary(res)


def _summary(res: dict[str, list[bool]]) -> dict[str, float]:
    out = {k: round(100 * sum(v) / len(v), 1) for k, v in sorted(res.items())}
    allv = [x for v in res.values() for x in v]
    out["all"] = round(100 * sum(allv) / max(len(allv), 1), 1)
    out["n"] = len(allv)
    return out


def throughput(hours: float, noise: float, seed: int, chunk: int) -> dict[str, Any]:
    """Ingest rate with frame embeddings only (no captions to embed), into the embedded store."""
    from memsvc import Memory, Settings
    from memsvc.embedders import HashingEmbedder

    s = generate(VideoStreamConfig(duration_s=hours * 3600, noise=noise, seed=seed), 0)
    tmp = Path(tempfile.mkdtemp(prefix="memsvc-bench-video-"))
    try:
        m = Memory(Settings(data_dir=tmp), embedder=HashingEmbedder())
        m.add_frames("warmup", "bench", s.timestamps[:chunk], s.embeddings[:chunk])
        n = len(s.timestamps)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, n, chunk):
            m.add_frames("cam1", "u1", s.timestamps[i : i + chunk], s.embeddings[i : i + chunk])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        m.close()
        return {"frames": n, "chunk": chunk, "frames_per_s_wall": round(n / wall), "frames_per_s_cpu": round(n / cpu),
                "load_avg_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def long_stream(hours: float, noise: float, seed: int, chunk: int = 500) -> dict[str, Any]:
    """Bounded memory on a long stream (captions every 5 s, hashing caption embedder): stored vectors,
    SQL bytes and online-state bytes at checkpoints."""
    import sqlite3

    from sqlalchemy import select

    from memsvc import Memory, Settings
    from memsvc.embedders import HashingEmbedder
    from memsvc.stores.sql_schema import StreamStateRow

    s = generate(VideoStreamConfig(duration_s=hours * 3600, noise=noise, seed=seed), 0)
    tmp = Path(tempfile.mkdtemp(prefix="memsvc-bench-video-long-"))
    marks = sorted({h for h in (1, 6, 12, 24, 48) if h <= hours} | {int(hours)})
    out: dict[str, Any] = {}
    try:
        m = Memory(Settings(data_dir=tmp), embedder=HashingEmbedder())
        t0 = time.perf_counter()
        done = 0
        for mark in marks:
            end = min(len(s.timestamps), mark * 3600)
            for i in range(done, end, chunk):
                j = min(i + chunk, end)
                m.add_frames("cam1", "u1", s.timestamps[i:j], s.embeddings[i:j], s.captions[i:j])
            done = end
            st = m.stats("u1")
            with m.service.sql.session() as sess:
                state = sess.scalars(select(StreamStateRow.state)).first()
            con = sqlite3.connect(tmp / "memsvc.db")
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.close()
            sql_bytes = sum(p.stat().st_size for p in tmp.glob("memsvc.db*"))
            out[f"{mark}h"] = {"frames": done, "scenes": st.get("episode", 0),
                               "vectors": st["vectors"] + st["frame_vectors"],
                               "sql_bytes_per_hour": round(sql_bytes / mark),
                               "state_bytes": len(json.dumps(state)),
                               "elapsed_s": round(time.perf_counter() - t0, 1)}
        m.close()
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ingest(hours: float, noise: float, seed: int, chunk: int, embedder: Any, questions: int) -> dict[str, Any]:
    from memsvc import Memory, Settings
    from memsvc.video.query import video_search

    s = generate(VideoStreamConfig(duration_s=hours * 3600, noise=noise, seed=seed), questions)
    tmp = Path(tempfile.mkdtemp(prefix="memsvc-bench-video-"))
    try:
        m = Memory(Settings(data_dir=tmp), embedder=embedder)
        warm = generate(VideoStreamConfig(duration_s=120, seed=seed + 99), 0)
        m.add_frames("warmup", "bench", warm.timestamps, warm.embeddings, warm.captions, final=True)
        m.service.video.delete_stream(m.service.scope("bench"), "warmup")
        n = len(s.timestamps)
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, n, chunk):
            m.add_frames("cam1", "u1", s.timestamps[i : i + chunk], s.embeddings[i : i + chunk],
                         s.captions[i : i + chunk])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        m.end_stream("cam1", "u1")
        svc = m.service
        stats = m.stats("u1")
        from sqlalchemy import select

        from memsvc.stores.sql_schema import StreamStateRow, UnitRow

        with svc.sql.session() as sess:
            state = sess.scalars(select(StreamStateRow.state)).first()
            scenes = list(sess.scalars(select(UnitRow).where(UnitRow.stream_id == "cam1").order_by(UnitRow.start_ts)))
        starts = [sc.start_ts for sc in scenes[1:]]
        pos = {t: k for k, t in enumerate(s.timestamps)}
        cut_idx = [pos[t] for t in starts if t in pos]
        res: dict[str, list[bool]] = {}
        q_ms = []
        for q in s.questions:
            t1 = time.perf_counter()
            hits = video_search(svc, q.text, "u1", stream_id="cam1", limit=1)
            q_ms.append(1000 * (time.perf_counter() - t1))
            res.setdefault(q.kind, []).append(bool(hits) and _correct(s, q, hits[0].start_time, hits[0].end_time))
        m.close()
        import sqlite3

        con = sqlite3.connect(tmp / "memsvc.db")
        con.execute("VACUUM")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        sql_bytes = sum(p.stat().st_size for p in tmp.glob("memsvc.db*"))
        index_dirs = _dir_bytes(tmp) - sql_bytes
        vectors = stats["vectors"] + stats["frame_vectors"]
        raw_vectors = (stats["vectors"] * embedder.dim + stats["frame_vectors"] * s.embeddings.shape[1]) * 4
        return {
            "stream": {"hours": hours, "frames": n, "fps": 1.0, "noise": noise, "true_scenes": len(s.scenes),
                       "captioned_frames": sum(c is not None for c in s.captions)},
            "scenes": stats.get("episode", 0),
            "boundary": boundary_f1(cut_idx, s.boundaries),
            "vectors": {"text_index": stats["vectors"], "frame_index": stats["frame_vectors"], "total": vectors,
                        "frames_per_vector": round(n / max(vectors, 1), 1)},
            "bytes_per_hour": {
                "sql": round(sql_bytes / hours),
                "vectors_raw": round(raw_vectors / hours),
                "total": round((sql_bytes + raw_vectors) / hours),
                "index_dirs_allocated": round(index_dirs / hours),
                "frame_embeddings_alone_if_all_kept": round(n * s.embeddings.shape[1] * 4 / hours),
            },
            "state_bytes": len(json.dumps(state)) if state is not None else 0,
            "ingest_with_captions": {"chunk": chunk, "frames_per_s_wall": round(n / wall), "frames_per_s_cpu": round(n / cpu),
                       "load_avg_1m": round(os.getloadavg()[0], 2)},
            "time_queries": {"scenes": _summary(res), "frames_baseline": frame_baseline(s, embedder),
                             "search_ms_p50": round(float(np.percentile(q_ms, 50)), 1)},
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(hours: float = 1.0, noises: tuple[float, ...] = (0.3, 0.8, 1.2), moderate: float = 0.8, seed: int = 0,
        chunk: int = 64, embedder: str = "minilm", questions: int = 80, long_hours: float = 0) -> dict[str, Any]:
    """The whole benchmark; returns the result dict (what the CLI prints)."""
    from memsvc.embedders import HashingEmbedder, SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder() if embedder == "minilm" else HashingEmbedder()
    out = {
        "boundary_by_noise": segmentation(list(noises), hours, seed),
        "moderate_noise": moderate,
        "memory": ingest(hours, moderate, seed, chunk, emb, questions),
        "ingest_embeddings_only": {str(c): throughput(hours, moderate, seed, c) for c in sorted({chunk, 256})},
        "text_embedder": emb.name,
    }
    if long_hours:
        out["long_stream"] = long_stream(long_hours, moderate, seed)
    return out


def _commit() -> tuple[str, bool]:
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False
    return sha, dirty


def write_result(result: dict[str, Any], config: dict[str, Any], out_dir: Path | None = None) -> Path:
    """``benchmarks/results/video-<UTC time>-<commit>.json`` with commit, machine and config."""
    root = Path(__file__).resolve().parent
    out_dir = out_dir or (root / "results" if (root / "results").is_dir() else Path.cwd() / "benchmarks" / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    sha, dirty = _commit()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"video-{stamp}-{sha[:8]}.json"
    path.write_text(json.dumps({
        "bench": "video", "result": result, "commit": sha, "dirty": dirty, "config": config,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        "date": datetime.now(UTC).isoformat(),
    }, indent=2))
    return path
