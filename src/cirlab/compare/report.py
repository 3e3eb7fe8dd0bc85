"""``report.md``: the comparison's tables, intervals, verdicts and figures, in Markdown that GitHub renders.

Only what :class:`~cirlab.compare.result.ComparisonResult` holds is written; every sentence is built from its
numbers, and a difference between strategies is stated only where its interval over seeds and queries
excludes zero.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from cirlab.compare.result import METRICS, ComparisonResult
from cirlab.compare.statistics import Estimate, SeedStats

#: The ledger's columns in the report: series key, heading.
LEDGER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ledger/harder", "harder than positive"), ("ledger/semi_hard", "semi-hard window"),
    ("ledger/easier", "easier"), ("ledger/reference", "own reference"), ("ledger/same_category", "same category"),
    ("ledger/true_false_negatives", "true false negatives"), ("ledger/guard_exact_duplicates", "guard: same pixels"),
    ("ledger/guard_near_duplicates", "guard: near-duplicates"),
)


def _headline_sentence(setup: dict) -> str:
    """What the headline is, by the protocol of the compared data set."""
    headline = setup.get("headline") or ["R@10", "R@50"]
    dataset = (setup.get("features") or {}).get("dataset") or "fashioniq"
    names = {"fashioniq": "FashionIQ", "cirr": "CIRR"}
    extra = " (Rs@K: Recall_subset@K, within the query's img_set)" if any(h.startswith("Rs@") for h in headline) else ""
    return (f"the headline is the mean of {' and '.join(headline)}{extra}, as the {names.get(dataset, dataset)} "
            f"protocol reports it.")


def render_report(result: ComparisonResult) -> str:
    """The Markdown text of ``OUT/report.md``."""
    setup = result.setup
    shared = setup.get("shared_config", {})
    seeds = setup.get("seeds") or next(iter(result.strategies.values())).seeds
    where = _where(result)
    lines = [
        "# Negative-sampling comparison",
        "",
        f"{len(result.strategies)} strategies × {len(seeds)} seeds ({', '.join(map(str, seeds))}) on the same "
        f"feature cache with the same combiner, loss and budget ({shared.get('epochs')} epochs of batch size "
        f"{shared.get('batch_size')}), evaluated on the `{shared.get('val_split', 'val')}` split after every epoch. "
        f"A seed changes the combiner's initialisation, the data order and the sampler's draws. Recall is the mean "
        f"over categories, in percent; {_headline_sentence(setup)}",
        "",
        f"**Reported: {where}.** {_selection_sentence(result)}",
        "",
        *(_seed_system_lines(result) if result.versus_seed_system is not None else []),
        "## Queries",
        "",
        *_query_lines(result),
        "",
        f"## Results ({where})",
        "",
        _results_table(result),
        "",
        f"Mean ± standard deviation over seeds. Δ: difference to **{result.baseline}** with its 95% interval from a "
        f"paired bootstrap that resamples seeds and, within them, queries (the same resampled queries for both "
        f"strategies; {_draws(result)} draws); *wins*: the share of draws in which the strategy is ahead on R@10. "
        f"Chance: a random ranking of the same galleries.",
        "",
        *_verdict_lines(result),
        "",
    ]
    lines += [
        "## Learning speed and cost",
        "",
        _speed_table(result),
        "",
        f"One threshold for the whole report: mean validation Recall@10 ≥ {result.speed.threshold:.1f} "
        f"({result.speed.rule}). Epoch 0 is the untrained combiner; the mean is over the seeds that reach it. "
        f"Mining time is the negative sampler's share of a step (whole training gallery), next to the gain it buys.",
        "",
        "## Last epoch on validation",
        "",
        _final_table(result),
        "",
        "## The negative ledger",
        "",
        *_ledger_lines(result),
        "",
        "## Curves",
        "",
        _image(result, "recall_plot", "Validation Recall@10 per epoch"),
        "",
        _image(result, "training_plot", "Training loss and share of active pairs per epoch"),
        "",
        *_active_share_notes(result),
        "",
    ]
    query_figures = {key.split(":", 1)[1]: path for key, path in result.files.items() if key.startswith("queries:")}
    if query_figures:
        lines += ["## Queries, pictured", "",
                  "The same validation queries for every strategy (its first seed): the reference image, the caption, "
                  "the top 10 results of the best checkpoint, and the target with its rank (green border).", ""]
        for name in query_figures:
            lines += [f"### {name}", "", _image(result, f"queries:{name}", f"Top 10 results of {name}"), ""]
    if result.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in result.notes] + [""]
    lines += ["## Set-up", "", _setup_table(result), "", "Reproduce:", "", "```bash", _command(result), "```", ""]
    return "\n".join(lines)


def _where(result: ComparisonResult) -> str:
    checkpoint = "best validation epoch" if result.selection == "val" else "last epoch"
    return f"`{result.reported}` split, {checkpoint} of each run"


def _selection_sentence(result: ComparisonResult) -> str:
    if result.reported == "test":
        return ("Each run's checkpoint was selected on validation and is reported on test, so no number here was "
                "selected on the split it is reported on.")
    if result.selection == "last":
        return ("The data set has no test targets, so each run is reported at its last epoch: nothing is selected "
                "on the validation split the numbers come from.")
    return ("The data set has no test targets and the checkpoints were selected on validation: these numbers are "
            "optimistic (selected on the split they are reported on).")


def _query_lines(result: ComparisonResult) -> list[str]:
    lines = []
    for split, info in result.queries.items():
        if not info:
            continue
        ranked = info.get("queries") or {}
        parts = []
        for category, count in ranked.items():
            left = {reason: n for reason, n in (info.get("excluded_queries") or {}).get(category, {}).items() if n}
            outside = {kind: n for kind, n in (info.get("outside_gallery_queries") or {}).get(category, {}).items()
                       if n}
            missing = (info.get("missing_images") or {}).get(category, 0)
            detail = [f"{n} left out ({reason.replace('_', ' ')})" for reason, n in left.items()]
            detail += [f"{n} with the {kind} outside the gallery (kept)" for kind, n in outside.items()]
            if missing:
                detail.append(f"{missing} images missing from the cache")
            gallery = (info.get("gallery") or {}).get(category)
            parts.append(f"{category} {count} ranked against {gallery} images" + (f" ({'; '.join(detail)})"
                                                                                 if detail else ""))
        lines.append(f"- `{split}`: " + "; ".join(parts) + ".")
        ambiguous = info.get("ambiguous_queries") or {}
        if ambiguous:
            total = sum(c["queries"] for c in ambiguous.values())
            share = sum(c["ambiguous"] for c in ambiguous.values()) / max(total, 1)
            beyond = sum(c["beyond_copies"] for c in ambiguous.values()) / max(total, 1)
            lines.append(f"  - ambiguous (the synthetic ground truth): {100 * share:.1f}% of these queries have "
                         f"another gallery image that satisfies them as well as the target "
                         f"({100 * beyond:.1f}% one that is not an exact copy of the target).")
    if not lines:
        lines.append("- no query accounting recorded.")
    lines.append("")
    lines.append("Queries left out are not in any denominator; a query whose target is outside the gallery is "
                 "kept and counts as a miss.")
    return lines


def _results_table(result: ComparisonResult) -> str:
    # A loss column when the runs trained with more than one loss (otherwise the set-up table names the one).
    by_loss = len({s.loss for s in result.strategies.values()}) > 1
    blank = "| " if by_loss else ""
    header = ("| strategy | " + ("loss | " if by_loss else "") + " | ".join(METRICS)
              + f" | Δ R@10 vs {result.baseline} | Δ headline | wins | mining ms/step |")
    rows = [header, "|---|" + ("---|" if by_loss else "") + "---:|" * (len(METRICS) + 4)]
    for s in result.strategies.values():
        vs = s.versus_baseline
        delta10 = _interval(vs.estimates["R@10"]) if vs else "–"
        delta_h = _interval(vs.estimates["headline"]) if vs else "–"
        wins = f"{100 * vs.estimates['R@10'].win_share:.0f}%" if vs else "–"
        mining = "–" if s.mining_ms is None else f"{s.mining_ms.mean:.2f}"
        cells = [_pm(s.selected[m]) for m in METRICS]
        rows.append(f"| {s.name} | " + (f"{s.loss} | " if by_loss else "") + " | ".join(cells)
                    + f" | {delta10} | {delta_h} | {wins} | {mining} |")
    u = result.untrained
    rows.append("| *untrained sum* | " + blank + " | ".join(f"{u.recall[int(m[2:])]:.1f}" for m in METRICS[:-1])
                + f" | {u.headline:.1f} | | | | |")
    rows.append("| *chance* | " + blank + " | ".join(f"{result.chance[m]:.1f}" for m in METRICS) + " | | | | |")
    return "\n".join(rows)


def _verdict_lines(result: ComparisonResult) -> list[str]:
    judged = [s for s in result.strategies.values() if s.versus_baseline is not None]
    if not judged:
        return [f"No strategy was compared with {result.baseline}."]
    lines = [f"What the intervals support, against {result.baseline} (R@10):", ""]
    for s in judged:
        if s.verdict is None:
            lines.append(f"- **{s.name}**: no verdict (not clearly above chance).")
        else:
            lines.append(f"- **{s.name}**: {s.verdict}.")
    return lines


def _seed_system_lines(result: ComparisonResult) -> list[str]:
    v = result.versus_seed_system
    r10, head = v.difference.estimates["R@10"], v.difference.estimates["headline"]
    passes = ", ".join("never" if e is None else str(e) for e in v.passes_at)
    epoch = "never" if v.mean_epoch is None else f"epoch {v.mean_epoch:.1f} on average"
    return [
        "## cirlab's best strategy against the seed's system",
        "",
        f"**{v.best}** against the seed's system (its own recipe, trained on the same features and seeds): "
        f"Δ R@10 {_interval(r10)}, Δ headline {_interval(head)} (paired bootstrap, as above; {v.best} ahead in "
        f"{100 * r10.win_share:.0f}% of draws on R@10). It first passes the seed system's final validation "
        f"R@10 ({v.seed_final_r10:.1f}) at {epoch} (per seed: {passes}).",
        "",
    ]


def _speed_table(result: ComparisonResult) -> str:
    speed = result.speed
    rows = [f"| strategy | first epoch with R@10 ≥ {speed.threshold:.1f}, per seed | mean | vs {speed.baseline} | "
            f"mining ms/step | step ms | Δ R@10 |", "|---|---|---:|---:|---:|---:|---:|"]
    for name, s in result.strategies.items():
        entry = speed.strategies[name]
        per_seed = ", ".join("never" if e is None else str(e) for e in entry.epochs)
        mean = "never" if entry.mean_epoch is None else f"{entry.mean_epoch:.1f}"
        ratio = "–" if entry.ratio is None else f"{entry.ratio:.2f}×"
        mining = "–" if s.mining_ms is None else _pm(s.mining_ms, 2)
        step = "–" if s.step_ms is None else _pm(s.step_ms, 1)
        delta = _interval(s.versus_baseline.estimates["R@10"]) if s.versus_baseline else "–"
        rows.append(f"| {name} | {per_seed} | {mean} | {ratio} | {mining} | {step} | {delta} |")
    return "\n".join(rows)


def _final_table(result: ComparisonResult) -> str:
    rows = ["| strategy | " + " | ".join(METRICS) + " | trained with |", "|---|" + "---:|" * len(METRICS) + "---|"]
    for s in result.strategies.values():
        rows.append(f"| {s.name} | " + " | ".join(_pm(s.final[m]) for m in METRICS) + f" | {s.description} |")
    return "\n".join(rows)


def _ledger_lines(result: ComparisonResult) -> list[str]:
    mined = {name: s for name, s in result.strategies.items() if any(k.startswith("ledger/") for k in s.series)}
    if not mined:
        return ["No strategy mined negatives, so there is no ledger."]
    columns = [(key, heading) for key, heading in LEDGER_COLUMNS if any(key in s.series for s in mined.values())]
    rows = ["| strategy (last epoch) | " + " | ".join(h for _, h in columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, s in mined.items():
        cells = []
        for key, _ in columns:
            value = next((v for v in reversed(s.series.get(key, [])) if v is not None), None)
            cells.append("–" if value is None else _share(value))
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return [
        "What each strategy actually served, as shares of its served negatives in the last epoch (mean over seeds): "
        "their similarity to the query against the positive's (harder than the positive, inside the semi-hard "
        "window, easier), the query's own reference image, the query's category, and — where the data set knows "
        "every item that satisfies a query, as the synthetic benchmark does — true false negatives: items that "
        "satisfy the query as well as its target. The guard columns count candidates the false-negative guard "
        "blocked per served negative.",
        "",
        "\n".join(rows),
        "",
        _image(result, "ledger_plot", "Shares of served negatives per epoch"),
    ]


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
    "positive-aware": "high by design: the hardest negatives below a share of the positive's similarity sit just "
                      "under the target, so most of them stay active while training goes on",
    "score-window": "high by design: negatives are drawn around the positive's score, neither far easier nor "
                    "harder than the target",
}
#: What it says for every other sampler (random, category, in-batch...).
ACTIVE_SHARE_OTHERWISE = ("expected to fall as training separates targets from negatives; a share that stays "
                          "near 100% means the combiner is not separating them")


def _active_share_notes(result: ComparisonResult) -> list[str]:
    """What "active pairs" are, what a full share means for each run's sampler, and what collapse looks like."""
    margin = (result.setup.get("shared_config", {}).get("loss_options") or {}).get("margin")
    lines = ["Active pairs: for the triplet loss, (query, negative) pairs with a non-zero hinge term; for the "
             "contrastive loss, negatives whose softmax weight is at least 1% of the positive's. What a high share "
             "means depends on how the negatives were chosen:", ""]
    for name in result.strategies:
        sampler = result.strategies[name].negatives
        meaning = ACTIVE_SHARE_BY_DESIGN.get(sampler, ACTIVE_SHARE_OTHERWISE)
        lines.append(f"- **{name}** ({sampler} negatives): {meaning}.")
    at_margin = f"its margin ({margin})" if margin is not None else "its margin"
    lines += ["", f"A full share is therefore no sign of collapse by itself. A collapsed embedding (every query "
                  f"as close to its negatives as to its target) shows in the loss, whatever the sampler: the triplet "
                  f"loss stuck at {at_margin}, the contrastive loss at the logarithm of the number of candidates."]
    return lines


def _setup_table(result: ComparisonResult) -> str:
    setup = result.setup
    shared = setup.get("shared_config", {})
    features = setup.get("features", {})
    items: list[tuple[str, Any]] = [
        ("feature cache", f"`{features.get('path')}` ({features.get('model')}, {features.get('dim')}-d, "
                          f"{features.get('images')} images, {features.get('triplets')} triplets)"),
        ("data set", f"`{features.get('data_root')}`" if features.get("data_root") else "–"),
        ("config", f"`{setup.get('config_source')}`" if setup.get("config_source") else "defaults"),
        ("combiner", _named(shared.get("combiner"), shared.get("combiner_options"))),
        ("loss", _named(shared.get("loss"), shared.get("loss_options"))),
        ("negatives per query", shared.get("num_negatives")),
        ("sampler options", _options(shared.get("negatives_options")) or "defaults"),
        ("epochs x batch size", f"{shared.get('epochs')} x {shared.get('batch_size')}"),
        ("optimiser", f"AdamW lr {shared.get('lr')}, weight decay {shared.get('weight_decay')}, "
                      f"{shared.get('schedule')} schedule, {shared.get('warmup_steps')} warm-up steps"),
        ("seeds", ", ".join(map(str, setup.get("seeds", [])))),
        ("selection / reported split", f"{result.selection} / {result.reported}"),
        ("bootstrap draws", _draws(result)),
        ("runs reused from an earlier invocation", ", ".join(result.reused) or "none"),
        ("cirlab / torch / git commit", _provenance(setup.get("provenance") or {})),
    ]
    rows = ["| | |", "|---|---|"] + [f"| {key} | {value} |" for key, value in items]
    rows += [f"| {s.name} | {s.description} |" for s in result.strategies.values()]
    return "\n".join(rows)


def _command(result: ComparisonResult) -> str:
    """The ``cirlab compare`` command line that repeats this comparison."""
    setup = result.setup
    shared = setup.get("shared_config", {})
    parts = ["cirlab", "compare"]
    if setup.get("config_source"):
        parts += ["--config", str(setup["config_source"])]
    parts += ["--features", str(setup.get("features", {}).get("path")),
              "--strategies", ",".join(setup.get("strategies", [])), "--epochs", str(shared.get("epochs")),
              "--seeds", str(len(setup.get("seeds", [])) or shared.get("seeds")), "--selection", result.selection,
              "--baseline", result.baseline]
    if setup.get("threshold") is not None:
        parts += ["--threshold", str(setup["threshold"])]
    if setup.get("include_contrastive"):
        parts.append("--include-contrastive")
    if setup.get("include_seed"):
        parts.append("--include-seed")
    for item in setup.get("overrides", []):
        key, value = (item if isinstance(item, list) else str(item).split("=", 1))
        if key not in ("features", "epochs", "seeds"):
            parts += ["--set", f"{key}={_yaml_value(value)}"]
    parts += ["--out", str(result.out)]
    return " ".join(shlex.quote(part) for part in parts)


def _share(value: float) -> str:
    """A share in percent: one decimal from 1% up, three below (rare events such as true false negatives)."""
    return f"{100 * value:.1f}%" if value >= 0.01 or value == 0 else f"{100 * value:.3f}%"


def _pm(stats: SeedStats, digits: int = 1) -> str:
    return f"{stats.mean:.{digits}f} ± {stats.std:.{digits}f}"


def _interval(estimate: Estimate) -> str:
    return f"{estimate.observed:+.1f} [{estimate.low:+.2f}, {estimate.high:+.2f}]"


def _draws(result: ComparisonResult) -> str:
    judged = next((s.versus_baseline for s in result.strategies.values() if s.versus_baseline), None)
    return str(judged.draws if judged else result.setup.get("draws", "–"))


def _provenance(info: dict[str, Any]) -> str:
    commit = info.get("git_commit")
    commit = "–" if not commit else commit[:12] + (" (uncommitted changes)" if info.get("git_dirty") else "")
    return f"{info.get('cirlab', '–')} / {info.get('torch', '–')} / {commit}"


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
