"""A hand-made :class:`ComparisonResult` (no training) for the report and plot tests."""

from __future__ import annotations

from pathlib import Path

from cirlab.compare.analysis import summarise
from cirlab.compare.result import Baseline, ComparisonResult


def history(recalls: list[float], losses: list[float], active: list[float]) -> list[dict]:
    """A history whose epoch ``e`` has mean Recall@10 ``recalls[e]`` (Recall@50 = Recall@10 + 30)."""
    rows = []
    for epoch, r10 in enumerate(recalls):
        row = {"epoch": epoch, "step": 5 * epoch, "steps": 0 if epoch == 0 else 5, "val/mean/R@1": r10 / 5,
               "val/mean/R@5": r10 / 2, "val/mean/R@10": r10, "val/mean/R@50": r10 + 30,
               "val/headline": r10 + 15, "time/eval_s": 0.2}
        if epoch:
            row.update({"train/loss": losses[epoch - 1], "train/active_fraction": active[epoch - 1],
                        "time/mean_sample_s": 0.004, "time/mean_step_s": 0.02, "time/epoch_s": 1.5})
        rows.append(row)
    return rows


def made_up_result(out: Path, *, contrastive: bool = False) -> ComparisonResult:
    """Three (or four) runs: random, hard (faster and better), category (slower); baseline R@10 30."""
    threshold = 45.0
    runs = {
        "random": summarise("random", history([25, 35, 44, 46], [0.15, 0.1, 0.08], [0.6, 0.4, 0.3]), threshold,
                            description="triplet loss, random negatives (k=16)"),
        "hard": summarise("hard", history([25, 45, 50, 52], [0.3, 0.25, 0.2], [1.0, 0.9, 0.8]), threshold,
                          description="triplet loss, hard negatives (k=16)"),
        "category": summarise("category", history([25, 30, 38, 42], [0.2, 0.15, 0.1], [0.7, 0.5, 0.4]), threshold,
                              description="triplet loss, category negatives (k=16)"),
    }
    setup_runs = {name: {"folder": str(out / "runs" / name), "description": run.description, "loss": "triplet",
                         "negatives": name} for name, run in runs.items()}
    if contrastive:
        runs["contrastive-in-batch"] = summarise("contrastive-in-batch", history([25, 40, 43, 44], [4.0, 3.5, 3.2],
                                                                                 [0.3, 0.2, 0.1]), threshold)
        runs["contrastive-in-batch"].sample_s_per_step = None
        setup_runs["contrastive-in-batch"] = {"folder": str(out / "runs" / "contrastive-in-batch"),
                                              "description": "contrastive", "loss": "contrastive",
                                              "negatives": "in-batch"}
    from cirlab.compare.analysis import verdict

    verdicts = {name: verdict(run, runs["random"], threshold) for name, run in runs.items() if name != "random"}
    setup = {
        "config_source": "synthetic",
        "overrides": [["batch_size", 64], "loss_options.margin=0.1"],
        "shared_config": {"epochs": 3, "batch_size": 64, "val_split": "val", "combiner": "combiner",
                          "combiner_options": {}, "loss": "triplet", "loss_options": {"margin": 0.1},
                          "num_negatives": 16, "negatives_options": {}, "lr": 0.001, "weight_decay": 0.0,
                          "schedule": "cosine", "warmup_steps": 0, "seed": 0},
        "strategies": ["random", "hard", "category"],
        "include_contrastive": contrastive,
        "runs": setup_runs,
        "features": {"path": "/data/features", "model": "m", "dim": 64, "images": 100, "triplets": 200,
                     "data_root": "/data/synth"},
    }
    return ComparisonResult(out=out, runs=runs, baseline=Baseline(recall={1: 5.0, 5: 20.0, 10: 30.0, 50: 60.0},
                                                                  headline=45.0),
                            threshold=threshold, threshold_rule="given", verdicts=verdicts, setup=setup)
