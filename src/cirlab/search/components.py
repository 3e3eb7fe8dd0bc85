"""The models a query needs, loaded and checked against the index: encoder and combiner.

Both must agree with the feature cache the index was built from: the encoder must be the one that
made the cached features (same weights hash and dimension), and the combiner must map features of
that dimension to query embeddings of that dimension. Any disagreement is a one-line
:class:`~cirlab.errors.CacheMismatchError` naming the files involved.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from cirlab.errors import CacheMismatchError, ConfigError

if TYPE_CHECKING:
    from torch import nn

    from cirlab.encoders import Encoder, EncoderSpec

#: Folder of a training run that holds its best checkpoint.
BEST_CHECKPOINT = "best"


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
    """Refuse an encoder other than the one that made the features described by ``features``."""
    if encoder.dim != features.get("dim"):
        raise CacheMismatchError(f"{where}: the encoder {encoder.spec.model!r} gives {encoder.dim}-d features, "
                                 f"the index holds {features.get('dim')}-d features")
    expected = features.get("weights_hash")
    if expected and encoder.weights_hash() != expected:
        raise CacheMismatchError(f"{where}: the encoder's weights (hash {encoder.weights_hash()[:12]}) are not the "
                                 f"ones that made the indexed features (hash {str(expected)[:12]})")


def combiner_folder(checkpoint: str | Path) -> Path:
    """The combiner folder of ``checkpoint``: a run folder's ``best/``, or the folder itself."""
    from cirlab.combiners import CONFIG_FILE

    path = Path(checkpoint)
    if not path.exists():
        raise CacheMismatchError(f"{path}: checkpoint folder not found")
    if (path / BEST_CHECKPOINT / CONFIG_FILE).is_file():
        return path / BEST_CHECKPOINT
    return path


def load_query_combiner(checkpoint: str | Path | None, name: str | None, dim: int,
                        device: str = "cpu") -> nn.Module:
    """A combiner from a training run or combiner folder (``checkpoint``), or a parameter-free one by ``name``.

    Building a combiner that has weights by name would give untrained weights, so only combiners
    without parameters (``sum``) may be chosen by name.
    """
    from cirlab.combiners import build_combiner, load_combiner

    if (checkpoint is None) == (name is None):
        raise ConfigError("give either a combiner checkpoint (--checkpoint RUN) or a parameter-free combiner "
                          "name (--combiner sum), not both")
    if checkpoint is not None:
        folder = combiner_folder(checkpoint)
        combiner = load_combiner(folder, device=device)
        check_combiner(combiner, dim, folder)
        return combiner
    combiner = build_combiner(str(name), dim).to(device).eval()
    if any(True for _ in combiner.parameters()):
        raise ConfigError(f"combiner {name!r} has weights that must be trained; pass --checkpoint RUN_DIR instead")
    return combiner


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
