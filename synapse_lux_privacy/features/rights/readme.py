"""``README.txt`` of a data-subject export (R14, GDPR art. 15): in French, then in
English, what each file holds and when each category is deleted, from the module's
configuration (R1, R2, R9, R11, R12). It never mentions legal holds (R13): a hold is
never revealed to the person it concerns.
"""

import time

from synapse_lux_privacy.config import LuxPrivacyConfig
from synapse_lux_privacy.units import format_duration


def _date(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


def readme_text(config: LuxPrivacyConfig, user_id: str, made_ts: int) -> str:
    """The README of one user's archive."""
    keep = {
        "messages": format_duration(config.retention.messages_ms),
        "attachments": format_duration(config.retention.attachments_ms),
        "ips": format_duration(config.logs.ip_retention_ms),
        "sessions": format_duration(config.sessions.inactive_logout_after_ms),
        "account": format_duration(config.accounts.inactive_delete_after_ms),
        "archive": format_duration(config.exports.retention_ms),
    }
    made = _date(made_ts)
    return (
        _FR.format(user_id=user_id, made=made, **keep)
        + "\n\n"
        + _EN.format(user_id=user_id, made=made, **keep)
    )


# Durations use the configuration's units: M = months (30 days), y = years, d = days.
_FR = """\
COPIE DE VOS DONNÉES (RGPD, article 15)
=======================================
Compte : {user_id}
Archive faite le : {made}. Elle sera effacée du serveur {archive} après.

Fichiers
--------
report.json    Ce que le serveur garde sur vous, par catégorie, et combien.
profile.json   Votre profil (nom affiché, avatar).
account.json   Votre compte : adresses e-mail et numéros (threepids), vos
               consentements (conditions d'utilisation, annuaire), les
               avertissements de suppression envoyés.
sessions.json  Vos sessions (appareils) et les adresses IP et logiciels
               (user agents) que le serveur garde encore.
rooms.json     Vos appartenances aux salons (rejoint, quitté, invité...).
messages/      Un fichier par salon : les messages que vous avez envoyés, tels
               que votre application les reçoit. Dans un salon chiffré, les
               messages sont chiffrés (« m.room.encrypted », champ ciphertext) :
               le serveur n'a pas les clés, qui ne sont que sur vos appareils.
               Un message supprimé (« redacted ») n'a plus de contenu.
media/         Les fichiers que vous avez envoyés, octet pour octet ;
media.json     leur liste (nom, type, taille, date, empreinte SHA-256).

Ce que cette archive ne peut pas contenir
-----------------------------------------
- Les clés de chiffrement de vos salons chiffrés : elles ne sont que sur vos
  appareils (et dans votre sauvegarde de clés chiffrée).
- Les copies de vos messages sur les autres serveurs des salons partagés avec
  eux : chacun applique ses propres règles.
- Les messages des autres personnes.

Quand vos données sont effacées
-------------------------------
Messages : au plus tard {messages} après leur envoi.
Fichiers : au plus tard {attachments} après leur envoi.
Adresses IP et logiciels : après {ips}.
Sessions : fermées après {sessions} sans activité.
Compte : supprimé {account} après votre dernière activité.
(M = mois de 30 jours, y = ans, d = jours.)"""

_EN = """\
A COPY OF YOUR DATA (GDPR, article 15)
======================================
Account: {user_id}
Archive made on: {made}. It will be deleted from the server {archive} later.

Files
-----
report.json    What the server keeps about you, by category, and how much.
profile.json   Your profile (display name, avatar).
account.json   Your account: e-mail addresses and phone numbers (threepids),
               your consents (terms of use, directory), the deletion warnings
               sent to you.
sessions.json  Your sessions (devices) and the IP addresses and user agents
               the server still keeps.
rooms.json     Your room memberships (joined, left, invited...).
messages/      One file per room: the messages you sent, as your app receives
               them. In an encrypted room, messages are ciphertext
               ("m.room.encrypted", ciphertext field): the server has no keys,
               they are only on your devices. A redacted message has no content.
media/         The files you uploaded, byte for byte;
media.json     their list (name, type, size, date, SHA-256 digest).

What this archive cannot contain
--------------------------------
- The keys of your encrypted rooms: they are only on your devices (and in your
  encrypted key backup).
- The copies of your messages on the other servers of rooms shared with them:
  each follows its own rules.
- Other people's messages.

When your data is deleted
-------------------------
Messages: at the latest {messages} after they were sent.
Files: at the latest {attachments} after they were uploaded.
IP addresses and user agents: after {ips}.
Sessions: logged out after {sessions} without activity.
Account: deleted {account} after your last activity.
(M = months of 30 days, y = years, d = days.)"""
