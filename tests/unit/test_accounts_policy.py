"""Due dates of sessions (R11) and accounts (R12), and who the rules never touch.

Time: explicit timestamps; nothing reads the clock.
"""

from synapse_lux_privacy.config import AccountsConfig
from synapse_lux_privacy.features.accounts.policy import (
    DeviceActivity,
    Exemptions,
    account_deletion_due_ts,
    last_active_ts,
    logout_due_ts,
)

DAY = 86_400_000
NOW = 1_800_000_000_000
SESSION = 180 * DAY
ACCOUNT = 365 * DAY


def test_r11_a_device_counts_from_its_last_request() -> None:
    device = DeviceActivity("A", NOW - 10 * DAY, NOW - 20 * DAY, NOW - 30 * DAY)
    assert device.last_seen_ts == NOW - 10 * DAY
    assert logout_due_ts(device, SESSION, NOW) == NOW - 10 * DAY + SESSION


def test_r11_the_module_keeps_the_last_seen_after_synapse_loses_it() -> None:
    device = DeviceActivity("A", None, NOW - 20 * DAY, NOW - 30 * DAY)
    assert logout_due_ts(device, SESSION, NOW) == NOW - 20 * DAY + SESSION


def test_r11_a_device_never_seen_counts_from_when_the_module_first_saw_it() -> None:
    device = DeviceActivity("A", None, None, NOW - 3 * DAY)
    assert device.last_seen_ts is None
    assert logout_due_ts(device, SESSION, NOW) == NOW - 3 * DAY + SESSION
    unrecorded = DeviceActivity("B", None, None, None)
    assert logout_due_ts(unrecorded, SESSION, NOW) == NOW + SESSION


def test_r12_last_activity_is_the_latest_of_record_and_devices() -> None:
    devices = [DeviceActivity("A", NOW - 5 * DAY, None, NOW - 90 * DAY)]
    assert last_active_ts(NOW - 9 * DAY, NOW - 400 * DAY, devices) == NOW - 5 * DAY
    assert last_active_ts(NOW - 9 * DAY, NOW - 400 * DAY, []) == NOW - 9 * DAY
    # Registration counts only for a user without a record (never later than it).
    assert last_active_ts(NOW - 9 * DAY, NOW - 2 * DAY, []) == NOW - 9 * DAY
    assert last_active_ts(None, NOW - 400 * DAY, []) == NOW - 400 * DAY
    assert last_active_ts(None, None, []) is None
    # First sight of a device is not activity of the user.
    assert last_active_ts(None, NOW - 400 * DAY, [DeviceActivity("B", None, None, NOW)]) == (
        NOW - 400 * DAY
    )


def test_r12_an_account_goes_after_the_limit_and_once_no_session_is_left() -> None:
    last = NOW - 100 * DAY
    assert account_deletion_due_ts(last, [], ACCOUNT, SESSION, NOW) == last + ACCOUNT
    # A session with a later logout date holds the account (a short account limit).
    late = DeviceActivity("A", None, None, NOW)
    assert account_deletion_due_ts(last, [late], 30 * DAY, SESSION, NOW) == NOW + SESSION


def test_exemptions_apply_to_r12_only_for_configured_users() -> None:
    config = AccountsConfig(ACCOUNT, ("@admin:x", "re:@svc-.*:x"))
    exemptions = Exemptions(config, "@notices:x", lambda u: u.startswith("@bridge_"))
    assert exemptions.from_accounts("@admin:x") and exemptions.from_accounts("@svc-1:x")
    assert not exemptions.from_sessions("@admin:x")
    for user in ("@notices:x", "@bridge_1:x"):
        assert exemptions.from_sessions(user) and exemptions.from_accounts(user)
    assert not exemptions.from_accounts("@alice:x")
