"""Feature extraction: encode every image and caption form of a data set once, into a feature cache.

The expensive part of composed image retrieval with frozen encoders is CLIP itself, so it runs once
here and training, evaluation and search read the cache (:mod:`cirlab.features.cache`).

How a run goes:

0. Take the cache folder's writer lock (:mod:`cirlab.locking`; the main process under ``torchrun``):
   a second extraction into the same folder is refused at once instead of mixing its chunks in.
   Temporaries that killed writers left in the folder are deleted.
1. Plan (:mod:`cirlab.features.plan`): read the caption and split files, apply the missing-image
   policy, fix the order of the distinct images and of the triplets.
2. Compare with what ``out`` holds: a complete cache made from the same data with the same encoder,
   preprocessing and precision makes the call a no-op; a different one is refused unless
   ``overwrite`` (it would otherwise be silently replaced).
3. Encode, chunk by chunk, into ``out/.partial/`` (:mod:`cirlab.features.partial`), skipping chunks a
   previous interrupted run finished. Images are decoded, hashed and preprocessed by DataLoader
   workers. Under ``torchrun`` every process takes every ``world_size``-th chunk.
4. Merge (rank 0): corrupt images are left out (``skip``) with the triplets that need them, or
   stop the run (``error``); the cache is written with the manifest last, and the partial folder
   removed (also by a later run that finds the cache complete, when a kill came between the two).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from cirlab import __version__
from cirlab.data.dataset import DatasetReader, open_dataset
from cirlab.data.images import DECODE_VERSION
from cirlab.data.missing import MissingPolicy
from cirlab.data.transforms import DEFAULT_TARGET_RATIO, PREPROCESS_KINDS, TargetPad
from cirlab.distributed import DistributedContext, distributed_session
from cirlab.encoders import Encoder, EncoderSpec, load_encoder
from cirlab.errors import CacheMismatchError, ConfigError, DataError
from cirlab.features.cache import MANIFEST_FILE, FeatureCache, write_cache
from cirlab.features.fingerprint import FINGERPRINT_COVERS, data_fingerprint
from cirlab.features.image_loading import ImageBatch, ImageFiles, collate_images
from cirlab.features.partial import PARTIAL_DIR, PartialResults
from cirlab.features.plan import ExtractionPlan, finalize, plan_extraction
from cirlab.locking import lock_folder, remove_leftover_temporaries
from cirlab.progress import progress
from cirlab.runtime import resolve_device

#: Called after each chunk is written, with ``("images" | "texts", chunk index)``.
ChunkHook = Callable[[str, int], None]

DEFAULT_CHUNK_SIZE = 1024

LOGGER = logging.getLogger("cirlab.features")


def extract_features(data_root: str | Path, spec: EncoderSpec, out: str | Path, *, dataset: str | None = None,
                     preprocess: str = "targetpad",
                     target_ratio: float = DEFAULT_TARGET_RATIO, missing: str = "error", batch_size: int = 64,
                     num_workers: int = 0, device: str = "auto", precision: str = "fp32",
                     categories: Sequence[str] | None = None, overwrite: bool = False,
                     chunk_size: int = DEFAULT_CHUNK_SIZE, on_chunk: ChunkHook | None = None) -> FeatureCache:
    """Encode the data set at ``data_root`` with the encoder ``spec`` into the feature cache ``out``.

    ``dataset`` names the folder's layout (``fashioniq``, ``cirr``); by default it is recognised from the
    files (:func:`cirlab.data.open_dataset`). Every image of every split file and every triplet of every
    caption file is encoded, each triplet in each of the data set's caption forms (FashionIQ: four, CIRR: one).
    ``preprocess`` is ``targetpad`` (CLIP4Cir's pad to ``target_ratio``, then the encoder's
    transform) or ``encoder`` (the encoder's transform alone). ``missing`` is the missing-image
    policy, also applied to images that fail to decode. A forward pass takes ``batch_size`` images,
    or the caption forms of ``batch_size`` triplets. ``chunk_size`` images (or triplets) make one
    resumable unit of work. Status lines (resuming, up to date) are logged on the main process
    (logger ``cirlab.features``); ``on_chunk`` is called after every chunk written. Returns the opened cache.
    """
    policy = MissingPolicy.parse(missing)
    if preprocess not in PREPROCESS_KINDS:
        raise ConfigError(f"unknown preprocessing {preprocess!r}; use one of {list(PREPROCESS_KINDS)}")
    for name, value, least in (("batch size", batch_size, 1), ("chunk size", chunk_size, 1),
                               ("number of workers", num_workers, 0)):
        if value < least:
            raise ConfigError(f"{name} must be at least {least}, got {value}")
    if preprocess == "targetpad":
        TargetPad(target_ratio)  # refuses a ratio below 1 before any work starts
    target = resolve_device(device)
    with distributed_session(target) as ctx:
        if target.type == "cuda" and ctx.is_distributed:
            target = torch.device("cuda", ctx.local_rank)
        job = _Extraction(Path(data_root), dataset, spec, Path(out), ctx, target, preprocess=preprocess,
                          target_ratio=target_ratio, policy=policy, batch_size=batch_size, num_workers=num_workers,
                          precision=precision, categories=categories, chunk_size=chunk_size,
                          on_chunk=on_chunk)
        return job.run(overwrite=overwrite)


def cache_expectation(encoder: Encoder, preprocess: str, data_fingerprint_value: str, precision: str,
                      target_ratio: float = DEFAULT_TARGET_RATIO, dataset: str | None = None) -> dict[str, Any]:
    """The manifest values a cache must have to hold exactly what this encoder would extract (from a data set
    of layout ``dataset``, when given)."""
    return {
        "dataset": dataset,
        "model": encoder.spec.model,
        "pretrained": encoder.spec.pretrained if encoder.spec.checkpoint is None else None,
        "weights_hash": encoder.weights_hash(),
        "preprocess": preprocess_record(preprocess, target_ratio),
        "data_fingerprint": data_fingerprint_value,
        "dim": encoder.dim,
        "precision": precision,
    }


def preprocess_record(kind: str, target_ratio: float = DEFAULT_TARGET_RATIO) -> dict[str, Any]:
    """How images were decoded and preprocessed, as the manifest records it (part of the cache's identity, so a
    cache decoded by an earlier decoder, e.g. before 16-bit images and EXIF orientation were handled, is stale)."""
    record: dict[str, Any] = {"kind": kind, "decode": DECODE_VERSION}
    if kind == "targetpad":
        record["target_ratio"] = float(target_ratio)
    return record


def summary_line(cache: FeatureCache) -> str:
    """One line describing a cache: what it holds, how fast it was made, what was left out."""
    m = cache.manifest
    timing = m.get("timing", {})
    missing = m.get("missing", {})
    corrupt = m.get("corrupt", {})
    dropped = missing.get("total_dropped_triplets", 0) + corrupt.get("total_dropped_triplets", 0)
    left_out = (f"{missing.get('total_missing_images', 0)} missing and {corrupt.get('total_missing_images', 0)} "
                f"corrupt images left out with {dropped} triplets")
    return (f"{cache.root}: {m['num_images']} images and {m['num_triplets']} triplets x {len(m['caption_forms'])} "
            f"caption forms, {m['model']} ({m['dim']}-d); made in {timing.get('total_seconds', 0):.1f} s at "
            f"{timing.get('images_per_second', 0):.1f} images/s; {left_out}")


class _Extraction:
    """One extraction run in one process (see the module notes for the steps)."""

    def __init__(self, data_root: Path, kind: str | None, spec: EncoderSpec, out: Path, ctx: DistributedContext,
                 device: torch.device, *, preprocess: str, target_ratio: float, policy: MissingPolicy,
                 batch_size: int, num_workers: int, precision: str, categories: Sequence[str] | None,
                 chunk_size: int, on_chunk: ChunkHook | None) -> None:
        self.data_root, self.kind, self.spec, self.out, self.ctx, self.device = data_root, kind, spec, out, ctx, device
        self.preprocess, self.target_ratio, self.policy = preprocess, target_ratio, policy
        self.batch_size, self.num_workers, self.precision = batch_size, num_workers, precision
        self.categories, self.chunk_size = categories, chunk_size
        self.on_chunk = on_chunk

    def say(self, line: str) -> None:
        """Log a status line (main process only)."""
        if self.ctx.is_main:
            LOGGER.info(line)

    # ------------------------------------------------------------------ steps
    def run(self, *, overwrite: bool) -> FeatureCache:
        """Extract under the cache folder's writer lock, held until every process is done."""
        with lock_folder(self.out, self.ctx):
            if self.ctx.is_main:
                leftovers = remove_leftover_temporaries(self.out)
                if leftovers:
                    self.say(f"{self.out}: removed {leftovers} temporary files left by an interrupted run")
            return self._run(overwrite=overwrite)

    def _run(self, *, overwrite: bool) -> FeatureCache:
        started = time.perf_counter()
        dataset = open_dataset(self.data_root, self.kind, list(self.categories) if self.categories else None)
        plan = plan_extraction(dataset, self.policy)
        fingerprint = data_fingerprint(dataset)
        encoder = load_encoder(self.spec, device=str(self.device), precision=self.precision)
        expect = cache_expectation(encoder, self.preprocess, fingerprint, self.precision, self.target_ratio,
                                   dataset.kind)
        existing = self._existing_cache(expect, overwrite)
        if existing is not None:
            self.say(f"{self.out}: feature cache is up to date; nothing to do")
            if self.ctx.is_main and (self.out / PARTIAL_DIR).exists():  # a kill came after the cache was written
                PartialResults(self.out, {}).remove()
                self.say(f"{self.out / PARTIAL_DIR}: removed the partial results of the run that wrote the cache")
            self.ctx.barrier()
            return existing

        partial = PartialResults(self.out, {
            "format": 2, "encoder": {k: expect[k] for k in ("model", "pretrained", "weights_hash")},
            "preprocess": expect["preprocess"], "precision": self.precision, "data_fingerprint": fingerprint,
            "order": plan.order_digest(), "chunk_size": self.chunk_size, "caption_forms": list(dataset.caption_forms),
        })
        image_chunks = math.ceil(len(plan.image_ids) / self.chunk_size)
        text_chunks = math.ceil(len(plan.triplets) / self.chunk_size)
        if self.ctx.is_main:
            found = partial.prepare()
            if found.status == "discarded":
                self.say(f"{partial.folder}: discarded partial results of a different extraction")
            elif found.status == "resumed":
                if found.foreign_chunks or found.temporaries:
                    self.say(f"{partial.folder}: removed {found.foreign_chunks} chunks written by a different "
                             f"extraction or unreadable, and {found.temporaries} temporary files of interrupted "
                             f"writes")
                done_images = sum(partial.has_images(k) for k in range(image_chunks))
                done_texts = sum(partial.has_texts(k) for k in range(text_chunks))
                self.say(f"{self.out}: resuming; {done_images}/{image_chunks} image chunks and "
                         f"{done_texts}/{text_chunks} text chunks already done")
        self.ctx.barrier()

        mine = range(self.ctx.rank, max(image_chunks, text_chunks), self.ctx.world_size)
        image_stats = self._encode_images(plan, encoder, partial, [k for k in mine if k < image_chunks])
        text_chunks_here = [k for k in mine if k < text_chunks] if not image_stats["failure"] else []
        text_stats = self._encode_texts(plan, encoder, partial, text_chunks_here)
        stats = self.ctx.gather({**image_stats, **text_stats})
        failures = [s["failure"] for s in stats if s["failure"]]
        if failures:
            raise DataError(*failures[0])

        if self.ctx.is_main:
            timing = _timing(stats, time.perf_counter() - started, self.device, self.batch_size, self.num_workers)
            self._merge(dataset, plan, encoder, partial, expect, image_chunks, text_chunks, timing)
        self.ctx.barrier()
        return FeatureCache.open(self.out, expect=expect)

    def _existing_cache(self, expect: dict[str, Any], overwrite: bool) -> FeatureCache | None:
        """The cache at ``out`` when it already holds this extraction; refuse a different one."""
        manifest = self.out / MANIFEST_FILE
        if not manifest.exists():
            return None
        try:
            cache = FeatureCache.open(self.out, expect=expect)
        except CacheMismatchError as exc:
            if not overwrite:
                raise CacheMismatchError(f"{exc}; pass --overwrite to replace it") from None
        else:
            corrupt = cache.manifest.get("corrupt", {})
            if self.policy is MissingPolicy.ERROR and corrupt.get("total_missing_images"):
                example = (corrupt.get("errors") or ["?"])[0]
                raise CacheMismatchError(f"{manifest}: this cache left out {corrupt['total_missing_images']} corrupt "
                                         f"images under --missing skip (e.g. {example}); pass --missing skip to "
                                         f"accept it, or replace the images")
            return cache
        self.ctx.barrier()  # every process has looked before the old cache is invalidated
        if self.ctx.is_main:
            manifest.unlink(missing_ok=True)
            self.say(f"{self.out}: replacing the existing feature cache (--overwrite)")
        return None

    def _encode_images(self, plan: ExtractionPlan, encoder: Encoder, partial: PartialResults,
                       chunks: list[int]) -> dict[str, Any]:
        """Encode this process's unfinished image chunks; stop at the first corrupt image under ``error``."""
        pending = [k for k in chunks if not partial.has_images(k)]
        n = len(plan.image_ids)
        bounds = {k: (k * self.chunk_size, min((k + 1) * self.chunk_size, n)) for k in pending}
        batches = []  # never across a chunk boundary, so each chunk completes with one of its batches
        for first, stop in bounds.values():
            batches.extend(list(range(i, min(i + self.batch_size, stop))) for i in range(first, stop, self.batch_size))
        stats: dict[str, Any] = {"images": 0, "image_seconds": 0.0, "image_chunks_reused": len(chunks) - len(pending),
                                 "failure": None}
        if not batches:
            return stats
        files = ImageFiles(plan.image_paths, encoder.preprocess, self.preprocess, self.target_ratio)
        loader = DataLoader(files, batch_sampler=batches, num_workers=self.num_workers, collate_fn=collate_images,
                            pin_memory=self.device.type == "cuda")
        bar = progress(desc="images", total=sum(b - a for a, b in bounds.values()), unit="img",
                       enabled=self.ctx.is_main)
        started = time.perf_counter()
        chunk: _ImageChunk | None = None
        try:
            for batch in loader:
                first_failure = next((f for f in batch.failures if f is not None), None)
                if first_failure is not None and self.policy is MissingPolicy.ERROR:
                    stats["failure"] = (first_failure.path, first_failure.problem)
                    break
                index = batch.rows[0] // self.chunk_size
                if chunk is None or chunk.index != index:
                    chunk = _ImageChunk.empty(index, *bounds[index], encoder.dim)
                encoded = encoder.encode_images(batch.pixels).cpu().numpy() if len(batch.pixels) else None
                chunk.add(batch, encoded)
                stats["images"] += len(batch.rows)
                bar.update(len(batch.rows))
                if chunk.complete:
                    partial.write_images(index, chunk.features, chunk.hashes, chunk.failures)
                    if self.on_chunk is not None:
                        self.on_chunk("images", index)
        finally:
            bar.close()
        stats["image_seconds"] = time.perf_counter() - started
        return stats

    def _encode_texts(self, plan: ExtractionPlan, encoder: Encoder, partial: PartialResults,
                      chunks: list[int]) -> dict[str, Any]:
        """Encode the caption forms of every triplet in this process's unfinished text chunks."""
        pending = [k for k in chunks if not partial.has_texts(k)]
        n = len(plan.triplets)
        stats: dict[str, Any] = {"texts": 0, "text_seconds": 0.0, "text_chunks_reused": len(chunks) - len(pending)}
        if not pending:
            return stats
        total = sum(min((k + 1) * self.chunk_size, n) - k * self.chunk_size for k in pending)
        bar = progress(desc="captions", total=total, unit="triplet", enabled=self.ctx.is_main)
        started = time.perf_counter()
        try:
            for chunk in pending:
                start, stop = chunk * self.chunk_size, min((chunk + 1) * self.chunk_size, n)
                texts = plan.texts(start, stop)
                step = plan.forms * self.batch_size  # a text batch: the caption forms of batch_size triplets
                parts = [encoder.encode_texts(texts[i:i + step]).cpu().numpy() for i in range(0, len(texts), step)]
                features = np.concatenate(parts).reshape(stop - start, plan.forms, encoder.dim)
                partial.write_texts(chunk, features)
                stats["texts"] += len(texts)
                bar.update(stop - start)
                if self.on_chunk is not None:
                    self.on_chunk("texts", chunk)
        finally:
            bar.close()
        stats["text_seconds"] = time.perf_counter() - started
        return stats

    def _merge(self, dataset: DatasetReader, plan: ExtractionPlan, encoder: Encoder, partial: PartialResults,
               expect: dict[str, Any], image_chunks: int, text_chunks: int, timing: dict[str, Any]) -> None:
        """Assemble the chunks into the cache (main process only), then drop the partial folder."""
        dim = encoder.dim
        image_features = np.zeros((len(plan.image_ids), dim), np.float32)
        hashes = [""] * len(plan.image_ids)
        corrupt: dict[str, DataError] = {}
        for k in range(image_chunks):
            start = k * self.chunk_size
            features, chunk_hashes, chunk_failures = _read_chunk(partial, "images", k)
            image_features[start:start + len(features)] = features
            hashes[start:start + len(chunk_hashes)] = chunk_hashes
            for offset, problem in enumerate(chunk_failures):
                if problem:
                    row = start + offset
                    corrupt[plan.image_ids[row]] = DataError(plan.image_paths[row], problem)
        if corrupt and self.policy is MissingPolicy.ERROR:  # chunks of an earlier run under 'skip'
            raise next(iter(corrupt.values()))
        text_parts = [_read_chunk(partial, "texts", k) for k in range(text_chunks)]
        text_features = np.concatenate(text_parts) if text_parts else np.zeros((0, plan.forms, dim), np.float32)
        layout = finalize(plan, set(corrupt))
        layout.corrupt.policy = self.policy.value
        manifest = {
            "dataset": dataset.kind,
            "model": expect["model"],
            "pretrained": expect["pretrained"],
            "checkpoint": str(self.spec.checkpoint.resolve()) if self.spec.checkpoint is not None else None,
            "weights_hash": expect["weights_hash"],
            "encoder": encoder.describe(),
            "preprocess": expect["preprocess"],
            "precision": self.precision,
            "data_root": str(dataset.root.resolve()),
            "data_fingerprint": expect["data_fingerprint"],
            "data_fingerprint_covers": FINGERPRINT_COVERS,
            "categories": list(dataset.categories),
            "splits": sorted(plan.split_ids),
            "missing_policy": self.policy.value,
            "missing": plan.missing.to_dict(),
            "corrupt": {**layout.corrupt.to_dict(), "errors": [str(corrupt[i]) for i in sorted(corrupt)]},
            "timing": timing,
            "cirlab_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_cache(self.out, image_ids=layout.image_ids, image_features=image_features[layout.image_rows],
                    split_rows=layout.split_rows, triplets=layout.triplets,
                    text_features=text_features[layout.triplet_positions], manifest=manifest,
                    image_hashes=[hashes[r] for r in layout.image_rows])
        partial.remove()


@dataclass
class _ImageChunk:
    """One image chunk being filled batch by batch (rows ``start:stop`` of the plan)."""

    index: int
    start: int
    stop: int
    features: np.ndarray  # [stop - start, dim]; rows of failed images stay zero
    hashes: list[str]  # pixel hash per row, "" on failure
    failures: list[str]  # decoding problem per row, "" on success
    filled: int = 0

    @classmethod
    def empty(cls, index: int, start: int, stop: int, dim: int) -> _ImageChunk:
        """A chunk with no rows filled yet."""
        size = stop - start
        return cls(index, start, stop, np.zeros((size, dim), np.float32), [""] * size, [""] * size)

    def add(self, batch: ImageBatch, encoded: np.ndarray | None) -> None:
        """Place a batch's features (``encoded`` holds the decodable rows, in order) and failures."""
        next_encoded = 0
        for row, digest, failure in zip(batch.rows, batch.hashes, batch.failures):
            offset = row - self.start
            if failure is None:
                self.features[offset] = encoded[next_encoded]
                self.hashes[offset] = digest
                next_encoded += 1
            else:
                self.failures[offset] = failure.problem
        self.filled += len(batch.rows)

    @property
    def complete(self) -> bool:
        """Whether every row of the chunk has been placed."""
        return self.filled == self.stop - self.start


def _read_chunk(partial: PartialResults, kind: str, index: int) -> Any:
    """Read one finished chunk, or explain why the merge cannot go on."""
    path = partial.image_chunk(index) if kind == "images" else partial.text_chunk(index)
    if not path.is_file():
        raise CacheMismatchError(f"{path}: chunk missing at merge time; run `cirlab extract` again to redo it")
    try:
        return partial.read_images(index) if kind == "images" else partial.read_texts(index)
    except (OSError, ValueError, KeyError) as exc:
        path.unlink(missing_ok=True)
        raise CacheMismatchError(f"{path}: unusable chunk ({exc}), removed; run `cirlab extract` again "
                                 f"to redo it") from None


def _timing(stats: list[dict[str, Any]], total_seconds: float, device: torch.device, batch_size: int,
            num_workers: int) -> dict[str, Any]:
    """Throughput over all processes: items encoded in this run over the slowest process's time."""
    images = sum(s["images"] for s in stats)
    texts = sum(s["texts"] for s in stats)
    image_seconds = max(s["image_seconds"] for s in stats)
    text_seconds = max(s["text_seconds"] for s in stats)
    return {
        "world_size": len(stats), "device": device.type, "batch_size": batch_size, "num_workers": num_workers,
        "images_encoded": images, "image_seconds": round(image_seconds, 3),
        "images_per_second": round(images / image_seconds, 2) if image_seconds > 0 else 0.0,
        "texts_encoded": texts, "text_seconds": round(text_seconds, 3),
        "texts_per_second": round(texts / text_seconds, 2) if text_seconds > 0 else 0.0,
        "image_chunks_reused": sum(s["image_chunks_reused"] for s in stats),
        "text_chunks_reused": sum(s["text_chunks_reused"] for s in stats),
        "total_seconds": round(total_seconds, 3),
    }
