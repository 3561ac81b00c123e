"""The seed's tables and indexes exist after migrate, and the API documents itself."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection

pytestmark = pytest.mark.django_db

SEED_COLUMNS = {
    "users": {"id", "email", "name", "role", "created_at"},
    "flows": {"id", "user_id", "name", "flow_data", "status", "created_at"},
    "flow_executions": {"id", "flow_id", "status", "trigger_data", "execution_log", "started_at", "completed_at"},
    "node_types": {"id", "type"},
    "api_tokens": {"id", "user_id", "access_token"},
}


def columns(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s", [table])
        return dict(cursor.fetchall())


def index_definitions(table: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        return dict(cursor.fetchall())


def test_seed_tables_have_the_seed_columns():
    for table, expected in SEED_COLUMNS.items():
        assert expected <= set(columns(table)), table
    assert columns("flows")["flow_data"] == "jsonb"
    assert columns("users")["email"] == "bytea"
    assert columns("api_tokens")["access_token"] == "bytea"


def test_seed_indexes_exist():
    flows = index_definitions("flows")
    assert "(user_id)" in flows["flows_user_id_idx"]
    assert "USING gin (flow_data jsonb_path_ops)" in flows["flows_flow_data_gin"]
    executions = index_definitions("flow_executions")
    assert "(flow_id, started_at DESC)" in executions["flow_executions_flow_started"]


def test_pgcrypto_is_installed():
    with connection.cursor() as cursor:
        cursor.execute("SELECT extname FROM pg_extension")
        assert "pgcrypto" in {row[0] for row in cursor.fetchall()}


def test_no_model_change_lacks_a_migration():
    result = subprocess.run(
        [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_openapi_schema_and_docs(anon):
    schema = anon.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in [
        "/api/v1/auth/register/",
        "/api/v1/auth/token/",
        "/api/v1/me/",
        "/api/v1/flows/",
        "/api/v1/flows/{id}/",
        "/api/v1/node-types/",
        "/api/v1/executions/",
        "/api/v1/tokens/",
    ]:
        assert path in paths, path
    docs = anon.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
    assert b"cdn.jsdelivr" not in docs.content  # served from our own static files (CSP)
