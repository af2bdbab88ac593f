"""Synapse callbacks of the quota (R4): the upload path and deactivations.

- ``get_media_config_for_user``: the ``m.upload.size`` a client sees is the largest
  file that fits the user's quota (older items are evicted to make room for it),
  within Synapse's ``max_upload_size``;
- ``is_user_allowed_to_upload_media_of_size``: a file larger than the whole quota can
  never fit and is refused at once with ``M_TOO_LARGE``; any other upload is
  accepted (eviction follows) and marks the uploader for the accounting;
- ``on_user_deactivation_status_changed``: a deactivation deletes files (avatars),
  so the user's usage is re-read.

The upload path does no database work: quotas are cached and marks are buffered
(``upload_path.py``).
"""

from typing import Any

from synapse.module_api import ModuleApi
from synapse.module_api.errors import Codes, SynapseError

from synapse_lux_privacy.config import QuotaConfig
from synapse_lux_privacy.features.quota.policy import MEDIA, human_size, largest_upload
from synapse_lux_privacy.features.quota.upload_path import DirtyMarks, QuotaCache
from synapse_lux_privacy.synapse_adapter import quota as synapse_quota


class QuotaCallbacks:
    def __init__(
        self, api: ModuleApi, config: QuotaConfig, quotas: QuotaCache, marks: DirtyMarks
    ) -> None:
        self._api = api
        self._config = config
        self._quotas = quotas
        self._marks = marks

    def register(self) -> None:
        self._api.register_media_repository_callbacks(
            get_media_config_for_user=self.get_media_config_for_user,
            is_user_allowed_to_upload_media_of_size=self.is_user_allowed_to_upload_media_of_size,
        )
        self._api.register_third_party_rules_callbacks(
            on_user_deactivation_status_changed=self.on_user_deactivation_status_changed,
        )

    async def _media_quota(self, user_id: str) -> int | None:
        if MEDIA not in self._config.counts:
            return None
        return await self._quotas.quota(user_id)

    async def get_media_config_for_user(self, user_id: str) -> dict[str, Any] | None:
        quota = await self._media_quota(user_id)
        if quota is None:
            return None  # Synapse's own media config
        return {"m.upload.size": largest_upload(quota, synapse_quota.max_upload_size(self._api))}

    async def is_user_allowed_to_upload_media_of_size(self, user_id: str, size: int) -> bool:
        quota = await self._media_quota(user_id)
        if quota is not None and size > quota:
            raise SynapseError(
                413,
                f"This file ({human_size(size, 'en')}) is larger than your whole storage quota"
                f" ({human_size(quota, 'en')}): it can never be stored. Files up to the quota"
                " are accepted; your oldest files and messages are then deleted to make room.",
                Codes.TOO_LARGE,
            )
        self._marks.mark(user_id, full_resync=False)
        return True

    async def on_user_deactivation_status_changed(
        self, user_id: str, deactivated: bool, by_admin: bool
    ) -> None:
        if self._api.is_mine(user_id):
            self._marks.mark(user_id, full_resync=True)
