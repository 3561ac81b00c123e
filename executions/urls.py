from rest_framework.routers import SimpleRouter

from executions import views

router = SimpleRouter()
router.register("executions", views.ExecutionViewSet, basename="execution")

urlpatterns = router.urls
