"""``run_demo``: the whole pipeline on the synthetic benchmark, stage by stage, each stage cached.

Stages, each writing one sub-folder of ``OUT``:

1. ``data/``: the synthetic FashionIQ-format benchmark (:func:`cirlab.synth.generate`);
2. ``encoder/``: a small open_clip model pretrained CLIP-style on the benchmark's attribute tags
   (:func:`cirlab.encoder_training.pretrain`), standing in for CLIP weights that cannot be downloaded;
3. ``features/``: every image and caption form encoded once (:func:`cirlab.features.extract.extract_features`);
4. ``compare/``: one combiner run per negative-sampling strategy and the report
   (:func:`cirlab.compare.compare`);
5. ``submission/`` (CIRR only): the test server's files for ``test1`` from the best run
   (:func:`cirlab.evaluation.pipeline.evaluate` with ``submission=``), checked against the annotation.

With ``dataset="cirr"`` the benchmark is written in CIRR's layout (``cirlab synth --format cirr``), and
extraction, training and the report follow the cache's data set: CIRR's protocol (Recall@K with the
reference removed, Recall_subset@K, headline the mean of R@5 and Rs@1).

A finished stage is skipped on the next invocation with a line saying so; a stage whose options
changed is redone from scratch together with every later stage; an interrupted stage resumes
(:mod:`cirlab.demo.state`). Each stage shows its own progress; what the demo does, stage by stage, goes
to this module's logger at INFO level (``cirlab demo`` writes it to stderr).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cirlab.compare.result import ComparisonResult
from cirlab.demo.options import DEFAULT_STRATEGIES, DemoOptions
from cirlab.demo.state import COMPLETE, RUNNING, DemoState, stage_key

DATA_DIR, ENCODER_DIR, FEATURES_DIR, COMPARE_DIR = "data", "encoder", "features", "compare"
SUBMISSION_DIR = "submission"
#: The CIRR split whose targets are withheld, for which the demo writes the test server's files.
TEST_SERVER_SPLIT = "test1"

LOGGER = logging.getLogger(__name__)

#: An encoder whose held-out description→image Recall@10 is below this multiple of chance has not learned
#: the tags; the demo says so, since its features leave the combiners little to learn from.
LEARNED_FACTOR = 2.0


@dataclass
class Stage:
    """One cached step of the demo."""

    name: str
    title: str  # what it does, in words
    folder: Path  # everything it writes
    options: dict[str, Any]  # what decides its result (with the stages before it)
    run: Callable[[], str]  # does the work, returns a one-line summary
    reset_options: dict[str, Any] | None = None  # the options whose change makes the folder stale (default: all)


@dataclass
class DemoResult:
    """What :func:`run_demo` did and where the report is."""

    out: Path
    comparison: ComparisonResult
    ran: list[str] = field(default_factory=list)  # stages run by this invocation
    skipped: list[str] = field(default_factory=list)  # stages found complete and skipped
    seconds: float = 0.0
    submission: Path | None = None  # the folder of the test server's files (CIRR only)

    @property
    def report(self) -> Path:
        """The comparison report, ``OUT/compare/report.md``."""
        return self.comparison.report


def run_demo(options: DemoOptions | None = None) -> DemoResult:
    """Run (or finish, or skip through) every stage of the demo into ``options.out``."""
    options = (options or DemoOptions()).validated()
    started = time.perf_counter()
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    state = DemoState(out)
    products: dict[str, Any] = {}
    stages = build_stages(options, products)
    ran: list[str] = []
    skipped: list[str] = []
    previous: str | None = None
    upstream_ran = False
    for number, stage in enumerate(stages, 1):
        label = f"[{number}/{len(stages)}] {stage.title}"
        key = stage_key(stage.options, previous)
        reset_key = stage_key(stage.reset_options if stage.reset_options is not None else stage.options, previous)
        record = state.get(stage.name)
        if (record is not None and record.status == COMPLETE and record.key == key and stage.folder.exists()
                and not upstream_ran):
            LOGGER.info("%s: done earlier, skipping (%s)", label, record.summary)
            skipped.append(stage.name)
            previous = key
            continue
        stale = record is not None and (record.reset_key != reset_key or (upstream_ran and record.status == COMPLETE))
        if stale and stage.folder.exists():
            LOGGER.info("%s: %s was made with other options; removing it and redoing the stage", label, stage.folder)
            shutil.rmtree(stage.folder)
        elif record is not None and record.status == RUNNING and record.key == key:
            LOGGER.info("%s: resuming the interrupted stage", label)
        else:
            LOGGER.info("%s", label)
        state.start(stage.name, key, reset_key, stage.options)
        stage_started = time.perf_counter()
        summary = stage.run()
        seconds = time.perf_counter() - stage_started
        state.complete(stage.name, summary, seconds)
        LOGGER.info("%s: %s (%.0f s)", label, summary, seconds)
        ran.append(stage.name)
        upstream_ran = True
        previous = key
    comparison = products.get("comparison") or load_comparison(out / COMPARE_DIR)
    return DemoResult(out=out, comparison=comparison, ran=ran, skipped=skipped, seconds=time.perf_counter() - started,
                      submission=out / SUBMISSION_DIR if options.dataset == "cirr" else None)


def build_stages(options: DemoOptions, products: dict[str, Any]) -> list[Stage]:
    """The stages for ``options`` (four; five on CIRR); each one's ``run`` stores what later code needs in
    ``products``."""
    from cirlab.synth import GENERATOR_VERSION, SynthConfig

    out = options.out
    data_dir, encoder_dir = out / DATA_DIR, out / ENCODER_DIR
    features_dir, compare_dir, submission_dir = out / FEATURES_DIR, out / COMPARE_DIR, out / SUBMISSION_DIR
    synth = SynthConfig.preset(options.preset).with_overrides(
        seed=options.seed, images_per_category=options.images_per_category, size=options.image_size,
        format=options.dataset, ambiguity=options.ambiguity)
    strategies = demo_strategies(options)

    def data() -> str:
        from cirlab.synth import generate

        summary = generate(data_dir, synth)
        return (f"{summary.total_images} images and {sum(summary.triplets.values())} triplets "
                f"({synth.images_per_category} per category, {synth.size} px) in {data_dir}")

    def encoder() -> str:
        from cirlab.encoder_training.pretraining import pretrain

        result = pretrain(data_dir, encoder_dir, model=options.model, epochs=options.pretrain_epochs,
                          batch_size=options.pretrain_batch_size, lr=options.pretrain_lr, seed=options.seed,
                          num_workers=options.workers, device=options.device, tensorboard=options.tensorboard,
                          resume=True)
        metrics, chance = result.metrics, result.chance
        if "t2i_R@10" not in metrics:
            return f"{options.model} pretrained for {result.epochs} epochs in {encoder_dir}"
        if metrics["t2i_R@10"] < LEARNED_FACTOR * chance["t2i_R@10"]:
            LOGGER.warning("the encoder is barely better than chance at matching images to their descriptions, so "
                "the combiners get little to learn from, and the samplers may find every gallery image too close "
                "to the target to be a negative; raise --pretrain-epochs or --size")
        return (f"{options.model} pretrained for {result.epochs} epochs; held-out description→image R@10 "
                f"{metrics['t2i_R@10']:.1f} (chance {chance['t2i_R@10']:.1f}) in {encoder_dir}")

    def features() -> str:
        from cirlab.encoders import EncoderSpec
        from cirlab.features.extract import extract_features

        spec = EncoderSpec(model=options.model, pretrained=None, checkpoint=encoder_dir, seed=options.seed)
        cache = extract_features(data_dir, spec, features_dir, num_workers=options.workers, device=options.device)
        manifest = cache.manifest
        forms = len(cache.caption_forms)
        return (f"{manifest['num_images']} images and {manifest['num_triplets']} triplets x {forms} caption "
                f"form{'s' if forms > 1 else ''} ({manifest['dim']}-d) in {features_dir}")

    def comparison() -> str:
        from cirlab.compare import compare

        overrides = [("batch_size", options.batch_size), ("seed", options.seed), ("device", options.device),
                     ("tensorboard", options.tensorboard), *options.train_overrides]
        result = compare(options.config, strategies, compare_dir, seeds=options.seeds, epochs=options.epochs,
                         features=features_dir, include_contrastive=options.include_contrastive,
                         include_seed=options.include_seed, overrides=overrides, queries=options.queries,
                         jobs=options.jobs)
        products["comparison"] = result
        best = result.best_strategy()
        return (f"{len(result.strategies)} strategies x {options.seeds} seeds; best: {best.name} (headline "
                f"{best.selected['headline'].mean:.1f} on {result.reported}, untrained sum "
                f"{result.untrained.headline:.1f}); report in {result.report}")

    def submission() -> str:
        from cirlab.evaluation.pipeline import evaluate

        result = products.get("comparison") or load_comparison(compare_dir)
        run, checkpoint = best_run(result)
        evaluate(features_dir, checkpoint=run / checkpoint, split=TEST_SERVER_SPLIT, submission=submission_dir,
                 device=options.device, show_progress=False)
        return (f"test-server files for {TEST_SERVER_SPLIT} from {run.relative_to(compare_dir)} ({checkpoint}/), "
                f"checked against the annotation, in {submission_dir}")

    train_options = {"config": options.config, "epochs": options.epochs, "batch_size": options.batch_size,
                     "seed": options.seed, "overrides": [list(item) for item in options.train_overrides]}
    stages = [
        Stage("data", "generate the synthetic benchmark" + (" in CIRR's layout" if options.dataset == "cirr" else ""),
              data_dir,
              {"generator_version": GENERATOR_VERSION, **synth.to_dict()}, data),
        Stage("encoder", f"pretrain {options.model} on the tags", encoder_dir,
              {"model": options.model, "epochs": options.pretrain_epochs, "batch_size": options.pretrain_batch_size,
               "lr": options.pretrain_lr, "seed": options.seed}, encoder),
        Stage("features", "extract image and caption features", features_dir, {"preprocess": "targetpad"}, features),
        Stage("compare", f"compare {', '.join(strategies)}"
              + (" and the in-batch contrastive reference" if options.include_contrastive else "")
              + (" and the seed system" if options.include_seed else "") + f" with {options.seeds} seeds", compare_dir,
              {**train_options, "strategies": list(strategies), "include_contrastive": options.include_contrastive,
               "include_seed": options.include_seed, "seeds": options.seeds,
               "queries": options.queries}, comparison,
              reset_options=train_options),
    ]
    if options.dataset == "cirr":
        stages.append(Stage("submission", f"write the test server's files for {TEST_SERVER_SPLIT} from the best run",
                            submission_dir, {"split": TEST_SERVER_SPLIT}, submission))
    return stages


def best_run(result: ComparisonResult) -> tuple[Path, str]:
    """The run folder of the best strategy's best seed (by the reported headline) and its reported checkpoint
    (``best`` or ``last``, as the comparison selected)."""
    from cirlab.compare.assemble import SELECTED_CHECKPOINT, run_name
    from cirlab.compare.runner import RUNS_DIR

    best = result.best_strategy()
    values = best.selected["headline"].values
    seed = best.seeds[max(range(len(values)), key=values.__getitem__)]
    return result.out / RUNS_DIR / run_name(best.name, seed), SELECTED_CHECKPOINT[result.selection]


def demo_strategies(options: DemoOptions) -> list[str]:
    """The strategies to compare: as given (checked), or the defaults that this installation registers."""
    if tuple(options.strategies) != DEFAULT_STRATEGIES:
        from cirlab.compare.runner import check_strategies

        return check_strategies(options.strategies)
    from cirlab.negatives import SAMPLERS

    return [name for name in DEFAULT_STRATEGIES if name in SAMPLERS]


def load_comparison(folder: Path) -> ComparisonResult:
    """The comparison in ``folder``, recomputed from its run folders, for a demo whose last stage was skipped."""
    from cirlab.compare.runner import recompute

    return recompute(folder, write=False)
