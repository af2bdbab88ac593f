"""The admin HTTP API under /_synapse/client/lux_privacy/v1 (docs/admin-api.md)."""

ADMIN_API_PREFIX = "/_synapse/client/lux_privacy/v1"
