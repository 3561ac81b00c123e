"""Flow nodes that read the knowledge base: knowledge.search and ai.reply.

Both read only the flow owner's namespace (`ctx.user_id`, set by the engine from the
flow's owner, never from the config or the trigger). Outputs go into the execution log,
so passages are truncated and nothing secret is included.
"""

from __future__ import annotations

from django.conf import settings

from flows.nodes import (
    TEMPLATE_TEXT,
    NodeContext,
    NodeResult,
    NodeSpec,
    PermanentError,
    RetryPolicy,
    TransientError,
    object_schema,
)
from knowledge import remote, search
from knowledge.errors import KnowledgeError

OUTPUT_PASSAGE_CHARS = 500  # per passage in the step output
PROMPT_PASSAGE_CHARS = 2000  # per passage in the LLM prompt
PROMPT_CONTEXT_CHARS = 12000  # all passages in the LLM prompt
MAX_REPLY_CHARS = 4000
EXTRACTIVE_NOTE = "No LLM is configured (LLM_BASE_URL is empty): the reply is the best-matching passage, verbatim."
NO_MATCH_NOTE = "Nothing in the knowledge base matched the query: the reply is the configured fallback."

DEFAULT_INSTRUCTIONS = "You are a helpful assistant answering a customer's message on behalf of a business."
GROUNDING_RULES = (
    "Answer using only the knowledge base passages given with the message. If they do not contain "
    "the answer, say you don't know and offer to put the customer in touch with a person. Keep the "
    "answer short and do not mention the passages."
)
# An embeddings or LLM API that fails now often answers a few seconds later.
RETRY = RetryPolicy(max_attempts=3, backoff_seconds=2.0, max_backoff_seconds=60.0)
MIN_SCORE = {
    "type": "number",
    "minimum": -1,
    "maximum": 1,
    "default": 0,
    "description": "Passages scoring at or below this cosine similarity are ignored.",
}


def _owner(ctx: NodeContext) -> int:
    if not ctx.user_id:
        raise PermanentError("This node reads the flow owner's knowledge base, but the run has no owner.")
    return ctx.user_id


def _query(config: dict, ctx: NodeContext) -> str:
    # The engine does not fill in schema defaults; ai.reply's query defaults to the
    # trigger's text, which is what "{{ trigger.text }}" would render to.
    query = config["query"] if "query" in config else ctx.trigger.get("text")
    query = str(query or "").strip()
    if not query:
        raise PermanentError("The query is empty once its template is filled in (no text in the trigger?).")
    return query[: search.MAX_QUERY_CHARS]


def _mapped(exc: KnowledgeError) -> Exception:
    if exc.transient:
        return TransientError(exc.message, retry_after=exc.retry_after)
    return PermanentError(exc.message)


def _search(ctx: NodeContext, config: dict, default_k: int) -> tuple[str, list[search.Result]]:
    query = _query(config, ctx)
    k = int(config.get("k") or default_k)
    min_score = float(config.get("min_score", 0.0))
    try:
        results = search.search(user_id=_owner(ctx), query=query, k=k)
    except KnowledgeError as exc:
        raise _mapped(exc) from None
    return query, [result for result in results if result.score > min_score]


def knowledge_search(config: dict, ctx: NodeContext) -> NodeResult:
    query, results = _search(ctx, config, default_k=5)
    return NodeResult(
        output={
            "query": query[:300],
            "count": len(results),
            "results": [result.as_dict(OUTPUT_PASSAGE_CHARS) for result in results],
        }
    )


KNOWLEDGE_SEARCH = NodeSpec(
    type="knowledge.search",
    name="Search knowledge base",
    category="knowledge",
    description=(
        "Finds the passages of the flow owner's knowledge base closest to a query. Output: "
        "results (each with document {id, title}, text, score) and count."
    ),
    config_schema=object_schema(
        {
            "query": TEMPLATE_TEXT,
            "k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 5},
            "min_score": MIN_SCORE,
        },
        required=("query",),
    ),
    handler=knowledge_search,
    retry=RETRY,
)


def build_messages(instructions: str, query: str, passages: list[search.Result]) -> list[dict]:
    """The chat messages: instructions and rules, then the passages and the customer's text."""
    numbered, used = [], 0
    for index, passage in enumerate(passages, start=1):
        text = passage.text[:PROMPT_PASSAGE_CHARS]
        if used + len(text) > PROMPT_CONTEXT_CHARS:
            break
        used += len(text)
        numbered.append(f"[{index}] {passage.title}\n{text}")
    context = "\n\n".join(numbered)
    return [
        {"role": "system", "content": f"{instructions.strip() or DEFAULT_INSTRUCTIONS}\n\n{GROUNDING_RULES}"},
        {"role": "user", "content": f"Knowledge base passages:\n\n{context}\n\nCustomer message:\n{query}"},
    ]


def _chat(config: dict, messages: list[dict], ctx: NodeContext) -> tuple[str, dict]:
    model = str(config.get("model") or settings.LLM_MODEL)
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": int(config.get("max_tokens", 300)),
        "temperature": float(config.get("temperature", 0.2)),
    }
    headers = {"Authorization": f"Bearer {settings.OPENAI_API_KEY}"} if settings.OPENAI_API_KEY else {}
    timeout = max(1.0, min(float(settings.LLM_TIMEOUT), ctx.time_left))
    try:
        answer = remote.request_json(
            "POST",
            f"{settings.LLM_BASE_URL}/chat/completions",
            service="The LLM API",
            timeout=timeout,
            headers=headers,
            body=body,
            max_bytes=1024 * 1024,
        )
    except KnowledgeError as exc:
        raise _mapped(exc) from None
    try:
        reply = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise PermanentError("The LLM API answered without a message.") from None
    if not isinstance(reply, str) or not reply.strip():
        raise PermanentError("The LLM API answered with an empty message.")
    details = {"model": str(answer.get("model") or model)[:100]}
    usage = answer.get("usage")
    if isinstance(usage, dict):
        details["usage"] = {k: v for k, v in usage.items() if isinstance(v, int | float)}
    return reply.strip()[:MAX_REPLY_CHARS], details


def ai_reply(config: dict, ctx: NodeContext) -> NodeResult:
    query, passages = _search(ctx, config, default_k=4)
    mode = "llm" if settings.LLM_BASE_URL else "extractive"
    output: dict = {"mode": mode, "query": query[:300]}
    if not passages:
        output.update(reply=str(config.get("fallback") or ""), note=NO_MATCH_NOTE)
    elif mode == "extractive":
        output.update(reply=passages[0].text[:MAX_REPLY_CHARS], note=EXTRACTIVE_NOTE)
    else:
        reply, details = _chat(config, build_messages(str(config.get("prompt") or ""), query, passages), ctx)
        output.update(reply=reply, **details)
    output["passages"] = [passage.as_dict(OUTPUT_PASSAGE_CHARS) for passage in passages]
    return NodeResult(output=output)


AI_REPLY = NodeSpec(
    type="ai.reply",
    name="AI reply",
    category="knowledge",
    description=(
        "Answers from the knowledge base with an OpenAI-compatible model; without a model configured "
        "it answers with the best passage. Output: reply, mode (llm or extractive), passages."
    ),
    config_schema=object_schema(
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
            "min_score": MIN_SCORE,
            "k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 4},
            "model": {"type": "string", "maxLength": 100},
            "max_tokens": {"type": "integer", "minimum": 1, "maximum": 4000, "default": 300},
            "temperature": {"type": "number", "minimum": 0, "maximum": 2, "default": 0.2},
        }
    ),
    handler=ai_reply,
    retry=RETRY,
)

NODE_TYPES: tuple[NodeSpec, ...] = (KNOWLEDGE_SEARCH, AI_REPLY)
