from rest_framework.routers import SimpleRouter

from tokens import views

router = SimpleRouter()
router.register("tokens", views.ApiTokenViewSet, basename="token")

urlpatterns = router.urls
