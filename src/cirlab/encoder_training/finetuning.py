"""CLIP4Cir stage one: adapt the CLIP encoders themselves on composed-retrieval triplets.

Following Baldrati et al. (CLIP4Cir), the query of a triplet is the normalised sum of the reference
image's and the relative caption's (un-normalised) CLIP features, the target is the normalised
image feature of the target, and the loss is the cross-entropy of the query against every target
of the batch with a fixed logit scale of 100. Captions take one of the four training forms
(:func:`cirlab.data.training_caption`), images go through target-pad preprocessing. Start from real
CLIP weights (``RN50x4``/``openai``), a ``cirlab pretrain`` checkpoint, or a random initialisation.
Recall on the val split (reference + caption → target, gallery = the split's images, per category)
is measured before training and after every epoch.

Under ``torchrun`` each query is scored against every process's targets, gathered with their gradients,
so N processes at batch b compute the loss of one process at batch N·b (``ContrastOptions.gather_batch``).
With a negative sampler (``ContrastOptions.negatives``), each query also gets ``k`` negatives mined over
the training gallery, re-encoded every N steps (:mod:`cirlab.encoder_training.mining`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cirlab.data import DatasetReader, MissingReport, build_preprocess, eval_caption, open_dataset, validation_inputs
from cirlab.distributed import DistributedContext
from cirlab.encoder_training.datasets import TripletSamples, split_triplets
from cirlab.encoder_training.encoding import encode_image_files, encode_texts
from cirlab.encoder_training.loop import (
    EncoderLossBase,
    EncoderObjective,
    StepPosition,
    train_encoder,
)
from cirlab.encoder_training.mining import GalleryMining, gallery_records
from cirlab.encoder_training.options import (
    FINETUNE_DEFAULTS,
    TRAINABLE_TOWERS,
    ContrastOptions,
    TrainingOptions,
    resolve_options,
)
from cirlab.encoder_training.retrieval import composed_chance, composed_recall
from cirlab.encoder_training.session import record_run, resume_point, training_session
from cirlab.engine import StepOutput
from cirlab.errors import ConfigError
from cirlab.io import atomic_write_json
from cirlab.locking import lock_folder

RESULT_FILE = "result.json"
LOGIT_SCALE = 100.0  # CLIP4Cir's fixed scale of the query–target similarities
RECALL_KS = (1, 10, 50)


@dataclass
class FinetuneResult:
    """What :func:`finetune` produced and measured."""

    out: Path  # run folder; also the final encoder checkpoint (EncoderSpec(checkpoint=out))
    model: str
    source: dict[str, Any]  # where the starting weights came from (EncoderSpec.to_dict())
    trainable: str  # which towers were trained: both, image or text
    epochs: int
    steps: int
    train_triplets: int
    contrast: dict[str, Any]  # what each query was contrasted with (ContrastOptions)
    gallery_size: int  # images of the mining gallery (0: nothing mined)
    before: dict[str, float]  # val recall of the starting weights (percent)
    after: dict[str, float]  # val recall after the last epoch
    chance: dict[str, float]  # the same recalls of a random ranking
    val_queries: dict[str, int] = field(default_factory=dict)  # per category: queries ranked
    outside_gallery: dict[str, int] = field(default_factory=dict)  # per category: queries left unranked
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
        lines = [f"fine-tuned {self.model} ({self.trainable} towers, from {_source_words(self.source)}) for "
                 f"{self.epochs} epochs ({self.steps} steps, {self.seconds:.1f} s) on {self.train_triplets} "
                 f"triplets → {self.out}"]
        if self.gallery_size:
            every = self.contrast["refresh_every"]
            lines.append(f"  negatives: {self.contrast['num_negatives']} per query, {self.contrast['negatives']} over "
                         f"{self.gallery_size} training images, re-encoded "
                         f"{f'every {every} steps' if every else 'once, before the first step'}")
        if self.after:
            for key in [k for k in self.after if "_" not in k]:
                lines.append(f"  val {key}: {self.before.get(key, float('nan')):.2f} → {self.after[key]:.2f} "
                             f"(chance {self.chance.get(key, float('nan')):.2f})")
        else:
            lines.append("val: no val split; recall not measured")
        skipped = sum(self.outside_gallery.values())
        if skipped:
            lines.append(f"val queries whose reference or target is outside the gallery (not ranked): {skipped}")
        return "\n".join(lines)


class CompositionNet(nn.Module):
    """CLIP4Cir's query and target embeddings from a CLIP model (the module DDP wraps)."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, reference: Tensor, target: Tensor, text: Tensor) -> tuple[Tensor, Tensor]:
        images = self.clip.encode_image(torch.cat([reference, target]))
        reference_features, target_features = images.split([reference.shape[0], target.shape[0]])
        query = compose(reference_features, self.clip.encode_text(text))
        return query, F.normalize(target_features, dim=-1)


def compose(reference_features: Tensor, text_features: Tensor) -> Tensor:
    """CLIP4Cir's combining function: the normalised sum of the un-normalised image and text features."""
    return F.normalize(reference_features + text_features, dim=-1)


class CompositionContrast(EncoderLossBase):
    """Cross-entropy of each query against the batch's targets (gathered from every process) and, with
    ``mining``, against its mined negatives as extra columns.

    Written here rather than taken from open_clip because :class:`open_clip.ClipLoss` is symmetric
    (image→text and text→image) while CLIP4Cir's loss runs one way, query→target, with a fixed scale.
    Under ``torchrun`` the targets are gathered with :meth:`~cirlab.distributed.DistributedContext.gather_with_grad`
    (open_clip's ``--gather-with-grad --local-loss``); with ``gather_batch`` off, each process scores its queries
    against its own targets only (``gather_batch`` off). Mined negatives are extra columns of each query's
    row, as in :class:`cirlab.losses.ContrastiveLoss`: the softmax runs over the batch's targets and the
    query's ``k`` negatives (:mod:`cirlab.encoder_training.mining` says where their features come from).
    """

    def __init__(self, tokenizer: Callable, device: torch.device, ctx: DistributedContext,
                 evaluate: ComposedRetrieval | None, *, gather_batch: bool = True,
                 mining: GalleryMining | None = None) -> None:
        self.tokenizer, self.device, self.ctx, self._evaluate = tokenizer, device, ctx, evaluate
        self.gather_batch, self.mining = gather_batch, mining
        self.step_stats = mining.step_stats if mining is not None else ()

    def loss(self, module: nn.Module, batch: Any, position: StepPosition) -> StepOutput:
        reference, captions, target, indices = batch
        stats = self.mining.prepare(position) if self.mining is not None else {}
        tokens = self.tokenizer(list(captions)).to(self.device, non_blocking=True)
        query, target_features = module(reference.to(self.device, non_blocking=True),
                                        target.to(self.device, non_blocking=True), tokens)
        negatives = None
        if self.mining is not None:
            negatives, timing = self.mining.negatives(query, indices, position)
            stats.update(timing)
        labels = torch.arange(query.shape[0], device=query.device)
        if self.gather_batch:  # every process scores its queries against all processes' targets, with gradients
            target_features = self.ctx.gather_with_grad(target_features)
            labels = labels + query.shape[0] * self.ctx.rank
        logits = LOGIT_SCALE * query @ target_features.T
        if negatives is not None:
            mined = LOGIT_SCALE * torch.einsum("bd,bkd->bk", query, negatives.to(query.dtype))
            logits = torch.cat([logits, mined], dim=1)
        return StepOutput(F.cross_entropy(logits, labels), stats)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return self._evaluate(model) if self._evaluate is not None else {}

    def epoch_stats(self) -> dict[str, float]:
        return self.mining.epoch_stats() if self.mining is not None else {}

    def generators(self) -> dict[str, torch.Generator]:
        return self.mining.generators() if self.mining is not None else {}

    def state_dict(self) -> dict[str, Any]:
        return self.mining.state_dict() if self.mining is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.mining is not None:
            self.mining.load_state_dict(state)


@dataclass
class _CategoryQueries:
    gallery: list[Path]
    references: Tensor  # gallery index of each query's reference
    targets: Tensor  # gallery index of each query's target
    captions: list[str]  # evaluation form ("C1 and c2")


class ComposedRetrieval:
    """Val-split composed retrieval per category (FashionIQ protocol: the gallery is the split's images)."""

    def __init__(self, dataset: DatasetReader, tokenizer: Callable, preprocess: Callable, *, device: torch.device,
                 options: TrainingOptions, report: MissingReport | None = None) -> None:
        self.tokenizer, self.preprocess, self.device, self.options = tokenizer, preprocess, device, options
        self.categories: dict[str, _CategoryQueries] = {}
        self.outside_gallery: dict[str, int] = {}
        self.chance: dict[str, float] = {}
        for category in dataset.categories:
            if not dataset.has_split(category, "val"):
                continue
            inputs = validation_inputs(dataset, category, "val", options.missing, report)
            position = {image_id: i for i, image_id in enumerate(inputs.gallery)}
            outside = {t.index for t in inputs.outside_gallery}
            queries = [t for t in inputs.queries if t.index not in outside]
            self.outside_gallery[category] = len(outside)
            if not queries:
                continue
            self.categories[category] = _CategoryQueries(
                gallery=[dataset.image_path(i) for i in inputs.gallery],
                references=torch.tensor([position[t.reference] for t in queries]),
                targets=torch.tensor([position[t.target] for t in queries]),
                captions=[eval_caption(t.captions) for t in queries])
            for k, value in composed_chance(len(inputs.gallery), RECALL_KS).items():
                self.chance[f"{category}_R@{k}"] = value
        self.chance.update(_averages(self.chance, list(self.categories)))

    @property
    def query_counts(self) -> dict[str, int]:
        """Queries ranked per category."""
        return {c: len(q.captions) for c, q in self.categories.items()}

    def __call__(self, model: nn.Module) -> dict[str, float]:
        opts = self.options
        metrics: dict[str, float] = {}
        for category, queries in self.categories.items():
            images = encode_image_files(model, queries.gallery, self.preprocess, device=self.device,
                                        precision=opts.precision, batch_size=opts.eval_batch_size,
                                        num_workers=opts.num_workers, show_progress=opts.progress)
            texts = encode_texts(model, self.tokenizer, queries.captions, device=self.device,
                                 precision=opts.precision, batch_size=opts.eval_batch_size)
            query = compose(images[queries.references.to(images.device)], texts)
            recall = composed_recall(query, F.normalize(images, dim=-1), queries.targets.to(images.device),
                                     RECALL_KS)
            metrics.update({f"{category}_R@{k}": v for k, v in recall.items()})
        metrics.update(_averages(metrics, list(self.categories)))
        return metrics


def _averages(per_category: dict[str, float], categories: list[str]) -> dict[str, float]:
    """Mean over categories of each Recall@K, plus FashionIQ's headline mean of R@10 and R@50."""
    if not categories:
        return {}
    means = {f"R@{k}": sum(per_category[f"{c}_R@{k}"] for c in categories) / len(categories) for k in RECALL_KS}
    means["R@mean"] = (means["R@10"] + means["R@50"]) / 2
    return means


def set_trainable(clip: nn.Module, towers: str) -> None:
    """Train the image tower, the text tower or both; the logit scale (and bias) stay fixed."""
    if towers not in TRAINABLE_TOWERS:
        raise ConfigError(f"unknown towers {towers!r}; use one of {list(TRAINABLE_TOWERS)}")
    visual = {id(p) for p in clip.visual.parameters()}
    for name, param in clip.named_parameters():
        if name in ("logit_scale", "logit_bias"):
            param.requires_grad_(False)
        elif id(param) in visual:
            param.requires_grad_(towers in ("both", "image"))
        else:
            param.requires_grad_(towers in ("both", "text"))


def finetune(data_root: str | Path, out: str | Path, *, checkpoint: str | Path | None = None,
             model: str | None = None, pretrained: str | None = "openai", towers: str = "both",
             categories: Sequence[str] | None = None, options: TrainingOptions | None = None,
             contrast: ContrastOptions | None = None, on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
             **overrides: Any) -> FinetuneResult:
    """Fine-tune CLIP encoders on the train split's triplets; write the result to ``out``.

    Starting weights: ``checkpoint`` (a cirlab encoder checkpoint folder, e.g. a ``pretrain`` run), or
    ``model`` with ``pretrained`` (an open_clip tag such as ``openai``, or ``None`` for a random
    initialisation). ``overrides`` set :class:`TrainingOptions` fields on top of ``options`` (whose
    defaults here are CLIP4Cir's: lr 2e-6, batch 128). ``contrast`` says what each query is contrasted with
    (default: the batch's targets, gathered from every process; :class:`ContrastOptions` adds mined negatives
    from a gallery refreshed every N steps).
    """
    from cirlab.encoders import EncoderSpec, create_model, read_checkpoint_config

    options = resolve_options(options, overrides, FINETUNE_DEFAULTS)
    contrast = contrast if contrast is not None else ContrastOptions()
    contrast.check_sampler()
    if towers not in TRAINABLE_TOWERS:
        raise ConfigError(f"unknown towers {towers!r}; use one of {list(TRAINABLE_TOWERS)}")
    if checkpoint is not None:
        name = read_checkpoint_config(checkpoint)["model"]
        if model is not None and model != name:
            raise ConfigError(f"{checkpoint}: checkpoint holds a {name!r} model, not {model!r}")
        source = EncoderSpec(model=name, pretrained=None, checkpoint=Path(checkpoint), seed=options.seed)
    elif model is not None:
        source = EncoderSpec(model=model, pretrained=pretrained, seed=options.seed)
    else:
        raise ConfigError("finetune needs starting weights: a --checkpoint folder or a --model name")
    out = Path(out)
    dataset = open_dataset(data_root, categories=list(categories) if categories else None)
    report = MissingReport(policy=options.missing)
    triplets = split_triplets(dataset, "train", options.missing, report)
    identity = {"kind": "finetune", "data": str(dataset.root.resolve()), "categories": list(dataset.categories),
                "source": {**source.to_dict(), "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None},
                "towers": towers, **options.identity(), **contrast.identity()}

    # The run folder is ours from the resume check to the final weights (the engine holds it again meanwhile).
    with training_session(options) as (ctx, device), lock_folder(out, ctx):
        resume_from = resume_point(out, options, ctx)
        spec = (EncoderSpec(model=source.model, pretrained=None, checkpoint=resume_from, seed=options.seed)
                if resume_from is not None else source)
        clip, encoder_preprocess, tokenizer = create_model(spec)
        set_trainable(clip, towers)
        clip.to(device)
        record_run(out, identity, options, ctx)
        preprocess = build_preprocess(options.preprocess, encoder_preprocess, options.target_ratio)
        evaluate = ComposedRetrieval(dataset, tokenizer, preprocess, device=device, options=options, report=report)
        mining = None
        if contrast.mines:
            records = gallery_records(dataset, triplets, options.missing, ctx=ctx, num_workers=options.num_workers)
            mining = GalleryMining(records, contrast, model=clip, preprocess=preprocess, options=options, ctx=ctx,
                                   device=device)
        learner = CompositionContrast(tokenizer, device, ctx, evaluate if evaluate.categories else None,
                                      gather_batch=contrast.gather_batch, mining=mining)
        objective = EncoderObjective(
            model=clip, forward_module=CompositionNet(clip), model_name=source.model, learner=learner,
            dataset=TripletSamples(dataset, triplets, preprocess, seed=options.seed), options=options, ctx=ctx,
            device=device, checkpoint_extra={"trained_by": "cirlab finetune", "data": identity["data"],
                                             "source": identity["source"]})
        run = train_encoder(objective, out=out, identity=identity, evaluate_before=True, kind="finetune",
                            on_epoch_end=on_epoch_end)
        result = FinetuneResult(
            out=out, model=source.model, source=identity["source"], trainable=towers, epochs=options.epochs,
            steps=run.steps, train_triplets=len(triplets), contrast=asdict(contrast),
            gallery_size=len(mining.records) if mining is not None else 0, before=run.before or {},
            after=run.after, chance=evaluate.chance,
            val_queries=evaluate.query_counts, outside_gallery=evaluate.outside_gallery, history=run.history,
            seconds=run.seconds, resumed_from_epoch=run.resumed_from_epoch, missing=report.to_dict())
        if ctx.is_main:
            atomic_write_json(out / RESULT_FILE, result.to_dict())
        return result


def _source_words(source: dict[str, Any]) -> str:
    if source.get("checkpoint"):
        return f"checkpoint {source['checkpoint']}"
    return f"{source['pretrained']} weights" if source.get("pretrained") else "a random initialisation"
