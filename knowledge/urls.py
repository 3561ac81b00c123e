from django.urls import path
from rest_framework.routers import SimpleRouter

from knowledge import views

router = SimpleRouter()
router.register("documents", views.DocumentViewSet, basename="knowledge-document")

urlpatterns = [path("search/", views.SearchView.as_view(), name="knowledge-search"), *router.urls]
