"""The per-user storage quota with eviction of the oldest items (R4); see ``feature.py``."""

from synapse_lux_privacy.features.quota.feature import QuotaFeature

__all__ = ["QuotaFeature"]
