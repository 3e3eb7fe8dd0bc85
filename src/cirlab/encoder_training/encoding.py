"""Encoding images and texts with the model being trained: the per-epoch checks and the mining gallery."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from cirlab.encoder_training.datasets import ImageFiles, PixelHashes
from cirlab.progress import progress
from cirlab.runtime import autocast


@torch.no_grad()
def encode_image_files(model: nn.Module, paths: Sequence[Path], preprocess: Callable[[Any], Any], *,
                       device: torch.device, precision: str, batch_size: int, num_workers: int,
                       show_progress: bool = True, desc: str = "encoding held-out images") -> Tensor:
    """Un-normalised image features ``[len(paths), dim]`` (float32, on ``device``), in ``paths`` order."""
    loader = DataLoader(ImageFiles(paths, preprocess), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, pin_memory=device.type == "cuda")
    chunks = []
    with eval_mode(model):
        for images in progress(loader, desc=desc, unit="batch", enabled=show_progress,
                               leave=False):
            with autocast(device, precision):
                chunks.append(model.encode_image(images.to(device, non_blocking=True)).float())
    return torch.cat(chunks)


def pixel_hashes(paths: Sequence[Path], *, num_workers: int, batch_size: int = 64) -> list[str]:
    """The pixel hash (:func:`cirlab.features.image_loading.pixel_hash`) of each file, in ``paths`` order."""
    loader = DataLoader(PixelHashes(paths), batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=list)
    return [value for batch in loader for value in batch]


@torch.no_grad()
def encode_texts(model: nn.Module, tokenizer: Callable[[list[str]], Tensor], texts: Sequence[str], *,
                 device: torch.device, precision: str, batch_size: int) -> Tensor:
    """Un-normalised text features ``[len(texts), dim]`` (float32, on ``device``), in ``texts`` order."""
    chunks = []
    with eval_mode(model):
        for start in range(0, len(texts), batch_size):
            tokens = tokenizer(list(texts[start:start + batch_size])).to(device)
            with autocast(device, precision):
                chunks.append(model.encode_text(tokens).float())
    return torch.cat(chunks)


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode for the body and restore its previous mode after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
