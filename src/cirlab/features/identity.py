"""Which feature cache something was made from: one identity, one check.

A combiner checkpoint, a training run and a gallery index each record the identity of the feature
cache they were made from (:meth:`FeatureCache.identity() <cirlab.features.cache.FeatureCache.identity>`:
the manifest values of :data:`IDENTITY_KEYS`). Before they are used with a cache again,
:func:`check_identity` compares that record with the cache's identity and refuses a mismatch in one
line naming the recording file, the cache folder and each differing key.

Compatibility rule: only the keys the record holds are compared. A record written before a key joined
:data:`IDENTITY_KEYS` therefore passes as long as the keys it does hold agree, and adding a key here
never invalidates existing checkpoints, runs or indexes. The same rule lets a caller compare part of
the identity: a combiner is checked on :data:`ENCODER_KEYS` only, since it maps one encoder's feature
space whatever data set that encoder was run on.

A key with a default (:data:`IDENTITY_DEFAULTS`: ``dataset``, whose value before CIRR was always
``fashioniq``) is left out of an identity while it holds its default, so the identity of a FashionIQ
cache is what it was before the key existed (runs recorded then resume unchanged), and it is compared
whenever either side names it, an absent value reading as the default: a FashionIQ record is refused
for a CIRR cache and the other way round.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cirlab.data.dataset import DEFAULT_DATASET
from cirlab.errors import CacheMismatchError

if TYPE_CHECKING:
    from cirlab.features.cache import FeatureCache

#: Manifest keys that identify a feature cache: the encoder (model, pretrained tag, weights hash), how
#: it ran (preprocessing, precision), what it encoded (data set layout, data fingerprint, caption forms)
#: and the result's shape. Two caches that agree on all of them hold the same features. (The first eight
#: are the keys training runs recorded before this module existed.)
IDENTITY_KEYS: tuple[str, ...] = (
    "model", "pretrained", "weights_hash", "preprocess", "data_fingerprint", "dim", "num_images", "num_triplets",
    "precision", "caption_forms", "dataset",
)

#: Identity keys with the value a manifest or record that lacks them means (see the module notes).
IDENTITY_DEFAULTS: dict[str, Any] = {"dataset": DEFAULT_DATASET}

#: The part of the identity that names the feature space: which encoder made the features and their
#: dimension. A combiner applies to any cache that agrees on these.
ENCODER_KEYS: tuple[str, ...] = ("model", "pretrained", "weights_hash", "dim")

#: Longest rendering of one value in a message before it is shortened.
_MAX_SHOWN = 40


def manifest_identity(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`IDENTITY_KEYS` that ``manifest`` holds, with their values (absent keys, and keys of
    :data:`IDENTITY_DEFAULTS` at their default, are left out)."""
    return {key: manifest[key] for key in IDENTITY_KEYS
            if key in manifest and not (key in IDENTITY_DEFAULTS and manifest[key] == IDENTITY_DEFAULTS[key])}


def identity_differences(recorded: Mapping[str, Any], current: Mapping[str, Any],
                         keys: Iterable[str] = IDENTITY_KEYS) -> list[tuple[str, Any, Any]]:
    """``(key, recorded value, current value)`` for each of ``keys`` that ``recorded`` holds and
    ``current`` disagrees with (a key ``current`` lacks counts as ``None``). A key of
    :data:`IDENTITY_DEFAULTS` is compared when either side holds it, an absent value reading as its default."""
    differences = []
    for key in keys:
        if key in IDENTITY_DEFAULTS:
            if key not in recorded and key not in current:
                continue
            old, new = recorded.get(key, IDENTITY_DEFAULTS[key]), current.get(key, IDENTITY_DEFAULTS[key])
        elif key in recorded:
            old, new = recorded[key], current.get(key)
        else:
            continue
        if old != new:
            differences.append((key, old, new))
    return differences


def describe_differences(differences: list[tuple[str, Any, Any]], recorded_as: str, current_as: str) -> str:
    """``key: <recorded_as> value, <current_as> value; ...`` with long values shortened."""
    return "; ".join(f"{key}: {recorded_as} {shorten(old)}, {current_as} {shorten(new)}"
                     for key, old, new in differences)


def check_identity(recorded: Mapping[str, Any] | None, cache: FeatureCache, *, what: str | Path,
                   keys: Iterable[str] = IDENTITY_KEYS, hint: str | None = None) -> None:
    """Refuse ``cache`` unless it agrees with the identity ``recorded`` in ``what`` (a checkpoint, index or run file).

    Only the ``keys`` that ``recorded`` holds are compared (see the module notes); ``None`` (nothing
    recorded, e.g. a combiner saved outside training) passes. The :class:`CacheMismatchError` names
    ``what``, the cache folder and every differing key with both values; ``hint`` (what to do about
    it) is appended.
    """
    if not recorded:
        return
    differences = identity_differences(recorded, cache.identity(), keys)
    if differences:
        advice = f"; {hint}" if hint else ""
        raise CacheMismatchError(f"{what}: made from other features than the feature cache {cache.root} "
                                 f"({describe_differences(differences, 'recorded', 'cache')}){advice}")


def shorten(value: Any) -> str:
    """``repr`` of ``value`` for a one-line message: a long hash keeps its first 12 characters."""
    if isinstance(value, str) and len(value) > 24 and value.isalnum():
        return repr(value[:12] + "…")
    shown = repr(value)
    return shown if len(shown) <= _MAX_SHOWN else shown[:_MAX_SHOWN - 1] + "…"
