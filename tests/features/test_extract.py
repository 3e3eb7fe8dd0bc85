"""Feature extraction end to end on a tiny random data set, checked against naive one-by-one encoding."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cirlab.cli import main
from cirlab.cli.extract import spec_from_args
from cirlab.data import build_preprocess, caption_variants, load_image
from cirlab.data.images import DECODE_VERSION
from cirlab.encoders import EncoderSpec, load_encoder, save_encoder_checkpoint
from cirlab.errors import CacheMismatchError, ConfigError, DataError, MissingImagesError
from cirlab.features import FeatureCache
from cirlab.features.extract import extract_features
from cirlab.features.fingerprint import data_fingerprint
from cirlab.features.image_loading import pixel_hash
from cirlab.features.partial import PARTIAL_DIR
from tests.data.cirr_builders import make_cirr
from tests.features.datasets import corrupt_image, make_dataset, remove_image

TINY = EncoderSpec(model="cirlab-vit-tiny", pretrained=None)
RN_TINY = EncoderSpec(model="cirlab-rn-tiny", pretrained=None)


class Interrupted(Exception):
    """Raised from the chunk hook to simulate a killed extraction."""


def extract(data: Path, out: Path, spec: EncoderSpec = TINY, **options) -> FeatureCache:
    """Chunks of 4 so that a tiny data set still has several; batches of 4 keep the number of distinct
    input shapes (each costs a warm-up on CPU) small."""
    options = {"chunk_size": 4, "batch_size": 4, **options}
    return extract_features(data, spec, out, **options)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("extract") / "data", images_per_split=2)


@pytest.fixture(scope="module")
def reference(data: Path, tmp_path_factory: pytest.TempPathFactory) -> FeatureCache:
    return extract(data, tmp_path_factory.mktemp("reference") / "cache")


@pytest.fixture
def fresh_data(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data", images_per_split=2)


def assert_same_cache(a: FeatureCache, b: FeatureCache, exact: bool = True) -> None:
    assert a.image_ids == b.image_ids and a.image_hashes == b.image_hashes
    assert json.loads((a.root / "index.json").read_text()) == json.loads((b.root / "index.json").read_text())
    if exact:
        assert np.array_equal(a.image_features, b.image_features)
        assert np.array_equal(a.text_features, b.text_features)
    else:
        np.testing.assert_allclose(a.image_features, b.image_features, atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(a.text_features, b.text_features, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------- content
def test_features_equal_naive_one_by_one_encoding(data: Path, reference: FeatureCache) -> None:
    encoder = load_encoder(TINY, device="cpu")
    preprocess = build_preprocess("targetpad", encoder.preprocess)
    for row, image_id in enumerate(reference.image_ids):
        path = next((data / "images").glob(f"{image_id}.*"))
        expected = encoder.encode_images(preprocess(load_image(path))[None])[0].numpy()
        np.testing.assert_allclose(reference.image_features[row], expected, atol=1e-5, rtol=1e-4)
    for position, captions in enumerate(reference.triplets.captions):
        expected = encoder.encode_texts(list(caption_variants(captions))).numpy()
        np.testing.assert_allclose(reference.text_features[position], expected, atol=1e-5, rtol=1e-4)


def test_layout_each_image_once_rows_and_triplets(data: Path, reference: FeatureCache) -> None:
    ids = reference.image_ids
    assert len(ids) == len(set(ids)) and ids.count("Dshared") == 1
    for category in ("dress", "shirt"):
        for split in ("train", "val", "test"):
            split_ids = json.loads((data / "image_splits" / f"split.{category}.{split}.json").read_text())
            assert [ids[r] for r in reference.split_rows(category, split)] == split_ids
    entries = {(c, s): json.loads((data / "captions" / f"cap.{c}.{s}.json").read_text())
               for c in ("dress", "shirt") for s in ("train", "val", "test")}
    assert len(reference.triplets) == sum(len(v) for v in entries.values())
    t = reference.triplets
    for i in range(len(t)):
        entry = entries[(t.categories[i], t.splits[i])][t.file_index[i]]
        assert ids[t.reference_rows[i]] == entry["candidate"]
        assert t.target_rows[i] == (ids.index(entry["target"]) if "target" in entry else -1)
        assert list(t.captions[i]) == entry["captions"]
    assert set(ids) == {i for v in entries.values() for e in v for i in (e["candidate"], e.get("target")) if i} | {
        i for c in ("dress", "shirt") for s in ("train", "val", "test")
        for i in json.loads((data / "image_splits" / f"split.{c}.{s}.json").read_text())}


def test_content_hashes_match_pixels(data: Path, reference: FeatureCache) -> None:
    hashes = dict(zip(reference.image_ids, reference.image_hashes))
    for image_id, digest in hashes.items():
        assert digest == pixel_hash(load_image(next((data / "images").glob(f"{image_id}.*"))))
    assert hashes["Ddup"] == hashes["Dtrain0"]
    assert len(set(hashes.values())) == len(hashes) - 1
    dup, original = reference.row_of("Ddup"), reference.row_of("Dtrain0")
    assert np.array_equal(reference.image_features[dup], reference.image_features[original])


def test_manifest(data: Path, reference: FeatureCache) -> None:
    m = reference.manifest
    encoder = load_encoder(TINY, device="cpu")
    assert (m["model"], m["pretrained"], m["checkpoint"]) == ("cirlab-vit-tiny", None, None)
    assert m["weights_hash"] == encoder.weights_hash() == m["encoder"]["weights_hash"]
    assert m["preprocess"] == {"kind": "targetpad", "decode": DECODE_VERSION, "target_ratio": 1.25}
    assert (m["dim"], m["dtype"], m["precision"]) == (64, "float32", "fp32")
    assert m["data_fingerprint"] == data_fingerprint(data)
    assert m["missing"]["total_missing_images"] == 0 and m["corrupt"]["errors"] == []
    assert m["timing"]["images_encoded"] == len(reference.image_ids) and m["timing"]["images_per_second"] > 0
    assert m["timing"]["texts_encoded"] == 4 * len(reference.triplets)
    assert not (reference.root / PARTIAL_DIR).exists()


def test_encoder_preprocess_differs_only_for_elongated_images(data: Path, reference: FeatureCache,
                                                              tmp_path: Path) -> None:
    plain = extract(data, tmp_path / "plain", preprocess="encoder")
    assert plain.manifest["preprocess"] == {"kind": "encoder", "decode": DECODE_VERSION}
    square = reference.row_of("Dtrain0")  # 48x48: target-pad leaves it alone
    tall = reference.row_of("Dtrain1")  # 40x64: padded
    assert np.allclose(plain.image_features[square], reference.image_features[square], atol=1e-6)
    assert not np.allclose(plain.image_features[tall], reference.image_features[tall], atol=1e-3)


# ------------------------------------------------------------- cache reuse
def test_rerun_is_a_no_op(data: Path, reference: FeatureCache, caplog: pytest.LogCaptureFixture) -> None:
    manifest_bytes = (reference.root / "manifest.json").read_bytes()
    chunks = []
    with caplog.at_level(logging.INFO, logger="cirlab.features"):
        again = extract(data, reference.root, on_chunk=lambda kind, i: chunks.append((kind, i)))
    assert chunks == [] and "up to date" in caplog.messages[0]
    assert (reference.root / "manifest.json").read_bytes() == manifest_bytes
    assert_same_cache(again, reference)


@pytest.mark.slow
def test_other_model_refused_unless_overwrite(data: Path, reference: FeatureCache, tmp_path: Path) -> None:
    out = Path(shutil.copytree(reference.root, tmp_path / "cache"))
    with pytest.raises(CacheMismatchError, match="weights_hash.*--overwrite"):
        extract(data, out, RN_TINY)
    replaced = extract(data, out, RN_TINY, overwrite=True)
    assert replaced.manifest["model"] == "cirlab-rn-tiny"
    assert replaced.manifest["weights_hash"] == load_encoder(RN_TINY, device="cpu").weights_hash()


def test_changed_data_refused(data: Path, reference: FeatureCache, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(data, tmp_path / "data"))
    out = Path(shutil.copytree(reference.root, tmp_path / "cache"))
    assert extract(copy, out).manifest == reference.manifest  # the fingerprint does not depend on the location
    path = copy / "captions" / "cap.shirt.val.json"
    path.write_text(path.read_text().replace("sleeves", "collars"))
    with pytest.raises(CacheMismatchError, match="data_fingerprint"):
        extract(copy, out)


def test_invalid_options(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="batch size"):
        extract(data, tmp_path / "c", batch_size=0)
    with pytest.raises(ConfigError, match="preprocessing"):
        extract(data, tmp_path / "c", preprocess="crop")
    with pytest.raises(ConfigError, match="missing-image policy"):
        extract(data, tmp_path / "c", missing="ignore")
    with pytest.raises(ConfigError, match="target-pad ratio"):
        extract(data, tmp_path / "c", target_ratio=0.5)
    assert not (tmp_path / "c").exists()


# ------------------------------------------------------- missing and corrupt
def test_missing_image_error_then_skip(fresh_data: Path, tmp_path: Path) -> None:
    remove_image(fresh_data, "Dval0")
    with pytest.raises(MissingImagesError, match="1 images .* missing .*pass --missing skip"):
        extract(fresh_data, tmp_path / "cache")
    cache = extract(fresh_data, tmp_path / "cache", missing="skip")
    assert "Dval0" not in cache.image_ids
    missing = cache.manifest["missing"]
    assert missing["missing_images"] == {"dress.val": ["Dval0"]}
    assert missing["dropped_triplets"] == {"dress.val": [0]}
    kept = cache.triplets.select(["dress"], "val")
    assert list(cache.triplets.file_index[kept]) == [1]
    assert [cache.image_ids[r] for r in cache.split_rows("dress", "val")] == ["Dval1", "Dshared", "Ddup"]


def test_corrupt_image_error_names_the_file(fresh_data: Path, tmp_path: Path) -> None:
    path = corrupt_image(fresh_data, "Strain1")
    with pytest.raises(DataError) as info:
        extract(fresh_data, tmp_path / "cache")
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "cache" / "manifest.json").exists()


def test_corrupt_image_skipped_with_counts(fresh_data: Path, tmp_path: Path) -> None:
    path = corrupt_image(fresh_data, "Strain1")
    out = tmp_path / "cache"

    def stop_at_texts(kind: str, index: int) -> None:
        if kind == "texts":
            raise Interrupted

    with pytest.raises(Interrupted):  # every image chunk is done, the corrupt one recorded as a failure
        extract(fresh_data, out, missing="skip", on_chunk=stop_at_texts)
    with pytest.raises(DataError, match="Strain1"):  # the error policy does not accept those chunks
        extract(fresh_data, out, missing="error")
    cache = extract(fresh_data, out, missing="skip")
    assert "Strain1" not in cache.image_ids
    corrupt = cache.manifest["corrupt"]
    assert corrupt["missing_images"] == {"shirt.train": ["Strain1"]}
    assert corrupt["dropped_triplets"] == {"shirt.train": [0, 1]}
    assert corrupt["errors"][0].startswith(str(path))
    ids = cache.image_ids
    assert [ids[r] for r in cache.split_rows("shirt", "train")] == ["Strain0", "Dshared"]
    assert len(cache.triplets.select(["shirt"], "train")) == 0
    assert len(cache.triplets) == 9 - 2
    assert cache.manifest["missing_policy"] == "skip"
    assert extract(fresh_data, out, missing="skip").manifest == cache.manifest  # up to date
    with pytest.raises(CacheMismatchError, match="left out 1 corrupt images.*pass --missing skip to accept"):
        extract(fresh_data, out, missing="error")  # not silently under 'error'


# ------------------------------------------------------------------ resume
def test_interrupted_run_resumes_to_the_same_cache(data: Path, reference: FeatureCache, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "cache"
    written: list[tuple[str, int]] = []

    def interrupt_after_three(kind: str, index: int) -> None:
        written.append((kind, index))
        if len(written) == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        extract(data, out, on_chunk=interrupt_after_three)
    assert len(list((out / PARTIAL_DIR).glob("images-*.npz"))) == 3
    with pytest.raises(CacheMismatchError, match="incomplete"):
        FeatureCache.open(out)
    resumed: list[tuple[str, int]] = []
    with caplog.at_level(logging.INFO, logger="cirlab.features"):
        cache = extract(data, out, on_chunk=lambda kind, i: resumed.append((kind, i)))
    assert "resuming; 3/" in caplog.messages[0]
    assert not set(resumed) & set(written)
    n_image_chunks = -(-len(reference.image_ids) // 4)
    n_text_chunks = -(-len(reference.triplets) // 4)
    assert len(resumed) + len(written) == n_image_chunks + n_text_chunks
    assert cache.manifest["timing"]["image_chunks_reused"] == 3
    assert_same_cache(cache, reference)
    assert not (out / PARTIAL_DIR).exists()


@pytest.mark.slow
def test_partial_results_of_another_model_are_discarded(data: Path, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "cache"

    def interrupt(kind: str, index: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        extract(data, out, on_chunk=interrupt)
    with caplog.at_level(logging.INFO, logger="cirlab.features"):
        cache = extract(data, out, RN_TINY)
    assert "discarded" in caplog.messages[0]
    assert cache.manifest["model"] == "cirlab-rn-tiny" and cache.manifest["timing"]["image_chunks_reused"] == 0


def test_a_chunk_of_another_model_planted_among_the_partial_results_is_not_reused(
        data: Path, reference: FeatureCache, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """As when two extractions shared a cache folder: B's partial folder holds a chunk written by A (the same
    architecture, other weights). B redoes that chunk instead of mixing A's features into its cache."""
    other = EncoderSpec(model="cirlab-vit-tiny", pretrained=None, seed=1)

    def stop_after(count: int):
        written: list[int] = []

        def hook(kind: str, index: int) -> None:
            written.append(index)
            if len(written) == count:
                raise Interrupted
        return hook

    with pytest.raises(Interrupted):
        extract(data, tmp_path / "a", other, on_chunk=stop_after(2))
    with pytest.raises(Interrupted):
        extract(data, tmp_path / "b", on_chunk=stop_after(1))
    planted = tmp_path / "b" / PARTIAL_DIR / "images-000001.npz"
    shutil.copy(tmp_path / "a" / PARTIAL_DIR / "images-000001.npz", planted)
    with caplog.at_level(logging.INFO, logger="cirlab.features"):
        cache = extract(data, tmp_path / "b")
    assert "removed 1 chunks written by a different extraction or unreadable" in caplog.text
    assert "resuming; 1/" in caplog.text and cache.manifest["timing"]["image_chunks_reused"] == 1
    assert_same_cache(cache, reference)


def test_a_rerun_removes_what_a_kill_after_the_cache_was_written_left(data: Path, reference: FeatureCache,
                                                                     tmp_path: Path, monkeypatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    import cirlab.features.extract as extraction

    monkeypatch.setattr(extraction.PartialResults, "remove", lambda self: None)  # killed right after write_cache
    out = tmp_path / "cache"
    extract(data, out)
    monkeypatch.undo()
    assert (out / PARTIAL_DIR).is_dir()
    (out / ".images.npy.x1y2z3w4.tmp").write_bytes(b"half an array")
    with caplog.at_level(logging.INFO, logger="cirlab.features"):
        again = extract(data, out)
    assert "removed 1 temporary files left by an interrupted run" in caplog.text
    assert "removed the partial results of the run that wrote the cache" in caplog.text
    assert not (out / PARTIAL_DIR).exists() and not list(out.glob("*.tmp"))
    assert_same_cache(again, reference)


@pytest.mark.slow
def test_decoding_workers_and_batch_size_do_not_change_results(data: Path, reference: FeatureCache,
                                                               tmp_path: Path) -> None:
    cache = extract(data, tmp_path / "cache", num_workers=2, batch_size=3, chunk_size=8)
    assert_same_cache(cache, reference, exact=False)


def test_checkpoint_extraction_records_the_checkpoint(data: Path, tmp_path: Path) -> None:
    encoder = load_encoder(RN_TINY, device="cpu")
    folder = save_encoder_checkpoint(encoder.model, "cirlab-rn-tiny", tmp_path / "ckpt")
    spec = spec_from_args(None, None, folder)
    assert spec == EncoderSpec(model="cirlab-rn-tiny", pretrained=None, checkpoint=folder)
    cache = extract(data, tmp_path / "cache", spec, categories=["shirt"])
    assert cache.manifest["checkpoint"] == str(folder) and cache.manifest["pretrained"] is None
    assert cache.manifest["weights_hash"] == encoder.weights_hash()
    assert cache.categories() == ["shirt"]


# --------------------------------------------------------------------- CLI
def test_spec_from_args_defaults() -> None:
    assert spec_from_args("cirlab-vit-tiny", None, None).pretrained is None
    assert spec_from_args(None, None, None) == EncoderSpec(model="RN50x4", pretrained="openai")
    assert spec_from_args("RN50x4", "none", None).pretrained is None
    assert spec_from_args("RN50x4", "laion400m_e32", None, seed=4) == EncoderSpec("RN50x4", "laion400m_e32", seed=4)


def test_cli_extract(data: Path, reference: FeatureCache, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["extract", "--data", str(data), "--out", str(tmp_path / "cache"), "--model", "cirlab-vit-tiny",
            "--workers", "0", "--chunk-size", "4"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{len(reference.image_ids)} images and {len(reference.triplets)} triplets" in out
    assert_same_cache(FeatureCache.open(tmp_path / "cache"), reference, exact=False)
    assert main(args) == 0
    assert "up to date" in capsys.readouterr().err  # a diagnostic, not a result
    assert main([*args[:-4], "--model", "cirlab-rn-tiny", "--workers", "0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("cirlab: error:") and error.count("\n") == 1 and "--overwrite" in error


def test_cli_offline_reference_model_fails_with_one_line(data: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    assert main(["extract", "--data", str(data), "--out", str(tmp_path / "c"), "--workers", "0"]) == 2
    error = capsys.readouterr().err
    assert "RN50x4" in error and "openai" in error and error.count("\n") == 1


# ------------------------------------------------------------- slow / big
def torchrun_extract(data: Path, out: Path) -> subprocess.CompletedProcess:
    """``cirlab extract`` with the tiny ViT in two CPU processes (gloo) under torchrun."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CIRLAB_NO_PROGRESS": "1", "CUDA_VISIBLE_DEVICES": "",
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "cirlab", "extract", "--data", str(data), "--out", str(out), "--model", "cirlab-vit-tiny",
               "--workers", "0", "--chunk-size", "4", "--batch-size", "4"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.distributed
def test_torchrun_two_processes_equal_single_process(data: Path, reference: FeatureCache, tmp_path: Path) -> None:
    out = tmp_path / "cache"
    result = torchrun_extract(data, out)
    assert result.returncode == 0, result.stderr[-2000:]
    cache = FeatureCache.open(out)
    assert cache.manifest["timing"]["world_size"] == 2
    assert_same_cache(cache, reference, exact=False)
    assert not (out / PARTIAL_DIR).exists()


@pytest.mark.slow
@pytest.mark.distributed
def test_torchrun_corrupt_image_stops_every_process_with_one_line(fresh_data: Path, tmp_path: Path) -> None:
    """Whatever the timing: every process fails, none with a traceback, and each one that gets to report writes
    the one complete error line. (torchrun stops the other processes when the first one fails, so a process may
    be stopped before it writes; each process's stderr goes to its own file so that none can interleave.)"""
    import re

    path = corrupt_image(fresh_data, "Sval0")  # late in the plan: the other process has finished its chunks
    logs = tmp_path / "logs"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CIRLAB_NO_PROGRESS": "1", "CUDA_VISIBLE_DEVICES": "",
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "--redirects", "3", "--log-dir", str(logs),
               "-m", "cirlab", "extract", "--data", str(fresh_data), "--out", str(tmp_path / "cache"),
               "--model", "cirlab-vit-tiny", "--workers", "0", "--chunk-size", "4", "--batch-size", "4"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert not (tmp_path / "cache" / "manifest.json").exists()
    # every process exits non-zero: torchrun reports each failed rank with its exit code
    report = dict(re.findall(r"rank\s*:\s*(\d+).*?\n\s*exitcode\s*:\s*(-?\d+)", result.stderr))
    assert set(report) == {"0", "1"} and all(int(code) != 0 for code in report.values()), result.stderr[-2000:]
    stderr = {file.parent.name: file.read_text(encoding="utf-8") for file in logs.rglob("stderr.log")}
    assert set(stderr) == {"0", "1"}
    errors = {rank: [line for line in text.splitlines() if "cirlab: error:" in line] for rank, text in stderr.items()}
    written = [lines for lines in errors.values() if lines]
    assert written, stderr  # at least one process reported
    assert all(len(lines) == 1 and lines[0].startswith(f"cirlab: error: {path}: ") for lines in written), errors
    assert len({lines[0] for lines in written}) == 1  # the same message from every process that reported
    assert not any("Traceback" in text for text in stderr.values()), stderr


@pytest.mark.slow
def test_rn50x4_random_init_end_to_end_at_640d(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", images_per_split=2)
    spec = EncoderSpec(model="RN50x4", pretrained=None)
    cache = extract_features(data, spec, tmp_path / "cache", categories=["dress"], batch_size=8)
    assert cache.dim == 640 and cache.image_features.shape == (len(cache.image_ids), 640)
    assert cache.text_features.shape == (len(cache.triplets), 4, 640)
    assert cache.manifest["encoder"]["image_size"] == 288
    features = torch.from_numpy(np.array(cache.image_features))
    assert torch.isfinite(features).all()
    dup, original = cache.row_of("Ddup"), cache.row_of("Dtrain0")
    assert torch.equal(features[dup], features[original])
    assert not torch.allclose(features[cache.row_of("Dtrain1")], features[original])


# ------------------------------------------------------------------ CIRR
@pytest.fixture(scope="module")
def cirr_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cirr(tmp_path_factory.mktemp("cirr") / "data", images_per_split=6)


@pytest.fixture(scope="module")
def cirr_reference(cirr_data: Path, tmp_path_factory: pytest.TempPathFactory) -> FeatureCache:
    return extract(cirr_data, tmp_path_factory.mktemp("cirr-reference") / "cache", dataset="cirr")


def test_cirr_cache_holds_every_split_image_and_query(cirr_data: Path, cirr_reference: FeatureCache) -> None:
    cache = cirr_reference
    m = cache.manifest
    assert (m["dataset"], m["caption_forms"], m["eval_form_index"], m["categories"]) == ("cirr", ["caption"], 0,
                                                                                         ["all"])
    assert m["splits"] == ["all.test1", "all.train", "all.val"] and m["timing"]["texts_encoded"] == len(cache.triplets)
    queries = {}
    for split in ("train", "val", "test1"):
        paths = json.loads((cirr_data / "cirr" / "image_splits" / f"split.rc2.{split}.json").read_text())
        assert [cache.image_ids[r] for r in cache.split_rows("all", split)] == list(paths)
        for entry in json.loads((cirr_data / "cirr" / "captions" / f"cap.rc2.{split}.json").read_text()):
            queries[str(entry["pairid"])] = entry
    t, ids = cache.triplets, cache.image_ids
    assert sorted(t.query_ids.tolist()) == sorted(queries) and cache.text_features.shape == (len(queries), 1, 64)
    for i, query_id in enumerate(t.query_ids.tolist()):
        entry = queries[query_id]
        assert ids[t.reference_rows[i]] == entry["reference"] and t.captions[i] == (entry["caption"],)
        assert t.target_rows[i] == (ids.index(entry["target_hard"]) if "target_hard" in entry else -1)
        assert [ids[r] for r in t.subset_rows[i]] == entry["img_set"]["members"]
        assert {ids[r]: s for r, s in t.soft_targets[i].items()} == entry.get("target_soft", {})


def test_cirr_captions_are_encoded_as_written(cirr_data: Path, cirr_reference: FeatureCache) -> None:
    encoder = load_encoder(TINY, device="cpu")
    captions = [c for (c,) in cirr_reference.triplets.captions]
    assert " " in captions and "make it number 1." in captions
    expected = encoder.encode_texts(captions).numpy()
    np.testing.assert_allclose(cirr_reference.text_features[:, 0], expected, atol=1e-5, rtol=1e-4)
    preprocess = build_preprocess("targetpad", encoder.preprocess)
    row = cirr_reference.row_of("train-1-0-img1")
    image = load_image(cirr_data / "train" / "1" / "train-1-0-img1.png")
    np.testing.assert_allclose(cirr_reference.image_features[row], encoder.encode_images(preprocess(image)[None])[0],
                               atol=1e-5, rtol=1e-4)


def test_cirr_cli_recognises_the_layout_and_resumes(cirr_data: Path, cirr_reference: FeatureCache, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cache"

    def stop_after_two_image_chunks(kind: str, index: int) -> None:
        if index == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        extract(cirr_data, out, on_chunk=stop_after_two_image_chunks)
    args = ["extract", "--data", str(cirr_data), "--out", str(out), "--model", "cirlab-vit-tiny", "--workers", "0",
            "--chunk-size", "4", "--batch-size", "4"]
    assert main(args) == 0
    assert "x 1 caption forms" in capsys.readouterr().out
    cache = FeatureCache.open(out)
    assert cache.manifest["timing"]["image_chunks_reused"] == 2
    assert_same_cache(cache, cirr_reference)
    assert main([*args, "--dataset", "cirr"]) == 0 and "up to date" in capsys.readouterr().err
    assert main([*args, "--dataset", "fashioniq"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("cirlab: error:") and error.count("\n") == 1 and "image_splits" in error


def test_cirr_missing_image_skipped_leaves_it_out_of_subsets(cirr_data: Path, tmp_path: Path) -> None:
    data = Path(shutil.copytree(cirr_data, tmp_path / "data"))
    (data / "dev" / "dev-2-0-img0.png").unlink()
    with pytest.raises(MissingImagesError, match="1 images named by the split and caption files are missing"):
        extract(data, tmp_path / "cache")
    cache = extract(data, tmp_path / "cache", missing="skip")
    assert cache.manifest["missing"]["dropped_triplets"] == {"all.val": [1, 2]}
    val = cache.triplets.select(["all"], "val")
    assert cache.triplets.file_index[val].tolist() == [0, 3] and "dev-2-0-img0" not in cache.image_ids
    subsets = [[cache.image_ids[r] for r in cache.triplets.subset_rows[p]] for p in val]
    assert subsets == [["dev-0-0-img0", "dev-1-0-img1", "dev-3-0-img1", "dev-4-0-img0", "dev-5-0-img1"],
                       ["dev-3-0-img1", "dev-4-0-img0", "dev-5-0-img1", "dev-0-0-img0", "dev-1-0-img1"]]
