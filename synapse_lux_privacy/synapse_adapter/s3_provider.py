"""Deleting media copies from synapse-s3-storage-provider's bucket (R2, R4, R7, R12).

Synapse's ``StorageProvider`` interface has no deletion and Synapse's own deletions
never reach a provider, so the module deletes a file's object and its thumbnails'
objects itself, through the provider's own configuration: the bucket, prefix and
client settings (endpoint, region, credentials, botocore options) that
``S3StorageProviderBackend`` parsed from its ``media_storage_providers`` entry, with
``boto3`` like the provider. Object keys are the provider's: ``prefix`` + the path
relative to the media store (``local_content/...``, ``local_thumbnails/<id>/...``).

Every call runs in a thread (boto3 blocks). Any object that cannot be deleted raises
``ObjectsNotDeleted``, so that the caller stops before Synapse's own deletion: the
item stays stored, counts as a failure and is tried again at a later sweep. S3
answers a deletion of a missing object with success, so a retry is harmless.
"""

import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

_BACKEND_CLASS = ("s3_storage_provider", "S3StorageProviderBackend")

# DeleteObjects takes at most 1000 keys.
_MAX_KEYS = 1000
# Thumbnail folders listed side by side (each listing is one round trip).
_LISTINGS = 8

# A bucket out of reach must fail the sweep's batch in seconds, not block it for minutes.
_CLIENT_LIMITS = Config(
    connect_timeout=10, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
)


class ObjectsNotDeleted(Exception):
    """Some objects of a storage provider's bucket could not be deleted."""


def is_s3_backend(backend: object) -> bool:
    """Whether Synapse built this backend from synapse-s3-storage-provider, as configured
    (read without importing the provider, which Synapse's environment may lack)."""
    cls = type(backend)
    return (cls.__module__, cls.__name__) == _BACKEND_CLASS and all(
        hasattr(backend, a) for a in ("bucket", "prefix", "api_kwargs")
    )


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

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                session = boto3.session.Session()
                self._client = session.client("s3", config=self._config, **self._kwargs)
            return self._client

    def delete(self, files: Sequence[str], folders: Sequence[str]) -> int:
        """Delete these files and every object under these folders (paths relative to
        the media store); return how many objects were asked to go. Blocking."""
        try:
            keys = [self.prefix + f for f in files]
            prefixes = [self.prefix + folder.rstrip("/") + "/" for folder in folders]
            with ThreadPoolExecutor(min(_LISTINGS, max(len(prefixes), 1))) as pool:
                for listed in pool.map(self._list, prefixes):
                    keys.extend(listed)
            for start in range(0, len(keys), _MAX_KEYS):
                self._delete_keys(keys[start : start + _MAX_KEYS])
        except (BotoCoreError, ClientError) as e:
            raise ObjectsNotDeleted(f"bucket {self.bucket}: {e}") from e
        return len(keys)

    def _list(self, prefix: str) -> list[str]:
        pages = (
            self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        )
        return [str(item["Key"]) for page in pages for item in page.get("Contents", [])]

    def _delete_keys(self, keys: Sequence[str]) -> None:
        if not keys:
            return
        answer = self._s3().delete_objects(
            Bucket=self.bucket,
            Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True},
        )
        errors = answer.get("Errors") or []
        if errors:
            first = errors[0]
            raise ObjectsNotDeleted(
                f"bucket {self.bucket}: {len(errors)} object(s) not deleted, first"
                f" {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
            )


_BUCKETS: "weakref.WeakKeyDictionary[object, S3Bucket]" = weakref.WeakKeyDictionary()


def bucket_of(backend: object) -> S3Bucket:
    """The bucket of an S3 backend (one client per backend for the process's life)."""
    found = _BUCKETS.get(backend)
    if found is None:
        found = _BUCKETS[backend] = S3Bucket(backend)
    return found
