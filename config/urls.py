from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core.ratelimit import rate_limited
from core.views import healthz
from executions.views import flow_webhook

api_v1 = [
    path("", include("accounts.urls")),
    path("", include("flows.urls")),
    path("", include("executions.urls")),
    path("", include("tokens.urls")),
    path("knowledge/", include("knowledge.urls")),
]

# Staff passwords guard the most: the admin's sign-in form has the API's sign-in limit.
admin_login = rate_limited("auth", methods=("POST",))(admin.site.login)

urlpatterns = [
    path("admin/login/", admin_login),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("webhooks/meta/", include("tokens.webhook_urls")),
    path("webhooks/flows/<int:flow_id>/<str:secret>/", flow_webhook, name="flow-webhook"),
    path("healthz", healthz, name="healthz"),
]

handler400 = "core.views.bad_request"
handler403 = "core.views.permission_denied"
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"
