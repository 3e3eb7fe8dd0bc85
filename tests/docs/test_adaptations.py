"""The adaptation of documented commands: substitutions by whole word, synopses, overrides, exclusions."""

from __future__ import annotations

import shlex

from tests.docs.adaptations import EXCLUDED, drop_optional, substitute
from tests.docs.harness import Prepared, prepare
from tests.docs.markdown import Command

VALUES = {"reference": "B0ID", "free_port": "4321", "server_url": "http://127.0.0.1:4321"}


def command(text: str, source: str = "block") -> Command:
    return Command("docs/page.md", 1, tuple(shlex.split(text)), source)


def test_placeholders_are_replaced_as_whole_words_only() -> None:
    assert substitute("RUN", VALUES) == "runs/readme"
    assert substitute("RUN_DIR", VALUES) == "RUN_DIR"
    assert substitute("reference_id=B0EPMJTXOM", VALUES) == "reference_id=B0ID"
    assert substitute("/tmp/synth-default", VALUES) == "tmp/synth-default"
    assert substitute("http://127.0.0.1:8000/api/search", VALUES) == "http://127.0.0.1:4321/api/search"


def test_a_synopsis_loses_its_optional_parts() -> None:
    argv = ("cirlab", "synth", "--out", "DATA", "[--preset", "default|tiny]", "[--seed", "S]")
    assert drop_optional(argv) == ("cirlab", "synth", "--out", "DATA")


def test_overrides_are_appended_to_the_launcher_and_to_the_cirlab_command() -> None:
    prepared = prepare(command("torchrun --nproc_per_node 4 -m cirlab extract --data FIQ --model RN50x4 --out f"),
                       VALUES)
    assert isinstance(prepared, Prepared)
    assert prepared.launcher == ["--nproc_per_node", "4", "--standalone", "--nproc_per_node", "2"]
    assert prepared.argv == ["extract", "--data", "FIQ", "--model", "cirlab-rn-tiny", "--out", "f", "--workers", "0"]


def test_an_override_with_a_condition_applies_only_when_the_doc_says_so() -> None:
    plain = prepare(command("cirlab train --config synthetic --out r"), VALUES)
    reference = prepare(command("cirlab train --config fashioniq-rn50x4 --out r"), VALUES)
    assert isinstance(plain, Prepared) and isinstance(reference, Prepared)
    assert "precision=fp32" not in plain.argv and "precision=fp32" in reference.argv
    assert reference.argv.index("precision=fp32") > reference.argv.index("--out")  # appended: the later one wins


def test_environment_and_timing_wrapper_are_taken_off_and_exclusions_are_found() -> None:
    timed = prepare(command("LANG=C time .venv/bin/cirlab demo --out /tmp/demo"), VALUES)
    assert isinstance(timed, Prepared)
    assert timed.env == {"LANG": "C"} and timed.program == "cirlab"
    assert timed.argv[:3] == ["demo", "--out", "tmp/demo"]
    excluded = prepare(command("CIRLAB_SCREENSHOT=shot.png .venv/bin/pytest tests/serve -q"), VALUES)
    assert excluded in EXCLUDED


def test_a_served_command_gets_a_free_port_and_remembers_the_documented_one() -> None:
    served = prepare(command("cirlab serve --index i --checkpoint r --port 8765"), VALUES)
    assert isinstance(served, Prepared)
    assert served.program == "serve" and served.doc_port == 8765 and served.argv[-2:] == ["--port", "4321"]
