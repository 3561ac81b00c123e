from rest_framework.routers import SimpleRouter

from flows import views

router = SimpleRouter()
router.register("node-types", views.NodeTypeViewSet, basename="node-type")
router.register("flows", views.FlowViewSet, basename="flow")

urlpatterns = router.urls
