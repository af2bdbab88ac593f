"""synapse-lux-privacy: the Luxchat retention and privacy rules (R1-R15) for Synapse.

Load it with one entry in ``homeserver.yaml``::

    modules:
      - module: synapse_lux_privacy.LuxPrivacyModule
        config: {}
"""

from synapse_lux_privacy.module import LuxPrivacyModule

__all__ = ["LuxPrivacyModule"]
__version__ = "0.1.0"
