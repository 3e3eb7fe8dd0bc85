"""The gated-fusion combiner: shapes and parameter counts, and its forward pass by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cirlab.combiners import AttentionFusionCombiner, build_combiner


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
