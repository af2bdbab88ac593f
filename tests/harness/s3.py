"""An S3 API on loopback (moto's standalone server) for synapse-s3-storage-provider.

:class:`S3Server` runs moto's server in a thread of the test process on a fixed port,
can be stopped and started again on that port (the bucket's content lives in the
process, so it survives), and builds the ``media_storage_providers`` entry a
provider would write for the real synapse-s3-storage-provider.
"""

from __future__ import annotations

from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from .ports import free_port

ACCESS_KEY = "lux-test-key"
SECRET_KEY = "lux-test-secret"
REGION = "eu-west-1"


class S3Server:
    """moto's S3 server on 127.0.0.1."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None

    def start(self) -> None:
        if self._server is None:
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            self._server.start()

    def stop(self) -> None:
        """Stop answering (the bucket is out of reach until :meth:`start`)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(
            Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION}
        )

    def keys(self, bucket: str, prefix: str = "") -> set[str]:
        """Every object key in the bucket under ``prefix``."""
        found: set[str] = set()
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        for page in pages:
            found.update(item["Key"] for item in page.get("Contents", []))
        return found

    def provider_config(self, bucket: str, prefix: str) -> dict[str, Any]:
        """The ``media_storage_providers`` setting for the real synapse-s3-storage-provider,
        storing local and remote media synchronously, as a provider would."""
        return {
            "media_storage_providers": [
                {
                    "module": "s3_storage_provider.S3StorageProviderBackend",
                    "store_local": True,
                    "store_remote": True,
                    "store_synchronous": True,
                    "config": {
                        "bucket": bucket,
                        "prefix": prefix,
                        "endpoint_url": self.endpoint,
                        "access_key_id": ACCESS_KEY,
                        "secret_access_key": SECRET_KEY,
                        "region_name": REGION,
                    },
                }
            ]
        }
