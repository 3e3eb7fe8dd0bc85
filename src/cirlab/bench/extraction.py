"""Feature extraction: each encoder's throughput, and the extraction pipeline against its forward passes alone.

``cirlab extract`` reads every image file, decodes and preprocesses it (target-pad, then the encoder's
transform), runs the image tower in batches and writes the features in resumable chunks, then encodes the
four caption forms of every triplet. Each round runs :func:`~cirlab.features.extract.extract_features` once
per encoder into a fresh folder and, right after it, the same encoder's forward passes alone over the same
images, already decoded and preprocessed in memory, in batches of the same size: the least extraction can
cost. Their ratio (``pipeline_over_forward``) is what reading, decoding and preprocessing the files adds;
near 1 the encoder dominates and more loader workers would not help.

The data set is a FashionIQ-layout folder of product-photo-sized PNGs (200-240 x 260-300 px) read in the
extracting process (no loader workers). Encoders have random weights: the same architecture and cost as
trained ones. cirlab's three small encoders are measured on every device; RN50x4 (288 px, 640-d, CLIP4Cir's
FashionIQ encoder) only on a GPU, where each encoder's image throughput is also set against RN50x4's (on a
CPU it encodes about one image per second, which would make this benchmark take minutes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cirlab.bench.context import BenchContext
from cirlab.bench.report import BenchResult, Figure
from cirlab.bench.timing import Stat, time_rounds

NAME = "extract"
TITLE = "feature extraction throughput per encoder vs its forward passes alone"

SMALL_MODELS: tuple[str, ...] = ("cirlab-vit-tiny", "cirlab-rn-tiny", "cirlab-vit-small")
#: Measured as well when the benchmark device is a GPU: CLIP4Cir's FashionIQ encoder, random weights.
GPU_MODEL = "RN50x4"
IMAGE_WIDTH, IMAGE_HEIGHT = (200, 240), (260, 300)
BATCH_SIZE = 32


class Extraction:
    """``extract_features`` with one encoder, each call into a fresh folder, keeping each call's timing."""

    def __init__(self, ctx: BenchContext, data_root: Path, model: str) -> None:
        from cirlab.encoders import EncoderSpec

        self.ctx, self.data_root, self.model = ctx, data_root, model
        self.spec = EncoderSpec(model=model, pretrained=None, seed=ctx.seed)
        self.timings: list[dict[str, Any]] = []  # the manifest's "timing" entry of every call

    def __call__(self) -> None:
        from cirlab.features.extract import extract_features

        out = self.ctx.workdir / f"extract-{self.model}-{len(self.timings)}"
        cache = extract_features(self.data_root, self.spec, out, batch_size=BATCH_SIZE, num_workers=0,
                                 device=str(self.ctx.device))
        self.timings.append(dict(cache.manifest["timing"]))


def preprocessed_images(ctx: BenchContext, data_root: Path, model: str) -> torch.Tensor:
    """``[N, 3, S, S]`` pixels of every image of ``data_root``, preprocessed for ``model`` as extraction does."""
    from cirlab.data import build_preprocess, load_image, open_dataset

    data = open_dataset(data_root)
    preprocess = build_preprocess("targetpad", ctx.encoder(model).preprocess)
    return torch.stack([preprocess(load_image(data.image_path(i))) for i in data.image_ids("dress", "train")])


def forward_passes(encoder: Any, pixels: torch.Tensor) -> None:
    """The image tower over ``pixels`` in batches of :data:`BATCH_SIZE` (no file reading, no writing)."""
    for start in range(0, len(pixels), BATCH_SIZE):
        encoder.encode_images(pixels[start:start + BATCH_SIZE])


def run(ctx: BenchContext) -> BenchResult:
    """Extraction and forward-pass time per encoder, in the same rounds."""
    from cirlab.bench.fixtures import write_tiny_fashioniq

    images, triplets, repeats = ctx.pick(128, 32), ctx.pick(64, 16), ctx.pick(2, 1)
    models = [*SMALL_MODELS] + ([GPU_MODEL] if ctx.device.type == "cuda" else [])
    root = write_tiny_fashioniq(ctx.workdir / "extract-fashioniq", images, triplets, seed=ctx.seed,
                                width=IMAGE_WIDTH, height=IMAGE_HEIGHT)
    extractions = {model: Extraction(ctx, root, model) for model in models}
    works: dict[str, Any] = {}
    for model in models:
        encoder, pixels = ctx.encoder(model), preprocessed_images(ctx, root, model).to(ctx.device)
        works[f"{model}.extract"] = extractions[model]
        works[f"{model}.forward"] = lambda e=encoder, p=pixels: forward_passes(e, p)
    timings = time_rounds(works, repeats=repeats, warmup=1, device=ctx.device)

    result = BenchResult(NAME, TITLE, settings={
        "models": models, "images": images, "triplets": triplets, "caption_forms": 4 * triplets,
        "image_px": f"{IMAGE_WIDTH[0]}-{IMAGE_WIDTH[1]}x{IMAGE_HEIGHT[0]}-{IMAGE_HEIGHT[1]}", "batch": BATCH_SIZE,
        "workers": 0, "repeats": repeats})
    measured = {model: extractions[model].timings[1:] for model in models}  # the first round warms up
    for model in models:
        prefix = model.lower()
        rounds = measured[model]
        forward = timings[f"{model}.forward"]
        pipeline = Stat.of(t["image_seconds"] / f for t, f in zip(rounds, forward.samples))
        result.add(Figure.from_stat(f"{prefix}.pipeline_over_forward", pipeline, "x", "ratio",
                                    f"{model}: extraction's image time (read, decode, preprocess, encode, write)",
                                    baseline="forward passes alone on the same images, preprocessed in memory"))
        result.add(Figure.from_stat(f"{prefix}.images_per_s", Stat.of(t["images_per_second"] for t in rounds),
                                    "images/s", "absolute", f"{model}: images encoded by cirlab extract"))
        result.add(Figure.from_stat(f"{prefix}.caption_forms_per_s", Stat.of(t["texts_per_second"] for t in rounds),
                                    "texts/s", "absolute", f"{model}: caption forms encoded (4 per triplet)"))
        result.add(Figure.from_stat(f"{prefix}.extract_s", timings[f"{model}.extract"].stat, "s", "absolute",
                                    f"{model}: the whole call (encoder set-up, images, captions, cache)"))
    if GPU_MODEL in models:
        reference = measured[GPU_MODEL]
        for model in SMALL_MODELS:
            speed = Stat.of(t["images_per_second"] / r["images_per_second"] for t, r in zip(measured[model], reference))
            result.add(Figure.from_stat(f"{model}.images_per_s_over_rn50x4", speed, "x", "ratio",
                                        f"{model}: images encoded per second",
                                        baseline=f"{GPU_MODEL} (random weights) on the same images"))
    else:
        result.notes.append(f"{GPU_MODEL} is measured on a GPU only (--device cuda)")
    return result
