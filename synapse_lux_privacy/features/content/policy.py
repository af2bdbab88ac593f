"""How long each kind of content lives (R1, R2, R5, R6): pure functions of the configuration.

Three clocks, all counted from when the content was sent, uploaded or cached:

- an event's *row* lifetime (R1, R3): the first ``retention.rules`` entry matching
  its type and msgtype, else ``retention.messages``. When it is up, the event is
  purged from the database (or, where Synapse's purge cannot reach it, expunged);
- an attachment event's *content* lifetime (R2): attachment events sent in clear
  (``m.sticker``, ``m.room.message`` with msgtype m.image, m.video, m.audio or
  m.file) lose their content after the first matching rule's lifetime, else
  ``retention.attachments``;
- a media file's lifetime: the first rule matching its content type, else
  ``retention.attachments`` (local uploads, R2) or ``retention.remote_media``
  (cached copies of other servers' media, R6).

An encrypted event is an ``m.room.encrypted`` to the server, whatever it carries:
it follows the row lifetime only, while the file it points to follows R2.
"""

from collections.abc import Iterable

import attrs

from synapse_lux_privacy.config import RetentionConfig

STICKER = "m.sticker"
MESSAGE = "m.room.message"
ATTACHMENT_MSGTYPES = frozenset({"m.image", "m.video", "m.audio", "m.file"})
# The event types that can be attachments in clear.
ATTACHMENT_TYPES = (MESSAGE, STICKER)


def is_attachment(event_type: str, msgtype: str | None) -> bool:
    """Whether an event sent in clear is an attachment (R2)."""
    return event_type == STICKER or (event_type == MESSAGE and msgtype in ATTACHMENT_MSGTYPES)


def due(ts: int, lifetime_ms: int, as_of_ms: int) -> bool:
    """Content sent at ``ts`` is due once ``lifetime_ms`` has fully passed by ``as_of_ms``."""
    return ts + lifetime_ms <= as_of_ms


def sent_before(as_of_ms: int, lifetime_ms: int) -> int:
    """The bound for SQL: ``ts < sent_before(a, l)`` exactly when ``due(ts, l, a)``."""
    return as_of_ms - lifetime_ms + 1


@attrs.frozen
class ContentPolicy:
    retention: RetentionConfig

    def _event_rule(self, event_type: str, msgtype: str | None) -> int | None:
        for rule in self.retention.rules:
            if rule.match.matches_event(event_type, msgtype):
                return rule.lifetime_ms
        return None

    def _media_rule(self, media_type: str) -> int | None:
        for rule in self.retention.rules:
            if rule.match.matches_media(media_type):
                return rule.lifetime_ms
        return None

    def _event_rule_lifetimes(self) -> Iterable[int]:
        return (r.lifetime_ms for r in self.retention.rules if r.match.names_events)

    def _media_rule_lifetimes(self) -> Iterable[int]:
        return (r.lifetime_ms for r in self.retention.rules if r.match.media_type is not None)

    def row_lifetime(self, event_type: str, msgtype: str | None) -> int:
        """R1/R3: when the event itself goes."""
        return self.retention.event_lifetime_ms(event_type, msgtype)

    def attachment_lifetime(self, event_type: str, msgtype: str | None) -> int:
        """R2: when an attachment event sent in clear loses its content."""
        rule = self._event_rule(event_type, msgtype)
        return self.retention.attachments_ms if rule is None else rule

    def local_media_lifetime(self, media_type: str) -> int:
        """R2: when a local upload goes, counted from upload."""
        return self.retention.media_lifetime_ms(media_type)

    def remote_media_lifetime(self, media_type: str) -> int:
        """R2, R6: when a cached copy of remote media goes, counted from caching."""
        rule = self._media_rule(media_type)
        return self.retention.remote_media_ms if rule is None else rule

    def row_lifetimes(self) -> set[int]:
        """Every lifetime an event's row may have (R1, R3), and maybe more: the scan
        marks' time windows (``scan_marks.changes``)."""
        return {self.retention.messages_ms, *(r.lifetime_ms for r in self.retention.rules)}

    def attachment_lifetimes(self) -> set[int]:
        """Every lifetime an attachment event's content may have (R2), and maybe more."""
        return {self.retention.attachments_ms, *(r.lifetime_ms for r in self.retention.rules)}

    def shortest_row_lifetime(self) -> int:
        return self.retention.shortest_event_lifetime_ms()

    def shortest_attachment_lifetime(self) -> int:
        return min([self.retention.attachments_ms, *self._event_rule_lifetimes()])

    def shortest_local_media_lifetime(self) -> int:
        return min([self.retention.attachments_ms, *self._media_rule_lifetimes()])

    def shortest_remote_media_lifetime(self) -> int:
        return min([self.retention.remote_media_ms, *self._media_rule_lifetimes()])

    def row_due(self, event_type: str, msgtype: str | None, ts: int, as_of_ms: int) -> bool:
        return due(ts, self.row_lifetime(event_type, msgtype), as_of_ms)

    def row_purgeable(self, event_type: str, msgtype: str | None, ts: int, as_of_ms: int) -> bool:
        """R1, R3 "at the latest": whether the event may go in a purge that takes an event
        that is due (``row_due``): it falls due within ``retention.purge_window`` (0 by
        default: only what is due). The deadline stays ``row_due``'s; the window only
        lets a room's purge take, at once, what would otherwise need another purge."""
        return self.row_due(event_type, msgtype, ts, as_of_ms + self.retention.purge_window_ms)

    def attachment_due(self, event_type: str, msgtype: str | None, ts: int, as_of_ms: int) -> bool:
        """Due for the attachments rule: an attachment past its content lifetime whose row
        is not yet due (a row that is due is the messages rule's, which runs first)."""
        return (
            is_attachment(event_type, msgtype)
            and due(ts, self.attachment_lifetime(event_type, msgtype), as_of_ms)
            and not self.row_due(event_type, msgtype, ts, as_of_ms)
        )

    def next_event_deletion(self, event_type: str, msgtype: str | None, ts: int) -> int:
        """When an event first loses something: its content (R2) or its row (R1)."""
        lifetime = self.row_lifetime(event_type, msgtype)
        if is_attachment(event_type, msgtype):
            lifetime = min(lifetime, self.attachment_lifetime(event_type, msgtype))
        return ts + lifetime
