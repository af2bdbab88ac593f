"""Deleting media copies from synapse-s3-storage-provider's bucket (R2, R4, R7, R12).

Synapse's ``StorageProvider`` interface has no deletion and Synapse's own deletions
never reach a provider, so the module deletes a file's object and its thumbnails'
objects itself, through the provider's own configuration: the bucket, prefix and
client settings (endpoint, region, credentials, botocore options) that
``S3StorageProviderBackend`` parsed from its ``media_storage_providers`` entry, with
``boto3`` like the provider. Object keys are the provider's: ``prefix`` + the path
relative to the media store (``local_content/...``, ``local_thumbnails/<id>/...``).

A sweep's batch is deleted together: the thumbnail folders of every item are listed
side by side (``_LISTINGS`` at a time), then every key goes in ``DeleteObjects`` calls
of up to 1000 keys. Each key belongs to one item: an item whose folder could not be
listed, or one of whose keys S3 reports in ``Errors`` (or whose ``DeleteObjects`` call
failed), is *failed*, so that the caller leaves it to Synapse untouched: it stays
stored, counts as a failure and is tried again at a later sweep. S3 answers a
deletion of a missing object with success, so a retry is harmless.

Versioned buckets: deleting a key without a version only hides it behind a delete
marker, and every version stays. So each batch first asks whether the bucket has
versioning (``GetBucketVersioning``, enabled or suspended); if so, the versions and
delete markers of each file key and under each thumbnail folder are listed
(``ListObjectVersions``) and every one is deleted by its ``VersionId``: nothing of
the file stays. That needs ``s3:GetBucketVersioning``, ``s3:ListBucketVersions`` and
``s3:DeleteObjectVersion`` besides ``s3:ListBucket`` and ``s3:DeleteObject``. Where
the bucket refuses to say whether it is versioned, or to list versions, the current
objects are deleted by key as in an unversioned bucket, and a warning names the
permission: old versions then stay until the bucket's own lifecycle rules expire them
(docs/content-retention.md).

Every call runs in a thread (boto3 blocks). ``count_objects`` tells how many files
have an object in the bucket (``HeadObject``, ``_LISTINGS`` side by side), for the
per-user report (R14); ``open_object`` streams one file's object for a data-subject
export (R14).
"""

import functools
import logging
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

import attrs
import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

_BACKEND_CLASS = ("s3_storage_provider", "S3StorageProviderBackend")

# DeleteObjects takes at most 1000 keys.
_MAX_KEYS = 1000
# Requests to the bucket side by side (each listing or HEAD is one round trip).
_LISTINGS = 8

# A bucket out of reach must fail the sweep's batch in seconds, not block it for
# minutes; the connection pool serves every request running side by side.
_CLIENT_LIMITS = Config(
    connect_timeout=10,
    read_timeout=30,
    retries={"max_attempts": 3, "mode": "standard"},
    max_pool_connections=_LISTINGS,
)


# An object's key, and the version to delete (None: the current object, unversioned).
Target = tuple[str, str | None]


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code"))


class ObjectsNotDeleted(Exception):
    """Some objects of a storage provider's bucket could not be deleted."""


NOT_DELETED = ObjectsNotDeleted.__name__


@attrs.frozen
class Copy:
    """One media item's copy in a bucket: its file and its thumbnail folder (paths
    relative to the media store), and whether the provider stores this kind of file
    (``store_local`` / ``store_remote``), so that its object counts as deleted."""

    file: str
    thumbnails: str
    stored: bool = True


@attrs.frozen
class BucketOutcome:
    """Per item: the objects deleted (items that went), or why some stayed (failed)."""

    objects: Mapping[str, int] = attrs.Factory(dict)
    failed: Mapping[str, str] = attrs.Factory(dict)


def is_s3_backend(backend: object) -> bool:
    """Whether Synapse built this backend from synapse-s3-storage-provider, as configured
    (read without importing the provider, which Synapse's environment may lack)."""
    cls = type(backend)
    return (cls.__module__, cls.__name__) == _BACKEND_CLASS and all(
        hasattr(backend, a) for a in ("bucket", "prefix", "api_kwargs")
    )


def failed_items(owners: Mapping[str, str], errors: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The items of the keys that ``DeleteObjects`` reported in its ``Errors`` (item ->
    ``ObjectsNotDeleted``); a key the answer names but the call never asked for is
    ignored."""
    failed: dict[str, str] = {}
    for error in errors:
        item = owners.get(str(error.get("Key")))
        if item is not None:
            failed[item] = NOT_DELETED
    return failed


def objects_deleted(owners: Mapping[str, str], counted: Mapping[str, bool]) -> dict[str, int]:
    """Objects deleted per item, from the keys that went (key -> item) and whether each
    key counts (a thumbnail listed; the file, when the provider stores its kind)."""
    found: dict[str, int] = {}
    for key, item in owners.items():
        found[item] = found.get(item, 0) + int(counted[key])
    return found


class S3Bucket:
    """One provider's bucket and a boto3 client made from the provider's settings."""

    def __init__(self, backend: Any) -> None:
        self.bucket: str = str(backend.bucket)
        self.prefix: str = str(backend.prefix or "")
        kwargs = dict(backend.api_kwargs)
        config = kwargs.pop("config", None)
        self._kwargs = kwargs
        self._config = config.merge(_CLIENT_LIMITS) if config is not None else _CLIENT_LIMITS
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        """Where the objects are, as the per-user report names it: ``s3:<bucket>/<prefix>``."""
        return f"s3:{self.bucket}/{self.prefix}"

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                session = boto3.session.Session()
                self._client = session.client("s3", config=self._config, **self._kwargs)
            return self._client

    def delete(self, copies: Mapping[str, Copy]) -> BucketOutcome:
        """Delete the file and every object under the thumbnail folder of each item
        (item -> its copy), every version of them in a versioned bucket, a batch at
        once. Blocking."""
        items = list(copies)
        owners: dict[str, str] = {}
        counted: dict[str, bool] = {}
        targets: list[Target] = []
        failed: dict[str, str] = {}
        unreachable = threading.Event()
        listing = self._version_targets if self._versioned(unreachable) else self._targets
        with ThreadPoolExecutor(min(_LISTINGS, max(len(items), 1))) as pool:
            places = [
                (self.prefix + copies[i].file, self.prefix + copies[i].thumbnails.rstrip("/") + "/")
                for i in items
            ]
            listings = pool.map(functools.partial(listing, unreachable), places)
            for item, (file_key, _), listed in zip(items, places, listings, strict=True):
                if listed is None:
                    failed[item] = NOT_DELETED
                    continue
                owners[file_key], counted[file_key] = item, copies[item].stored
                for key, version in listed:
                    if key != file_key:
                        owners[key], counted[key] = item, True
                    targets.append((key, version))
            parts = [targets[at : at + _MAX_KEYS] for at in range(0, len(targets), _MAX_KEYS)]
            for part, errors in zip(parts, pool.map(self._delete_keys, parts), strict=True):
                if errors is None:
                    failed.update({owners[k]: NOT_DELETED for k, _ in part})
                else:
                    failed.update(failed_items(owners, errors))
        went = {k: item for k, item in owners.items() if item not in failed}
        return BucketOutcome(objects_deleted(went, counted), failed)

    def _versioned(self, unreachable: threading.Event) -> bool:
        """Whether the bucket has versioning (enabled, or suspended with old versions);
        False, with a warning, if it does not say."""
        try:
            status = self._s3().get_bucket_versioning(Bucket=self.bucket).get("Status")
        except BotoCoreError as e:
            logger.warning("lux_privacy: bucket %s out of reach: %s", self.bucket, e)
            unreachable.set()
            return False
        except ClientError as e:
            logger.warning(
                "lux_privacy: bucket %s: cannot tell whether it keeps old versions"
                " (s3:GetBucketVersioning): %s; deleting the current objects only",
                self.bucket,
                e,
            )
            return False
        return status in ("Enabled", "Suspended")

    def _targets(self, unreachable: threading.Event, place: tuple[str, str]) -> list[Target] | None:
        """An unversioned bucket: the file's key and the keys under its thumbnail
        folder, None if the folder could not be listed."""
        file_key, folder = place
        listed = self._list(unreachable, folder)
        return None if listed is None else [(file_key, None), *((k, None) for k in listed)]

    def _version_targets(
        self, unreachable: threading.Event, place: tuple[str, str]
    ) -> list[Target] | None:
        """A versioned bucket: every version and delete marker of the file's key and
        under its thumbnail folder; the current objects (``_targets``) if the bucket
        refuses to list versions; None if it could not be listed."""
        file_key, folder = place
        if unreachable.is_set():
            return None
        found: list[Target] = []
        for prefix in (file_key, folder):
            try:
                pages = (
                    self._s3()
                    .get_paginator("list_object_versions")
                    .paginate(Bucket=self.bucket, Prefix=prefix)
                )
                for page in pages:
                    for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                        key = str(entry["Key"])
                        if key == file_key or (prefix == folder and key.startswith(folder)):
                            found.append((key, str(entry["VersionId"])))
            except BotoCoreError as e:
                if not unreachable.is_set():
                    logger.warning("lux_privacy: bucket %s out of reach: %s", self.bucket, e)
                unreachable.set()
                return None
            except ClientError as e:
                if _code(e) != "AccessDenied":
                    logger.warning(
                        "lux_privacy: bucket %s: cannot list versions of %s: %s",
                        self.bucket,
                        prefix,
                        e,
                    )
                    return None
                logger.warning(
                    "lux_privacy: bucket %s keeps versions but refuses to list them"
                    " (s3:ListBucketVersions): old versions of %s stay",
                    self.bucket,
                    file_key,
                )
                return self._targets(unreachable, place)
        return found

    def _list(self, unreachable: threading.Event, prefix: str) -> list[str] | None:
        """The keys under ``prefix``, None if the bucket could not list them. Once the
        bucket could not be reached (``unreachable``), the batch's other listings fail
        at once instead of each waiting out the client's timeouts and retries."""
        if unreachable.is_set():
            return None
        try:
            pages = (
                self._s3()
                .get_paginator("list_objects_v2")
                .paginate(Bucket=self.bucket, Prefix=prefix)
            )
            return [str(item["Key"]) for page in pages for item in page.get("Contents", [])]
        except BotoCoreError as e:
            if not unreachable.is_set():
                logger.warning("lux_privacy: bucket %s out of reach: %s", self.bucket, e)
            unreachable.set()
        except ClientError as e:
            logger.warning("lux_privacy: bucket %s: cannot list %s: %s", self.bucket, prefix, e)
        return None

    def _delete_keys(self, keys: Sequence[Target]) -> Sequence[Mapping[str, Any]] | None:
        """``DeleteObjects`` of these keys (of this version where one is given): what S3
        reports as not deleted, None if the call failed."""
        objects = [{"Key": k} if v is None else {"Key": k, "VersionId": v} for k, v in keys]
        try:
            answer = self._s3().delete_objects(
                Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
            )
        except (BotoCoreError, ClientError) as e:
            logger.warning(
                "lux_privacy: bucket %s: cannot delete %d keys: %s", self.bucket, len(keys), e
            )
            return None
        errors = list(answer.get("Errors") or [])
        if errors:
            logger.warning(
                "lux_privacy: bucket %s: %d object(s) not deleted, first %s: %s %s",
                self.bucket,
                len(errors),
                errors[0].get("Key"),
                errors[0].get("Code"),
                errors[0].get("Message"),
            )
        return errors

    def count_objects(self, files: Sequence[str]) -> int:
        """How many of these files (relative to the media store) have an object. Blocking;
        raises ``ObjectsUnknown`` if the bucket cannot say."""
        with ThreadPoolExecutor(min(_LISTINGS, max(len(files), 1))) as pool:
            return sum(pool.map(self._exists, [self.prefix + f for f in files]))

    def _exists(self, key: str) -> bool:
        try:
            self._s3().head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if _code(e) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise ObjectsUnknown(f"bucket {self.bucket}: {e}") from e
        except BotoCoreError as e:
            raise ObjectsUnknown(f"bucket {self.bucket}: {e}") from e
        return True

    def open_object(self, file: str) -> BinaryIO | None:
        """A stream of one file's object (path relative to the media store), read in
        chunks by the caller (data-subject export, R14); None if there is no such
        object. Blocking."""
        try:
            answer = self._s3().get_object(Bucket=self.bucket, Key=self.prefix + file)
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        body: BinaryIO = answer["Body"]
        return body


class ObjectsUnknown(Exception):
    """A storage provider's bucket could not say which objects it holds."""


_BUCKETS: "weakref.WeakKeyDictionary[object, S3Bucket]" = weakref.WeakKeyDictionary()


def bucket_of(backend: object) -> S3Bucket:
    """The bucket of an S3 backend (one client per backend for the process's life)."""
    found = _BUCKETS.get(backend)
    if found is None:
        found = _BUCKETS[backend] = S3Bucket(backend)
    return found
