"""Training options: validation, what a resume must keep, and keyword overrides."""

from __future__ import annotations

import pytest

from cirlab.encoder_training.options import FINETUNE_DEFAULTS, TrainingOptions, resolve_options
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
