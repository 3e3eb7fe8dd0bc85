"""Checkpoint folders are swapped atomically, recovered after a kill, and RNG states round-trip."""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pytest
import torch

from cirlab.engine.checkpoint import (
    CHECKSUMS_FILE,
    STATE_FILE,
    atomic_folder,
    capture_rng,
    has_state,
    read_state,
    recover_folder,
    restore_rng,
    write_checkpoint,
)
from cirlab.errors import CirlabError


def test_atomic_folder_replaces_the_whole_folder(tmp_path):
    target = tmp_path / "last"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("one")
        (tmp / "b.txt").write_text("one")
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("two")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    assert (target / "a.txt").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_failed_write_leaves_the_old_folder(tmp_path):
    target = tmp_path / "last"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("one")
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert (target / "a.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_recover_folder_after_a_kill_between_the_renames(tmp_path):
    target = tmp_path / "last"
    old = tmp_path / ".last.old"
    old.mkdir()
    (old / "a.txt").write_text("previous")
    (tmp_path / ".last.tmp").mkdir()
    recover_folder(target)
    assert (target / "a.txt").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def full_state(**changes):
    """A trainer state with every entry a resume reads, as the engine writes it."""
    return {"epoch": 3, "step": 30, "world_size": 1, "identity": {"seed": 0}, "optimizer": None, "scheduler": None,
            "scaler": None, "objective": {}, "rng": [capture_rng({}, torch.device("cpu"))],
            "history": [{"epoch": 1, "val/headline": 1.5, "lr": None}], "best": {}, **changes}


def test_state_round_trip(tmp_path):
    run = tmp_path / "run"
    assert not has_state(run)
    write_checkpoint(run / "last", lambda folder: (folder / "w.bin").write_bytes(b"w"), full_state())
    assert has_state(run)
    state = read_state(run)
    assert state["epoch"] == 3 and state["history"][0]["val/headline"] == 1.5
    assert (run / "last" / "w.bin").read_bytes() == b"w"


def test_checksums_record_every_file_of_the_folder(tmp_path):
    def save(folder):
        (folder / "w.bin").write_bytes(b"w")
        (folder / "sub").mkdir()
        (folder / "sub" / "x.json").write_text("{}")

    write_checkpoint(tmp_path / "last", save, full_state())
    checksums = json.loads((tmp_path / "last" / CHECKSUMS_FILE).read_text())
    assert sorted(checksums["files"]) == ["sub/x.json", STATE_FILE, "w.bin"]
    assert checksums["files"]["w.bin"] == {"sha256": hashlib.sha256(b"w").hexdigest(), "bytes": 1}


def flip_bytes(path, count=64):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + count] = bytes(b ^ 0x5A for b in data[middle:middle + count])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", [STATE_FILE, "w.bin"])
def test_flipped_bytes_in_any_file_of_the_checkpoint_are_refused(tmp_path, name):
    write_checkpoint(tmp_path / "last", lambda folder: (folder / "w.bin").write_bytes(bytes(200)), full_state())
    flip_bytes(tmp_path / "last" / name)
    with pytest.raises(CirlabError) as info:
        read_state(tmp_path)
    assert str(info.value) == (f"{tmp_path / 'last' / name}: damaged (its sha256 differs from the one checksums.json "
                               f"records: the file changed after it was written); it cannot be resumed; start the "
                               f"run again in a new folder")


def test_a_checkpoint_without_checksums_still_resumes(tmp_path):
    write_checkpoint(tmp_path / "last", lambda folder: None, full_state())
    (tmp_path / "last" / CHECKSUMS_FILE).unlink()  # written before checkpoints recorded hashes
    assert read_state(tmp_path)["epoch"] == 3


@pytest.mark.parametrize(("state", "match"), [
    (full_state(epoch="3"), "'epoch' is a str, expected int"),
    (full_state(rng=[]), "random-generator states do not match its 1 processes"),
    ({k: v for k, v in full_state().items() if k not in ("identity", "rng")}, "lacks rng, identity"),
])
def test_a_state_without_what_a_resume_reads_is_refused(tmp_path, state, match):
    write_checkpoint(tmp_path / "last", lambda folder: None, state)
    with pytest.raises(CirlabError, match=match) as info:
        read_state(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'last' / STATE_FILE}: ") and "\n" not in str(info.value)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_unreadable_state_is_a_one_line_error(tmp_path):
    (tmp_path / "last").mkdir()
    for garbage in (b"", b"\x80\x02not a pickle", bytes(range(256)) * 3, b"PK\x03\x04broken zip"):
        (tmp_path / "last" / "trainer_state.pt").write_bytes(garbage)
        with pytest.raises(CirlabError, match="unreadable trainer state"):
            read_state(tmp_path)


def test_rng_states_round_trip_through_a_file(tmp_path):
    generators = {"a": torch.Generator().manual_seed(1), "b": torch.Generator().manual_seed(2)}
    random.seed(4)
    np.random.seed(5)
    torch.manual_seed(6)
    state = capture_rng(generators, torch.device("cpu"))
    expected = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=generators["a"]),
                torch.rand(2, generator=generators["b"]))
    path = tmp_path / "rng.pt"
    torch.save(state, path)
    loaded = torch.load(path, weights_only=True)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    fresh = {"a": torch.Generator(), "b": torch.Generator()}
    restore_rng(loaded, fresh, torch.device("cpu"))
    again = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=fresh["a"]),
             torch.rand(2, generator=fresh["b"]))
    assert expected[:2] == again[:2]
    for a, b in zip(expected[2:], again[2:]):
        assert torch.equal(a, b)
