from __future__ import annotations

import pytest
from django.db import connection

from tokens.models import ApiToken

pytestmark = pytest.mark.django_db

RAW_TOKEN = "IGQVJ-secret-access-token-value-1234567890"


def connect(client, **overrides):
    payload = {"provider": "instagram", "account_id": "17841400000000001", "access_token": RAW_TOKEN} | overrides
    return client.post("/api/v1/tokens/", payload, format="json")


def test_the_token_is_write_only_and_encrypted(api):
    response = connect(api)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "access_token" not in body
    assert body["token_hint"] == "…7890"
    assert RAW_TOKEN not in response.content.decode()

    listed = api.get("/api/v1/tokens/")
    assert RAW_TOKEN not in listed.content.decode()
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token FROM api_tokens")
        assert RAW_TOKEN.encode() not in bytes(cursor.fetchone()[0])
    assert ApiToken.objects.get().access_token == RAW_TOKEN


def test_reconnecting_replaces_the_token(api):
    assert connect(api).status_code == 201
    again = connect(api, access_token="IGQVJ-another-token-value-0000000000")
    assert again.status_code == 200
    assert ApiToken.objects.get().access_token.endswith("0000000000")


def test_another_users_token_is_invisible(api, client_for, other_user):
    token_id = connect(api).json()["id"]
    stranger = client_for(other_user)
    assert stranger.get(f"/api/v1/tokens/{token_id}/").status_code == 404
    assert stranger.delete(f"/api/v1/tokens/{token_id}/").status_code == 404
    assert stranger.get("/api/v1/tokens/").json()["count"] == 0
    taken = connect(stranger)
    assert taken.status_code == 400
    assert ApiToken.objects.get().user_id != other_user.id


def test_bad_token_payloads(api):
    assert connect(api, provider="myspace").status_code == 400
    assert connect(api, account_id="12ab").status_code == 400
    assert connect(api, account_id="\u0661\u0662\u0663").status_code == 400  # Arabic-Indic digits
    assert connect(api, account_id="123\n").status_code == 400
    assert connect(api, access_token="").status_code == 400
    assert connect(api, access_token="IGQVJ-tokén-with-an-accent-0000").status_code == 400
    assert connect(api, access_token="IGQVJ-token-with\na-newline-0000").status_code == 400
    assert connect(api, access_token=RAW_TOKEN + " ").status_code == 400
    assert connect(api, scopes="not-a-list").status_code == 400
    assert not ApiToken.objects.exists()


def test_delete(api):
    token_id = connect(api).json()["id"]
    assert api.delete(f"/api/v1/tokens/{token_id}/").status_code == 204
    assert not ApiToken.objects.exists()
