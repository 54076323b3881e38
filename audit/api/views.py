from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from audit.api.serializers import BalanceHistoryFilter, BalanceHistoryPageOut
from audit.selectors import balance_history_document, balance_history_queryset
from wallet_project.core.pagination import list_page
from wallet_project.core.schema import error_responses

FILTERS = ("user_id", "wallet_id", "currency", "created_after", "created_before")


class BalanceHistoryViewSet(viewsets.ViewSet):
    @extend_schema(
        summary="Hash-chained balance history (own entries; staff: all)",
        parameters=[BalanceHistoryFilter],
        responses={200: BalanceHistoryPageOut, **error_responses(400, 401, 403)},
        tags=["audit"],
    )
    def list(self, request):
        query = BalanceHistoryFilter.parse(request.query_params)
        filters = {name: query.get(name) for name in FILTERS}
        qs = balance_history_queryset(viewer=request.user, **filters)
        # Bound to the viewer too: without a user_id, a user's list is their own and staff's is everyone's.
        scope = {"list": "audit/balance-history", "viewer": request.user.pk, **filters}
        return Response(
            list_page(qs, balance_history_document, query, scope=scope),
            headers={"Cache-Control": "no-store"},
        )
