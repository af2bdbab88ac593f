"""Prometheus metrics of the storage quota (R4), in Synapse's registry.

Set by the instance that runs background tasks (the eviction loop) and by any
instance that runs a sweep; like every metric of the module they carry ``server_name``.
"""

from prometheus_client import Counter, Gauge

from synapse_lux_privacy.metrics import SERVER_NAME_LABEL

users_over_quota = Gauge(
    "lux_privacy_quota_users_over_quota",
    "Local users whose usage is above their quota (held users and users with nothing"
    " left to evict included).",
    labelnames=[SERVER_NAME_LABEL],
)
evicted_bytes_total = Counter(
    "lux_privacy_quota_evicted_bytes_total",
    "Bytes freed by quota eviction, by kind (media: uploads with thumbnails; events:"
    " stored event JSON removed by expunging).",
    labelnames=[SERVER_NAME_LABEL, "kind"],
)
evicted_items_total = Counter(
    "lux_privacy_quota_evicted_items_total",
    "Items evicted to bring users back under their quota, by kind.",
    labelnames=[SERVER_NAME_LABEL, "kind"],
)
