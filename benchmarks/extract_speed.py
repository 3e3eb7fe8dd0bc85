"""Extraction throughput of cirlab's small encoders and of RN50x4 (random init) on a tiny data set.

Writes a FashionIQ-layout data set of random product-sized images (about 200x260 px, as FashionIQ's
photos), runs `cirlab.features.extract_features` once per model into a temporary folder and prints
images/s and captions/s from each cache's manifest, with each model's speed relative to RN50x4.
RN50x4 runs with random weights (`pretrained=None`): the same architecture and cost as the
reference `openai` weights, which cannot be downloaded offline. Every run also checks the cache it
wrote (feature dimension, one row per image, finite values).

    .venv/bin/python benchmarks/extract_speed.py                 # all models, 48 images
    .venv/bin/python benchmarks/extract_speed.py --images 256 --device cuda --precision bf16

This is a measurement, not a test: figures depend on the machine and on its load at the time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CIRLAB_NO_PROGRESS", "1")

DEFAULT_MODELS = ("cirlab-vit-tiny", "cirlab-rn-tiny", "cirlab-vit-small", "RN50x4")


def write_dataset(root: Path, images: int, seed: int = 0) -> Path:
    """One category (dress), ``images`` images split over train/val/test, one triplet per consecutive pair."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    ids = [f"B{n:08d}" for n in range(images)]
    for image_id in ids:
        width, height = int(rng.integers(180, 240)), int(rng.integers(240, 300))
        pixels = (rng.integers(0, 64, size=(height, width, 3)) + rng.integers(0, 192, size=3)).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(root / "images" / f"{image_id}.jpg", quality=90)
    thirds = {"train": ids[: images // 2], "val": ids[images // 2: 3 * images // 4], "test": ids[3 * images // 4:]}
    for split, split_ids in thirds.items():
        (root / "image_splits").mkdir(exist_ok=True)
        (root / "captions").mkdir(exist_ok=True)
        (root / "image_splits" / f"split.dress.{split}.json").write_text(json.dumps(split_ids))
        triplets = [{"candidate": a, "target": b, "captions": ["is longer and darker", "has short sleeves"]}
                    for a, b in itertools.pairwise(split_ids)]
        if split == "test":
            triplets = [{k: v for k, v in t.items() if k != "target"} for t in triplets]
        (root / "captions" / f"cap.dress.{split}.json").write_text(json.dumps(triplets))
    return root


def measure(data: Path, model: str, out: Path, args: argparse.Namespace) -> dict:
    """Extract with ``model`` (random init) and return the figures of its manifest."""
    from cirlab.encoders import EncoderSpec
    from cirlab.features.extract import extract_features

    started = time.perf_counter()
    cache = extract_features(data, EncoderSpec(model=model, pretrained=None), out, batch_size=args.batch_size,
                             num_workers=args.workers, device=args.device, precision=args.precision)
    wall = time.perf_counter() - started
    features = np.asarray(cache.image_features)
    assert features.shape == (len(cache.image_ids), cache.dim) and np.isfinite(features).all()
    assert cache.text_features.shape == (len(cache.triplets), 4, cache.dim)
    timing = cache.manifest["timing"]
    return {"model": model, "dim": cache.dim, "px": cache.manifest["encoder"]["image_size"],
            "images": len(cache.image_ids), "images_per_s": timing["images_per_second"],
            "captions_per_s": timing["texts_per_second"], "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48, help="images in the data set (default 48)")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"precision {args.precision}, batch {args.batch_size}, workers {args.workers}, {args.images} images")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_dataset(Path(tmp) / "data", args.images)
        for model in args.models:
            rows.append(measure(data, model, Path(tmp) / f"cache-{model}", args))
            print(f"  done {model}: {rows[-1]['images_per_s']:.1f} images/s", flush=True)
    base = next((r["images_per_s"] for r in rows if r["model"] == "RN50x4"), None)
    print(f"\n{'model':<18}{'dim':>5}{'px':>5}{'images':>8}{'images/s':>11}{'captions/s':>12}{'wall s':>8}"
          f"{'x RN50x4':>10}")
    for r in rows:
        ratio = f"{r['images_per_s'] / base:.1f}" if base else "-"
        print(f"{r['model']:<18}{r['dim']:>5}{r['px']:>5}{r['images']:>8}{r['images_per_s']:>11.1f}"
              f"{r['captions_per_s']:>12.1f}{r['wall_s']:>8.1f}{ratio:>10}")


if __name__ == "__main__":
    main()
