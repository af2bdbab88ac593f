"""Synapse internals the directory feature needs (R10).

The clock: Synapse's ``cached`` decorator (exported by ``synapse.module_api``)
builds its cache from the ``clock`` attribute of the object it decorates, and the
module API does not hand its clock out.

Search visibility: a local user without consent is kept out of Synapse's search
table, ``user_directory_search``, so that a search never sees them: neither its
results nor its ``limited`` flag (computed by Synapse from a ``LIMIT n + 1`` query
before any module callback runs; a ``check_username_for_spam`` filter drops results
after that and leaks the hidden user through ``limited``). Synapse writes that table
in one place, ``UserDirectoryStore._update_profiles_in_user_dir_txn`` (profile
changes, joins, the user directory rebuild); ``keep_hidden_users_out`` wraps it so
that the same transaction takes the hidden users back out, reading the module's
``lux_privacy_directory_consent``. The ``user_directory`` row (profile) and the
room-sharing tables stay as Synapse keeps them, so a user who consents is put back
by Synapse's own ``update_profile_in_user_dir``. Synapse offers no module hook for
this; the hand-written SQL is a DELETE on ``user_directory_search`` by user ID, as
Synapse's own ``remove_from_user_dir`` does.
"""

from collections.abc import Callable, Sequence
from typing import Any

from synapse.module_api import ModuleApi
from synapse.util.clock import Clock

from synapse_lux_privacy.db import Cursor, DbRunner, placeholders

_CHUNK = 500
_CONSENTING = "SELECT user_id FROM lux_privacy_directory_consent WHERE consent = ?"
_WRAPPED = "_lux_privacy_keeps_hidden_users_out"


def homeserver_clock(api: ModuleApi) -> Clock:
    """The homeserver's clock (``HomeServer.get_clock``), for module-level ``@cached`` caches."""
    return api._hs.get_clock()


def keep_hidden_users_out(api: ModuleApi) -> None:
    """R10: from now on, every write of Synapse's search table leaves hidden users out.

    Call once the module's consent table exists (the wrapper reads it). Idempotent.
    """
    store = api._hs.get_datastores().main
    original: Callable[[Any, Sequence[Any]], None] = store._update_profiles_in_user_dir_txn
    if getattr(original, _WRAPPED, False):
        return

    def update_profiles_txn(txn: Any, profiles: Sequence[Any]) -> None:
        original(txn, profiles)
        local = [p.user_id for p in profiles if api.is_mine(p.user_id)]
        if local:
            _remove_hidden_txn(txn, local)

    setattr(update_profiles_txn, _WRAPPED, True)
    store._update_profiles_in_user_dir_txn = update_profiles_txn  # type: ignore[method-assign]


def _remove_hidden_txn(cur: Cursor, user_ids: Sequence[str]) -> None:
    """Delete the search rows of those of ``user_ids`` who have not consented.

    The consent is read first (by primary key), so that a consenting user costs no
    DELETE: on SQLite the search table is a full-text table that a DELETE by user ID
    scans.
    """
    for start in range(0, len(user_ids), _CHUNK):
        chunk = list(user_ids[start : start + _CHUNK])
        cur.execute(f"{_CONSENTING} AND user_id IN ({placeholders(chunk)})", (True, *chunk))
        consenting = {str(row[0]) for row in cur.fetchall()}
        hidden = [user_id for user_id in chunk if user_id not in consenting]
        if hidden:
            cur.execute(
                f"DELETE FROM user_directory_search WHERE user_id IN ({placeholders(hidden)})",
                hidden,
            )


async def hide(run: DbRunner, user_id: str) -> None:
    """R10: take a local user who has just withdrawn consent out of the search."""
    await run("lux_privacy_directory_hide", _remove_hidden_txn, [user_id])


async def show(api: ModuleApi, run: DbRunner, user_id: str) -> None:
    """R10: put a user who has just consented back into the search, if Synapse lists them.

    Synapse's ``user_directory`` row holds the profile it indexes; a user without one
    (deactivated, application service, not yet indexed) is left to Synapse.
    """

    def txn(cur: Cursor) -> tuple[Any, ...] | None:
        cur.execute(
            "SELECT display_name, avatar_url FROM user_directory WHERE user_id = ?", (user_id,)
        )
        return cur.fetchone()

    row = await run("lux_privacy_directory_profile", txn)
    if row is not None:
        store = api._hs.get_datastores().main
        await store.update_profile_in_user_dir(user_id, row[0], row[1])


async def reconcile(api: ModuleApi, run: DbRunner, require_consent: bool) -> tuple[int, int]:
    """R10: make the search table agree with consent; return (hidden, shown) counts.

    Run at start-up: hides local users indexed before the module (or while it was
    off), and puts back those hidden while ``require_consent`` was on, when it is off
    now or they consent. Reads the search table once (a full scan: on SQLite it is a
    full-text table without a usable index on ``user_id``).
    """

    def txn(cur: Cursor) -> tuple[list[str], list[tuple[str, Any, Any]]]:
        cur.execute("SELECT user_id FROM user_directory_search", ())
        searchable = {str(row[0]) for row in cur.fetchall()}
        cur.execute(_CONSENTING, (True,))
        consenting = {str(row[0]) for row in cur.fetchall()}
        cur.execute(
            "SELECT d.user_id, d.display_name, d.avatar_url FROM user_directory AS d"
            " JOIN users AS u ON u.name = d.user_id",
            (),
        )
        local = [(str(r[0]), r[1], r[2]) for r in cur.fetchall()]
        visible = {u for u, _, _ in local if not require_consent or u in consenting}
        hidden = [u for u, _, _ in local if u in searchable and u not in visible]
        if require_consent:
            _remove_hidden_txn(cur, hidden)
        return hidden, [p for p in local if p[0] in visible and p[0] not in searchable]

    hidden, missing = await run("lux_privacy_directory_reconcile", txn)
    store = api._hs.get_datastores().main
    for user_id, display_name, avatar_url in missing:
        await store.update_profile_in_user_dir(user_id, display_name, avatar_url)
    return len(hidden), len(missing)
