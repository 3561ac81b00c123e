"""The real URLconf plus benchmark baselines (never served by production):

- `/bench/trivial/`: a JSON view that does nothing (bench/webhooks.py);
- `/bench/flows/` and `/bench/flows/<id>/`: the flow list and detail of the REST API written
  with Django only (bench/load.py). Same API key lookup as accounts.authentication, same
  queries, same pagination (page of 50 with a count), same fields and the same JSON bytes
  as DRF's renderer, so the difference from `/api/v1/flows/` is what DRF itself costs.
"""

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path, reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from accounts.models import ApiKey
from config.urls import handler400, handler403, handler404, handler500  # noqa: F401
from config.urls import urlpatterns as real_urlpatterns
from core.api import Pagination
from core.views import json_error
from flows.models import Flow


@csrf_exempt
def trivial(request: HttpRequest) -> JsonResponse:
    request.body  # read the body like the webhook does, then answer  # noqa: B018
    return JsonResponse({"ok": True})


def _caller(request: HttpRequest):
    """The user of `Authorization: Token <key>`, looked up as ApiKeyAuthentication does."""
    keyword, _, key = request.headers.get("Authorization", "").partition(" ")
    if keyword != "Token" or not key.strip():
        return None
    try:
        api_key = ApiKey.objects.active().select_related("user").get(key_hash=ApiKey.hash_key(key.strip()))
    except ApiKey.DoesNotExist:
        return None
    api_key.touch()
    return api_key.user


def _timestamp(value) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _flow(request: HttpRequest, flow: Flow) -> dict:
    webhook_url = None
    if flow.trigger_type == "trigger.webhook":
        webhook_url = request.build_absolute_uri(
            reverse("flow-webhook", kwargs={"flow_id": flow.pk, "secret": flow.webhook_secret})
        )
    return {
        "id": flow.pk,
        "name": flow.name,
        "flow_data": flow.flow_data,
        "status": flow.status,
        "webhook_url": webhook_url,
        "created_at": _timestamp(flow.created_at),
        "updated_at": _timestamp(flow.updated_at),
    }


def _json(data) -> HttpResponse:
    # What rest_framework.renderers.JSONRenderer writes: compact, UTF-8, no NaN.
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return HttpResponse(body.encode(), content_type="application/json")


def _unauthorized() -> JsonResponse:
    response = json_error(401, "Authentication credentials were not provided.", "not_authenticated")
    response["WWW-Authenticate"] = "Token"
    return response


@require_GET
def plain_flow_list(request: HttpRequest) -> HttpResponse:
    user = _caller(request)
    if user is None:
        return _unauthorized()
    flows = Flow.objects.filter(user=user)
    count = flows.count()
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return json_error(404, "Invalid page.", "not_found")
    size = Pagination.page_size
    rows = list(flows[(page - 1) * size : page * size])
    if page > 1 and not rows:
        return json_error(404, "Invalid page.", "not_found")
    here = request.build_absolute_uri(request.path)
    return _json(
        {
            "count": count,
            "next": f"{here}?page={page + 1}" if page * size < count else None,
            "previous": (f"{here}?page={page - 1}" if page > 2 else here) if page > 1 else None,
            "results": [_flow(request, flow) for flow in rows],
        }
    )


@require_GET
def plain_flow_detail(request: HttpRequest, flow_id: int) -> HttpResponse:
    user = _caller(request)
    if user is None:
        return _unauthorized()
    try:
        flow = Flow.objects.filter(user=user).get(pk=flow_id)
    except Flow.DoesNotExist:
        return json_error(404, "Not found.", "not_found")
    return _json(_flow(request, flow))


urlpatterns = [
    path("bench/trivial/", trivial),
    path("bench/flows/", plain_flow_list),
    path("bench/flows/<int:flow_id>/", plain_flow_detail),
    *real_urlpatterns,
]
