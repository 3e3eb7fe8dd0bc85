import json
import shutil

import pytest

from cirlab.errors import DataError
from cirlab.synth.config import SynthConfig
from cirlab.synth.output import META_FILE, PARTIAL_FILE, OutputState, output_state, stamp

TINY = SynthConfig.preset("tiny")


def test_missing_and_empty_folders_are_fresh(tmp_path):
    assert output_state(tmp_path / "new", TINY) is OutputState.FRESH
    assert output_state(tmp_path, TINY) is OutputState.FRESH


def test_a_file_or_a_foreign_folder_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        output_state(tmp_path / "file", TINY)
    with pytest.raises(DataError, match="holds no 'cirlab synth' output"):
        output_state(tmp_path, TINY)


def test_complete_output_of_same_config_is_recognised(tiny_synth, tmp_path):
    root, _ = tiny_synth
    assert output_state(root, TINY) is OutputState.COMPLETE
    with pytest.raises(DataError, match=r"another configuration: seed 0 \(asked 1\)"):
        output_state(root, TINY.with_overrides(seed=1))


def test_output_with_a_missing_file_is_incomplete(tiny_synth, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_synth[0], copy)
    next((copy / "images").iterdir()).unlink()
    assert output_state(copy, TINY) is OutputState.INCOMPLETE


def test_interrupted_output_is_redone_only_for_the_same_config(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / PARTIAL_FILE).write_text(json.dumps(stamp(TINY)))
    assert output_state(tmp_path, TINY) is OutputState.INCOMPLETE
    with pytest.raises(DataError, match="size 48 \\(asked 64\\)"):
        output_state(tmp_path, TINY.with_overrides(size=64))


def test_unreadable_or_foreign_record_is_refused(tmp_path):
    (tmp_path / META_FILE).write_text("{not json")
    with pytest.raises(DataError, match="cannot read"):
        output_state(tmp_path, TINY)
    (tmp_path / META_FILE).write_text(json.dumps({"generator": "someone else"}))
    with pytest.raises(DataError, match="is not a 'cirlab synth' record"):
        output_state(tmp_path, TINY)
    (tmp_path / META_FILE).write_text(json.dumps({**stamp(TINY), "version": 0}))
    with pytest.raises(DataError, match="generator version 0"):
        output_state(tmp_path, TINY)
