"""The feature cache: image and caption-variant features encoded once, then read memory-mapped."""

from cirlab.features.cache import FeatureCache, TripletTable, write_cache

__all__ = ["FeatureCache", "TripletTable", "write_cache"]
