"""Training options: validation, what a resume must keep, and keyword overrides."""

from __future__ import annotations

import pytest

from cirlab.encoder_training.options import FINETUNE_DEFAULTS, ContrastOptions, TrainingOptions, resolve_options
from cirlab.errors import ConfigError


@pytest.mark.parametrize(("field", "value", "message"), [
    ("epochs", 0, "epochs must be >= 1"),
    ("batch_size", 1, "batch size must be >= 2"),
    ("lr", 0.0, "learning rate must be > 0"),
    ("grad_clip", -1.0, "gradient clip must be > 0"),
    ("precision", "fp8", "unknown precision 'fp8'"),
    ("preprocess", "squarepad", "unknown preprocessing 'squarepad'"),
    ("missing", "ignore", "unknown missing-image policy 'ignore'"),
])
def test_bad_values_are_one_line_config_errors(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TrainingOptions(**{field: value})


def test_identity_holds_what_decides_the_result_and_settings_the_rest() -> None:
    options = TrainingOptions(epochs=3, device="cpu", num_workers=4, resume=True)
    identity, settings = options.identity(), options.settings()
    assert identity["epochs"] == 3 and identity["betas"] == [0.9, 0.98] and identity["seed"] == 0
    assert {"device", "num_workers", "resume", "precision", "tensorboard"} <= set(settings)
    assert not set(identity) & set(settings)
    assert set(identity) | set(settings) == set(options.__dict__)


def test_resolve_options_applies_defaults_then_overrides() -> None:
    options = resolve_options(None, {"epochs": 2}, FINETUNE_DEFAULTS)
    assert (options.epochs, options.lr, options.batch_size, options.betas) == (2, 2e-6, 128, (0.9, 0.999))
    assert resolve_options(options, {"lr": 1e-4}).batch_size == 128  # given options replace the defaults
    with pytest.raises(ConfigError, match="unknown training options \\['learning_rate'\\]"):
        resolve_options(None, {"learning_rate": 1.0})


@pytest.mark.parametrize(("values", "message"), [
    ({"negatives": "hard", "num_negatives": 0}, "number of negatives per query must be >= 1"),
    ({"negatives": "hard", "refresh_every": -1}, "refresh interval must be >= 0 steps"),
    ({"negatives_options": {"top_m": 5}}, "sampler options \\['top_m'\\] given without a sampler"),
])
def test_bad_contrast_options_are_one_line_config_errors(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ContrastOptions(**values)


def test_an_unknown_sampler_or_sampler_option_is_refused_before_any_work() -> None:
    ContrastOptions(negatives="hard", negatives_options={"top_m": 5}).check_sampler()
    with pytest.raises(ConfigError, match="unknown negative sampler 'hardest'"):
        ContrastOptions(negatives="hardest").check_sampler()
    with pytest.raises(ConfigError, match="'hard': unknown options \\['topm'\\]; its options are: top_m"):
        ContrastOptions(negatives="hard", negatives_options={"topm": 5}).check_sampler()


def test_contrast_identity_is_empty_for_the_plain_recipe_and_holds_every_mining_option() -> None:
    assert ContrastOptions().identity() == {} == ContrastOptions(refresh_every=7).identity()  # nothing mined
    assert ContrastOptions(gather_batch=False).identity() == {"contrast": {"negatives": "in-batch",
                                                                           "gather_batch": False}}
    mining = ContrastOptions(negatives="semi-hard", negatives_options={"margin": 0.1}, num_negatives=4,
                             refresh_every=20).identity()["contrast"]
    assert mining == {"negatives": "semi-hard", "negatives_options": {"margin": 0.1}, "num_negatives": 4,
                      "refresh_every": 20, "gather_batch": True}
