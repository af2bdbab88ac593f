"""Deleting a sweep batch of local files at once (R2, R4), failures kept per item.

The attachments and quota rules hand their whole batch to
``media.delete_local_media_batch``, so that the storage providers' buckets are asked
once per batch instead of once per file; the files that stayed (a bucket kept an
object, Synapse kept a file) are reported per item and are never counted deleted.
"""

import logging
from collections.abc import Mapping

import attrs
from synapse.module_api import ModuleApi

from synapse_lux_privacy.sweep.rule import Candidate
from synapse_lux_privacy.synapse_adapter import media

logger = logging.getLogger(__name__)


@attrs.frozen
class MediaBatchOutcome:
    """The candidates whose file went everywhere (with the storage-provider objects
    deleted), and those that failed (item ID -> error class); a candidate in neither
    was already gone."""

    deleted: list[Candidate]
    failed: dict[str, str]


async def delete_media_batch(api: ModuleApi, files: Mapping[str, Candidate]) -> MediaBatchOutcome:
    """Delete these local files (media ID -> candidate) everywhere, as one batch."""
    if not files:
        return MediaBatchOutcome([], {})
    try:
        outcome = await media.delete_local_media_batch(api, list(files))
    except Exception as error:
        # Nothing could be asked of Synapse or the providers: every file is a failure.
        logger.exception("lux_privacy: deleting %d media file(s) failed", len(files))
        return MediaBatchOutcome([], {c.item_id: type(error).__name__ for c in files.values()})
    return MediaBatchOutcome(
        deleted=[
            attrs.evolve(files[m], provider_objects=outcome.provider_objects.get(m, 0))
            for m in outcome.deleted
        ],
        failed={files[media_id].item_id: why for media_id, why in outcome.failed.items()},
    )
