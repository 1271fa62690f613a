"""Video memory: frame streams -> online scenes -> compact, time-anchored memories.

    VideoIngestor (ingest)   write path, stream state, deletes
    FrameIndex (frames)      frame-space vector stores, one per embedding size
    SceneAccumulator (compress)  MovieChat-style merging + caption merging of one scene
    parse_time_query, video_search (query)  time-anchored questions over scenes
"""

from __future__ import annotations

from memsvc.video.compress import SceneAccumulator, merge_adjacent
from memsvc.video.frames import FrameIndex
from memsvc.video.ingest import VideoIngestor

__all__ = ["FrameIndex", "SceneAccumulator", "VideoIngestor", "merge_adjacent"]
