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
  the row for the next sweep, never an orphan copy. A sweep's batch goes to each
  bucket at once, and an item whose copy stayed is reported failed on its own
  (``MediaDeletion``): the others go on to Synapse's deletion. Other backends, and every
  backend with ``delete_from: none``, are listed by ``unsupported_storage_providers``
  and logged at start-up: their copies need the provider's own expiry rules.
"""

import errno
import logging
import os
import shutil
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO

import attrs
from synapse.media.media_repository import MediaRepository
from synapse.media.storage_provider import FileStorageProviderBackend
from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import Cursor, DbRunner, chunks, placeholders
from synapse_lux_privacy.synapse_adapter import s3_provider

logger = logging.getLogger(__name__)


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


async def user_uploads_page(
    db: DbRunner, user_id: str, after: tuple[int, str] | None, limit: int
) -> list[tuple[LocalMedia, str | None]]:
    """A page of one local user's uploads with their file names, in the order of
    Synapse's ``users_have_local_media`` index, after ``after`` (created_ts, media_id)
    (the data-subject export, R14)."""
    ts, media_id = after if after is not None else (-1, "")

    def txn(cur: Cursor) -> list[tuple[LocalMedia, str | None]]:
        cur.execute(
            f"SELECT {_LOCAL_COLUMNS}, upload_name FROM local_media_repository"
            " WHERE user_id = ? AND (created_ts > ? OR (created_ts = ? AND media_id > ?))"
            " AND url_cache IS NULL ORDER BY created_ts, media_id LIMIT ?",
            (user_id, ts, ts, media_id, limit),
        )
        return [(_local(row), None if row[5] is None else str(row[5])) for row in cur.fetchall()]

    return await db("lux_privacy_user_uploads_page", txn)


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
    that are part of a room's current state (per-room avatars). Each table is asked
    only for the URIs the ones before it did not name, and none once every URI is
    named: the last query reads the whole of ``room_memberships`` (Synapse has no
    index on ``avatar_url``), and the old uploads an idle sweep reads again are
    mostly profile avatars, which the first query already names.
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
                left = [uri for uri in part if uri not in found]
                if not left:
                    break
                cur.execute(sql.format(placeholders(left)), tuple(left))
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


def _providers(repo: MediaRepository) -> list[tuple[object, Any]]:
    """The providers Synapse built: (wrapper, backend unwrapped from it)."""
    return [(p, getattr(p, "backend", p)) for p in repo.media_storage.storage_providers]


def _backends(repo: MediaRepository) -> list[object]:
    """The providers' backends, unwrapped from their ``StorageProviderWrapper``."""
    return [backend for _, backend in _providers(repo)]


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


@attrs.frozen
class MediaDeletion:
    """What a batch deletion of media did, per key (a local media ID, or the caller's
    key of a remote copy): deleted everywhere, failed (key -> error class name: a
    provider copy or Synapse's file stayed, the item is still stored), or neither
    (already gone). ``provider_objects``: the storage-provider objects and files
    deleted per key."""

    deleted: list[str] = attrs.Factory(list)
    failed: dict[str, str] = attrs.Factory(dict)
    provider_objects: dict[str, int] = attrs.Factory(dict)


def _remove_from_directory(base: str, copy: s3_provider.Copy) -> int:
    """Remove one copy from a file provider's directory; return the files removed."""
    removed = 0
    try:
        os.remove(os.path.join(base, copy.file))
        removed += 1
    except FileNotFoundError:
        pass
    folder = os.path.join(base, copy.thumbnails)
    removed += sum(len(files) for _, _, files in os.walk(folder))
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass
    return removed


async def _remove_from_providers(
    api: ModuleApi, repo: MediaRepository, copies: Mapping[str, s3_provider.Copy], local: bool
) -> MediaDeletion:
    """Remove these copies (key -> file and thumbnail folder, relative to the media
    store) of local media (``local``) or cached remote media from every storage
    provider the module deletes from: each bucket's in one go. Returns the objects
    removed per key (``deleted`` unset) and the keys of which some copy stayed
    (``failed``): those must not go on to Synapse's deletion."""
    outcome = MediaDeletion(provider_objects={key: 0 for key in copies})
    if api in _LOCAL_STORE_ONLY or not copies:
        return outcome
    for wrapper, backend in _providers(repo):
        left = {k: c for k, c in copies.items() if k not in outcome.failed}
        if isinstance(backend, FileStorageProviderBackend):
            for key, copy in left.items():
                try:
                    removed = _remove_from_directory(backend.base_directory, copy)
                except OSError as e:
                    outcome.failed[key] = type(e).__name__
                else:
                    outcome.provider_objects[key] += removed
        elif s3_provider.is_s3_backend(backend):
            bucket = s3_provider.bucket_of(backend)
            stores = _stores(wrapper, local)
            stored = {k: attrs.evolve(c, stored=stores) for k, c in left.items()}
            found = await api.defer_to_thread(bucket.delete, stored)
            outcome.failed.update(found.failed)
            for key, count in found.objects.items():
                outcome.provider_objects[key] += count
    return outcome


def _stores(wrapper: object, local: bool) -> bool:
    """Whether the provider stores files of this kind (``store_local`` for local media,
    ``store_remote`` for cached remote media), so that a file's object counts."""
    return bool(getattr(wrapper, "store_local" if local else "store_remote", True))


async def provider_copies(api: ModuleApi, media_ids: Sequence[str]) -> dict[str, int | None]:
    """Per storage provider the module knows (``file:<directory>``, ``s3:<bucket>/<prefix>``),
    how many of these local uploads have their file there (R14); None where the bucket
    could not say. Providers of other kinds are not listed (start-up names them)."""
    hs = api._hs
    if not hs.config.media.can_load_media_repo:
        return {}
    repo = hs.get_media_repository()
    files = [repo.filepaths.local_media_filepath_rel(m) for m in media_ids]
    found: dict[str, int | None] = {}
    for backend in _backends(repo):
        if isinstance(backend, FileStorageProviderBackend):
            base = backend.base_directory
            found[f"file:{base}"] = sum(os.path.isfile(os.path.join(base, f)) for f in files)
        elif s3_provider.is_s3_backend(backend):
            bucket = s3_provider.bucket_of(backend)
            try:
                found[bucket.location] = await api.defer_to_thread(bucket.count_objects, files)
            except s3_provider.ObjectsUnknown:
                logger.warning("lux_privacy: %s cannot say which files it holds", bucket.location)
                found[bucket.location] = None
    return found


def open_local_media(api: ModuleApi, media_id: str) -> tuple[str, BinaryIO] | None:
    """A local upload's file, opened for reading (the data-subject export, R14), and
    where it was found: ``local`` (the media store), or the storage provider as the
    report names it (``file:<directory>``, ``s3:<bucket>/<prefix>``); None if no
    store has it. Blocking (call it in a thread); the caller closes the stream."""
    repo = _repository(api)
    path = repo.filepaths.local_media_filepath(media_id)
    if os.path.isfile(path):
        return "local", open(path, "rb")
    relative = repo.filepaths.local_media_filepath_rel(media_id)
    for backend in _backends(repo):
        if isinstance(backend, FileStorageProviderBackend):
            copy = os.path.join(backend.base_directory, relative)
            if os.path.isfile(copy):
                return f"file:{backend.base_directory}", open(copy, "rb")
        elif s3_provider.is_s3_backend(backend):
            bucket = s3_provider.bucket_of(backend)
            body = bucket.open_object(relative)
            if body is not None:
                return bucket.location, body
    return None


class MediaNotDeleted(Exception):
    """Synapse could not remove some local files: they and their rows are still stored."""


async def delete_local_media_batch(api: ModuleApi, media_ids: Sequence[str]) -> MediaDeletion:
    """Delete a batch of local media everywhere (R2, R4, R7, R12), item by item in effect.

    Storage-provider copies first, the whole batch at once (``_remove_from_providers``):
    an item whose copy stays is ``failed`` and left untouched. Then
    ``MediaRepository.delete_local_media_ids`` for the others (file, thumbnails,
    database rows). Synapse skips, with a warning, a file it cannot remove (other
    than one already missing) and keeps its row; such an item is ``failed`` too
    (``MediaNotDeleted``), so that the sweep counts it and tries it again later,
    instead of taking it for already gone.
    """
    repo = _repository(api)
    paths = repo.filepaths
    copies = {
        media_id: s3_provider.Copy(
            paths.local_media_filepath_rel(media_id),
            os.path.relpath(paths.local_media_thumbnail_dir(media_id), paths.base_path),
        )
        for media_id in media_ids
    }
    outcome = await _remove_from_providers(api, repo, copies, local=True)
    left = [m for m in media_ids if m not in outcome.failed]
    deleted, _ = await repo.delete_local_media_ids(left) if left else ([], 0)
    gone = set(deleted)
    for media_id in left:
        if media_id not in gone and await repo.store.get_local_media(media_id) is not None:
            outcome.failed[media_id] = MediaNotDeleted.__name__
    outcome.deleted.extend(m for m in left if m in gone)
    return outcome


async def delete_local_media(api: ModuleApi, media_ids: Sequence[str]) -> MediaDeletion:
    """Delete local media everywhere; what went (R7, R12).

    For callers that take the media of one account together: any item that stays
    raises (``ObjectsNotDeleted`` if a provider kept a copy, else ``MediaNotDeleted``)
    after the others went.
    """
    outcome = await delete_local_media_batch(api, media_ids)
    if outcome.failed:
        reasons = set(outcome.failed.values())
        error = (
            s3_provider.ObjectsNotDeleted if s3_provider.NOT_DELETED in reasons else MediaNotDeleted
        )
        raise error(f"{len(outcome.failed)} media file(s) could not be deleted: {sorted(reasons)}")
    return outcome


async def delete_remote_media(api: ModuleApi, media: Mapping[str, RemoteMedia]) -> MediaDeletion:
    """Delete a batch of cached remote files everywhere (key -> copy; R2, R6).

    Storage-provider copies first, the whole batch at once (an item whose copy stays
    is ``failed``), then, for each of the others, the steps of
    ``delete_old_remote_media``; a file Synapse's store keeps is ``failed`` too.
    """
    repo = _repository(api)
    paths = repo.filepaths
    copies = {
        key: s3_provider.Copy(
            paths.remote_media_filepath_rel(m.origin, m.filesystem_id),
            os.path.relpath(
                paths.remote_media_thumbnail_dir(m.origin, m.filesystem_id), paths.base_path
            ),
        )
        for key, m in media.items()
    }
    outcome = await _remove_from_providers(api, repo, copies, local=False)
    for key, m in media.items():
        if key in outcome.failed:
            continue
        async with repo.remote_media_linearizer.queue((m.origin, m.media_id)):
            try:
                os.remove(paths.remote_media_filepath(m.origin, m.filesystem_id))
            except OSError as e:
                if e.errno != errno.ENOENT:
                    outcome.failed[key] = MediaNotDeleted.__name__
                    continue
            shutil.rmtree(
                paths.remote_media_thumbnail_dir(m.origin, m.filesystem_id), ignore_errors=True
            )
            await repo.store.delete_remote_media(m.origin, m.media_id)
        outcome.deleted.append(key)
    return outcome


def mxc(server_name: str, media_id: str) -> str:
    return f"mxc://{server_name}/{media_id}"


def local_mxcs(api: ModuleApi, media: Iterable[LocalMedia]) -> dict[str, LocalMedia]:
    """``mxc://`` URI -> media, for this server's uploads."""
    return {mxc(api.server_name, m.media_id): m for m in media}
