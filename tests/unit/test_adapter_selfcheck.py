"""The adapter's self-check and the supported Synapse range (no Synapse downgrade on install).

Runs against the Synapse installed in the venv: CI runs it on the newest (1.163.x) and
the oldest (1.150.0) supported release. Releases above the range are faked by passing
the version string (what ``synapse_version()`` would read).
"""

import re
import sqlite3
from pathlib import Path

import pytest
from synapse.module_api.errors import ConfigError

from synapse_lux_privacy import synapse_adapter
from synapse_lux_privacy.synapse_adapter import selfcheck
from synapse_lux_privacy.synapse_adapter.selfcheck import PrivateAttribute, PrivateCall

ADAPTER = Path(synapse_adapter.__file__).parent


def test_every_private_api_the_adapter_uses_exists_on_the_installed_synapse() -> None:
    assert selfcheck.check_private_api() == []


def test_a_missing_method_is_named() -> None:
    path = "synapse.handlers.pagination.PaginationHandler.purge_history_v2"
    findings = selfcheck.check_private_api([PrivateCall(path)])
    assert len(findings) == 1 and findings[0].startswith(path + " is missing")


def test_a_missing_module_is_named() -> None:
    findings = selfcheck.check_private_api([PrivateCall("synapse.no_such_module.func")])
    assert findings == ["synapse.no_such_module.func is missing (synapse has no no_such_module)"]


def test_an_argument_no_longer_taken_is_named() -> None:
    path = "synapse.handlers.deactivate_account.DeactivateAccountHandler.deactivate_account"
    findings = selfcheck.check_private_api([PrivateCall(path, ("user_id",), ("erase_everything",))])
    assert len(findings) == 1
    assert path in findings[0] and "has no argument 'erase_everything'" in findings[0]


def test_too_many_positional_arguments_are_named() -> None:
    path = "synapse.storage.databases.main.DataStore.expire_event"
    findings = selfcheck.check_private_api([PrivateCall(path, ("event_id", "reason"))])
    assert len(findings) == 1 and "takes 1 positional arguments" in findings[0]


def test_instance_attributes_are_found_in_the_class_and_missing_ones_named() -> None:
    present = PrivateAttribute("synapse.media.media_repository.MediaRepository", "filepaths")
    missing = PrivateAttribute("synapse.media.media_repository.MediaRepository", "file_paths")
    assert selfcheck.check_private_api([present, missing]) == [
        "synapse.media.media_repository.MediaRepository.file_paths is missing"
    ]


def test_missing_tables_and_columns_are_named() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE rooms (room_id TEXT)")
    cursor = conn.cursor()
    findings = selfcheck.check_columns(
        lambda table: selfcheck.table_columns_sqlite(cursor, table),
        {"rooms": ("room_id", "room_version"), "events": ("event_id",)},
    )
    assert findings == ["table events is missing", "column rooms.room_version is missing"]


def test_every_synapse_table_the_adapter_sql_names_is_in_the_column_check() -> None:
    """A new query on a Synapse table must list its columns for the self-check."""
    named: set[str] = set()
    for source in ADAPTER.glob("*.py"):
        if source.name == "selfcheck.py":  # reads the catalogue, not Synapse's tables
            continue
        text = source.read_text()
        named |= set(re.findall(r"(?:FROM|JOIN|UPDATE|INTO)\s+([a-z_]+)", text))
    # PostgreSQL's statistics views (pg_stat_user_tables) are not Synapse's tables.
    synapse_tables = {t for t in named if not t.startswith(("lux_privacy_", "pg_"))}
    assert synapse_tables - set(selfcheck.SYNAPSE_COLUMNS) == set()


def test_a_synapse_below_the_range_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"needs Synapse 1\.150\.0 or later.*this is Synapse 1\.149\.1"
    ):
        synapse_adapter.check_synapse_version(allow_untested=True, version="1.149.1")


@pytest.mark.parametrize("version", ["1.150.0", "1.157.2", "1.163.2", "1.163.3rc1"])
def test_releases_of_the_tested_range_start(version: str) -> None:
    synapse_adapter.check_synapse_version(allow_untested=False, version=version)
    assert not synapse_adapter.is_untested(version)


def test_a_newer_synapse_is_refused_without_allow_untested_synapse() -> None:
    newer = r"this is Synapse 1\.164\.0.*allow_untested_synapse: true"
    with pytest.raises(ConfigError, match=newer):
        synapse_adapter.check_synapse_version(allow_untested=False, version="1.164.0")


def test_a_newer_synapse_starts_with_the_flag_only_if_the_self_check_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    synapse_adapter.check_synapse_version(allow_untested=True, version="1.170.0rc1")
    monkeypatch.setattr(
        selfcheck, "check_private_api", lambda: ["synapse.x.Y.z is missing (synapse.x has no Y)"]
    )
    with pytest.raises(ConfigError, match=r"private API failed.*synapse\.x\.Y\.z is missing"):
        synapse_adapter.check_synapse_version(allow_untested=True, version="1.170.0")
