"""``report.md``: the comparison's tables, verdicts and figures, in Markdown that GitHub renders.

Only what :class:`~cirlab.compare.result.ComparisonResult` holds is written; every sentence is built
from its numbers, so the report says what the runs did, whichever strategy came out ahead.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from cirlab.compare.analysis import KS, TIE_POINTS
from cirlab.compare.result import ComparisonResult


def render_report(result: ComparisonResult) -> str:
    """The Markdown text of ``OUT/report.md``."""
    setup = result.setup
    shared = setup.get("shared_config", {})
    best = result.best_run()
    lines = [
        "# Negative-sampling comparison",
        "",
        f"{len(result.runs)} runs on the same feature cache with the same seed, combiner, loss and budget "
        f"({shared.get('epochs')} epochs of batch size {shared.get('batch_size')}), evaluated on the "
        f"`{shared.get('val_split', 'val')}` split after every epoch. Recall is the mean over categories, in "
        f"percent; the headline is the mean of Recall@10 and Recall@50 (the FashionIQ protocol).",
        "",
        f"**Best run: {best.name}**, headline {best.best_headline:.1f} at epoch {best.best_epoch} "
        f"(untrained `sum` combiner: {result.baseline.headline:.1f}).",
        "",
        "## Recall",
        "",
        _recall_table(result),
        "",
        "*final*: the last epoch; *best*: the epoch with the highest headline, whose combiner is kept in the run's "
        "`best/` folder. The untrained `sum` combiner (normalised image + text features, nothing trained) is the "
        "floor a trained combiner must beat.",
        "",
        "## Learning speed and cost",
        "",
        _speed_table(result),
        "",
        f"Threshold: mean Recall@10 ≥ {result.threshold:.1f} ({result.threshold_rule}). Epoch 0 is the untrained "
        f"combiner. Mining time is the negative sampler's share of a step (whole training gallery); time is "
        f"training plus the evaluation after every epoch.",
        "",
    ]
    if result.verdicts:
        lines += ["## Against random negatives", ""]
        lines += [f"- {sentence}" for sentence in result.verdicts.values()]
        lines += ["", f"*Faster*: reached the threshold at an earlier epoch; *better*: a best headline more than "
                      f"{TIE_POINTS} points higher (within {TIE_POINTS} points counts as on par). One seed per "
                      f"strategy: differences of a point or two may be noise.", ""]
    lines += ["## Curves", "", _image(result, "recall_plot", "Validation Recall@10 per epoch"), "",
              _image(result, "training_plot", "Training loss and share of active triplets per epoch"), "",
              *_active_share_notes(result), ""]
    query_figures = {key.split(":", 1)[1]: path for key, path in result.files.items() if key.startswith("queries:")}
    if query_figures:
        lines += ["## Queries", "",
                  "The same validation queries for every run: the reference image, the caption, the top 10 results "
                  "of the run's best combiner, and the target with its rank (green border).", ""]
        for name in query_figures:
            lines += [f"### {name}", "", _image(result, f"queries:{name}", f"Top 10 results of {name}"), ""]
    if result.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in result.notes] + [""]
    lines += ["## Set-up", "", _setup_table(result), "", "Reproduce:", "", "```bash", _command(result), "```", ""]
    return "\n".join(lines)


#: What the share of active pairs says for a sampler whose choice puts its negatives inside the margin.
ACTIVE_SHARE_BY_DESIGN: dict[str, str] = {
    "semi-hard": "100% by construction: semi-hard negatives are drawn from inside the margin (with the sampler's "
                 "margin and distance equal to the loss's), so every pair is active; a lower share counts the "
                 "queries with too few semi-hard items, which fall back to others",
    "hard": "close to 100% by design: the hardest negatives are the gallery items closest to the query, inside "
            "the margin whenever the gallery holds k of them; it falls only as targets move clear of their "
            "nearest neighbours",
    "curriculum": "that of the stage serving at the time: falling while random negatives serve, close to 100% by "
                  "design once semi-hard or hard negatives take over",
}
#: What it says for every other sampler (random, category, in-batch...).
ACTIVE_SHARE_OTHERWISE = ("expected to fall as training separates targets from negatives; a share that stays "
                          "near 100% means the combiner is not separating them")


def _active_share_notes(result: ComparisonResult) -> list[str]:
    """What "active pairs" are, what a full share means for each run's sampler, and what collapse looks like."""
    runs = result.setup.get("runs", {})
    margin = (result.setup.get("shared_config", {}).get("loss_options") or {}).get("margin")
    lines = ["Active pairs: for the triplet loss, (query, negative) pairs with a non-zero hinge term; for the "
             "contrastive loss, negatives whose softmax weight is at least 1% of the positive's. What a high share "
             "means depends on how the negatives were chosen:", ""]
    for name in result.runs:
        sampler = runs.get(name, {}).get("negatives", name)
        meaning = ACTIVE_SHARE_BY_DESIGN.get(sampler, ACTIVE_SHARE_OTHERWISE)
        lines.append(f"- **{name}** ({sampler} negatives): {meaning}.")
    at_margin = f"its margin ({margin})" if margin is not None else "its margin"
    lines += ["", f"A full share is therefore no sign of collapse by itself. A collapsed embedding (every query "
                  f"as close to its negatives as to its target) shows in the loss, whatever the sampler: the triplet "
                  f"loss stuck at {at_margin}, the contrastive loss at the logarithm of the number of candidates."]
    return lines


def _recall_table(result: ComparisonResult) -> str:
    header = ("| run | " + " | ".join(f"final R@{k}" for k in KS) + " | final headline | best epoch | "
              + " | ".join(f"best R@{k}" for k in KS) + " | best headline |")
    rule = "|---|" + "---:|" * (2 * len(KS) + 3)
    rows = [header, rule]
    for run in result.runs.values():
        rows.append(f"| {run.name} | " + " | ".join(f"{run.final[k]:.1f}" for k in KS)
                    + f" | {run.final_headline:.1f} | {run.best_epoch} | "
                    + " | ".join(f"{run.best[k]:.1f}" for k in KS) + f" | **{run.best_headline:.1f}** |")
    base = result.baseline
    values = " | ".join(f"{base.recall[k]:.1f}" for k in KS)
    rows.append(f"| *untrained sum* | {values} | {base.headline:.1f} | – | {values} | {base.headline:.1f} |")
    return "\n".join(rows)


def _speed_table(result: ComparisonResult) -> str:
    rows = [f"| run | first epoch with R@10 ≥ {result.threshold:.1f} | mining ms/step | step ms | steps | time (s) | "
            f"trained with |", "|---|---:|---:|---:|---:|---:|---|"]
    for run in result.runs.values():
        reached = "never" if run.threshold_epoch is None else str(run.threshold_epoch)
        mining = "–" if run.sample_s_per_step is None else f"{1000 * run.sample_s_per_step:.2f}"
        step = "–" if run.step_s is None else f"{1000 * run.step_s:.1f}"
        rows.append(f"| {run.name} | {reached} | {mining} | {step} | {run.steps} | {run.total_s:.0f} | "
                    f"{run.description} |")
    return "\n".join(rows)


def _setup_table(result: ComparisonResult) -> str:
    shared = result.setup.get("shared_config", {})
    features = result.setup.get("features", {})
    items: list[tuple[str, Any]] = [
        ("feature cache", f"`{features.get('path')}` ({features.get('model')}, {features.get('dim')}-d, "
                          f"{features.get('images')} images, {features.get('triplets')} triplets)"),
        ("data set", f"`{features.get('data_root')}`" if features.get("data_root") else "–"),
        ("config", f"`{result.setup.get('config_source')}`" if result.setup.get("config_source") else "defaults"),
        ("combiner", _named(shared.get("combiner"), shared.get("combiner_options"))),
        ("loss", _named(shared.get("loss"), shared.get("loss_options"))),
        ("negatives per query", shared.get("num_negatives")),
        ("sampler options", _options(shared.get("negatives_options")) or "defaults"),
        ("epochs x batch size", f"{shared.get('epochs')} x {shared.get('batch_size')}"),
        ("optimiser", f"AdamW lr {shared.get('lr')}, weight decay {shared.get('weight_decay')}, "
                      f"{shared.get('schedule')} schedule, {shared.get('warmup_steps')} warm-up steps"),
        ("seed", shared.get("seed")),
        ("runs reused from an earlier invocation", ", ".join(result.reused) or "none"),
    ]
    rows = ["| | |", "|---|---|"] + [f"| {key} | {value} |" for key, value in items]
    return "\n".join(rows)


def _command(result: ComparisonResult) -> str:
    """The ``cirlab compare`` command line that repeats this comparison."""
    setup = result.setup
    shared = setup.get("shared_config", {})
    parts = ["cirlab", "compare"]
    if setup.get("config_source"):
        parts += ["--config", str(setup["config_source"])]
    parts += ["--features", str(setup.get("features", {}).get("path")),
              "--strategies", ",".join(setup.get("strategies", [])), "--epochs", str(shared.get("epochs"))]
    if setup.get("include_contrastive"):
        parts.append("--include-contrastive")
    for item in setup.get("overrides", []):
        key, value = (item if isinstance(item, list) else str(item).split("=", 1))
        if key not in ("features", "epochs"):
            parts += ["--set", f"{key}={_yaml_value(value)}"]
    parts += ["--out", str(result.out)]
    return " ".join(shlex.quote(part) for part in parts)


def _options(options: dict[str, Any] | None) -> str:
    """``{"margin": 0.2, "distance": "cosine"}`` → ``margin 0.2, distance cosine`` (empty for none)."""
    import json

    return ", ".join(f"{key} {json.dumps(value) if not isinstance(value, str) else value}"
                     for key, value in (options or {}).items())


def _named(name: Any, options: dict[str, Any] | None) -> str:
    """``triplet (margin 0.2, distance cosine)``, or the bare name without options."""
    text = _options(options)
    return f"{name} ({text})" if text else str(name)


def _yaml_value(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def _image(result: ComparisonResult, key: str, alt: str) -> str:
    path = result.files.get(key)
    if path is None:
        return f"*({alt}: not drawn)*"
    return f"![{alt}]({Path(path).name})"
