from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from audit.api.serializers import BalanceHistoryPageOut
from audit.selectors import balance_history_document, balance_history_queryset
from wallet_project.core.pagination import paginate
from wallet_project.core.schema import DATE_TIME, PAGE, PAGE_SIZE, error_responses, int_query


class BalanceHistoryViewSet(viewsets.ViewSet):
    @extend_schema(
        summary="Hash-chained balance history (own entries; staff: all)",
        parameters=[
            OpenApiParameter("page", PAGE),
            OpenApiParameter("page_size", PAGE_SIZE),
            OpenApiParameter("user_id", int_query(), description="Staff only (others: must be themselves)"),
            OpenApiParameter("wallet_id", int_query()),
            OpenApiParameter("currency", str),
            OpenApiParameter("created_after", DATE_TIME),
            OpenApiParameter("created_before", DATE_TIME),
        ],
        responses={200: BalanceHistoryPageOut, **error_responses(400, 401, 403)},
        tags=["audit"],
    )
    def list(self, request):
        qs = balance_history_queryset(viewer=request.user, params=request.query_params)
        return Response(
            paginate(qs, request.query_params, balance_history_document), headers={"Cache-Control": "no-store"}
        )
