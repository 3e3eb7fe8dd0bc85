"""The shared options: one declaration and help text per option, defaults and choices from where they live."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from cirlab import cli
from cirlab.cli.options import DEFAULT_STRATEGIES, add_categories, add_precision


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, with its help texts written (as ``--help`` does)."""
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for sub in action.choices.values():
        sub.format_help()
    return dict(action.choices)


def helps(flag: str) -> dict[str, str]:
    """``{command: help text}`` of ``flag`` in every command that has it, defaults left out."""
    found = {}
    for name, sub in subcommands().items():
        for action in sub._actions:
            if flag in action.option_strings:
                found[name] = re.sub(r" \(default: .*\)$", "", action.help)
    return found


@pytest.mark.parametrize("flag", ["--device", "--categories", "--workers", "--precision", "--features", "--config",
                                  "--strategies", "--set"])
def test_a_shared_option_has_one_help_text_everywhere(flag):
    texts = helps(flag)
    assert len(texts) >= 2, texts  # shared by several commands
    assert len(set(texts.values())) == 1, texts


def test_seed_help_follows_one_pattern():
    texts = helps("--seed")
    assert len(texts) >= 5 and all(text.startswith("random seed of ") for text in texts.values()), texts


def test_categories_read_commas_and_spaces():
    parser = argparse.ArgumentParser()
    add_categories(parser)
    assert parser.parse_args(["--categories", "dress,shirt"]).categories == ["dress", "shirt"]
    assert parser.parse_args(["--categories", "dress", "shirt,toptee"]).categories == ["dress", "shirt", "toptee"]
    assert parser.parse_args([]).categories is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--categories", ","])


def test_precision_is_checked_against_the_runtime_list():
    from cirlab.runtime import PRECISIONS

    parser = argparse.ArgumentParser()
    add_precision(parser)
    assert [parser.parse_args(["--precision", p]).precision for p in PRECISIONS] == list(PRECISIONS)
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "fp8"])


def test_train_help_comes_from_the_registries_and_the_config_defaults():
    from cirlab.combiners import COMBINERS
    from cirlab.losses import LOSSES
    from cirlab.negatives import SAMPLERS
    from cirlab.training.config import IN_BATCH, TrainConfig

    train = {a.dest: a.help for a in subcommands()["train"]._actions}
    assert all(name in train["combiner"] for name in COMBINERS.names())
    assert all(name in train["loss"] for name in LOSSES.names())
    assert all(name in train["negatives"] for name in [*SAMPLERS.names(), IN_BATCH])
    defaults = TrainConfig()
    assert train["batch_size"].endswith(f"(default: {defaults.batch_size})")
    assert train["negatives"].endswith(f"(default: {defaults.negatives})")
    assert train["precision"].endswith(f"(default: {defaults.precision})")


def test_encoder_training_defaults_come_from_training_options():
    from cirlab.encoder_training.options import FINETUNE_DEFAULTS, TrainingOptions

    parsers = subcommands()
    pretrain = parsers["pretrain"].parse_args(["--data", "d", "--out", "o"])
    assert (pretrain.lr, pretrain.workers, pretrain.precision) == (TrainingOptions.lr, TrainingOptions.num_workers,
                                                                   TrainingOptions.precision)
    finetune = parsers["finetune"].parse_args(["--data", "d", "--out", "o", "--model", "RN50"])
    assert (finetune.lr, finetune.batch_size) == (FINETUNE_DEFAULTS["lr"], FINETUNE_DEFAULTS["batch_size"])


def test_compare_and_demo_compare_the_same_strategies_by_default():
    from cirlab.demo.options import DemoOptions

    compare = subcommands()["compare"].parse_args(["--out", "o"])
    assert compare.strategies == list(DEFAULT_STRATEGIES) == list(DemoOptions().strategies)


def test_building_the_parser_imports_no_torch():
    code = "import sys; from cirlab.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
