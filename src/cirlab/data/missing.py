"""The explicit policy for images that a split or caption file names but the images folder lacks.

Real FashionIQ copies are incomplete (users typically hold about 74k of the 77k images), so cirlab
never silently drops data: with ``error`` (the default) a missing image stops the work with a
message that counts them; with ``skip`` the missing images and every triplet that needs one are
left out, and the counts are printed and written next to any result (:class:`MissingReport`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from cirlab.errors import ConfigError


class MissingPolicy(str, Enum):
    """What to do with missing images."""

    ERROR = "error"
    SKIP = "skip"

    @classmethod
    def parse(cls, value: str | MissingPolicy) -> MissingPolicy:
        """Accept a policy or its name, with a clear error for anything else."""
        if isinstance(value, MissingPolicy):
            return value
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(f"unknown missing-image policy {value!r}; use 'error' or 'skip'") from None


@dataclass
class MissingReport:
    """Counts of what a missing-image policy left out, per ``category.split``."""

    policy: str = MissingPolicy.ERROR.value
    missing_images: dict[str, list[str]] = field(default_factory=dict)
    dropped_triplets: dict[str, list[int]] = field(default_factory=dict)

    def add(self, key: str, missing: list[str], dropped: list[int]) -> None:
        """Record what was left out for ``key`` (``"<category>.<split>"``)."""
        if missing:
            self.missing_images[key] = list(missing)
        if dropped:
            self.dropped_triplets[key] = list(dropped)

    @property
    def total_missing(self) -> int:
        """Distinct missing images over every key."""
        return len({image_id for ids in self.missing_images.values() for image_id in ids})

    @property
    def total_dropped(self) -> int:
        """Triplets left out over every key."""
        return sum(len(v) for v in self.dropped_triplets.values())

    def summary(self) -> str:
        """One line for the terminal."""
        if not self.total_missing:
            return "missing images: none"
        parts = ", ".join(
            f"{key}: {len(self.missing_images.get(key, []))} images / "
            f"{len(self.dropped_triplets.get(key, []))} triplets"
            for key in sorted(set(self.missing_images) | set(self.dropped_triplets))
        )
        return (f"missing images ({self.policy}): {self.total_missing} images missing, "
                f"{self.total_dropped} triplets left out ({parts})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, written beside results."""
        return {
            "policy": self.policy,
            "total_missing_images": self.total_missing,
            "total_dropped_triplets": self.total_dropped,
            "missing_images": self.missing_images,
            "dropped_triplets": self.dropped_triplets,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MissingReport:
        """Inverse of :meth:`to_dict`."""
        return cls(policy=data.get("policy", "error"), missing_images=dict(data.get("missing_images", {})),
                   dropped_triplets={k: list(v) for k, v in data.get("dropped_triplets", {}).items()})
