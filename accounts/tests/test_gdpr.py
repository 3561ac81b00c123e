"""GDPR: deletion requests, the purge (scan every table and Redis), contacts, export."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
import redis
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accounts import gdpr, ledger
from accounts.models import ApiKey, DeletionRecord, User
from accounts.sessions import user_key
from conftest import PASSWORD, TEST_REDIS_URL
from executions.models import FlowExecution
from executions.services import start_execution
from flows.models import Flow
from knowledge.ingestion import ingest
from knowledge.models import Chunk
from knowledge.services import create_document
from tokens.models import ApiToken, ContactWindow, MetaWebhookDelivery, PrivateReply

pytestmark = pytest.mark.django_db

SCHEDULED = {
    "nodes": [
        {"id": "t", "type": "trigger.schedule", "config": {"cron": "0 9 * * *"}},
        {"id": "s", "type": "logic.set", "config": {"values": {"x": 1}}},
    ],
    "edges": [{"source": "t", "target": "s"}],
}


@pytest.fixture(autouse=True)
def _ledger_in_tmp(settings, tmp_path, monkeypatch):
    settings.GDPR_LEDGER_PATH = tmp_path / "ledger.jsonl"
    monkeypatch.setenv("GDPR_LEDGER_PATH", str(settings.GDPR_LEDGER_PATH))


def populate(user: User, marker: str, account_id: str, contact_id: str, executions: int = 3) -> None:
    """Everything a client accumulates, each piece carrying `marker` so a scan can find it."""
    flow = Flow.objects.create(user=user, name=f"{marker} flow", flow_data=SCHEDULED, status=Flow.Status.ACTIVE)
    from flows.schedules import sync_schedule

    sync_schedule(flow)
    FlowExecution.objects.bulk_create(
        FlowExecution(
            flow=flow,
            user=user,
            status="succeeded",
            trigger_data={"provider": "instagram", "from_id": contact_id, "text": f"{marker} hello"},
            execution_log=[{"node_id": "s", "status": "succeeded", "output": {"said": f"{marker} reply"}}],
            completed_at=timezone.now(),
        )
        for _ in range(executions)
    )
    token = ApiToken(user=user, provider="instagram", account_id=account_id)
    token.set_token(f"IGQVJ{marker}secrettoken0000")
    token.save()
    ContactWindow.objects.create(token=token, contact_id=contact_id, last_inbound_at=timezone.now())
    PrivateReply.objects.create(token=token, comment_id=f"{account_id}1", contact_id=contact_id, status="sent")
    MetaWebhookDelivery.objects.create(
        object="instagram",
        payload={
            "entry": [{"id": account_id, "messaging": [{"sender": {"id": contact_id}, "message": {"text": marker}}]}]
        },
    )
    document = create_document(user=user, title=f"{marker} FAQ", content=f"{marker} returns are free within 30 days.")
    ingest(document.pk, document.generation)
    api_key, _ = ApiKey.issue(user)
    cache.set(user_key(user.pk, "recent"), marker)
    # Staff's admin history keeps str(object): a title, an account id, a key prefix.
    staff = User.objects.create_user(
        f"staff.{user.pk}.{marker.lower()}@example.com", PASSWORD, name="Staff", role="admin"
    )
    for logged in (user, flow, document, token, api_key, FlowExecution.objects.filter(user=user).first()):
        LogEntry.objects.create(
            user_id=staff.pk,
            content_type=ContentType.objects.get_for_model(logged),
            object_id=str(logged.pk),
            object_repr=f"{marker} {logged}"[:200],
            action_flag=CHANGE,
        )


def table_names() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return [row[0] for row in cursor.fetchall()]


def foreign_keys_to_users() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT conrelid::regclass::text, a.attname FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
            WHERE c.contype = 'f' AND c.confrelid = 'users'::regclass
            """
        )
        return cursor.fetchall()


def rows_mentioning(needles: list[str]) -> list[tuple[str, str]]:
    found = []
    with connection.cursor() as cursor:
        for table in table_names():
            cursor.execute(f'SELECT t::text FROM "{table}" t')  # noqa: S608 (names from pg_tables)
            for (text,) in cursor.fetchall():
                found += [(table, needle) for needle in needles if needle in text]
    return found


def redis_mentioning(needles: list[str]) -> list[str]:
    client = redis.Redis.from_url(TEST_REDIS_URL)
    found = []
    for key in client.scan_iter(count=500):
        value = client.dump(key) or b""
        found += [needle for needle in needles if needle.encode() in key or needle.encode() in value]
    return found


def test_a_deletion_request_disables_the_account_at_once(client_for, make_user):
    user = make_user(email="leaving@example.com")
    api = client_for(user)
    browser = Client()
    browser.force_login(user)
    session_key = browser.session.session_key
    flow = Flow.objects.create(user=user, name="f", flow_data=SCHEDULED, status=Flow.Status.ACTIVE)
    from flows.schedules import sync_schedule

    sync_schedule(flow)
    pending = FlowExecution.objects.create(flow=flow, user=user)
    delay = {"node_id": "d", "type": "logic.delay", "status": "waiting", "finished_at": None}
    waiting = FlowExecution.objects.create(
        flow=flow, user=user, status="waiting", resume_at=timezone.now(), execution_log=[delay]
    )
    running = FlowExecution.objects.create(flow=flow, user=user, status="running")

    response = api.post("/api/v1/privacy/deletion-request/")

    assert response.status_code == 202
    assert response.json()["status"] == "scheduled"
    user.refresh_from_db()
    assert user.is_active is False
    assert user.deletion_requested_at is not None
    assert api.get("/api/v1/me/").status_code == 401  # the key is revoked
    token = Client().post(
        "/api/v1/auth/token/", {"email": "leaving@example.com", "password": PASSWORD}, content_type="application/json"
    )
    assert token.status_code == 400
    assert cache.get(f"django.contrib.sessions.cache{session_key}") is None
    assert browser.get("/admin/").status_code == 302
    flow.refresh_from_db()
    assert flow.status == "paused"
    assert not PeriodicTask.objects.filter(name=f"flow-{flow.pk}-schedule").exists()
    assert FlowExecution.objects.get(pk=pending.pk).status == "cancelled"
    waiting.refresh_from_db()
    assert waiting.status == "cancelled"
    assert waiting.execution_log[-1]["status"] == "cancelled"  # no step left waiting on a finished run
    assert waiting.execution_log[-1]["error"] == "Cancelled: the account is being deleted."
    assert FlowExecution.objects.get(pk=running.pk).cancel_requested is True


def test_the_admin_action_disables_the_accounts_at_once(make_user, client_for):
    staff = make_user(role=User.Role.ADMIN, is_superuser=True)
    browser = Client()
    browser.force_login(staff)
    leaving = make_user()
    api = client_for(leaving)
    flow = Flow.objects.create(user=leaving, name="f", flow_data=SCHEDULED, status=Flow.Status.ACTIVE)
    pending = FlowExecution.objects.create(flow=flow, user=leaving)

    response = browser.post(
        "/admin/accounts/user/", {"action": "request_deletion", "_selected_action": [leaving.pk]}, follow=True
    )

    assert response.status_code == 200
    leaving.refresh_from_db()
    assert leaving.is_active is False
    assert leaving.deletion_requested_at is not None
    assert api.get("/api/v1/me/").status_code == 401
    assert Flow.objects.get(pk=flow.pk).status == "paused"
    assert FlowExecution.objects.get(pk=pending.pk).status == "cancelled"
    assert User.objects.get(pk=staff.pk).is_active  # only the selected account


def test_a_withdrawn_request_is_not_purged_and_nothing_restarts(make_user, client_for):
    from accounts.models import ApiKey

    staff = make_user(role=User.Role.ADMIN, is_superuser=True)
    browser = Client()
    browser.force_login(staff)
    changed_mind = make_user()
    old_api = client_for(changed_mind)
    flow = Flow.objects.create(user=changed_mind, name="f", flow_data=SCHEDULED, status=Flow.Status.ACTIVE)
    gdpr.request_deletion(changed_mind)

    browser.post("/admin/accounts/user/", {"action": "cancel_deletion", "_selected_action": [changed_mind.pk]})

    changed_mind.refresh_from_db()
    assert (changed_mind.is_active, changed_mind.deletion_requested_at) == (True, None)
    assert not gdpr.users_due(grace_days=0).filter(pk=changed_mind.pk).exists()
    assert old_api.get("/api/v1/me/").status_code == 401  # revoked keys stay revoked
    assert Flow.objects.get(pk=flow.pk).status == "paused"  # the owner turns it back on
    assert client_for(changed_mind).get("/api/v1/me/").status_code == 200
    assert ApiKey.objects.filter(user=changed_mind, revoked_at__isnull=True).count() == 1


def test_an_account_staff_reenabled_by_hand_is_not_purged(make_user):
    kept = make_user()
    gdpr.request_deletion(kept)
    User.objects.filter(pk=kept.pk).update(is_active=True)
    assert not gdpr.users_due(grace_days=0).exists()


@pytest.mark.django_db(transaction=True)  # the purge VACUUMs, which needs autocommit
def test_the_purge_leaves_nothing_of_the_user_and_spares_others(make_user, client_for, settings):
    leaving = make_user(email="gone@example.com", name="Gone Person")
    staying = make_user(email="kept@example.com", name="Kept Person")
    populate(leaving, "ZZGONEZZ", "17841400000001", "5550001")
    populate(staying, "KKKEPTKK", "17841400000002", "5550002")
    # A search leaves the caller's throttle history in Redis, keyed by user id.
    assert client_for(leaving).get("/api/v1/knowledge/search/", {"q": "returns"}).status_code == 200
    gdpr.request_deletion(leaving)
    identifiers = {
        "id": leaving.pk,
        "email_hash": leaving.email_hash,
        "prefix": ApiKey.objects.filter(user=leaving).earliest("id").prefix,
    }
    kept_before = rows_mentioning(["KKKEPTKK"])

    call_command("gdpr_purge", grace_days=0, stdout=open("/dev/null", "w"))  # noqa: SIM115

    assert not User.objects.filter(pk=identifiers["id"]).exists()
    assert rows_mentioning(["ZZGONEZZ", identifiers["email_hash"], identifiers["prefix"], "17841400000001"]) == []
    for table, column in foreign_keys_to_users():
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT count(*) FROM {table} WHERE "{column}" = %s', [identifiers["id"]])  # noqa: S608
            assert cursor.fetchone()[0] == 0, f"{table}.{column} still points at the purged user"
    assert redis_mentioning(["ZZGONEZZ", f":user:{identifiers['id']}:", f"throttle_search_{identifiers['id']}"]) == []

    assert rows_mentioning(["KKKEPTKK"]) == kept_before
    assert User.objects.get(pk=staying.pk).email == "kept@example.com"
    assert FlowExecution.objects.filter(user=staying).count() == 3
    assert Chunk.objects.filter(user=staying).exists()
    assert cache.get(user_key(staying.pk, "recent")) == "KKKEPTKK"

    record = DeletionRecord.objects.get()
    assert record.subject == "user"
    assert record.counts["flow_executions"] == 3
    assert record.counts["knowledge_chunks"] >= 1
    assert "ZZGONEZZ" not in json.dumps(record.counts)
    assert json.loads(settings.GDPR_LEDGER_PATH.read_text())["pseudonym"] == record.pseudonym


def test_the_purge_runs_a_bounded_number_of_queries(make_user):
    def queries_to_purge(executions: int) -> int:
        user = make_user()
        populate(user, "QQ", f"1784{executions:010d}", "5550003", executions=executions)
        gdpr.request_deletion(user)
        with CaptureQueriesContext(connection) as context:
            gdpr.purge_user(User.objects.get(pk=user.pk), batch_size=1000)
        return len(context.captured_queries)

    queries_to_purge(1)  # warm Django's caches (content types) first
    assert queries_to_purge(20) == queries_to_purge(400)


@pytest.mark.django_db(transaction=True)
def test_grace_period_dry_run_and_idempotence(make_user, capsys):
    user = make_user()
    populate(user, "GRACE", "17841400000009", "5550009")
    gdpr.request_deletion(user)

    call_command("gdpr_purge", dry_run=True, grace_days=0)
    assert f"would purge user {user.pk}" in capsys.readouterr().out
    call_command("gdpr_purge")  # default grace: 30 days, not yet
    assert User.objects.filter(pk=user.pk).exists()

    User.objects.filter(pk=user.pk).update(deletion_requested_at=timezone.now() - timedelta(days=31))
    call_command("gdpr_purge", user=user.pk)
    call_command("gdpr_purge", user=user.pk)  # nothing left: a no-op
    assert not User.objects.filter(pk=user.pk).exists()
    assert DeletionRecord.objects.count() == 1


def test_a_ledger_line_cut_short_by_a_crash_does_not_swallow_the_next(make_user, settings):
    user = make_user()
    gdpr.request_deletion(user)
    settings.GDPR_LEDGER_PATH.write_text('{"subject": "user", "pseud')  # the process died mid-write

    record = gdpr.purge_user(User.objects.get(pk=user.pk))

    assert [entry["pseudonym"] for entry in ledger.read()] == [record.pseudonym]


@pytest.mark.django_db(transaction=True)
def test_overlapping_runs_skip_a_locked_user(make_user):
    user = make_user()
    gdpr.request_deletion(user)
    other = connection.copy()
    with other.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s::bigint)", [gdpr.lock_key(f"user:{user.pk}")])
        assert gdpr.purge_user(user) is None
        assert User.objects.filter(pk=user.pk).exists()
        cursor.execute("SELECT pg_advisory_unlock(%s::bigint)", [gdpr.lock_key(f"user:{user.pk}")])
    other.close()
    assert gdpr.purge_user(user) is not None


def hnsw_indexes() -> dict[str, bool]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_am am ON am.oid = c.relam WHERE i.indrelid = 'knowledge_chunks'::regclass AND am.amname = 'hnsw'"
        )
        return dict(cursor.fetchall())


@pytest.mark.django_db(transaction=True)
def test_retraining_after_an_interrupted_rebuild_leaves_one_index(make_user):
    populate(make_user(), "REBUILD", "17841400000031", "5550031")
    before = hnsw_indexes()
    # What a REINDEX CONCURRENTLY killed midway leaves: an invalid copy named *_ccnew.
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE INDEX knowledge_chunks_hnsw_384_ccnew ON knowledge_chunks "
            "USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE dim = 384"
        )
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'knowledge_chunks_hnsw_384_ccnew'::regclass"
        )

    gdpr.after_purge()

    assert hnsw_indexes() == before  # the debris is dropped, not rebuilt into a duplicate index
    assert all(before.values())


@pytest.mark.django_db(transaction=True)
def test_overlapping_retraining_runs_take_turns(make_user):
    user = make_user()
    populate(user, "TURNS", "17841400000032", "5550032")
    document = user.knowledge_documents.get()
    with connection.cursor() as cursor:  # enough vectors that one rebuild lasts while the other starts
        cursor.execute(
            "INSERT INTO knowledge_chunks (user_id, document_id, generation, position, text, embedding, embedder, dim) "
            "SELECT %s, %s, 99, g, 'x', (SELECT array_agg(random())::vector FROM generate_series(1, 384) d "
            "WHERE g > 0), 'hashing', 384 FROM generate_series(1, 6000) g",
            [user.pk, document.pk],
        )
    before = hnsw_indexes()
    start, errors = threading.Barrier(2), []

    def retrain() -> None:
        try:
            start.wait()
            gdpr.after_purge()
        except Exception as exc:  # a deadlock, reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=retrain) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert hnsw_indexes() == before


def test_contact_erasure_scrubs_one_customer_across_clients(make_user):
    first, second = make_user(), make_user()
    populate(first, "CLIENTA", "17841400000011", "7770001")
    populate(second, "CLIENTB", "17841400000012", "7770001")  # the same person wrote to both
    echo = {"sender": {"id": "17841400000011"}, "recipient": {"id": "7770001"}, "message": {"is_echo": True}}
    MetaWebhookDelivery.objects.create(object="instagram", payload={"entry": [{"messaging": [echo]}]})
    bystander = FlowExecution.objects.filter(user=first).first()
    FlowExecution.objects.create(
        flow=bystander.flow, user=first, trigger_data={"provider": "instagram", "from_id": "8880000", "text": "other"}
    )

    call_command("gdpr_purge", contact="instagram:7770001", stdout=open("/dev/null", "w"))  # noqa: SIM115

    scrubbed = FlowExecution.objects.filter(trigger_data__from_id="7770001")
    assert not scrubbed.exists()
    erased = FlowExecution.objects.filter(trigger_data__erased=True)
    assert erased.count() == 6
    assert all(entry["output"] is None for run in erased for entry in run.execution_log)
    assert FlowExecution.objects.filter(trigger_data__from_id="8880000").exists()
    assert not ContactWindow.objects.filter(contact_id="7770001").exists()
    assert not PrivateReply.objects.filter(contact_id="7770001").exists()
    assert not MetaWebhookDelivery.objects.mentioning("7770001").exists()
    assert DeletionRecord.objects.get().subject == "contact"
    assert rows_mentioning(["7770001"]) == []


def test_reapplying_the_ledger_erases_a_contact_again(make_user):
    user = make_user()
    populate(user, "AGAIN", "17841400000041", "5550041")
    flow = Flow.objects.get(user=user)
    # As restored from a backup taken before the erasure: the person is only in a manual
    # run, whose trigger data names no provider.
    FlowExecution.objects.create(flow=flow, user=user, trigger_data={"from_id": "7770041", "text": "AGAIN manual"})
    pseudonym = gdpr.contact_pseudonym("instagram", "7770041")
    ledger.append(DeletionRecord.Subject.CONTACT, pseudonym, timezone.now().isoformat(), {})

    outcome = gdpr.reapply_ledger()

    assert outcome["contacts_erased"] == 1
    assert not FlowExecution.objects.filter(trigger_data__from_id="7770041").exists()
    assert rows_mentioning(["7770041"]) == []


def test_bad_contact_specs_are_refused(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="instagram:<numeric id>"):
        call_command("gdpr_purge", contact="whatsapp:123")


def test_the_export_runs_a_constant_number_of_queries(client_for, make_user):
    def queries_to_export(accounts: int) -> int:
        user = make_user()
        for index in range(accounts):
            populate(user, f"EXPORT{index}", f"1784{user.pk:07d}{index:03d}", f"555{index}", executions=accounts)
        api = client_for(user)
        with CaptureQueriesContext(connection) as context:
            response = api.get("/api/v1/privacy/export/")
            body = json.loads(b"".join(response.streaming_content))
        assert len(body["flows"]) == accounts
        return len(context.captured_queries)

    queries_to_export(1)  # warm caches
    assert queries_to_export(1) == queries_to_export(4)


def test_export_returns_all_of_the_callers_data_decrypted(client_for, make_user):
    user = make_user(email="mine@example.com", name="Export Me")
    other = make_user()
    populate(user, "MYDATA", "17841400000021", "5550021")
    populate(other, "NOTMINE", "17841400000022", "5550022")
    flow = Flow.objects.get(user=user)
    start_execution(flow=flow, trigger_type="trigger.manual", trigger_data={})

    response = client_for(user).get("/api/v1/privacy/export/")

    assert response.status_code == 200
    body = json.loads(b"".join(response.streaming_content))
    assert body["user"]["email"] == "mine@example.com"
    assert body["user"]["name"] == "Export Me"
    assert [f["name"] for f in body["flows"]] == ["MYDATA flow"]
    assert [v["flow_data"] for v in body["flow_versions"]] == [flow.flow_data]
    assert len(body["executions"]) == 4
    assert body["knowledge_documents"][0]["content"].startswith("MYDATA")
    assert body["connected_accounts"][0]["account_id"] == "17841400000021"
    text = json.dumps(body)
    assert "IGQVJ" not in text  # access tokens are not exported
    assert "NOTMINE" not in text
    assert len(body["api_keys"]) == 2
