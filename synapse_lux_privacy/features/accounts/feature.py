"""Sessions, accounts, profile erasure and IP logs (R7, R8, R9, R11, R12) as one Feature."""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from synapse_lux_privacy import synapse_adapter
from synapse_lux_privacy.admin_api.resource import Route
from synapse_lux_privacy.feature import Feature, ModuleContext
from synapse_lux_privacy.features.accounts.accounts_rule import AccountsRule
from synapse_lux_privacy.features.accounts.activity_store import ActivityStore
from synapse_lux_privacy.features.accounts.deactivation import DeactivationHandler
from synapse_lux_privacy.features.accounts.deletion_marks import DeletionMarks
from synapse_lux_privacy.features.accounts.erasure import AccountEraser
from synapse_lux_privacy.features.accounts.ip_logs_rule import IpLogsRule
from synapse_lux_privacy.features.accounts.policy import Exemptions
from synapse_lux_privacy.features.accounts.report import AccountsReport
from synapse_lux_privacy.features.accounts.schema import ACCOUNTS_MIGRATIONS
from synapse_lux_privacy.features.accounts.sessions_rule import SessionsRule
from synapse_lux_privacy.features.accounts.tracker import FLUSH_INTERVAL_MS, ActivityTracker
from synapse_lux_privacy.features.accounts.warning_store import WarningStore
from synapse_lux_privacy.features.accounts.warnings import AccountWarnings
from synapse_lux_privacy.features.accounts.warnings_endpoint import WarningsEndpoint
from synapse_lux_privacy.sweep.rule import Rule
from synapse_lux_privacy.synapse_adapter import accounts, devices

logger = logging.getLogger(__name__)


class AccountsFeature(Feature):
    """The activity record, the rules built on it and the deactivation callback."""

    migrations = ACCOUNTS_MIGRATIONS

    def __init__(self, ctx: ModuleContext) -> None:
        api, config = ctx.api, ctx.config
        self._ctx = ctx
        self._dialect = synapse_adapter.database_dialect(api)
        self._clock_ms = api.get_current_time_msec
        self._started = False
        self._store = ActivityStore(ctx.db)
        self.tracker = ActivityTracker(
            self._store,
            self._clock_ms,
            lambda user_id: accounts.is_own_request(user_id) and api.is_mine(user_id),
        )
        self._exemptions = exemptions = Exemptions(
            config.accounts,
            accounts.server_notices_user(api),
            accounts.appservice_checker(api),
        )
        marks = DeletionMarks(ctx.db)
        # The R12 deletion chain, for the accounts rule and erasure on request (R14).
        self.eraser = AccountEraser(api, ctx.db, self._store, marks)
        self._deactivation = DeactivationHandler(api, ctx.db, self._store, marks, ctx.holds)
        self._report = AccountsReport(
            api, ctx.db, config, self._store, self.tracker, ctx.holds, exemptions, self._clock_ms
        )
        self._warning_store = WarningStore(ctx.db)
        self._warnings = AccountWarnings(
            api,
            ctx.db,
            self._dialect,
            config,
            self._report,
            self.tracker,
            self._warning_store,
            self._clock_ms,
        )
        self._warnings_endpoint = WarningsEndpoint(
            self._warnings, config.notify.account_deletion_ms, config.dry_run
        )
        self._rules: dict[str, Rule] = {
            "sessions": SessionsRule(
                api,
                ctx.db,
                self._dialect,
                self._store,
                exemptions,
                config.sessions.inactive_logout_after_ms,
                self._clock_ms,
            ),
            "accounts": AccountsRule(
                api,
                ctx.db,
                self._dialect,
                self._store,
                self.eraser,
                self.tracker,
                ctx.holds,
                exemptions,
                config.accounts.inactive_delete_after_ms,
                config.sessions.inactive_logout_after_ms,
            ),
            "ip_logs": IpLogsRule(api, ctx.db, config.logs.ip_retention_ms),
        }

    def rules(self) -> Mapping[str, Rule]:
        return self._rules

    def routes(self) -> Sequence[Route]:
        return self._warnings_endpoint.routes()

    def register_callbacks(self) -> None:
        api = self._ctx.api
        api.register_account_validity_callbacks(
            is_user_expired=self.tracker.is_user_expired,
            on_user_registration=self._on_registration,
            on_user_login=self._on_login,
        )
        api.register_third_party_rules_callbacks(
            check_can_deactivate_user=self._deactivation.before_deactivation,
            on_user_deactivation_status_changed=self._deactivation.on_status_changed,
        )

    async def report(self, user_id: str) -> Mapping[str, Any]:
        """R14: the activity fields, and the deletion warnings e-mailed to the user."""
        fields = dict(await self._report.report(user_id))
        if fields:
            fields["account_deletion_warnings"] = [
                {
                    "lead_ms": w.lead_ms,
                    "sent_ts": w.sent_ts,
                    "deletion_due_ts": w.deletion_due_ts,
                    "addresses": w.addresses,
                }
                for w in await self._warning_store.sent(user_id)
            ]
        return fields

    async def start(self) -> None:
        """Flush activity on every instance; backfill the record where background tasks run."""
        api = self._ctx.api
        api.looping_background_call(
            self.tracker.flush,
            FLUSH_INTERVAL_MS,
            desc="lux_privacy_activity_flush",
            run_on_all_instances=True,
        )
        accounts.on_shutdown(api, "lux_privacy_activity_flush", self.tracker.flush)
        self._started = True
        await self.tracker.flush()  # registrations and logins seen before start-up ended
        if api.should_run_background_tasks():
            await accounts.backfill_user_activity(self._ctx.db, self._dialect)
            await devices.sync_device_activity(self._ctx.db, self._clock_ms())
            if self._warnings.enabled:
                api.looping_background_call(
                    self._warnings.tick,
                    self._ctx.config.sweep_interval_ms,
                    desc="lux_privacy_account_warnings",
                )
            await self._warn_about_admins()

    async def _warn_about_admins(self) -> None:
        """R12, config.md "Exempt lists": say which server admins are not exempt.

        An admin account used only now and then is deleted like any other after a
        year idle; the operator may want it in ``accounts.exempt``.
        """
        admins = await accounts.server_admins(self._ctx.db)
        for user_id in (a for a in admins if not self._exemptions.from_accounts(a)):
            logger.warning(
                "lux_privacy: server admin %s is not in accounts.exempt: like any account,"
                " it is deleted after accounts.inactive_delete_after without activity (R12)",
                user_id,
            )

    async def _on_registration(self, user_id: str) -> None:
        """R12: a new account is active from its registration."""
        self.tracker.record(user_id, self._clock_ms())
        await self._write_now(user_id, None)

    async def _on_login(
        self, user_id: str, auth_provider_type: str | None, auth_provider_id: str | None
    ) -> None:
        """R11, R12: a login is activity; the new device is recorded as first seen now."""
        now = self._clock_ms()
        self.tracker.record(user_id, now)
        await self._write_now(user_id, now)

    async def _write_now(self, user_id: str, devices_seen_at: int | None) -> None:
        """Write at once, once start-up has migrated the tables; never fail a login.

        Before that, or if the write fails, the activity stays queued for the next flush
        (and a new device is recorded by the next sweep).
        """
        if not self._started:
            return
        try:
            await self.tracker.flush()
            if devices_seen_at is not None:
                await devices.sync_device_activity(self._ctx.db, devices_seen_at, user_id)
        except Exception:
            logger.warning(
                "lux_privacy: could not record the activity of %s", user_id, exc_info=True
            )
