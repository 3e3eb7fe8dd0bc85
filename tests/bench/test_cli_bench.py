"""``cirlab bench``: the quick run end to end, and its errors."""

from __future__ import annotations

import json
import math

import pytest

from cirlab.bench.report import KINDS
from cirlab.cli import main

#: Figures every quick CPU run must report (more may be present, e.g. bf16 ones where the CPU runs bf16).
REQUIRED = {
    "train": ["step_gflop", "fp32_share_of_peak", "fp32_triplets_per_s", "fp32_matmul_gflops"],
    "mining": [f"{size}.{miner}_{what}" for size in ("1k", "10k") for miner in ("semi_hard", "hard")
               for what in ("step_ratio", "over_matmul", "sample_ms")] + ["core_step_ms", "1k.random_sample_ms",
                                                                         "1k.ledger_share_of_step", "10k.ledger_ms"],
    "pml": [f"{d}.{what}" for d in ("cosine", "euclidean")
            for what in ("pml_triplets", "anchors_agreeing", "window_total_difference", "k16_picks_in_pml_set",
                         "boundary_triplets")] + ["time_ratio"],
    "naive": ["random_speedup", "semi_hard_speedup", "reference_batch_speedup", "naive_ms_per_negative"],
    "extract": [f"{model}.{what}" for model in ("cirlab-vit-tiny", "cirlab-rn-tiny", "cirlab-vit-small")
                for what in ("pipeline_over_forward", "images_per_s", "caption_forms_per_s", "extract_s")],
    "cache": ["epoch_ratio", "break_even_epochs", "cached_epoch_ms", "reencoding_epoch_ms", "extract_s"],
    "eval": ["6k.recall_over_bare", "6k.protocol_over_bare", "6k.recall_difference", "6k.prepare_ms"],
    "search": ["100k.flat_over_bare", "100k.ivf_speedup", "100k.ivf_recall_at_10", "100k.flat_p50_ms",
               "100k.ivf_p99_ms", "100k.category_over_flat", "100k.flat_category_p50_ms", "100k.ivf_category_p50_ms",
               "http_over_engine", "http_over_health", "http_p50_ms", "engine_p50_ms", "load.text.8c.batched_speedup",
               "load.text.8c.batched_p99_ratio", "load.upload.8c.batched_speedup", "load.text.1c.one_requests_per_s",
               "load.upload.32c.mean_batch", "load_failed_requests"],
    "compare": ["concurrent_speedup", "serial_s", "concurrent_s", "runs_with_equal_ranks"],
}


@pytest.mark.slow
def test_quick_run_writes_every_figure_finite(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["quick"] is True and data["device"] == "cpu"
    benchmarks = {b["name"]: b for b in data["benchmarks"]}
    assert list(benchmarks) == list(REQUIRED)
    for name, required in REQUIRED.items():
        figures = benchmarks[name]["figures"]
        assert set(required) <= set(figures), f"{name} lacks {set(required) - set(figures)}"
        assert f"[{name}]" in printed
        for figure_name, figure in figures.items():
            values = [figure["value"], figure["low"], figure["high"]]
            assert all(v is None or math.isfinite(v) for v in values), f"{name}.{figure_name}: {values}"
            assert figure["kind"] in KINDS
            assert figure["kind"] != "ratio" or figure["baseline"]
            assert figure_name in printed
    # the correctness checks hold, not only exist
    pml = benchmarks["pml"]["figures"]
    for distance in ("cosine", "euclidean"):
        assert pml[f"{distance}.anchors_agreeing"]["value"] == 1.0
        assert pml[f"{distance}.window_total_difference"]["value"] == 0
        assert pml[f"{distance}.k16_picks_in_pml_set"]["value"] == 1.0
        assert pml[f"{distance}.pml_triplets"]["value"] > 0
    # runs trained concurrently rank every query as the same runs trained one after another
    compare = benchmarks["compare"]
    assert compare["figures"]["runs_with_equal_ranks"]["value"] == compare["settings"]["runs"] > 0
    assert benchmarks["eval"]["figures"]["6k.recall_difference"]["value"] == 0
    assert 0 < benchmarks["search"]["figures"]["100k.ivf_recall_at_10"]["value"] <= 1
    assert benchmarks["search"]["figures"]["load_failed_requests"]["value"] == 0


def test_unknown_benchmark_is_a_one_line_error(tmp_path, capsys) -> None:
    assert main(["bench", "--only", "train,nope", "--out", str(tmp_path / "x.json")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("cirlab: error: unknown benchmark 'nope'") and "\n" not in error
    assert not (tmp_path / "x.json").exists()


def test_threads_must_be_positive(tmp_path, capsys) -> None:
    assert main(["bench", "--only", "pml", "--threads", "0", "--out", str(tmp_path / "x.json")]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err


def test_out_naming_a_folder_is_refused_before_measuring(tmp_path, capsys) -> None:
    assert main(["bench", "--only", "pml", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "--out names a folder" in error and str(tmp_path) in error
