"""The demo's stage record: chained keys, the state file's round trip, and an unreadable file."""

from __future__ import annotations

import json

import pytest

from cirlab.demo.state import COMPLETE, RUNNING, STATE_FILE, DemoState, stage_key
from cirlab.errors import CacheMismatchError


def test_keys_depend_on_the_options_and_on_the_stage_before():
    first = stage_key({"a": 1, "b": [1, 2]}, None)
    assert first == stage_key({"b": [1, 2], "a": 1}, None)  # key order does not matter
    assert first != stage_key({"a": 2, "b": [1, 2]}, None)
    assert stage_key({"x": 1}, first) != stage_key({"x": 1}, stage_key({"a": 2, "b": [1, 2]}, None))
    assert len(first) == 16


def test_records_survive_a_reload(tmp_path):
    state = DemoState(tmp_path)
    state.start("data", "k1", "r1", {"size": 3})
    assert DemoState(tmp_path).get("data").status == RUNNING
    state.complete("data", "3 images", 1.234)
    state.start("encoder", "k2", "r2", {})
    again = DemoState(tmp_path)
    record = again.get("data")
    assert (record.key, record.reset_key, record.status, record.summary, record.seconds) == \
        ("k1", "r1", COMPLETE, "3 images", 1.2)
    assert record.options == {"size": 3} and record.finished
    assert again.get("encoder").status == RUNNING and again.get("features") is None
    again.forget("encoder")
    assert DemoState(tmp_path).get("encoder") is None


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format_version": 99, "stages": {}}),
                                     json.dumps({"format_version": 1, "stages": {"data": {"key": 1}}})])
def test_an_unreadable_record_is_one_line_naming_the_file(tmp_path, content):
    (tmp_path / STATE_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(CacheMismatchError, match=f"{STATE_FILE}: unreadable demo record") as error:
        DemoState(tmp_path)
    assert "\n" not in str(error.value)
