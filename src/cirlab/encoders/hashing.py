"""A stable fingerprint of a model's weights.

The hash covers every entry of the state dict (name, dtype, shape and raw bytes, in sorted name
order), so it is the same however the weights were obtained (an open_clip tag, a ``.bin`` or a
``.safetensors`` file, a seeded random initialisation) and changes with any single value. Feature
caches record it, which is how a cache made with other weights is recognised as stale.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch


def state_dict_hash(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Hex sha256 of a state dict's names, dtypes, shapes and values."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()
