"""Prometheus metrics of the national directory outbox (R10), in Synapse's registry.

Set by the instance that delivers (the background-tasks instance, and any instance
running a sweep); like every metric of the module they carry ``server_name``.
"""

from prometheus_client import Counter, Gauge

from synapse_lux_privacy.metrics import SERVER_NAME_LABEL

oldest_pending_removal_age_seconds = Gauge(
    "lux_privacy_directory_oldest_pending_removal_age_seconds",
    "Age of the oldest removal not yet delivered to the national directory (0: none);"
    " alert when it passes directory.national.removal_deadline.",
    labelnames=[SERVER_NAME_LABEL],
)
outbox_pending = Gauge(
    "lux_privacy_directory_outbox_pending",
    "Changes waiting in the national directory outbox.",
    labelnames=[SERVER_NAME_LABEL],
)
deliveries_total = Counter(
    "lux_privacy_directory_deliveries_total",
    "Attempts to deliver a change to the national directory, by action and result"
    " (delivered, rejected for good, failed and retried later).",
    labelnames=[SERVER_NAME_LABEL, "action", "result"],
)
