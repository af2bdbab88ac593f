"""When a session is logged out (R11), an account deleted (R12) and an IP log row
removed (R9): pure logic, the one place each deadline is defined.

A deadline counts ``limit`` from a basis time (``deadline_ts``); it is due as of a time
exactly when the basis is at most ``due_cutoff(as_of, limit)``. The rules give that
cutoff to the Synapse adapter's SQL, which only compares basis times against it; the
per-user report (R14) shows ``deadline_ts`` of the same basis; the property tests run
both against each other (``tests/unit/test_rule_properties.py``).
"""

from collections.abc import Callable, Sequence

import attrs

from synapse_lux_privacy.config import AccountsConfig


@attrs.frozen
class DeviceActivity:
    """What is known about one device's activity."""

    device_id: str
    synapse_last_seen: int | None  # Synapse's devices.last_seen
    recorded_last_seen: int | None  # the module's copy, kept after Synapse's goes
    first_seen: int | None  # when the module first saw the device (None: not yet)

    @property
    def last_seen_ts(self) -> int | None:
        """The last request seen on this device, if any."""
        seen = [t for t in (self.synapse_last_seen, self.recorded_last_seen) if t is not None]
        return max(seen) if seen else None

    def logout_basis(self, now_ms: int) -> int:
        """R11 counts from the last activity; a device never seen, from when the module saw it.

        A device the module has not recorded yet will be recorded at the next sweep,
        so it counts from now.
        """
        first_seen = now_ms if self.first_seen is None else self.first_seen
        last_seen = self.last_seen_ts
        return first_seen if last_seen is None else max(last_seen, first_seen)


def due_cutoff(as_of_ms: int, limit_ms: int) -> int:
    """R9, R11, R12: the latest basis time whose deadline is due as of ``as_of_ms``.

    ``basis <= due_cutoff(as_of, limit)`` exactly when ``deadline_ts(basis, limit) <= as_of``.
    """
    return as_of_ms - limit_ms


def deadline_ts(basis_ms: int, limit_ms: int) -> int:
    """R9, R11, R12: when a deadline counted from ``basis_ms`` falls due."""
    return basis_ms + limit_ms


def logout_due_ts(device: DeviceActivity, inactive_logout_after_ms: int, now_ms: int) -> int:
    """R11: when the device is logged out if it stays inactive."""
    return deadline_ts(device.logout_basis(now_ms), inactive_logout_after_ms)


def last_active_ts(
    recorded: int | None, creation_ms: int | None, devices: Sequence[DeviceActivity]
) -> int | None:
    """R12: the latest of the recorded activity (registration if none) and the devices'.

    Every user gets a record at registration or from the first-start backfill, so
    the registration time is only a fallback.
    """
    base = creation_ms if recorded is None else recorded
    times = [t for t in (d.last_seen_ts for d in devices) if t is not None]
    times += [] if base is None else [base]
    return max(times) if times else None


def account_deletion_due_ts(
    last_active: int,
    devices: Sequence[DeviceActivity],
    inactive_delete_after_ms: int,
    inactive_logout_after_ms: int,
    now_ms: int,
) -> int:
    """R12: an account goes once inactive for the limit and no session is left (R11)."""
    due = deadline_ts(last_active, inactive_delete_after_ms)
    for device in devices:
        due = max(due, logout_due_ts(device, inactive_logout_after_ms, now_ms))
    return due


@attrs.frozen
class Exemptions:
    """Users the inactivity rules never touch (besides held users, R13).

    Application-service users (``users.appservice_id``, filtered in SQL, and users in
    an application service's exclusive namespace) and the server-notices user make
    no requests that the module can see, so neither R11 nor R12 applies to them.
    ``accounts.exempt`` applies to R12 only: an exempt user's idle sessions are
    still logged out (R11).
    """

    accounts: AccountsConfig
    server_notices_user: str | None
    is_appservice_user: Callable[[str], bool]

    def from_sessions(self, user_id: str) -> bool:
        return user_id == self.server_notices_user or self.is_appservice_user(user_id)

    def from_accounts(self, user_id: str) -> bool:
        return self.from_sessions(user_id) or self.accounts.is_exempt(user_id)
