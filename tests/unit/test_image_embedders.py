"""Image embedders: the model-free pixels backend, and the CLIP backend on a tiny CLIP checkpoint built
here (random weights, a 40-token vocabulary) and loaded through sentence-transformers by path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memsvc.embedders import IMAGE_EMBEDDERS, ClipImageEmbedder, ImageEmbedder, PixelImageEmbedder
from memsvc.exceptions import ConfigError, InvalidInputError


def test_pixels_is_deterministic_and_tells_shots_apart(tmp_path: Path) -> None:
    emb = IMAGE_EMBEDDERS.create("pixels")
    assert isinstance(emb, ImageEmbedder) and not emb.shares_text_space
    red = np.zeros((30, 40, 3), dtype=np.uint8)
    red[..., 0] = 255
    noisy = np.clip(red.astype(int) + np.random.default_rng(0).integers(-10, 10, red.shape), 0, 255).astype(np.uint8)
    blue = np.zeros((30, 40, 3), dtype=np.uint8)
    blue[..., 2] = 255
    v = emb.embed_images([red, noisy, blue, red.astype(np.float32) / 255.0])
    assert v.shape == (4, emb.dim) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > 0.95 > v[0] @ v[2] and np.allclose(v[0], v[3], atol=1e-6)
    from PIL import Image

    Image.fromarray(blue).save(tmp_path / "blue.png")
    assert np.allclose(emb.embed_images([tmp_path / "blue.png"])[0], v[2], atol=1e-6)
    with pytest.raises(InvalidInputError):
        emb.embed_images([np.zeros((3, 3, 5))])
    with pytest.raises(InvalidInputError):
        emb.embed_images([tmp_path / "missing.png"])
    with pytest.raises(ConfigError):
        emb.embed_texts(["a red door"])
    assert IMAGE_EMBEDDERS.create("none") is None


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    d = tmp_path_factory.mktemp("tiny-clip")
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for w in ["a", "the", "door", "cat", "kitchen", "person", "opening", "red", "blue"]:
        vocab[w + "</w>"] = len(vocab)
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    cfg = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "max_position_embeddings": 32, "bos_token_id": 0, "eos_token_id": 1,
                     "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    CLIPModel(cfg).save_pretrained(d)
    CLIPProcessor(image_processor=images, tokenizer=tok).save_pretrained(d)
    return str(d)


def test_clip_backend_embeds_images_and_text_in_one_space(tiny_clip: str) -> None:
    emb = IMAGE_EMBEDDERS.create("clip", model=tiny_clip)
    assert isinstance(emb, ClipImageEmbedder) and emb.shares_text_space and emb.dim == 16
    img = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    v = emb.embed_images([img, img])
    t = emb.embed_texts(["a red door", "the cat"])
    assert v.shape == (2, 16) and t.shape == (2, 16) and np.allclose(v[0], v[1], atol=1e-5)
    assert np.allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-4)


def test_text_queries_reach_frames_through_clip(tmp_path: Path, tiny_clip: str) -> None:
    from datetime import UTC, datetime, timedelta

    from memsvc import Memory, Settings
    from memsvc.embedders import HashingEmbedder

    settings = Settings(data_dir=tmp_path / "m", vector={"backend": "memory"},
                        video={"image_embedder": {"backend": "clip", "options": {"model": tiny_clip}}})
    m = Memory(settings, embedder=HashingEmbedder())
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    rng = np.random.default_rng(1)
    imgs: list[Any] = [(rng.random((32, 32, 3)) * 255).astype(np.uint8) for _ in range(8)]
    ids = m.add_frames("cam", "u1", [t0 + timedelta(seconds=k) for k in range(8)], images=imgs, final=True)
    assert len(ids) == 8 and m.stats("u1")["frame_vectors"] >= 1
    hits = m.search("a red door", "u1", limit=5)  # no captions: only the frame index can answer
    assert hits and hits[0].stream_id == "cam" and "frame" in hits[0].components
    m.close()


def test_pixel_embedder_rejects_bad_config() -> None:
    with pytest.raises(ConfigError):
        PixelImageEmbedder(grid=0)
