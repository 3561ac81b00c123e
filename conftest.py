"""Shared fixtures. Tests run against the real PostgreSQL and Redis.

Redis: tests use their own database number (TEST_REDIS_URL, default db 15), so a
developer's running Inflow on db 0 is never disturbed.
"""

from __future__ import annotations

import itertools
import os

import pytest
from django.conf import settings
from rest_framework.test import APIClient

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def pytest_configure(config):
    # Password hashing at production strength costs ~0.25 s a call; tests need speed only.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.REDIS_URL = TEST_REDIS_URL
    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"], "LOCATION": TEST_REDIS_URL}}
    settings.CELERY_BROKER_URL = TEST_REDIS_URL
    from config.celery import app

    app.conf.broker_url = TEST_REDIS_URL


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
