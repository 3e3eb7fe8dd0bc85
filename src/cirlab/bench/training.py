"""Combiner training throughput at the reference dimensions, and the share of the machine's peak it reaches.

One step is what :mod:`cirlab.training.objective` runs for a batch of cached features on the engine: the
CLIP4Cir combiner's forward pass (under the chosen autocast precision), the ``random`` sampler drawing ``k``
negatives per query from a gallery, the triplet loss on the gathered features, the backward pass, the
engine's AdamW update (:func:`cirlab.engine.optim.build_optimizer`) and the statistics read back as the
engine logs them, all with the engine's allocator settings (:mod:`cirlab.engine.allocator`). Inputs are
random in-memory features, as they come out of the feature cache.

The share of peak divides the step's FLOP rate by the rate of a plain ``[B, h] x [h, h]`` matrix
product (the combiner's largest layer) timed in the same rounds, in fp32 and, where the device runs
it, bf16. FLOPs are counted analytically (:func:`linear_flops`, :func:`triplet_loss_flops`); AdamW's
update and the elementwise layers are left out (they are memory-bound, not FLOP-bound), so the share
is a lower bound on how busy the step keeps the machine.

The same step is also timed phase by phase (forward, sampler, loss, backward, optimizer, logging), waiting
for the device at each boundary, in the same rounds: each phase's share of the step shows where the next
bottleneck is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cirlab.bench.context import BenchContext
from cirlab.bench.fixtures import clustered_features
from cirlab.bench.report import BenchResult, Figure
from cirlab.bench.timing import Laps, Stat, round_ratio, time_rounds
from cirlab.distributed import DistributedContext
from cirlab.engine.allocator import reuse_freed_memory
from cirlab.engine.optim import build_optimizer, implementation, uniform_groups
from cirlab.engine.stats import StepRecords
from cirlab.runtime import autocast

NAME = "train"
TITLE = "combiner training step from cached features (CLIP4Cir combiner, triplet loss, AdamW)"

#: RN50x4's feature dimension, the reference set-up of CLIP4Cir on FashionIQ.
REFERENCE_DIM = 640

#: The phases of a step, in the order they run (``sampler`` only when a sampler draws the negatives).
PHASES: tuple[str, ...] = ("forward", "sampler", "loss", "backward", "optimizer", "logging")


@dataclass
class StepBatch:
    """What one training step consumes (as :class:`cirlab.training.data.Batch`)."""

    reference: Tensor  # [B, d] raw reference image features
    text: Tensor  # [B, d] raw text features
    positives: Tensor  # [B] gallery indices of the targets
    categories: Tensor  # [B] category ids
    targets: Tensor | None = None  # [B, d] normalised target features; None: read from the gallery at positives


class CombinerStep:
    """A combiner, its loss and the engine's AdamW, stepping the way the engine steps combiner training on one
    batch, down to reading the step's statistics back.

    ``gallery_features`` are the L2-normalised gallery features negatives and positives are read from.
    """

    def __init__(self, combiner: nn.Module, loss: nn.Module, gallery_features: Tensor, lr: float = 1e-4) -> None:
        self.combiner = combiner.train()
        self.loss = loss
        self.gallery_features = gallery_features
        self.optimizer = build_optimizer(uniform_groups([combiner], 0.0), lr=lr)  # None for "sum"
        self.device = gallery_features.device
        self.records = StepRecords(DistributedContext(), self.device)

    def __call__(self, batch: StepBatch, *, sampler: Any = None, k: int = 16, negatives: Tensor | None = None,
                 precision: str = "fp32", generator: torch.Generator | None = None,
                 laps: Laps | None = None) -> float:
        """One optimiser step; returns its loss as the engine logs it. Negatives come from ``sampler``, else the
        given indices, else the batch's other targets (in-batch). ``laps`` times the step's :data:`PHASES`."""
        from cirlab.negatives import BatchInfo

        lap = laps.lap if laps is not None else _no_lap
        if laps is not None:
            laps.begin()
        with autocast(self.device, precision):
            queries = self.combiner(batch.reference, batch.text)
        queries = queries.float()
        lap("forward")
        if sampler is not None:
            with torch.no_grad():
                negatives = sampler.sample(queries.detach(), batch.positives, BatchInfo(batch.categories), k, generator)
            lap("sampler")
        negative_features = None if negatives is None else self.gallery_features[negatives]
        targets = self.gallery_features[batch.positives] if batch.targets is None else batch.targets
        output = self.loss(queries, targets, negative_features)
        lap("loss")
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
            lap("optimizer")
            output.loss.backward()
            lap("backward")
            self.optimizer.step()
            lap("optimizer")
        self.records.add({}, {"loss": output.loss, **(output.stats or {})})
        ((_, values),) = self.records.read()
        lap("logging")
        return values["loss"]


def _no_lap(phase: str) -> None:
    return None


def linear_flops(module: nn.Module, *inputs: Tensor) -> tuple[int, int]:
    """``(forward, backward)`` FLOPs of ``module``'s ``nn.Linear`` layers for one call on ``inputs``.

    A linear layer with ``n`` input rows costs ``2 n in out`` forward (multiply-adds count as two), and
    backward the same again for the weight gradient plus, when its input needs a gradient, the same
    again for the input gradient. The layers fed raw features (no gradient) skip that last product,
    which is why backward is a little under twice forward. Found by running the module once with hooks.
    """
    records: list[tuple[int, bool]] = []

    def hook(layer: nn.Module, args: tuple[Tensor, ...], _: Tensor) -> None:
        x = args[0]
        rows = x.numel() // layer.in_features
        records.append((2 * rows * layer.in_features * layer.out_features, x.requires_grad))

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.enable_grad():
            module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    forward = sum(flops for flops, _ in records)
    backward = sum(flops * (2 if needs_grad else 1) for flops, needs_grad in records)
    return forward, backward


def triplet_loss_flops(batch: int, k: int, dim: int) -> int:
    """FLOPs of the triplet loss with ``k`` negatives, forward and backward (about 3x forward).

    Forward: normalising ``B (k + 2)`` vectors (about 3 d each) and ``B (k + 1)`` dot products (2 d each).
    """
    forward = batch * dim * (3 * (k + 2) + 2 * (k + 1))
    return 3 * forward


def bf16_support(device: torch.device) -> tuple[bool, str]:
    """Whether bf16 matrix products run on ``device``, and why (CPU flags, oneDNN, or the error)."""
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
        return supported, "torch.cuda.is_bf16_supported()" if supported else "this GPU has no bf16"
    flags = cpu_flags()
    native = sorted(flags & {"avx512_bf16", "amx_bf16", "amx_tile"})
    mkldnn = torch.backends.mkldnn.is_available()
    try:
        a = torch.ones(8, 8, dtype=torch.bfloat16, device=device)
        (a @ a).sum().item()
    except RuntimeError as exc:
        return False, f"bf16 matmul failed: {str(exc).splitlines()[0]}"
    return True, (f"oneDNN {'available' if mkldnn else 'absent'}; native bf16 instructions: "
                  f"{', '.join(native) if native else 'none (bf16 is emulated and may be slower than fp32)'}")


def cpu_flags() -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where unavailable)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def random_step_batch(size: int, dim: int, gallery_size: int, generator: torch.Generator,
                      device: torch.device) -> StepBatch:
    """A batch of raw random features (norms like CLIP's, about 10) with random targets and categories."""
    return StepBatch(reference=(torch.randn(size, dim, generator=generator) * 10 / dim**0.5).to(device),
                     text=(torch.randn(size, dim, generator=generator) * 10 / dim**0.5).to(device),
                     positives=torch.randint(0, gallery_size, (size,), generator=generator).to(device),
                     categories=torch.randint(0, 3, (size,), generator=generator).to(device))


def reference_step(ctx: BenchContext, batch_size: int, gallery_size: int) -> tuple[CombinerStep, StepBatch, Any]:
    """The reference combiner step (d = 640, p = 2560, h = 5120, triplet loss) on a random gallery."""
    from cirlab.combiners import build_combiner
    from cirlab.losses import build_loss
    from cirlab.negatives import Gallery

    torch.manual_seed(ctx.seed)
    generator = ctx.generator(1)
    features = clustered_features(gallery_size, REFERENCE_DIM, generator).to(ctx.device)
    categories = torch.randint(0, 3, (gallery_size,), generator=generator).to(ctx.device)
    gallery = Gallery.from_raw(features, categories)
    combiner = build_combiner("combiner", REFERENCE_DIM).to(ctx.device)
    step = CombinerStep(combiner, build_loss("triplet"), gallery.features)
    return step, random_step_batch(batch_size, REFERENCE_DIM, gallery_size, generator, ctx.device), gallery


def run(ctx: BenchContext) -> BenchResult:
    """Measure triplets/s, the share of matmul peak and the step's phases, fp32 and bf16, with the engine's
    allocator settings."""
    with reuse_freed_memory(ctx.device) as reused:
        result = _measure(ctx)
    result.settings["allocator"] = "freed memory reused (glibc, M_MMAP_MAX 0)" if reused else "default"
    return result


def _measure(ctx: BenchContext) -> BenchResult:
    from cirlab.negatives import build_sampler

    batch_size, k, repeats = ctx.pick(256, 64), 16, ctx.pick(3, 1)
    gallery_size = ctx.pick(10_000, 2_000)
    step, batch, gallery = reference_step(ctx, batch_size, gallery_size)
    combiner = step.combiner
    sampler = build_sampler("random", gallery)
    generator = ctx.device_generator(2)
    forward, backward = linear_flops(combiner, batch.reference, batch.text)
    step_flops = forward + backward + triplet_loss_flops(batch_size, k, REFERENCE_DIM)
    hidden = combiner.hidden_dim
    matmul_flops = 2 * batch_size * hidden * hidden
    bf16_ok, bf16_why = bf16_support(ctx.device)
    precisions = ["fp32", "bf16"] if bf16_ok else ["fp32"]
    operands = {p: (torch.randn(batch_size, hidden, device=ctx.device).to(_dtype(p)),
                    torch.randn(hidden, hidden, device=ctx.device).to(_dtype(p))) for p in precisions}

    works: dict[str, Any] = {}
    laps = {p: Laps(ctx.device) for p in precisions}
    for precision in precisions:
        a, b = operands[precision]
        works[f"matmul_{precision}"] = lambda a=a, b=b: a @ b
        works[f"step_{precision}"] = lambda p=precision: step(batch, sampler=sampler, k=k, precision=p,
                                                                   generator=generator)
        works[f"split_{precision}"] = lambda p=precision: step(batch, sampler=sampler, k=k, precision=p,
                                                                    generator=generator, laps=laps[p])
    timings = time_rounds(works, repeats=repeats, warmup=1, device=ctx.device)

    result = BenchResult(NAME, TITLE, settings={
        "dim": REFERENCE_DIM, "projection_dim": combiner.projection_dim, "hidden_dim": hidden,
        "batch": batch_size, "negatives_per_query": k, "sampler": "random", "gallery": gallery_size,
        "parameters": sum(p.numel() for p in combiner.parameters()), "repeats": repeats,
        "matmul": f"[{batch_size}x{hidden}]x[{hidden}x{hidden}]",
        "adamw": "fused" if implementation(combiner.parameters())["fused"] else "foreach"})
    result.add(Figure("step_gflop", step_flops / 1e9, "GFLOP", "exact",
                      f"forward {forward / 1e9:.1f} + backward {backward / 1e9:.1f} + loss; AdamW not counted"))
    for precision in precisions:
        step_time, matmul_time = timings[f"step_{precision}"], timings[f"matmul_{precision}"]
        # per round: (step FLOP rate) / (matmul FLOP rate)
        share = Stat.of((step_flops / s) / (matmul_flops / m) for s, m in zip(step_time.samples, matmul_time.samples))
        result.add(Figure.from_stat(f"{precision}_share_of_peak", share, "fraction", "ratio",
                                    f"step FLOP rate over matmul FLOP rate ({precision})",
                                    baseline=f"{precision} matmul {result.settings['matmul']}"))
        result.add(Figure.from_stat(f"{precision}_triplets_per_s", step_time.stat.map(lambda t: batch_size / t),
                                    "triplets/s", "absolute", f"full training steps, {precision}"))
        result.add(Figure.from_stat(f"{precision}_step_ms", step_time.stat.map(lambda t: t * 1e3), "ms", "absolute",
                                    f"one training step, {precision}"))
        rate = matmul_time.stat.map(lambda t: matmul_flops / t / 1e9)
        result.add(Figure.from_stat(f"{precision}_matmul_gflops", rate, "GFLOP/s", "absolute",
                                    f"matmul rate, {precision}"))
        shares = laps[precision].shares(last=repeats)
        for phase, phase_share in sorted(shares.items(), key=lambda item: PHASES.index(item[0])):
            result.add(Figure.from_stat(f"{precision}_{phase}_share", phase_share, "fraction", "ratio",
                                        f"{phase}'s share of a {precision} step",
                                        baseline=f"{precision} step timed phase by phase"))
    if bf16_ok:
        step_speedup = round_ratio(timings["step_fp32"], timings["step_bf16"])
        matmul_speedup = round_ratio(timings["matmul_fp32"], timings["matmul_bf16"])
        result.add(Figure.from_stat("bf16_step_speedup", step_speedup, "x", "ratio",
                                    "fp32 step time over bf16-autocast step time (>1: bf16 faster)",
                                    baseline="fp32 step"))
        result.add(Figure.from_stat("bf16_matmul_speedup", matmul_speedup, "x", "ratio",
                                    "fp32 matmul time over bf16 matmul time", baseline="fp32 matmul"))
        result.notes.append(f"bf16: {bf16_why}")
        if step_speedup.value < 1:
            result.notes.append(f"bf16 autocast makes the step {1 / step_speedup.value:.2f}x slower than fp32 "
                                f"although bf16 matmuls run {matmul_speedup.value:.2f}x faster")
    else:
        result.notes.append(f"bf16 not measured: {bf16_why}")
    return result


def _dtype(precision: str) -> torch.dtype:
    return torch.bfloat16 if precision == "bf16" else torch.float32
