"""Image ids shaped like FashionIQ's Amazon ASINs: ten upper-case alphanumerics starting with ``B0``."""

from __future__ import annotations

import random
import string

_ALPHABET = string.digits + string.ascii_uppercase
ID_PREFIX = "B0"
ID_LENGTH = 10


class IdAllocator:
    """Hands out distinct ASIN-like ids drawn from ``rng`` (deterministic for a seeded generator)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._issued: set[str] = set()

    def next(self) -> str:
        """A new id, different from every id this allocator issued before."""
        while True:
            image_id = ID_PREFIX + "".join(self._rng.choices(_ALPHABET, k=ID_LENGTH - len(ID_PREFIX)))
            if image_id not in self._issued:
                self._issued.add(image_id)
                return image_id


def is_asin_like(image_id: str) -> bool:
    """Whether ``image_id`` has the shape :class:`IdAllocator` produces."""
    return (len(image_id) == ID_LENGTH and image_id.startswith(ID_PREFIX)
            and all(ch in _ALPHABET for ch in image_id))
