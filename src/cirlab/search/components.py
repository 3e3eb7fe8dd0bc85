"""The models a query needs, checked against the index: encoder and combiner.

Both must agree with the feature cache the index was built from: the encoder must be the one that
made the cached features (same weights hash and dimension), and the combiner must map features of
that dimension to query embeddings of that dimension. Any disagreement is a one-line
:class:`~cirlab.errors.CacheMismatchError` naming the files involved. A combiner loaded from a
checkpoint is checked against the cache's identity when it is loaded
(:func:`~cirlab.combiners.persistence.load_combiner_for`); :func:`check_combiner` covers any module.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cirlab.errors import CacheMismatchError
from cirlab.features.identity import describe_differences, identity_differences

if TYPE_CHECKING:
    from torch import nn

    from cirlab.encoders import Encoder, EncoderSpec


def encoder_spec_from_manifest(manifest: dict[str, Any], where: str | Path) -> EncoderSpec:
    """The :class:`EncoderSpec` that made a feature cache, from the cache's manifest.

    The seed matters only for randomly initialised encoders; the extractor records it under
    ``encoder.seed``.
    """
    from cirlab.encoders.spec import EncoderSpec

    if not manifest.get("model"):
        raise CacheMismatchError(f"{where}: the feature cache manifest names no encoder model")
    described = manifest.get("encoder") if isinstance(manifest.get("encoder"), dict) else {}
    return EncoderSpec(model=manifest["model"], pretrained=manifest.get("pretrained"),
                       checkpoint=manifest.get("checkpoint") or None, seed=int(described.get("seed") or 0))


def check_encoder(encoder: Encoder, features: dict[str, Any], where: str | Path) -> None:
    """Refuse an encoder other than the one that made the features whose identity is ``features``."""
    recorded = {key: features[key] for key in ("dim", "weights_hash") if features.get(key) is not None}
    differences = identity_differences(recorded, {"dim": encoder.dim, "weights_hash": encoder.weights_hash()})
    if differences:
        raise CacheMismatchError(f"{where}: the encoder {encoder.spec.model!r} is not the one that made the indexed "
                                 f"features ({describe_differences(differences, 'index', 'encoder')})")


def check_combiner(combiner: nn.Module, dim: int, where: str | Path) -> None:
    """Refuse a combiner that does not map ``dim``-d image and text features to ``dim``-d queries.

    The combiner's own ``dim`` is compared when it has one; otherwise one probe forward pass
    decides, so any ``nn.Module`` with the combiner signature can be checked.
    """
    import torch

    own = getattr(combiner, "dim", None)
    if isinstance(own, int) and own != dim:
        raise CacheMismatchError(f"{where}: the combiner works on {own}-d features, the index holds {dim}-d features")
    device = next((p.device for p in combiner.parameters()), torch.device("cpu"))
    probe = torch.randn(1, dim, generator=torch.Generator().manual_seed(0)).to(device)
    try:
        with torch.no_grad():
            out = combiner(probe, probe)
    except (RuntimeError, ValueError) as exc:
        raise CacheMismatchError(f"{where}: the combiner does not accept {dim}-d features "
                                 f"({str(exc).splitlines()[0]})") from None
    if tuple(out.shape) != (1, dim):
        raise CacheMismatchError(f"{where}: the combiner returns shape {tuple(out.shape)} for {dim}-d features, "
                                 f"expected (1, {dim})")
