import hashlib
import json
import os
import re
import shutil

import numpy as np
import pytest

from cirlab import hashing
from cirlab.errors import CacheMismatchError
from cirlab.features.cache import IMAGES_FILE, INDEX_FILE, MANIFEST_FILE, TEXTS_FILE, FeatureCache, write_cache
from cirlab.hashing import DamagedFileError


def _write(root, dim=8, n_images=6):
    rng = np.random.default_rng(0)
    triplets = [
        {"category": "dress", "split": "val", "file_index": 0, "reference_row": 0, "target_row": 1,
         "captions": ["is red", "darker"]},
        {"category": "dress", "split": "test", "file_index": 0, "reference_row": 2, "target_row": -1,
         "captions": ["", "longer"]},
    ]
    return write_cache(
        root, image_ids=[f"I{i}" for i in range(n_images)],
        image_features=rng.standard_normal((n_images, dim)).astype(np.float32),
        split_rows={"dress.val": [0, 1], "dress.test": [2, 3, 4, 5]}, triplets=triplets,
        text_features=rng.standard_normal((2, 4, dim)).astype(np.float32),
        manifest={"model": "m", "data_fingerprint": "abc", "preprocess": {"kind": "targetpad"}},
        image_hashes=["h0", "h1", "h2", "h2", "h4", "h5"])


def test_round_trip_is_memory_mapped(tmp_path):
    _write(tmp_path)
    cache = FeatureCache.open(tmp_path, expect={"model": "m", "data_fingerprint": "abc"})
    assert isinstance(cache.image_features, np.memmap) and cache.dim == 8
    assert cache.row_of("I3") == 3 and cache.image_hashes[3] == cache.image_hashes[2]
    assert cache.split_rows("dress", "test").tolist() == [2, 3, 4, 5]
    assert cache.triplets.select(["dress"], "val").tolist() == [0]
    assert cache.triplets.target_rows.tolist() == [1, -1]
    assert cache.eval_text_features(np.array([1])).shape == (1, 8)
    assert cache.manifest["num_triplets"] == 2 and cache.manifest["eval_form_index"] == 0


def test_stale_cache_is_refused_with_the_difference(tmp_path):
    _write(tmp_path)
    with pytest.raises(CacheMismatchError, match="data_fingerprint: expected 'xyz', cache has 'abc'"):
        FeatureCache.open(tmp_path, expect={"data_fingerprint": "xyz"})
    FeatureCache.open(tmp_path, expect={"data_fingerprint": "abc", "pretrained": None})  # None: not compared


def test_incomplete_cache_is_refused(tmp_path):
    _write(tmp_path)
    (tmp_path / MANIFEST_FILE).unlink()
    with pytest.raises(CacheMismatchError, match="incomplete.*run `cirlab extract` again to resume it"):
        FeatureCache.open(tmp_path)


def test_unfinished_extraction_is_incomplete_not_a_data_set(tmp_path):
    (tmp_path / ".partial").mkdir(parents=True)
    (tmp_path / "images").mkdir()  # even beside a folder a data set would have
    with pytest.raises(CacheMismatchError, match="incomplete.*again to resume it"):
        FeatureCache.open(tmp_path)


@pytest.mark.parametrize("marker", ["captions", "image_splits", "images"])
def test_a_data_set_folder_is_not_a_cache(tmp_path, marker):
    (tmp_path / marker).mkdir()
    with pytest.raises(CacheMismatchError) as info:
        FeatureCache.open(tmp_path)
    message = str(info.value)
    assert message == (f"{tmp_path}: not a feature cache (it looks like a data set); run "
                       f"`cirlab extract --data {tmp_path} --out CACHE` first")


def test_an_empty_folder_is_not_a_cache(tmp_path):
    with pytest.raises(CacheMismatchError, match=r"not a feature cache \(no manifest.json\)") as info:
        FeatureCache.open(tmp_path)
    assert "resume" not in str(info.value)


def test_identity_is_the_identity_keys_the_manifest_holds(tmp_path):
    cache = FeatureCache.open(_write(tmp_path))
    assert cache.identity() == {"model": "m", "preprocess": {"kind": "targetpad"}, "data_fingerprint": "abc",
                                "dim": 8, "num_images": 6, "num_triplets": 2,
                                "caption_forms": cache.manifest["caption_forms"]}


def test_inconsistent_arrays_are_refused(tmp_path):
    _write(tmp_path)
    np.save(tmp_path / "images.npy", np.zeros((3, 8), dtype=np.float32))
    with pytest.raises(CacheMismatchError, match="images.npy has shape"):
        FeatureCache.open(tmp_path)


def test_other_format_version_is_refused(tmp_path):
    _write(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    manifest["format_version"] = 99
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(CacheMismatchError, match="format 99"):
        FeatureCache.open(tmp_path)


def test_unknown_split_and_image(tmp_path):
    cache = FeatureCache.open(_write(tmp_path))
    with pytest.raises(CacheMismatchError, match="no images of shirt.val"):
        cache.split_rows("shirt", "val")
    with pytest.raises(CacheMismatchError, match="'nope' is not in the feature cache"):
        cache.row_of("nope")


# ------------------------------------------------------------------ content hashes
def flip_byte(path, offset=-1):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_the_manifest_records_the_size_and_hash_of_every_other_file(tmp_path):
    _write(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert sorted(manifest["files"]) == [IMAGES_FILE, INDEX_FILE, TEXTS_FILE]
    for name, record in manifest["files"].items():
        data = (tmp_path / name).read_bytes()
        assert record == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


@pytest.mark.parametrize("name", [IMAGES_FILE, TEXTS_FILE, INDEX_FILE])
def test_a_flipped_bit_in_any_file_is_refused_in_one_line(tmp_path, name):
    _write(tmp_path)
    flip_byte(tmp_path / name, -2)  # the last feature's value, or the index's closing brace: still well-formed
    with pytest.raises(DamagedFileError) as info:
        FeatureCache.open(tmp_path)
    assert str(info.value) == (f"{tmp_path / name}: damaged (its sha256 differs from the one manifest.json records: "
                               f"the file changed after it was written); extract the cache again "
                               f"(`cirlab extract ... --overwrite`)")


def test_a_cache_written_before_hashes_were_recorded_opens_unchecked(tmp_path):
    _write(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    del manifest["files"]
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    flip_byte(tmp_path / IMAGES_FILE)  # a feature value changed: nothing records what it was
    assert FeatureCache.open(tmp_path).image_features.shape == (6, 8)


def test_arrays_are_hashed_once_and_again_only_when_they_change(tmp_path, monkeypatch):
    _write(tmp_path)
    hashed = []
    real_hash = hashing._hash_file
    monkeypatch.setattr(hashing, "_hash_file", lambda path: hashed.append(path.name) or real_hash(path))
    FeatureCache.open(tmp_path)  # written just now: verified, but too recently changed to be stamped
    FeatureCache.open(tmp_path)
    assert hashed == [IMAGES_FILE, TEXTS_FILE] * 2 and not (tmp_path / hashing.STAMP_FILE).exists()
    later = hashing._now_ns() + 10 * hashing.SETTLE_NS
    monkeypatch.setattr(hashing, "_now_ns", lambda: later)  # the files have settled
    hashed.clear()
    FeatureCache.open(tmp_path)
    FeatureCache.open(tmp_path)
    assert hashed == [IMAGES_FILE, TEXTS_FILE]  # the second open trusted the stamps
    shutil.copy(tmp_path / IMAGES_FILE, tmp_path / "copy.npy")
    os.replace(tmp_path / "copy.npy", tmp_path / IMAGES_FILE)  # another file (inode) with the same bytes
    hashed.clear()
    FeatureCache.open(tmp_path)
    assert hashed == [IMAGES_FILE]
    with open(tmp_path / TEXTS_FILE, "ab") as handle:
        handle.write(b"\0")  # a change of size is refused before any hashing
    with pytest.raises(DamagedFileError, match=r"texts.npy: damaged or truncated \(\d+ bytes, manifest.json records"):
        FeatureCache.open(tmp_path)


def test_a_stamp_for_another_hash_or_a_broken_stamp_is_ignored(tmp_path, monkeypatch):
    _write(tmp_path)
    later = hashing._now_ns() + 10 * hashing.SETTLE_NS
    monkeypatch.setattr(hashing, "_now_ns", lambda: later)
    FeatureCache.open(tmp_path)
    stamps = json.loads((tmp_path / hashing.STAMP_FILE).read_text())
    stamps["files"][IMAGES_FILE]["sha256"] = "0" * 64
    (tmp_path / hashing.STAMP_FILE).write_text(json.dumps(stamps))
    hashed = []
    real_hash = hashing._hash_file
    monkeypatch.setattr(hashing, "_hash_file", lambda path: hashed.append(path.name) or real_hash(path))
    FeatureCache.open(tmp_path)
    assert hashed == [IMAGES_FILE]
    (tmp_path / hashing.STAMP_FILE).write_text("[not json")
    hashed.clear()
    FeatureCache.open(tmp_path)
    assert hashed == [IMAGES_FILE, TEXTS_FILE]


# ------------------------------------------------------------------ data sets and query records
def _write_cirr(root, *, records=True):
    """A CIRR cache: one caption form, query ids, subsets and soft targets (val), none of the last two in test1."""
    rng = np.random.default_rng(1)
    extra = [{"query_id": "12060", "subset_rows": [0, 1, 2], "soft_targets": [[1, 1.0], [2, -1.0]]},
             {"query_id": "27098", "subset_rows": [3, 4]}] if records else [{}, {}]
    triplets = [
        {"category": "all", "split": "val", "file_index": 0, "reference_row": 0, "target_row": 1,
         "captions": ["show three bottles"], **extra[0]},
        {"category": "all", "split": "test1", "file_index": 0, "reference_row": 3, "target_row": -1,
         "captions": [" "], **extra[1]},
    ]
    return write_cache(
        root, image_ids=[f"I{i}" for i in range(6)], image_features=rng.standard_normal((6, 8)).astype(np.float32),
        split_rows={"all.val": [0, 1, 2], "all.test1": [3, 4, 5]}, triplets=triplets,
        text_features=rng.standard_normal((2, 1, 8)).astype(np.float32),
        manifest={"dataset": "cirr", "model": "m", "data_fingerprint": "abc", "preprocess": {"kind": "targetpad"}})


def test_a_cirr_cache_has_one_caption_form_and_its_query_records(tmp_path):
    cache = FeatureCache.open(_write_cirr(tmp_path))
    assert (cache.dataset, cache.caption_forms, cache.eval_form_index) == ("cirr", ("caption",), 0)
    assert cache.text_features.shape == (2, 1, 8) and cache.manifest["caption_forms"] == ["caption"]
    t = cache.triplets
    assert t.captions == [("show three bottles",), (" ",)] and t.query_ids.tolist() == ["12060", "27098"]
    assert [rows.tolist() for rows in t.subset_rows] == [[0, 1, 2], [3, 4]]
    assert t.soft_targets == [{1: 1.0, 2: -1.0}, {}]
    assert cache.eval_caption(1) == " " and cache.identity()["dataset"] == "cirr"
    np.testing.assert_array_equal(cache.eval_text_features(np.array([0, 1])), cache.text_features[:, 0])


def test_a_cache_without_query_records_reads_empty_ones(tmp_path):
    cache = FeatureCache.open(_write(tmp_path / "fiq"))
    index = json.loads((tmp_path / "fiq" / INDEX_FILE).read_text())
    assert set(index["triplets"]) == {"category", "split", "file_index", "reference_row", "target_row", "captions"}
    t = cache.triplets
    assert t.query_ids.tolist() == ["", ""] and [len(r) for r in t.subset_rows] == [0, 0] and t.soft_targets == [{}, {}]
    assert (cache.dataset, cache.caption_forms) == ("fashioniq", ("c1_and_c2", "c2_and_c1", "c1", "c2"))
    assert cache.eval_caption(0) == "Is red and darker"
    cirr = FeatureCache.open(_write_cirr(tmp_path / "cirr", records=False))
    assert cirr.triplets.query_ids.tolist() == ["", ""]


def test_a_cache_written_before_it_named_its_data_set_is_fashioniqs(tmp_path):
    _write(tmp_path)
    path = tmp_path / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    for key in ("dataset", "eval_form_index"):
        del manifest[key]
    path.write_text(json.dumps(manifest))
    cache = FeatureCache.open(tmp_path)
    assert (cache.dataset, cache.eval_form_index, len(cache.caption_forms)) == ("fashioniq", 0, 4)


def test_evaluation_reads_the_manifests_evaluation_form(tmp_path):
    _write(tmp_path)
    path = tmp_path / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["eval_form_index"] = 2
    path.write_text(json.dumps(manifest))
    cache = FeatureCache.open(tmp_path)
    np.testing.assert_array_equal(cache.eval_text_features(np.array([0])), cache.text_features[[0], 2])
    assert cache.eval_caption(0) == "Is red"


def test_text_features_of_another_number_of_forms_are_refused(tmp_path):
    _write_cirr(tmp_path)
    np.save(tmp_path / TEXTS_FILE, np.zeros((2, 4, 8), np.float32))
    with pytest.raises(CacheMismatchError, match=r"texts.npy has shape \(2, 4, 8\), expected \(2, 1, 8\)"):
        FeatureCache.open(tmp_path)
    with pytest.raises(ValueError, match="cirr has 1 caption forms"):
        write_cache(tmp_path / "other", image_ids=["a"], image_features=np.zeros((1, 8), np.float32), split_rows={},
                    triplets=[], text_features=np.zeros((0, 4, 8), np.float32), manifest={"dataset": "cirr"})


def _edit_index(root, edit):
    path = root / INDEX_FILE
    index = json.loads(path.read_text())
    edit(index["triplets"])
    path.write_text(json.dumps(index))
    manifest = json.loads((root / MANIFEST_FILE).read_text())
    del manifest["files"]  # as a cache written before hashes were recorded: the structure checks decide
    (root / MANIFEST_FILE).write_text(json.dumps(manifest))


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda t: t["query_id"].__setitem__(0, 12060), "triplet column 'query_id' holds a value that is not a string"),
    (lambda t: t["query_id"].pop(), "triplet column 'query_id' is not a list of 2 values, one per triplet"),
    (lambda t: t["subset_rows"].__setitem__(1, [3, 9]), "triplet column 'subset_rows' names image row 9, but the "
                                                         "cache holds 6 images"),
    (lambda t: t["subset_rows"].__setitem__(1, 3), "'subset_rows' holds a value that is not a list of image rows"),
    (lambda t: t["subset_rows"].__setitem__(1, ["I3"]), "triplet column 'subset_rows' is not a list of whole numbers"),
    (lambda t: t["soft_targets"].__setitem__(0, [[1, 1.0, 0]]), "not a list of [row, score] pairs"),
    (lambda t: t["soft_targets"].__setitem__(0, [[1, "1.0"]]), "holds a score that is not a finite number"),
    (lambda t: t["soft_targets"].__setitem__(0, [[-1, 1.0]]), "triplet column 'soft_targets' names image row -1"),
    (lambda t: t.update(soft_targets={"0": []}), "triplet column 'soft_targets' is not a list of 2 values"),
    (lambda t: t["captions"].__setitem__(0, []), "triplet column 'captions' holds a value that is not a list of "
                                                 "strings"),
])
def test_a_damaged_query_record_is_one_line(tmp_path, edit, problem):
    _write_cirr(tmp_path)
    _edit_index(tmp_path, edit)
    with pytest.raises(CacheMismatchError) as info:
        FeatureCache.open(tmp_path)
    message = str(info.value)
    assert problem in message and "\n" not in message and message.startswith(f"{tmp_path / INDEX_FILE}: malformed")


@pytest.mark.parametrize(("change", "problem"), [
    ({"dataset": 3}, "dataset is 3, expected a data set name"),
    ({"caption_forms": []}, "caption_forms is [], expected a list of names"),
    ({"eval_form_index": 1}, "eval_form_index is 1, expected a position in caption_forms"),
    ({"eval_form_index": True}, "eval_form_index is True"),
])
def test_a_malformed_data_set_record_is_one_line(tmp_path, change, problem):
    _write_cirr(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    manifest.update(change)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(CacheMismatchError, match=re.escape(f"manifest.json: malformed manifest ({problem}")):
        FeatureCache.open(tmp_path)
