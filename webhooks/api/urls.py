from django.urls import path

from webhooks.api.views import WebhookViewSet

urlpatterns = [
    path("webhooks", WebhookViewSet.as_view({"get": "list", "post": "create"}), name="webhook-list"),
    path(
        "webhooks/<id:endpoint_id>",
        WebhookViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="webhook-detail",
    ),
    path(
        "webhooks/<id:endpoint_id>/rotate-secret",
        WebhookViewSet.as_view({"post": "rotate_secret"}),
        name="webhook-rotate-secret",
    ),
    path("webhooks/<id:endpoint_id>/test", WebhookViewSet.as_view({"post": "test"}), name="webhook-test"),
    path(
        "webhooks/<id:endpoint_id>/deliveries",
        WebhookViewSet.as_view({"get": "deliveries"}),
        name="webhook-deliveries",
    ),
    path(
        "webhooks/<id:endpoint_id>/deliveries/<id:delivery_id>/redeliver",
        WebhookViewSet.as_view({"post": "redeliver"}),
        name="webhook-redeliver",
    ),
]
