"""Config loading: shipped files, overrides and their order, and one-line errors naming file and line."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from cirlab.errors import ConfigError
from cirlab.training import config as config_module
from cirlab.training.config import (
    IN_BATCH,
    RESUMABLE_CHANGES,
    TrainConfig,
    config_keys,
    load_config,
    resolve_config_path,
    shipped_configs,
)


def write(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_field_has_a_comment():
    lines = inspect.getsource(config_module.TrainConfig).splitlines()
    for name in config_keys():
        line = next(line for line in lines if line.strip().startswith(f"{name}:"))
        assert "#" in line, f"{name} has no comment"


def test_shipped_configs_load_and_validate():
    assert {"fashioniq-rn50x4", "synthetic"} <= set(shipped_configs())
    for name in shipped_configs():
        config = load_config(name, {"features": "cache", "out": "run"}).validate()
        assert isinstance(config, TrainConfig)


def test_reference_config_holds_clip4cir_combiner_hyper_parameters():
    config = load_config("fashioniq-rn50x4", {"features": "c", "out": "r"})
    assert config.combiner == "combiner"
    assert config.combiner_options == {"projection_dim": 2560, "hidden_dim": 5120, "dropout": 0.5}
    assert (config.loss, config.loss_options) == ("contrastive", {"logit_scale": 100.0})
    assert config.negatives == IN_BATCH
    assert (config.epochs, config.batch_size, config.lr, config.eval_every) == (300, 4096, 2e-5, 1)
    assert (config.weight_decay, config.schedule) == (0.0, "constant")
    assert config.categories == ["dress", "shirt", "toptee"]


def test_overrides_apply_in_order_after_the_file(tmp_path):
    path = write(tmp_path, "features: a\nout: b\nlr: 0.1\nepochs: 3\nloss_options: {margin: 0.3}\n")
    config = load_config(path, [("lr", 0.5), "lr=0.25", "loss_options.distance=euclidean", ("epochs", 7)])
    assert config.lr == 0.25
    assert config.epochs == 7
    assert config.loss_options == {"margin": 0.3, "distance": "euclidean"}
    assert config.features == "a"
    untouched = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name == "seed"}
    assert config.seed == untouched["seed"]


def test_yaml_1_1_exponent_without_dot_is_read_as_a_number(tmp_path):
    path = write(tmp_path, "lr: 2e-5\n")
    assert load_config(path).lr == 2e-5
    assert load_config(None, ["lr=3e-4"]).lr == 3e-4


def test_list_values_from_the_command_line():
    config = load_config(None, [("categories", "dress,shirt"), "caption_forms=[0, 2]"])
    assert config.categories == ["dress", "shirt"]
    assert config.caption_forms == [0, 2]


def test_bad_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "features: a\nout: b\nlr: [0.1\nepochs: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}:")
    assert "invalid YAML" in message
    assert "\n" not in message


def test_unknown_key_names_file_line_and_suggestion(tmp_path):
    path = write(tmp_path, "features: a\n\nlearning_rat: 0.1\n")
    with pytest.raises(ConfigError, match=r"run\.yaml:3: unknown config key 'learning_rat'"):
        load_config(path)


def test_unknown_override_key_is_refused():
    with pytest.raises(ConfigError, match=r"--set epoch=3: unknown config key 'epoch' \(did you mean 'epochs'\?\)"):
        load_config(None, ["epoch=3"])


def test_wrong_type_names_line_and_key(tmp_path):
    path = write(tmp_path, "epochs: many\n")
    with pytest.raises(ConfigError, match=r"run\.yaml:1: config key 'epochs': expected an integer"):
        load_config(path)
    with pytest.raises(ConfigError, match="config key 'batch_size': expected an integer"):
        load_config(None, ["batch_size=1.5"])


def test_top_level_must_be_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match="mapping of config keys"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_missing_config_file_lists_shipped_ones(tmp_path):
    with pytest.raises(ConfigError, match="no such config file .*shipped configs: .*synthetic"):
        load_config(tmp_path / "absent.yaml")


def test_malformed_set_option():
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["lr"])


@pytest.mark.parametrize(("overrides", "message"), [
    ({"out": "r"}, "no feature cache given"),
    ({"features": "c"}, "no run folder given"),
    ({"features": "c", "out": "r", "schedule": "linear"}, "unknown schedule 'linear'"),
    ({"features": "c", "out": "r", "precision": "fp8"}, "unknown precision 'fp8'"),
    ({"features": "c", "out": "r", "caption_forms": [-1]}, "caption_forms"),
    ({"features": "c", "out": "r", "batch_size": 0}, "batch_size must be at least 1"),
    ({"features": "c", "out": "r", "num_negatives": 0}, "num_negatives must be at least 1"),
    ({"features": "c", "out": "r", "min_lr_ratio": 2.0}, "min_lr_ratio"),
])
def test_validate_refuses_bad_values(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides).validate()


def test_in_batch_needs_no_mined_negatives():
    load_config(None, {"features": "c", "out": "r", "negatives": IN_BATCH, "num_negatives": 0}).validate()


def test_a_file_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
    assert resolve_config_path("synthetic").parent.name == "configs"
    assert resolve_config_path("synthetic.yaml") == resolve_config_path("synthetic")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "synthetic").write_text("epochs: 1\n")
    assert resolve_config_path("synthetic") == tmp_path.joinpath("synthetic").relative_to(tmp_path)
    assert load_config("synthetic").epochs == 1


def test_choosing_another_loss_drops_the_files_loss_options_and_keeps_the_given_ones():
    # fashioniq-rn50x4 sets loss_options.logit_scale for its contrastive loss; triplet takes no such option
    for overrides in ([("loss", "triplet"), ("negatives", "hard"), "loss_options.margin=0.2"],
                      ["loss_options.margin=0.2", ("loss", "triplet"), ("negatives", "hard")]):
        config = load_config("fashioniq-rn50x4", overrides)
        assert (config.loss, config.loss_options) == ("triplet", {"margin": 0.2})
        assert (config.negatives, config.negatives_options) == ("hard", {})
        assert config.combiner_options == {"projection_dim": 2560, "hidden_dim": 5120, "dropout": 0.5}


def test_naming_the_files_own_component_keeps_its_options():
    config = load_config("fashioniq-rn50x4", [("loss", "contrastive"), ("combiner", "combiner")])
    assert config.loss_options == {"logit_scale": 100.0}
    assert config.combiner_options == {"projection_dim": 2560, "hidden_dim": 5120, "dropout": 0.5}


def test_choosing_another_combiner_or_sampler_drops_their_options(tmp_path):
    path = write(tmp_path, "combiner: combiner\ncombiner_options: {hidden_dim: 8}\nnegatives: hard\n"
                           "negatives_options: {top_m: 4}\n")
    config = load_config(path, [("combiner", "attention-fusion"), ("negatives", "semi-hard"),
                                "combiner_options.dropout=0.1"])
    assert config.combiner_options == {"dropout": 0.1} and config.negatives_options == {}
    # without a file the defaults are the base: a component other than the default starts empty too
    assert load_config(None, [("loss", "triplet"), "loss_options.margin=0.3"]).loss_options == {"margin": 0.3}


def test_the_run_folder_and_cache_path_may_change_on_resume():
    assert {"out", "features"} <= RESUMABLE_CHANGES
