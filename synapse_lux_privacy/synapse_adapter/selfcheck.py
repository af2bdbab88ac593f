"""The adapter's self-check: does this Synapse still have what the adapter uses?

Run on a Synapse newer than the tested range when ``allow_untested_synapse: true``
(see ``synapse_adapter.check_synapse_version``), by ``check-config``, and by the test
suite on every supported release. Two parts:

- ``check_private_api``: every private Synapse function, method and attribute the
  adapter calls exists, and takes the arguments the adapter passes (by position and
  by name), read with ``inspect.signature``;
- ``check_columns``: every column of Synapse's tables that the adapter's SQL names
  exists, read from the database's own catalogue (``PRAGMA table_info`` on SQLite,
  ``information_schema.columns`` on PostgreSQL).

Each finding names the missing piece. Whoever adds a private call or a column to the
adapter adds it to ``PRIVATE_API`` or ``SYNAPSE_COLUMNS`` here
(``tests/unit/test_adapter_selfcheck.py`` checks the tables named in the adapter's SQL).
"""

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs


@attrs.frozen
class PrivateCall:
    """A function or method the adapter calls, with the arguments it passes."""

    path: str  # dotted: module, then attributes ("synapse.x.Class.method")
    positional: tuple[str, ...] = ()  # passed by position, in this order (after self)
    keywords: tuple[str, ...] = ()  # passed by name


@attrs.frozen
class PrivateAttribute:
    """An attribute the adapter reads on an instance of a Synapse class."""

    owner: str  # dotted path of the class
    name: str


_MAIN_STORE = "synapse.storage.databases.main.DataStore"
_HS = "synapse.server.HomeServer"

PRIVATE_API: tuple[PrivateCall | PrivateAttribute, ...] = (
    # synapse_adapter/__init__.py, config_files.py
    PrivateCall("synapse.config._base.read_config_files", ("config_files",)),
    PrivateCall("synapse.config._base.find_config_files", ("search_paths",)),
    PrivateCall("synapse.config._base.Config.parse_duration", ("value",)),
    PrivateAttribute("synapse.module_api.ModuleApi", "_hs"),
    PrivateAttribute("synapse.module_api.ModuleApi", "_store"),
    PrivateAttribute("synapse.storage.database.DatabasePool", "engine"),
    PrivateAttribute("synapse.storage.database.DatabasePool", "_database_config"),
    PrivateCall(
        "synapse.storage.database.make_conn",
        keywords=("db_config", "engine", "default_txn_name", "server_name"),
    ),
    PrivateAttribute("synapse.storage.engines.PostgresEngine", "module"),
    PrivateAttribute("synapse.config.homeserver.HomeServerConfig", "config_files"),
    # accounts.py
    PrivateAttribute("synapse.config.server_notices.ServerNoticesConfig", "server_notices_mxid"),
    PrivateCall(f"{_MAIN_STORE}.get_app_services"),
    PrivateCall("synapse.appservice.ApplicationService.is_exclusive_user", ("user_id",)),
    PrivateAttribute("synapse.logging.context.LoggingContext", "request"),
    PrivateAttribute("synapse.logging.context.ContextRequest", "requester"),
    PrivateCall(
        f"{_HS}.register_async_shutdown_handler",
        keywords=("phase", "eventType", "shutdown_func"),
    ),
    PrivateCall(
        "synapse.handlers.deactivate_account.DeactivateAccountHandler.deactivate_account",
        ("user_id",),
        ("erase_data", "requester", "by_admin"),
    ),
    PrivateCall(
        "synapse.handlers.profile.ProfileHandler.delete_profile_upon_deactivation",
        ("user_id", "requester"),
        ("by_admin",),
    ),
    PrivateCall("synapse.types.create_requester", ("user_id",), ("authenticated_entity",)),
    PrivateAttribute("synapse.config.emailconfig.EmailConfig", "email_notif_from"),
    # signing.py
    PrivateAttribute(_HS, "signing_key"),
    # transactions.py
    PrivateCall(
        "synapse.storage.database.DatabasePool.runInteraction",
        ("desc", "func"),
        ("isolation_level",),
    ),
    PrivateAttribute("synapse.storage.engines._base.IsolationLevel", "READ_COMMITTED"),
    # disk_residue.py
    PrivateAttribute("synapse.storage.databases.Databases", "databases"),
    PrivateCall("synapse.storage.database.DatabasePool.runWithConnection", ("func",)),
    PrivateCall("synapse.storage.engines.Sqlite3Engine.on_new_connection", ("db_conn",)),
    # devices.py
    PrivateCall("synapse.handlers.device.DeviceHandler.delete_devices", ("user_id", "device_ids")),
    # directory.py
    PrivateCall(f"{_HS}.get_clock"),
    # events.py
    PrivateCall(
        "synapse.handlers.pagination.PaginationHandler.purge_history",
        ("room_id", "token", "delete_local_events"),
    ),
    PrivateCall(f"{_MAIN_STORE}.expire_event", ("event_id",)),
    PrivateCall(f"{_MAIN_STORE}.get_event", ("event_id",), ("allow_rejected", "allow_none")),
    PrivateCall(f"{_MAIN_STORE}.get_events", ("event_ids",), ("allow_rejected",)),
    PrivateCall(f"{_MAIN_STORE}._censor_event_txn", ("txn", "event_id", "pruned_json")),
    PrivateCall(f"{_MAIN_STORE}._delete_event_expiry_txn", ("txn", "event_id")),
    PrivateCall(f"{_MAIN_STORE}._send_invalidation_to_replication", ("txn", "cache_name", "keys")),
    PrivateCall(f"{_MAIN_STORE}.invalidate_get_event_cache_after_txn", ("txn", "event_id")),
    PrivateCall(
        "synapse.storage.database.DatabasePool.simple_update_one_txn",
        ("txn",),
        ("table", "keyvalues", "updatevalues"),
    ),
    PrivateCall("synapse.storage.database.DatabasePool.runInteraction", ("desc", "func")),
    PrivateCall("synapse.util.async_helpers.concurrently_execute", ("func", "args", "limit")),
    PrivateAttribute("synapse.util.json", "json_encoder"),
    PrivateAttribute("synapse.util.json", "json_decoder"),
    # ip_logs.py
    PrivateCall(f"{_MAIN_STORE}.delete_old_ui_auth_sessions", ("expiration_time",)),
    # media.py
    PrivateAttribute("synapse.config.repository.ContentRepositoryConfig", "can_load_media_repo"),
    PrivateAttribute(
        "synapse.config.repository.ContentRepositoryConfig", "enable_local_media_storage"
    ),
    PrivateAttribute("synapse.config.repository.ContentRepositoryConfig", "media_store_path"),
    PrivateAttribute("synapse.config.repository.ContentRepositoryConfig", "max_upload_size"),
    PrivateAttribute(
        "synapse.config.repository.ContentRepositoryConfig", "media_storage_providers"
    ),
    PrivateCall(f"{_HS}.get_media_repository"),
    PrivateCall(
        "synapse.media.media_repository.MediaRepository.delete_local_media_ids", ("media_ids",)
    ),
    PrivateAttribute("synapse.media.media_repository.MediaRepository", "filepaths"),
    PrivateAttribute("synapse.media.media_repository.MediaRepository", "media_storage"),
    PrivateAttribute("synapse.media.media_repository.MediaRepository", "remote_media_linearizer"),
    PrivateAttribute("synapse.media.media_repository.MediaRepository", "store"),
    PrivateAttribute("synapse.media.media_storage.MediaStorage", "storage_providers"),
    PrivateAttribute("synapse.media.storage_provider.StorageProviderWrapper", "backend"),
    PrivateAttribute("synapse.media.storage_provider.StorageProviderWrapper", "store_local"),
    PrivateAttribute("synapse.media.storage_provider.StorageProviderWrapper", "store_remote"),
    PrivateAttribute("synapse.media.storage_provider.FileStorageProviderBackend", "base_directory"),
    PrivateAttribute("synapse.media.filepath.MediaFilePaths", "base_path"),
    PrivateCall("synapse.media.filepath.MediaFilePaths.local_media_filepath_rel", ("media_id",)),
    PrivateCall("synapse.media.filepath.MediaFilePaths.local_media_thumbnail_dir", ("media_id",)),
    PrivateCall(
        "synapse.media.filepath.MediaFilePaths.remote_media_filepath_rel",
        ("server_name", "file_id"),
    ),
    PrivateCall(
        "synapse.media.filepath.MediaFilePaths.remote_media_filepath", ("server_name", "file_id")
    ),
    PrivateCall(
        "synapse.media.filepath.MediaFilePaths.remote_media_thumbnail_dir",
        ("server_name", "file_id"),
    ),
    PrivateCall("synapse.util.async_helpers.Linearizer.queue", ("key",)),
    PrivateCall(f"{_MAIN_STORE}.delete_remote_media", ("media_origin", "media_id")),
    PrivateCall(f"{_MAIN_STORE}.get_local_media", ("media_id",)),
    PrivateCall("synapse.module_api.ModuleApi.defer_to_thread", ("f",)),
    PrivateCall("synapse.media.filepath.MediaFilePaths.local_media_filepath", ("media_id",)),
    # exports.py (R14)
    PrivateCall(f"{_MAIN_STORE}.get_events_as_list", ("event_ids",)),
    PrivateCall(f"{_HS}.get_event_client_serializer"),
    # create_config and FilteredEvent where the release has them (client_events), else:
    PrivateCall(
        "synapse.events.utils.SerializeEventConfig",
        keywords=("requester", "include_admin_metadata"),
    ),
    PrivateCall(
        "synapse.events.utils.EventClientSerializer.serialize_events",
        ("events", "time_now"),
        ("config",),
    ),
    # quota.py
    PrivateAttribute("synapse.api.room_versions", "KNOWN_ROOM_VERSIONS"),
    PrivateCall(
        "synapse.events.make_event_from_dict",
        ("event_dict", "room_version", "internal_metadata_dict"),
    ),
    PrivateCall("synapse.events.utils.prune_event", ("event",)),
    PrivateCall(f"{_MAIN_STORE}.get_room_max_stream_ordering"),
    PrivateCall(
        "synapse.server_notices.server_notices_manager.ServerNoticesManager.send_notice",
        ("user_id", "event_content"),
    ),
    PrivateCall(f"{_HS}.get_server_notices_manager"),
    PrivateCall(f"{_HS}.get_datastores"),
    PrivateCall(f"{_HS}.get_deactivate_account_handler"),
    PrivateCall(f"{_HS}.get_profile_handler"),
    PrivateCall(f"{_HS}.get_device_handler"),
    PrivateCall(f"{_HS}.get_pagination_handler"),
    # directory.py
    PrivateCall(f"{_HS}.get_clock"),
    PrivateCall(f"{_MAIN_STORE}._update_profiles_in_user_dir_txn", ("txn", "profiles")),
    PrivateCall(
        f"{_MAIN_STORE}.update_profile_in_user_dir", ("user_id", "display_name", "avatar_url")
    ),
)

# Every column of Synapse's tables that the adapter's SQL names (SELECT, and the few
# documented statements on Synapse's tables).
SYNAPSE_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "current_state_events": ("event_id",),
    "devices": (
        "user_id", "device_id", "last_seen", "hidden", "ip", "user_agent", "display_name",
    ),
    "event_forward_extremities": ("event_id", "room_id"),
    "event_json": ("event_id", "room_id", "json", "internal_metadata"),
    "event_search": ("event_id",),
    "events": (
        "event_id", "room_id", "sender", "type", "state_key", "depth", "topological_ordering",
        "stream_ordering", "origin_server_ts", "received_ts", "contains_url", "rejection_reason",
    ),
    "local_current_membership": ("user_id", "room_id", "membership"),
    "local_media_repository": (
        "media_id", "media_type", "media_length", "user_id", "created_ts", "url_cache",
        "upload_name",
    ),
    "local_media_repository_thumbnails": ("media_id", "thumbnail_length"),
    "profiles": ("avatar_url",),
    "redactions": ("event_id", "redacts", "received_ts", "have_censored"),
    "rejections": ("event_id",),
    "remote_media_cache": (
        "media_origin", "media_id", "filesystem_id", "media_type", "media_length", "created_ts",
    ),
    "room_account_data": ("room_id", "content"),
    "room_memberships": (
        "event_id", "user_id", "room_id", "avatar_url", "display_name", "membership", "sender",
    ),
    "room_stats_state": ("avatar", "room_id", "name", "encryption"),
    "rooms": ("room_id", "room_version"),
    "state_events": ("event_id",),
    "ui_auth_sessions": ("session_id", "creation_time"),
    "ui_auth_sessions_ips": ("session_id",),
    "user_daily_visits": ("user_id", "user_agent", "timestamp"),
    "user_directory": ("user_id", "display_name", "avatar_url"),
    "user_directory_search": ("user_id",),
    "user_ips": ("user_id", "last_seen", "device_id", "ip", "user_agent"),
    "users": ("name", "creation_ts", "deactivated", "appservice_id", "admin"),
    "users_pending_deactivation": ("user_id",),
}  # fmt: skip


def _resolve(path: str) -> object:
    """Import the longest module prefix of ``path`` and follow the rest as attributes."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for index, name in enumerate(parts[cut:], start=cut):
            if not hasattr(found, name):
                raise LookupError(f"{'.'.join(parts[:index])} has no {name}")
            found = getattr(found, name)
        return found
    raise LookupError(f"module {parts[0]} cannot be imported")


def _check_call(call: PrivateCall) -> list[str]:
    try:
        target = _resolve(call.path)
    except LookupError as e:
        return [f"{call.path} is missing ({e})"]
    if not callable(target):
        return [f"{call.path} is not callable"]
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return []  # a builtin without a signature: its existence is all that can be read
    params = [p for p in signature.parameters.values() if p.name not in ("self", "cls")]
    names = {p.name for p in params}
    takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    takes_args = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    positional = [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    findings = []
    if len(call.positional) > len(positional) and not takes_args:
        findings.append(
            f"{call.path}{signature} takes {len(positional)} positional arguments;"
            f" the adapter passes {len(call.positional)} ({', '.join(call.positional)})"
        )
    findings += [
        f"{call.path}{signature} has no argument {name!r}"
        for name in call.keywords
        if name not in names and not takes_kwargs
    ]
    return findings


def _check_attribute(attribute: PrivateAttribute) -> list[str]:
    where = f"{attribute.owner}.{attribute.name}"
    try:
        owner = _resolve(attribute.owner)
    except LookupError as e:
        return [f"{where} is missing ({e})"]
    if hasattr(owner, attribute.name):
        return []
    if inspect.isclass(owner):
        # Set on instances: look for the assignment in the class (or a base class).
        for klass in inspect.getmro(owner):
            try:
                source = inspect.getsource(klass)
            except (OSError, TypeError):
                continue
            if f"self.{attribute.name} " in source or f"self.{attribute.name}:" in source:
                return []
            annotations = getattr(klass, "__annotations__", {})
            if attribute.name in annotations:
                return []
    return [f"{where} is missing"]


def check_private_api(
    api: Iterable[PrivateCall | PrivateAttribute] = PRIVATE_API,
) -> list[str]:
    """Findings for every private function, method or attribute missing or changed."""
    findings: list[str] = []
    for item in api:
        if isinstance(item, PrivateCall):
            findings += _check_call(item)
        else:
            findings += _check_attribute(item)
    return findings


def check_columns(
    columns_of: Callable[[str], set[str]],
    expected: Mapping[str, tuple[str, ...]] = SYNAPSE_COLUMNS,
) -> list[str]:
    """Findings for every table or column the adapter's SQL names that the database lacks.

    ``columns_of(table)``: the table's columns in the database (empty: no such table).
    """
    findings: list[str] = []
    for table, wanted in sorted(expected.items()):
        present = columns_of(table)
        if not present:
            findings.append(f"table {table} is missing")
            continue
        findings += [f"column {table}.{c} is missing" for c in wanted if c not in present]
    return findings


def table_columns_sqlite(cursor: Any, table: str) -> set[str]:
    """The columns of a table on SQLite (``PRAGMA table_info``)."""
    cursor.execute(f"PRAGMA table_info({table})")
    return {str(row[1]) for row in cursor.fetchall()}


def table_columns_postgres(cursor: Any, table: str) -> set[str]:
    """The columns of a table on PostgreSQL, in the connection's search path."""
    cursor.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_name = %s AND table_schema = ANY(current_schemas(false))",
        (table,),
    )
    return {str(row[0]) for row in cursor.fetchall()}
