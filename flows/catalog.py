"""The node catalog: every node type Inflow knows, defined once.

Each entry names its type key (fixed by DESIGN.md), how it appears in editors, the JSON
Schema of its `config`, its output ports, whether running it twice would be visible to the
outside world, and the function that runs it. `manage.py sync_node_types` copies this into
the `node_types` table, where staff can switch a type off.

Handlers are referenced by dotted path and imported on first use, so this module does not
import the integrations (Meta, knowledge) that implement them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from typing import Any

from flows import config_checks

TEMPLATE_TEXT = {"type": "string", "minLength": 1, "maxLength": 2000}
KEYWORDS = {
    "type": "array",
    "items": {"type": "string", "minLength": 1, "maxLength": 100},
    "maxItems": 50,
    "description": "Case-insensitive keywords; empty means every event matches.",
}
MATCH_MODE = {
    "enum": ["any", "all", "exact"],
    "default": "any",
    "description": "any: one keyword appears; all: every keyword appears; exact: the text equals a keyword.",
}
SAFE_HTTP_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _object(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    backoff_seconds: float = 2.0  # first delay; doubles each attempt, with jitter
    max_backoff_seconds: float = 300.0


@dataclass(frozen=True)
class NodeSpec:
    type: str
    name: str
    category: str
    description: str
    config_schema: dict
    ports: tuple[str, ...] = ("out",)
    trigger: bool = False
    # Whether running the node twice would be visible outside Inflow (a message sent, an
    # HTTP call made). A callable decides from the rendered config.
    side_effect: bool | Callable[[dict], bool] = False
    # "module:function", imported on first use (or the function itself, in tests).
    handler: str | Callable[..., Any] | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Checks JSON Schema cannot express; returns (field, message) pairs.
    checks: Callable[[dict], list[tuple[str, str]]] | None = None

    def check_config(self, config: dict) -> list[tuple[str, str]]:
        return self.checks(config) if self.checks else []

    def has_side_effect(self, config: dict) -> bool:
        if callable(self.side_effect):
            return self.side_effect(config)
        return self.side_effect

    def load_handler(self) -> Callable[..., Any] | None:
        if self.handler is None or callable(self.handler):
            return self.handler
        return _import_handler(self.handler)

    def as_row(self) -> dict:
        return {
            "name": self.name,
            "category": self.category,
            "description": self.description,
            "config_schema": self.config_schema,
            "ports": list(self.ports),
        }


@cache
def _import_handler(path: str) -> Callable[..., Any]:
    module_name, _, function_name = path.partition(":")
    return getattr(import_module(module_name), function_name)


def _http_has_side_effect(config: dict) -> bool:
    return str(config.get("method", "GET")).upper() not in SAFE_HTTP_METHODS


META_SEND_RETRY = RetryPolicy(max_attempts=4, backoff_seconds=2.0, max_backoff_seconds=120.0)

CATALOG: tuple[NodeSpec, ...] = (
    # --- Triggers ------------------------------------------------------------------------
    NodeSpec(
        type="trigger.manual",
        name="Manual run",
        category="trigger",
        description="Started from the API or the admin with the trigger data you send.",
        config_schema=_object({}),
        trigger=True,
    ),
    NodeSpec(
        type="trigger.schedule",
        name="Schedule",
        category="trigger",
        description="Runs on a cron schedule while the flow is active.",
        config_schema=_object(
            {
                "cron": {
                    "type": "string",
                    "minLength": 9,
                    "maxLength": 100,
                    "description": "Five fields: minute hour day-of-month month day-of-week.",
                },
                "timezone": {"type": "string", "minLength": 1, "maxLength": 64, "default": "UTC"},
            },
            required=("cron",),
        ),
        trigger=True,
        checks=config_checks.schedule,
    ),
    NodeSpec(
        type="trigger.webhook",
        name="Webhook",
        category="trigger",
        description="Runs when a JSON body is POSTed to the flow's secret webhook URL.",
        config_schema=_object({}),
        trigger=True,
    ),
    NodeSpec(
        type="instagram.comment",
        name="Instagram comment",
        category="trigger",
        description="A comment on one of the account's posts or reels.",
        config_schema=_object(
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
    ),
    NodeSpec(
        type="instagram.message",
        name="Instagram direct message",
        category="trigger",
        description="A direct message to the Instagram account.",
        config_schema=_object({"keywords": KEYWORDS, "match": MATCH_MODE}),
        trigger=True,
    ),
    NodeSpec(
        type="instagram.story_mention",
        name="Instagram story mention",
        category="trigger",
        description="Someone mentioned the account in their story.",
        config_schema=_object({}),
        trigger=True,
    ),
    NodeSpec(
        type="messenger.message",
        name="Messenger message",
        category="trigger",
        description="A message to the Facebook Page.",
        config_schema=_object({"keywords": KEYWORDS, "match": MATCH_MODE}),
        trigger=True,
    ),
    # --- Actions -------------------------------------------------------------------------
    NodeSpec(
        type="instagram.send_message",
        name="Send Instagram DM",
        category="action",
        description="Direct message to the person who triggered the flow (24 h messaging window).",
        config_schema=_object({"text": TEMPLATE_TEXT}, required=("text",)),
        side_effect=True,
        handler="tokens.nodes:instagram_send_message",
        retry=META_SEND_RETRY,
    ),
    NodeSpec(
        type="instagram.private_reply",
        name="Private reply to comment",
        category="action",
        description="A DM to the commenter, sent as a reply to their comment (one per comment, within 7 days).",
        config_schema=_object({"text": TEMPLATE_TEXT}, required=("text",)),
        side_effect=True,
        handler="tokens.nodes:instagram_private_reply",
        retry=META_SEND_RETRY,
    ),
    NodeSpec(
        type="instagram.reply_comment",
        name="Public reply to comment",
        category="action",
        description="A public reply under the comment that triggered the flow.",
        config_schema=_object({"text": TEMPLATE_TEXT}, required=("text",)),
        side_effect=True,
        handler="tokens.nodes:instagram_reply_comment",
        retry=META_SEND_RETRY,
    ),
    NodeSpec(
        type="messenger.send_message",
        name="Send Messenger message",
        category="action",
        description="A Messenger reply (messaging_type RESPONSE) to the person who wrote to the Page.",
        config_schema=_object({"text": TEMPLATE_TEXT}, required=("text",)),
        side_effect=True,
        handler="tokens.nodes:messenger_send_message",
        retry=META_SEND_RETRY,
    ),
    NodeSpec(
        type="http.request",
        name="HTTP request",
        category="action",
        description="Calls an HTTP endpoint. Private and loopback addresses are refused unless allowed.",
        config_schema=_object(
            {
                "method": {"enum": ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"], "default": "GET"},
                "url": {"type": "string", "minLength": 1, "maxLength": 2000},
                "headers": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "maxLength": 2000},
                    "maxProperties": 30,
                },
                "query": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "maxLength": 2000},
                    "maxProperties": 30,
                },
                "body": {"description": "Sent as JSON. Strings inside are templates."},
                "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 30, "default": 10},
            },
            required=("url",),
        ),
        side_effect=_http_has_side_effect,
        checks=config_checks.http_request,
        handler="executions.nodes.http:http_request",
        retry=RetryPolicy(max_attempts=3, backoff_seconds=1.0, max_backoff_seconds=60.0),
    ),
    # --- Logic ---------------------------------------------------------------------------
    NodeSpec(
        type="logic.condition",
        name="Condition",
        category="logic",
        description="Follows the `true` or the `false` port.",
        config_schema=_object(
            {
                "left": {"type": "string", "maxLength": 2000},
                "op": {
                    "enum": [
                        "equals",
                        "not_equals",
                        "contains",
                        "starts_with",
                        "ends_with",
                        "gt",
                        "lt",
                        "exists",
                        "regex",
                    ]
                },
                "right": {"type": ["string", "number", "boolean", "null"]},
                "case_sensitive": {"type": "boolean", "default": False},
            },
            required=("left", "op"),
        ),
        ports=("true", "false"),
        handler="executions.nodes.logic:condition",
        checks=config_checks.condition,
    ),
    NodeSpec(
        type="logic.delay",
        name="Delay",
        category="logic",
        description="Waits, then continues. The worker is released while waiting.",
        config_schema=_object(
            {"seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 30 * 24 * 3600}},
            required=("seconds",),
        ),
        handler="executions.nodes.logic:delay",
    ),
    NodeSpec(
        type="logic.set",
        name="Set variables",
        category="logic",
        description="Stores values (templates allowed) under {{ vars.<name> }}.",
        config_schema=_object(
            {
                "values": {
                    "type": "object",
                    "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
                    "maxProperties": 50,
                }
            },
            required=("values",),
        ),
        handler="executions.nodes.logic:set_vars",
    ),
    NodeSpec(
        type="logic.stop",
        name="Stop",
        category="logic",
        description="Ends the run here, as succeeded or failed.",
        config_schema=_object(
            {
                "outcome": {"enum": ["succeeded", "failed"], "default": "succeeded"},
                "reason": {"type": "string", "maxLength": 500},
            }
        ),
        ports=(),
        handler="executions.nodes.logic:stop",
    ),
    # --- Knowledge -----------------------------------------------------------------------
    NodeSpec(
        type="knowledge.search",
        name="Search knowledge base",
        category="knowledge",
        description=(
            "Finds the passages of the flow owner's knowledge base closest to a query. Output: "
            "results (each with document {id, title}, text, score) and count."
        ),
        config_schema=_object(
            {
                "query": TEMPLATE_TEXT,
                "k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
                "min_score": {
                    "type": "number",
                    "minimum": -1,
                    "maximum": 1,
                    "default": 0,
                    "description": "Passages scoring at or below this cosine similarity are ignored.",
                },
            },
            required=("query",),
        ),
        handler="knowledge.nodes:knowledge_search",
        retry=RetryPolicy(max_attempts=3, backoff_seconds=2.0, max_backoff_seconds=60.0),
    ),
    NodeSpec(
        type="ai.reply",
        name="AI reply",
        category="knowledge",
        description=(
            "Answers from the knowledge base with an OpenAI-compatible model; without a model configured "
            "it answers with the best passage. Output: reply, mode (llm or extractive), passages."
        ),
        config_schema=_object(
            {
                "query": {**TEMPLATE_TEXT, "default": "{{ trigger.text }}"},
                "prompt": {
                    **TEMPLATE_TEXT,
                    "maxLength": 8000,
                    "description": "Instructions for the model (persona, tone, language). The passages found "
                    "and the query are added after them.",
                },
                "fallback": {
                    "type": "string",
                    "maxLength": 1000,
                    "default": "",
                    "description": "The reply when no passage matches (the model is not called then).",
                },
                "min_score": {
                    "type": "number",
                    "minimum": -1,
                    "maximum": 1,
                    "default": 0,
                    "description": "Passages scoring at or below this cosine similarity are ignored.",
                },
                "k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 4},
                "model": {"type": "string", "maxLength": 100},
                "max_tokens": {"type": "integer", "minimum": 1, "maximum": 4000, "default": 300},
                "temperature": {"type": "number", "minimum": 0, "maximum": 2, "default": 0.2},
            }
        ),
        handler="knowledge.nodes:ai_reply",
        retry=RetryPolicy(max_attempts=3, backoff_seconds=2.0, max_backoff_seconds=60.0),
    ),
)

BY_TYPE: dict[str, NodeSpec] = {spec.type: spec for spec in CATALOG}
TRIGGER_TYPES = frozenset(spec.type for spec in CATALOG if spec.trigger)


def get_spec(node_type: str) -> NodeSpec | None:
    return BY_TYPE.get(node_type)
