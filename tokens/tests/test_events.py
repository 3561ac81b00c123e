"""Payload parsing and trigger matching: plain Python, no database."""

from __future__ import annotations

import pytest

from tokens import events
from tokens.tests.meta import IG_ACCOUNT, PAGE_ID, comment_payload, message_payload


def test_a_comment_becomes_an_instagram_comment_event():
    [event] = events.parse(comment_payload("Price?", comment_id="1790001", time_s=1_760_000_000))
    assert event.trigger_type == "instagram.comment"
    assert event.dedup_key == "comment:1790001"
    assert event.contact_id == "5550001"
    assert not event.opens_window
    assert event.data == {
        "provider": "instagram",
        "account_id": IG_ACCOUNT,
        "event": "comment",
        "text": "Price?",
        "from_id": "5550001",
        "username": "jane.doe",
        "from_username": "jane.doe",
        "comment_id": "1790001",
        "parent_id": None,
        "message_id": None,
        "media_id": "18000000000000001",
        "media_product_type": "FEED",
        "attachments": None,
        "timestamp": "2025-10-09T08:53:20Z",
    }


def test_instagram_messages_story_mentions_and_messenger():
    [dm] = events.parse(message_payload("hi", mid="mid.1"))
    assert (dm.trigger_type, dm.dedup_key, dm.data["message_id"], dm.data["from_id"]) == (
        "instagram.message",
        "message:mid.1",
        "mid.1",
        "6660001",
    )
    assert dm.opens_window
    mention = message_payload(None, attachments=[{"type": "story_mention", "payload": {"url": "https://cdn/x"}}])
    [story] = events.parse(mention)
    assert story.trigger_type == "instagram.story_mention"
    assert story.data["attachments"] == [{"type": "story_mention", "url": "https://cdn/x"}]
    [page] = events.parse(message_payload("hello page", account_id=PAGE_ID, meta_object="page"))
    assert (page.provider, page.trigger_type, page.account_id) == ("facebook", "messenger.message", PAGE_ID)


def test_the_test_console_shape_of_instagram_messages_is_understood():
    payload = {
        "object": "instagram",
        "entry": [
            {
                "id": IG_ACCOUNT,
                "time": 1,
                "changes": [
                    {
                        "field": "messages",
                        "value": {"sender": {"id": "12"}, "timestamp": 1, "message": {"mid": "abc", "text": "yo"}},
                    }
                ],
            }
        ],
    }
    [event] = events.parse(payload)
    assert (event.trigger_type, event.data["text"]) == ("instagram.message", "yo")


@pytest.mark.parametrize(
    "payload",
    [
        message_payload("sent by us", echo=True),
        message_payload("from myself", sender=IG_ACCOUNT),
        comment_payload("our own public reply", from_id=IG_ACCOUNT),
        {"object": "instagram", "entry": [{"id": IG_ACCOUNT, "messaging": [{"sender": {"id": "1"}, "read": {}}]}]},
        {"object": "instagram", "entry": [{"id": IG_ACCOUNT, "changes": [{"field": "mentions", "value": {}}]}]},
        {"object": "user", "entry": [{"id": "1"}]},
        {"object": "instagram", "entry": "not a list"},
        {"object": "instagram", "entry": [None, 3, {"id": {"nested": 1}}, {"id": "1", "messaging": [None]}]},
        [],
        None,
    ],
)
def test_echoes_own_actions_other_fields_and_junk_are_ignored(payload):
    assert events.parse(payload) == []


def test_an_oversized_mid_is_ignored_instead_of_breaking_the_dedup_key():
    assert events.parse(message_payload("hi", mid="x" * 241)) == []


@pytest.mark.parametrize(
    ("text", "keywords", "mode", "expected"),
    [
        ("What's the PRICE?", ["price"], "any", True),
        ("priceless", ["price"], "any", False),
        ("how much is shipping", ["price", "shipping"], "any", True),
        ("price and shipping please", ["price", "shipping"], "all", True),
        ("price please", ["price", "shipping"], "all", False),
        ("  Price!  ", ["price"], "exact", True),
        ("the price", ["price"], "exact", False),
        ("Send   me info", ["send me info"], "any", True),
        ("ÇA COÛTE", ["ça coûte"], "any", True),
        ("anything", [], "any", True),
        (None, [], "any", True),
        (None, ["price"], "any", False),
        ("I ❤️ it", ["❤️"], "any", True),
    ],
)
def test_keyword_matching(text, keywords, mode, expected):
    assert events.keywords_match(text, keywords, mode) is expected


def test_media_ids_limit_comment_triggers():
    [event] = events.parse(comment_payload("price", media_id="18000000000000001"))
    assert events.trigger_matches({"keywords": ["price"], "media_ids": ["18000000000000001"]}, event)
    assert not events.trigger_matches({"keywords": ["price"], "media_ids": ["18000000000000002"]}, event)
    assert events.trigger_matches({}, event)


def test_one_row_per_meta_trigger_spec():
    from tokens.nodes import NODE_TYPES

    assert set(events.KINDS) == {spec.type for spec in NODE_TYPES if spec.trigger}
    for kind in events.KINDS.values():
        assert set(kind.match) <= set(events.MATCHERS), kind
        assert kind.contact_paths, kind
    assert events.contact_providers() == {"instagram": "instagram", "messenger": "facebook"}


def test_a_new_kind_is_one_parser_and_one_row(monkeypatch):
    """A made-up kind (a button tap) goes through parsing, dedup, window and matching."""

    def tap(provider, account_id, item, entry_time):
        postback = item.get("postback")
        if not isinstance(postback, dict):
            return None
        sender = item["sender"]["id"]
        data = events._data(provider, account_id, "tap", entry_time, from_id=sender, text=postback["title"])
        return events._event("instagram.tap", account_id, postback["mid"], sender, entry_time, data)

    row = events.EventKind(
        "instagram.tap",
        "instagram",
        opens_window=True,
        match=("keywords",),
        dedup_prefix="tap",
        contact_paths=(events.MESSAGING_SENDER,),
    )
    monkeypatch.setitem(events.KINDS, "instagram.tap", row)
    monkeypatch.setattr(events, "ITEM_PARSERS", (*events.ITEM_PARSERS, tap))
    item = {"sender": {"id": "6660009"}, "postback": {"mid": "m.9", "title": "Yes please"}}
    [event] = events.parse({"object": "instagram", "entry": [{"id": IG_ACCOUNT, "messaging": [item]}]})
    assert (event.trigger_type, event.dedup_key, event.contact_id, event.opens_window) == (
        "instagram.tap",
        "tap:m.9",
        "6660009",
        True,
    )
    assert events.trigger_matches({"keywords": ["yes"]}, event)
    assert not events.trigger_matches({"keywords": ["no"]}, event)
