import hashlib
import json
import shutil

import numpy as np
import pytest

from cirlab.errors import CacheMismatchError
from cirlab.features.cache import FeatureCache
from cirlab.search import GalleryIndex, QueryError
from cirlab.search.index import IndexManifest, write_index


@pytest.fixture
def index_copy(tmp_path, flat_index):
    target = tmp_path / "index"
    shutil.copytree(flat_index, target)
    return target


def one_line_error(match, call):
    with pytest.raises(CacheMismatchError, match=match) as err:
        call()
    assert "\n" not in str(err.value)
    return str(err.value)


def test_missing_or_incomplete_index_folders_are_refused(tmp_path, index_copy):
    one_line_error("index folder not found", lambda: GalleryIndex.load(tmp_path / "nowhere"))
    (index_copy / "index.faiss").unlink()
    one_line_error("index.faiss: missing", lambda: GalleryIndex.load(index_copy))
    (index_copy / "manifest.json").unlink()
    one_line_error("no manifest.json; the index is incomplete", lambda: GalleryIndex.load(index_copy))


def test_corrupt_index_file_is_refused(index_copy):
    data = (index_copy / "index.faiss").read_bytes()
    (index_copy / "index.faiss").write_bytes(data[: len(data) // 3])
    message = one_line_error("damaged or truncated", lambda: GalleryIndex.load(index_copy))
    assert message.startswith(f"{index_copy / 'index.faiss'}: ") and message.endswith("with `cirlab index`")
    edit_manifest(index_copy, lambda m: m.pop("files"))  # an index written before manifests recorded hashes
    one_line_error("unreadable faiss index", lambda: GalleryIndex.load(index_copy))
    (index_copy / "index.faiss").write_bytes(b"not a faiss index")
    one_line_error("unreadable faiss index", lambda: GalleryIndex.load(index_copy))


def flip(path, start, count):
    data = bytearray(path.read_bytes())
    data[start:start + count] = bytes(255 - b for b in data[start:start + count])
    path.write_bytes(bytes(data))


def test_the_manifest_records_the_index_files_hash_and_a_flipped_byte_is_refused(index_copy):
    manifest = json.loads((index_copy / "manifest.json").read_text())
    data = (index_copy / "index.faiss").read_bytes()
    assert manifest["files"] == {"index.faiss": {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}}
    flip(index_copy / "index.faiss", len(data) // 2, 1)  # one byte of one stored vector: faiss would read it
    message = one_line_error("damaged", lambda: GalleryIndex.load(index_copy))
    assert message == (f"{index_copy / 'index.faiss'}: damaged (its sha256 differs from the one manifest.json "
                       f"records: the file changed after it was written); build the index again with `cirlab index`")


def test_an_unrecorded_damaged_index_cannot_return_impossible_cosine_scores(index_copy):
    edit_manifest(index_copy, lambda m: m.pop("files"))  # no hash to check: the score guard is what is left
    size = (index_copy / "index.faiss").stat().st_size
    flip(index_copy / "index.faiss", size - 64 * 4 * 4, 64 * 4)  # every float of the fourth-last vector
    index = GalleryIndex.load(index_copy)
    query = np.ones((1, 64), np.float32) / 8
    message = one_line_error("which no cosine similarity can have", lambda: index.search(query, 22))
    assert message.startswith(f"{index_copy / 'index.faiss'}: returned the score ")


def test_queries_must_be_unit_vectors(flat_index):
    index = GalleryIndex.load(flat_index)
    with pytest.raises(ValueError, match="L2-normalised"):
        index.search(np.ones((1, 64), np.float32), 3)
    scores, _ = index.search(np.ones((1, 64), np.float32) / 8, 22)
    assert np.all(np.abs(scores) <= 1.0 + 1e-5)


def test_a_manifest_that_is_not_an_object_is_refused(index_copy):
    (index_copy / "manifest.json").write_text(json.dumps([{"format_version": 1}]))
    one_line_error(r"manifest.json: not an index manifest \(a JSON array", lambda: GalleryIndex.load(index_copy))


def edit_manifest(folder, change):
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_manifest_problems_are_refused(index_copy):
    edit_manifest(index_copy, lambda m: m.update(format_version=99))
    one_line_error("index format 99", lambda: GalleryIndex.load(index_copy))
    edit_manifest(index_copy, lambda m: (m.update(format_version=1), m.pop("ids")))
    one_line_error("malformed index manifest", lambda: GalleryIndex.load(index_copy))


def test_manifest_that_disagrees_with_the_faiss_file_is_refused(index_copy):
    edit_manifest(index_copy, lambda m: (m["ids"].pop(), m["id_categories"].pop()))
    one_line_error("holds 22 vectors of dim 64, but the manifest lists 21 ids", lambda: GalleryIndex.load(index_copy))
    edit_manifest(index_copy, lambda m: m["id_categories"].pop())
    one_line_error("21 ids but 20 category lists", lambda: GalleryIndex.load(index_copy))


def test_check_features_names_each_differing_key(tmp_path, flat_index, random_cache):
    index = GalleryIndex.load(flat_index)
    cache = FeatureCache.open(random_cache)
    index.check_features(cache)  # the cache it was built from
    moved = tmp_path / "moved"
    shutil.copytree(random_cache, moved)
    index.check_features(FeatureCache.open(moved))  # the path is not part of the identity
    manifest = json.loads((moved / "manifest.json").read_text())
    (moved / "manifest.json").write_text(json.dumps({**manifest, "weights_hash": "f" * 64,
                                                     "data_fingerprint": "other data"}))
    message = one_line_error(f"{flat_index / 'manifest.json'}: made from other features than the feature cache "
                             f"{moved} ", lambda: index.check_features(FeatureCache.open(moved)))
    assert "weights_hash: recorded" in message and "data_fingerprint: recorded 'tiny-test-fingerprint', cache " \
        "'other data'" in message and "model" not in message
    assert message.endswith("; rebuild the index with `cirlab index`")


def test_an_index_built_before_the_identity_grew_still_matches(index_copy, random_cache):
    earlier = ("path", "model", "weights_hash", "data_fingerprint", "preprocess", "dim")  # what indexes recorded

    def keep_earlier_keys(manifest):
        manifest["features"] = {key: manifest["features"][key] for key in earlier}

    edit_manifest(index_copy, keep_earlier_keys)
    GalleryIndex.load(index_copy).check_features(FeatureCache.open(random_cache))


def test_unknown_category_and_bad_k_are_query_errors(flat_index):
    index = GalleryIndex.load(flat_index)
    query = np.ones((1, 64), np.float32) / 8
    with pytest.raises(QueryError, match="unknown category 'coat'; the gallery has dress, shirt, toptee"):
        index.search(query, 3, category="coat")
    with pytest.raises(QueryError, match="k: must be at least 1"):
        index.search(query, 0)


def test_category_positions(flat_index, gallery):
    index = GalleryIndex.load(flat_index)
    assert index.category_positions(None).tolist() == list(range(22))
    assert [index.ids[p] for p in index.category_positions("toptee")] == gallery["shirt"][-2:] + gallery["toptee"][:6]
    assert sorted(index.ids[p] for p in index.category_positions("toptee")) == sorted(gallery["toptee"])


def test_failed_write_leaves_no_manifest_and_no_temporary_file(tmp_path, flat_index):
    loaded = GalleryIndex.load(flat_index)
    out = tmp_path / "index"
    write_index(out, loaded.index, loaded.manifest)
    assert GalleryIndex.load(out).ids == loaded.ids

    class Unwritable:
        """Not a faiss index: faiss.write_index raises part-way."""

    with pytest.raises((TypeError, RuntimeError, AttributeError)):
        write_index(out, Unwritable(), loaded.manifest)
    assert sorted(p.name for p in out.iterdir()) == ["index.faiss"]  # old data, no manifest, no temp file
    one_line_error("no manifest.json", lambda: GalleryIndex.load(out))


def test_manifest_round_trips(flat_index):
    manifest = GalleryIndex.load(flat_index).manifest
    again = IndexManifest.from_dict(manifest.to_dict(), flat_index / "manifest.json")
    assert again == manifest
