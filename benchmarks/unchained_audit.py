"""Benchmark-only: the module with the audit's hash chain switched off.

``benchmarks/audit_chain.py`` loads this class in place of
``synapse_lux_privacy.LuxPrivacyModule`` on one of two restored copies of a dataset, to
time the messages sweep with and without the chain side by side. The chain's ``lock``
becomes a no-op and ``append`` writes a completed row's final values without its link
(what ``AuditStore.finish_batch`` did before the chain), in that process only; nothing
in the module's configuration can switch the chain off. Never load this on a real server: its audit
is not chained, and its pruning fails.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from synapse.module_api import ModuleApi

from synapse_lux_privacy.config import LuxPrivacyConfig
from synapse_lux_privacy.module import LuxPrivacyModule
from synapse_lux_privacy.store import audit_chain

MODULE_NAME = "benchmarks.unchained_audit.UnchainedAuditModule"


def unchain() -> None:
    """Make every audit write skip the chain (in this process)."""
    setattr(audit_chain, "lock", _no_lock)  # noqa: B010
    setattr(audit_chain, "append", _no_append)  # noqa: B010


def _no_lock(cur: Any) -> Any:
    return None


def _no_append(
    cur: Any,
    head: Any,
    row_ids: Sequence[int],
    final: Mapping[int, Mapping[str, Any]] | None = None,
) -> None:
    for row_id in row_ids:
        values = (final or {}).get(row_id)
        if values is not None:
            cur.execute(
                "UPDATE lux_privacy_audit SET status = ?, ts = ?, count = ?, bytes = ?,"
                " provider_objects = ? WHERE id = ?",
                (*(values[c] for c in audit_chain.FINAL_COLUMNS), row_id),
            )


class UnchainedAuditModule(LuxPrivacyModule):
    def __init__(self, config: LuxPrivacyConfig, api: ModuleApi) -> None:
        unchain()
        super().__init__(config, api)
