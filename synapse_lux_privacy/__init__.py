"""synapse-lux-privacy: the Luxchat retention and privacy rules (R1-R15) for Synapse.

Load it with one entry in ``homeserver.yaml``::

    modules:
      - module: synapse_lux_privacy.LuxPrivacyModule
        config: {}

``LuxPrivacyModule`` is imported when first asked for (Synapse's module loader asks
with ``getattr``), so that the operator command starts without importing Synapse and
answers Ctrl-C from its first moment (``admin_cli.entry``).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synapse_lux_privacy.module import LuxPrivacyModule

__all__ = ["LuxPrivacyModule"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "LuxPrivacyModule":
        from synapse_lux_privacy.module import LuxPrivacyModule

        return LuxPrivacyModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
