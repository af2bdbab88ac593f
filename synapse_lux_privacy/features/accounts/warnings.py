"""E-mail warnings before an R12 deletion (``notify.account_deletion``, beyond the notice).

At each lead time (30 and 7 days by default) before an account's deletion date, one
e-mail goes to each address of the account (Synapse's threepids), through Synapse's
mailer. The deletion date is the one the per-user report (R14) shows
(``AccountsReport.deletion``); the accounts that may be due within the longest lead
time are found with the accounts rule's own query, shifted by that lead time.

A pass sends, per account, the warning of the shortest lead time that the deletion
date falls within, unless it went out after the account's last activity: a login
after a warning starts a new round, and the next warning waits until the account is
idle again for it. Exempt, held, deactivated accounts have no deletion date, so no
warning. A warning already past its deletion date is left to the sweep. A warning is
recorded as sent only once it went out; one claimed by a pass that died while sending
is sent by a later pass (``warning_store.py``): at least once. With the
module's ``dry_run`` the warnings are only counted: no account is deleted.
"""

import logging
from collections import Counter
from collections.abc import Callable

from synapse.module_api import ModuleApi

from synapse_lux_privacy.config import LuxPrivacyConfig
from synapse_lux_privacy.db import DbRunner, Dialect
from synapse_lux_privacy.features.accounts import warning_texts
from synapse_lux_privacy.features.accounts.report import AccountsReport
from synapse_lux_privacy.features.accounts.tracker import ActivityTracker
from synapse_lux_privacy.features.accounts.warning_store import WarningStore
from synapse_lux_privacy.synapse_adapter import accounts

logger = logging.getLogger(__name__)


class AccountWarnings:
    """One pass finds the warnings due now and sends them (or counts them, dry run)."""

    def __init__(
        self,
        api: ModuleApi,
        run: DbRunner,
        dialect: Dialect,
        config: LuxPrivacyConfig,
        report: AccountsReport,
        tracker: ActivityTracker,
        store: WarningStore,
        clock_ms: Callable[[], int],
    ) -> None:
        self._api = api
        self._run = run
        self._dialect = dialect
        self._config = config
        self._report = report
        self._tracker = tracker
        self._store = store
        self._clock_ms = clock_ms
        self._texts = warning_texts.texts_for(config.notify)
        self._busy = False

    @property
    def enabled(self) -> bool:
        """Lead times configured and Synapse's mailer set up."""
        return bool(self._config.notify.account_deletion_ms) and accounts.email_configured(
            self._api
        )

    async def tick(self) -> None:
        """The background pass; never raises (the next pass tries again)."""
        if self._busy:
            return
        self._busy = True
        try:
            await self.run(dry_run=False)
        except Exception:
            logger.exception("lux_privacy: the account deletion warning pass failed (R12)")
        finally:
            self._busy = False

    async def run(self, dry_run: bool) -> tuple[Counter[int], int]:
        """Send (or count) the warnings due now: (per lead time, failed sends).

        With the module's ``dry_run`` nothing is deleted, so nothing is sent either.
        """
        dry_run = dry_run or self._config.dry_run
        done: Counter[int] = Counter()
        failed = 0
        if not self.enabled:
            return done, failed
        await self._tracker.flush()
        now = self._clock_ms()
        leads = self._config.notify.account_deletion_ms
        as_of = now + leads[0]
        batch = self._config.sweep_batch_size
        after: str | None = None
        while True:
            users = await accounts.find_idle_accounts(
                self._run,
                self._dialect,
                as_of - self._config.accounts.inactive_delete_after_ms,
                as_of - self._config.sessions.inactive_logout_after_ms,
                after,
                batch,
            )
            for user_id in users:
                outcome = await self._warn(user_id, now, dry_run)
                if outcome is None:
                    continue
                lead, ok = outcome
                done[lead] += ok
                failed += not ok
            if len(users) < batch:
                return done, failed
            after = users[-1]

    async def _warn(self, user_id: str, now: int, dry_run: bool) -> tuple[int, bool] | None:
        """(lead time, sent) for a warning due; None when none is."""
        deletion = await self._report.deletion(user_id)
        if deletion is None:
            return None
        last_active, due = deletion
        leads = [lead for lead in self._config.notify.account_deletion_ms if due - now <= lead]
        if due <= now or not leads:
            return None
        lead = leads[-1]
        if await self._store.was_sent(user_id, lead, last_active):
            return None
        addresses = [
            t["address"]
            for t in await self._api.get_threepids_for_user(user_id)
            if t["medium"] == "email"
        ]
        if not addresses:
            return None
        if dry_run:
            return lead, True
        if not await self._store.claim(user_id, lead, last_active, now, due, len(addresses)):
            return None
        message = warning_texts.compose(
            self._texts, user_id, due, last_active, self._api.server_name
        )
        sent = 0
        for address in addresses:
            try:
                await self._api.send_mail(address, message.subject, message.html, message.text)
                sent += 1
            except Exception:
                logger.warning(
                    "lux_privacy: could not e-mail the deletion warning of %s (R12)",
                    user_id,
                    exc_info=True,
                )
        if sent == 0:  # nothing went out: the next pass tries again
            await self._store.release(user_id, lead, now)
        else:  # recorded as sent only now: a pass that dies before leaves a claim
            await self._store.delivered(user_id, lead, now)
        return lead, sent > 0
