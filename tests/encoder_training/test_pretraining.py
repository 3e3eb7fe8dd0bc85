"""Contrastive pretraining end to end on the tiny tagged data set, its loss, and exact resumption."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from cirlab.distributed import DistributedContext
from cirlab.encoder_training.loop import StepPosition
from cirlab.encoder_training.pretraining import DescriptionContrast, pretrain
from cirlab.encoders import EncoderSpec, create_model, load_encoder
from cirlab.engine.runlog import read_csv as read_rows
from cirlab.errors import ConfigError, DataError

FAST = {"batch_size": 8, "num_workers": 0, "tensorboard": False, "lr": 1e-3}


class Interrupted(Exception):
    """Stands for a run killed between epochs."""


def test_contrastive_loss_is_symmetric_cross_entropy_with_the_models_scale() -> None:
    model, _, tokenizer = create_model(EncoderSpec(model="cirlab-vit-tiny", pretrained=None))
    with torch.no_grad():
        model.logit_scale.fill_(math.log(20.0))
    objective = DescriptionContrast(tokenizer, torch.device("cpu"), DistributedContext(), None)
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    texts = ["a red dress", "a blue shirt", "a striped top", "a green dress with long sleeves"]
    loss = objective.loss(model, (images, texts), StepPosition(0, 1)).loss
    with torch.no_grad():
        image_f = F.normalize(model.encode_image(images), dim=-1)
        text_f = F.normalize(model.encode_text(tokenizer(texts)), dim=-1)
    expected = 0.0
    for i in range(4):  # image i against every text, and text i against every image
        row = [20.0 * float(image_f[i] @ text_f[j]) for j in range(4)]
        col = [20.0 * float(text_f[i] @ image_f[j]) for j in range(4)]
        expected += (math.log(sum(math.exp(v) for v in row)) - row[i]) / 8
        expected += (math.log(sum(math.exp(v) for v in col)) - col[i]) / 8
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)


def test_logit_scale_is_clamped_at_100() -> None:
    model, _, tokenizer = create_model(EncoderSpec(model="cirlab-vit-tiny", pretrained=None))
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    logged = DescriptionContrast(tokenizer, torch.device("cpu"), DistributedContext(), None).after_step(model)
    assert logged["logit_scale"] == pytest.approx(100.0)


@pytest.mark.slow
def test_pretraining_learns_the_descriptions(tagged_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = pretrain(tagged_data, out, model="cirlab-vit-tiny", epochs=3, seed=0, **{**FAST, "tensorboard": True})
    assert (result.train_images, result.heldout_images, result.steps) == (32, 16, 12)
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert result.history[-1]["train/loss"] < result.history[0]["train/loss"]
    for direction in ("i2t", "t2i"):
        assert result.metrics[f"{direction}_R@1"] >= 2 * result.chance[f"{direction}_R@1"]
    assert result.chance["i2t_R@1"] == pytest.approx(100 / result.heldout_descriptions)
    # Logs: one row per step and per epoch, with the step's time and the learned temperature.
    steps = read_rows(out / "steps.csv")
    assert [int(r["step"]) for r in steps] == list(range(1, 13)) and all(float(r["step_time_s"]) > 0 for r in steps)
    assert all(0 < float(r["logit_scale"]) <= 100 for r in steps)
    assert [int(r["epoch"]) for r in read_rows(out / "epochs.csv")] == [1, 2, 3]
    assert json.loads((out / "result.json").read_text())["metrics"] == result.metrics
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    # The output folder is an encoder checkpoint that cirlab.encoders loads, with the trained weights.
    encoder = load_encoder(EncoderSpec(model="cirlab-vit-tiny", checkpoint=out), device="cpu")
    trained = load_file(str(out / "model.safetensors"))
    assert torch.equal(encoder.model.state_dict()["logit_scale"], trained["logit_scale"])
    last = load_file(str(out / "last" / "model.safetensors"))
    assert torch.equal(trained["text_projection"], last["text_projection"])


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_weights(tagged_data: Path, tmp_path: Path) -> None:
    whole = pretrain(tagged_data, tmp_path / "whole", epochs=2, seed=1, **FAST)

    def stop_after_first_epoch(record: object) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        pretrain(tagged_data, tmp_path / "split", epochs=2, seed=1, on_epoch_end=stop_after_first_epoch, **FAST)
    assert not (tmp_path / "split" / "model.safetensors").exists()
    resumed = pretrain(tagged_data, tmp_path / "split", epochs=2, seed=1, resume=True, **FAST)
    assert resumed.resumed_from_epoch == 1 and [r["epoch"] for r in resumed.history] == [1, 2]
    a, b = load_file(str(tmp_path / "whole" / "model.safetensors")), load_file(str(tmp_path / "split" /
                                                                                     "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
    assert resumed.metrics == pytest.approx(whole.metrics)
    losses = [float(r["loss"]) for r in read_rows(tmp_path / "split" / "steps.csv")]
    assert losses == pytest.approx([float(r["loss"]) for r in read_rows(tmp_path / "whole" / "steps.csv")])


@pytest.mark.slow
def test_bf16_autocast_trains(tagged_data: Path, tmp_path: Path) -> None:
    result = pretrain(tagged_data, tmp_path / "run", epochs=1, precision="bf16", device="cpu", **FAST)
    assert math.isfinite(result.history[0]["train/loss"]) and result.steps == 4
    assert load_file(str(tmp_path / "run" / "model.safetensors"))["logit_scale"].dtype == torch.float32


def test_fp16_on_cpu_is_refused_before_anything_is_written(tagged_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fp16 autocast needs a GPU"):
        pretrain(tagged_data, tmp_path / "run", epochs=1, precision="fp16", device="cpu", **FAST)
    assert not (tmp_path / "run").exists()


def test_a_data_set_without_tags_is_refused_in_one_line(tagged_data: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(tagged_data, tmp_path / "fiq"))
    shutil.rmtree(root / "tags")
    with pytest.raises(DataError) as info:
        pretrain(root, tmp_path / "run", epochs=1, **FAST)
    assert "\n" not in str(info.value) and "tags/asin2attr" in str(info.value)
    assert not (tmp_path / "run").exists()


def test_real_fashioniq_files_without_tags_are_refused_in_one_line(real_fashioniq: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        pretrain(real_fashioniq, tmp_path / "run", epochs=1, **FAST)
    assert "\n" not in str(info.value) and "asin2attr.dress.train.json: tag file not found" in str(info.value)
