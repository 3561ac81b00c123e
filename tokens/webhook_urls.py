from django.urls import path

from tokens.webhooks import meta_webhook

urlpatterns = [path("", meta_webhook, name="meta-webhook")]
