"""Batched deletion from synapse-s3-storage-provider's bucket (R2, R4, R12): S3's
per-key errors are mapped back to the items that own the keys (pure logic, a fake
boto3 client; the real bucket is in tests/integration/test_s3_storage_provider.py)."""

import threading
from collections.abc import Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from synapse_lux_privacy.synapse_adapter.s3_provider import (
    NOT_DELETED,
    Copy,
    ObjectsUnknown,
    S3Bucket,
    failed_items,
    objects_deleted,
)


class FakeS3:
    """Objects in a dict; ``refuse`` keys DeleteObjects reports in ``Errors``,
    ``unlistable`` prefixes whose listing is refused, ``down_after`` DeleteObjects calls
    that succeed before the next ones fail (negative: the bucket is out of reach)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.objects = set(keys)
        self.refuse: set[str] = set()
        self.unlistable: set[str] = set()
        self.down_after: int | None = None
        self.delete_calls: list[list[str]] = []
        self.deleted_versions: list[tuple[str, str]] = []
        self.listings = 0
        self.versioning: str | None = None  # GetBucketVersioning's Status
        self.denied: set[str] = set()  # operations answered with AccessDenied
        self._lock = threading.Lock()  # the bucket calls DeleteObjects from threads

    def get_paginator(self, name: str) -> Any:
        if name == "list_object_versions":
            return SimpleNamespace(paginate=self.paginate_versions)
        assert name == "list_objects_v2"
        return self

    def _deny(self, operation: str) -> None:
        if operation in self.denied:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, operation)

    def get_bucket_versioning(self, Bucket: str) -> Mapping[str, Any]:
        self._deny("GetBucketVersioning")
        return {} if self.versioning is None else {"Status": self.versioning}

    def paginate_versions(self, Bucket: str, Prefix: str) -> Iterator[Mapping[str, Any]]:
        """Each object has two versions (``v1``, ``v2``) and a delete marker (``dm``)."""
        self._deny("ListObjectVersions")
        keys = sorted(k for k in self.objects if k.startswith(Prefix))
        yield {
            "Versions": [{"Key": k, "VersionId": v} for k in keys for v in ("v1", "v2")],
            "DeleteMarkers": [{"Key": k, "VersionId": "dm"} for k in keys],
        }

    def paginate(self, Bucket: str, Prefix: str) -> Iterator[Mapping[str, Any]]:
        with self._lock:
            self.listings += 1
        if Prefix in self.unlistable:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListObjectsV2")
        if self.down_after is not None and self.down_after < 0:
            raise EndpointConnectionError(endpoint_url="http://s3")
        yield {"Contents": [{"Key": k} for k in sorted(self.objects) if k.startswith(Prefix)]}

    def delete_objects(self, Bucket: str, Delete: Mapping[str, Any]) -> Mapping[str, Any]:
        keys = [o["Key"] for o in Delete["Objects"] if "VersionId" not in o]
        versions = [(o["Key"], o["VersionId"]) for o in Delete["Objects"] if "VersionId" in o]
        assert len(Delete["Objects"]) <= 1000
        with self._lock:
            self.deleted_versions += versions
            done = set(self.deleted_versions)
        # a versioned key goes once its two versions and delete marker went
        self.objects -= {k for k, _ in versions if all((k, v) in done for v in ("v1", "v2", "dm"))}
        with self._lock:
            if self.down_after is not None and len(self.delete_calls) >= self.down_after:
                raise EndpointConnectionError(endpoint_url="http://s3")
            if keys:
                self.delete_calls.append(keys)
        errors = [
            {"Key": k, "Code": "AccessDenied", "Message": "no"} for k in keys if k in self.refuse
        ]
        self.objects -= set(keys) - self.refuse
        return {"Errors": errors} if errors else {}

    def head_object(self, Bucket: str, Key: str) -> Mapping[str, Any]:
        if Key in self.unlistable:
            raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadObject")
        return {}


def _bucket(fake: FakeS3) -> S3Bucket:
    bucket = S3Bucket(SimpleNamespace(bucket="b", prefix="p/", api_kwargs={}))
    bucket._client = fake
    return bucket


def _media(n: int, thumbnails: int = 2) -> tuple[dict[str, Copy], list[str]]:
    copies = {f"m{i}": Copy(f"local_content/m{i}", f"local_thumbnails/m{i}") for i in range(n)}
    keys = [f"p/local_content/m{i}" for i in range(n)]
    keys += [f"p/local_thumbnails/m{i}/{t}" for i in range(n) for t in range(thumbnails)]
    return copies, keys


def test_r2_per_key_errors_fail_their_items_only() -> None:
    owners = {"p/a": "a", "p/a/t1": "a", "p/b": "b"}
    errors = [{"Key": "p/a/t1", "Code": "AccessDenied"}, {"Key": "p/unknown", "Code": "X"}]
    assert failed_items(owners, errors) == {"a": NOT_DELETED}
    assert failed_items(owners, []) == {}


def test_r2_objects_counted_per_item_the_file_only_where_the_provider_stores_it() -> None:
    owners = {"p/a": "a", "p/a/t1": "a", "p/a/t2": "a", "p/b": "b"}
    counted = {"p/a": True, "p/a/t1": True, "p/a/t2": True, "p/b": False}
    assert objects_deleted(owners, counted) == {"a": 3, "b": 0}


def test_r2_a_batch_is_one_listing_per_folder_and_one_delete_objects_call() -> None:
    copies, keys = _media(5)
    fake = FakeS3(keys)
    outcome = _bucket(fake).delete(copies)
    assert outcome.failed == {}
    assert outcome.objects == {f"m{i}": 3 for i in range(5)}
    assert fake.objects == set()
    assert len(fake.delete_calls) == 1


def test_r2_an_object_the_bucket_keeps_fails_its_item_and_no_other() -> None:
    copies, keys = _media(4)
    fake = FakeS3(keys)
    fake.refuse = {"p/local_thumbnails/m2/1"}
    outcome = _bucket(fake).delete(copies)
    assert outcome.failed == {"m2": NOT_DELETED}
    assert set(outcome.objects) == {"m0", "m1", "m3"}
    assert fake.objects == {"p/local_thumbnails/m2/1"}


def test_r2_a_folder_that_cannot_be_listed_fails_its_item_whose_file_stays() -> None:
    copies, keys = _media(3)
    fake = FakeS3(keys)
    fake.unlistable = {"p/local_thumbnails/m1/"}
    outcome = _bucket(fake).delete(copies)
    assert outcome.failed == {"m1": NOT_DELETED}
    assert fake.objects == {k for k in keys if "/m1" in k}


@pytest.mark.parametrize("down_after", [0, 1])
def test_r2_keys_go_by_1000_and_a_failed_call_fails_the_items_of_its_keys(
    down_after: int,
) -> None:
    """450 media of five objects each: 2,250 keys in three calls; the calls from
    ``down_after`` on fail, and exactly the items with a key in them are failed."""
    copies, keys = _media(450, thumbnails=4)
    fake = FakeS3(keys)
    fake.down_after = down_after
    outcome = _bucket(fake).delete(copies)
    went = {k for call in fake.delete_calls for k in call}
    stayed = {
        item
        for item in copies
        if any(k.endswith(f"/{item}") or f"/{item}/" in k for k in keys if k not in went)
    }
    assert stayed and set(outcome.failed) == stayed
    assert set(outcome.objects) == set(copies) - stayed
    assert len(copies) == len(outcome.failed) + len(outcome.objects)


def test_r14_the_report_counts_files_with_an_object_and_says_when_it_cannot() -> None:
    _, keys = _media(3)
    fake = FakeS3(keys)
    files = ["local_content/m0", "local_content/m2", "local_content/gone"]
    assert _bucket(fake).count_objects(files) == 2
    fake.unlistable = {"p/local_content/m2"}
    with pytest.raises(ObjectsUnknown):
        _bucket(fake).count_objects(files)


def test_r2_a_bucket_out_of_reach_fails_the_batch_without_trying_every_folder() -> None:
    """The first listings that cannot reach the bucket stop the others: a batch of 500
    files does not wait out the client's timeouts 500 times; nothing is deleted."""
    copies, keys = _media(500)
    fake = FakeS3(keys)
    fake.down_after = -1
    outcome = _bucket(fake).delete(copies)
    assert set(outcome.failed) == set(copies) and outcome.objects == {}
    assert fake.listings <= 8 and fake.delete_calls == [] and fake.objects == set(keys)


def test_r2_a_versioned_bucket_loses_every_version_and_delete_marker_of_a_file() -> None:
    """R2: in a versioned bucket, a key deleted without a version stays as old versions;
    so every version and delete marker of the file and its thumbnails goes by VersionId."""
    copies, keys = _media(3)
    fake = FakeS3([*keys, "p/local_content/m10", "p/local_thumbnails/m10/0"])
    fake.versioning = "Suspended"
    outcome = _bucket(fake).delete(copies)
    assert outcome.failed == {} and outcome.objects == {f"m{i}": 3 for i in range(3)}
    assert fake.delete_calls == []  # nothing deleted without its version
    assert sorted(fake.deleted_versions) == sorted((k, v) for k in keys for v in ("v1", "v2", "dm"))
    assert fake.objects == {"p/local_content/m10", "p/local_thumbnails/m10/0"}  # m1 != m10


@pytest.mark.parametrize("denied", ["GetBucketVersioning", "ListObjectVersions"])
def test_r2_a_bucket_that_hides_its_versions_loses_its_current_objects_with_a_warning(
    denied: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Without s3:GetBucketVersioning or s3:ListBucketVersions, the current objects go by
    key as before, and the log names the permission that would remove old versions."""
    copies, keys = _media(2)
    fake = FakeS3(keys)
    fake.versioning = "Enabled"
    fake.denied = {denied}
    outcome = _bucket(fake).delete(copies)
    assert outcome.failed == {} and fake.objects == set() and fake.deleted_versions == []
    permission = {"GetBucketVersioning": "s3:GetBucketVersioning"}.get(
        denied, "s3:ListBucketVersions"
    )
    assert permission in caplog.text
