"""Admin pages of the Meta integration: constant queries, no token, no message text."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from tokens.models import ApiToken, MetaWebhookDelivery
from tokens.tests.meta import comment_payload, connect

pytestmark = pytest.mark.django_db

_ids = itertools.count(1)
SECRET_TEXT = "my private question about the price"


@pytest.fixture
def staff(make_user) -> Client:
    client = Client()
    client.force_login(make_user(email="meta-staff@example.com", role=User.Role.ADMIN, is_superuser=True))
    return client


def populate(make_user, count: int) -> None:
    for _ in range(count):
        index = next(_ids)
        token = connect(
            make_user(), account_id=f"1785{index:08d}", raw_token=f"secret-token-value-{index:04d}-abcdefgh"
        )
        token.mark(ApiToken.Status.EXPIRED, "Meta refused the token (Meta error 190).")
        MetaWebhookDelivery.objects.create(
            object="instagram",
            payload=comment_payload(SECRET_TEXT, account_id=token.account_id, username="jane.secret"),
        )


def queries(client: Client, path: str) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as context:
        response = client.get(path)
    assert response.status_code == 200, path
    return len(context.captured_queries), response.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/admin/tokens/apitoken/",
        "/admin/tokens/apitoken/?problem=yes",
        "/admin/tokens/metawebhookdelivery/",
        "/admin/tokens/metawebhookdelivery/?processed_at__isnull=True",
    ],
)
def test_changelists_run_a_constant_number_of_queries_and_show_no_secrets(staff, make_user, path):
    populate(make_user, 2)
    few, _ = queries(staff, path)
    populate(make_user, 8)
    many, page = queries(staff, path)
    assert few == many
    assert "secret-token-value" not in page
    assert SECRET_TEXT not in page
    assert "jane.secret" not in page


def test_detail_pages_show_the_status_reason_but_not_the_token_or_payload(staff, make_user):
    populate(make_user, 1)
    token = ApiToken.objects.latest("id")
    delivery = MetaWebhookDelivery.objects.latest("id")
    _, token_page = queries(staff, f"/admin/tokens/apitoken/{token.pk}/change/")
    assert "Meta error 190" in token_page
    assert "secret-token-value" not in token_page
    _, delivery_page = queries(staff, f"/admin/tokens/metawebhookdelivery/{delivery.pk}/change/")
    assert token.account_id in delivery_page
    assert SECRET_TEXT not in delivery_page


def test_reprocess_action_requeues_unprocessed_deliveries(staff, make_user):
    populate(make_user, 1)
    delivery = MetaWebhookDelivery.objects.latest("id")
    MetaWebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=5, last_error="KeyError")
    response = staff.post(
        "/admin/tokens/metawebhookdelivery/", {"action": "reprocess", "_selected_action": [delivery.pk]}, follow=True
    )
    assert response.status_code == 200
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.last_error) == (0, "")
