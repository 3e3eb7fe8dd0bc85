"""The feature cache: image and caption-variant features encoded once, then read memory-mapped.

A cache owns its identity (:meth:`FeatureCache.identity`, :data:`IDENTITY_KEYS`); checkpoints, runs and
indexes record it and :func:`check_identity` compares a record with a cache.
"""

from cirlab.features.cache import FeatureCache, TripletTable, write_cache
from cirlab.features.identity import ENCODER_KEYS, IDENTITY_KEYS, check_identity

__all__ = ["ENCODER_KEYS", "IDENTITY_KEYS", "FeatureCache", "TripletTable", "check_identity", "write_cache"]
