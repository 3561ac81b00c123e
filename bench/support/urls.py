"""The real URLconf plus `/bench/trivial/`: a JSON view that does nothing (benchmark baseline)."""

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401
from config.urls import urlpatterns as real_urlpatterns


@csrf_exempt
def trivial(request: HttpRequest) -> JsonResponse:
    request.body  # read the body like the webhook does, then answer  # noqa: B018
    return JsonResponse({"ok": True})


urlpatterns = [path("bench/trivial/", trivial), *real_urlpatterns]
