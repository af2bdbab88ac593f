"""Data-subject requests: exports and erasure on request (R14)."""

from synapse_lux_privacy.features.rights.feature import RightsFeature

__all__ = ["RightsFeature"]
