"""R10: directory consent, consent-filtered user search, national directory sync."""

from synapse_lux_privacy.features.directory.feature import DirectoryFeature

__all__ = ["DirectoryFeature"]
