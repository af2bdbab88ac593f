"""The rule families, one sub-package each; ``build_features`` lists those this release has."""

from synapse_lux_privacy.feature import Feature, ModuleContext
from synapse_lux_privacy.features.accounts import AccountsFeature
from synapse_lux_privacy.features.content import ContentFeature
from synapse_lux_privacy.features.directory import DirectoryFeature
from synapse_lux_privacy.features.quota import QuotaFeature
from synapse_lux_privacy.features.rights import RightsFeature


def build_features(ctx: ModuleContext) -> list[Feature]:
    """Every feature of this release, built for one Synapse process."""
    accounts = AccountsFeature(ctx)
    features: list[Feature] = [
        accounts,
        ContentFeature(ctx),
        DirectoryFeature(ctx),
        QuotaFeature(ctx),
    ]
    # R14: exports carry the other features' report sections; erasure is R12's chain.
    return [*features, RightsFeature(ctx, accounts.eraser, [f.report for f in features])]
