"""``DistributedContext.gather_with_grad``: two gloo processes compute one process's loss and gradients."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from cirlab.distributed import DistributedContext

ROWS, DIM, WORLD = 8, 5, 2


def _problem() -> tuple[torch.Tensor, torch.Tensor, torch.nn.Linear, torch.nn.Linear]:
    """Images and texts of a global batch and the two projections trained on them (the same on every process)."""
    generator = torch.Generator().manual_seed(0)
    images, texts = torch.randn(ROWS, DIM, generator=generator), torch.randn(ROWS, DIM, generator=generator)
    torch.manual_seed(1)
    return images, texts, torch.nn.Linear(DIM, DIM), torch.nn.Linear(DIM, DIM)


def _clip_loss(ctx: DistributedContext, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """open_clip's symmetric InfoNCE as a local loss: this process's rows against every process's."""
    all_images, all_texts = ctx.gather_with_grad(image_features), ctx.gather_with_grad(text_features)
    labels = torch.arange(image_features.shape[0]) + ctx.rank * image_features.shape[0]
    return (F.cross_entropy(10 * image_features @ all_texts.T, labels)
            + F.cross_entropy(10 * text_features @ all_images.T, labels)) / 2


def _worker(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        ctx = DistributedContext(rank=rank, world_size=WORLD)
        images, texts, image_proj, text_proj = _problem()
        rows = slice(rank * ROWS // WORLD, (rank + 1) * ROWS // WORLD)
        image_features = F.normalize(image_proj(images[rows]), dim=-1)
        text_features = F.normalize(text_proj(texts[rows]), dim=-1)
        gathered = ctx.gather_with_grad(image_features).detach()
        loss = _clip_loss(ctx, image_features, text_features)
        loss.backward()
        grads = [p.grad for module in (image_proj, text_proj) for p in module.parameters()]
        for grad in grads:  # what DistributedDataParallel does with the parameters' gradients
            dist.all_reduce(grad)
            grad /= WORLD
        torch.save({"loss": loss.detach(), "gathered": gathered, "grads": grads}, Path(out) / f"rank-{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_a_single_process_gathers_nothing() -> None:
    tensor = torch.randn(3, 2, requires_grad=True)
    assert DistributedContext().gather_with_grad(tensor) is tensor


@pytest.mark.distributed
def test_two_processes_have_the_loss_and_gradients_of_one(tmp_path: Path) -> None:
    """Both sides of the loss require gradients (as in encoder training), so each process's rows receive the
    gradients of the other process's loss through the gather; averaged, they are the whole batch's."""
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"rank-{rank}.pt") for rank in range(WORLD)]

    images, texts, image_proj, text_proj = _problem()
    image_features = F.normalize(image_proj(images), dim=-1)
    text_features = F.normalize(text_proj(texts), dim=-1)
    loss = _clip_loss(DistributedContext(), image_features, text_features)
    loss.backward()
    grads = [p.grad for module in (image_proj, text_proj) for p in module.parameters()]

    for result in results:
        torch.testing.assert_close(result["gathered"], image_features.detach())  # every process's rows, in order
        for got, expected in zip(result["grads"], grads):
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    assert float(sum(r["loss"] for r in results)) / WORLD == pytest.approx(loss.item(), rel=1e-6)
