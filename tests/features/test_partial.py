"""Partial chunk storage: keyed folder, keyed atomic chunks, stale and foreign chunks discarded."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from cirlab.features.partial import PartialResults, Preparation


def test_fresh_resumed_discarded(tmp_path: Path) -> None:
    key = {"weights": "abc", "ratio": 1.25, "order": [1, 2]}
    store = PartialResults(tmp_path, key)
    assert store.prepare().status == "fresh"
    store.write_texts(0, np.ones((2, 4, 3), np.float32))
    assert PartialResults(tmp_path, dict(key)).prepare() == Preparation("resumed")
    assert store.has_texts(0)
    other = PartialResults(tmp_path, {**key, "weights": "def"})
    assert other.prepare().status == "discarded"
    assert not other.has_texts(0) and other.folder.is_dir()


def test_chunk_round_trips(tmp_path: Path) -> None:
    store = PartialResults(tmp_path, {"k": 1})
    store.prepare()
    features = np.arange(12, dtype=np.float32).reshape(3, 4)
    store.write_images(7, features, ["h1", "", "h3"], ["", "cannot decode image (x)", ""])
    read_features, hashes, failures = store.read_images(7)
    assert np.array_equal(read_features, features)
    assert hashes == ["h1", "", "h3"] and failures == ["", "cannot decode image (x)", ""]
    texts = np.random.default_rng(0).normal(size=(2, 4, 5)).astype(np.float32)
    store.write_texts(3, texts)
    assert np.array_equal(store.read_texts(3), texts)
    assert store.has_images(7) and not store.has_images(6)
    assert not list(store.folder.glob("*.tmp"))
    store.remove()
    assert not store.folder.exists()


def test_unreadable_key_counts_as_stale(tmp_path: Path) -> None:
    store = PartialResults(tmp_path, {"k": 1})
    store.prepare()
    (store.folder / "partial.json").write_text("{broken")
    assert PartialResults(tmp_path, {"k": 1}).prepare().status == "discarded"


def test_a_chunk_of_another_extraction_is_never_reused(tmp_path: Path) -> None:
    """The folder's key file says B, but a chunk in it was written by A (as when two extractions shared the
    folder): B neither counts it as done nor reads it, and preparing the folder deletes it and counts it."""
    a, b = PartialResults(tmp_path / "a", {"model": "A"}), PartialResults(tmp_path / "b", {"model": "B"})
    a.prepare(), b.prepare()
    a.write_images(0, np.ones((2, 3), np.float32), ["h1", "h2"], ["", ""])
    a.write_texts(0, np.ones((2, 4, 3), np.float32))
    b.write_images(1, np.zeros((2, 3), np.float32), ["h3", "h4"], ["", ""])
    shutil.copy(a.image_chunk(0), b.image_chunk(0))
    shutil.copy(a.text_chunk(0), b.text_chunk(0))
    assert not b.has_images(0) and not b.has_texts(0) and b.has_images(1)
    with pytest.raises(ValueError, match="written by a different extraction"):
        b.read_images(0)
    with pytest.raises(ValueError, match="written by a different extraction"):
        b.read_texts(0)
    assert PartialResults(tmp_path / "b", {"model": "B"}).prepare() == Preparation("resumed", foreign_chunks=2)
    assert not b.image_chunk(0).exists() and not b.text_chunk(0).exists() and b.has_images(1)


def test_unreadable_chunks_and_leftover_temporaries_are_removed(tmp_path: Path) -> None:
    store = PartialResults(tmp_path, {"k": 1})
    store.prepare()
    store.write_texts(0, np.ones((1, 4, 2), np.float32))
    store.text_chunk(1).write_bytes(b"PK\x03\x04 truncated")
    (store.folder / ".images-000002.npz.k3j_x9a2.tmp").write_bytes(b"half a chunk")
    assert not store.has_texts(1)
    assert store.prepare() == Preparation("resumed", foreign_chunks=1, temporaries=1)
    assert sorted(p.name for p in store.folder.iterdir()) == ["partial.json", "texts-000000.npz"]
