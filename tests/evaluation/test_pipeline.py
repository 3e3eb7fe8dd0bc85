import json

import numpy as np
import pytest
import torch

from cirlab import cli
from cirlab.combiners import CombinerFileError, build_combiner, resolve_checkpoint, save_combiner
from cirlab.errors import CacheMismatchError, ConfigError
from cirlab.evaluation import evaluate, evaluate_cache
from cirlab.features.cache import MANIFEST_FILE

from .caches import random_cache, sum_combine


def test_evaluate_sum_by_name_matches_the_library_call_and_writes_json(tmp_path):
    cache = random_cache(tmp_path / "cache")
    out = tmp_path / "out" / "results.json"
    result = evaluate(tmp_path / "cache", combiner="sum", out=out, device="cpu")
    expected = evaluate_cache(cache, sum_combine)
    assert result.mean == pytest.approx(expected.mean)
    data = json.loads(out.read_text())
    assert data["metrics"]["mean"] == pytest.approx({f"R@{k}": v for k, v in expected.mean.items()})
    assert data["metrics"]["average_R@10_R@50"] == pytest.approx(expected.headline)
    assert data["categories"]["shirt"]["queries"] == 7 and data["categories"]["shirt"]["gallery"] == 9
    assert data["model"] == "test-model" and data["features"]["data_fingerprint"] == "fp"
    assert data["combiner"] == "sum" and data["checkpoint"] is None
    assert data["excluded_queries"]["dress"] == {"missing_image": 0, "target_withheld": 0}
    assert not list(out.parent.glob(".*.tmp"))


def test_evaluate_a_run_folder_uses_its_best_checkpoint(tmp_path):
    cache = random_cache(tmp_path / "cache")
    torch.manual_seed(0)
    trained = build_combiner("combiner", 8)
    save_combiner(trained, tmp_path / "run" / "best", extra={"epoch": 3})
    assert resolve_checkpoint(tmp_path / "run") == tmp_path / "run" / "best"
    result = evaluate(tmp_path / "cache", checkpoint=tmp_path / "run", device="cpu")
    expected = evaluate_cache(cache, trained.eval())
    assert {c: r.ranks.tolist() for c, r in result.per_category.items()} == \
        {c: r.ranks.tolist() for c, r in expected.per_category.items()}
    assert result.metadata["checkpoint"]["path"] == str(tmp_path / "run" / "best")
    assert result.metadata["checkpoint"]["extra"] == {"epoch": 3} and result.metadata["combiner"] == "combiner"


def test_checkpoint_errors(tmp_path):
    random_cache(tmp_path / "cache")
    with pytest.raises(CombinerFileError, match="checkpoint folder not found"):
        evaluate(tmp_path / "cache", checkpoint=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CombinerFileError, match="not a combiner checkpoint"):
        evaluate(tmp_path / "cache", checkpoint=tmp_path / "empty")
    save_combiner(build_combiner("combiner", 16), tmp_path / "wide")
    with pytest.raises(CacheMismatchError, match=r"made from other features .*\(dim: recorded 16, cache 8\)"):
        evaluate(tmp_path / "cache", checkpoint=tmp_path / "wide")
    with pytest.raises(ConfigError, match="trainable parameters"):
        evaluate(tmp_path / "cache", combiner="combiner")


def test_cli_prints_the_table_and_writes_json(tmp_path, capsys):
    random_cache(tmp_path / "cache")
    out = tmp_path / "results.json"
    code = cli.main(["eval", "--features", str(tmp_path / "cache"), "--combiner", "sum",
                     "--categories", "dress,toptee", "--out", str(out), "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0].startswith("FashionIQ val | gallery: split | model: test-model | combiner: sum")
    assert any(line.split()[:3] == ["dress", "10", "12"] for line in lines)
    assert any(line.split()[:3] == ["toptee", "11", "15"] for line in lines)
    assert not any(line.startswith("shirt") for line in lines)
    assert "average of R@10 and R@50" in printed and "queries left out (not counted): none" in printed
    data = json.loads(out.read_text())
    assert list(data["metrics"]["per_category"]) == ["dress", "toptee"] and data["num_queries"] == 21
    headline = f"{data['metrics']['average_R@10_R@50']:.2f}"
    assert f"average of R@10 and R@50: {headline}" in printed


def test_cli_refuses_an_incomplete_cache_in_one_line(tmp_path, capsys):
    random_cache(tmp_path / "cache")
    (tmp_path / "cache" / MANIFEST_FILE).unlink()
    assert cli.main(["eval", "--features", str(tmp_path / "cache"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "incomplete" in err and str(tmp_path / "cache") in err


def test_cli_refuses_a_stale_cache_in_one_line(tmp_path, capsys):
    cache = random_cache(tmp_path / "cache")
    np.save(tmp_path / "cache" / "images.npy", np.zeros((len(cache.image_ids) - 1, 8), dtype=np.float32))
    assert cli.main(["eval", "--features", str(tmp_path / "cache"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "inconsistent cache" in err


def test_a_cache_of_other_features_than_expected_is_refused(tmp_path):
    random_cache(tmp_path / "cache")
    with pytest.raises(CacheMismatchError, match="stale or mismatched cache.*model: expected 'another-model', "
                                                 "cache has 'test-model'"):
        evaluate(tmp_path / "cache", expect={"model": "another-model"})


def test_cli_explains_a_data_set_folder_given_as_features(tmp_path, capsys):
    for folder in ("images", "captions", "image_splits"):
        (tmp_path / "fashioniq" / folder).mkdir(parents=True)
    assert cli.main(["eval", "--features", str(tmp_path / "fashioniq"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "resume" not in err
    assert f"{tmp_path / 'fashioniq'}: not a feature cache (it looks like a data set); run `cirlab extract --data " \
           f"{tmp_path / 'fashioniq'} --out CACHE` first" in err


def test_cli_missing_cache_folder(tmp_path, capsys):
    assert cli.main(["eval", "--features", str(tmp_path / "absent")]) == 2
    assert "feature cache folder not found" in capsys.readouterr().err


def test_checkpoint_trained_on_other_features_is_refused(tmp_path):
    cache = random_cache(tmp_path / "cache")
    folder = tmp_path / "ckpt"
    identity = {**cache.identity(), "model": "other-model"}
    save_combiner(build_combiner("combiner", cache.dim), folder, extra={"features": identity})
    with pytest.raises(CacheMismatchError) as info:
        evaluate(cache.root, checkpoint=folder, show_progress=False)
    assert str(info.value) == (f"{folder / 'combiner.json'}: made from other features than the feature cache "
                               f"{cache.root} (model: recorded 'other-model', cache 'test-model')")


def test_checkpoint_trained_on_another_data_set_with_the_same_encoder_is_evaluated(tmp_path):
    cache = random_cache(tmp_path / "cache")
    identity = {**cache.identity(), "data_fingerprint": "another data set", "num_images": 1000}
    save_combiner(build_combiner("combiner", cache.dim), tmp_path / "ckpt", extra={"features": identity})
    result = evaluate(cache.root, checkpoint=tmp_path / "ckpt", device="cpu", show_progress=False)
    assert result.metadata["checkpoint"]["extra"]["features"] == identity
    assert result.metadata["features"] == {"path": str(cache.root), **cache.identity()}


@pytest.mark.slow
def test_the_synthetic_benchmarks_test_split_is_evaluated(tmp_path):
    """cirlab synth writes test targets, so a checkpoint selected on val can be reported on test."""
    from cirlab.encoders import EncoderSpec
    from cirlab.features.extract import extract_features
    from cirlab.synth import generate
    from cirlab.synth.config import SynthConfig

    generate(tmp_path / "data", SynthConfig.preset("tiny"), show_progress=False)
    extract_features(tmp_path / "data", EncoderSpec(model="cirlab-rn-tiny", pretrained=None, seed=0),
                     tmp_path / "features", device="cpu")
    assert cli.main(["eval", "--features", str(tmp_path / "features"), "--combiner", "sum", "--split", "test",
                     "--device", "cpu", "--out", str(tmp_path / "test.json")]) == 0
    data = json.loads((tmp_path / "test.json").read_text())
    assert data["split"] == "test" and data["num_queries"] > 0
    assert all(reasons["target_withheld"] == 0 for reasons in data["excluded_queries"].values())


def test_query_accounting_says_where_every_query_went(tmp_path):
    result = evaluate_cache(random_cache(tmp_path / "cache"), sum_combine, show_progress=False)
    accounting = result.query_accounting()
    assert accounting["split"] == "val" and accounting["queries"]["shirt"] == 7 and accounting["gallery"]["shirt"] == 9
    assert accounting["excluded_queries"] == result.excluded and accounting["outside_gallery_queries"] == \
        result.outside_gallery
    assert set(accounting["missing_images"]) == set(result.per_category)
