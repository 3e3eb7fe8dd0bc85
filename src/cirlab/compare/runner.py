"""``compare``: train every strategy with several seeds on the same budget, then report with intervals.

Every run starts from the same config (a YAML file or shipped name, plus overrides) and differs only
in ``negatives`` and its seed: same feature cache, combiner, loss, epochs, batch size (hence steps) and
optimiser, with an evaluation on the validation protocol after every epoch. A seed changes the
combiner's initialisation, the data order and the sampler's draws. Optional reference runs train
CLIP4Cir's recipe (the contrastive loss over the batch's other targets, no mined negatives) and the
seed system's recipe (``seed-synthetic`` / ``seed-fashioniq-rn50x4``) on the same features and seeds.

Runs live in ``OUT/runs/<strategy>/seed-<s>/`` and are resumable: a rerun reuses a run whose
``metrics.json`` says ``complete`` for the same config (:func:`check_same_run`) and feature cache (its
identity, by :func:`~cirlab.features.identity.check_identity`), resumes an interrupted one from its
``last/`` checkpoint, and refuses (one line, nothing deleted) a folder that holds a run of another config.

Model selection is explicit: ``selection="val"`` reports each run's best validation epoch, ``"last"`` its
last epoch. Where the data set has test targets, the selected checkpoint is evaluated on test after
training and the report leads with those figures (``"auto"``, the default, selects on val then); without
them, ``"auto"`` reports the last epoch, so that no number is selected on the split it is reported on.
Every statistic is computed from the runs' per-query ranks (:mod:`cirlab.compare.assemble`), and
:func:`recompute` rebuilds the report from the run folders alone.
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

from cirlab.compare.analysis import KS
from cirlab.compare.assemble import (
    CONTRASTIVE_RUN,
    SEED_SYSTEM_RUN,
    SELECTED_CHECKPOINT,
    RunEntry,
    assemble,
    run_name,
)
from cirlab.compare.result import Baseline, ComparisonResult
from cirlab.compare.statistics import DEFAULT_DRAWS, HEADLINE
from cirlab.errors import CacheMismatchError, ConfigError
from cirlab.features.cache import FeatureCache
from cirlab.io import atomic_write_json, atomic_write_text
from cirlab.training.config import IN_BATCH, TrainConfig, load_config

RUNS_DIR = "runs"
REPORT_FILE = "report.md"
COMPARISON_FILE = "comparison.json"
RECALL_PLOT = "recall_at_10.png"
TRAINING_PLOT = "training_curves.png"
LEDGER_PLOT = "negative_ledger.png"
QUERIES_PLOT = "queries-{run}.png"

#: The strategy every other one is judged against, by default.
DEFAULT_BASELINE = "random"

#: Between a strategy's sampler and the loss it trains with instead of the config's: ``hard@hn-nce``.
LOSS_SEPARATOR = "@"

#: How each run's reported checkpoint is chosen (see the module notes).
SELECTIONS: tuple[str, ...] = ("auto", "val", "last")

#: The split a selected checkpoint is reported on when the data set has its targets.
TEST_SPLIT = "test"

#: The seed system's shipped recipe for features of each dimension (RN50x4's 640-d, else the synthetic one).
SEED_RECIPES: dict[int, str] = {640: "seed-fashioniq-rn50x4"}
SEED_RECIPE_DEFAULT = "seed-synthetic"

LOGGER = logging.getLogger(__name__)
Overrides = Mapping[str, Any] | Sequence[str | tuple[str, Any]]


@dataclass
class RunPlan:
    """One run of the comparison: strategy, seed, full training config and what it trains with, in words."""

    strategy: str
    seed: int
    config: TrainConfig
    description: str
    mines: bool  # whether a sampler mines negatives (False for in-batch)

    @property
    def name(self) -> str:
        """``<strategy>/seed-<seed>``."""
        return run_name(self.strategy, self.seed)

    @property
    def run_dir(self) -> Path:
        """The run folder."""
        return Path(self.config.out)

    def entry(self) -> RunEntry:
        """What the report needs of this run (recorded in ``comparison.json``)."""
        return RunEntry(strategy=self.strategy, seed=self.seed, folder=str(self.run_dir),
                        description=self.description, loss=self.config.loss, negatives=self.config.negatives,
                        mines=self.mines)


def compare(config: str | Path | TrainConfig | None, strategies: Sequence[str], out: str | Path, *,
            seeds: int | None = None, epochs: int | None = None, features: str | Path | None = None,
            include_contrastive: bool = False, include_seed: bool = False, overrides: Overrides | None = None,
            baseline: str = DEFAULT_BASELINE, threshold: float | None = None, selection: str = "auto",
            draws: int = DEFAULT_DRAWS, data_root: str | Path | None = None, queries: int = 4,
            query_seed: int = 0, jobs: int | str = 1) -> ComparisonResult:
    """Train every strategy with ``seeds`` seeds from ``config`` into ``OUT/runs/`` and write the report into ``out``.

    Args:
        config: a YAML config file, a shipped config name (``synthetic``), a :class:`TrainConfig`, or
            ``None`` for the defaults; ``overrides`` (as for :func:`~cirlab.training.load_config`) apply on top.
        strategies: negative sampler names (``random``, ``category``, ``semi-hard``, ``hard``, ``curriculum``...);
            the same sampler options (``negatives_options``) go to each. ``SAMPLER@LOSS`` (``hard@hn-nce``,
            ``in-batch@contrastive``) trains that sampler with that loss (its default options) instead of the
            config's, so that one comparison can hold either loss with any sampler.
        out: the comparison folder: ``runs/``, ``report.md``, ``comparison.json`` and the figures.
        seeds: runs per strategy, with seeds ``seed``, ``seed + 1``... (default: the config's ``seeds``, 3).
        epochs: training epochs of every run (default: the config's).
        features: the feature cache (default: the config's ``features``).
        include_contrastive: also train the in-batch contrastive reference runs (CLIP4Cir's recipe).
        include_seed: also train the seed system's recipe as reference runs, on the same features and seeds.
        baseline: the strategy every other one is compared with (paired bootstrap over seeds and queries).
        threshold: the mean Recall@10 (percent) whose first epoch measures learning speed (default: the
            baseline's mean final Recall@10).
        selection: ``auto``, ``val`` or ``last`` (see the module notes).
        draws: bootstrap draws of every interval.
        data_root: the data set whose images the query figures show (default: the cache manifest's
            ``data_root``); without images the figures are left out and the report says so.
        queries: validation queries drawn in each query figure (0: no figures); ``query_seed`` picks them.
        jobs: runs trained at once, each in its own worker process with an equal share of the CPU cores
            (:mod:`cirlab.compare.parallel`), or ``"auto"`` (one per core up to 4 on a CPU, one on a GPU).
            The results are those of training the runs one after another.

    Progress (one line per run, and the report's path) goes to this module's logger at INFO level.
    """
    out = Path(out)
    if selection not in SELECTIONS:
        raise ConfigError(f"unknown selection {selection!r}; use one of {', '.join(SELECTIONS)}")
    if queries < 0:
        raise ConfigError(f"the number of queries in a query figure must not be negative, got {queries}")
    if draws < 100:
        raise ConfigError(f"a bootstrap needs at least 100 draws, got {draws}")
    base = _base_config(config, overrides, epochs, features, out, seeds)
    plans = plan_runs(base, strategies, out, include_contrastive=include_contrastive, include_seed=include_seed)
    if baseline not in {plan.strategy for plan in plans}:
        raise ConfigError(f"the baseline {baseline!r} is not among the compared runs; add it to --strategies or "
                          f"choose another --baseline")
    cache = FeatureCache.open(base.features)
    categories = evaluated_categories(cache, base)
    reported = TEST_SPLIT if has_test_targets(cache, categories) else base.val_split
    if selection == "auto":
        selection = "val" if reported == TEST_SPLIT else "last"
    LOGGER.info("compare: %d runs (%d seeds) x %d epochs on %s -> %s", len(plans), base.seeds, base.epochs,
                cache.root, out)
    from cirlab.compare.parallel import resolve_jobs

    reused = _run_all(plans, cache, resolve_jobs(jobs, len(plans), base.device))
    queries_info = {"val": _validation_accounting(plans[0])}
    if reported == TEST_SPLIT:
        queries_info[TEST_SPLIT] = _evaluate_selected(plans, cache, categories, selection)
    for split, info in queries_info.items():
        ambiguity = ambiguous_queries(cache, split, categories)
        if info and ambiguity:
            info["ambiguous_queries"] = ambiguity
    untrained = sum_baseline(cache, base, categories, reported)
    headline = headline_metrics(cache, reported)
    setup = _setup(base, plans, cache, config, overrides, reported=reported, selection=selection,
                   baseline=baseline, threshold=threshold, draws=draws, untrained=untrained, queries_info=queries_info,
                   headline=list(headline))
    result = assemble(out, [plan.entry() for plan in plans], baseline=baseline, selection=selection,
                      reported=reported, untrained=untrained, val_split=base.val_split, threshold=threshold,
                      draws=draws, queries=queries_info, setup=setup, reused=reused, headline=headline)
    write_outputs(result, cache=cache, data_root=data_root, queries=queries, query_seed=query_seed)
    return result


def recompute(out: str | Path, *, write: bool = True) -> ComparisonResult:
    """The comparison in ``out``, recomputed from its run folders (their ``metrics.json`` and ``ranks.npz``)
    with the settings ``comparison.json`` recorded; with ``write``, its report, figures (query figures
    aside) and ``comparison.json`` are rewritten. Nothing is trained."""
    out = Path(out)
    path = out / COMPARISON_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        setup = data["setup"]
        entries = [RunEntry(**entry) for entry in setup["run_entries"]]
        untrained = Baseline.from_dict(setup["untrained_sum"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CacheMismatchError(f"{path}: not a comparison this cirlab can recompute ({error})") from None
    result = assemble(out, entries, baseline=setup["baseline"], selection=setup["selection"],
                      reported=setup["reported"], untrained=untrained, val_split=setup["shared_config"]["val_split"],
                      threshold=setup.get("threshold"), draws=int(setup["draws"]), queries=setup.get("queries"),
                      setup=setup, reused=[e.name for e in entries],
                      headline=tuple(setup.get("headline") or HEADLINE))
    # the files as written (query figures are kept as they were drawn; the rest is redrawn with ``write``)
    result.files.update({key: Path(value) for key, value in data.get("files", {}).items()})
    if write:
        write_outputs(result, cache=None, data_root=None, queries=0, query_seed=0)
    return result


# ------------------------------------------------------------------------------------------ plan
def _base_config(config: str | Path | TrainConfig | None, overrides: Overrides | None, epochs: int | None,
                 features: str | Path | None, out: Path, seeds: int | None = None) -> TrainConfig:
    """The config every run starts from: file (or object) + overrides + ``epochs``, ``features`` and ``seeds``."""
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
    if seeds is not None:
        items.append(("seeds", seeds))
    items.append(("out", str(out)))  # each run gets its own folder below it (plan_runs)
    base = load_config(path, items).validate()
    if base.epochs < 1:
        raise ConfigError(f"a comparison needs at least one training epoch, got epochs={base.epochs}")
    return base


def split_strategy(strategy: str) -> tuple[str, str | None]:
    """A strategy's sampler and the loss it names: ``hard@hn-nce`` → ``("hard", "hn-nce")``, ``hard`` →
    ``("hard", None)`` (the config's loss)."""
    sampler, separator, loss = strategy.partition(LOSS_SEPARATOR)
    return sampler, loss if separator else None


def check_strategies(strategies: Sequence[str]) -> list[str]:
    """The strategy names, stripped; refuse an empty list, repeats, names no sampler is registered as, and
    losses (``SAMPLER@LOSS``) no loss is registered as."""
    from cirlab.losses import LOSSES
    from cirlab.negatives import SAMPLERS

    names = [s.strip() for s in strategies if s.strip()]
    known = ", ".join([*SAMPLERS.names(), IN_BATCH])
    if not names:
        raise ConfigError(f"no strategies given; name some of: {known}")
    repeated = sorted({s for s in names if names.count(s) > 1})
    if repeated:
        raise ConfigError(f"strategies listed twice: {', '.join(repeated)}")
    unknown = [s for s in names if split_strategy(s)[0] not in SAMPLERS and split_strategy(s)[0] != IN_BATCH]
    if unknown:
        raise ConfigError(f"unknown strategies {unknown}; known: {known}")
    unknown = [s for s in names if split_strategy(s)[1] is not None and split_strategy(s)[1] not in LOSSES]
    if unknown:
        raise ConfigError(f"unknown losses in strategies {unknown} (SAMPLER{LOSS_SEPARATOR}LOSS); known losses: "
                          f"{', '.join(LOSSES.names())}")
    return names


def plan_runs(base: TrainConfig, strategies: Sequence[str], out: str | Path, *, include_contrastive: bool = False,
              include_seed: bool = False) -> list[RunPlan]:
    """One :class:`RunPlan` per strategy and seed (and reference run and seed), checking the names first."""
    names = check_strategies(strategies)
    for reference, wanted in ((CONTRASTIVE_RUN, include_contrastive), (SEED_SYSTEM_RUN, include_seed)):
        if wanted and reference in names:
            raise ConfigError(f"{reference!r} is the name of a reference run; it is not a strategy")
    runs_dir = Path(out) / RUNS_DIR
    seeds = [base.seed + i for i in range(base.seeds)]
    plans = []

    def add(name: str, config: TrainConfig, description: str, mines: bool) -> None:
        for seed in seeds:
            plans.append(RunPlan(name, seed, dataclasses.replace(
                config, seed=seed, out=str(runs_dir / run_name(name, seed)), eval_every=1, resume=True,
                stop_after_epochs=None), description, mines))

    for name in names:
        sampler, loss = split_strategy(name)
        mined = "no mined negatives (the batch's other targets)" if sampler == IN_BATCH else \
            f"{sampler} negatives (k={base.num_negatives})"
        config = dataclasses.replace(base, negatives=sampler)
        if loss is not None and loss != base.loss:  # another loss starts from its own defaults
            config = dataclasses.replace(config, loss=loss, loss_options={})
        defaults = " (its default options)" if config.loss != base.loss else ""
        add(name, config, f"{config.loss} loss{defaults}, {mined}", sampler != IN_BATCH)
    if include_contrastive:
        config = dataclasses.replace(base, loss="contrastive", loss_options={}, negatives=IN_BATCH,
                                     negatives_options={})
        add(CONTRASTIVE_RUN, config, "contrastive loss over the batch's targets, no mined negatives (CLIP4Cir's "
                                     "recipe)", False)
    if include_seed:
        add(SEED_SYSTEM_RUN, seed_recipe(base), "the seed system: scalar-gated attention fusion, triplet loss "
                                                "(Euclidean, margin 0.2), one random negative, Adam 1e-4, batch 64",
            True)
    return plans


def seed_recipe(base: TrainConfig) -> TrainConfig:
    """The seed system's recipe (shipped config for the features' dimension) on ``base``'s features and budget."""
    from cirlab.features.cache import FeatureCache

    dim = FeatureCache.open(base.features).dim
    name = SEED_RECIPES.get(dim, SEED_RECIPE_DEFAULT)
    keep = {"features": base.features, "out": base.out, "epochs": base.epochs, "seed": base.seed,
            "seeds": base.seeds, "device": base.device, "tensorboard": base.tensorboard,
            "eval_batch_size": base.eval_batch_size, "val_split": base.val_split, "categories": base.categories,
            "val_categories": base.val_categories,
            # the false-negative guard is the features' business, not the recipe's (the same for every run)
            "negatives_options": {key: value for key, value in base.negatives_options.items()
                                  if key == "near_duplicate_threshold"}}
    return load_config(name, list(keep.items())).validate()


# ------------------------------------------------------------------------------------------ runs
def _run_all(plans: list[RunPlan], cache: FeatureCache, jobs: int = 1) -> list[str]:
    """Train (or resume, or reuse) every planned run, ``jobs`` at a time; return the names of the reused ones."""
    reused: list[str] = []
    to_train: list[RunPlan] = []
    numbers = {plan.name: f"[{number}/{len(plans)}] {plan.name}" for number, plan in enumerate(plans, 1)}
    for plan in plans:
        if finished_run(plan, cache) is not None:
            reused.append(plan.name)
            LOGGER.info("%s: finished earlier; reusing %s", numbers[plan.name], plan.run_dir)
        else:
            to_train.append(plan)
    by_name = {plan.name: plan for plan in to_train}
    started: dict[str, float] = {}

    def on_start(name: str) -> None:
        LOGGER.info("%s: training %s -> %s", numbers[name], by_name[name].description, by_name[name].run_dir)
        started[name] = time.perf_counter()

    def on_done(name: str, result: Any) -> None:
        LOGGER.info("%s: done in %.0f s; best validation headline %.1f at epoch %d", numbers[name],
                    time.perf_counter() - started[name], result.best_headline, result.best_epoch)

    if jobs > 1 and len(to_train) > 1:
        from cirlab.compare.parallel import train_concurrently

        train_concurrently([(plan.name, plan.config) for plan in to_train], jobs, on_start, on_done)
    else:
        for plan in to_train:
            on_start(plan.name)
            on_done(plan.name, _train(plan.config))
    return reused


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


def has_test_targets(cache: FeatureCache, categories: Sequence[str]) -> bool:
    """Whether every evaluated category has test queries with their targets in the cache."""
    from cirlab.evaluation.queries import category_queries

    return all(cache.has_split(c, TEST_SPLIT) and len(category_queries(cache, c, TEST_SPLIT).positions) > 0
               for c in categories)


def _evaluate_selected(plans: list[RunPlan], cache: FeatureCache, categories: list[str],
                       selection: str) -> dict[str, Any]:
    """Evaluate each run's selected checkpoint on test (once: kept in its ranks.npz); return the query accounting."""
    from cirlab.combiners import load_combiner_for
    from cirlab.evaluation.protocol import build_protocol
    from cirlab.evaluation.ranks import RANKS_FILE, ranks_of, read_ranks, write_ranks
    from cirlab.runtime import resolve_device

    checkpoint = SELECTED_CHECKPOINT[selection]
    name = f"{TEST_SPLIT}/{checkpoint}"
    device = resolve_device(plans[0].config.device)
    protocol = build_protocol(cache, TEST_SPLIT, categories=categories, device=device,
                              batch_size=plans[0].config.eval_batch_size)
    accounting: dict[str, Any] = {}
    for plan in plans:
        path = plan.run_dir / RANKS_FILE
        evaluations = read_ranks(path)
        if name in evaluations and accounting:
            continue
        combiner, _ = load_combiner_for(cache, plan.run_dir / checkpoint, device=device)
        result = protocol.evaluate(combiner, show_progress=False)
        accounting = result.query_accounting()
        if name not in evaluations:
            write_ranks(path, {**evaluations, name: ranks_of(result)})
    return accounting


def _validation_accounting(plan: RunPlan) -> dict[str, Any]:
    """Which validation queries the runs ranked and which they left out (the same for every run)."""
    from cirlab.engine.runlog import METRICS_FILE

    metrics = json.loads((plan.run_dir / METRICS_FILE).read_text(encoding="utf-8"))
    return dict(metrics.get("evaluation") or {})


def evaluated_categories(cache: FeatureCache, config: TrainConfig) -> list[str]:
    """The categories the runs of ``config`` are validated on (the trainer's rule,
    :func:`cirlab.evaluation.evaluated_categories`)."""
    from cirlab.evaluation.protocol import evaluated_categories as validated

    return validated(cache, config.val_categories, config.categories, config.val_split)




def ambiguous_queries(cache: FeatureCache, split: str, categories: Sequence[str]) -> dict[str, dict[str, int]]:
    """On the synthetic benchmark, per category, how many ``split`` queries another gallery image satisfies as well
    as the target (:func:`cirlab.synth.ambiguity.ambiguous_queries`); empty for any other data set."""
    from cirlab.synth.ambiguity import ambiguous_queries as count
    from cirlab.synth.output import GENERATOR_NAME, META_FILE

    data_root = cache.manifest.get("data_root")
    path = Path(data_root) / META_FILE if data_root else None
    if path is None or not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("generator") != GENERATOR_NAME:
            return {}
        counts = count(meta, split)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        LOGGER.warning("%s: ambiguous queries not counted (%s)", path, error)
        return {}
    return {c: {"queries": n.queries, "ambiguous": n.ambiguous, "beyond_copies": n.beyond_copies}
            for c, n in counts.items() if c in categories}


def headline_metrics(cache: FeatureCache, split: str) -> tuple[str, ...]:
    """The metrics whose mean is the headline of the protocol that evaluates ``split`` of ``cache``."""
    from cirlab.evaluation.protocol import PROTOCOLS, default_protocol

    return PROTOCOLS.get(default_protocol(cache.dataset, split)).headline_metrics


def sum_baseline(cache: FeatureCache, config: TrainConfig, categories: Sequence[str], split: str) -> Baseline:
    """Recall of the untrained ``sum`` combiner on the reported evaluation."""
    from cirlab.combiners import build_combiner
    from cirlab.evaluation.protocol import evaluate_cache
    from cirlab.runtime import resolve_device

    result = evaluate_cache(cache, build_combiner("sum", cache.dim), split, categories=list(categories),
                            batch_size=config.eval_batch_size, device=resolve_device(config.device),
                            show_progress=False)
    return Baseline(recall={k: float(result.mean[k]) for k in KS}, headline=float(result.headline))


# ------------------------------------------------------------------------------------------ outputs
def _setup(base: TrainConfig, plans: list[RunPlan], cache: FeatureCache, config: Any, overrides: Overrides | None,
           **settings: Any) -> dict[str, Any]:
    """What every run shared and how the comparison was made, for the report, ``comparison.json`` and
    :func:`recompute`."""
    from cirlab.provenance import provenance

    shared = {key: value for key, value in base.to_dict().items() if key not in ("out", "negatives", "resume")}
    manifest = cache.manifest
    untrained = settings.pop("untrained")
    return {
        "provenance": provenance(),
        "config_source": str(config) if isinstance(config, (str, Path)) else None,
        "overrides": [list(item) if isinstance(item, tuple) else item for item in
                      (overrides.items() if isinstance(overrides, Mapping) else (overrides or []))],
        "shared_config": shared,
        "strategies": list(dict.fromkeys(plan.strategy for plan in plans
                                         if plan.strategy not in (CONTRASTIVE_RUN, SEED_SYSTEM_RUN))),
        "include_contrastive": any(plan.strategy == CONTRASTIVE_RUN for plan in plans),
        "include_seed": any(plan.strategy == SEED_SYSTEM_RUN for plan in plans),
        "seeds": sorted({plan.seed for plan in plans}),
        "run_entries": [plan.entry().to_dict() for plan in plans],
        "untrained_sum": untrained.to_dict(),
        "features": {"path": str(cache.root), "dataset": cache.dataset, "model": manifest.get("model"),
                     "dim": manifest.get("dim"),
                     "images": manifest.get("num_images"), "triplets": manifest.get("num_triplets"),
                     "data_root": manifest.get("data_root")},
        **{key: value for key, value in settings.items() if key != "queries_info"},
        "queries": settings.get("queries_info"),
    }


def write_outputs(result: ComparisonResult, *, cache: FeatureCache | None, data_root: str | Path | None,
                  queries: int, query_seed: int) -> None:
    """Plots, query figures (with a cache and ``queries`` > 0), ``report.md`` and ``comparison.json``."""
    from cirlab.compare.plots import plot_ledger, plot_recall, plot_training
    from cirlab.compare.visualise import QueryFigureUnavailable, resolve_data_root, write_query_figures

    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    result.files["recall_plot"] = plot_recall(result, out / RECALL_PLOT)
    result.files["training_plot"] = plot_training(result, out / TRAINING_PLOT)
    ledger = plot_ledger(result, out / LEDGER_PLOT)
    if ledger is not None:
        result.files["ledger_plot"] = ledger
    if cache is not None and queries > 0:
        first_seed = {name: Path(_folder(result, name, s.seeds[0])) for name, s in result.strategies.items()}
        validation = result.queries.get("val") or {}
        try:
            root = resolve_data_root(cache, data_root)
            figures = write_query_figures(
                cache, root, first_seed, {name: out / QUERIES_PLOT.format(run=name) for name in first_seed},
                categories=list(validation.get("queries") or []) or None, split=validation.get("split", "val"),
                count=queries, seed=query_seed)
            result.files.update({f"queries:{name}": path for name, path in figures.items()})
        except QueryFigureUnavailable as reason:
            result.notes.append(f"query figures left out: {reason}")
    _write_documents(result)


def _folder(result: ComparisonResult, strategy: str, seed: int) -> str:
    return next(e["folder"] for e in result.setup["run_entries"] if e["strategy"] == strategy and e["seed"] == seed)


def _write_documents(result: ComparisonResult) -> None:
    from cirlab.compare.report import render_report

    out = result.out
    result.files["report"] = out / REPORT_FILE
    result.files["comparison"] = out / COMPARISON_FILE
    atomic_write_text(out / REPORT_FILE, render_report(result))
    atomic_write_json(out / COMPARISON_FILE, result.to_dict())
    LOGGER.info("report: %s", out / REPORT_FILE)
