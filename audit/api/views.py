from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from audit.api.serializers import BalanceHistoryFilter, BalanceHistoryPageOut
from audit.selectors import balance_history_document, balance_history_queryset
from wallet_project.core.pagination import paginate
from wallet_project.core.schema import error_responses


class BalanceHistoryViewSet(viewsets.ViewSet):
    @extend_schema(
        summary="Hash-chained balance history (own entries; staff: all)",
        parameters=[BalanceHistoryFilter],
        responses={200: BalanceHistoryPageOut, **error_responses(400, 401, 403)},
        tags=["audit"],
    )
    def list(self, request):
        query = BalanceHistoryFilter.parse(request.query_params)
        page, page_size = query.pop("page"), query.pop("page_size")
        qs = balance_history_queryset(viewer=request.user, **query)
        return Response(
            paginate(qs, balance_history_document, page=page, page_size=page_size),
            headers={"Cache-Control": "no-store"},
        )
