from django.urls import path

from accounts import privacy_views, views

urlpatterns = [
    path("auth/register/", views.RegisterView.as_view(), name="auth-register"),
    path("auth/token/", views.TokenView.as_view(), name="auth-token"),
    path("me/", views.MeView.as_view(), name="me"),
    path("privacy/export/", privacy_views.ExportView.as_view(), name="privacy-export"),
    path("privacy/deletion-request/", privacy_views.DeletionRequestView.as_view(), name="privacy-deletion-request"),
]
