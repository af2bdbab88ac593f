"""Build (or find) a dataset snapshot and print what it holds.

.venv/bin/python -m benchmarks.dataset --database postgres --rooms 300 --messages 10000
.venv/bin/python -m benchmarks.dataset --rooms 300 --messages 10000 --clone-rooms 80  # 1M events
"""

from __future__ import annotations

import argparse
import json

from benchmarks.dataset import add_spec_arguments, ensure_snapshot, spec_from_args
from benchmarks.dataset.spec import Manifest
from tests.harness import PostgresCluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="postgres")
    add_spec_arguments(parser)
    args = parser.parse_args()
    cluster = PostgresCluster() if args.database == "postgres" else None
    if cluster is not None:
        cluster.start()
    try:
        path = ensure_snapshot(spec_from_args(args), args.database, cluster)
    finally:
        if cluster is not None:
            cluster.stop()
    manifest = Manifest.load(path / "manifest.json")
    print(f"snapshot: {path}")
    print(f"built in {manifest.build_seconds:.0f} s; rows: {json.dumps(manifest.counts)}")
    if manifest.spec.clone_rooms:
        print(f"rooms cloned {manifest.spec.clone_rooms} times in {manifest.clone_seconds:.0f} s")


if __name__ == "__main__":
    main()
