"""Bad input gets a clear 4xx JSON error: never a 500, never a partial write."""

from __future__ import annotations

import pytest

from flows.models import Flow

pytestmark = pytest.mark.django_db

GRAPH = {"nodes": [{"id": "t", "type": "trigger.manual", "config": {}}], "edges": []}


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["detail"]
    return body


def post_raw(client, path: str, body: bytes | str, content_type: str = "application/json"):
    return client.generic("POST", path, body, content_type=content_type)


def test_malformed_json(api):
    body = assert_json_error(post_raw(api, "/api/v1/flows/", b'{"name": "x", '), 400)
    assert "Malformed JSON" in body["detail"]


def test_deeply_nested_json(api):
    deep = "[" * 100_000 + "]" * 100_000
    body = assert_json_error(post_raw(api, "/api/v1/flows/", f'{{"name": "x", "flow_data": {deep}}}'), 400)
    assert "nested" in body["detail"]
    moderately = {"a": None}
    for _ in range(40):
        moderately = {"a": moderately}
    response = api.post("/api/v1/flows/", {"name": "x", "flow_data": moderately}, format="json")
    assert_json_error(response, 400)
    assert not Flow.objects.exists()


def test_nan_and_nul_are_refused(api):
    assert_json_error(post_raw(api, "/api/v1/flows/", b'{"name": "x", "flow_data": NaN}'), 400)
    body = assert_json_error(post_raw(api, "/api/v1/flows/", b'{"name": "x\\u0000y", "flow_data": {}}'), 400)
    assert "NUL" in body["detail"]
    assert not Flow.objects.exists()


def test_text_postgresql_cannot_store_is_refused(api, user):
    """Lone surrogates and infinite numbers are valid to json.loads, not to jsonb."""
    flow = Flow.objects.create(user=user, name="x", flow_data=GRAPH)
    label = b'{"name": "x", "flow_data": {"nodes": [{"id": "t", "type": "trigger.manual", "label": "\\ud800"}]}}'
    cases = [
        ("/api/v1/flows/", label),
        (f"/api/v1/flows/{flow.pk}/run/", b'{"trigger_data": {"text": "\\udfff\\ud800"}}'),
        (f"/api/v1/flows/{flow.pk}/run/", b'{"trigger_data": {"\\ud800": 1}}'),
        (f"/api/v1/flows/{flow.pk}/run/", b'{"trigger_data": {"n": 1e400}}'),
        (f"/api/v1/flows/{flow.pk}/run/", b'{"trigger_data": {"n": -1e400}}'),
    ]
    for path, raw in cases:
        body = assert_json_error(post_raw(api, path, raw), 400)
        assert "surrogates" in body["detail"] or "out of range" in body["detail"], body
    assert Flow.objects.count() == 1
    assert not flow.executions.exists()
    # A surrogate pair is one character (an emoji), stored as such.
    created = post_raw(api, "/api/v1/flows/", b'{"name": "\\ud83d\\ude00", "flow_data": {}}')
    assert created.status_code == 201
    assert created.json()["name"] == "\N{GRINNING FACE}"


def test_a_flow_webhook_refuses_unstorable_text(anon, user):
    graph = {
        "nodes": [
            {"id": "t", "type": "trigger.webhook", "config": {}},
            {"id": "s", "type": "logic.stop", "config": {}},
        ],
        "edges": [{"source": "t", "target": "s"}],
    }
    flow = Flow.objects.create(user=user, name="hook", flow_data=graph, status=Flow.Status.ACTIVE)
    url = f"/webhooks/flows/{flow.pk}/{flow.webhook_secret}/"
    for raw in (b'{"text": "\\ud800"}', b'{"n": 1e400}'):
        assert_json_error(post_raw(anon, url, raw), 400)
    assert not flow.executions.exists()


def test_wrong_types_and_missing_fields(api):
    body = assert_json_error(api.post("/api/v1/flows/", {"name": ["list"], "flow_data": "str"}, format="json"), 400)
    assert "name" in body["errors"]
    body = assert_json_error(api.post("/api/v1/flows/", {}, format="json"), 400)
    assert "name" in body["errors"]
    body = assert_json_error(post_raw(api, "/api/v1/flows/", b'["not", "an", "object"]'), 400)
    assert not Flow.objects.exists()


def test_values_of_the_wrong_json_type_are_not_coerced(api):
    body = assert_json_error(api.post("/api/v1/flows/", {"name": 5, "flow_data": GRAPH}, format="json"), 400)
    assert body["errors"] == {"name": ["Not a valid string."]}
    body = assert_json_error(api.post("/api/v1/knowledge/documents/", {"title": "t", "content": 0}, format="json"), 400)
    assert body["errors"] == {"content": ["Not a valid string."]}
    assert not Flow.objects.exists()


def test_max_length_counts_what_the_client_sent(api):
    body = assert_json_error(
        api.post("/api/v1/flows/", {"name": "x" * 200 + "   ", "flow_data": GRAPH}, format="json"), 400
    )
    assert body["errors"] == {"name": ["Ensure this field has no more than 200 characters."]}
    assert api.post("/api/v1/flows/", {"name": " x ", "flow_data": GRAPH}, format="json").json()["name"] == "x"


def test_blank_means_no_visible_character(api):
    # \x1c-\x1f are whitespace to str.strip(), though not to an ECMA regex's \s.
    for blank in (" \n\t", "\x1c\x1f"):
        body = api.post("/api/v1/knowledge/documents/", {"title": "t", "content": blank}, format="json").json()
        assert body["errors"] == {"content": ["This field may not be blank."]}


def test_unknown_fields(api):
    body = assert_json_error(
        api.post("/api/v1/flows/", {"name": "x", "flow_data": GRAPH, "colour": 1}, format="json"), 400
    )
    assert body["errors"] == {"colour": ["Unknown field."]}


def test_actions_without_input_refuse_a_body_and_change_nothing(api, user):
    from executions.models import FlowExecution
    from knowledge.models import Document

    flow = Flow.objects.create(user=user, name="f", flow_data=GRAPH)
    execution = FlowExecution.objects.create(flow=flow, user=user)
    document = Document.objects.create(user=user, title="t", content="c", status="failed")
    paths = [
        f"/api/v1/executions/{execution.pk}/cancel/",
        f"/api/v1/knowledge/documents/{document.pk}/retry/",
        "/api/v1/privacy/deletion-request/",
    ]
    for path in paths:
        body = assert_json_error(api.post(path, {"status": "succeeded"}, format="json"), 400)
        assert body["errors"] == {"status": ["Unknown field."]}, path
        assert_json_error(post_raw(api, path, "[]"), 400)
    assert FlowExecution.objects.get(pk=execution.pk).status == "pending"
    assert Document.objects.get(pk=document.pk).status == "failed"
    user.refresh_from_db()
    assert (user.is_active, user.deletion_requested_at) == (True, None)
    # No body, or an empty object, is the way to call them.
    assert api.post(paths[0]).status_code == 200
    assert api.post(paths[1], {}, format="json").status_code == 202


def test_oversized_bodies(api):
    huge = b'{"name": "x", "flow_data": {"blob": "' + b"a" * (5 * 1024 * 1024) + b'"}}'
    body = assert_json_error(post_raw(api, "/api/v1/flows/", huge), 413)
    assert "too large" in body["detail"]
    assert not Flow.objects.exists()


def test_unsupported_media_type(api):
    assert_json_error(post_raw(api, "/api/v1/flows/", b"name=x", content_type="application/x-www-form-urlencoded"), 415)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/flows/99999999999999999999999/",
        "/api/v1/flows/9223372036854775808/",
        "/api/v1/flows/-1/",
        "/api/v1/flows/abc/",
        "/api/v1/executions/99999999999999999999999/",
        "/api/v1/tokens/99999999999999999999999/",
        "/api/v1/nope/",
    ],
)
def test_out_of_range_and_unknown_ids(api, path):
    assert_json_error(api.get(path), 404)


def test_ids_are_ascii_digits(api, user):
    flow = Flow.objects.create(user=user, name="x", flow_data=GRAPH)
    arabic_indic = "".join(chr(0x660 + int(digit)) for digit in str(flow.pk))
    assert_json_error(api.get(f"/api/v1/flows/{arabic_indic}/"), 404)
    assert api.get(f"/api/v1/flows/{flow.pk}/").status_code == 200


def test_out_of_range_ids_in_filters(api):
    response = api.get("/api/v1/executions/", {"flow": "99999999999999999999999"})
    assert_json_error(response, 400)
    assert_json_error(api.get("/api/v1/executions/", {"flow": "12.5"}), 400)  # not flow 12
    assert api.get("/api/v1/executions/", {"flow": "12"}).json()["results"] == []


def test_nul_bytes_in_query_strings(api):
    for query in ("status=dr%00aft", "uses_node=%00", "page=1%00"):
        body = assert_json_error(api.get(f"/api/v1/flows/?{query}"), 400)
        assert "NUL" in body["detail"]


def test_bad_page_numbers(api):
    assert_json_error(api.get("/api/v1/flows/", {"page": "999"}), 404)
    assert api.get("/api/v1/flows/", {"page_size": "100000"}).status_code == 200
    for bad in ("abc", "0", "-1", "1.5"):
        body = assert_json_error(api.get("/api/v1/flows/", {"page_size": bad}), 400)
        assert body["errors"] == {"page_size": ["A positive integer is required."]}
    assert api.get("/api/v1/flows/?page_size=").status_code == 200  # empty: the default


def test_update_failures_leave_the_row_as_it_was(api, user):
    flow = Flow.objects.create(user=user, name="keep", flow_data=GRAPH)
    bad = {"name": "changed", "flow_data": {"nodes": "not a list"}}
    assert_json_error(api.put(f"/api/v1/flows/{flow.pk}/", bad, format="json"), 400)
    assert_json_error(post_raw(api, f"/api/v1/flows/{flow.pk}/", b"{"), 405)
    flow.refresh_from_db()
    assert flow.name == "keep"
