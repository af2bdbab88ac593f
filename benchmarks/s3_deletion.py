"""Objects deleted per second from synapse-s3-storage-provider's bucket (R2).

Two measurements against moto's S3 server on loopback:

- ``sweep``: a real Synapse (SQLite) with the real synapse-s3-storage-provider;
  ``--media`` images are uploaded (each stored with its thumbnails), then one
  attachments sweep ``as_of`` three years ahead deletes them everywhere. Reported:
  bucket objects removed per second of the sweep (Synapse's own deletion of the local
  files and rows included), next to the same sweep on a Synapse without the provider.
- ``adapter``: the module's bucket deletion alone (``s3_provider.S3Bucket.delete``) on
  ``--objects`` synthetic objects (a file and three thumbnails per media), 500 media
  per call, as a sweep batch asks for them.

    .venv/bin/python benchmarks/s3_deletion.py --media 200 --objects 5000
"""

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from synapse_lux_privacy.synapse_adapter.s3_provider import Copy, S3Bucket
from tests.harness import MatrixClient, SynapseServer
from tests.harness.s3 import ACCESS_KEY, REGION, SECRET_KEY, S3Server

YEAR_MS = 365 * 86_400_000


def _load() -> str:
    """The 1-minute load average, printed beside every figure (the machine is shared)."""
    return f"load {Path('/proc/loadavg').read_text().split()[0]}"


def _png(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (seed % 256, 40, 90)).save(out, format="PNG")
    return out.getvalue()


def _background_sweep(admin: MatrixClient, as_of: int) -> dict[str, Any]:
    """An attachments sweep through ``POST /sweeps`` (a slow one outlasts an HTTP
    request's timeout), followed to its end; its record (times from the server)."""
    status, body = admin.lux(
        "POST", "/sweeps", {"dry_run": False, "as_of": as_of, "rules": ["attachments"]}
    )
    assert status == 202, body
    while True:
        time.sleep(0.5)
        status, record = admin.lux("GET", f"/sweeps/{body['sweep_id']}")
        assert status == 200, record
        if record["status"] != "running":
            assert record["status"] == "completed", record
            return dict(record)


def sweep_rate(s3: S3Server, media: int, with_s3: bool) -> None:
    bucket, prefix = f"bench-sweep-{with_s3}".lower(), "synapse/"
    s3.create_bucket(bucket)
    extra = s3.provider_config(bucket, prefix) if with_s3 else {}
    with tempfile.TemporaryDirectory() as tmp:
        server = SynapseServer(tmp, "sqlite", None, {"allow_future_sweeps": True}, extra)
        server.start()
        try:
            admin = server.register_user("boss", admin=True)
            user = server.register_user("uploader")
            for n in range(media):
                user.upload_media(_png(n), "image/png", f"{n}.png")
            time.sleep(2)  # thumbnails written after the upload answered
            before = len(s3.keys(bucket, prefix))
            as_of = int(time.time() * 1000) + 3 * YEAR_MS
            record = _background_sweep(admin, as_of)
            seconds = (record["finished_ts"] - record["started_ts"]) / 1000
            after = len(s3.keys(bucket, prefix))
        finally:
            server.stop()
    removed = before - after
    deleted = record["results"]["attachments"]["deleted"]
    label = "sweep with S3:   " if with_s3 else "sweep without S3:"
    print(
        f"{label} {deleted} media in {seconds:.2f} s ({deleted / seconds:.1f} media/s),"
        f" {removed} objects removed ({after} left): {removed / seconds:.0f} objects/s"
        f" ({_load()})"
    )


def adapter_rate(s3: S3Server, objects: int) -> None:
    bucket, prefix = "bench-adapter", "p/"
    s3.create_bucket(bucket)
    client = s3.client()
    folders = [f"local_thumbnails/aa/bb/{n:08d}" for n in range(objects // 4)]
    files = [f"local_content/aa/bb/{n:08d}" for n in range(objects // 4)]
    for n, folder in enumerate(folders):
        client.put_object(Bucket=bucket, Key=prefix + files[n], Body=b"x")
        for t in range(3):
            client.put_object(Bucket=bucket, Key=f"{prefix}{folder}/{t}", Body=b"x")
    backend = SimpleNamespace(
        bucket=bucket,
        prefix=prefix,
        api_kwargs={
            "endpoint_url": s3.endpoint,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
            "region_name": REGION,
        },
    )
    target = S3Bucket(backend)
    copies = {f: Copy(f, folder) for f, folder in zip(files, folders, strict=True)}
    start = time.monotonic()
    deleted = 0
    for at in range(0, len(files), 500):  # the default sweep batch size
        outcome = target.delete({f: copies[f] for f in files[at : at + 500]})
        assert not outcome.failed, outcome.failed
        deleted += sum(outcome.objects.values())
    seconds = time.monotonic() - start
    left = len(s3.keys(bucket, prefix))
    print(
        f"adapter: {deleted} objects ({left} left) in {seconds:.2f} s:"
        f" {deleted / seconds:.0f} objects/s ({_load()})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--media", type=int, default=200, help="images uploaded for the sweep")
    parser.add_argument("--objects", type=int, default=5000, help="objects for the adapter run")
    parser.add_argument(
        "--sweeps-only", action="store_true", help="leave out the adapter run (the sweeps only)"
    )
    args = parser.parse_args()
    s3 = S3Server()
    s3.start()
    try:
        if not args.sweeps_only:
            adapter_rate(s3, args.objects)
        sweep_rate(s3, args.media, with_s3=False)
        sweep_rate(s3, args.media, with_s3=True)
    finally:
        s3.stop()


if __name__ == "__main__":
    main()
