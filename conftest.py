"""Shared fixtures. Tests run against the real PostgreSQL, Redis and Celery workers.

Redis: tests use their own database number (TEST_REDIS_URL, default db 15), so a
developer's running Inflow on db 0 is never disturbed. TEST_DATABASE_NAME (default
test_inflow) lets two checkouts run their suites side by side.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
BASE_DIR = Path(__file__).resolve().parent


class _RecordAll(logging.Handler):
    """Keeps the formatted text of every log record of the run, for the leak scan below."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


_ALL_LOGS = _RecordAll()
_WORKER_LOGS: list[Path] = []
# Secret shapes used by the tests: API keys, Meta tokens, emails.
LEAK_PATTERNS = [
    re.compile(r"inf_[A-Za-z0-9_\-]{20,}"),
    re.compile(r"\b(?:IGQ|IGAA|EAA)[A-Za-z0-9_\-]{12,}"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),  # OpenAI-style keys the knowledge tests configure
    re.compile(r"[A-Za-z0-9._%+\-]+@(?:example\.com|example\.org|inflow\.localhost)"),
]


def _leaks(text: str, secrets: list[str]) -> list[str]:
    found = [f"secret value {secret[:4]}…" for secret in secrets if secret in text]
    found += [f"{match.group(0)[:12]}…" for pattern in LEAK_PATTERNS for match in pattern.finditer(text)]
    return found


def pytest_sessionfinish(session, exitstatus):
    """No token, key, password or email may appear in any log line of the run (ours or a worker's)."""
    secrets = [
        value
        for value in (
            settings.SECRET_KEY,
            settings.PGCRYPTO_KEY,
            settings.BLIND_INDEX_KEY,
            settings.META_APP_SECRET,
            settings.META_VERIFY_TOKEN,
            settings.OPENAI_API_KEY,
            *settings.PGCRYPTO_OLD_KEYS.values(),
            PASSWORD,
        )
        if value and len(value) >= 8
    ]
    sources = [("test process", line) for line in _ALL_LOGS.lines]
    sources += [(str(path), path.read_text(errors="replace")) for path in _WORKER_LOGS if path.exists()]
    problems = [(where, leak) for where, text in sources for leak in _leaks(text, secrets)]
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for where, leak in problems[:20]:
            reporter.write_line(f"LOG LEAK in {where}: {leak}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config):
    # authlib (a weaviate-client dependency) installs an "always" filter for its deprecation
    # warnings when first imported, overriding pyproject's filterwarnings: imported inside
    # catch_warnings(), that filter is dropped again.
    with warnings.catch_warnings():
        import authlib.deprecate  # noqa: F401
    logging.getLogger().addHandler(_ALL_LOGS)
    # Password hashing at production strength costs ~0.25 s a call; tests need speed only.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.REDIS_URL = TEST_REDIS_URL
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": TEST_REDIS_URL}}
    settings.CELERY_BROKER_URL = TEST_REDIS_URL
    from config.celery import app

    app.conf.broker_url = TEST_REDIS_URL


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """As the setup script does for a developer's database: statement logging on the server
    must not print the bound parameters, pgcrypto keys among them."""
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        for parameter in ("log_parameter_max_length", "log_parameter_max_length_on_error"):
            cursor.execute(
                f"ALTER DATABASE {connection.ops.quote_name(connection.settings_dict['NAME'])} SET {parameter} = 0"
            )


@pytest.fixture(autouse=True)
def _clean_cache():
    """Every test starts with an empty cache (throttle counters, sessions)."""
    from django.core.cache import cache

    cache.clear()


_counter = itertools.count(1)
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def make_user(db):
    from accounts.models import User

    def make(email: str | None = None, name: str = "Test User", **fields) -> User:
        email = email or f"user{next(_counter)}@example.com"
        return User.objects.create_user(email, PASSWORD, name=name, **fields)

    return make


@pytest.fixture
def user(make_user):
    return make_user()


@pytest.fixture
def staff(make_user) -> Client:
    """A browser signed in to the admin as a superuser."""
    client = Client()
    client.force_login(make_user(role="admin", is_superuser=True))
    return client


@pytest.fixture
def other_user(make_user):
    return make_user(name="Other User")


@pytest.fixture
def client_for():
    from accounts.models import ApiKey

    def make(user) -> APIClient:
        client = APIClient()
        _, raw_key = ApiKey.issue(user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
        return client

    return make


@pytest.fixture
def api(client_for, user) -> APIClient:
    """An API client authenticated as `user`."""
    return client_for(user)


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


# --- Real Celery workers -------------------------------------------------------------------


def test_database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class WorkerProcess:
    """A `celery -A config worker` process on the test database and test Redis."""

    def __init__(self, env: dict[str, str], concurrency: int = 2) -> None:
        self.env = env
        self.concurrency = concurrency
        self.log_path = Path(tempfile.mkstemp(prefix="inflow-worker-", suffix=".log")[1])
        _WORKER_LOGS.append(self.log_path)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> WorkerProcess:
        offset = self.log_path.stat().st_size
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-P",
                "prefork",
                "-c",
                str(self.concurrency),
                "-n",
                f"test-{uuid.uuid4().hex[:8]}@%h",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=INFO",
            ],
            cwd=BASE_DIR,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill -9 takes the children too
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log_path.read_text(errors="replace")[offset:]:
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"worker did not start:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole worker: main process and pool children, like a crashed machine."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def worker_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": TEST_REDIS_URL,
            "HTTP_REQUEST_ALLOW_PRIVATE_NETWORKS": "true",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


_shared_worker: WorkerProcess | None = None


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_worker(django_db_setup):
    """Stop the shared worker before pytest-django drops the test database it uses."""
    yield
    if _shared_worker is not None:
        _shared_worker.stop()


@pytest.fixture
def worker(django_db_setup):
    """A worker shared by tests that do not kill it; started on first use."""
    global _shared_worker
    if _shared_worker is None or not _shared_worker.alive():
        _shared_worker = WorkerProcess(worker_env()).start()
    return _shared_worker


def _stop_the_shared_worker() -> None:
    global _shared_worker
    if _shared_worker is not None:
        _shared_worker.stop()
        _shared_worker = None


@pytest.fixture
def no_worker(django_db_setup):
    """No worker runs what the test enqueues: it would hold locks the test's flush needs."""
    _stop_the_shared_worker()


@pytest.fixture
def start_worker(django_db_setup):
    """Dedicated workers for tests that kill or reconfigure them; stopped at the end.

    The shared worker is stopped first so it cannot take the test's tasks.
    """
    _stop_the_shared_worker()
    started: list[WorkerProcess] = []

    def start(concurrency: int = 2, **env_overrides: str) -> WorkerProcess:
        process = WorkerProcess(worker_env(**env_overrides), concurrency=concurrency).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
