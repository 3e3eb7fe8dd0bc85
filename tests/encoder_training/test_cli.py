"""``cirlab pretrain`` and ``cirlab finetune`` through the command-line entry point."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cirlab.cli import main

FAST = ["--workers", "0", "--no-tensorboard", "--batch-size", "8", "--device", "cpu"]


def test_help_does_not_import_torch() -> None:
    code = ("import sys; from cirlab.cli import build_parser; import argparse; import cirlab.cli.pretrain as p, "
            "cirlab.cli.finetune as f; [m.add_arguments(argparse.ArgumentParser()) for m in (p, f)]; "
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_pretrain_without_tags_prints_one_line(tagged_data: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(shutil.copytree(tagged_data, tmp_path / "fiq"))
    shutil.rmtree(root / "tags")
    assert main(["pretrain", "--data", str(root), "--out", str(tmp_path / "run"), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cirlab: error: ") and "asin2attr.dress.train.json" in err


def test_finetune_from_unavailable_openai_weights_prints_one_line(tagged_data: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["finetune", "--data", str(tagged_data), "--model", "RN50x4", "--pretrained", "openai",
                 "--out", str(tmp_path / "run"), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "RN50x4" in err and "openai" in err


def test_finetune_needs_exactly_one_source(tagged_data: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["finetune", "--data", str(tagged_data), "--out", str(tmp_path / "run")])
    with pytest.raises(SystemExit):
        main(["finetune", "--data", str(tagged_data), "--out", str(tmp_path / "run"), "--model", "RN50x4",
              "--checkpoint", str(tmp_path)])


def test_finetune_negative_options_become_contrast_options(tmp_path: Path) -> None:
    from cirlab.cli import build_parser
    from cirlab.cli.finetune import contrast_options

    base = ["finetune", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--model", "cirlab-vit-tiny"]
    plain = contrast_options(build_parser().parse_args(base))
    assert (plain.negatives, plain.mines, plain.gather_batch) == ("in-batch", False, True)
    args = build_parser().parse_args([*base, "--negatives", "semi-hard", "--num-negatives", "4", "--refresh-every",
                                      "0", "--negatives-option", "margin=0.1", "--negatives-option",
                                      "near_duplicate_threshold=null", "--no-gather-batch"])
    options = contrast_options(args)
    assert (options.negatives, options.num_negatives, options.refresh_every, options.gather_batch) == (
        "semi-hard", 4, 0, False)
    assert options.negatives_options == {"margin": 0.1, "near_duplicate_threshold": None}


def test_finetune_refuses_bad_negative_options_in_one_line(tagged_data: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    base = ["finetune", "--data", str(tagged_data), "--out", str(tmp_path / "run"), "--model", "cirlab-vit-tiny",
            "--pretrained", "none", *FAST]
    assert main([*base, "--negatives", "hard", "--negatives-option", "topm=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown options ['topm']" in err
    assert main([*base, "--negatives", "hard", "--refresh-every", "-1"]) == 2
    assert "refresh interval must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit):
        main([*base, "--negatives-option", "no-equals-sign"])


@pytest.mark.slow
def test_pretrain_then_finetune_then_resume(tagged_data: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    pre, ft = tmp_path / "pre", tmp_path / "ft"
    assert main(["pretrain", "--data", str(tagged_data), "--out", str(pre), "--epochs", "1", "--lr", "1e-3",
                 "--pretrained", "none", *FAST]) == 0
    out = capsys.readouterr().out
    assert "pretrained cirlab-vit-tiny for 1 epochs" in out and "image→description: R@1" in out
    assert main(["finetune", "--data", str(tagged_data), "--checkpoint", str(pre), "--out", str(ft),
                 "--epochs", "1", "--lr", "1e-4", "--towers", "text", *FAST]) == 0
    out = capsys.readouterr().out
    assert "fine-tuned cirlab-vit-tiny (text towers" in out and "val R@10:" in out
    result = json.loads((ft / "result.json").read_text())
    assert result["trainable"] == "text" and result["source"]["checkpoint"] == str(pre.resolve())
    # A second run into the same folder is refused; --resume of a finished run changes nothing.
    assert main(["finetune", "--data", str(tagged_data), "--checkpoint", str(pre), "--out", str(ft),
                 "--epochs", "1", "--lr", "1e-4", "--towers", "text", *FAST]) == 2
    assert "--resume" in capsys.readouterr().err
    weights = load_file(str(ft / "model.safetensors"))
    assert main(["finetune", "--data", str(tagged_data), "--checkpoint", str(pre), "--out", str(ft),
                 "--epochs", "1", "--lr", "1e-4", "--towers", "text", "--resume", *FAST]) == 0
    resumed = load_file(str(ft / "model.safetensors"))
    assert all(torch.equal(resumed[name], weights[name]) for name in weights)
    # Resuming with a different schedule is refused, naming the option.
    assert main(["finetune", "--data", str(tagged_data), "--checkpoint", str(pre), "--out", str(ft),
                 "--epochs", "2", "--lr", "1e-4", "--towers", "text", "--resume", *FAST]) == 2
    assert "epochs: checkpoint 1, now 2" in capsys.readouterr().err
