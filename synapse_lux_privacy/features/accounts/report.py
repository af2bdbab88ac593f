"""The per-user report's activity fields (R11, R12, R14).

``last_active_ts``, ``account_deletion_due_ts`` (null when R12 does not apply: exempt,
application-service or server-notices user, held, member of a held room,
deactivated), ``account_held`` (true when a legal hold keeps the account, R13: a
hold on the user, or on a room they are a member of) and ``sessions`` with each
device's ``last_seen_ts`` (null if never seen) and ``logout_due_ts`` (null when R11
does not apply). The dates are those the rules use (``policy``).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from synapse.module_api import ModuleApi

from synapse_lux_privacy.config import LuxPrivacyConfig
from synapse_lux_privacy.db import DbRunner
from synapse_lux_privacy.features.accounts import policy
from synapse_lux_privacy.features.accounts.activity_store import ActivityStore
from synapse_lux_privacy.features.accounts.tracker import ActivityTracker
from synapse_lux_privacy.store.holds import HoldStore
from synapse_lux_privacy.synapse_adapter import accounts, devices


class AccountsReport:
    def __init__(
        self,
        api: ModuleApi,
        run: DbRunner,
        config: LuxPrivacyConfig,
        store: ActivityStore,
        tracker: ActivityTracker,
        holds: HoldStore,
        exemptions: policy.Exemptions,
        clock_ms: Callable[[], int],
    ) -> None:
        self._api = api
        self._run = run
        self._config = config
        self._store = store
        self._tracker = tracker
        self._holds = holds
        self._exemptions = exemptions
        self._clock_ms = clock_ms

    async def deletion(self, user_id: str) -> tuple[int, int] | None:
        """R12: (last activity, deletion date) as the report shows them; None when R12
        does not apply to the user (the e-mail warnings use this too)."""
        state = await self._state(user_id)
        if state is None or state.last_active is None or state.account_due is None:
            return None
        return state.last_active, state.account_due

    async def report(self, user_id: str) -> Mapping[str, Any]:
        state = await self._state(user_id)
        if state is None:
            return {}
        session_ms = self._config.sessions.inactive_logout_after_ms
        return {
            "last_active_ts": state.last_active,
            "account_deletion_due_ts": state.account_due,
            "account_held": state.account_held,
            "sessions": [
                {
                    "device_id": d.device_id,
                    "last_seen_ts": d.last_seen_ts,
                    "logout_due_ts": policy.logout_due_ts(d, session_ms, state.now)
                    if state.sessions_apply
                    else None,
                }
                for d in state.devices
            ],
        }

    async def _state(self, user_id: str) -> "_State | None":
        info = await self._api.get_userinfo_by_id(user_id)
        if info is None:
            return None
        now = self._clock_ms()
        session_ms = self._config.sessions.inactive_logout_after_ms
        known = [
            policy.DeviceActivity(*row) for row in await devices.list_devices(self._run, user_id)
        ]
        recorded = [
            t
            for t in (
                await self._store.user_last_active(user_id),
                self._tracker.pending_ts(user_id),
            )
            if t is not None
        ]
        last_active = policy.last_active_ts(
            max(recorded) if recorded else None,
            info.creation_ts * 1000 if info.creation_ts else None,
            known,
        )
        holds = await self._holds.active_holds()
        sessions_apply = not (
            info.is_deactivated
            or info.appservice_id is not None
            or holds.covers(user_id, None)
            or self._exemptions.from_sessions(user_id)
        )
        account_held = holds.covers(user_id, None) or bool(
            await accounts.members_of_rooms(self._run, [user_id], holds.room_ids)
        )
        account_due = None
        if (
            last_active is not None
            and sessions_apply
            and not self._exemptions.from_accounts(user_id)
            and not account_held
        ):
            account_due = policy.account_deletion_due_ts(
                last_active,
                known,
                self._config.accounts.inactive_delete_after_ms,
                session_ms,
                now,
            )
        return _State(now, known, last_active, sessions_apply, account_due, account_held)


@attrs.frozen
class _State:
    """What the report and the warnings read about one user, as of ``now``."""

    now: int
    devices: Sequence[policy.DeviceActivity]
    last_active: int | None
    sessions_apply: bool
    account_due: int | None
    account_held: bool
