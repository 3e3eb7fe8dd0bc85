"""Damaged artefacts are refused in one line naming the file, through the library and through the CLI.

Every artefact cirlab writes (feature cache, gallery index, combiner, training checkpoint) records the size
and sha256 of its files, so flipped or truncated bytes are refused when it is loaded; and every file is
checked for structure, which is what protects an artefact written before the hashes were recorded (the
``legacy`` cases: the same damage with the hash records removed). Each case makes the damage, opens the
artefact through its public loader, then runs the command that uses it, and expects exit status 2 and a
single line on stderr that names the damaged file: no traceback, no silent use.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from cirlab import cli
from cirlab.combiners import load_combiner
from cirlab.engine import read_state
from cirlab.errors import CirlabError
from cirlab.features.cache import FeatureCache, write_cache
from cirlab.hashing import file_record
from cirlab.search import GalleryIndex, build_index
from cirlab.training import load_config, train
from tests.search.fixtures import cache_manifest, gallery_ids, random_features, write_gallery_cache
from tests.training.fixtures import make_learnable_cache

DIM = 8


def flip(path: Path, count: int, *, at: float = 0.5) -> None:
    """Invert ``count`` bytes of ``path`` starting at fraction ``at`` of its length."""
    data = bytearray(path.read_bytes())
    start = min(int(len(data) * at), len(data) - count)
    data[start:start + count] = bytes(255 - b for b in data[start:start + count])
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def edit_json(path: Path, change: Callable[[dict], object]) -> None:
    """Change the JSON object in ``path`` in place (``change``'s return value is ignored)."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def wrap_in_list(path: Path) -> None:
    """Replace the JSON object in ``path`` by a list holding it."""
    path.write_text(json.dumps([json.loads(path.read_text())]))


def forget_hashes(manifest: Path) -> None:
    """Make an artefact look as if written before content hashes were recorded."""
    edit_json(manifest, lambda data: data.pop("files", None))


def expect_one_line(call: Callable[[], object], path: Path, match: str) -> str:
    with pytest.raises(CirlabError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    assert match in message, message
    return message


def expect_cli_one_line(capsys, argv: list[str], path: Path, match: str) -> str:
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cirlab: error: ") and err.count("\n") == 1, err
    assert str(path) in err and match in err and "Traceback" not in err, err
    return err


# ------------------------------------------------------------------------------------ the feature cache
def write_small_cache(root: Path) -> Path:
    rng = np.random.default_rng(0)
    triplets = [{"category": "dress", "split": "val", "file_index": n, "reference_row": n, "target_row": n + 1,
                 "captions": ["is red", "darker"]} for n in range(3)]
    return write_cache(root, image_ids=[f"I{i}" for i in range(6)],
                       image_features=rng.standard_normal((6, DIM)).astype(np.float32),
                       split_rows={"dress.val": [0, 1, 2, 3], "dress.train": [4, 5]}, triplets=triplets,
                       text_features=rng.standard_normal((3, 4, DIM)).astype(np.float32),
                       manifest={"model": "m", "data_fingerprint": "abc", "preprocess": {"kind": "targetpad"}},
                       image_hashes=[f"h{i}" for i in range(6)])


def reheaded(path: Path, shape: tuple[int, ...] | None = None, dtype: str | None = None) -> None:
    """Rewrite the .npy header of ``path`` to claim another shape or dtype, keeping the data bytes."""
    npy = np.lib.format
    with open(path, "rb") as handle:
        assert npy.read_magic(handle) == (1, 0)  # what np.save writes for small headers
        old_shape, fortran, old_dtype = npy.read_array_header_1_0(handle)
        data = handle.read()
    header = {"descr": npy.dtype_to_descr(np.dtype(dtype or old_dtype)), "fortran_order": fortran,
              "shape": shape or old_shape}
    with open(path, "wb") as handle:
        npy.write_array_header_1_0(handle, header)
        handle.write(data)


def pickled(path: Path) -> None:
    np.save(path, np.array([{"features": 1}, None], dtype=object), allow_pickle=True)


def index_json(change: Callable[[dict], object]) -> Callable[[Path], None]:
    return lambda root: edit_json(root / "index.json", change)


#: (case, damage, damaged file, message with hashes recorded, message of a cache written before them; None where
#: the damage is to the manifest that holds the hashes)
CACHE_CASES: list[tuple[str, Callable[[Path], None], str, str, str]] = [
    ("truncated images", lambda r: truncate(r / "images.npy"), "images.npy", "damaged or truncated",
     "unreadable feature array (mmap length is greater than file size)"),
    ("truncated texts", lambda r: truncate(r / "texts.npy"), "texts.npy", "damaged or truncated",
     "unreadable feature array"),
    ("images re-headed larger", lambda r: reheaded(r / "images.npy", shape=(60, DIM)), "images.npy", "damaged (",
     "unreadable feature array"),
    ("images re-headed smaller", lambda r: reheaded(r / "images.npy", shape=(5, DIM)), "images.npy",
     "images.npy has shape (5, 8), expected (6, 8)", "images.npy has shape (5, 8), expected (6, 8)"),
    ("texts re-headed as integers", lambda r: reheaded(r / "texts.npy", dtype="<i4"), "texts.npy",
     "holds int32 values, expected floating-point features", "holds int32 values"),
    ("pickled object array", lambda r: pickled(r / "images.npy"), "images.npy", "damaged or truncated",
     "unreadable feature array (Array can't be memory-mapped: Python objects in dtype.)"),
    ("empty images", lambda r: (r / "images.npy").write_bytes(b""), "images.npy", "damaged or truncated",
     "unreadable feature array (No data left in file)"),
    ("empty index", lambda r: (r / "index.json").write_bytes(b""), "index.json", "damaged or truncated",
     "unreadable (JSONDecodeError"),
    ("index without triplets", index_json(lambda i: i.pop("triplets")), "index.json", "damaged",
     "malformed cache index (no 'triplets')"),
    ("index that is a list", lambda r: wrap_in_list(r / "index.json"), "index.json", "damaged",
     "malformed cache index (a JSON array, expected an object)"),
    ("triplets that are a list", index_json(lambda i: i.update(triplets=[])), "index.json", "damaged",
     "malformed cache index ('triplets' is a JSON array, expected a JSON object)"),
    ("split rows out of range", index_json(lambda i: i["split_rows"]["dress.val"].append(99)), "index.json",
     "damaged", "malformed cache index (split 'dress.val' names image row 99, but the cache holds 6 images)"),
    ("target row out of range", index_json(lambda i: i["triplets"]["target_row"].__setitem__(0, 6)), "index.json",
     "damaged", "triplet column 'target_row' names image row 6"),
    ("captions that are not lists of strings", index_json(lambda i: i["triplets"]["captions"].__setitem__(0, "red")),
     "index.json", "damaged", "'captions' holds a value that is not a list of strings"),
    ("manifest that is a list", lambda r: wrap_in_list(r / "manifest.json"), "manifest.json",
     "not a feature cache manifest (a JSON array, expected an object)", None),
    ("manifest dim that is not a number", lambda r: edit_json(r / "manifest.json", lambda m: m.update(dim="8")),
     "manifest.json", "malformed manifest (dim is '8', expected a positive integer)", None),
]


@pytest.mark.parametrize(("damage", "name", "match", "recorded"), [
    pytest.param(damage, name, match, recorded, id=f"{case}-{'hashed' if recorded else 'legacy'}")
    for case, damage, name, with_hashes, without_hashes in CACHE_CASES
    for recorded, match in ((True, with_hashes), (False, without_hashes)) if match is not None])
def test_a_damaged_feature_cache_is_refused_in_one_line(tmp_path, capsys, damage, name, match, recorded):
    root = write_small_cache(tmp_path / "cache")
    if not recorded:
        forget_hashes(root / "manifest.json")
    damage(root)
    assert name in expect_one_line(lambda: FeatureCache.open(root), root, match)
    assert name in expect_cli_one_line(capsys, ["index", "--features", str(root), "--out", str(tmp_path / "index")],
                                       root, match)


def test_flipped_feature_bytes_are_refused_before_indexing(tmp_path, capsys):
    root = write_small_cache(tmp_path / "cache")
    flip(root / "images.npy", 16, at=0.9)  # well-formed floats, other values: only the hash can tell
    expect_one_line(lambda: FeatureCache.open(root), root / "images.npy", "damaged (its sha256 differs")
    expect_cli_one_line(capsys, ["index", "--features", str(root), "--out", str(tmp_path / "index")],
                        root / "images.npy", "damaged (its sha256 differs")
    assert not (tmp_path / "index" / "manifest.json").exists()


# ------------------------------------------------------------------------------------ the gallery index
@pytest.fixture(scope="module")
def gallery_index(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("gallery")
    ids = gallery_ids(per_category=8, shared=2)
    cache = write_gallery_cache(base / "cache", ids, random_features(ids, seed=1), cache_manifest("0" * 64))
    return build_index(cache, base / "index", show_progress=False).out


INDEX_CASES: list[tuple[str, Callable[[Path], None], str, str]] = [
    ("flipped 4 KB", lambda r: flip(r / "index.faiss", 4096), "index.faiss", "damaged (its sha256 differs"),
    ("truncated", lambda r: truncate(r / "index.faiss"), "index.faiss", "damaged or truncated"),
    ("manifest that is a list", lambda r: wrap_in_list(r / "manifest.json"), "manifest.json",
     "not an index manifest (a JSON array, expected an object)"),
]


@pytest.mark.parametrize(("damage", "name", "match"), [case[1:] for case in INDEX_CASES],
                         ids=[case[0] for case in INDEX_CASES])
def test_a_damaged_index_is_refused_in_one_line(tmp_path, capsys, gallery_index, damage, name, match):
    root = tmp_path / "index"
    shutil.copytree(gallery_index, root)
    damage(root)
    expect_one_line(lambda: GalleryIndex.load(root), root / name, match)
    expect_cli_one_line(capsys, ["search", "--index", str(root), "--combiner", "sum", "--reference", "D000",
                                 "--text", "is red", "--device", "cpu"], root / name, match)


def test_an_unhashed_damaged_index_cannot_return_cosine_scores_outside_minus_one_one(tmp_path, gallery_index):
    root = tmp_path / "index"
    shutil.copytree(gallery_index, root)
    forget_hashes(root / "manifest.json")
    flip(root / "index.faiss", 256, at=0.6)  # one whole stored vector of 64 floats, inverted
    index = GalleryIndex.load(root)
    queries = np.eye(64, dtype=np.float32)  # one query per axis: some axis meets the damaged floats
    expect_one_line(lambda: index.search(queries, len(index)), root / "index.faiss",
                    "which no cosine similarity can have")


# ------------------------------------------------------------------------------------ training runs
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """``(feature cache, run folder)`` of a one-epoch run, stopped before its second epoch (resumable)."""
    base = tmp_path_factory.mktemp("trained")
    cache = make_learnable_cache(base / "features", dim=DIM * 2, images={"train": 12, "val": 8})
    values = {"features": str(cache), "out": str(base / "run"), "combiner": "combiner", "loss": "triplet",
              "negatives": "random", "num_negatives": 4, "epochs": 2, "stop_after_epochs": 1, "batch_size": 8,
              "combiner_options": {"projection_dim": 8, "hidden_dim": 16}, "tensorboard": False, "seed": 1}
    train(load_config(None, values))
    return cache, base / "run"


@pytest.fixture
def run_copy(tmp_path, trained) -> tuple[Path, Path]:
    cache, run = trained
    shutil.copytree(run, tmp_path / "run")
    return cache, tmp_path / "run"


def rewrite_state(run: Path, change: Callable[[dict], None]) -> None:
    """Rewrite the trainer state as a faulty writer would: entries changed, its checksum updated to match."""
    path = run / "last" / "trainer_state.pt"
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)
    edit_json(run / "last" / "checksums.json", lambda c: c["files"].update({path.name: file_record(path)}))


TRAINING_CASES: list[tuple[str, Callable[[Path], None], str, str]] = [
    ("64 flipped bytes of the trainer state", lambda r: flip(r / "last" / "trainer_state.pt", 64),
     "last/trainer_state.pt", "damaged (its sha256 differs"),
    ("64 flipped bytes of the weights", lambda r: flip(r / "last" / "combiner.safetensors", 64, at=0.9),
     "last/combiner.safetensors", "damaged (its sha256 differs"),
    ("a trainer state without its entries", lambda r: rewrite_state(r, lambda s: [s.pop("rng"), s.pop("history")]),
     "last/trainer_state.pt", "the trainer state lacks rng, history"),
    ("a trainer state of the wrong shape", lambda r: rewrite_state(r, lambda s: s.update(epoch="one")),
     "last/trainer_state.pt", "the trainer state's 'epoch' is a str, expected int"),
]


@pytest.mark.parametrize(("damage", "name", "match"), [case[1:] for case in TRAINING_CASES],
                         ids=[case[0] for case in TRAINING_CASES])
def test_a_damaged_checkpoint_is_never_resumed(capsys, run_copy, damage, name, match):
    _, run = run_copy
    damage(run)
    expect_one_line(lambda: read_state(run), run / name, match)
    expect_cli_one_line(capsys, ["train", "--resume", "--out", str(run), "--device", "cpu"], run / name, match)


@pytest.mark.parametrize(("damage", "match"), [
    (lambda folder: flip(folder / "combiner.safetensors", 64, at=0.9), "damaged (its sha256 differs"),
    (lambda folder: edit_json(folder / "combiner.json", lambda m: m["config"].update(hidden_dim="big")),
     "cannot rebuild the combiner"),
], ids=["64 flipped bytes", "hidden_dim big"])
def test_a_damaged_combiner_is_never_evaluated(capsys, run_copy, damage, match):
    cache, run = run_copy
    damage(run / "best")
    name = "combiner.safetensors" if "sha256" in match else "combiner.json"
    expect_one_line(lambda: load_combiner(run / "best"), run / "best" / name, match)
    expect_cli_one_line(capsys, ["eval", "--features", str(cache), "--checkpoint", str(run), "--device", "cpu"],
                        run / "best" / name, match)
