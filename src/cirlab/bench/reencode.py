"""A combiner epoch from the feature cache against one that re-encodes every batch (CLIP4Cir's way).

CLIP4Cir's reference implementation trains its combiner with a frozen CLIP that still runs inside the
training loop: each step loads the batch's reference and target images, preprocesses them, encodes
them and the captions under ``no_grad``, and only then runs the combiner. cirlab encodes everything
once (``cirlab extract``) and trains from the cache. Both epochs here run the same combiner, loss
(CLIP4Cir's in-batch contrastive loss) and AdamW over the same batches of the tiny FashionIQ-layout
folder; the re-encoding one reads the images from disk through the same preprocessing as extraction
(target-pad, then the encoder's transform) and draws a caption form per triplet, as training does.

The encoder is ``cirlab-vit-tiny`` (64 px, 64-d), which makes encoding as cheap as it gets; with a GPU,
RN50x4 (random weights, 288 px, 640-d, the reference set-up) is measured too. ``break_even_epochs`` is
the one-off extraction time divided by what the cache saves per epoch.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F

from cirlab.bench.context import TINY_MODEL, BenchContext, TinyDataset
from cirlab.bench.report import BenchResult, Figure
from cirlab.bench.timing import Stat, round_ratio, time_rounds
from cirlab.bench.training import CombinerStep, StepBatch

NAME = "cache"
TITLE = "combiner epoch from the feature cache vs re-encoding images and captions every step"

#: Measured as well when the benchmark device is a GPU: CLIP4Cir's FashionIQ encoder, random weights.
GPU_MODEL = "RN50x4"


class EpochPair:
    """The two ways of running one epoch over the tiny data set's training triplets."""

    def __init__(self, ctx: BenchContext, tiny: TinyDataset, batch_size: int) -> None:
        from cirlab.combiners import build_combiner
        from cirlab.data import build_preprocess
        from cirlab.losses import build_loss
        from cirlab.training.data import load_training_data

        self.ctx, self.tiny, self.batch_size = ctx, tiny, batch_size
        self.data = load_training_data(tiny.cache, ["dress"], [0, 1, 2, 3], ctx.device)
        file_index = tiny.cache.triplets.file_index[self.data.positions]
        self.triplets = [tiny.triplets[int(i)] for i in file_index]  # aligned with self.data
        torch.manual_seed(ctx.seed)
        combiner = build_combiner("combiner", self.data.dim).to(ctx.device)
        self.step = CombinerStep(combiner, build_loss("contrastive"), self.data.gallery.features)
        self.preprocess = build_preprocess("targetpad", tiny.encoder.preprocess)
        self.generator = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
        self.rng = random.Random(ctx.seed)
        self.epoch = 0

    def batches(self) -> list[np.ndarray]:
        """This epoch's batches of triplet indices (the trainer's order, last partial batch dropped)."""
        from cirlab.training.data import epoch_batches

        self.epoch += 1
        return epoch_batches(len(self.data), epoch=self.epoch, seed=self.ctx.seed, batch_size=self.batch_size,
                             drop_last=True)

    def cached_epoch(self) -> None:
        """One epoch reading features from the cache (what ``cirlab train`` does)."""
        for indices in self.batches():
            b = self.data.batch(torch.from_numpy(indices), self.generator)
            self.step(StepBatch(b.reference, b.text, b.positives, b.categories))

    def reencoding_epoch(self) -> None:
        """One epoch loading, preprocessing and encoding every batch's images and captions."""
        for indices in self.batches():
            self.step(self.reencoded_batch(indices))

    def reencoded_batch(self, indices: np.ndarray) -> StepBatch:
        """The batch of the triplets at ``indices``, its images read from disk and encoded with its captions."""
        from cirlab.data import load_image
        from cirlab.data.captions import training_caption

        encoder, paths = self.tiny.encoder, self.tiny.image_paths
        triplets = [self.triplets[int(i)] for i in indices]
        references = torch.stack([self.preprocess(load_image(paths[t.reference])) for t in triplets])
        targets = torch.stack([self.preprocess(load_image(paths[t.target])) for t in triplets])
        texts = [training_caption(t.captions, self.rng) for t in triplets]
        rows = torch.from_numpy(indices).to(self.ctx.device)
        return StepBatch(encoder.encode_images(references), encoder.encode_texts(texts), self.data.positives[rows],
                         self.data.categories[rows], targets=F.normalize(encoder.encode_images(targets), dim=-1))


def run(ctx: BenchContext) -> BenchResult:
    """Epoch time both ways for the tiny encoder (and RN50x4 on a GPU), and the extraction break-even."""
    batch_size, repeats = ctx.pick(32, 16), ctx.pick(2, 1)
    models = [TINY_MODEL] + ([GPU_MODEL] if ctx.device.type == "cuda" else [])
    result = BenchResult(NAME, TITLE, settings={"models": models, "batch": batch_size, "repeats": repeats,
                                                "cached_epochs_per_round": 3,
                                                "loss": "contrastive (in-batch)", "image_loading": "main process"})
    for model in models:
        tiny = ctx.tiny_dataset(model)
        pair = EpochPair(ctx, tiny, batch_size)
        prefix = "" if model == TINY_MODEL else f"{model.lower()}."
        result.settings[f"{prefix}triplets"] = len(pair.data)
        result.settings[f"{prefix}image_size"] = tiny.encoder.image_size
        timings = time_rounds({"cached": pair.cached_epoch, "reencoding": pair.reencoding_epoch},
                              repeats=repeats, warmup=1, device=ctx.device, calls={"cached": 3})
        cached, reencoding = timings["cached"], timings["reencoding"]
        result.add(Figure.from_stat(f"{prefix}epoch_ratio", round_ratio(reencoding, cached), "x", "ratio",
                                    f"re-encoding epoch time ({model})", baseline="epoch from the feature cache"))
        saved = Stat.of(r - c for r, c in zip(reencoding.samples, cached.samples))
        extract_seconds = tiny.extract_seconds
        result.add(Figure.from_stat(f"{prefix}break_even_epochs", saved.map(lambda s, e=extract_seconds: e / s),
                                    "epochs", "ratio", "one-off extraction time over the time saved per epoch",
                                    baseline="re-encoding epoch minus cached epoch"))
        result.add(Figure.from_stat(f"{prefix}cached_epoch_ms", cached.stat.map(lambda t: t * 1e3), "ms", "absolute",
                                    f"epoch of {len(pair.data)} triplets from the cache"))
        result.add(Figure.from_stat(f"{prefix}reencoding_epoch_ms", reencoding.stat.map(lambda t: t * 1e3), "ms",
                                    "absolute", f"epoch of {len(pair.data)} triplets, re-encoding"))
        result.add(Figure(f"{prefix}extract_s", tiny.extract_seconds, "s", "absolute",
                          "cirlab extract: encoding every image and caption form once"))
    result.notes.append("images are read in the training process (no DataLoader workers) in both epochs")
    return result
