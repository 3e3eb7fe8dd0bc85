"""CIRR test-server files: written from a cache as the validation protocol ranks, and checked against the split."""

from __future__ import annotations

import json

import pytest

from cirlab.errors import ConfigError
from cirlab.evaluation import evaluate
from cirlab.evaluation.submission import MAX_BYTES, SubmissionError, check_submission, pair_specs

from .caches import cirr_cache, sum_combine


@pytest.fixture
def written(tmp_path):
    cache = cirr_cache(tmp_path / "cache")
    result = evaluate(tmp_path / "cache", combiner="sum", split="test1", submission=tmp_path / "sub",
                      show_progress=False)
    return cache, result, tmp_path / "sub"


def _naive_order(cache, position):
    import numpy as np
    import torch
    import torch.nn.functional as F

    rows = [int(r) for r in cache.split_rows("all", "test1")]
    gallery = F.normalize(torch.from_numpy(np.asarray(cache.image_features[rows])).float(), dim=-1)
    reference = int(cache.triplets.reference_rows[position])
    image = torch.from_numpy(np.array(cache.image_features[reference: reference + 1])).float()
    text = torch.from_numpy(np.array(cache.text_features[position: position + 1, 0])).float()
    scores = (F.normalize(sum_combine(image, text), dim=-1) @ gallery.T)[0].tolist()
    order = sorted(range(len(rows)), key=lambda j: (-scores[j], j))
    return [cache.image_ids[rows[j]] for j in order if rows[j] != reference]


def test_both_files_hold_every_pair_ranked_as_the_protocol_ranks(written):
    cache, result, folder = written
    recall = json.loads((folder / "recall_submission.json").read_text())
    subset = json.loads((folder / "recall_subset_submission.json").read_text())
    assert (recall["version"], recall["metric"], subset["metric"]) == ("rc2", "recall", "recall_subset")
    positions = cache.triplets.select(["all"], "test1")
    assert result.num_pairs == len(positions) == len(recall) - 2 == len(subset) - 2
    for position in positions.tolist():
        pair = str(cache.triplets.query_ids[position])
        ranking = _naive_order(cache, position)
        assert recall[pair] == ranking[:19]  # 20 test images, the reference removed
        members = {cache.image_ids[r] for r in cache.triplets.subset_rows[position].tolist()}
        assert subset[pair] == [name for name in ranking if name in members][:3]


@pytest.mark.parametrize("edit, message", [
    (lambda d, pair: d.pop(pair), "have no prediction"),
    (lambda d, pair: d[pair].__setitem__(1, d[pair][0]), "listed twice"),
    (lambda d, pair: d[pair].append("img-0"), "takes exactly"),
    (lambda d, pair: d.__setitem__("99999", d[pair]), "not a pair of the split"),
    (lambda d, pair: d.__setitem__("version", "rc1"), "version"),
    (lambda d, pair: d[pair].__setitem__(0, "no-such-image"), "not among the split's images"),
])
def test_the_checker_names_the_first_problem_in_one_line(written, tmp_path, edit, message):
    cache, _, folder = written
    document = json.loads((folder / "recall_submission.json").read_text())
    pair = next(key for key in document if key not in ("version", "metric"))
    edit(document, pair)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    pairs, images = pair_specs(cache, "test1")
    with pytest.raises(SubmissionError, match=message) as error:
        check_submission(bad, pairs, images)
    assert "\n" not in str(error.value) and str(bad) in str(error.value)


def test_the_reference_and_names_outside_the_subset_are_refused(written, tmp_path):
    cache, _, folder = written
    pairs, images = pair_specs(cache, "test1")
    document = json.loads((folder / "recall_subset_submission.json").read_text())
    pair = next(key for key in document if key not in ("version", "metric"))
    outside = next(name for name in sorted(images) if name not in pairs[pair].subset)
    for replacement, message in ((pairs[pair].reference, "own reference"), (outside, "subset")):
        changed = dict(document, **{pair: [replacement, *document[pair][1:]]})
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(changed))
        with pytest.raises(SubmissionError, match=message):
            check_submission(bad, pairs, images)


def test_a_file_over_the_servers_limit_is_refused(written, tmp_path):
    cache, _, _ = written
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (MAX_BYTES + 1))
    with pytest.raises(SubmissionError, match="5 MB"):
        check_submission(big, *pair_specs(cache, "test1"))


def test_a_split_with_targets_is_scored_not_submitted_and_test1_needs_a_folder(tmp_path):
    cirr_cache(tmp_path / "cache")
    with pytest.raises(ConfigError, match="has targets"):
        evaluate(tmp_path / "cache", combiner="sum", split="val", submission=tmp_path / "sub", show_progress=False)
    with pytest.raises(ConfigError, match="--submission"):
        evaluate(tmp_path / "cache", combiner="sum", split="test1", show_progress=False)


def test_the_check_command_reads_the_annotation_files_themselves(tmp_path, capsys):
    from cirlab import cli
    from cirlab.data.dataset import open_dataset
    from cirlab.evaluation.submission import dataset_pair_specs

    from ..data.cirr_builders import make_cirr

    root = make_cirr(tmp_path / "CIRR")
    pairs, _ = dataset_pair_specs(open_dataset(root), "test1")
    document = {"version": "rc2", "metric": "recall_subset"}
    document.update({pair: [m for m in spec.subset if m != spec.reference][:3] for pair, spec in pairs.items()})
    good = tmp_path / "subset.json"
    good.write_text(json.dumps(document))
    assert cli.main(["data", "check-submission", str(good), "--data", str(root)]) == 0
    assert f"a valid recall_subset submission for all {len(pairs)} test1 pairs" in capsys.readouterr().out
    document.pop(next(iter(pairs)))
    good.write_text(json.dumps(document))
    assert cli.main(["data", "check-submission", str(good), "--data", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rejected" in err and "have no prediction" in err
