from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from currencies.api.serializers import CurrencyOut
from currencies.selectors import currency_document, currency_get, currency_list_active
from wallet_project.core.schema import error_responses


class CurrencyViewSet(viewsets.ViewSet):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        summary="Active currencies, ordered by id (a bare array)",
        responses={200: CurrencyOut(many=True)},
        tags=["currencies"],
    )
    def list(self, request):
        return Response([currency_document(c) for c in currency_list_active()])

    @extend_schema(summary="One currency", responses={200: CurrencyOut, **error_responses(404)}, tags=["currencies"])
    def retrieve(self, request, pk: int):
        return Response(currency_document(currency_get(currency_id=int(pk), active_only=False)))
