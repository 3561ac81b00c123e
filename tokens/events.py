"""Meta webhook payloads → trigger events, and trigger matching. Plain Python, no database.

`KINDS` is the one table of Meta event kinds: per trigger type, whether it opens the 24 h
messaging window, how a flow's trigger config matches it, its dedup key prefix and where
the person's id stands in a delivery (for GDPR erasure). A new kind is a parser (listed in
`ITEM_PARSERS` or `CHANGE_PARSERS`), a row here and its NodeSpec in tokens/nodes.py.

Parsed shapes (Meta Graph API webhooks):
- `object: "instagram"`, `entry[].changes[]` with `field: "comments"` → `instagram.comment`.
- `object: "instagram"`, `entry[].messaging[]` (or `changes[]` with `field: "messages"`,
  Meta's test-console shape) → `instagram.message`, or `instagram.story_mention` when an
  attachment has type `story_mention`.
- `object: "page"`, `entry[].messaging[]` → `messenger.message`.
Ignored: echoes of the account's own messages (`is_echo`), anything the account itself
sent or commented (its own public replies come back as comment webhooks and would loop),
deleted messages, reads, reactions and other fields.

Trigger data (what `{{ trigger.<key> }}` sees; every key is present, None when Meta did
not send it):
    provider        "instagram" or "facebook" (the api_tokens provider)
    account_id      entry[].id: the Instagram account or Page that received the event
    event           "comment", "message" or "story_mention"
    text            the comment or message text
    from_id         the commenter's / sender's scoped id (IGSID or PSID)
    username        the commenter's username (comments only: Meta sends no username for
    from_username   messages); `username` is DESIGN.md's name, `from_username` an alias
    comment_id      the comment (comments)
    parent_id       the parent comment when the comment is a reply (comments)
    message_id      the message `mid` (messages, story mentions)
    media_id        the post or reel commented on; the story replied to (messages)
    media_product_type  FEED, REELS, ... (comments)
    attachments     [{"type", "url"}] (messages, story mentions)
    timestamp       when the person acted, ISO 8601 UTC
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PROVIDER_BY_OBJECT = {"instagram": "instagram", "page": "facebook"}
TRIGGER_KEYS = (
    "provider",
    "account_id",
    "event",
    "text",
    "from_id",
    "username",
    "from_username",
    "comment_id",
    "parent_id",
    "message_id",
    "media_id",
    "media_product_type",
    "attachments",
    "timestamp",
)
MAX_ID_LENGTH = 64
MAX_MID_LENGTH = 240

# Where a person's scoped id stands in a delivery: keys below `entry[]`, the first one a
# list (`messaging[]`, `changes[]`), the rest objects.
ContactPath = tuple[str, ...]
MESSAGING_SENDER: ContactPath = ("messaging", "sender", "id")
CHANGES_SENDER: ContactPath = ("changes", "value", "sender", "id")  # messages in Meta's test-console shape
COMMENT_AUTHOR: ContactPath = ("changes", "value", "from", "id")
# The account's own messages, which Meta echoes back (they start nothing): the person is
# their recipient, and they hold the text sent to them.
ECHO_RECIPIENT_PATHS: tuple[ContactPath, ...] = (
    ("messaging", "recipient", "id"),
    ("changes", "value", "recipient", "id"),
)


@dataclass(frozen=True)
class EventKind:
    trigger_type: str
    provider: str  # the api_tokens provider of the account it arrives on
    # The person wrote to the account: Meta allows messages to them for 24 h from then.
    opens_window: bool
    # What of a flow's trigger config filters it, in order: "media" (media_ids),
    # "keywords" (keywords and match). None: every event of the kind matches.
    match: tuple[str, ...]
    # The dedup key is "<prefix>:<Meta's id of the event>": Meta's retries start nothing twice.
    dedup_prefix: str
    contact_paths: tuple[ContactPath, ...]


KINDS: dict[str, EventKind] = {
    kind.trigger_type: kind
    for kind in (
        EventKind(
            "instagram.comment",
            "instagram",
            opens_window=False,
            match=("media", "keywords"),
            dedup_prefix="comment",
            contact_paths=(COMMENT_AUTHOR,),
        ),
        EventKind(
            "instagram.message",
            "instagram",
            opens_window=True,
            match=("keywords",),
            dedup_prefix="message",
            contact_paths=(MESSAGING_SENDER, CHANGES_SENDER),
        ),
        EventKind(
            "instagram.story_mention",
            "instagram",
            opens_window=True,
            match=(),
            dedup_prefix="message",
            contact_paths=(MESSAGING_SENDER, CHANGES_SENDER),
        ),
        EventKind(
            "messenger.message",
            "facebook",
            opens_window=True,
            match=("keywords",),
            dedup_prefix="message",
            contact_paths=(MESSAGING_SENDER,),
        ),
    )
}


def contact_paths() -> tuple[ContactPath, ...]:
    """Every place a delivery can carry the id of the person who acted, once each."""
    return tuple(dict.fromkeys(path for kind in KINDS.values() for path in kind.contact_paths))


def contact_providers() -> dict[str, str]:
    """How `gdpr_purge --contact` names a person's platform ("instagram", "messenger"): the
    trigger types' prefix, mapped to the token provider."""
    return {kind.trigger_type.partition(".")[0]: kind.provider for kind in KINDS.values()}


def payload_containing(path: ContactPath, contact_id: str) -> dict:
    """The JSON containment (`payload @> ...`) of a delivery carrying contact_id at path."""
    inner: Any = contact_id
    for key in reversed(path[1:]):
        inner = {key: inner}
    return {"entry": [{path[0]: [inner]}]}


@dataclass(frozen=True)
class Event:
    kind: EventKind
    account_id: str
    dedup_key: str
    contact_id: str
    occurred_at: datetime | None
    data: dict[str, Any]

    @property
    def provider(self) -> str:
        return self.kind.provider

    @property
    def trigger_type(self) -> str:
        return self.kind.trigger_type

    @property
    def opens_window(self) -> bool:
        return self.kind.opens_window


def _event(trigger_type: str, account_id: str, meta_id: str, contact_id: str, occurred_at, data: dict) -> Event:
    kind = KINDS[trigger_type]
    return Event(kind, account_id, f"{kind.dedup_prefix}:{meta_id}", contact_id, occurred_at, data)


def _id(value: Any) -> str | None:
    """Meta ids are numeric strings (comment ids may contain `_`); anything else is dropped."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH:
        return value
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _moment(value: Any, *, millis: bool) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    seconds = value / 1000 if millis else value
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _data(provider: str, account_id: str, event: str, occurred_at: datetime | None, **values: Any) -> dict:
    data = dict.fromkeys(TRIGGER_KEYS)
    data.update(provider=provider, account_id=account_id, event=event, timestamp=_iso(occurred_at), **values)
    data["from_username"] = data["username"]
    return data


def _comment(provider: str, account_id: str, value: dict, entry_time: datetime | None) -> Event | None:
    comment_id = _id(value.get("id"))
    sender = _dict(value.get("from"))
    from_id = _id(sender.get("id"))
    if comment_id is None or from_id is None or from_id == account_id:
        return None
    media = _dict(value.get("media"))
    data = _data(
        provider,
        account_id,
        "comment",
        entry_time,
        text=_text(value.get("text")),
        from_id=from_id,
        username=_text(sender.get("username")),
        comment_id=comment_id,
        parent_id=_id(value.get("parent_id")),
        media_id=_id(media.get("id")),
        media_product_type=_text(media.get("media_product_type")),
    )
    return _event("instagram.comment", account_id, comment_id, from_id, entry_time, data)


def _message(provider: str, account_id: str, item: dict, entry_time: datetime | None) -> Event | None:
    message = _dict(item.get("message"))
    if not message or message.get("is_echo") or message.get("is_deleted") or message.get("is_unsupported"):
        return None
    mid = message.get("mid")
    # A mid is a long opaque string; the dedup key (255 chars) must hold it with its prefix.
    if not isinstance(mid, str) or not 0 < len(mid) <= MAX_MID_LENGTH:
        mid = None
    from_id = _id(_dict(item.get("sender")).get("id"))
    if mid is None or from_id is None or from_id == account_id:
        return None
    attachments = [
        {"type": _text(a.get("type")), "url": _text(_dict(a.get("payload")).get("url"))}
        for a in _list(message.get("attachments"))
        if isinstance(a, dict)
    ]
    occurred_at = _moment(item.get("timestamp"), millis=True)
    story = _dict(_dict(message.get("reply_to")).get("story"))
    if provider == "facebook":
        trigger_type, event = "messenger.message", "message"
    elif any(a["type"] == "story_mention" for a in attachments):
        trigger_type, event = "instagram.story_mention", "story_mention"
    else:
        trigger_type, event = "instagram.message", "message"
    data = _data(
        provider,
        account_id,
        event,
        occurred_at,
        text=_text(message.get("text")),
        from_id=from_id,
        message_id=mid,
        media_id=_id(story.get("id")),
        attachments=attachments,
    )
    return _event(trigger_type, account_id, mid, from_id, occurred_at, data)


# What reads each part of an entry: its `messaging[]` items, and its `changes[]` by
# (provider, field). A parser returns None for what it does not take.
ITEM_PARSERS = (_message,)
CHANGE_PARSERS = {("instagram", "comments"): _comment, ("instagram", "messages"): _message}


def parse(payload: Any) -> list[Event]:
    """Every event of a delivery that could trigger a flow, in delivery order."""
    payload = _dict(payload)
    provider = PROVIDER_BY_OBJECT.get(payload.get("object"))
    if provider is None:
        return []
    events: list[Event | None] = []
    for entry in _list(payload.get("entry")):
        entry = _dict(entry)
        account_id = _id(entry.get("id"))
        if account_id is None:
            continue
        entry_time = _moment(entry.get("time"), millis=False)
        for item in _list(entry.get("messaging")):
            for item_parser in ITEM_PARSERS:
                event = item_parser(provider, account_id, _dict(item), entry_time)
                if event is not None:
                    events.append(event)
                    break
        for change in _list(entry.get("changes")):
            change = _dict(change)
            change_parser = CHANGE_PARSERS.get((provider, change.get("field")))
            if change_parser is not None:
                events.append(change_parser(provider, account_id, _dict(change.get("value")), entry_time))
    return [event for event in events if event is not None]


# --- Matching ---------------------------------------------------------------------------

_EDGES = re.compile(r"^[\W_]+|[\W_]+$")
_SPACES = re.compile(r"\s+")


def _normalize(text: str) -> str:
    return _SPACES.sub(" ", text.casefold()).strip()


def _contains_phrase(text: str, phrase: str) -> bool:
    """Whole-word (or whole-phrase) containment: "price" matches "Price?" but not "priceless"."""
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


def keywords_match(text: str | None, keywords: list[str], mode: str = "any") -> bool:
    """Case-insensitive keyword matching for trigger configs.

    any: one keyword appears as a word or phrase; all: every keyword does; exact: the whole
    text equals a keyword, ignoring case, extra spaces and surrounding punctuation
    ("Price!" equals "price"). No keywords match every event, including one without text.
    """
    wanted = [_normalize(k) for k in keywords if isinstance(k, str) and k.strip()]
    if not wanted:
        return True
    if not text:
        return False
    normalized = _normalize(text)
    if mode == "exact":
        bare = _EDGES.sub("", normalized)
        return any(normalized == k or bare == _EDGES.sub("", k) for k in wanted)
    if mode == "all":
        return all(_contains_phrase(normalized, k) for k in wanted)
    return any(_contains_phrase(normalized, k) for k in wanted)


def _media_matches(config: dict, event: Event) -> bool:
    media_ids = config.get("media_ids") or []
    return not media_ids or event.data.get("media_id") in media_ids


def _keywords_match(config: dict, event: Event) -> bool:
    return keywords_match(event.data.get("text"), config.get("keywords") or [], config.get("match") or "any")


MATCHERS = {"media": _media_matches, "keywords": _keywords_match}


def trigger_matches(trigger_config: dict, event: Event) -> bool:
    """Whether a flow's trigger node config accepts the event (same type already checked)."""
    config = trigger_config if isinstance(trigger_config, dict) else {}
    return all(MATCHERS[name](config, event) for name in event.kind.match)
