"""The CLIP4Cir Combiner: layer shapes and parameter counts at d = 640, and its forward pass by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cirlab.combiners import CLIP4CirCombiner, build_combiner
from cirlab.errors import ConfigError


def _linear_params(fan_in: int, fan_out: int) -> int:
    return fan_in * fan_out + fan_out


def test_layer_shapes_and_parameter_count_at_640() -> None:
    with torch.device("meta"):  # shapes only: no 236 MB of weights allocated
        combiner = build_combiner("combiner", dim=640)
    assert (combiner.projection_dim, combiner.hidden_dim) == (2560, 5120)
    shapes = {name: tuple(p.shape) for name, p in combiner.named_parameters()}
    assert shapes == {
        "text_projection_layer.weight": (2560, 640), "text_projection_layer.bias": (2560,),
        "image_projection_layer.weight": (2560, 640), "image_projection_layer.bias": (2560,),
        "combiner_layer.weight": (5120, 5120), "combiner_layer.bias": (5120,),
        "output_layer.weight": (640, 5120), "output_layer.bias": (640,),
        "dynamic_scalar.0.weight": (5120, 5120), "dynamic_scalar.0.bias": (5120,),
        "dynamic_scalar.3.weight": (1, 5120), "dynamic_scalar.3.bias": (1,),
    }
    expected = (2 * _linear_params(640, 2560) + _linear_params(5120, 5120) + _linear_params(5120, 640)
                + _linear_params(5120, 5120) + _linear_params(5120, 1))
    assert sum(p.numel() for p in combiner.parameters()) == expected == 59_003_521
    dropouts = [m.p for m in combiner.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.5, 0.5, 0.5, 0.5]


def test_forward_equals_the_formula_in_eval_mode() -> None:
    torch.manual_seed(0)
    combiner = CLIP4CirCombiner(dim=8, projection_dim=12, hidden_dim=16).eval()
    image, text = torch.randn(3, 8), torch.randn(3, 8)
    t = F.relu(text @ combiner.text_projection_layer.weight.T + combiner.text_projection_layer.bias)
    i = F.relu(image @ combiner.image_projection_layer.weight.T + combiner.image_projection_layer.bias)
    c = torch.cat([t, i], dim=1)  # text first
    h = F.relu(c @ combiner.combiner_layer.weight.T + combiner.combiner_layer.bias)
    s = combiner.dynamic_scalar
    lam = torch.sigmoid(F.relu(c @ s[0].weight.T + s[0].bias) @ s[3].weight.T + s[3].bias)
    raw = h @ combiner.output_layer.weight.T + combiner.output_layer.bias + lam * text + (1 - lam) * image
    out = combiner(image, text)
    assert torch.allclose(out, raw / raw.norm(dim=1, keepdim=True), atol=1e-6)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-6)


def test_dynamic_scalar_interpolates_the_raw_features() -> None:
    combiner = CLIP4CirCombiner(dim=4, projection_dim=4, hidden_dim=4).eval()
    with torch.no_grad():
        combiner.output_layer.weight.zero_()
        combiner.output_layer.bias.zero_()
        combiner.dynamic_scalar[3].weight.zero_()
        combiner.dynamic_scalar[3].bias.fill_(50.0)  # lambda = 1: the text features alone
    image, text = torch.randn(2, 4), torch.randn(2, 4)
    assert torch.allclose(combiner(image, text), F.normalize(text, dim=1), atol=1e-6)


def test_dropout_is_active_in_training_mode_only() -> None:
    torch.manual_seed(1)
    combiner = CLIP4CirCombiner(dim=8)
    image, text = torch.randn(4, 8), torch.randn(4, 8)
    assert not torch.allclose(combiner.train()(image, text), combiner(image, text))
    assert torch.equal(combiner.eval()(image, text), combiner(image, text))
    assert CLIP4CirCombiner(dim=8, dropout=0.0).dropout1.p == 0.0


def test_config_rebuilds_the_same_architecture_and_gradients_flow() -> None:
    combiner = CLIP4CirCombiner(dim=8, projection_dim=6, hidden_dim=10, dropout=0.2)
    config = combiner.config()
    assert config == {"name": "combiner", "dim": 8, "projection_dim": 6, "hidden_dim": 10, "dropout": 0.2}
    rebuilt = build_combiner(**config)
    assert {n: p.shape for n, p in rebuilt.named_parameters()} == {n: p.shape for n, p in combiner.named_parameters()}
    combiner(torch.randn(2, 8), torch.randn(2, 8)).sum().backward()
    assert all(p.grad is not None for p in combiner.parameters())


def test_refuses_bad_widths_and_dropout() -> None:
    with pytest.raises(ConfigError, match="projection_dim must be a positive integer"):
        CLIP4CirCombiner(dim=8, projection_dim=0)
    with pytest.raises(ConfigError, match="dropout must lie in"):
        CLIP4CirCombiner(dim=8, dropout=1.0)
    with pytest.raises(ConfigError, match="hidden_dim must be a positive integer, got 'big'"):
        CLIP4CirCombiner(dim=8, hidden_dim="big")
