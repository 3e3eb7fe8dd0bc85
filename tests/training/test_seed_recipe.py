"""The seed system's shipped recipes: their values, their loss against torch's, their sampler, and runs of both."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from cirlab import cli
from cirlab.combiners import build_combiner, load_combiner
from cirlab.features.cache import FeatureCache
from cirlab.losses import build_loss
from cirlab.negatives import BatchInfo, Gallery, build_sampler
from cirlab.training.config import load_config
from cirlab.training.data import load_training_data
from tests.training.fixtures import make_learnable_cache

FIQ = "seed-fashioniq-rn50x4"
SYNTHETIC = "seed-synthetic"
CATEGORIES = ("dress", "shirt", "toptee")


@pytest.fixture(scope="module")
def rn50x4_sized_cache(tmp_path_factory):
    """A tiny cache of FashionIQ's three categories with RN50x4's feature size, d = 640."""
    return make_learnable_cache(tmp_path_factory.mktemp("cache") / "features", dim=640, categories=CATEGORIES,
                                images={"train": 24, "val": 12})


def test_the_fashioniq_recipe_holds_the_seeds_values() -> None:
    config = load_config(FIQ, {"features": "c", "out": "r"}).validate()
    assert config.categories == list(CATEGORIES)
    assert (config.combiner, config.combiner_options) == ("attention-fusion", {"variant": "seed", "hidden_dim": 512})
    assert (config.loss, config.loss_options) == ("triplet", {"margin": 0.2, "distance": "euclidean",
                                                              "reduction": "mean"})
    assert (config.negatives, config.negatives_options, config.num_negatives) == ("random", {}, 1)
    assert (config.lr, config.weight_decay, config.schedule, config.warmup_steps, config.grad_clip) == (
        1e-4, 0.0, "constant", 0, 0.0)
    assert (config.batch_size, config.epochs, config.precision) == (64, 20, "fp32")
    combiner = build_combiner(config.combiner, 640, **config.combiner_options)
    assert sum(p.numel() for p in combiner.parameters()) == 1_641_089


def test_the_synthetic_recipe_differs_only_in_width_categories_and_evaluation() -> None:
    fiq = load_config(FIQ, {"features": "c", "out": "r"}).validate().to_dict()
    synthetic = load_config(SYNTHETIC, {"features": "c", "out": "r"}).validate().to_dict()
    differences = {key for key in fiq if fiq[key] != synthetic[key]}
    assert differences == {"categories", "combiner_options", "eval_every"}
    assert synthetic["combiner_options"] == {"variant": "seed", "hidden_dim": 51}  # round(64 * 512 / 640)
    assert synthetic["categories"] is None  # every cached category: the whole training image set


def test_the_loss_is_torchs_triplet_margin_loss_on_the_trainers_inputs() -> None:
    config = load_config(FIQ, {"features": "c", "out": "r"})
    loss = build_loss(config.loss, **config.loss_options)
    torch.manual_seed(0)
    combiner = build_combiner(config.combiner, 640, **config.combiner_options)
    queries = combiner(torch.randn(64, 640), torch.randn(64, 640))
    assert torch.allclose(queries.norm(dim=1), torch.ones(64), atol=1e-6)
    gallery = F.normalize(torch.randn(128, 640), dim=-1)  # the trainer's gallery is L2-normalised
    positives, negatives = gallery[:64].clone(), gallery[64:]
    positives[:32] = F.normalize(queries[:32].detach() + 0.02 * torch.randn(32, 640), dim=-1)  # some easy triplets

    output = loss(queries, positives, negatives[:, None, :])
    assert 0 < output.stats["active_fraction"] < 1  # both sides of the hinge are exercised
    ours = output.loss
    theirs = torch.nn.TripletMarginLoss(margin=0.2)(queries, positives, negatives)
    assert torch.allclose(ours, theirs, rtol=1e-6, atol=1e-8)
    ours_grads = torch.autograd.grad(ours, list(combiner.parameters()), retain_graph=True)
    theirs_grads = torch.autograd.grad(theirs, list(combiner.parameters()), retain_graph=True)
    for a, b in zip(ours_grads, theirs_grads):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-9)
    # The one difference is the euclidean distance re-normalising its (already unit) inputs; without it, the
    # same eps=1e-6 inside the pairwise distance makes the two losses equal bit for bit.
    plain = build_loss("triplet", margin=0.2, distance={"name": "euclidean", "normalize": False}, reduction="mean")
    assert torch.equal(plain(queries, positives, negatives[:, None, :]).loss, theirs)


def test_random_negatives_come_from_the_whole_training_gallery(rn50x4_sized_cache) -> None:
    config = load_config(FIQ, {"features": str(rn50x4_sized_cache), "out": "r"})
    cache = FeatureCache.open(rn50x4_sized_cache)
    data = load_training_data(cache, config.categories, config.caption_forms, torch.device("cpu"))
    gallery = data.gallery
    assert len(gallery) == 3 * 24  # every training image of the three categories
    assert torch.allclose(gallery.features.norm(dim=1), torch.ones(len(gallery)), atol=1e-5)
    sampler = build_sampler(config.negatives, Gallery(gallery.features, gallery.categories, gallery.duplicate_groups),
                            **config.negatives_options)
    generator = torch.Generator().manual_seed(0)
    positives, categories = data.positives, data.categories
    draws = torch.cat([sampler.sample(torch.randn(len(positives), 640), positives, BatchInfo(categories=categories),
                                      config.num_negatives, generator) for _ in range(20)], dim=1)
    assert draws.shape == (len(positives), 20)
    assert not (draws == positives[:, None]).any()
    # Unlike, as far as its description says, the seed's draws: exact duplicates of the target are excluded too.
    groups = gallery.duplicate_groups
    assert (groups[positives] >= 0).any()
    assert not ((groups[draws] == groups[positives][:, None]) & (groups[positives][:, None] >= 0)).any()
    assert (gallery.categories[draws] != categories[:, None]).any()  # not only the query's own category
    assert len(torch.unique(draws)) > 0.9 * len(gallery)


def test_cirlab_train_runs_the_fashioniq_recipe_on_a_640_d_cache(rn50x4_sized_cache, tmp_path) -> None:
    out = tmp_path / "seed"
    assert cli.main(["train", "--config", FIQ, "--features", str(rn50x4_sized_cache), "--out", str(out),
                     "--epochs", "1", "--no-tensorboard"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["epochs_completed"] == 1
    saved = json.loads((out / "config.json").read_text())
    assert saved["combiner_options"] == {"variant": "seed", "hidden_dim": 512} and saved["batch_size"] == 64
    combiner = load_combiner(out / "best")
    assert combiner.config() == {"name": "attention-fusion", "dim": 640, "variant": "seed", "hidden_dim": 512}


def test_the_synthetic_recipe_trains_an_epoch(tmp_path) -> None:
    cache = make_learnable_cache(tmp_path / "features", dim=64, categories=CATEGORIES, images={"train": 24, "val": 12})
    out = tmp_path / "seed"
    assert cli.main(["train", "--config", SYNTHETIC, "--features", str(cache), "--out", str(out), "--epochs", "1",
                     "--no-tensorboard"]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs_completed"] == 1
    assert load_combiner(out / "best").config()["hidden_dim"] == 51
