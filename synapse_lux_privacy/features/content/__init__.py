"""Content retention by type (R1, R2, R3, R5, R6, R13): messages, attachments, remote media,
redacted content.

The four rules share one policy (``policy.py``) and one record of expunged events
(``expunged.py``); every deletion goes through Synapse's machinery in the adapter
(``synapse_adapter/events.py``, ``synapse_adapter/media.py``). What stays after a
purge, and why, is in docs/content-retention.md.
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from synapse_lux_privacy import synapse_adapter
from synapse_lux_privacy.feature import Feature, ModuleContext
from synapse_lux_privacy.features.content import expunged, scan_marks
from synapse_lux_privacy.features.content.attachments import AttachmentsRule
from synapse_lux_privacy.features.content.messages import MessagesRule
from synapse_lux_privacy.features.content.policy import ContentPolicy
from synapse_lux_privacy.features.content.redacted import RedactedContentRule
from synapse_lux_privacy.features.content.remote_media import RemoteMediaRule
from synapse_lux_privacy.features.content.report import ContentReport
from synapse_lux_privacy.sweep.rule import Rule
from synapse_lux_privacy.synapse_adapter import media

logger = logging.getLogger(__name__)


class ContentFeature(Feature):
    migrations: Mapping[str, Sequence[str]] = {
        "content": expunged.MIGRATIONS,
        "content_scan": scan_marks.MIGRATIONS,
    }

    def __init__(self, ctx: ModuleContext) -> None:
        self._api = ctx.api
        dialect = synapse_adapter.database_dialect(ctx.api)
        policy = ContentPolicy(ctx.config.retention)
        expunger = ctx.expunger
        self._rules: dict[str, Rule] = {
            "messages": MessagesRule(ctx.api, ctx.db, dialect, policy, expunger),
            "attachments": AttachmentsRule(ctx.api, ctx.db, dialect, policy, expunger),
            "remote_media": RemoteMediaRule(ctx.api, ctx.db, policy),
            "redacted_content": RedactedContentRule(ctx.api, ctx.db, dialect, policy),
        }
        self._report = ContentReport(ctx.api, ctx.db, dialect, policy, ctx.holds)

    def rules(self) -> Mapping[str, Rule]:
        return self._rules

    async def report(self, user_id: str) -> Mapping[str, Any]:
        return await self._report.report(user_id)

    async def start(self) -> None:
        try:
            unsupported = media.unsupported_storage_providers(self._api)
        except Exception:
            logger.exception("lux_privacy: could not list the media storage providers")
            return
        for provider in unsupported:
            logger.warning(
                "lux_privacy: the module cannot delete media from storage provider %s:"
                " configure the provider's own expiry so that its copies follow"
                " retention.attachments and retention.remote_media (R2)",
                provider,
            )
