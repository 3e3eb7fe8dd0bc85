import pytest
import torch
from torch import nn

from cirlab.combiners import build_combiner, save_combiner
from cirlab.errors import CacheMismatchError, ConfigError
from cirlab.search.components import (
    check_combiner,
    combiner_folder,
    encoder_spec_from_manifest,
    load_query_combiner,
)


def test_encoder_spec_comes_from_the_cache_manifest(tmp_path):
    manifest = {"model": "cirlab-vit-tiny", "pretrained": None, "checkpoint": None,
                "encoder": {"model": "cirlab-vit-tiny", "seed": 7, "source": "random"}}
    spec = encoder_spec_from_manifest(manifest, tmp_path)
    assert (spec.model, spec.pretrained, spec.checkpoint, spec.seed) == ("cirlab-vit-tiny", None, None, 7)
    spec = encoder_spec_from_manifest({"model": "RN50x4", "pretrained": "openai", "checkpoint": str(tmp_path)}, "x")
    assert (spec.pretrained, spec.checkpoint, spec.seed) == ("openai", tmp_path, 0)
    with pytest.raises(CacheMismatchError, match="names no encoder model"):
        encoder_spec_from_manifest({}, tmp_path)


def test_combiner_folder_prefers_a_runs_best_checkpoint(tmp_path):
    combiner = build_combiner("sum", 8)
    save_combiner(combiner, tmp_path / "run" / "best")
    save_combiner(combiner, tmp_path / "plain")
    assert combiner_folder(tmp_path / "run") == tmp_path / "run" / "best"
    assert combiner_folder(tmp_path / "plain") == tmp_path / "plain"
    with pytest.raises(CacheMismatchError, match="checkpoint folder not found"):
        combiner_folder(tmp_path / "missing")


def test_load_query_combiner_by_checkpoint_or_parameter_free_name(tmp_path):
    torch.manual_seed(0)
    trained = build_combiner("combiner", 16, projection_dim=8, hidden_dim=8)
    save_combiner(trained, tmp_path / "run" / "best")
    loaded = load_query_combiner(tmp_path / "run", None, 16)
    for name, tensor in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
    assert load_query_combiner(None, "sum", 16).config() == {"name": "sum", "dim": 16}
    with pytest.raises(ConfigError, match="has weights that must be trained"):
        load_query_combiner(None, "combiner", 16)
    with pytest.raises(ConfigError, match="give either"):
        load_query_combiner(tmp_path / "run", "sum", 16)
    with pytest.raises(ConfigError, match="give either"):
        load_query_combiner(None, None, 16)
    with pytest.raises(CacheMismatchError, match="works on 16-d features, the index holds 32-d"):
        load_query_combiner(tmp_path / "run", None, 32)


def test_check_combiner_probes_modules_without_a_dim():
    class Projection(nn.Module):
        def __init__(self, d_in, d_out):
            super().__init__()
            self.linear = nn.Linear(d_in, d_out)

        def forward(self, image, text):
            return self.linear(image + text)

    check_combiner(Projection(12, 12), 12, "ok")
    with pytest.raises(CacheMismatchError, match="does not accept 10-d features"):
        check_combiner(Projection(12, 12), 10, "here")
    with pytest.raises(CacheMismatchError, match=r"returns shape \(1, 6\) for 12-d features"):
        check_combiner(Projection(12, 6), 12, "here")
