"""The rule families, one sub-package each; ``build_features`` lists those this release has."""

from synapse_lux_privacy.feature import Feature, ModuleContext
from synapse_lux_privacy.features.accounts import AccountsFeature
from synapse_lux_privacy.features.content import ContentFeature
from synapse_lux_privacy.features.directory import DirectoryFeature
from synapse_lux_privacy.features.quota import QuotaFeature


def build_features(ctx: ModuleContext) -> list[Feature]:
    """Every feature of this release, built for one Synapse process."""
    return [AccountsFeature(ctx), ContentFeature(ctx), DirectoryFeature(ctx), QuotaFeature(ctx)]
