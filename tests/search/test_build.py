import json

import numpy as np
import pytest

from cirlab.errors import CacheMismatchError, ConfigError
from cirlab.features.cache import FeatureCache
from cirlab.search import GalleryIndex, build_index, ivf_recall
from cirlab.search.build import _ivf_sizes

from .fixtures import CATEGORIES, cache_manifest, random_features, write_gallery_cache


def normalised_gallery(cache_dir, ids):
    cache = FeatureCache.open(cache_dir)
    raw = np.stack([cache.image_features[cache.row_of(i)] for i in ids]).astype(np.float64)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


def test_flat_index_holds_each_gallery_image_once_in_category_order(flat_index, gallery):
    index = GalleryIndex.load(flat_index)
    expected = list(dict.fromkeys(i for c in CATEGORIES for i in gallery[c]))
    assert index.ids == expected
    assert len(index) == 8 * 3 - 2  # two shirt images are also toptee images
    for position, image_id in enumerate(index.ids):
        cats = [c for c in CATEGORIES if image_id in gallery[c]]
        assert index.categories_of(position) == cats
    shared = gallery["shirt"][-2:]
    assert [index.categories_of(index.position_of(i)) for i in shared] == [["shirt", "toptee"]] * 2
    assert "X900" not in index.ids  # a train image is not in the val gallery


def test_flat_index_vectors_are_the_normalised_cache_features(flat_index, random_cache):
    index = GalleryIndex.load(flat_index)
    expected = normalised_gallery(random_cache, index.ids)
    stored = np.stack([index.index.reconstruct(i) for i in range(len(index))])
    np.testing.assert_allclose(stored, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-6)


def test_flat_search_equals_a_naive_ranking(flat_index, random_cache):
    index = GalleryIndex.load(flat_index)
    gallery = normalised_gallery(random_cache, index.ids)
    rng = np.random.default_rng(5)
    queries = rng.standard_normal((6, 64))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    scores, positions = index.search(queries.astype(np.float32), 5)
    for q, query in enumerate(queries):
        naive = [(-float(query @ g), p) for p, g in enumerate(gallery)]
        naive.sort()
        assert positions[q].tolist() == [p for _, p in naive[:5]]
        np.testing.assert_allclose(scores[q], [-s for s, _ in naive[:5]], atol=1e-5)


def test_category_search_ranks_only_that_category(flat_index, random_cache, gallery):
    index = GalleryIndex.load(flat_index)
    full = normalised_gallery(random_cache, index.ids)
    query = full[0].astype(np.float32)[None]
    for category in CATEGORIES:
        _, positions = index.search(query, 20, category=category)
        members = [p for p in range(len(index)) if category in index.categories_of(p)]
        naive = sorted(members, key=lambda p: -float(full[p] @ full[0]))
        found = [p for p in positions[0].tolist() if p >= 0]
        assert found == naive  # k > category size: every member, best first, then -1 padding
        assert positions[0].tolist()[len(members):] == [-1] * (20 - len(members))
        assert {index.ids[p] for p in found} == set(gallery[category])


def test_manifest_ties_the_index_to_its_cache_and_encoder(flat_index, random_cache):
    manifest = json.loads((flat_index / "manifest.json").read_text())
    cache = FeatureCache.open(random_cache)
    assert manifest["kind"] == "flat" and manifest["metric"] == "inner_product"
    assert manifest["dim"] == 64 and manifest["size"] == 22 and manifest["split"] == "val"
    assert manifest["features"]["path"] == str(random_cache.resolve())
    for key in ("model", "weights_hash", "data_fingerprint", "preprocess", "dim"):
        assert manifest["features"][key] == cache.manifest[key]
    assert manifest["encoder"] == {"model": "cirlab-vit-tiny", "pretrained": None, "checkpoint": None, "seed": 0}
    assert manifest["categories"] == list(CATEGORIES)
    assert len(manifest["ids"]) == len(manifest["id_categories"]) == 22
    assert not [p.name for p in flat_index.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_index_of_chosen_categories_only(tmp_path, random_cache, gallery):
    report = build_index(random_cache, tmp_path / "index", categories=["toptee"], show_progress=False)
    index = GalleryIndex.load(report.out)
    assert index.ids == gallery["toptee"]
    assert index.categories() == ["toptee"]
    assert report.shared_ids == 0 and report.size == 8


def test_unknown_category_or_split_is_a_one_line_error(tmp_path, random_cache):
    with pytest.raises(ConfigError, match="no 'val' images of coat") as err:
        build_index(random_cache, tmp_path / "a", categories=["coat"], show_progress=False)
    assert "\n" not in str(err.value)
    with pytest.raises(CacheMismatchError, match="no category of the feature cache has a 'test' split"):
        build_index(random_cache, tmp_path / "b", split="test", show_progress=False)
    with pytest.raises(ConfigError, match="unknown index kind 'hnsw'"):
        build_index(random_cache, tmp_path / "c", kind="hnsw", show_progress=False)
    assert not (tmp_path / "a").exists()


def test_zero_feature_is_refused_with_its_id(tmp_path, encoder, gallery):
    features = random_features(gallery)
    features[gallery["dress"][3]][:] = 0.0
    cache = write_gallery_cache(tmp_path / "cache", gallery, features, cache_manifest(encoder.weights_hash()))
    with pytest.raises(CacheMismatchError, match=f"image '{gallery['dress'][3]}' has a zero or non-finite feature"):
        build_index(cache, tmp_path / "index", show_progress=False)


def test_ivf_with_every_list_probed_is_exact(tmp_path, random_cache):
    report = build_index(random_cache, tmp_path / "ivf", kind="ivf", nlist=4, nprobe=4, show_progress=False)
    assert report.kind == "ivf" and report.nlist == 4 and report.nprobe == 4
    assert report.recall_at_10 == pytest.approx(1.0)
    assert report.recall_queries == 22
    ivf = GalleryIndex.load(report.out)
    assert ivf.manifest.ivf_recall_at_10 == pytest.approx(1.0)
    flat = GalleryIndex.load(build_index(random_cache, tmp_path / "flat", show_progress=False).out)
    queries = np.stack([flat.index.reconstruct(i) for i in range(5)])
    assert ivf.search(queries, 7)[1].tolist() == flat.search(queries, 7)[1].tolist()
    for category in CATEGORIES:  # the category selector works inside the inverted lists too
        assert ivf.search(queries, 9, category)[1].tolist() == flat.search(queries, 9, category)[1].tolist()


def test_ivf_recall_is_the_overlap_with_the_exact_top_10(tmp_path):
    import faiss

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((600, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(16), 16, 12, faiss.METRIC_INNER_PRODUCT)
    ivf.train(vectors)
    ivf.add(vectors)
    recall, n = ivf_recall(ivf, vectors, nprobe=2, num_queries=50, seed=3)
    sample = np.sort(np.random.default_rng(3).choice(600, size=50, replace=False))
    expected = []
    for own in sample:  # naive: full sort for the truth, the IVF's own answer for the found list
        scores = vectors @ vectors[own]
        truth = [p for p in np.argsort(-scores, kind="stable") if p != own][:10]
        _, found = ivf.search(vectors[own][None], 11, params=faiss.SearchParametersIVF(nprobe=2))
        found = [p for p in found[0] if p != own and p >= 0]
        expected.append(len(set(found) & set(truth)) / 10)
    assert n == 50
    assert recall == pytest.approx(np.mean(expected))
    assert 0.0 < recall < 1.0  # 2 of 12 lists: some true neighbours are missed


def test_ivf_sizes_defaults_and_bounds():
    assert _ivf_sizes(100_000, None, None) == (1264, 79)
    assert _ivf_sizes(22, None, None) == (1, 1)
    assert _ivf_sizes(1000, None, None) == (25, 8)
    with pytest.raises(ConfigError, match="--nlist must lie in"):
        _ivf_sizes(22, 23, None)
    with pytest.raises(ConfigError, match="--nprobe must lie in"):
        _ivf_sizes(22, 4, 5)


def test_rebuilding_replaces_the_index(tmp_path, random_cache, gallery):
    out = tmp_path / "index"
    build_index(random_cache, out, show_progress=False)
    build_index(random_cache, out, categories=["dress"], show_progress=False)
    assert GalleryIndex.load(out).ids == gallery["dress"]
    assert sorted(p.name for p in out.iterdir()) == ["index.faiss", "manifest.json"]
