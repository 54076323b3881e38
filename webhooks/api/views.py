from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from transactions.api.views import NO_STORE
from wallet_project.core.pagination import PageFilter, list_page
from wallet_project.core.schema import error_responses
from webhooks.api.serializers import (
    DeliveryListFilter,
    WebhookCreateIn,
    WebhookDeliveryOut,
    WebhookDeliveryPageOut,
    WebhookOut,
    WebhookPageOut,
    WebhookUpdateIn,
    WebhookWithSecretOut,
    delivery_document,
    endpoint_document,
)
from webhooks.selectors import delivery_list, endpoint_get_for, endpoint_list
from webhooks.services import (
    delivery_redeliver,
    endpoint_create,
    endpoint_delete,
    endpoint_rotate_secret,
    endpoint_test,
    endpoint_update,
)

TAGS = ["webhooks"]


def _valid(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data, context={"staff": request.user.is_staff})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _with_secret(result) -> dict:
    return {**endpoint_document(result.endpoint), "secret": result.secret}


class WebhookViewSet(viewsets.ViewSet):
    """Webhook endpoints: signed events about the caller's wallets (staff: every event) sent to a URL."""

    @extend_schema(
        summary="Register an endpoint; the reply carries its signing secret, shown this once",
        request=WebhookCreateIn,
        responses={201: WebhookWithSecretOut, **error_responses(400, 401, 409, 429)},
        tags=TAGS,
    )
    def create(self, request):
        data = _valid(WebhookCreateIn, request)
        result = endpoint_create(
            owner=request.user, url=data["url"], event_types=data["event_types"], description=data["description"]
        )
        return Response(_with_secret(result), status=201, headers=NO_STORE)

    @extend_schema(
        summary="The caller's endpoints (staff: everyone's), newest first",
        parameters=[PageFilter],
        responses={200: WebhookPageOut, **error_responses(400, 401, 429)},
        tags=TAGS,
    )
    def list(self, request):
        query = PageFilter.parse(request.query_params)
        page = list_page(
            endpoint_list(user=request.user),
            endpoint_document,
            query,
            scope={"list": "webhooks", "viewer": request.user.pk},
        )
        return Response(page, headers=NO_STORE)

    @extend_schema(
        summary="One endpoint (its owner or staff); never its secret",
        responses={200: WebhookOut, **error_responses(401, 404, 429)},
        tags=TAGS,
    )
    def retrieve(self, request, endpoint_id: int):
        return Response(
            endpoint_document(endpoint_get_for(user=request.user, endpoint_id=endpoint_id)), headers=NO_STORE
        )

    @extend_schema(
        summary="Change the URL, the event types, the description, or enable / disable",
        request=WebhookUpdateIn,
        responses={200: WebhookOut, **error_responses(400, 401, 404, 429)},
        tags=TAGS,
    )
    def partial_update(self, request, endpoint_id: int):
        data = _valid(WebhookUpdateIn, request)
        endpoint = endpoint_update(user=request.user, endpoint_id=endpoint_id, **data)
        return Response(endpoint_document(endpoint), headers=NO_STORE)

    @extend_schema(
        summary="Delete an endpoint and its deliveries",
        responses={204: None, **error_responses(401, 404, 429)},
        tags=TAGS,
    )
    def destroy(self, request, endpoint_id: int):
        endpoint_delete(user=request.user, endpoint_id=endpoint_id)
        return Response(status=204)

    @extend_schema(
        summary="A new signing secret (shown once); the old one keeps signing for WEBHOOK_SECRET_GRACE_SECONDS",
        request=None,
        responses={200: WebhookWithSecretOut, **error_responses(401, 404, 429)},
        tags=TAGS,
    )
    def rotate_secret(self, request, endpoint_id: int):
        return Response(
            _with_secret(endpoint_rotate_secret(user=request.user, endpoint_id=endpoint_id)), headers=NO_STORE
        )

    @extend_schema(
        summary="Queue a webhook.test delivery (sent by the worker, to a disabled endpoint too)",
        request=None,
        responses={202: WebhookDeliveryOut, **error_responses(401, 404, 429)},
        tags=TAGS,
    )
    def test(self, request, endpoint_id: int):
        delivery = endpoint_test(user=request.user, endpoint_id=endpoint_id)
        return Response(delivery_document(delivery), status=202, headers=NO_STORE)

    @extend_schema(
        summary="The endpoint's deliveries, newest first, with their attempts and responses",
        parameters=[DeliveryListFilter],
        responses={200: WebhookDeliveryPageOut, **error_responses(400, 401, 404, 429)},
        tags=TAGS,
    )
    def deliveries(self, request, endpoint_id: int):
        query = DeliveryListFilter.parse(request.query_params)
        status = query.get("status")
        page = list_page(
            delivery_list(user=request.user, endpoint_id=endpoint_id, status=status),
            delivery_document,
            query,
            scope={"list": "webhook-deliveries", "endpoint": endpoint_id, "status": status},
        )
        return Response(page, headers=NO_STORE)

    @extend_schema(
        summary="Send a delivery again now, with a fresh retry schedule (same webhook-id)",
        request=None,
        responses={202: WebhookDeliveryOut, **error_responses(401, 404, 429)},
        tags=TAGS,
    )
    def redeliver(self, request, endpoint_id: int, delivery_id: int):
        delivery = delivery_redeliver(user=request.user, endpoint_id=endpoint_id, delivery_id=delivery_id)
        return Response(delivery_document(delivery), status=202, headers=NO_STORE)
