"""The shared dataset generator of the benchmarks (issue 7).

One tool for every benchmark: it builds a realistic dataset (users with devices and
display names, rooms with members, clear and encrypted messages, uploads posted as
attachment events, an IP/user-agent log, national-directory consents) through
Synapse's own APIs (``loader.py``, ``build.py``), stores it once as a snapshot, and
restores it aged as of a time for each run (``snapshot.py``, ``aging.py``)::

    path = ensure_snapshot(DatasetSpec(rooms=300, messages=10_000), "postgres", cluster)
    server, manifest = restore(path, workdir, cluster, [lux_module()], now_ms)
    server.start()
    wait_for_background_updates(server)   # before timing anything

A spec with ``clone_rooms=K`` (``--clone-rooms K``) is the same dataset with every room
copied K times in the database (``clone.py``, PostgreSQL): a million events in minutes
instead of hours.

``python -m benchmarks.dataset --help`` builds one from the command line.
"""

from benchmarks.dataset.cli import add_spec_arguments, spec_from_args
from benchmarks.dataset.snapshot import (
    ensure_snapshot,
    lux_module,
    restore,
    snapshot_path,
    wait_for_background_updates,
)
from benchmarks.dataset.spec import ADMIN_LOCALPART, ADMIN_PASSWORD, DatasetSpec, Manifest

__all__ = [
    "ADMIN_LOCALPART",
    "ADMIN_PASSWORD",
    "DatasetSpec",
    "Manifest",
    "add_spec_arguments",
    "ensure_snapshot",
    "lux_module",
    "restore",
    "snapshot_path",
    "spec_from_args",
    "wait_for_background_updates",
]
