"""What encoder to load: an open_clip architecture plus where its weights come from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cirlab.errors import ConfigError


@dataclass
class EncoderSpec:
    """An encoder to load, in a form that round-trips through JSON (manifests, run configs).

    Weights come from exactly one place, in this order of precedence: ``checkpoint`` (a cirlab
    encoder checkpoint folder written by :func:`~cirlab.encoders.save_encoder_checkpoint`), then
    ``pretrained`` (an open_clip pretrained tag such as ``openai``, or a path to a weights file), and
    otherwise a random initialisation drawn from ``seed`` so that two loads of the same spec give the
    same weights (and the same weights hash, so feature caches stay comparable).
    """

    model: str = "RN50x4"  # any open_clip model name, or a cirlab small config name (list_small_models())
    pretrained: str | None = "openai"  # open_clip pretrained tag or weights file; None = random init
    checkpoint: Path | None = None  # cirlab encoder checkpoint folder (overrides pretrained)
    seed: int = 0  # seed of the random initialisation, used only when no weights are loaded

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError(f"encoder model name must be a non-empty string, got {self.model!r}")
        if self.pretrained is not None and not str(self.pretrained).strip():
            self.pretrained = None
        if self.checkpoint is not None:
            self.checkpoint = Path(self.checkpoint)

    @property
    def source(self) -> str:
        """Where the weights come from, in words: ``checkpoint``, ``pretrained`` or ``random``."""
        if self.checkpoint is not None:
            return "checkpoint"
        return "pretrained" if self.pretrained else "random"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (paths as strings)."""
        return {
            "model": self.model,
            "pretrained": self.pretrained,
            "checkpoint": str(self.checkpoint) if self.checkpoint is not None else None,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderSpec:
        """Inverse of :meth:`to_dict`; unknown keys are refused so that typos do not pass silently."""
        known = {"model", "pretrained", "checkpoint", "seed"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown encoder spec keys {unknown}; expected some of {sorted(known)}")
        checkpoint = data.get("checkpoint")
        return cls(model=data.get("model", cls.model), pretrained=data.get("pretrained", cls.pretrained),
                   checkpoint=Path(checkpoint) if checkpoint else None, seed=int(data.get("seed", 0)))
