"""Mining while the encoders train: the gallery, its refresh schedule, the drift it logs, mined negatives against a
naive loop, and the state a resumed run takes back."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from cirlab.data import FashionIQ, build_preprocess, load_image
from cirlab.distributed import DistributedContext
from cirlab.encoder_training.datasets import split_triplets
from cirlab.encoder_training.loop import StepPosition
from cirlab.encoder_training.mining import PROBE_SIZE, GalleryMining, gallery_records
from cirlab.encoder_training.options import ContrastOptions, TrainingOptions
from cirlab.encoders import EncoderSpec, create_model

OPTIONS = TrainingOptions(num_workers=0, eval_batch_size=5, progress=False)


def _records(root: Path):
    dataset = FashionIQ(root)
    triplets = split_triplets(dataset, "train")
    return dataset, triplets, gallery_records(dataset, triplets, "error", ctx=DistributedContext(), num_workers=0)


def _mining(root: Path, **contrast):
    model, encoder_preprocess, _ = create_model(EncoderSpec(model="cirlab-vit-tiny", pretrained=None))
    preprocess = build_preprocess("targetpad", encoder_preprocess)
    _, _, records = _records(root)
    mining = GalleryMining(records, ContrastOptions(**{"negatives": "hard", "num_negatives": 3, **contrast}),
                           model=model, preprocess=preprocess, options=OPTIONS, ctx=DistributedContext(),
                           device=torch.device("cpu"))
    return mining, model, preprocess


def _perturb(model: torch.nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.visual.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))


def test_the_gallery_holds_every_train_image_once_and_finds_duplicates_by_pixels(tagged_data: Path,
                                                                               tmp_path: Path) -> None:
    root = Path(shutil.copytree(tagged_data, tmp_path / "fiq"))
    shutil.copy(root / "images" / "Dtr003.png", root / "images" / "Dtr099.png")  # same pixels, another id
    split = root / "image_splits" / "split.dress.train.json"
    split.write_text(json.dumps([*json.loads(split.read_text()), "Dtr099"]))
    dataset, triplets, records = _records(root)
    ids = [path.stem for path in records.paths]
    expected = [*dataset.image_ids("dress", "train"), *dataset.image_ids("shirt", "train")]
    assert ids == expected and len(records) == 33
    assert records.categories.tolist() == [0] * 17 + [1] * 16
    groups = records.duplicate_groups.tolist()
    assert groups[ids.index("Dtr003")] == groups[ids.index("Dtr099")] >= 0
    assert sum(group >= 0 for group in groups) == 2
    for n, triplet in enumerate(triplets):
        assert ids[int(records.positives[n])] == triplet.target
        assert ids[int(records.references[n])] == triplet.reference
        assert int(records.query_categories[n]) == dataset.categories.index(triplet.category)


def test_refreshes_follow_the_interval_and_log_staleness(tagged_data: Path) -> None:
    mining = _mining(tagged_data, refresh_every=3)[0]
    logged = [mining.prepare(StepPosition(step, 8)) for step in range(8)]
    assert [row["stale_steps"] for row in logged] == [0, 1, 2, 0, 1, 2, 0, 1]
    assert math.isnan(logged[0]["refresh_drift"])  # the first encoding has nothing to drift from
    assert all(math.isnan(row["refresh_drift"]) for n, row in enumerate(logged) if n % 3)
    assert logged[3]["refresh_drift"] == pytest.approx(0.0, abs=1e-6)  # the weights did not move
    stats = mining.epoch_stats()
    assert stats["mining/refreshes"] == 3 and stats["mining/steps_since_refresh"] == 2
    assert stats["time/refresh_s"] > 0
    assert mining.epoch_stats()["mining/refreshes"] == 0  # counted per epoch

    once = _mining(tagged_data, refresh_every=0)[0]
    assert [once.prepare(StepPosition(step, 8))["stale_steps"] for step in range(8)] == list(range(8))


def test_drift_is_one_minus_the_mean_cosine_between_old_and_new_features(tagged_data: Path) -> None:
    mining, model, preprocess = _mining(tagged_data, refresh_every=2)
    mining.prepare(StepPosition(0, 4))
    old = mining.gallery.features.clone()
    _perturb(model)
    assert mining.probe_drift() > 1e-4  # the probe sees the model move before the refresh does
    drift = mining.prepare(StepPosition(2, 4))["refresh_drift"]
    with torch.no_grad():
        new = torch.stack([F.normalize(model.encode_image(preprocess(load_image(path))[None])[0], dim=0)
                           for path in mining.records.paths])
    torch.testing.assert_close(mining.gallery.features, new, rtol=1e-4, atol=1e-5)
    assert drift == pytest.approx(float(1 - (old * new).sum(dim=1).mean()), abs=1e-5)
    assert drift > 1e-4
    assert mining.probe_drift() == pytest.approx(0.0, abs=1e-6)  # just refreshed
    assert len(mining.probe) == min(PROBE_SIZE, len(mining.records)) == 32


def test_hard_negatives_are_the_nearest_refreshed_images_other_than_the_target(tagged_data: Path) -> None:
    mining = _mining(tagged_data, refresh_every=0, negatives_options={"near_duplicate_threshold": None})[0]
    position = StepPosition(0, 1)
    mining.prepare(position)
    queries = F.normalize(torch.randn(5, mining.gallery.dim, generator=torch.Generator().manual_seed(1)), dim=-1)
    indices = torch.tensor([0, 7, 12, 20, 31])
    negatives, timing = mining.negatives(queries, indices, position)
    assert negatives.shape == (5, 3, mining.gallery.dim) and timing["sample_time_s"] >= 0
    gallery = mining.gallery.features
    for row, index in enumerate(indices.tolist()):
        target = int(mining.records.positives[index])
        scores = [(float(queries[row] @ gallery[item]), item) for item in range(len(gallery)) if item != target]
        nearest = [item for _, item in sorted(scores, reverse=True)[:3]]
        torch.testing.assert_close(negatives[row], gallery[nearest])
    stats = mining.epoch_stats()
    assert stats["sampler/queries"] == 5 and stats["sampler/negatives"] == 15


def test_sampler_counters_survive_a_refresh_within_the_epoch(tagged_data: Path) -> None:
    mining = _mining(tagged_data, refresh_every=1, negatives="random")[0]
    queries = F.normalize(torch.randn(4, 64, generator=torch.Generator().manual_seed(2)), dim=-1)
    for step in range(3):
        mining.prepare(StepPosition(step, 3))
        mining.negatives(queries, torch.arange(4), StepPosition(step, 3))
    assert mining.epoch_stats()["sampler/queries"] == 12


def test_a_loaded_state_restores_the_refreshed_gallery_without_encoding(tagged_data: Path) -> None:
    mining, model, preprocess = _mining(tagged_data, refresh_every=4)
    mining.prepare(StepPosition(0, 8))
    mining.prepare(StepPosition(1, 8))
    state = mining.state_dict()
    _perturb(model)  # a resumed run's weights are those of the end of the epoch, not of the refresh
    resumed = GalleryMining(mining.records, mining.contrast, model=model, preprocess=preprocess, options=OPTIONS,
                            ctx=DistributedContext(), device=torch.device("cpu"))
    resumed.load_state_dict(state)
    logged = resumed.prepare(StepPosition(2, 8))
    assert logged["stale_steps"] == 2 and math.isnan(logged["refresh_drift"])
    assert torch.equal(resumed.gallery.features, mining.gallery.features)
    assert resumed.epoch_stats()["mining/refreshes"] == 0
    assert resumed.generators().keys() == {"negatives"}
