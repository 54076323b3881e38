"""Liveness and the catch-all 404 (readiness, which reads the outbox, is events.views.ready)."""

from __future__ import annotations

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


@csrf_exempt
def not_found(request: HttpRequest) -> JsonResponse:
    from .errors import handler404

    return handler404(request)
