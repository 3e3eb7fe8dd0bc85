"""``compare``: train one run per negative-sampling strategy on the same budget, then report.

Every run starts from the same config (a YAML file or shipped name, plus overrides) and differs only
in ``negatives``: same feature cache, seed, combiner, loss, epochs, batch size (hence steps) and
optimiser, with an evaluation on the validation protocol after every epoch. Optionally one more run
trains CLIP4Cir's recipe, the contrastive loss over the batch's other targets with no mined
negatives, as the field's reference point.

Runs live in ``OUT/runs/<name>/`` and are resumable: a rerun reuses a run whose ``metrics.json`` says
``complete`` for the same config (:func:`check_same_run`) and feature cache (its identity, by
:func:`~cirlab.features.identity.check_identity`), resumes an interrupted one from its ``last/``
checkpoint, and refuses (one line, nothing deleted) a folder that holds a run of another config.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cirlab.compare.analysis import (
    DEFAULT_THRESHOLD_FRACTION,
    KS,
    default_threshold,
    summarise,
    verdict,
)
from cirlab.compare.result import Baseline, ComparisonResult
from cirlab.errors import ConfigError
from cirlab.features.cache import FeatureCache
from cirlab.io import atomic_write_json, atomic_write_text
from cirlab.training.config import IN_BATCH, TrainConfig, load_config

RUNS_DIR = "runs"
REPORT_FILE = "report.md"
COMPARISON_FILE = "comparison.json"
RECALL_PLOT = "recall_at_10.png"
TRAINING_PLOT = "training_curves.png"
QUERIES_PLOT = "queries-{run}.png"

#: Name of the optional reference run: CLIP4Cir's in-batch contrastive loss, no mined negatives.
CONTRASTIVE_RUN = "contrastive-in-batch"

#: The strategy every other one is judged against.
REFERENCE_STRATEGY = "random"

LOGGER = logging.getLogger(__name__)
Overrides = Mapping[str, Any] | Sequence[str | tuple[str, Any]]


@dataclass
class RunPlan:
    """One run of the comparison: its name, its full training config and what it trains with, in words."""

    name: str
    config: TrainConfig
    description: str
    mines: bool  # whether a sampler mines negatives (False for the in-batch reference)

    @property
    def run_dir(self) -> Path:
        """The run folder."""
        return Path(self.config.out)


def compare(config: str | Path | TrainConfig | None, strategies: Sequence[str], out: str | Path, *,
            epochs: int | None = None, features: str | Path | None = None, include_contrastive: bool = False,
            overrides: Overrides | None = None, threshold: float | None = None,
            threshold_fraction: float = DEFAULT_THRESHOLD_FRACTION, data_root: str | Path | None = None,
            queries: int = 4, query_seed: int = 0) -> ComparisonResult:
    """Train one run per strategy from ``config`` into ``OUT/runs/`` and write the report into ``out``.

    Args:
        config: a YAML config file, a shipped config name (``synthetic``), a :class:`TrainConfig`, or
            ``None`` for the defaults; ``overrides`` (as for :func:`~cirlab.training.load_config`) apply on top.
        strategies: negative sampler names (``random``, ``category``, ``semi-hard``, ``hard``, ``curriculum``...);
            the same sampler options (``negatives_options``) go to each.
        out: the comparison folder: ``runs/``, ``report.md``, ``comparison.json`` and the figures.
        epochs: training epochs of every run (default: the config's).
        features: the feature cache (default: the config's ``features``).
        include_contrastive: also train the in-batch contrastive reference run (CLIP4Cir's recipe).
        threshold: the mean Recall@10 (percent) whose first epoch is reported; by default
            ``threshold_fraction`` of the way from the untrained ``sum`` combiner's Recall@10 to the best
            final Recall@10 over the runs.
        data_root: the data set whose images the query figures show (default: the cache manifest's
            ``data_root``); without images the figures are left out and the report says so.
        queries: validation queries drawn in each query figure (0: no figures); ``query_seed`` picks them.

    Progress (one line per run, and the report's path) goes to this module's logger at INFO level.
    """
    out = Path(out)
    base = _base_config(config, overrides, epochs, features, out)
    if not 0 < threshold_fraction <= 1:
        raise ConfigError(f"threshold fraction must lie in (0, 1], got {threshold_fraction}")
    if queries < 0:
        raise ConfigError(f"the number of queries in a query figure must not be negative, got {queries}")
    plans = plan_runs(base, strategies, out, include_contrastive)
    cache = FeatureCache.open(base.features)

    LOGGER.info("compare: %d runs x %d epochs on %s -> %s", len(plans), base.epochs, cache.root, out)
    baseline = sum_baseline(cache, base)
    histories, steps, reused = _run_all(plans, cache)
    if threshold is None:
        threshold = default_threshold(histories, baseline.recall[10], threshold_fraction)
        leader = max(histories, key=lambda name: _final_recall10(histories[name]))
        rule = (f"{threshold_fraction:.0%} of the way from the untrained sum combiner's "
                f"{baseline.recall[10]:.1f} to the best final Recall@10, {_final_recall10(histories[leader]):.1f} "
                f"({leader})")
    else:
        rule = "given"
    summaries = {plan.name: summarise(plan.name, histories[plan.name], threshold, steps=steps[plan.name],
                                      description=plan.description) for plan in plans}
    for plan in plans:
        if not plan.mines:
            summaries[plan.name].sample_s_per_step = None
    result = ComparisonResult(out=out, runs=summaries, baseline=baseline, threshold=threshold, threshold_rule=rule,
                              reused=reused, setup=_setup(base, plans, cache, config, overrides))
    if REFERENCE_STRATEGY in summaries:
        reference = summaries[REFERENCE_STRATEGY]
        result.verdicts = {name: verdict(run, reference, threshold) for name, run in summaries.items()
                           if name != REFERENCE_STRATEGY}
    else:
        result.notes.append(f"no '{REFERENCE_STRATEGY}' run, so no strategy is judged against random negatives")
    _write_outputs(result, plans, cache, data_root, queries, query_seed)
    return result


# ------------------------------------------------------------------------------------------ plan
def _base_config(config: str | Path | TrainConfig | None, overrides: Overrides | None, epochs: int | None,
                 features: str | Path | None, out: Path) -> TrainConfig:
    """The config every run starts from: file (or object) + overrides + ``epochs`` and ``features``."""
    items: list[Any] = []
    if isinstance(config, TrainConfig):
        items.extend(config.to_dict().items())
        path = None
    else:
        path = config
    if overrides is not None:
        items.extend(overrides.items() if isinstance(overrides, Mapping) else overrides)
    if features is not None:
        items.append(("features", str(features)))
    if epochs is not None:
        items.append(("epochs", epochs))
    items.append(("out", str(out)))  # each run gets its own folder below it (plan_runs)
    base = load_config(path, items).validate()
    if base.epochs < 1:
        raise ConfigError(f"a comparison needs at least one training epoch, got epochs={base.epochs}")
    return base


def check_strategies(strategies: Sequence[str]) -> list[str]:
    """The strategy names, stripped; refuse an empty list, repeats and names no sampler is registered as."""
    from cirlab.negatives import SAMPLERS

    names = [s.strip() for s in strategies if s.strip()]
    known = ", ".join([*SAMPLERS.names(), IN_BATCH])
    if not names:
        raise ConfigError(f"no strategies given; name some of: {known}")
    repeated = sorted({s for s in names if names.count(s) > 1})
    if repeated:
        raise ConfigError(f"strategies listed twice: {', '.join(repeated)}")
    unknown = [s for s in names if s not in SAMPLERS and s != IN_BATCH]
    if unknown:
        raise ConfigError(f"unknown strategies {unknown}; known: {known}")
    return names


def plan_runs(base: TrainConfig, strategies: Sequence[str], out: str | Path,
              include_contrastive: bool = False) -> list[RunPlan]:
    """One :class:`RunPlan` per strategy (and the contrastive reference), checking the names first."""
    names = check_strategies(strategies)
    if include_contrastive and CONTRASTIVE_RUN in names:
        raise ConfigError(f"{CONTRASTIVE_RUN!r} is the name of the contrastive reference run; it is not a strategy")
    runs_dir = Path(out) / RUNS_DIR
    plans = []
    for name in names:
        config = dataclasses.replace(base, negatives=name, out=str(runs_dir / name), eval_every=1, resume=True,
                                     stop_after_epochs=None)
        mined = "no mined negatives (the batch's other targets)" if name == IN_BATCH else \
            f"{name} negatives (k={base.num_negatives})"
        plans.append(RunPlan(name, config, f"{base.loss} loss, {mined}", mines=name != IN_BATCH))
    if include_contrastive:
        config = dataclasses.replace(base, loss="contrastive", loss_options={}, negatives=IN_BATCH,
                                     negatives_options={}, out=str(runs_dir / CONTRASTIVE_RUN), eval_every=1,
                                     resume=True, stop_after_epochs=None)
        plans.append(RunPlan(CONTRASTIVE_RUN, config, "contrastive loss over the batch's targets, no mined "
                                                       "negatives (CLIP4Cir's recipe)", mines=False))
    return plans


# ------------------------------------------------------------------------------------------ runs
def _run_all(plans: list[RunPlan],
             cache: FeatureCache) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int], list[str]]:
    """Train (or resume, or reuse) every planned run; return their histories, steps and the reused names."""
    histories: dict[str, list[dict[str, Any]]] = {}
    steps: dict[str, int] = {}
    reused: list[str] = []
    for number, plan in enumerate(plans, 1):
        prefix = f"[{number}/{len(plans)}] {plan.name}"
        finished = finished_run(plan, cache)
        if finished is not None:
            histories[plan.name], steps[plan.name] = list(finished["history"]), int(finished["steps"])
            reused.append(plan.name)
            LOGGER.info("%s: finished earlier; reusing %s", prefix, plan.run_dir / "metrics.json")
            continue
        LOGGER.info("%s: training %s -> %s", prefix, plan.description, plan.run_dir)
        started = time.perf_counter()
        result = _train(plan.config)
        histories[plan.name], steps[plan.name] = list(result.history), result.steps
        LOGGER.info("%s: done in %.0f s; best headline %.1f at epoch %d", prefix, time.perf_counter() - started,
                    result.best_headline, result.best_epoch)
    return histories, steps, reused


def finished_run(plan: RunPlan, cache: FeatureCache) -> dict[str, Any] | None:
    """The ``metrics.json`` of ``plan``'s run when it is complete and was trained as planned, else ``None``.

    ``None`` also means "train or resume it": the folder is empty, the run was interrupted, or it
    finished fewer epochs than asked. A folder holding a run of another config, of more epochs or on
    another feature cache is refused with a one-line error; nothing is deleted. The cache is the one
    its ``last/`` combiner records (as every trained combiner does), checked by its identity.
    """
    from cirlab.combiners.persistence import CONFIG_FILE, read_combiner_metadata
    from cirlab.engine.checkpoint import LAST
    from cirlab.engine.runlog import METRICS_FILE
    from cirlab.features.identity import check_identity

    path = plan.run_dir / METRICS_FILE
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # rewritten by the trainer when it resumes the run
    if not isinstance(metrics, dict) or metrics.get("status") != "complete":
        return None
    check_same_run(metrics.get("config") or {}, plan.config, run_dir=plan.run_dir)
    done = int(metrics.get("epochs_completed") or 0)
    if done > plan.config.epochs:
        raise ConfigError(f"{plan.run_dir}: holds a run of {done} epochs, more than the {plan.config.epochs} asked; "
                          f"pass --epochs {done} or choose another --out")
    if done < plan.config.epochs:
        return None  # the trainer resumes it for the remaining epochs
    last = plan.run_dir / LAST / CONFIG_FILE
    if last.is_file():
        trained_on = (read_combiner_metadata(last).get("extra") or {}).get("features")
        check_identity(trained_on, cache, what=last, hint="choose another --out or delete that run folder")
    return metrics


def check_same_run(saved_config: Mapping[str, Any], config: TrainConfig, *, run_dir: Path) -> None:
    """Refuse ``run_dir``, whose run was trained with ``saved_config``, unless it is a run of ``config``.

    The comparison is the one a resumed run passes (:func:`cirlab.training.trainer.run_identity`: every key
    but what may change between invocations of a run, such as the device or the number of epochs).
    """
    from cirlab.engine import identity_changes
    from cirlab.training.trainer import run_identity

    changes = identity_changes(saved_config, run_identity(config), limit=3)
    if changes:
        raise ConfigError(f"{run_dir}: holds a run of another config ({changes}); choose another --out or delete "
                          f"that run folder")


def _train(config: TrainConfig) -> Any:
    from cirlab.training import train

    return train(config)


def _final_recall10(history: list[dict[str, Any]]) -> float:
    from cirlab.compare.analysis import THRESHOLD_METRIC, evaluated

    records = evaluated(history)
    return float(records[-1][THRESHOLD_METRIC]) if records else float("-inf")


def evaluated_categories(cache: FeatureCache, config: TrainConfig) -> list[str]:
    """The categories the runs of ``config`` are validated on (the trainer's rule,
    :func:`cirlab.evaluation.evaluated_categories`)."""
    from cirlab.evaluation.fashioniq import evaluated_categories as validated

    return validated(cache, config.val_categories, config.categories, config.val_split)


def sum_baseline(cache: FeatureCache, config: TrainConfig) -> Baseline:
    """Recall of the untrained ``sum`` combiner on the runs' validation protocol."""
    from cirlab.combiners import build_combiner
    from cirlab.evaluation import evaluate_fashioniq
    from cirlab.runtime import resolve_device

    result = evaluate_fashioniq(cache, build_combiner("sum", cache.dim), categories=evaluated_categories(cache, config),
                                split=config.val_split, batch_size=config.eval_batch_size,
                                device=resolve_device(config.device), show_progress=False)
    return Baseline(recall={k: float(result.mean[k]) for k in KS}, headline=float(result.headline))


# ------------------------------------------------------------------------------------------ outputs
def _setup(base: TrainConfig, plans: list[RunPlan], cache: FeatureCache, config: Any,
           overrides: Overrides | None) -> dict[str, Any]:
    """What every run shared, for the report and ``comparison.json``."""
    shared = {key: value for key, value in base.to_dict().items() if key not in ("out", "negatives", "resume")}
    from cirlab.provenance import provenance

    manifest = cache.manifest
    return {
        "provenance": provenance(),
        "config_source": str(config) if isinstance(config, (str, Path)) else None,
        "overrides": [list(item) if isinstance(item, tuple) else item for item in
                      (overrides.items() if isinstance(overrides, Mapping) else (overrides or []))],
        "shared_config": shared,
        "strategies": [plan.name for plan in plans if plan.name != CONTRASTIVE_RUN],
        "include_contrastive": any(plan.name == CONTRASTIVE_RUN for plan in plans),
        "runs": {plan.name: {"folder": str(plan.run_dir), "description": plan.description,
                             "loss": plan.config.loss, "negatives": plan.config.negatives} for plan in plans},
        "features": {"path": str(cache.root), "model": manifest.get("model"), "dim": manifest.get("dim"),
                     "images": manifest.get("num_images"), "triplets": manifest.get("num_triplets"),
                     "data_root": manifest.get("data_root")},
    }


def _write_outputs(result: ComparisonResult, plans: list[RunPlan], cache: FeatureCache,
                   data_root: str | Path | None, queries: int, query_seed: int) -> None:
    """Plots, query figures, ``report.md`` and ``comparison.json`` (each written atomically)."""
    from cirlab.compare.plots import plot_recall, plot_training
    from cirlab.compare.report import render_report
    from cirlab.compare.visualise import QueryFigureUnavailable, resolve_data_root, write_query_figures

    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    result.files["recall_plot"] = plot_recall(result, out / RECALL_PLOT)
    result.files["training_plot"] = plot_training(result, out / TRAINING_PLOT)
    if queries > 0:
        try:
            root = resolve_data_root(cache, data_root)
            figures = write_query_figures(
                cache, root, {plan.name: plan.run_dir for plan in plans},
                {name: out / QUERIES_PLOT.format(run=name) for name in result.runs},
                categories=evaluated_categories(cache, plans[0].config), split=plans[0].config.val_split,
                count=queries, seed=query_seed)
            result.files.update({f"queries:{name}": path for name, path in figures.items()})
        except QueryFigureUnavailable as reason:
            result.notes.append(f"query figures left out: {reason}")
    result.files["report"] = out / REPORT_FILE
    result.files["comparison"] = out / COMPARISON_FILE
    atomic_write_text(out / REPORT_FILE, render_report(result))
    atomic_write_json(out / COMPARISON_FILE, result.to_dict())
    LOGGER.info("report: %s", out / REPORT_FILE)
