"""Synapse's media repository: read to find what is due, removed through Synapse's machinery.

Reads ``local_media_repository``, ``remote_media_cache`` and the tables that say
which media is an avatar in use (``profiles``, ``user_directory``,
``room_stats_state``, current ``room_memberships``) with SELECT only. Deletions:

- local media (R2): ``MediaRepository.delete_local_media_ids``, which removes the
  file, its thumbnails, and the ``local_media_repository`` and thumbnail rows;
- cached remote media (R2, R6): the per-item steps of Synapse's
  ``MediaRepository.delete_old_remote_media`` (under its remote-media linearizer:
  file, thumbnail folder, ``store.delete_remote_media`` for the rows), since that
  job only selects by last access, never by the time a copy was cached;
- storage providers (``storage_providers.delete_from: auto``): Synapse's
  ``StorageProvider`` interface has no deletion, and none of Synapse's deletions
  reach the providers. For every provider Synapse built whose backend is Synapse's
  ``FileStorageProviderBackend``, the copy of the file and its thumbnails is removed
  from the provider's directory; for every ``S3StorageProviderBackend``
  (synapse-s3-storage-provider), their objects are deleted from its bucket
  (``s3_provider``). Both before Synapse's own deletion, so that a failure leaves
  the row for the next sweep, never an orphan copy. Other backends, and every
  backend with ``delete_from: none``, are listed by ``unsupported_storage_providers``
  and logged at start-up: their copies need the provider's own expiry rules.
"""

import errno
import os
import shutil
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from synapse.media.media_repository import MediaRepository
from synapse.media.storage_provider import FileStorageProviderBackend
from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import Cursor, DbRunner, chunks, placeholders
from synapse_lux_privacy.synapse_adapter import s3_provider


@attrs.frozen
class LocalMedia:
    media_id: str
    media_type: str
    size: int
    user_id: str | None
    created_ts: int


@attrs.frozen
class RemoteMedia:
    origin: str
    media_id: str
    filesystem_id: str
    media_type: str
    size: int
    created_ts: int


_LOCAL_COLUMNS = "media_id, media_type, media_length, user_id, created_ts"


def _local(row: Sequence[Any]) -> LocalMedia:
    return LocalMedia(
        media_id=str(row[0]),
        media_type=str(row[1] or ""),
        size=int(row[2] or 0),
        user_id=None if row[3] is None else str(row[3]),
        created_ts=int(row[4] or 0),
    )


async def old_local_media(
    db: DbRunner, before_ts: int, after: tuple[int, str] | None, limit: int
) -> list[LocalMedia]:
    """Local uploads created before ``before_ts``, in (created_ts, media_id) order (R2).

    Counted from upload (``created_ts``), never from last access. URL-preview
    entries are left to Synapse's own URL-cache expiry.
    """
    after_sql = ""
    after_args: tuple[object, ...] = ()
    if after is not None:
        after_sql = " AND (created_ts > ? OR (created_ts = ? AND media_id > ?))"
        after_args = (after[0], after[0], after[1])

    def txn(cur: Cursor) -> list[LocalMedia]:
        cur.execute(
            f"SELECT {_LOCAL_COLUMNS} FROM local_media_repository"
            f" WHERE created_ts < ? AND url_cache IS NULL{after_sql}"
            " ORDER BY created_ts, media_id LIMIT ?",
            (before_ts, *after_args, limit),
        )
        return [_local(row) for row in cur.fetchall()]

    return await db("lux_privacy_old_local_media", txn)


async def user_local_media(db: DbRunner, user_id: str) -> list[LocalMedia]:
    """Every upload of one local user (for the report, R14)."""

    def txn(cur: Cursor) -> list[LocalMedia]:
        cur.execute(
            f"SELECT {_LOCAL_COLUMNS} FROM local_media_repository"
            " WHERE user_id = ? AND url_cache IS NULL ORDER BY created_ts, media_id",
            (user_id,),
        )
        return [_local(row) for row in cur.fetchall()]

    return await db("lux_privacy_user_local_media", txn)


async def old_remote_media(
    db: DbRunner, before_ts: int, after: tuple[int, str, str] | None, limit: int
) -> list[RemoteMedia]:
    """Cached remote media cached before ``before_ts``, in (created_ts, origin, id) order."""
    after_sql = ""
    after_args: tuple[object, ...] = ()
    if after is not None:
        after_sql = (
            " AND (created_ts > ? OR (created_ts = ? AND (media_origin > ?"
            " OR (media_origin = ? AND media_id > ?))))"
        )
        after_args = (after[0], after[0], after[1], after[1], after[2])

    def txn(cur: Cursor) -> list[RemoteMedia]:
        cur.execute(
            "SELECT media_origin, media_id, filesystem_id, media_type, media_length, created_ts"
            f" FROM remote_media_cache WHERE created_ts < ?{after_sql}"
            " ORDER BY created_ts, media_origin, media_id LIMIT ?",
            (before_ts, *after_args, limit),
        )
        return [
            RemoteMedia(
                origin=str(r[0]),
                media_id=str(r[1]),
                filesystem_id=str(r[2]),
                media_type=str(r[3] or ""),
                size=int(r[4] or 0),
                created_ts=int(r[5] or 0),
            )
            for r in cur.fetchall()
        ]

    return await db("lux_privacy_old_remote_media", txn)


async def avatars_in_use(db: DbRunner, uris: Sequence[str]) -> set[str]:
    """Those of these ``mxc://`` URIs that are an avatar in use (R7 keeps them).

    The tables Synapse's own ``keep_profiles`` checks, limited to what is current:
    global profiles, the user directory, room avatars, and the membership events
    that are part of a room's current state (per-room avatars).
    """
    queries = (
        "SELECT avatar_url FROM profiles WHERE avatar_url IN ({})",
        "SELECT avatar_url FROM user_directory WHERE avatar_url IN ({})",
        "SELECT avatar FROM room_stats_state WHERE avatar IN ({})",
        "SELECT m.avatar_url FROM room_memberships AS m JOIN current_state_events AS c"
        " ON c.event_id = m.event_id WHERE m.avatar_url IN ({})",
    )

    def txn(cur: Cursor) -> set[str]:
        found: set[str] = set()
        for part in chunks(uris):
            for sql in queries:
                cur.execute(sql.format(placeholders(part)), tuple(part))
                found.update(str(row[0]) for row in cur.fetchall())
        return found

    return await db("lux_privacy_avatars_in_use", txn)


def _repository(api: ModuleApi) -> MediaRepository:
    """Synapse's media repository on this instance, refusing to work without the store.

    Synapse removes a file it cannot find and its rows all the same, so deleting from
    an instance that does not see the media store would leave every file behind with
    nothing pointing to it: stop instead.
    """
    hs = api._hs
    media_config = hs.config.media
    if not media_config.can_load_media_repo:
        raise RuntimeError(
            "this Synapse instance does not run the media repository (enable_media_repo is"
            " false): run the sweep (run_background_tasks_on) where it runs"
        )
    if media_config.enable_local_media_storage and not os.path.isdir(media_config.media_store_path):
        raise RuntimeError(
            f"media_store_path {media_config.media_store_path} is not a folder on this"
            " instance: the instance running the sweep must see the media store"
        )
    return hs.get_media_repository()


def _backends(repo: MediaRepository) -> list[object]:
    """The providers Synapse built, unwrapped from their ``StorageProviderWrapper``."""
    return [getattr(p, "backend", p) for p in repo.media_storage.storage_providers]


# The module instances configured with ``storage_providers.delete_from: none``.
_LOCAL_STORE_ONLY: "weakref.WeakSet[ModuleApi]" = weakref.WeakSet()


def set_storage_provider_deletion(api: ModuleApi, delete_from: str) -> None:
    """``storage_providers.delete_from``: ``auto`` (every provider the module can delete
    from) or ``none`` (the local media store only)."""
    if delete_from == "none":
        _LOCAL_STORE_ONLY.add(api)
    else:
        _LOCAL_STORE_ONLY.discard(api)


def _deletable(backend: object) -> bool:
    return isinstance(backend, FileStorageProviderBackend) or s3_provider.is_s3_backend(backend)


def unsupported_storage_providers(api: ModuleApi) -> list[str]:
    """Storage providers this module does not delete from (their copies need their own
    expiry): unknown backends, and every backend with ``delete_from: none``."""
    hs = api._hs
    if not hs.config.media.can_load_media_repo:
        return []
    backends = _backends(hs.get_media_repository())
    local_only = api in _LOCAL_STORE_ONLY
    return [str(b) for b in backends if local_only or not _deletable(b)]


async def _remove_from_providers(
    api: ModuleApi, repo: MediaRepository, files: Sequence[tuple[str, str]]
) -> None:
    """Remove these (file, thumbnail folder) copies, relative to the media store, from
    every storage provider the module deletes from; raise if any copy stays."""
    if api in _LOCAL_STORE_ONLY or not files:
        return
    for backend in _backends(repo):
        if isinstance(backend, FileStorageProviderBackend):
            for file_rel, thumbnails_rel in files:
                try:
                    os.remove(os.path.join(backend.base_directory, file_rel))
                except FileNotFoundError:
                    pass
                shutil.rmtree(
                    os.path.join(backend.base_directory, thumbnails_rel), ignore_errors=True
                )
        elif s3_provider.is_s3_backend(backend):
            bucket = s3_provider.bucket_of(backend)
            await api.defer_to_thread(bucket.delete, [f for f, _ in files], [t for _, t in files])


class MediaNotDeleted(Exception):
    """Synapse could not remove some local files: they and their rows are still stored."""


async def delete_local_media(api: ModuleApi, media_ids: Sequence[str]) -> list[str]:
    """Delete local media everywhere; return the IDs Synapse reports deleted (R2).

    Storage-provider copies first (a copy a bucket keeps raises ``ObjectsNotDeleted``
    before anything else is deleted), then ``MediaRepository.delete_local_media_ids``
    (file, thumbnails, database rows). Synapse skips, with a warning, a file it cannot
    remove (other than one already missing) and keeps its row; such a file raises
    ``MediaNotDeleted`` here, so that the sweep counts it as a failure and tries it
    again later, instead of taking it for already gone.
    """
    repo = _repository(api)
    paths = repo.filepaths
    copies = [
        (
            paths.local_media_filepath_rel(media_id),
            os.path.relpath(paths.local_media_thumbnail_dir(media_id), paths.base_path),
        )
        for media_id in media_ids
    ]
    await _remove_from_providers(api, repo, copies)
    deleted, _ = await repo.delete_local_media_ids(list(media_ids))
    missed = [m for m in media_ids if m not in set(deleted)]
    still = [m for m in missed if await repo.store.get_local_media(m) is not None]
    if still:
        raise MediaNotDeleted(f"{len(still)} local media file(s) could not be removed")
    return list(deleted)


async def delete_remote_media(api: ModuleApi, media: RemoteMedia) -> bool:
    """Delete one cached remote file everywhere; False if its file could not be removed.

    Storage-provider copies first (``ObjectsNotDeleted`` if a bucket keeps one), then
    the steps of ``delete_old_remote_media``.
    """
    repo = _repository(api)
    paths = repo.filepaths
    thumbnails = paths.remote_media_thumbnail_dir(media.origin, media.filesystem_id)
    await _remove_from_providers(
        api,
        repo,
        [
            (
                paths.remote_media_filepath_rel(media.origin, media.filesystem_id),
                os.path.relpath(thumbnails, paths.base_path),
            )
        ],
    )
    async with repo.remote_media_linearizer.queue((media.origin, media.media_id)):
        try:
            os.remove(paths.remote_media_filepath(media.origin, media.filesystem_id))
        except OSError as e:
            if e.errno != errno.ENOENT:
                return False
        shutil.rmtree(thumbnails, ignore_errors=True)
        await repo.store.delete_remote_media(media.origin, media.media_id)
    return True


def mxc(server_name: str, media_id: str) -> str:
    return f"mxc://{server_name}/{media_id}"


def local_mxcs(api: ModuleApi, media: Iterable[LocalMedia]) -> dict[str, LocalMedia]:
    """``mxc://`` URI -> media, for this server's uploads."""
    return {mxc(api.server_name, m.media_id): m for m in media}
