"""Inactive sessions (R11), inactive accounts (R12, R7, R8), profile erasure on any
deactivation (R7) and IP / user-agent logs (R9), on the module's own activity record."""

from synapse_lux_privacy.features.accounts.feature import AccountsFeature

__all__ = ["AccountsFeature"]
