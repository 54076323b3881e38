from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.response import Response

from currencies.selectors import currency_get
from wallet_project.core.permissions import ensure_owner_or_staff
from wallet_project.core.schema import error_responses
from wallets.api.serializers import StatsFilter, StatsOut, WalletCurrencyFilter, WalletOpenIn, WalletOut
from wallets.selectors import wallet_document, wallet_documents, wallet_get, wallet_list, wallet_stats
from wallets.services import wallet_open

NO_STORE = {"Cache-Control": "no-store"}


def _requested_currency(query: dict):
    return currency_get(currency_id=query.get("currency_id"), code=query.get("currency"))


class WalletViewSet(viewsets.ViewSet):
    @extend_schema(
        summary="A user's wallet (default currency unless asked)",
        parameters=[WalletCurrencyFilter],
        responses={200: WalletOut, **error_responses(400, 401, 403, 404)},
        tags=["wallets"],
    )
    def retrieve(self, request, user_id: int):
        ensure_owner_or_staff(request.user, user_id)
        query = WalletCurrencyFilter.parse(request.query_params)
        wallet = wallet_get(user_id=user_id, currency=_requested_currency(query))
        return Response(wallet_document(wallet), headers=NO_STORE)

    @extend_schema(
        summary="Activity of one wallet over a window, per currency",
        parameters=[StatsFilter],
        responses={200: StatsOut, **error_responses(400, 401, 403, 404)},
        tags=["wallets"],
    )
    def stats(self, request, user_id: int):
        ensure_owner_or_staff(request.user, user_id)
        query = StatsFilter.parse(request.query_params)
        window_text, window = query["window"]
        currency = _requested_currency(query)
        stats = wallet_stats(user_id=user_id, currency=currency, window=window)
        return Response({"window": window_text, "currency": currency.code, **stats}, headers=NO_STORE)

    @extend_schema(
        summary="The caller's wallets", responses={200: WalletOut(many=True), **error_responses(401)}, tags=["wallets"]
    )
    def list(self, request):
        return Response(wallet_documents(wallet_list(user_id=request.user.pk)), headers=NO_STORE)

    @extend_schema(
        summary="Open a wallet in another active currency",
        request=WalletOpenIn,
        responses={201: WalletOut, **error_responses(400, 401, 404, 409)},
        tags=["wallets"],
    )
    def create(self, request):
        serializer = WalletOpenIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        currency = currency_get(code=serializer.validated_data["currency"])
        wallet = wallet_open(user_id=request.user.pk, currency=currency)
        return Response(wallet_document(wallet), status=201, headers=NO_STORE)
