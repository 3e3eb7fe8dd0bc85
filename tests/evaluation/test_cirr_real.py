"""The CIRR protocol and submission on the real val/test1 annotations (random features stand in for encodings)."""

from __future__ import annotations

import numpy as np
import pytest

from cirlab.data.dataset import open_dataset
from cirlab.evaluation import build_protocol
from cirlab.evaluation.submission import check_submission, dataset_pair_specs
from cirlab.features.cache import FeatureCache, write_cache

from ..data.cirr_builders import real_cirr, real_cirr_files  # noqa: F401  (fixture)
from .caches import sum_combine


@pytest.fixture(scope="module")
def real(tmp_path_factory, real_cirr_files):  # noqa: F811
    """The real annotations (placeholder images) and a cache of random features made from them."""
    root = real_cirr(real_cirr_files, tmp_path_factory.mktemp("cirr"))
    dataset = open_dataset(root)
    image_ids, split_rows, records = [], {}, []
    for split in ("val", "test1"):
        names = dataset.image_ids("all", split)
        split_rows[f"all.{split}"] = list(range(len(image_ids), len(image_ids) + len(names)))
        image_ids += names
    row = {name: i for i, name in enumerate(image_ids)}
    for split in ("val", "test1"):
        for t in dataset.triplets("all", split):
            records.append({"category": "all", "split": split, "file_index": t.index, "reference_row": row[t.reference],
                            "target_row": row[t.target] if t.target else -1, "captions": list(t.captions),
                            "query_id": t.query_id, "subset_rows": [row[m] for m in t.subset],
                            "soft_targets": [[row[name], score] for name, score in t.soft_targets]})
    rng = np.random.default_rng(0)
    write_cache(root / "cache", image_ids=image_ids, split_rows=split_rows, triplets=records,
                image_features=rng.standard_normal((len(image_ids), 16)).astype(np.float32),
                text_features=rng.standard_normal((len(records), 1, 16)).astype(np.float32),
                manifest={"model": "random", "preprocess": {}, "data_fingerprint": "real-cirr", "dataset": "cirr"})
    return dataset, FeatureCache.open(root / "cache")


def test_the_val_protocol_ranks_every_query_over_the_whole_val_split(real):
    _, cache = real
    result = build_protocol(cache, "val").evaluate(sum_combine, show_progress=False)
    r = result.per_category["all"]
    assert (r.num_queries, r.gallery_size) == (4181, 2297)
    assert set(r.subset_sizes.tolist()) == {5}  # six members, the reference among them
    assert max(r.subset_ranks) < 5  # the target is always in its subset
    assert result.headline == pytest.approx((r.recall[5] + r.subset_recall[1]) / 2)


def test_submission_files_for_every_test_pair_pass_the_check_against_the_annotation(real, tmp_path):
    dataset, cache = real
    result = build_protocol(cache, "test1").evaluate(sum_combine, show_progress=False)
    assert result.num_pairs == 4148
    pairs, images = dataset_pair_specs(dataset, "test1")
    assert len(images) == 2315
    for path in result.write(tmp_path):
        check_submission(path, pairs, images)
        assert path.stat().st_size < 5 * 1024 * 1024
