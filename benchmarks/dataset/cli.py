"""Command-line options for a dataset, shared by every benchmark script."""

from __future__ import annotations

import argparse

import attrs

from benchmarks.dataset.spec import DatasetSpec

HELP = {
    "users": "users, each with --devices-per-user devices",
    "rooms": "rooms",
    "members_per_room": "members of each room",
    "messages": "messages, spread over the rooms with a long tail (a few big rooms)",
    "encrypted_rooms": "share of the rooms that are encrypted",
    "media": "uploads, by members of random rooms",
    "media_bytes": "size of each upload",
    "attachment_events": "share of the uploads in clear rooms posted as m.image/m.file events",
    "devices_per_user": "devices (sessions) per user",
    "consenting_users": "share of the users who consent to the national directory",
    "seed": "random seed",
    "clone_rooms": "copies of every room made in the database after the build, to reach"
    " millions of events in minutes (PostgreSQL; 0: none)",
    "heavy_sender_messages": "messages sent by one user (the member of the most rooms) on top"
    " of --messages, before the cloning (R14 exports; 0: none)",
}


def add_spec_arguments(
    parser: argparse.ArgumentParser, defaults: DatasetSpec | None = None, prefix: str = ""
) -> None:
    """``--users``, ``--rooms``, ... with ``defaults`` (the script's own sizes); with
    ``prefix="dataset-"``, ``--dataset-users``, ... for a script whose own options would
    clash."""
    defaults = defaults or DatasetSpec()
    group = parser.add_argument_group("dataset (benchmarks/dataset)")
    for field in attrs.fields(DatasetSpec):
        value = getattr(defaults, field.name)
        group.add_argument(
            "--" + prefix + field.name.replace("_", "-"),
            dest=(prefix + field.name).replace("-", "_"),
            type=type(value),
            default=value,
            help=f"{HELP[field.name]} (default {value})",
        )


def spec_from_args(args: argparse.Namespace, prefix: str = "") -> DatasetSpec:
    dest = prefix.replace("-", "_")
    return DatasetSpec(**{f.name: getattr(args, dest + f.name) for f in attrs.fields(DatasetSpec)})
