"""Hand-made run folders (``metrics.json`` + ``ranks.npz``, no training) and the comparison assembled from them,
for the assemble, result, report and plot tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cirlab.compare.assemble import CONTRASTIVE_RUN, SEED_SYSTEM_RUN, RunEntry, assemble
from cirlab.compare.result import Baseline, ComparisonResult
from cirlab.evaluation.ranks import CategoryRanks, evaluation_name, write_ranks

#: Queries per category of the made-up evaluations, and their galleries.
QUERIES = {"dress": 40, "shirt": 30}
GALLERY = {"dress": 100, "shirt": 80}


def history(recalls: list[float], losses: list[float], active: list[float], *, ledger: bool = True) -> list[dict]:
    """A history whose epoch ``e`` has mean Recall@10 ``recalls[e]`` (Recall@50 = Recall@10 + 30)."""
    rows = []
    for epoch, r10 in enumerate(recalls):
        row = {"epoch": epoch, "step": 5 * epoch, "steps": 0 if epoch == 0 else 5, "val/mean/R@1": r10 / 5,
               "val/mean/R@5": r10 / 2, "val/mean/R@10": r10, "val/mean/R@50": r10 + 30,
               "val/headline": r10 + 15, "time/eval_s": 0.2}
        if epoch:
            row.update({"train/loss": losses[epoch - 1], "train/active_fraction": active[epoch - 1],
                        "time/mean_sample_s": 0.004, "time/mean_step_s": 0.02, "time/epoch_s": 1.5})
            if ledger:
                row.update({"sampler/queries": 100.0, "sampler/negatives": 1600.0, "sampler/ledger_harder": 160.0,
                            "sampler/ledger_semi_hard": 480.0, "sampler/ledger_easier": 960.0,
                            "sampler/ledger_reference": 16.0, "sampler/ledger_same_category": 800.0,
                            "sampler/ledger_true_false_negatives": 8.0, "sampler/ledger_with_ground_truth": 1600.0,
                            "sampler/guard_exact_duplicates": 4.0, "sampler/guard_near_duplicates": 2.0})
        rows.append(row)
    return rows


def ranks_with_hits(hits: dict[str, int], seed: int) -> dict[str, CategoryRanks]:
    """Per category, ``hits[c]`` queries ranked 0 (hits at every K) and the rest ranked beyond the top 50."""
    rng = np.random.default_rng(seed)
    out = {}
    for category, n in QUERIES.items():
        ranks = np.where(np.arange(n) < hits[category], 0, 60).astype(np.int32)
        out[category] = CategoryRanks(ranks=rng.permutation(ranks) if seed else ranks,
                                      file_indices=np.arange(n, dtype=np.int32), gallery_size=GALLERY[category])
    return out


def write_run(folder: Path, hist: list[dict], test_hits: dict[str, int], seed: int) -> None:
    """A finished run folder: metrics.json with ``hist`` and ranks.npz with every validation and ``test/best``."""
    folder.mkdir(parents=True, exist_ok=True)
    metrics = {"status": "complete", "epochs_completed": hist[-1]["epoch"], "steps": hist[-1]["step"],
               "history": hist, "evaluation": {"split": "val"}}
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    evaluations = {evaluation_name("val", r["epoch"]): ranks_with_hits({"dress": 10, "shirt": 10}, seed)
                   for r in hist}
    evaluations["test/best"] = ranks_with_hits(test_hits, seed)
    write_ranks(folder / "ranks.npz", evaluations)


#: strategy -> (per seed: test hits, validation R@10 per epoch), losses, active shares.
PLAN = {
    "random": ([({"dress": 10, "shirt": 9}, [25, 35, 44, 46]), ({"dress": 11, "shirt": 9}, [25, 36, 45, 47])],
               [0.15, 0.1, 0.08], [0.6, 0.4, 0.3]),
    "hard": ([({"dress": 30, "shirt": 24}, [25, 45, 50, 52]), ({"dress": 31, "shirt": 24}, [25, 46, 51, 53])],
             [0.3, 0.25, 0.2], [1.0, 0.9, 0.8]),
    "category": ([({"dress": 10, "shirt": 10}, [25, 30, 38, 42]), ({"dress": 10, "shirt": 9}, [25, 31, 39, 41])],
                 [0.2, 0.15, 0.1], [0.7, 0.5, 0.4]),
}


def made_up_entries(out: Path, *, contrastive: bool = False, seed_system: bool = False) -> list[RunEntry]:
    """Write the run folders of :data:`PLAN` (and reference runs) under ``out/runs``; return their entries."""
    plan = dict(PLAN)
    if contrastive:
        plan[CONTRASTIVE_RUN] = ([({"dress": 12, "shirt": 10}, [25, 40, 43, 44]),
                                  ({"dress": 12, "shirt": 11}, [25, 40, 44, 45])], [4.0, 3.5, 3.2], [0.3, 0.2, 0.1])
    if seed_system:
        plan[SEED_SYSTEM_RUN] = ([({"dress": 6, "shirt": 5}, [25, 28, 30, 31]),
                                  ({"dress": 6, "shirt": 6}, [25, 28, 31, 32])], [0.19, 0.18, 0.17], [0.5, 0.4, 0.4])
    entries = []
    for name, (seeds, losses, active) in plan.items():
        for seed, (test_hits, recalls) in enumerate(seeds):
            folder = out / "runs" / name / f"seed-{seed}"
            write_run(folder, history(recalls, losses, active, ledger=name != CONTRASTIVE_RUN), test_hits, seed)
            loss = "contrastive" if name == CONTRASTIVE_RUN else "triplet"
            negatives = "in-batch" if name == CONTRASTIVE_RUN else ("random" if name == SEED_SYSTEM_RUN else name)
            entries.append(RunEntry(strategy=name, seed=seed, folder=str(folder),
                                    description=f"{loss} loss, {negatives} negatives", loss=loss,
                                    negatives=negatives, mines=name != CONTRASTIVE_RUN))
    return entries


SETUP = {
    "config_source": "synthetic",
    "overrides": [["batch_size", 64], "loss_options.margin=0.1"],
    "shared_config": {"epochs": 3, "batch_size": 64, "val_split": "val", "combiner": "combiner",
                      "combiner_options": {}, "loss": "triplet", "loss_options": {"margin": 0.1},
                      "num_negatives": 16, "negatives_options": {}, "lr": 0.001, "weight_decay": 0.0,
                      "schedule": "cosine", "warmup_steps": 0, "seed": 0},
    "strategies": ["random", "hard", "category"],
    "seeds": [0, 1],
    "draws": 500,
    "features": {"path": "/data/features", "model": "m", "dim": 64, "images": 100, "triplets": 200,
                 "data_root": "/data/synth"},
}
QUERY_ACCOUNTING = {"val": {"split": "val", "queries": {"dress": 40, "shirt": 30},
                            "gallery": {"dress": 100, "shirt": 80},
                            "excluded_queries": {"dress": {"missing_image": 2, "target_withheld": 0},
                                                 "shirt": {"missing_image": 0, "target_withheld": 0}},
                            "outside_gallery_queries": {"dress": {"target": 1, "reference": 0},
                                                        "shirt": {"target": 0, "reference": 0}},
                            "missing_images": {"dress": 1, "shirt": 0}}}


def made_up_result(out: Path, *, contrastive: bool = False, seed_system: bool = False,
                   threshold: float | None = None) -> ComparisonResult:
    """The comparison of :func:`made_up_entries`, reported on test with the best validation checkpoint."""
    entries = made_up_entries(out, contrastive=contrastive, seed_system=seed_system)
    untrained = Baseline(recall={1: 5.0, 5: 20.0, 10: 30.0, 50: 60.0}, headline=45.0)
    setup = {**SETUP, "include_contrastive": contrastive, "include_seed": seed_system,
             "run_entries": [e.to_dict() for e in entries], "untrained_sum": untrained.to_dict(),
             "baseline": "random", "selection": "val", "reported": "test", "threshold": threshold,
             "queries": QUERY_ACCOUNTING}
    return assemble(out, entries, baseline="random", selection="val", reported="test", untrained=untrained,
                    threshold=threshold, draws=500, queries=QUERY_ACCOUNTING, setup=setup)
