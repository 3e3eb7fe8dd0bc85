"""CLIP-style contrastive pretraining on image–description pairs built from a data set's tags.

Each training image of every category is paired with a sentence made from its attribute tags
(:mod:`cirlab.encoder_training.descriptions`); an open_clip model learns to match them with
open_clip's own :class:`open_clip.ClipLoss` and the model's learnable logit scale, as CLIP itself
was trained. The result is an encoder that knows the data set's attribute words, the role real
CLIP weights play on real FashionIQ. Held-out images of the val split measure image→description
and description→image Recall@1/5/10 after every epoch, next to what chance would score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cirlab.data import MissingReport, build_preprocess, open_dataset
from cirlab.distributed import DistributedContext
from cirlab.encoder_training.datasets import DescribedImage, DescriptionPairs, described_split
from cirlab.encoder_training.encoding import encode_image_files, encode_texts
from cirlab.encoder_training.loop import (
    EncoderLossBase,
    EncoderObjective,
    StepPosition,
    quiet_gather_deprecation,
    train_encoder,
)
from cirlab.encoder_training.options import TrainingOptions, resolve_options
from cirlab.encoder_training.retrieval import (
    image_to_text_chance,
    image_to_text_recall,
    text_to_image_chance,
    text_to_image_recall,
)
from cirlab.encoder_training.session import record_run, resume_point, training_session
from cirlab.engine import StepOutput
from cirlab.io import atomic_write_json
from cirlab.locking import lock_folder

DEFAULT_MODEL = "cirlab-vit-tiny"
RESULT_FILE = "result.json"
MAX_LOGIT_SCALE = math.log(100)  # open_clip's trainer clamps the learned temperature at 100
RECALL_KS = (1, 5, 10)


@dataclass
class PretrainResult:
    """What :func:`pretrain` produced and measured."""

    out: Path  # run folder; also the final encoder checkpoint (EncoderSpec(checkpoint=out))
    model: str
    pretrained: str | None
    epochs: int
    steps: int
    train_images: int
    heldout_images: int
    heldout_descriptions: int  # distinct descriptions of the held-out images (the texts ranked)
    untagged_images: dict[str, int]  # per "<split>.<category>": images without tags, left out
    metrics: dict[str, float]  # held-out recall after the last epoch (percent)
    chance: dict[str, float]  # the same recalls of a random ranking
    history: list[dict[str, Any]] = field(default_factory=list)  # the engine's epoch records
    seconds: float = 0.0
    resumed_from_epoch: int = 0
    missing: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (written to ``OUT/result.json``)."""
        data = dict(self.__dict__)
        data["out"] = str(self.out)
        return data

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [f"pretrained {self.model} for {self.epochs} epochs ({self.steps} steps, {self.seconds:.1f} s) "
                 f"on {self.train_images} images → {self.out}"]
        if self.metrics:
            lines.append(f"held-out: {self.heldout_images} images, {self.heldout_descriptions} distinct descriptions")
            for direction, name in (("i2t", "image→description"), ("t2i", "description→image")):
                parts = ", ".join(f"R@{k} {self.metrics[f'{direction}_R@{k}']:.1f} "
                                  f"(chance {self.chance[f'{direction}_R@{k}']:.1f})" for k in RECALL_KS)
                lines.append(f"  {name}: {parts}")
        else:
            lines.append("held-out: no val split with tags; retrieval not measured")
        if self.untagged_images:
            lines.append("images without tags (left out): " +
                         ", ".join(f"{k}: {v}" for k, v in sorted(self.untagged_images.items())))
        return "\n".join(lines)


class DescriptionRetrieval:
    """Held-out image↔description retrieval: the per-epoch check of pretraining."""

    def __init__(self, images: Sequence[DescribedImage], tokenizer: Callable, preprocess: Callable, *,
                 device: torch.device, options: TrainingOptions) -> None:
        self.paths = [item.path for item in images]
        descriptions = [item.description for item in images]
        self.texts = sorted(set(descriptions))
        position = {text: i for i, text in enumerate(self.texts)}
        self.groups = torch.tensor([position[text] for text in descriptions], dtype=torch.long)
        self.tokenizer, self.preprocess, self.device, self.options = tokenizer, preprocess, device, options
        sizes = torch.bincount(self.groups, minlength=len(self.texts)).tolist()
        self.chance = {**{f"i2t_R@{k}": v for k, v in image_to_text_chance(len(self.texts), RECALL_KS).items()},
                       **{f"t2i_R@{k}": v for k, v in text_to_image_chance(sizes, RECALL_KS).items()}}

    def __call__(self, model: nn.Module) -> dict[str, float]:
        opts = self.options
        images = F.normalize(encode_image_files(model, self.paths, self.preprocess, device=self.device,
                                                precision=opts.precision, batch_size=opts.eval_batch_size,
                                                num_workers=opts.num_workers, show_progress=opts.progress), dim=-1)
        texts = F.normalize(encode_texts(model, self.tokenizer, self.texts, device=self.device,
                                         precision=opts.precision, batch_size=opts.eval_batch_size), dim=-1)
        groups = self.groups.to(images.device)
        i2t = image_to_text_recall(images, texts, groups, RECALL_KS)
        t2i = text_to_image_recall(images, texts, groups, RECALL_KS)
        return {**{f"i2t_R@{k}": v for k, v in i2t.items()}, **{f"t2i_R@{k}": v for k, v in t2i.items()}}


class DescriptionContrast(EncoderLossBase):
    """open_clip's symmetric InfoNCE over image–description pairs, gathered across processes."""

    step_stats = ("logit_scale",)

    def __init__(self, tokenizer: Callable, device: torch.device, ctx: DistributedContext,
                 evaluate: DescriptionRetrieval | None) -> None:
        import open_clip

        self.tokenizer, self.device, self._evaluate = tokenizer, device, evaluate
        # local_loss + gather_with_grad: each process scores its own rows against every column, the
        # memory-efficient form open_clip's trainer recommends; identical to the full loss with one process.
        self.loss_fn = open_clip.ClipLoss(local_loss=True, gather_with_grad=True, rank=ctx.rank,
                                          world_size=ctx.world_size)

    def loss(self, module: nn.Module, batch: Any, position: StepPosition) -> StepOutput:
        images, texts = batch
        tokens = self.tokenizer(list(texts)).to(self.device, non_blocking=True)
        output = module(images.to(self.device, non_blocking=True), tokens)
        if isinstance(output, dict):
            image_features, text_features, scale = (output["image_features"], output["text_features"],
                                                    output["logit_scale"])
        else:
            image_features, text_features, scale = output[:3]
        with quiet_gather_deprecation():
            return StepOutput(self.loss_fn(image_features, text_features, scale))

    def after_step(self, model: nn.Module) -> dict[str, float]:
        with torch.no_grad():
            model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        return {"logit_scale": float(model.logit_scale.detach().exp())}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return self._evaluate(model) if self._evaluate is not None else {}


def pretrain(data_root: str | Path, out: str | Path, *, model: str = DEFAULT_MODEL, pretrained: str | None = None,
             categories: Sequence[str] | None = None, options: TrainingOptions | None = None,
             on_epoch_end: Callable[[dict[str, Any]], None] | None = None, **overrides: Any) -> PretrainResult:
    """Contrastively train ``model`` on the train split's image–description pairs; write it to ``out``.

    ``overrides`` set :class:`TrainingOptions` fields (``epochs=2, batch_size=32, lr=1e-3, ...``)
    on top of ``options``. Works the same under ``torchrun`` (one process per device, only the
    first writes). ``out`` becomes an encoder checkpoint folder that ``EncoderSpec(model=model,
    checkpoint=out)`` and ``cirlab extract --checkpoint`` load.
    """
    from cirlab.encoders import EncoderSpec, create_model

    options = resolve_options(options, overrides)
    out = Path(out)
    dataset = open_dataset(data_root, categories=list(categories) if categories else None)
    report = MissingReport(policy=options.missing)
    train = described_split(dataset, "train", options.missing, report)
    has_heldout = all(dataset.has_split(c, "val") and dataset.tags(c, "val") is not None for c in dataset.categories)
    heldout = described_split(dataset, "val", options.missing, report) if has_heldout else None
    identity = {"kind": "pretrain", "data": str(dataset.root.resolve()), "categories": list(dataset.categories),
                "model": model, "pretrained": pretrained, **options.identity()}

    # The run folder is ours from the resume check to the final weights (the engine holds it again meanwhile).
    with training_session(options) as (ctx, device), lock_folder(out, ctx):
        resume_from = resume_point(out, options, ctx)
        spec = (EncoderSpec(model=model, pretrained=None, checkpoint=resume_from, seed=options.seed)
                if resume_from is not None else EncoderSpec(model=model, pretrained=pretrained, seed=options.seed))
        clip, encoder_preprocess, tokenizer = create_model(spec)
        clip.to(device)
        record_run(out, identity, options, ctx)
        preprocess = build_preprocess(options.preprocess, encoder_preprocess, options.target_ratio)
        evaluate = (DescriptionRetrieval(heldout.images, tokenizer, preprocess, device=device, options=options)
                    if heldout is not None else None)
        objective = EncoderObjective(
            model=clip, model_name=model, learner=DescriptionContrast(tokenizer, device, ctx, evaluate),
            dataset=DescriptionPairs(train.images, preprocess, seed=options.seed), options=options, ctx=ctx,
            device=device, checkpoint_extra={"trained_by": "cirlab pretrain", "data": identity["data"]})
        run = train_encoder(objective, out=out, identity=identity, kind="pretrain", on_epoch_end=on_epoch_end)
        untagged = {f"train.{c}": n for c, n in train.untagged.items()}
        if heldout is not None:
            untagged.update({f"val.{c}": n for c, n in heldout.untagged.items()})
        result = PretrainResult(
            out=out, model=model, pretrained=pretrained, epochs=options.epochs, steps=run.steps,
            train_images=len(train.images), heldout_images=len(heldout.images) if heldout else 0,
            heldout_descriptions=len(evaluate.texts) if evaluate else 0, untagged_images=untagged,
            metrics=run.after, chance=evaluate.chance if evaluate else {},
            history=run.history, seconds=run.seconds, resumed_from_epoch=run.resumed_from_epoch,
            missing=report.to_dict())
        if ctx.is_main:
            atomic_write_json(out / RESULT_FILE, result.to_dict())
        return result
