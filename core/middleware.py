"""Request guards and security headers that apply to every response."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core.views import json_error

# The admin and the Swagger UI are the only HTML pages; both load scripts from our own
# static files (Swagger UI through drf-spectacular-sidecar), so no inline scripts run.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
    "object-src 'none'"
)


class SecurityHeadersMiddleware:
    """Headers Django's SecurityMiddleware does not set."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        response.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        # Django's XFrameOptionsMiddleware sits innermost and so misses the answers of the
        # middleware around it (static files, the request guard below).
        if not getattr(response, "xframe_options_exempt", False):
            response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
        if request.path.startswith(("/api/", "/webhooks/")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


class RequestGuardMiddleware:
    """Refuse requests that would otherwise fail deep inside a view.

    - NUL characters in the path, the query string or a header (an Idempotency-Key, say):
      PostgreSQL cannot store or compare them.
    - A declared body larger than MAX_REQUEST_BODY_BYTES: refused before anything reads it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw_query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "\x00" in unquote(raw_query) or "%00" in raw_query.lower():
            return json_error(400, "NUL characters are not allowed in the URL.", "nul_in_url")
        for name, value in request.META.items():
            if name.startswith("HTTP_") and isinstance(value, str) and "\x00" in value:
                header = name[5:].replace("_", "-").title()
                return json_error(400, f"NUL characters are not allowed in the {header} header.", "nul_in_header")
        length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            declared = int(length)
        except ValueError:
            return json_error(400, "Content-Length must be an integer.", "bad_content_length")
        if declared > settings.MAX_REQUEST_BODY_BYTES:
            return json_error(
                413,
                f"The request body is too large (limit {settings.MAX_REQUEST_BODY_BYTES} bytes).",
                "payload_too_large",
            )
        return self.get_response(request)
