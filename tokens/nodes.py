"""The Meta nodes: the Instagram and Messenger triggers, and the actions that answer them:
Instagram DMs, private and public comment replies, Messenger messages.

The triggers have no handler: tokens/events.py turns webhook deliveries into their events.

Each handler finds the token of the account that received the triggering event
(`trigger.account_id`, only among the flow owner's tokens), checks Meta's rules *before*
calling, so a refused send is a clear failed step rather than a Graph API error:
- DMs (instagram.send_message, messenger.send_message) only within 24 h of the contact's
  last message to the account (`meta_contact_windows`, written when the webhook is
  processed);
- one private reply per comment, within 7 days of the comment (`meta_private_replies`,
  claimed before the call so two flows cannot both send).
Outputs hold Meta's ids and the text sent; never the token.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from flows.nodes import (
    KEYWORDS,
    MATCH_MODE,
    TEMPLATE_TEXT,
    NodeContext,
    NodeResult,
    NodeSpec,
    PermanentError,
    RetryPolicy,
    TransientError,
    object_schema,
)
from tokens import graph
from tokens.models import MESSAGING_WINDOW, PRIVATE_REPLY_WINDOW, ApiToken, ContactWindow, PrivateReply

PROVIDER_NAMES = dict(ApiToken.Provider.choices)
# Meta's limits on message text; checked after the template is rendered.
INSTAGRAM_MESSAGE_BYTES = 1000
MESSENGER_MESSAGE_CHARS = 2000
COMMENT_CHARS = 2200
# Meta's sends fail in bursts (rate limits, 5xx): a few tries over up to two minutes.
META_SEND_RETRY = RetryPolicy(max_attempts=4, backoff_seconds=2.0, max_backoff_seconds=120.0)
TEXT_CONFIG = object_schema({"text": TEMPLATE_TEXT}, required=("text",))


# --- Triggers ------------------------------------------------------------------------------

INSTAGRAM_COMMENT = NodeSpec(
    type="instagram.comment",
    name="Instagram comment",
    category="trigger",
    description="A comment on one of the account's posts or reels.",
    config_schema=object_schema(
        {
            "keywords": KEYWORDS,
            "match": MATCH_MODE,
            "media_ids": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[0-9_]{1,64}$"},
                "maxItems": 100,
                "description": "Only comments on these posts; empty means all posts.",
            },
        }
    ),
    trigger=True,
)

INSTAGRAM_MESSAGE = NodeSpec(
    type="instagram.message",
    name="Instagram direct message",
    category="trigger",
    description="A direct message to the Instagram account.",
    config_schema=object_schema({"keywords": KEYWORDS, "match": MATCH_MODE}),
    trigger=True,
)

INSTAGRAM_STORY_MENTION = NodeSpec(
    type="instagram.story_mention",
    name="Instagram story mention",
    category="trigger",
    description="Someone mentioned the account in their story.",
    config_schema=object_schema({}),
    trigger=True,
)

MESSENGER_MESSAGE = NodeSpec(
    type="messenger.message",
    name="Messenger message",
    category="trigger",
    description="A message to the Facebook Page.",
    config_schema=object_schema({"keywords": KEYWORDS, "match": MATCH_MODE}),
    trigger=True,
)


# --- Actions -------------------------------------------------------------------------------


def _token(ctx: NodeContext, provider: str) -> ApiToken:
    """The flow owner's token for the account the event arrived on."""
    name = PROVIDER_NAMES[provider]
    trigger_provider = ctx.trigger.get("provider")
    if trigger_provider and trigger_provider != provider:
        raise PermanentError(
            f"This step sends on {name}, but the flow was triggered by a {PROVIDER_NAMES.get(trigger_provider, '?')} "
            "event."
        )
    owned = ApiToken.objects.filter(user_id=ctx.user_id, provider=provider)
    account_id = ctx.trigger.get("account_id")
    if account_id:
        token = owned.filter(account_id=str(account_id)).first()
        missing = f"No {name} account {account_id} is connected to this flow's owner."
    else:
        # A manual run without account_id: fine when the owner has exactly one account.
        candidates = list(owned[:2])
        token = candidates[0] if len(candidates) == 1 else None
        missing = f"The trigger data has no account_id and the owner has {len(candidates) or 'no'} {name} accounts."
    if token is None:
        raise PermanentError(missing)
    if token.status != ApiToken.Status.ACTIVE:
        reason = f" ({token.status_reason})" if token.status_reason else ""
        raise PermanentError(f"{graph.account_label(token)} is {token.status}{reason}; reconnect it.")
    return token


def _required(ctx: NodeContext, key: str, what: str) -> str:
    value = ctx.trigger.get(key)
    if value in (None, ""):
        raise PermanentError(f"The trigger data has no {key} ({what}).")
    return str(value)


def _text(config: dict, *, max_chars: int | None = None, max_bytes: int | None = None) -> str:
    text = config.get("text")
    text = text.strip() if isinstance(text, str) else ""
    if not text:
        raise PermanentError("The text is empty after filling in the template.")
    if max_chars is not None and len(text) > max_chars:
        raise PermanentError(f"The text is {len(text)} characters; Meta allows at most {max_chars}.")
    if max_bytes is not None and len(text.encode()) > max_bytes:
        raise PermanentError(f"The text is {len(text.encode())} bytes in UTF-8; Meta allows at most {max_bytes}.")
    return text


def _check_messaging_window(token: ApiToken, contact_id: str, now: datetime) -> None:
    last = (
        ContactWindow.objects.filter(token=token, contact_id=contact_id)
        .values_list("last_inbound_at", flat=True)
        .first()
    )
    if last is None:
        raise PermanentError(
            f"Outside the 24 h messaging window: contact {contact_id} has never written to account "
            f"{token.account_id}. (Answer a comment with instagram.private_reply instead.)"
        )
    if now - last > MESSAGING_WINDOW:
        raise PermanentError(
            f"Outside the 24 h messaging window: contact {contact_id} last wrote at {last.isoformat()}; "
            "Meta refuses messages after 24 h."
        )


def _timeout(ctx: NodeContext) -> float:
    return max(1.0, ctx.time_left)


def _message_result(body: dict, text: str, recipient: dict) -> NodeResult:
    ids = {"message_id": body.get("message_id"), "recipient_id": body.get("recipient_id")}
    return NodeResult(output={**ids, **recipient, "text": text})


def instagram_send_message(config: dict, ctx: NodeContext) -> NodeResult:
    token = _token(ctx, ApiToken.Provider.INSTAGRAM)
    recipient = _required(ctx, "from_id", "the person to message")
    text = _text(config, max_bytes=INSTAGRAM_MESSAGE_BYTES)
    _check_messaging_window(token, recipient, ctx.now)
    body = graph.post(
        token,
        f"{token.account_id}/messages",
        {"recipient": {"id": recipient}, "message": {"text": text}},
        what="sending the Instagram message",
        timeout=_timeout(ctx),
    )
    return _message_result(body, text, {"to": recipient})


INSTAGRAM_SEND_MESSAGE = NodeSpec(
    type="instagram.send_message",
    name="Send Instagram DM",
    category="action",
    description="Direct message to the person who triggered the flow (24 h messaging window).",
    config_schema=TEXT_CONFIG,
    side_effect=True,
    handler=instagram_send_message,
    retry=META_SEND_RETRY,
)


def messenger_send_message(config: dict, ctx: NodeContext) -> NodeResult:
    token = _token(ctx, ApiToken.Provider.FACEBOOK)
    recipient = _required(ctx, "from_id", "the person to message")
    text = _text(config, max_chars=MESSENGER_MESSAGE_CHARS)
    _check_messaging_window(token, recipient, ctx.now)
    body = graph.post(
        token,
        f"{token.account_id}/messages",
        {"recipient": {"id": recipient}, "messaging_type": "RESPONSE", "message": {"text": text}},
        what="sending the Messenger message",
        timeout=_timeout(ctx),
    )
    return _message_result(body, text, {"to": recipient})


MESSENGER_SEND_MESSAGE = NodeSpec(
    type="messenger.send_message",
    name="Send Messenger message",
    category="action",
    description="A Messenger reply (messaging_type RESPONSE) to the person who wrote to the Page.",
    config_schema=TEXT_CONFIG,
    side_effect=True,
    handler=messenger_send_message,
    retry=META_SEND_RETRY,
)


def _claim_private_reply(token: ApiToken, comment_id: str, ctx: NodeContext) -> PrivateReply:
    claim, created = PrivateReply.objects.get_or_create(
        token=token,
        comment_id=comment_id,
        defaults={
            "contact_id": str(ctx.trigger.get("from_id") or "")[:64],
            "execution_id": ctx.execution_id,
            "node_id": ctx.node_id,
        },
    )
    ours = claim.execution_id == ctx.execution_id and claim.node_id == ctx.node_id
    if not created and not (ours and claim.status == PrivateReply.Status.SENDING):
        when = (claim.sent_at or claim.created_at).isoformat()
        by = f" by execution {claim.execution_id}" if claim.execution_id and not ours else ""
        raise PermanentError(
            f"A private reply to comment {comment_id} was already {claim.status}{by} at {when}; "
            "Meta allows one per comment."
        )
    return claim


def instagram_private_reply(config: dict, ctx: NodeContext) -> NodeResult:
    token = _token(ctx, ApiToken.Provider.INSTAGRAM)
    comment_id = _required(ctx, "comment_id", "the comment to answer")
    text = _text(config, max_bytes=INSTAGRAM_MESSAGE_BYTES)
    commented_at = ctx.trigger.get("timestamp")
    if isinstance(commented_at, str):
        try:
            age = ctx.now - datetime.fromisoformat(commented_at.replace("Z", "+00:00"))
        except ValueError:
            age = None
        if age is not None and age > PRIVATE_REPLY_WINDOW:
            raise PermanentError(
                f"Comment {comment_id} is older than 7 days ({commented_at}); Meta allows private replies "
                "only within 7 days."
            )
    claim = _claim_private_reply(token, comment_id, ctx)
    try:
        body = graph.post(
            token,
            f"{token.account_id}/messages",
            {"recipient": {"comment_id": comment_id}, "message": {"text": text}},
            what="sending the private reply",
            timeout=_timeout(ctx),
        )
    except graph.MaybeSentError:
        raise  # it may have been delivered: keep the claim, never send a second one
    except (TransientError, PermanentError):
        # Meta answered with a refusal: nothing was sent, so a retry (or another flow) may.
        PrivateReply.objects.filter(pk=claim.pk, status=PrivateReply.Status.SENDING).delete()
        raise
    message_id = str(body.get("message_id") or "")[:200]
    PrivateReply.objects.filter(pk=claim.pk).update(
        status=PrivateReply.Status.SENT, sent_at=timezone.now(), message_id=message_id
    )
    return _message_result(body, text, {"comment_id": comment_id})


INSTAGRAM_PRIVATE_REPLY = NodeSpec(
    type="instagram.private_reply",
    name="Private reply to comment",
    category="action",
    description="A DM to the commenter, sent as a reply to their comment (one per comment, within 7 days).",
    config_schema=TEXT_CONFIG,
    side_effect=True,
    handler=instagram_private_reply,
    retry=META_SEND_RETRY,
)


def instagram_reply_comment(config: dict, ctx: NodeContext) -> NodeResult:
    token = _token(ctx, ApiToken.Provider.INSTAGRAM)
    comment_id = _required(ctx, "comment_id", "the comment to answer")
    text = _text(config, max_chars=COMMENT_CHARS)
    body = graph.post(
        token,
        f"{comment_id}/replies",
        {"message": text},
        what="replying to the comment",
        timeout=_timeout(ctx),
    )
    return NodeResult(output={"reply_id": body.get("id"), "comment_id": comment_id, "text": text})


INSTAGRAM_REPLY_COMMENT = NodeSpec(
    type="instagram.reply_comment",
    name="Public reply to comment",
    category="action",
    description="A public reply under the comment that triggered the flow.",
    config_schema=TEXT_CONFIG,
    side_effect=True,
    handler=instagram_reply_comment,
    retry=META_SEND_RETRY,
)

NODE_TYPES: tuple[NodeSpec, ...] = (
    INSTAGRAM_COMMENT,
    INSTAGRAM_MESSAGE,
    INSTAGRAM_STORY_MENTION,
    MESSENGER_MESSAGE,
    INSTAGRAM_SEND_MESSAGE,
    INSTAGRAM_PRIVATE_REPLY,
    INSTAGRAM_REPLY_COMMENT,
    MESSENGER_SEND_MESSAGE,
)
