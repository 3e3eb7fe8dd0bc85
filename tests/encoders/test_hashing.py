"""state_dict_hash against an explicit reference and its sensitivity to every part of the weights."""

from __future__ import annotations

import hashlib

import torch

from cirlab.encoders import state_dict_hash


def reference_hash(state: dict[str, torch.Tensor]) -> str:
    """The documented recipe written out loop by loop."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(bytes(tensor.reshape(-1).view(torch.uint8).tolist()))
    return digest.hexdigest()


def sample_state() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {"b.weight": torch.randn(3, 2, generator=generator), "a.bias": torch.randn(4, generator=generator),
            "scale": torch.tensor(2.5), "empty": torch.zeros(0)}


def test_matches_reference_recipe() -> None:
    state = sample_state()
    assert state_dict_hash(state) == reference_hash(state)


def test_independent_of_insertion_order_and_memory_layout() -> None:
    state = sample_state()
    reordered = {name: state[name] for name in reversed(list(state))}
    reordered["b.weight"] = state["b.weight"].t().contiguous().t()  # same values, non-contiguous view
    assert not reordered["b.weight"].is_contiguous()
    assert state_dict_hash(reordered) == state_dict_hash(state)


def test_sensitive_to_values_names_dtypes_and_shapes() -> None:
    base = state_dict_hash(sample_state())
    changed_value = sample_state()
    changed_value["a.bias"][2] += 1e-6
    renamed = sample_state()
    renamed["c.bias"] = renamed.pop("a.bias")
    retyped = sample_state()
    retyped["a.bias"] = retyped["a.bias"].double()
    reshaped = sample_state()
    reshaped["b.weight"] = reshaped["b.weight"].reshape(2, 3)
    hashes = {state_dict_hash(s) for s in (changed_value, renamed, retyped, reshaped)}
    assert base not in hashes and len(hashes) == 4
