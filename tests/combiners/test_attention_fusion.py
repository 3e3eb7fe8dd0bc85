"""The gated-fusion combiner, both variants: shapes and parameter counts, and the forward pass by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cirlab.combiners import AttentionFusionCombiner, build_combiner
from cirlab.errors import ConfigError


def test_shapes_and_parameter_count_at_640() -> None:
    with torch.device("meta"):
        combiner = build_combiner("attention-fusion", dim=640)
    p, h = 1280, 2560
    shapes = {name: tuple(param.shape) for name, param in combiner.named_parameters()}
    assert shapes == {
        "text_projection.weight": (p, 640), "text_projection.bias": (p,),
        "image_projection.weight": (p, 640), "image_projection.bias": (p,),
        "gate.weight": (p, 2 * p), "gate.bias": (p,),
        "fusion.0.weight": (h, 3 * p), "fusion.0.bias": (h,),
        "fusion.3.weight": (640, h), "fusion.3.bias": (640,),
    }
    assert sum(param.numel() for param in combiner.parameters()) == 16_391_040


def test_forward_equals_the_formula_in_eval_mode() -> None:
    torch.manual_seed(0)
    combiner = AttentionFusionCombiner(dim=6, projection_dim=5, hidden_dim=7).eval()
    image, text = torch.randn(3, 6), torch.randn(3, 6)
    t = F.relu(F.linear(text, combiner.text_projection.weight, combiner.text_projection.bias))
    i = F.relu(F.linear(image, combiner.image_projection.weight, combiner.image_projection.bias))
    g = torch.sigmoid(F.linear(torch.cat([t, i], 1), combiner.gate.weight, combiner.gate.bias))
    m = g * t + (1 - g) * i
    hidden = F.relu(F.linear(torch.cat([m, t, i], 1), combiner.fusion[0].weight, combiner.fusion[0].bias))
    raw = F.linear(hidden, combiner.fusion[3].weight, combiner.fusion[3].bias)
    out = combiner(image, text)
    assert torch.allclose(out, F.normalize(raw, dim=1), atol=1e-6)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-6)


def test_a_saturated_gate_passes_one_modality() -> None:
    combiner = AttentionFusionCombiner(dim=4, projection_dim=4, hidden_dim=4).eval()
    with torch.no_grad():
        combiner.gate.weight.zero_()
        combiner.gate.bias.fill_(50.0)  # gate = 1: the mix is the text projection
    image_a, image_b, text = torch.randn(2, 4), torch.randn(2, 4), torch.randn(2, 4)
    t = F.relu(combiner.text_projection(text))
    gate = torch.sigmoid(combiner.gate(torch.cat([t, F.relu(combiner.image_projection(image_a))], 1)))
    assert torch.allclose(gate, torch.ones_like(gate))
    # The mix no longer depends on the image, but the image projection still feeds the fusion.
    assert not torch.allclose(combiner(image_a, text), combiner(image_b, text))


def test_config_round_trip_and_gradients() -> None:
    combiner = AttentionFusionCombiner(dim=8, dropout=0.1)
    assert combiner.config() == {"name": "attention-fusion", "dim": 8, "projection_dim": 16, "hidden_dim": 32,
                                 "dropout": 0.1}
    assert build_combiner(**combiner.config()).config() == combiner.config()
    combiner(torch.randn(2, 8), torch.randn(2, 8)).sum().backward()
    assert all(p.grad is not None for p in combiner.parameters())


# ---------------------------------------------------------------- the seed variant


def test_seed_variant_layers_and_parameter_count_at_640() -> None:
    with torch.device("meta"):
        combiner = build_combiner("attention-fusion", dim=640, variant="seed", hidden_dim=512)
    h = 512
    shapes = {name: tuple(param.shape) for name, param in combiner.named_parameters()}
    assert shapes == {
        "image_proj.weight": (h, 640), "image_proj.bias": (h,),
        "text_proj.weight": (h, 640), "text_proj.bias": (h,),
        "gate.weight": (1, 2 * h), "gate.bias": (1,),
        "output.weight": (640, 3 * h), "output.bias": (640,),
    }
    assert sum(param.numel() for param in combiner.parameters()) == 1_641_089
    assert not any(isinstance(module, torch.nn.Dropout) for module in combiner.modules())


def test_seed_variant_defaults_to_the_seeds_width_whatever_the_dimension() -> None:
    assert AttentionFusionCombiner(dim=64, variant="seed").hidden_dim == 512


def test_seed_variant_equals_a_hand_computation() -> None:
    torch.manual_seed(1)
    combiner = AttentionFusionCombiner(dim=5, hidden_dim=3, variant="seed")
    weights = {name: value.detach().double().numpy() for name, value in combiner.state_dict().items()}
    rng = np.random.default_rng(0)
    image, text = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))

    def linear(x: np.ndarray, layer: str) -> np.ndarray:
        return x @ weights[f"{layer}.weight"].T + weights[f"{layer}.bias"]

    i = np.maximum(linear(image, "image_proj"), 0.0)
    t = np.maximum(linear(text, "text_proj"), 0.0)
    g = 1.0 / (1.0 + np.exp(-linear(np.concatenate([i, t], axis=1), "gate")))  # [4, 1]: one scalar per query
    fused = g * i + (1.0 - g) * t
    raw = linear(np.concatenate([fused, i, t], axis=1), "output")
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)

    out = combiner(torch.from_numpy(image).float(), torch.from_numpy(text).float())
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-6)
    # No dropout: training mode gives the same output.
    assert torch.equal(combiner.train()(torch.from_numpy(image).float(), torch.from_numpy(text).float()), out)


def test_seed_variant_accepts_and_ignores_projection_dim() -> None:
    torch.manual_seed(0)
    plain = AttentionFusionCombiner(dim=8, hidden_dim=6, variant="seed")
    torch.manual_seed(0)
    given = AttentionFusionCombiner(dim=8, projection_dim=99, hidden_dim=6, variant="seed")
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), given.state_dict().values()))
    assert given.config() == {"name": "attention-fusion", "dim": 8, "variant": "seed", "hidden_dim": 6}
    assert build_combiner(**given.config()).config() == given.config()


def test_seed_variant_refuses_dropout_and_unknown_variants_are_refused() -> None:
    assert AttentionFusionCombiner(dim=4, variant="seed", dropout=0.0).dropout == 0.0
    with pytest.raises(ConfigError, match="variant 'seed' has no dropout"):
        AttentionFusionCombiner(dim=4, variant="seed", dropout=0.5)
    with pytest.raises(ConfigError, match="unknown variant 'scalar'; known: cirlab, seed"):
        AttentionFusionCombiner(dim=4, variant="scalar")


def test_the_default_variant_is_unchanged_by_the_variant_option() -> None:
    torch.manual_seed(2)
    default = AttentionFusionCombiner(dim=6)
    torch.manual_seed(2)
    named = AttentionFusionCombiner(dim=6, variant="cirlab", dropout=0.5)
    assert default.config() == named.config() == {"name": "attention-fusion", "dim": 6, "projection_dim": 12,
                                                  "hidden_dim": 24, "dropout": 0.5}
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), named.state_dict().values()))
