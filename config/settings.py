"""Inflow settings: one module, driven by environment variables (see README)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from config.env import (
    env,
    envbool,
    envint,
    envlist,
    envsecret,
    load_dotenv,
    parse_database_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env")

DEBUG = envbool("DEBUG", False)

# --- Secrets -------------------------------------------------------------------------
# Production (DEBUG off) refuses to start without real secrets. Development falls back to
# fixed, clearly insecure values so a fresh checkout runs.
_DEV_ONLY = "insecure-development-only-"


def _secret(name: str, min_length: int = 32) -> str:
    value = envsecret(name)
    if value:
        if not DEBUG and len(value) < min_length:
            raise ImproperlyConfigured(f"{name} must be at least {min_length} characters.")
        return value
    if DEBUG:
        return _DEV_ONLY + name.lower()
    raise ImproperlyConfigured(f"{name} is required when DEBUG is off.")


SECRET_KEY = _secret("SECRET_KEY", min_length=50)

# pgcrypto keys. Every encrypted value carries the version of the key that sealed it, so
# a rotation can run while the application keeps reading (see core/crypto.py).
PGCRYPTO_KEY = _secret("PGCRYPTO_KEY")
PGCRYPTO_KEY_VERSION = envint("PGCRYPTO_KEY_VERSION", 1)
try:
    PGCRYPTO_OLD_KEYS = {int(v): k for v, k in json.loads(envsecret("PGCRYPTO_OLD_KEYS") or "{}").items()}
except (ValueError, AttributeError):
    raise ImproperlyConfigured('PGCRYPTO_OLD_KEYS must be a JSON object like {"1": "old key"}.') from None
# Key of the email blind index (HMAC-SHA256 of the normalized address).
BLIND_INDEX_KEY = _secret("BLIND_INDEX_KEY")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

# --- Applications --------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_results",
    "django_celery_beat",
    "core",
    "accounts",
    "flows",
    "executions",
    "tokens",
    "knowledge",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RequestGuardMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ------------------------------------------------------------------------
DATABASES = {"default": parse_database_url(env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/inflow"))}
# Server-side binding sends parameters separately from the statement text. Without it
# psycopg would paste the pgcrypto key into the SQL, where pg_stat_activity and the
# server log would show it.
DATABASES["default"]["OPTIONS"]["server_side_binding"] = True
DATABASES["default"]["CONN_MAX_AGE"] = envint("CONN_MAX_AGE", 60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Lets two checkouts run their test suites side by side on one server.
DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME") or None}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["accounts.backends.EmailBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# users.email is encrypted, so uniqueness and login live on the email_hash blind index.
SILENCED_SYSTEM_CHECKS = ["auth.W004"]

# --- Redis: cache, sessions, Celery broker -------------------------------------------
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "inflow",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_COOKIE_AGE = 24 * 60 * 60

CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Route through the anonymous exchange straight to the queue's list. Kombu's Redis transport
# otherwise looks up exchange bindings stored in Redis; after a FLUSHDB those are gone and
# messages are dropped into a dead-letter queue until a worker reconnects.
CELERY_TASK_DEFAULT_QUEUE = "inflow"
CELERY_TASK_DEFAULT_EXCHANGE = ""
CELERY_TASK_DEFAULT_ROUTING_KEY = "inflow"
CELERY_TASK_QUEUES = (Queue("inflow", Exchange(""), routing_key="inflow"),)
CELERY_BEAT_SCHEDULE = {
    "sweep-executions": {
        "task": "executions.tasks.sweep_executions",
        "schedule": float(envint("EXECUTION_SWEEP_SECONDS", 5)),
    },
    "purge-old-executions": {"task": "executions.tasks.purge_old_executions", "schedule": 3600.0},
    "sweep-meta-webhooks": {"task": "tokens.tasks.sweep_meta_deliveries", "schedule": 15.0},
    "purge-meta-data": {"task": "tokens.tasks.purge_meta_data", "schedule": 3600.0},
    "refresh-instagram-tokens": {"task": "tokens.tasks.refresh_instagram_tokens", "schedule": 6 * 3600.0},
    "sweep-knowledge": {"task": "knowledge.tasks.sweep_documents", "schedule": 30.0},
}

# --- HTTP, security ------------------------------------------------------------------
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
if envbool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = not DEBUG
X_FRAME_OPTIONS = "DENY"
# WhiteNoise sends Access-Control-Allow-Origin: * on static files by default; CORS stays closed.
WHITENOISE_ALLOW_ALL_ORIGINS = False
# Request bodies: the API accepts JSON up to this size; larger ones get a 413.
MAX_REQUEST_BODY_BYTES = envint("MAX_REQUEST_BODY_BYTES", 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
MAX_JSON_DEPTH = 32

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- REST API ------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["core.api.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "core.api.Pagination",
    "DEFAULT_SCHEMA_CLASS": "core.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "auth": env("AUTH_THROTTLE_RATE", "20/min"),
        # Token requests naming one account, from any address.
        "auth_account": env("AUTH_ACCOUNT_THROTTLE_RATE", "10/min"),
        "webhooks": env("WEBHOOK_THROTTLE_RATE", "6000/min"),
        # Every search embeds its query, which costs money with the openai embedder.
        "search": env("SEARCH_THROTTLE_RATE", "600/min"),
        # Connecting an account asks Meta whose the token is.
        "connect": env("TOKEN_CONNECT_THROTTLE_RATE", "30/min"),
    },
    "NUM_PROXIES": envint("NUM_PROXIES", 0),
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Inflow API",
    "DESCRIPTION": "Instagram and Messenger automation: flows, executions, tokens, knowledge base.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Error answers, links between operations, and descriptions that skip our mixins'
    # docstrings: see core/openapi.py.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "core.openapi.add_links"],
    "GET_LIB_DOC_EXCLUDES": "core.openapi.get_lib_doc_excludes",
    # Several models have a `status`; each gets its own, stable enum name in the schema.
    "ENUM_NAME_OVERRIDES": {
        "FlowStatusEnum": "flows.models.Flow.Status",
        "ExecutionStatusEnum": "executions.models.FlowExecution.Status",
        "TokenStatusEnum": "tokens.models.ApiToken.Status",
        "DocumentStatusEnum": "knowledge.models.Document.Status",
    },
    # Swagger UI from our own static files: the CSP allows no third-party scripts.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Logging -------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "core.logging.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # SQL is never logged: statements may carry decrypted values in their parameters.
        "django.db.backends": {"level": "INFO", "propagate": True},
    },
}

# --- Flow engine ---------------------------------------------------------------------
EXECUTION_MAX_STEPS = envint("EXECUTION_MAX_STEPS", 100)
EXECUTION_MAX_RUN_SECONDS = envint("EXECUTION_MAX_RUN_SECONDS", 300)
EXECUTION_RETENTION_DAYS = envint("EXECUTION_RETENTION_DAYS", 30)
# A running execution whose heartbeat is older than this is presumed dead and resumed.
EXECUTION_HEARTBEAT_SECONDS = envint("EXECUTION_HEARTBEAT_SECONDS", 5)
EXECUTION_HEARTBEAT_TIMEOUT = envint("EXECUTION_HEARTBEAT_TIMEOUT", 30)
# A pending execution not picked up after this long is enqueued again (lost broker message).
EXECUTION_PENDING_REQUEUE_SECONDS = envint("EXECUTION_PENDING_REQUEUE_SECONDS", 30)
HTTP_REQUEST_ALLOW_PRIVATE_NETWORKS = envbool("HTTP_REQUEST_ALLOW_PRIVATE_NETWORKS", False)
HTTP_REQUEST_MAX_RESPONSE_BYTES = envint("HTTP_REQUEST_MAX_RESPONSE_BYTES", 1024 * 1024)
HTTP_REQUEST_MAX_TIMEOUT = envint("HTTP_REQUEST_MAX_TIMEOUT", 30)

# --- Backups and GDPR ----------------------------------------------------------------
BACKUP_DIR = Path(env("BACKUP_DIR", str(BASE_DIR / "backups")))
BACKUP_RETENTION_DAYS = envint("BACKUP_RETENTION_DAYS", 14)
# Days between a deletion request and the purge (the account is disabled at once).
GDPR_GRACE_DAYS = envint("GDPR_GRACE_DAYS", 30)
# The deletion ledger also lives outside the database, so restoring an older backup cannot
# forget a deletion: `restore` re-applies it. Keep it on durable storage next to backups.
GDPR_LEDGER_PATH = Path(env("GDPR_LEDGER_PATH", str(BACKUP_DIR / "gdpr-ledger.jsonl")))

# --- Meta: Instagram and Messenger (tokens app) ----------------------------------------
META_APP_SECRET = _secret("META_APP_SECRET", min_length=16)
META_VERIFY_TOKEN = _secret("META_VERIFY_TOKEN", min_length=8)
META_GRAPH_URL = env("META_GRAPH_URL", "https://graph.facebook.com").rstrip("/")
META_INSTAGRAM_GRAPH_URL = env("META_INSTAGRAM_GRAPH_URL", "https://graph.instagram.com").rstrip("/")
META_GRAPH_VERSION = env("META_GRAPH_VERSION", "v21.0")
META_HTTP_TIMEOUT = envint("META_HTTP_TIMEOUT", 10)
# Long-lived Instagram tokens are refreshed when they expire within this many days.
META_TOKEN_REFRESH_WITHIN_DAYS = envint("META_TOKEN_REFRESH_WITHIN_DAYS", 10)
# Webhook deliveries live in PostgreSQL until processed; one still unprocessed after this
# long is handed to a worker again (a lost Celery message), up to MAX_ATTEMPTS times.
META_WEBHOOK_REQUEUE_SECONDS = envint("META_WEBHOOK_REQUEUE_SECONDS", 30)
META_WEBHOOK_MAX_ATTEMPTS = envint("META_WEBHOOK_MAX_ATTEMPTS", 5)
# Processed deliveries hold message text: kept this long for support, then deleted.
META_WEBHOOK_RETENTION_HOURS = envint("META_WEBHOOK_RETENTION_HOURS", 72)
# Signed deliveries accepted per minute by each web process (0: no limit). Above it Meta
# gets a 429 and retries later.
META_WEBHOOK_RATE_LIMIT = envint("META_WEBHOOK_RATE_LIMIT", 120000)

# --- Knowledge base ------------------------------------------------------------------
EMBEDDINGS_PROVIDER = env("EMBEDDINGS_PROVIDER", "hashing")
EMBEDDINGS_DIM = envint("EMBEDDINGS_DIM", 384)
EMBEDDINGS_MODEL = env("EMBEDDINGS_MODEL", "text-embedding-3-small")
OPENAI_API_KEY = envsecret("OPENAI_API_KEY")
# Any OpenAI-compatible API: chat completions for ai.reply, /embeddings for the openai embedder.
LLM_BASE_URL = env("LLM_BASE_URL").rstrip("/")
LLM_MODEL = env("LLM_MODEL", "gpt-4o-mini")
EMBEDDINGS_BASE_URL = env("EMBEDDINGS_BASE_URL", LLM_BASE_URL or "https://api.openai.com/v1").rstrip("/")
WEAVIATE_URL = env("WEAVIATE_URL")
WEAVIATE_API_KEY = envsecret("WEAVIATE_API_KEY")
PINECONE_API_KEY = envsecret("PINECONE_API_KEY")
PINECONE_INDEX_HOST = env("PINECONE_INDEX_HOST")
# pgvector (default), weaviate (when WEAVIATE_URL is set) or pinecone.
VECTOR_STORE = env("VECTOR_STORE", "weaviate" if WEAVIATE_URL else "pgvector")
KNOWLEDGE_CHUNK_TOKENS = envint("KNOWLEDGE_CHUNK_TOKENS", 200)
KNOWLEDGE_CHUNK_OVERLAP = envint("KNOWLEDGE_CHUNK_OVERLAP", 40)
KNOWLEDGE_EMBED_BATCH = envint("KNOWLEDGE_EMBED_BATCH", 64)
# Longer documents are refused with a 400 (MAX_REQUEST_BODY_BYTES is the outer bound).
KNOWLEDGE_MAX_DOCUMENT_CHARS = envint("KNOWLEDGE_MAX_DOCUMENT_CHARS", 200_000)
KNOWLEDGE_MAX_DOCUMENTS = envint("KNOWLEDGE_MAX_DOCUMENTS", 1000)
# An indexing run whose heartbeat is older than this is presumed dead and queued again; a
# queued document nobody picked up after KNOWLEDGE_REQUEUE_SECONDS is enqueued again.
KNOWLEDGE_STALE_SECONDS = envint("KNOWLEDGE_STALE_SECONDS", 120)
KNOWLEDGE_REQUEUE_SECONDS = envint("KNOWLEDGE_REQUEUE_SECONDS", 120)
KNOWLEDGE_MAX_ATTEMPTS = envint("KNOWLEDGE_MAX_ATTEMPTS", 3)
# pgvector HNSW search: candidate list size, and the cap of the iterative (filtered) scan.
# 200 measured recall@10 0.99 at p95 9 ms for a 100k-chunk namespace (bench/knowledge.py).
KNOWLEDGE_HNSW_EF_SEARCH = envint("KNOWLEDGE_HNSW_EF_SEARCH", 200)
KNOWLEDGE_HNSW_MAX_SCAN_TUPLES = envint("KNOWLEDGE_HNSW_MAX_SCAN_TUPLES", 20000)
# Memory for rebuilding HNSW indexes after a GDPR purge; the build is much faster when the
# graph fits (about 4 * dim bytes + ~100 bytes per chunk).
KNOWLEDGE_REINDEX_MEMORY = env("KNOWLEDGE_REINDEX_MEMORY", "512MB")
EMBEDDINGS_TIMEOUT = envint("EMBEDDINGS_TIMEOUT", 30)
# Send "dimensions" to the embeddings API (text-embedding-3 models shorten their vectors to
# EMBEDDINGS_DIM); switch it off for OpenAI-compatible servers that reject the parameter.
EMBEDDINGS_SEND_DIMENSIONS = envbool("EMBEDDINGS_SEND_DIMENSIONS", True)
LLM_TIMEOUT = envint("LLM_TIMEOUT", 30)
WEAVIATE_GRPC_PORT = envint("WEAVIATE_GRPC_PORT", 50051)
WEAVIATE_COLLECTION = env("WEAVIATE_COLLECTION", "InflowKnowledge")
