"""CLIP4Cir fine-tuning: its query, loss and evaluation against explicit loops, and runs end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from cirlab.data import FashionIQ, build_preprocess, eval_caption, load_image
from cirlab.distributed import DistributedContext
from cirlab.encoder_training.finetuning import (
    ComposedRetrieval,
    CompositionContrast,
    CompositionNet,
    finetune,
    set_trainable,
)
from cirlab.encoder_training.loop import StepPosition
from cirlab.encoder_training.options import ContrastOptions, TrainingOptions
from cirlab.encoders import EncoderSpec, create_model
from cirlab.engine.runlog import read_csv
from cirlab.errors import ConfigError, WeightsUnavailableError

FAST = {"batch_size": 8, "num_workers": 0, "tensorboard": False}


def _tiny(name: str = "cirlab-vit-tiny"):
    return create_model(EncoderSpec(model=name, pretrained=None))


def naive_composition_loss(model, tokenizer, reference, captions, target, mined=None) -> float:
    """The batch's mean cross-entropy, one query at a time: the normalised sum of each reference's and caption's
    features against every target of the batch (and the query's own mined negatives), logit scale 100."""
    with torch.no_grad():
        ref_f, tgt_f = model.encode_image(reference), model.encode_image(target)
        txt_f = model.encode_text(tokenizer(captions))
    count, expected = len(captions), 0.0
    for i in range(count):
        query = (ref_f[i] + txt_f[i]) / (ref_f[i] + txt_f[i]).norm()
        logits = [100.0 * float(query @ (tgt_f[j] / tgt_f[j].norm())) for j in range(count)]
        if mined is not None:
            logits += [100.0 * float(query @ negative) for negative in mined[i]]
        expected += (math.log(sum(math.exp(v - max(logits)) for v in logits)) + max(logits) - logits[i]) / count
    return expected


def test_loss_is_cross_entropy_of_summed_features_against_the_batch_targets() -> None:
    model, _, tokenizer = _tiny()
    generator = torch.Generator().manual_seed(0)
    reference, target = torch.randn(3, 3, 64, 64, generator=generator), torch.randn(3, 3, 64, 64, generator=generator)
    captions = ["Is red and has stripes", "", "Is blue"]
    objective = CompositionContrast(tokenizer, torch.device("cpu"), DistributedContext(), None)
    loss = objective.loss(CompositionNet(model), (reference, captions, target, torch.arange(3)),
                          StepPosition(0, 1)).loss
    expected = naive_composition_loss(model, tokenizer, reference, captions, target)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-4)


class FixedNegatives:
    """Stands for the gallery mining: the same negatives for every query batch, and what it was asked."""

    step_stats = ("stale_steps",)

    def __init__(self, features: torch.Tensor) -> None:
        self.features, self.prepared, self.asked = features, [], []

    def prepare(self, position: StepPosition) -> dict[str, float]:
        self.prepared.append(position)
        return {"stale_steps": 0.0}

    def negatives(self, queries: torch.Tensor, indices: torch.Tensor, position: StepPosition):
        self.asked.append((queries.requires_grad, indices.tolist()))
        return self.features, {}


def test_mined_negatives_are_extra_columns_of_each_querys_cross_entropy() -> None:
    model, _, tokenizer = _tiny()
    generator = torch.Generator().manual_seed(1)
    reference, target = torch.randn(3, 3, 64, 64, generator=generator), torch.randn(3, 3, 64, 64, generator=generator)
    captions = ["Is red and has stripes", "", "Is blue"]
    mined = F.normalize(torch.randn(3, 2, 64, generator=generator), dim=-1)  # k = 2 per query
    mining = FixedNegatives(mined)
    objective = CompositionContrast(tokenizer, torch.device("cpu"), DistributedContext(), None, mining=mining)
    output = objective.loss(CompositionNet(model), (reference, captions, target, torch.tensor([4, 0, 2])),
                            StepPosition(5, 9))
    assert mining.prepared == [StepPosition(5, 9)] and mining.asked == [(True, [4, 0, 2])]
    assert output.stats == {"stale_steps": 0.0} and objective.step_stats == ("stale_steps",)
    expected = naive_composition_loss(model, tokenizer, reference, captions, target, mined)
    assert float(output.loss.detach()) == pytest.approx(expected, rel=1e-4)


def test_set_trainable_selects_towers_and_fixes_the_logit_scale() -> None:
    model, _, _ = _tiny()
    visual = {id(p) for p in model.visual.parameters()}
    for towers in ("both", "image", "text"):
        set_trainable(model, towers)
        assert not model.logit_scale.requires_grad
        for param in model.parameters():
            if param is model.logit_scale:
                continue
            in_visual = id(param) in visual
            assert param.requires_grad == (towers == "both" or (towers == "image") == in_visual)
    with pytest.raises(ConfigError, match="unknown towers"):
        set_trainable(model, "neither")


def test_val_recall_matches_a_loop_over_single_images(tagged_data: Path) -> None:
    model, encoder_preprocess, tokenizer = _tiny()
    preprocess = build_preprocess("targetpad", encoder_preprocess)
    dataset = FashionIQ(tagged_data, ["dress", "shirt"])
    options = TrainingOptions(num_workers=0, eval_batch_size=5)
    metrics = ComposedRetrieval(dataset, tokenizer, preprocess, device=torch.device("cpu"), options=options)(model)
    with torch.no_grad():
        for category in ("dress", "shirt"):
            gallery = dataset.image_ids(category, "val")
            images = torch.stack([preprocess(load_image(dataset.image_path(i))) for i in gallery])
            features = {i: model.encode_image(images[n:n + 1])[0] for n, i in enumerate(gallery)}
            hits = {1: 0, 10: 0}
            triplets = dataset.triplets(category, "val")
            texts = model.encode_text(tokenizer([eval_caption(t.captions) for t in triplets]))
            for t, text in zip(triplets, texts):
                query = F.normalize(features[t.reference] + text, dim=0)
                scores = {i: float(query @ F.normalize(f, dim=0)) for i, f in features.items()}
                rank = sum(s > scores[t.target] + 1e-6 for s in scores.values())
                for k in hits:
                    hits[k] += rank < k
            for k in hits:
                assert metrics[f"{category}_R@{k}"] == pytest.approx(100.0 * hits[k] / len(triplets))
    assert metrics["R@1"] == pytest.approx((metrics["dress_R@1"] + metrics["shirt_R@1"]) / 2)
    assert metrics["R@mean"] == pytest.approx((metrics["R@10"] + metrics["R@50"]) / 2)


def test_real_clip_weights_that_cannot_be_downloaded_fail_in_one_line(tagged_data: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsUnavailableError) as info:
        finetune(tagged_data, tmp_path / "run", model="RN50x4", pretrained="openai", epochs=1, **FAST)
    assert "\n" not in str(info.value) and "RN50x4" in str(info.value)
    assert not (tmp_path / "run" / "run.json").exists()  # a retry is not refused as an existing run


def test_starting_weights_must_be_given_consistently(tagged_data: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--checkpoint folder or a --model"):
        finetune(tagged_data, tmp_path / "a", model=None)
    with pytest.raises(ConfigError, match="unknown towers"):
        finetune(tagged_data, tmp_path / "b", model="cirlab-vit-tiny", pretrained=None, towers="all")


@pytest.mark.slow
def test_finetune_from_a_pretrain_checkpoint(tagged_data: Path, pretrained_checkpoint: Path, tmp_path: Path) -> None:
    pre = pretrained_checkpoint
    result = finetune(tagged_data, tmp_path / "ft", checkpoint=pre, epochs=2, lr=2e-4, **FAST)
    assert result.source["checkpoint"] == str(pre.resolve())
    assert result.train_triplets == 32 and result.steps == 8
    assert result.val_queries == {"dress": 8, "shirt": 8} and sum(result.outside_gallery.values()) == 0
    assert set(result.before) == set(result.after) and "R@mean" in result.after
    assert result.chance["dress_R@1"] == pytest.approx(100 / 8)
    assert result.history[-1]["train/loss"] < result.history[1]["train/loss"]
    assert result.after["R@1"] > result.chance["R@1"]
    # In-batch only: nothing mined, no mining columns, and the identity of runs from before mining existed.
    assert result.contrast["negatives"] == "in-batch" and result.gallery_size == 0
    assert list(read_csv(tmp_path / "ft" / "steps.csv")[0]) == ["epoch", "step", "lr", "loss", "grad_norm",
                                                                 "step_time_s"]
    assert "contrast" not in json.loads((tmp_path / "ft" / "run.json").read_text())["identity"]
    loaded, _, _ = create_model(EncoderSpec(model="cirlab-vit-tiny", checkpoint=tmp_path / "ft"))
    assert loaded.logit_scale.item() == pytest.approx(
        create_model(EncoderSpec(model="cirlab-vit-tiny", checkpoint=pre))[0].logit_scale.item())


@pytest.mark.slow
def test_finetune_a_randomly_initialised_resnet_image_tower_only(tagged_data: Path, tmp_path: Path) -> None:
    result = finetune(tagged_data, tmp_path / "ft", model="cirlab-rn-tiny", pretrained=None, towers="image",
                      epochs=1, lr=1e-4, **FAST)
    start, _, _ = _tiny("cirlab-rn-tiny")
    end, _, _ = create_model(EncoderSpec(model="cirlab-rn-tiny", checkpoint=tmp_path / "ft"))
    assert result.source == {"model": "cirlab-rn-tiny", "pretrained": None, "checkpoint": None, "seed": 0}
    assert torch.equal(start.token_embedding.weight, end.token_embedding.weight)  # text tower untouched
    assert not torch.equal(start.visual.conv1.weight, end.visual.conv1.weight)  # image tower trained


class Interrupted(Exception):
    """Stands for a run killed between epochs."""


@pytest.mark.slow
def test_a_mining_run_logs_its_staleness_and_resumes_exactly(tagged_data: Path, pretrained_checkpoint: Path,
                                                             tmp_path: Path) -> None:
    # 32 triplets at batch 8: 4 steps per epoch, so the refresh of step 3 is the one the resumed epoch mines from.
    contrast = ContrastOptions(negatives="hard", num_negatives=3, refresh_every=3,
                               negatives_options={"top_m": 6, "near_duplicate_threshold": None})
    common = {"checkpoint": pretrained_checkpoint, "epochs": 2, "lr": 1e-4, "seed": 2, "contrast": contrast, **FAST}
    whole = finetune(tagged_data, tmp_path / "whole", **common)
    assert whole.gallery_size == 32 and whole.contrast["refresh_every"] == 3
    steps = read_csv(tmp_path / "whole" / "steps.csv")
    assert [float(r["stale_steps"]) for r in steps] == [0, 1, 2, 0, 1, 2, 0, 1]
    assert [r["refresh_drift"] != "" for r in steps] == [False, False, False, True, False, False, True, False]
    first, second = whole.history[1], whole.history[2]
    assert (first["mining/refreshes"], second["mining/refreshes"]) == (2, 1)
    assert first["mining/probe_drift"] > 0 and first["mining/steps_since_refresh"] == 1
    assert first["sampler/queries"] == 32 and first["sampler/negatives"] == 96

    def stop_after_first_epoch(record: dict) -> None:
        if record["epoch"] == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        finetune(tagged_data, tmp_path / "split", on_epoch_end=stop_after_first_epoch, **common)
    resumed = finetune(tagged_data, tmp_path / "split", resume=True, **common)
    assert resumed.resumed_from_epoch == 1
    a, b = load_file(str(tmp_path / "whole" / "model.safetensors")), load_file(str(tmp_path / "split" /
                                                                                     "model.safetensors"))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
    logged = ["loss", "stale_steps", "refresh_drift"]
    assert [[r[key] for key in logged] for r in read_csv(tmp_path / "split" / "steps.csv")] == \
        [[r[key] for key in logged] for r in steps]
    assert {k: v for k, v in resumed.history[2].items() if k.startswith(("sampler/", "mining/"))} == \
        {k: v for k, v in second.items() if k.startswith(("sampler/", "mining/"))}
    # The mining options are part of the run: a resume with another interval is refused.
    with pytest.raises(ConfigError, match="contrast"):
        finetune(tagged_data, tmp_path / "split", resume=True,
                 **{**common, "contrast": ContrastOptions(**{**contrast.__dict__, "refresh_every": 2})})
