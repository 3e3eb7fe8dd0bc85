"""The demo's stage caching (with stand-in stages) and the real pipeline end to end at the tiny size."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from cirlab.compare.runner import COMPARISON_FILE
from cirlab.demo import pipeline
from cirlab.demo.options import DemoOptions
from cirlab.demo.pipeline import Stage, run_demo
from cirlab.demo.state import RUNNING, DemoState
from tests.compare.results import made_up_result


class StandIns:
    """Four stages that write a file into their folder and record their calls; options come from ``settings``."""

    def __init__(self) -> None:
        self.settings = {"data": {"size": 10}, "encoder": {"epochs": 2}, "features": {}, "compare": {"epochs": 3}}
        self.compare_reset: dict | None = None
        self.calls: list[str] = []
        self.fail: str | None = None

    def build(self, options, products):
        stages = []
        for name in ("data", "encoder", "features", "compare"):
            folder = options.out / name
            stages.append(Stage(name, f"stage {name}", folder, dict(self.settings[name]),
                                self._runner(name, folder, options.out, products),
                                reset_options=self.compare_reset if name == "compare" else None))
        return stages

    def _runner(self, name, folder, out, products):
        def run():
            self.calls.append(name)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "made.txt").write_text(json.dumps(self.settings[name]), encoding="utf-8")
            if self.fail == name:
                raise RuntimeError(f"{name} interrupted")
            if name == "compare":
                result = made_up_result(folder)
                (folder / COMPARISON_FILE).write_text(json.dumps(result.to_dict()), encoding="utf-8")
                result.files["report"] = folder / "report.md"
                products["comparison"] = result
            return f"{name} done"
        return run


@pytest.fixture
def stand_ins(monkeypatch):
    stages = StandIns()
    monkeypatch.setattr(pipeline, "build_stages", stages.build)
    return stages


def run(tmp_path):
    return run_demo(DemoOptions(out=tmp_path / "out"))


@pytest.fixture
def log(caplog):
    """Records the demo's status lines (``cirlab demo`` shows them on stderr)."""
    caplog.set_level(logging.INFO, logger="cirlab.demo")
    return caplog


def messages(log) -> list[str]:
    return [record.getMessage() for record in log.records if record.name.startswith("cirlab.demo")]


def test_a_second_run_skips_every_stage(stand_ins, tmp_path, log):
    first = run(tmp_path)
    assert stand_ins.calls == ["data", "encoder", "features", "compare"] and first.ran == stand_ins.calls
    log.clear()
    second = run(tmp_path)
    lines = messages(log)
    assert stand_ins.calls == ["data", "encoder", "features", "compare"]  # nothing ran again
    assert second.skipped == ["data", "encoder", "features", "compare"] and second.ran == []
    assert lines[0] == "[1/4] stage data: done earlier, skipping (data done)"
    assert sum("done earlier, skipping" in line for line in lines) == 4
    # recomputed from the run folders that comparison.json names
    assert second.comparison.strategies.keys() == first.comparison.strategies.keys()
    assert second.comparison.strategies["hard"].selected["R@10"] == first.comparison.strategies["hard"].selected["R@10"]


def test_a_changed_option_redoes_its_stage_and_every_later_one(stand_ins, tmp_path, log):
    run(tmp_path)
    stand_ins.calls.clear()
    (tmp_path / "out" / "encoder" / "stale.txt").write_text("old", encoding="utf-8")
    stand_ins.settings["encoder"] = {"epochs": 5}
    log.clear()
    result = run(tmp_path)
    assert stand_ins.calls == ["encoder", "features", "compare"] and result.skipped == ["data"]
    assert not (tmp_path / "out" / "encoder" / "stale.txt").exists()  # the old product was removed
    assert any("encoder was made with other options; removing it" in line for line in messages(log))
    assert json.loads((tmp_path / "out" / "encoder" / "made.txt").read_text()) == {"epochs": 5}


def test_an_interrupted_stage_resumes_in_its_folder(stand_ins, tmp_path, log):
    stand_ins.fail = "features"
    with pytest.raises(RuntimeError, match="features interrupted"):
        run(tmp_path)
    assert DemoState(tmp_path / "out").get("features").status == RUNNING
    (tmp_path / "out" / "features" / "partial.txt").write_text("half", encoding="utf-8")
    stand_ins.fail = None
    stand_ins.calls.clear()
    log.clear()
    run(tmp_path)
    assert stand_ins.calls == ["features", "compare"]
    assert (tmp_path / "out" / "features" / "partial.txt").exists()  # kept for the stage to resume from
    assert "[3/4] stage features: resuming the interrupted stage" in messages(log)


def test_a_change_outside_the_reset_options_keeps_the_folder(stand_ins, tmp_path):
    stand_ins.compare_reset = {"epochs": 3}
    run(tmp_path)
    (tmp_path / "out" / "compare" / "finished-run.txt").write_text("keep", encoding="utf-8")
    stand_ins.settings["compare"] = {"epochs": 3, "strategies": ["random"]}
    stand_ins.calls.clear()
    run(tmp_path)
    assert stand_ins.calls == ["compare"]
    assert (tmp_path / "out" / "compare" / "finished-run.txt").exists()


def test_stage_options_cover_what_changes_their_results(tmp_path):
    options = DemoOptions(out=tmp_path)
    stages = {s.name: s for s in pipeline.build_stages(options, {})}
    changed = {s.name: s for s in pipeline.build_stages(options.with_overrides(pretrain_epochs=9), {})}
    assert stages["encoder"].options != changed["encoder"].options
    assert stages["data"].options == changed["data"].options
    fewer = {s.name: s for s in pipeline.build_stages(options.with_overrides(strategies=["random"]), {})}
    assert fewer["compare"].options != stages["compare"].options
    assert fewer["compare"].reset_options == stages["compare"].reset_options
    assert stages["data"].options["images_per_category"] == 1200  # the default preset's
    bigger = {s.name: s for s in pipeline.build_stages(options.with_overrides(images_per_category=300), {})}
    assert bigger["data"].options["images_per_category"] == 300


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("demo") / "out"
        return run_demo(DemoOptions.tiny(out=out))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_tiny_demo_runs_every_stage_end_to_end(tiny_demo):
    out = tiny_demo.out
    assert tiny_demo.ran == ["data", "encoder", "features", "compare"]
    assert (out / "data" / "synth_meta.json").is_file()
    assert (out / "encoder" / "model.safetensors").is_file()
    assert (out / "features" / "manifest.json").is_file()
    assert tiny_demo.report == out / "compare" / "report.md" and tiny_demo.report.is_file()
    assert set(tiny_demo.comparison.strategies) == {"random", "hard"}
    assert all(s.seeds == [0, 1] for s in tiny_demo.comparison.strategies.values())  # the tiny demo: two seeds
    for name in ("recall_at_10.png", "training_curves.png", "negative_ledger.png", "comparison.json"):
        assert (out / "compare" / name).is_file()
    # the synthetic benchmark has test targets: checkpoints selected on val, reported on test
    assert (tiny_demo.comparison.reported, tiny_demo.comparison.selection) == ("test", "val")
    manifest = json.loads((out / "features" / "manifest.json").read_text(encoding="utf-8"))
    assert Path(manifest["data_root"]) == (out / "data").resolve()


@pytest.mark.slow
def test_tiny_demo_second_run_skips_every_stage(tiny_demo, capsys):
    from cirlab.cli import main

    code = main(["demo", "--tiny", "--out", str(tiny_demo.out)])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err.count("done earlier, skipping") == 4 and "done earlier" not in captured.out  # status
    assert "untrained sum" in captured.out and f"report: {tiny_demo.report}" in captured.out  # the result
    assert "(stages run: none; skipped: data, encoder, features, compare)" in captured.out


def test_an_unknown_strategy_is_refused_before_any_stage_runs(tmp_path):
    from cirlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown strategies \['bogus'\]"):
        run_demo(DemoOptions(out=tmp_path / "out", strategies=("random", "bogus")))
    assert not (tmp_path / "out" / "data").exists()


def test_the_cirr_demo_writes_cirrs_layout_and_ends_with_the_test_server_files(tmp_path):
    fashioniq = pipeline.build_stages(DemoOptions(out=tmp_path), {})
    cirr = pipeline.build_stages(DemoOptions.for_dataset("cirr", out=tmp_path), {})
    assert [s.name for s in fashioniq] == ["data", "encoder", "features", "compare"]
    assert [s.name for s in cirr] == ["data", "encoder", "features", "compare", "submission"]
    assert "format" not in fashioniq[0].options  # the FashionIQ demo's stage keys are those of earlier versions
    assert cirr[0].options["format"] == "cirr" and cirr[-1].folder == tmp_path / "submission"


def test_the_best_run_is_the_best_seed_of_the_best_strategy(tmp_path):
    result = made_up_result(tmp_path)  # hard is best; its seed 1 has one hit more on test; selected on val
    assert pipeline.best_run(result) == (tmp_path / "runs" / "hard" / "seed-1", "best")


@pytest.fixture(scope="module")
def tiny_cirr_demo(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("demo") / "cirr"
        return run_demo(DemoOptions.for_dataset("cirr", tiny=True, out=out))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_tiny_cirr_demo_reports_cirrs_metrics_and_writes_valid_submissions(tiny_cirr_demo):
    from cirlab.data import open_dataset
    from cirlab.evaluation.submission import METRICS, check_submission, dataset_pair_specs

    out = tiny_cirr_demo.out
    assert tiny_cirr_demo.ran == ["data", "encoder", "features", "compare", "submission"]
    manifest = json.loads((out / "features" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["dataset"] == "cirr"
    report = tiny_cirr_demo.report.read_text(encoding="utf-8")
    assert "Rs@1" in report and "the mean of R@5 and Rs@1" in report and "CIRR protocol" in report
    assert (tiny_cirr_demo.comparison.reported, tiny_cirr_demo.comparison.selection) == ("val", "last")  # no targets
    assert tiny_cirr_demo.submission == out / "submission"
    pairs, images = dataset_pair_specs(open_dataset(out / "data"), "test1")
    for metric, (name, _) in METRICS.items():
        assert check_submission(out / "submission" / name, pairs, images, metric=metric) == metric


@pytest.mark.slow
def test_tiny_cirr_demo_names_its_test_server_files(tiny_cirr_demo, capsys):
    from cirlab.cli import main

    assert main(["demo", "--dataset", "cirr", "--tiny", "--out", str(tiny_cirr_demo.out)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("done earlier, skipping") == 5
    assert f"test-server files: {tiny_cirr_demo.out / 'submission'}" in captured.out
