"""Liveness and readiness."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import (
    api_view,
    authentication_classes,
    permission_classes,
    renderer_classes,
    throttle_classes,
)
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from . import publisher
from .models import OutboxEvent
from .schema import security


@extend_schema(
    summary="Liveness: touches nothing",
    tags=["ops"],
    auth=security({}),
    responses={200: inline_serializer("Health", {"status": serializers.CharField()})},
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
@renderer_classes([JSONRenderer])
@throttle_classes([])  # probes are never rate limited
def health(request: Request) -> Response:
    return Response({"status": "ok"})


@extend_schema(
    summary="Readiness: database reachable, broker state, outbox backlog",
    tags=["ops"],
    auth=security({}),
    responses={
        200: inline_serializer(
            "Ready",
            {
                "status": serializers.CharField(),
                "database": serializers.CharField(),
                "kafka": serializers.CharField(),
                "outbox_backlog": serializers.IntegerField(),
            },
        ),
        503: inline_serializer(
            "NotReady",
            {"status": serializers.CharField(), "database": serializers.CharField(), "kafka": serializers.CharField()},
        ),
    },
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
@renderer_classes([JSONRenderer])
@throttle_classes([])
def ready(request: Request) -> Response:
    kafka = publisher.broker_state()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        backlog = OutboxEvent.objects.filter(state=OutboxEvent.State.PENDING).count()
    except Exception:  # noqa: BLE001 - any database failure means "not ready"
        return Response({"status": "unavailable", "database": "unreachable", "kafka": kafka}, status=503)
    return Response({"status": "ready", "database": "connected", "kafka": kafka, "outbox_backlog": backlog})


@csrf_exempt
def not_found(request: HttpRequest) -> JsonResponse:
    from .errors import handler404

    return handler404(request)
