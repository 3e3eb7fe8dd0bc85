"""Partial chunk storage: keyed folder, atomic chunk round trips, stale chunks discarded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cirlab.features.partial import PartialResults


def test_fresh_resumed_discarded(tmp_path: Path) -> None:
    key = {"weights": "abc", "ratio": 1.25, "order": [1, 2]}
    store = PartialResults(tmp_path, key)
    assert store.prepare() == "fresh"
    store.write_texts(0, np.ones((2, 4, 3), np.float32))
    assert PartialResults(tmp_path, dict(key)).prepare() == "resumed"
    assert store.has_texts(0)
    other = PartialResults(tmp_path, {**key, "weights": "def"})
    assert other.prepare() == "discarded"
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
    assert PartialResults(tmp_path, {"k": 1}).prepare() == "discarded"
