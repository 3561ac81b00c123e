"""Admin pages of the Meta integration: constant queries, no token, no message text."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tokens.models import ApiToken, ContactWindow, MetaWebhookDelivery, PrivateReply
from tokens.tests.meta import comment_payload, connect

pytestmark = pytest.mark.django_db

_ids = itertools.count(1)
SECRET_TEXT = "my private question about the price"


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
        now = timezone.now()
        ContactWindow.objects.create(token=token, contact_id=f"555{index:06d}", last_inbound_at=now)
        ContactWindow.objects.create(token=token, contact_id=f"556{index:06d}", last_inbound_at=now - timedelta(days=2))
        PrivateReply.objects.create(
            token=token, comment_id=f"179{index:06d}", contact_id=f"555{index:06d}", status="sent", sent_at=now
        )
        PrivateReply.objects.create(
            token=token,
            comment_id=f"178{index:06d}",
            execution_id=index,
            node_id="a",
            created_at=now - timedelta(hours=1),
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
        "/admin/tokens/contactwindow/",
        "/admin/tokens/contactwindow/?window=open&token__provider=instagram",
        "/admin/tokens/contactwindow/?q=555000001",
        "/admin/tokens/privatereply/",
        "/admin/tokens/privatereply/?stuck=yes&status=sending",
        "/admin/tokens/privatereply/?q=179000001",
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


def test_contact_windows_are_read_only_and_say_whether_the_window_is_open(staff, make_user):
    populate(make_user, 1)
    open_window, closed = ContactWindow.objects.order_by("-last_inbound_at")
    page = staff.get("/admin/tokens/contactwindow/?window=open").content.decode()
    assert open_window.contact_id in page
    assert closed.contact_id not in page
    assert f"Instagram {open_window.token.account_id}" in page
    found = staff.get(f"/admin/tokens/contactwindow/?q={closed.contact_id}").content.decode()
    assert closed.contact_id in found
    assert open_window.contact_id not in found
    change = staff.get(f"/admin/tokens/contactwindow/{open_window.pk}/change/")
    assert change.status_code == 200
    assert "secret-token-value" not in change.content.decode()
    assert 'name="_save"' not in change.content.decode()
    assert staff.get("/admin/tokens/contactwindow/add/").status_code == 403
    assert staff.post(f"/admin/tokens/contactwindow/{open_window.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ContactWindow.objects.count() == 2


def test_only_stuck_private_reply_claims_can_be_released(staff, make_user):
    populate(make_user, 1)
    sent = PrivateReply.objects.get(status="sent")
    stuck = PrivateReply.objects.get(status="sending")
    recent = PrivateReply.objects.create(token=stuck.token, comment_id="1770000001", execution_id=9, node_id="a")

    assert staff.get("/admin/tokens/privatereply/add/").status_code == 403
    for reply in (sent, recent):  # a sent reply stops a second one; a recent claim may be mid-call
        assert staff.post(f"/admin/tokens/privatereply/{reply.pk}/delete/", {"post": "yes"}).status_code == 403
    changelist = staff.get("/admin/tokens/privatereply/").content.decode()
    assert "delete_selected" not in changelist
    assert staff.get(f"/admin/tokens/privatereply/?q={sent.comment_id}").content.decode().count(sent.comment_id)
    assert staff.get(f"/admin/tokens/privatereply/{stuck.pk}/delete/").status_code == 200

    response = staff.post(
        "/admin/tokens/privatereply/",
        {"action": "release", "_selected_action": [sent.pk, stuck.pk, recent.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "1 stuck claims released" in response.content.decode()
    assert set(PrivateReply.objects.values_list("pk", flat=True)) == {sent.pk, recent.pk}
