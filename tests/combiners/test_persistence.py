"""Saving and loading combiners: exact round trips and one-line errors for broken folders."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from cirlab.combiners import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CombinerFileError,
    build_combiner,
    load_combiner,
    read_combiner_metadata,
    save_combiner,
)
from cirlab.combiners.persistence import load_combiner_for, resolve_checkpoint
from cirlab.engine.checkpoint import BEST, LAST
from cirlab.errors import CacheMismatchError, CirlabError, ConfigError
from cirlab.features import FeatureCache
from tests.evaluation.caches import random_cache

WEIGHTS_HASH = "a" * 64


@pytest.mark.parametrize("name", ["combiner", "attention-fusion", "sum"])
def test_round_trip_reproduces_outputs(tmp_path: Path, name: str) -> None:
    torch.manual_seed(0)
    combiner = build_combiner(name, dim=8, **({"dropout": 0.3} if name != "sum" else {})).eval()
    save_combiner(combiner, tmp_path / "run", extra={"epoch": 3})
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    loaded = load_combiner(tmp_path / "run")
    assert type(loaded) is type(combiner) and loaded.config() == combiner.config() and not loaded.training
    image, text = torch.randn(4, 8), torch.randn(4, 8)
    assert torch.equal(loaded(image, text), combiner(image, text))
    meta = read_combiner_metadata(tmp_path / "run")
    assert meta["extra"] == {"epoch": 3} and meta["config"] == combiner.config()
    assert meta["parameters"] == sum(p.numel() for p in combiner.parameters())


def test_load_accepts_the_json_path_and_overwrites_atomically(tmp_path: Path) -> None:
    first = build_combiner("combiner", dim=4)
    save_combiner(first, tmp_path)
    second = build_combiner("combiner", dim=4)
    save_combiner(second, tmp_path)  # overwrite in place
    loaded = load_combiner(tmp_path / CONFIG_FILE)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), second.state_dict().values()))
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _saved(tmp_path: Path, name: str = "combiner", dim: int = 4) -> Path:
    folder = tmp_path / name
    save_combiner(build_combiner(name, dim=dim), folder)
    return folder


def _one_line_error(path: Path, match: str) -> str:
    with pytest.raises(CombinerFileError, match=match) as info:
        load_combiner(path)
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, CirlabError)
    return message


def test_missing_folder_and_files(tmp_path: Path) -> None:
    _one_line_error(tmp_path / "nowhere", "combiner folder not found")
    (tmp_path / "empty").mkdir()
    assert str(tmp_path / "empty" / CONFIG_FILE) in _one_line_error(tmp_path / "empty", "not a saved combiner")
    folder = _saved(tmp_path)
    (folder / WEIGHTS_FILE).unlink()
    _one_line_error(folder, "weights were not saved")


def test_corrupt_files(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    (folder / WEIGHTS_FILE).write_bytes(b"not a safetensors file")
    _one_line_error(folder, r"combiner.safetensors: damaged or truncated \(22 bytes, combiner.json records")
    _edit_json(folder, lambda meta: meta.pop("files"))  # saved before combiner.json recorded the weights' hash
    _one_line_error(folder, "unreadable weights file")
    (folder / CONFIG_FILE).write_text("{ truncated")
    _one_line_error(folder, "unreadable combiner description")
    (folder / CONFIG_FILE).write_text(json.dumps({"format_version": 99}))
    _one_line_error(folder, "combiner format 99")


def _edit_json(folder: Path, change) -> None:
    meta = json.loads((folder / CONFIG_FILE).read_text())
    change(meta)
    (folder / CONFIG_FILE).write_text(json.dumps(meta))


def test_the_description_records_the_weights_hash(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    data = (folder / WEIGHTS_FILE).read_bytes()
    assert read_combiner_metadata(folder)["files"] == {
        WEIGHTS_FILE: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}}


def test_flipped_weight_bytes_are_refused(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    data = bytearray((folder / WEIGHTS_FILE).read_bytes())
    data[-64:] = bytes(b ^ 0xFF for b in data[-64:])  # inside the last tensor: safetensors itself reads it happily
    (folder / WEIGHTS_FILE).write_bytes(bytes(data))
    message = _one_line_error(folder, "damaged")
    assert message == (f"{folder / WEIGHTS_FILE}: damaged (its sha256 differs from the one combiner.json records: "
                       f"the file changed after it was written); train or save the combiner again")
    _edit_json(folder, lambda meta: meta.pop("files"))
    load_combiner(folder)  # without a record (an older save) the weights load as they are


@pytest.mark.parametrize(("change", "match"), [
    (lambda config: config.update(hidden_dim="big"), "cannot rebuild the combiner"),
    (lambda config: config.update(dropout="none"), "cannot rebuild the combiner"),
    (lambda config: config.update(dim="wide"), "the combiner's dim is 'wide', expected a positive integer"),
])
def test_config_values_of_the_wrong_type_are_one_line_errors(tmp_path: Path, change, match) -> None:
    folder = _saved(tmp_path)
    _edit_json(folder, lambda meta: change(meta["config"]))
    assert str(folder / CONFIG_FILE) in _one_line_error(folder, match)


def test_weights_of_another_save_are_refused(tmp_path: Path) -> None:
    first, second = _saved(tmp_path, dim=4), tmp_path / "other"
    save_combiner(build_combiner("combiner", dim=4), second)
    shutil.copy(second / WEIGHTS_FILE, first / WEIGHTS_FILE)
    _one_line_error(first, "written by a different save")


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path: Path) -> None:
    folder = _saved(tmp_path, dim=4)
    meta = json.loads((folder / CONFIG_FILE).read_text())
    meta["config"]["hidden_dim"] = 7
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    _one_line_error(folder, "weights do not fit.*wrong shape: combiner_layer.bias")
    meta["config"]["name"] = "no-such-combiner"
    (folder / CONFIG_FILE).write_text(json.dumps(meta))
    _one_line_error(folder, "cannot rebuild the combiner")


# ------------------------------------------------------------------ run folders and the one loader
def _cache(tmp_path: Path) -> FeatureCache:
    cache = random_cache(tmp_path / "cache")
    manifest = json.loads((cache.root / "manifest.json").read_text())
    (cache.root / "manifest.json").write_text(json.dumps({**manifest, "weights_hash": WEIGHTS_HASH}))
    return FeatureCache.open(cache.root)


def test_resolve_checkpoint_takes_a_combiner_folder_or_a_runs_best(tmp_path: Path) -> None:
    assert (BEST, LAST) == ("best", "last")
    combiner = build_combiner("sum", 8)
    save_combiner(combiner, tmp_path / "run" / BEST)
    save_combiner(combiner, tmp_path / "run" / LAST)
    save_combiner(combiner, tmp_path / "plain")
    assert resolve_checkpoint(tmp_path / "run") == tmp_path / "run" / BEST
    assert resolve_checkpoint(tmp_path / "run" / LAST) == tmp_path / "run" / LAST
    assert resolve_checkpoint(tmp_path / "plain") == tmp_path / "plain"
    with pytest.raises(CombinerFileError, match="checkpoint folder not found"):
        resolve_checkpoint(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CombinerFileError, match=r"not a combiner checkpoint \(no combiner.json here or in best/\)"):
        resolve_checkpoint(tmp_path / "empty")


def test_load_combiner_for_a_run_folder_loads_its_best_and_describes_it(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    torch.manual_seed(0)
    trained = build_combiner("combiner", 8, projection_dim=8, hidden_dim=8)
    identity = {**cache.identity(), "data_fingerprint": "another data set"}  # the data may differ, not the encoder
    save_combiner(trained, tmp_path / "run" / BEST, extra={"epoch": 2, "features": identity})
    loaded, description = load_combiner_for(cache, tmp_path / "run")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in trained.state_dict().items()) and not loaded.training
    assert description["combiner"] == "combiner"
    assert description["checkpoint"]["path"] == str(tmp_path / "run" / BEST)
    assert description["checkpoint"]["extra"] == {"epoch": 2, "features": identity}


def test_load_combiner_for_refuses_another_encoders_combiner_in_one_line(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    save_combiner(build_combiner("combiner", 8), tmp_path / "other",
                  extra={"features": {**cache.identity(), "weights_hash": "b" * 64}})
    with pytest.raises(CacheMismatchError) as info:
        load_combiner_for(cache, tmp_path / "other")
    assert str(info.value) == (f"{tmp_path / 'other' / CONFIG_FILE}: made from other features than the feature "
                               f"cache {cache.root} (weights_hash: recorded 'bbbbbbbbbbbb…', cache 'aaaaaaaaaaaa…')")
    save_combiner(build_combiner("combiner", 16), tmp_path / "wide")  # saved outside training: only its dim
    with pytest.raises(CacheMismatchError, match=r"wide/combiner.json: .*\(dim: recorded 16, cache 8\)$"):
        load_combiner_for(cache, tmp_path / "wide")


def test_load_combiner_for_builds_only_parameter_free_combiners_by_name(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    combiner, description = load_combiner_for(cache, name="sum")
    assert combiner.config() == {"name": "sum", "dim": 8} and description == {"combiner": "sum", "checkpoint": None}
    with pytest.raises(ConfigError, match="combiner 'combiner' has trainable parameters; use a trained one"):
        load_combiner_for(cache, name="combiner")
    with pytest.raises(ConfigError, match="no combiner given"):
        load_combiner_for(cache)
