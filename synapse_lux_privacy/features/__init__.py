"""The rule families, one sub-package each; ``build_features`` lists those this release has."""

from synapse_lux_privacy.feature import Feature, ModuleContext


def build_features(ctx: ModuleContext) -> list[Feature]:
    """Every feature of this release, built for one Synapse process."""
    return []
