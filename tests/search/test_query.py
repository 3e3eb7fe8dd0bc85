from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from cirlab.combiners import build_combiner, save_combiner
from cirlab.data import load_image
from cirlab.errors import CacheMismatchError, ConfigError
from cirlab.features.cache import FeatureCache
from cirlab.search import GalleryIndex, QueryError, SearchEngine, UnknownItemError, build_index

from .conftest import TRAIN_ID
from .fixtures import cache_manifest, random_features, write_gallery_cache


@pytest.fixture(scope="module")
def engine(flat_index, random_cache, encoder):
    index = GalleryIndex.load(flat_index)
    return SearchEngine(index, FeatureCache.open(random_cache), build_combiner("sum", 64), encoder=encoder,
                        device="cpu")


def naive_ranking(cache_dir, index, query, category=None, exclude=None):
    """Every gallery item scored by a Python loop, best first: [(id, score)]."""
    cache = FeatureCache.open(cache_dir)
    scored = []
    for position, image_id in enumerate(index.ids):
        if category is not None and category not in index.categories_of(position):
            continue
        if image_id == exclude:
            continue
        feature = np.asarray(cache.image_features[cache.row_of(image_id)], dtype=np.float64)
        scored.append((image_id, float(feature @ query) / float(np.linalg.norm(feature))))
    return sorted(scored, key=lambda item: -item[1])


def sum_query(cache_dir, encoder, image_id, text):
    cache = FeatureCache.open(cache_dir)
    image = np.asarray(cache.image_features[cache.row_of(image_id)], dtype=np.float64)
    text_features = encoder.encode_texts([text]).numpy()[0].astype(np.float64)
    query = image + text_features
    return query / np.linalg.norm(query)


def assert_hits_match(hits, expected):
    assert [h.id for h in hits] == [i for i, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)


def test_search_by_id_equals_a_naive_sum_ranking(engine, random_cache, encoder, gallery):
    reference, text = gallery["dress"][2], "is red and has long sleeves"
    query = sum_query(random_cache, encoder, reference, text)
    np.testing.assert_allclose(engine.query_embedding(reference, text), query, atol=1e-5)
    hits = engine.search(reference, text, k=7)
    assert_hits_match(hits, naive_ranking(random_cache, engine.index, query, exclude=reference)[:7])
    assert reference not in [h.id for h in hits]


def test_keeping_the_reference_ranks_it_like_any_other_image(engine, random_cache, encoder, gallery):
    reference, text = gallery["shirt"][0], "is darker"
    query = sum_query(random_cache, encoder, reference, text)
    everything = naive_ranking(random_cache, engine.index, query)
    hits = engine.search(reference, text, k=len(everything), exclude_reference=False)
    assert_hits_match(hits, everything)
    assert len(engine.search(reference, text, k=len(everything))) == len(everything) - 1


def test_category_search_and_category_of_shared_images(engine, random_cache, encoder, gallery):
    shared = gallery["shirt"][-1]
    query = sum_query(random_cache, encoder, gallery["dress"][0], "has a floral print")
    for category in ("shirt", "toptee"):
        hits = engine.search(gallery["dress"][0], "has a floral print", k=8, category=category)
        assert_hits_match(hits, naive_ranking(random_cache, engine.index, query, category=category))
        assert {h.category for h in hits} == {category}
        assert shared in [h.id for h in hits]
        assert next(h for h in hits if h.id == shared).categories == ("shirt", "toptee")
    unfiltered = engine.search(gallery["dress"][0], "has a floral print", k=30)
    assert next(h for h in unfiltered if h.id == shared).category == "shirt"  # its first category
    assert len(unfiltered) == 21  # k beyond the gallery: everything but the reference


def test_reference_outside_the_gallery_excludes_nothing(engine, random_cache, encoder):
    query = sum_query(random_cache, encoder, TRAIN_ID, "is longer")
    hits = engine.search(TRAIN_ID, "is longer", k=22)
    assert_hits_match(hits, naive_ranking(random_cache, engine.index, query))


def test_bad_queries_raise_query_errors(engine, gallery):
    with pytest.raises(UnknownItemError, match="image 'nope' is not in the gallery or the feature cache"):
        engine.search("nope", "is red")
    for text in ("", "   "):
        with pytest.raises(QueryError, match="text: the modification text is empty"):
            engine.search(gallery["dress"][0], text)
    for k in (0, -3, 2.5, True):
        with pytest.raises(QueryError, match="k: must be a positive integer"):
            engine.search(gallery["dress"][0], "is red", k=k)
    with pytest.raises(QueryError, match="unknown category 'coat'"):
        engine.search(gallery["dress"][0], "is red", category="coat")


def test_concurrent_searches_equal_sequential_ones(engine, gallery):
    queries = [(image_id, text, category)
               for image_id in gallery["dress"][:3] + gallery["shirt"][:2]
               for text in ("is red", "has long sleeves and a collar")
               for category in (None, "toptee")]
    sequential = [engine.search(r, t, k=5, category=c) for r, t, c in queries]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(lambda q: engine.search(q[0], q[1], k=5, category=q[2]), queries * 2))
    assert concurrent == sequential * 2


def test_uploaded_image_lands_on_its_cached_features(image_gallery, encoder, gallery):
    root, cache_dir, index_dir = image_gallery
    engine = SearchEngine(GalleryIndex.load(index_dir), FeatureCache.open(cache_dir), build_combiner("sum", 64),
                          encoder=encoder, device="cpu")
    cache = FeatureCache.open(cache_dir)
    for image_id in (gallery["dress"][0], gallery["toptee"][3]):  # one elongated (target-padded), one not
        image = load_image(root / "images" / f"{image_id}.png")
        cached = np.asarray(cache.image_features[cache.row_of(image_id)])
        np.testing.assert_allclose(engine.reference_features(image), cached, rtol=1e-4, atol=1e-4)
        by_file = engine.search(image, "is brighter", k=5)
        by_id = engine.search(image_id, "is brighter", k=5, exclude_reference=False)
        assert [h.id for h in by_file] == [h.id for h in by_id]
        np.testing.assert_allclose([h.score for h in by_file], [h.score for h in by_id], atol=1e-4)


def test_uploads_use_the_cache_preprocessing(image_gallery, encoder, gallery):
    from cirlab.data import build_preprocess

    root, cache_dir, index_dir = image_gallery
    engine = SearchEngine(GalleryIndex.load(index_dir), FeatureCache.open(cache_dir), build_combiner("sum", 64),
                          encoder=encoder, device="cpu")
    image = load_image(root / "images" / f"{gallery['dress'][0]}.png")  # 40x80: target-pad changes it
    padded = encoder.encode_images(build_preprocess("targetpad", encoder.preprocess, 1.25)(image)[None])[0]
    plain = encoder.encode_images(encoder.preprocess(image)[None])[0]
    got = torch.from_numpy(engine.reference_features(image))
    assert torch.allclose(got, padded, atol=1e-5)
    assert not torch.allclose(got, plain, atol=1e-3)


def test_load_uses_a_run_folders_best_combiner(tmp_path, flat_index, random_cache, encoder, gallery):
    torch.manual_seed(0)
    combiner = build_combiner("combiner", 64, projection_dim=32, hidden_dim=48)
    save_combiner(combiner, tmp_path / "run" / "best")
    engine = SearchEngine.load(flat_index, tmp_path / "run", device="cpu")
    engine._encoder = encoder  # the same weights the lazy load would give; saves a second model build
    reference, text = gallery["toptee"][1], "is shorter"
    cache = FeatureCache.open(random_cache)
    image = torch.from_numpy(np.array(cache.image_features[cache.row_of(reference)]))[None]
    with torch.no_grad():
        query = combiner.eval()(image, encoder.encode_texts([text]))[0].double().numpy()
    query /= np.linalg.norm(query)
    hits = engine.search(reference, text, k=6)
    assert_hits_match(hits, naive_ranking(random_cache, engine.index, query, exclude=reference)[:6])
    assert SearchEngine.load(flat_index, tmp_path / "run" / "best", device="cpu").combiner.config() == combiner.config()


def test_lazily_loaded_encoder_is_the_caches(flat_index, random_cache, encoder, gallery):
    engine = SearchEngine.load(flat_index, combiner_name="sum", device="cpu")
    assert engine._encoder is None
    assert engine.encoder.weights_hash() == encoder.weights_hash()
    np.testing.assert_allclose(engine.text_features("is red"), encoder.encode_texts(["is red"])[0].numpy(), atol=1e-6)


def test_mismatched_combiner_features_or_encoder_are_refused(tmp_path, flat_index, random_cache, encoder, gallery):
    index = GalleryIndex.load(flat_index)
    cache = FeatureCache.open(random_cache)
    with pytest.raises(CacheMismatchError, match="the combiner works on 32-d features, the index holds 64-d"):
        SearchEngine(index, cache, build_combiner("sum", 32), encoder=encoder)
    other = write_gallery_cache(tmp_path / "other", gallery, random_features(gallery),
                                cache_manifest(encoder.weights_hash(), data_fingerprint="other data"))
    with pytest.raises(CacheMismatchError, match="made from other features .*data_fingerprint"):
        SearchEngine(index, FeatureCache.open(other), build_combiner("sum", 64), encoder=encoder)
    stale = write_gallery_cache(tmp_path / "stale", gallery, random_features(gallery), cache_manifest("0" * 64))
    stale_index = build_index(stale, tmp_path / "stale_index", show_progress=False).out
    with pytest.raises(CacheMismatchError, match=r"the encoder 'cirlab-vit-tiny' is not the one that made the "
                                                 r"indexed features \(weights_hash: index '000000000000…', encoder"):
        SearchEngine(GalleryIndex.load(stale_index), FeatureCache.open(stale), build_combiner("sum", 64),
                     encoder=encoder)


def test_a_combiner_of_another_encoder_is_refused_as_eval_refuses_it(tmp_path, flat_index, random_cache):
    from cirlab.evaluation import evaluate

    cache = FeatureCache.open(random_cache)
    other_encoder = {**cache.identity(), "weights_hash": "9" * 64}  # same dimension, other weights
    save_combiner(build_combiner("combiner", 64, projection_dim=32, hidden_dim=48), tmp_path / "run" / "best",
                  extra={"features": other_encoder})
    cached_hash = cache.manifest["weights_hash"][:12]
    expected = (f"{tmp_path / 'run' / 'best' / 'combiner.json'}: made from other features than the feature cache "
                f"{cache.root} (weights_hash: recorded '999999999999…', cache '{cached_hash}…')")
    with pytest.raises(CacheMismatchError) as by_search:
        SearchEngine.load(flat_index, tmp_path / "run", device="cpu")
    assert str(by_search.value) == expected
    with pytest.raises(CacheMismatchError) as by_eval:
        evaluate(cache.root, checkpoint=tmp_path / "run", device="cpu", show_progress=False)
    assert str(by_eval.value) == expected


def test_load_takes_a_checkpoint_or_a_parameter_free_name(flat_index, tmp_path):
    save_combiner(build_combiner("sum", 64), tmp_path / "run" / "best")
    with pytest.raises(ConfigError, match="give either"):
        SearchEngine.load(flat_index, tmp_path / "run", combiner_name="sum", device="cpu")
    with pytest.raises(ConfigError, match="give either"):
        SearchEngine.load(flat_index, device="cpu")
    with pytest.raises(ConfigError, match="combiner 'combiner' has trainable parameters"):
        SearchEngine.load(flat_index, combiner_name="combiner", device="cpu")
    wide = tmp_path / "wide"
    save_combiner(build_combiner("sum", 32), wide)
    with pytest.raises(CacheMismatchError, match=r"wide/combiner.json: .*\(dim: recorded 32, cache 64\)"):
        SearchEngine.load(flat_index, wide, device="cpu")


def assert_same_hits(batched, alone):
    """Equal ids and categories, scores equal up to the float rounding of a batched product."""
    assert [(h.id, h.category, h.categories) for h in batched] == [(h.id, h.category, h.categories) for h in alone]
    np.testing.assert_allclose([h.score for h in batched], [h.score for h in alone], atol=1e-5)


def mixed_queries(gallery, root):
    """Ids in and out of the gallery, uploads, every category filter, several k, with and without the reference."""
    upload = load_image(root / "images" / f"{gallery['toptee'][3]}.png")
    other = load_image(root / "images" / f"{gallery['dress'][0]}.png")
    return [
        dict(reference=gallery["dress"][2], text="is red and has long sleeves", k=7),
        dict(reference=upload, text="has a pattern", k=3, category="shirt"),
        dict(reference=gallery["shirt"][0], text="is darker", k=30, exclude_reference=False),
        dict(reference=gallery["dress"][0], text="has a floral print", k=8, category="toptee"),
        dict(reference=other, text="is brighter", k=5),
        dict(reference=gallery["shirt"][-1], text="is shorter", k=2, category="shirt"),
        dict(reference=gallery["toptee"][1], text="is red and has long sleeves", k=1, category="dress"),
        dict(reference=gallery["dress"][2], text="is red and has long sleeves", k=7),  # a repeated query
    ]


def test_a_batch_answers_each_query_as_it_is_answered_alone(image_gallery, encoder, gallery):
    root, cache_dir, index_dir = image_gallery
    engine = SearchEngine(GalleryIndex.load(index_dir), FeatureCache.open(cache_dir), build_combiner("sum", 64),
                          encoder=encoder, device="cpu")
    queries = mixed_queries(gallery, root)
    alone = [engine.search(**query) for query in queries]
    batched = engine.search_batch([engine.prepare(**query) for query in queries])
    assert len(batched) == len(queries)
    for got, expected in zip(batched, alone):
        assert_same_hits(got, expected)
    assert [len(hits) for hits in batched] == [7, 3, 22, 8, 5, 2, 1, 7]  # k, or what the gallery holds


def test_a_batch_searches_faiss_once_per_category_filter(engine, gallery, monkeypatch):
    calls = []
    search = engine.index.search

    def counted(queries, k, category=None):
        calls.append((len(queries), k, category))
        return search(queries, k, category)

    monkeypatch.setattr(engine.index, "search", counted)
    prepared = [engine.prepare(gallery["dress"][0], "is red", k=4),  # in the gallery: depth 5
                engine.prepare(gallery["dress"][1], "is blue", k=2, category="shirt"),
                engine.prepare(TRAIN_ID, "is long", k=6),  # outside the gallery: depth 6
                engine.prepare(gallery["shirt"][2], "is short", k=3, category="shirt", exclude_reference=False)]
    hits = engine.search_batch(prepared)
    assert sorted(calls, key=str) == sorted([(2, 6, None), (2, 3, "shirt")], key=str)
    assert [len(h) for h in hits] == [4, 2, 6, 3]
    assert engine.search_batch([]) == []


def test_a_query_whose_embedding_is_not_finite_fails_alone(random_cache, flat_index, encoder, gallery):
    poisoned = gallery["shirt"][1]
    cache = FeatureCache.open(random_cache)
    poison = torch.from_numpy(np.array(cache.image_features[cache.row_of(poisoned)], dtype=np.float32))

    class PoisonedSum(torch.nn.Module):
        """The sum combiner, except that the query of one reference comes out NaN."""

        def forward(self, image, text):
            bad = (image == poison).all(dim=1, keepdim=True)
            return torch.nn.functional.normalize(image + text, dim=-1).masked_fill(bad, float("nan"))

    engine = SearchEngine(GalleryIndex.load(flat_index), cache, PoisonedSum(), encoder=encoder, device="cpu")
    healthy = SearchEngine(GalleryIndex.load(flat_index), cache, build_combiner("sum", 64), encoder=encoder,
                           device="cpu")
    references = [gallery["dress"][0], poisoned, gallery["toptee"][2]]
    outcomes = engine.search_batch([engine.prepare(r, "is red", k=4) for r in references])
    assert isinstance(outcomes[1], CacheMismatchError)
    assert str(outcomes[1]) == "the combiner returned a non-finite query embedding"
    for outcome, reference in zip((outcomes[0], outcomes[2]), (references[0], references[2])):
        assert_same_hits(outcome, healthy.search(reference, "is red", k=4))
    with pytest.raises(CacheMismatchError, match="non-finite query embedding"):
        engine.search(poisoned, "is red")
    with pytest.raises(CacheMismatchError, match="non-finite query embedding"):
        engine.query_embedding(poisoned, "is red")


def test_prepare_refuses_a_bad_query_as_search_does(engine, gallery):
    with pytest.raises(QueryError, match="^k: "):
        engine.prepare("nope", "", k=0, category="coat")  # k is checked first
    with pytest.raises(QueryError, match="^category: "):
        engine.prepare("nope", "", category="coat")
    with pytest.raises(QueryError, match="^text: "):
        engine.prepare("nope", " ")
    with pytest.raises(UnknownItemError, match="image 'nope' is not in the gallery"):
        engine.prepare("nope", "is red")
    query = engine.prepare(gallery["dress"][3], "  is red ", k=2, category="dress")
    assert (query.text, query.k, query.category, query.pixels) == ("is red", 2, "dress", None)
    assert query.exclude_position == engine.index.position_of(gallery["dress"][3]) and query.depth == 3
    assert engine.prepare(gallery["dress"][3], "x", exclude_reference=False).exclude_position is None
