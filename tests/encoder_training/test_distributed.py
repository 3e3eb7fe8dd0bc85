"""Both commands under torchrun with two CPU processes (gloo).

With ``local_loss`` and gathered features, two processes with batch 4 each see exactly the samples
one process with batch 8 sees (DistributedSampler interleaves one permutation), and averaging the
gradients over processes gives the full-batch gradient, so both runs must end with the same weights.
Fine-tuning with mined negatives adds a gallery encoded in shards and mined for the whole global batch
on every process: the negatives, their counters and the weights must again be those of one process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cirlab.encoder_training.finetuning import finetune
from cirlab.encoder_training.options import ContrastOptions
from cirlab.encoder_training.pretraining import pretrain
from cirlab.engine.runlog import read_csv as read_rows

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

COMMON = ["--epochs", "1", "--workers", "0", "--device", "cpu", "--no-tensorboard", "--seed", "3"]


def _torchrun(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "CIRLAB_NO_PROGRESS": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "cirlab", *args]
    # A session of its own, so that a hung launch is killed with its worker processes.
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _assert_same_weights(a: Path, b: Path) -> None:
    first, second = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=1e-4, atol=1e-5, msg=name)


def test_two_process_pretraining_equals_one_process_with_the_whole_batch(tagged_data: Path, tmp_path: Path) -> None:
    done = _torchrun(["pretrain", "--data", str(tagged_data), "--out", str(tmp_path / "ddp"),
                      "--batch-size", "4", "--lr", "1e-3", *COMMON])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("pretrained cirlab-vit-tiny") == 1  # only rank 0 reports
    steps = read_rows(tmp_path / "ddp" / "steps.csv")
    assert [int(r["step"]) for r in steps] == [1, 2, 3, 4]  # 32 pairs / (2 processes x 4)
    single = pretrain(tagged_data, tmp_path / "one", epochs=1, batch_size=8, lr=1e-3, num_workers=0,
                      device="cpu", tensorboard=False, seed=3)
    assert [float(r["loss"]) for r in steps] == pytest.approx(
        [float(r["loss"]) for r in read_rows(tmp_path / "one" / "steps.csv")], rel=1e-4)
    _assert_same_weights(tmp_path / "ddp", tmp_path / "one")
    assert single.metrics == pytest.approx({k.removeprefix("val/"): float(v) for k, v in
                                            read_rows(tmp_path / "ddp" / "epochs.csv")[0].items()
                                            if k.removeprefix("val/") in single.metrics})


def test_two_process_finetuning_equals_one_process_with_the_whole_batch(tagged_data: Path,
                                                                       pretrained_checkpoint: Path,
                                                                       tmp_path: Path) -> None:
    done = _torchrun(["finetune", "--data", str(tagged_data), "--checkpoint", str(pretrained_checkpoint),
                      "--out", str(tmp_path / "ddp"), "--batch-size", "4", "--lr", "1e-4", *COMMON])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("fine-tuned cirlab-vit-tiny") == 1
    finetune(tagged_data, tmp_path / "one", checkpoint=pretrained_checkpoint, epochs=1, batch_size=8, lr=1e-4,
             num_workers=0, device="cpu", tensorboard=False, seed=3)
    _assert_same_weights(tmp_path / "ddp", tmp_path / "one")


def test_two_process_finetuning_with_mined_negatives_equals_one_process(tagged_data: Path,
                                                                       pretrained_checkpoint: Path,
                                                                       tmp_path: Path) -> None:
    # 4 steps: the gallery is encoded before step 0 and refreshed before step 3; top_m draws from the generator.
    contrast = ContrastOptions(negatives="hard", num_negatives=3, refresh_every=3,
                               negatives_options={"top_m": 6, "near_duplicate_threshold": None})
    mining = ["--negatives", "hard", "--num-negatives", "3", "--refresh-every", "3",
              "--negatives-option", "top_m=6", "--negatives-option", "near_duplicate_threshold=null"]
    done = _torchrun(["finetune", "--data", str(tagged_data), "--checkpoint", str(pretrained_checkpoint),
                      "--out", str(tmp_path / "ddp"), "--batch-size", "4", "--lr", "1e-4", *mining, *COMMON])
    assert done.returncode == 0, done.stderr[-3000:]
    single = finetune(tagged_data, tmp_path / "one", checkpoint=pretrained_checkpoint, epochs=1, batch_size=8,
                      lr=1e-4, num_workers=0, device="cpu", tensorboard=False, seed=3, contrast=contrast)
    _assert_same_weights(tmp_path / "ddp", tmp_path / "one")
    ddp_steps, one_steps = read_rows(tmp_path / "ddp" / "steps.csv"), read_rows(tmp_path / "one" / "steps.csv")
    assert [float(r["loss"]) for r in ddp_steps] == pytest.approx([float(r["loss"]) for r in one_steps], rel=1e-4)
    assert [r["stale_steps"] for r in ddp_steps] == [r["stale_steps"] for r in one_steps] == ["0.0", "1.0", "2.0",
                                                                                                "0.0"]
    ddp_epoch = read_rows(tmp_path / "ddp" / "epochs.csv")[-1]
    for key, value in single.history[-1].items():
        if key.startswith("sampler/"):  # the same negatives, counted once (not once per process)
            assert float(ddp_epoch[key]) == pytest.approx(value), key
    assert float(ddp_epoch["mining/probe_drift"]) == pytest.approx(single.history[-1]["mining/probe_drift"],
                                                                   rel=1e-2, abs=1e-6)
