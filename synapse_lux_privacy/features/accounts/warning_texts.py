"""The e-mail that warns a user before their account is deleted (R12): texts and layout.

One message per address, every configured language in it (French then English by
default): one subject joined with " / ", one paragraph block per language. Dates
are written YYYY-MM-DD (UTC) so that they read the same in every language.
``notify.texts`` replaces the built-in text of a language.
"""

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import attrs

from synapse_lux_privacy.config import NotifyConfig

# (subject, body) per language; placeholders {user_id}, {date}, {last_active}, {server_name}.
DEFAULT_TEXTS: Mapping[str, tuple[str, str]] = {
    "fr": (
        "Votre compte {user_id} sera supprimé le {date}",
        "Votre compte Luxchat {user_id} n'est plus utilisé depuis le {last_active}."
        " Les comptes qui ne sont plus utilisés sont supprimés : le vôtre le sera le {date},"
        " avec son profil et ses fichiers, et son identifiant ne pourra plus être utilisé.\n\n"
        "Pour garder votre compte, il suffit de vous connecter avant cette date,"
        " depuis n'importe quel appareil.",
    ),
    "en": (
        "Your account {user_id} will be deleted on {date}",
        "Your Luxchat account {user_id} has not been used since {last_active}."
        " Accounts that are no longer used are deleted: yours will be on {date},"
        " with its profile and files, and its ID can never be used again.\n\n"
        "To keep your account, simply sign in before that date, from any device.",
    ),
}


@attrs.frozen
class Message:
    subject: str
    text: str
    html: str


def day(ts_ms: int) -> str:
    """A timestamp as YYYY-MM-DD, UTC."""
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d")


def texts_for(config: NotifyConfig) -> list[tuple[str, str]]:
    """(subject, body) templates in the configured language order."""
    configured = {language: (subject, body) for language, subject, body in config.texts}
    return [configured.get(lang) or DEFAULT_TEXTS[lang] for lang in config.languages]


def compose(
    texts: Sequence[tuple[str, str]],
    user_id: str,
    deletion_ts: int,
    last_active_ts: int,
    server_name: str,
) -> Message:
    """The warning for one account: one subject, the bodies in the configured order."""
    fields = {
        "user_id": user_id,
        "date": day(deletion_ts),
        "last_active": day(last_active_ts),
        "server_name": server_name,
    }
    subjects = [subject.format(**fields) for subject, _ in texts]
    bodies = [body.format(**fields) for _, body in texts]
    paragraphs = [
        "".join(f"<p>{html.escape(p)}</p>" for p in body.split("\n\n")) for body in bodies
    ]
    return Message(
        subject=" / ".join(subjects),
        text="\n\n----\n\n".join(bodies) + "\n",
        html="<html><body>" + "<hr>".join(paragraphs) + "</body></html>",
    )
