"""Prometheus metrics of the sweep, registered in Synapse's registry.

Every metric carries Synapse's ``server_name`` label, as Synapse requires of
metrics in its shared registry.
"""

from prometheus_client import Counter, Gauge, Histogram

SERVER_NAME_LABEL = "server_name"

sweep_duration_seconds = Histogram(
    "lux_privacy_sweep_duration_seconds",
    "Wall time of a complete retention sweep (dry runs included).",
    labelnames=[SERVER_NAME_LABEL, "dry_run"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600),
)
items_deleted_total = Counter(
    "lux_privacy_items_deleted_total",
    "Items deleted by each rule.",
    labelnames=[SERVER_NAME_LABEL, "rule"],
)
bytes_deleted_total = Counter(
    "lux_privacy_bytes_deleted_total",
    "Bytes deleted by each rule, where the rule knows them.",
    labelnames=[SERVER_NAME_LABEL, "rule"],
)
rule_errors_total = Counter(
    "lux_privacy_rule_errors_total",
    "Errors raised while a rule ran (the rule stops for that sweep; the others go on).",
    labelnames=[SERVER_NAME_LABEL, "rule"],
)
last_successful_sweep_timestamp_seconds = Gauge(
    "lux_privacy_last_successful_sweep_timestamp_seconds",
    "When the last real sweep without errors finished (seconds since the epoch).",
    labelnames=[SERVER_NAME_LABEL],
)
item_failures_total = Counter(
    "lux_privacy_item_failures_total",
    "Failed attempts to delete one item (retried at later sweeps with backoff)",
    labelnames=[SERVER_NAME_LABEL, "rule"],
)
items_failing_over_a_day = Gauge(
    "lux_privacy_items_failing_over_a_day",
    "Items whose deletion has kept failing for more than a day (GET /failures lists them)",
    labelnames=[SERVER_NAME_LABEL],
)
synapse_table_dead_rows = Gauge(
    "lux_privacy_synapse_table_dead_rows",
    "PostgreSQL: dead rows of Synapse's tables that hold message text (event_json,"
    " event_search), read at the end of the last sweep that deleted events: deleted text"
    " still in the files until the operator guide's residue procedure (R1, R15)",
    labelnames=[SERVER_NAME_LABEL, "table"],
)
synapse_table_bytes = Gauge(
    "lux_privacy_synapse_table_bytes",
    "PostgreSQL: size of Synapse's tables that hold message text, with their indexes and"
    " TOAST, read at the end of the last sweep that deleted events",
    labelnames=[SERVER_NAME_LABEL, "table"],
)
feature_start_failures_total = Counter(
    "lux_privacy_feature_start_failures_total",
    "Features that failed to start on this process (the others still start)",
    labelnames=[SERVER_NAME_LABEL, "feature"],
)
