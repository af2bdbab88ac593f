"""R10: a local user without consent never enters user directory search.

With ``require_consent`` the user is kept out of Synapse's search table itself
(``synapse_adapter.directory``), so that a search answers exactly as if the user did
not exist: the same results and the same ``limited`` flag as a term matching nobody,
whatever the term and the limit. A consent given puts the user back; a withdrawal
takes them out at once, for every worker (they all read the same table).
"""

import logging

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import DbRunner
from synapse_lux_privacy.synapse_adapter import directory

logger = logging.getLogger(__name__)


class SearchVisibility:
    """Keeps Synapse's user directory search in step with consent."""

    def __init__(self, api: ModuleApi, run: DbRunner, require_consent: bool) -> None:
        self._api = api
        self._run = run
        self._require_consent = require_consent

    async def start(self) -> None:
        """Wrap Synapse's search-table writer; where background tasks run, reconcile.

        Call after the module's tables exist. Without ``require_consent`` only the
        reconciliation runs: it puts back users hidden while it was on. A failure is
        logged, not raised, so that the other features still start.
        """
        try:
            if self._require_consent:
                directory.keep_hidden_users_out(self._api)
            if self._api.should_run_background_tasks():
                await self._reconcile()
        except Exception:
            logger.error(
                "lux_privacy: could not keep users without consent out of user directory"
                " search (R10)",
                exc_info=True,
            )

    async def _reconcile(self) -> None:
        hidden, shown = await directory.reconcile(self._api, self._run, self._require_consent)
        if hidden or shown:
            logger.info(
                "lux_privacy: user directory search: %d users hidden, %d put back (R10)",
                hidden,
                shown,
            )

    async def consent_changed(self, user_id: str, consent: bool) -> None:
        """Show a user who consents, hide one who withdraws (with ``require_consent``)."""
        if not self._require_consent or not self._api.is_mine(user_id):
            return
        if consent:
            await directory.show(self._api, self._run, user_id)
        else:
            await directory.hide(self._run, user_id)
