from types import SimpleNamespace
from typing import Any, cast

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import viewsets
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response

from currencies.selectors import currency_get
from wallet_project.core.cursor import DEFAULT_LIMIT
from wallet_project.core.exports import csv_stream_response
from wallet_project.core.permissions import ensure_owner_or_staff
from wallet_project.core.schema import error_responses
from wallets.api.serializers import (
    StatementFilter,
    StatementOut,
    StatsFilter,
    StatsOut,
    WalletAtFilter,
    WalletAtOut,
    WalletOpenIn,
    WalletOut,
)
from wallets.selectors import (
    statement_csv_rows,
    statement_cursor_decode,
    statement_cursor_page,
    statement_document,
    statement_filename,
    statement_page,
    statement_scope,
    statement_window,
    wallet_at,
    wallet_document,
    wallet_documents,
    wallet_get,
    wallet_list,
    wallet_statement,
    wallet_stats,
)
from wallets.services import wallet_open

NO_STORE = {"Cache-Control": "no-store"}


def _requested_currency(query: dict):
    return currency_get(currency_id=query.get("currency_id"), code=query.get("currency"))


class WalletViewSet(viewsets.ViewSet):
    @extend_schema(
        summary="A user's wallet (default currency unless asked), now or as it stood at an instant",
        parameters=[WalletAtFilter],
        responses={200: WalletAtOut, **error_responses(400, 401, 403, 404)},
        tags=["wallets"],
    )
    def retrieve(self, request, user_id: int):
        ensure_owner_or_staff(request.user, user_id)
        query = WalletAtFilter.parse(request.query_params)
        wallet = wallet_get(user_id=user_id, currency=_requested_currency(query))
        if "at" in query:
            return Response(wallet_at(wallet=wallet, at=query["at"]), headers=NO_STORE)
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


class _FormatIsAParameter(DefaultContentNegotiation):
    """``?format=`` is the statement's own parameter (json or csv), not DRF's choice of renderer."""

    settings = cast(Any, SimpleNamespace(URL_FORMAT_OVERRIDE=None))  # the one setting it reads


class WalletStatementViewSet(viewsets.ViewSet):
    content_negotiation_class = _FormatIsAParameter

    @extend_schema(
        summary="A wallet's statement: its movements in [from, to), opening and closing balances",
        description=(
            "Every movement leg of the wallet stamped in [from, to), oldest first; changes of `held` alone "
            "(holds placed, voided, expired) move no money and are not listed. `opening_balance` is the "
            "balance after every entry stamped before `from`, `closing_balance` before `to`, and always "
            "opening_balance + total_in - total_out = closing_balance. At most 366 days. Paged by "
            "page/page_size (`pagination: {page, page_size, total, total_pages}`) or by cursor/limit "
            "(`pagination: {next_cursor, has_more}`); `format=csv` streams every entry instead."
        ),
        parameters=[StatementFilter],
        responses={
            200: OpenApiResponse(StatementOut, description="JSON; with format=csv, text/csv (every entry)"),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="with format=csv"),
            **error_responses(400, 401, 403, 404),
        },
        tags=["wallets"],
    )
    def retrieve(self, request, user_id: int):
        ensure_owner_or_staff(request.user, user_id)
        query = StatementFilter.parse(request.query_params)
        wallet = wallet_get(user_id=user_id, currency=_requested_currency(query))
        cursor_paging = "cursor" in query or "limit" in query  # (mixed with page numbers: refused by the filter)
        scope = statement_scope(wallet.pk, query.get("from"), query.get("to"))
        cursor = statement_cursor_decode(query["cursor"], scope=scope) if "cursor" in query else None
        if cursor is not None:  # the window of the first page, even where it defaulted
            start, end = cursor.start, cursor.end
        else:
            start, end = statement_window(query.get("from"), query.get("to"), now=timezone.now())
        statement = wallet_statement(wallet=wallet, start=start, end=end)
        if query["format"] == "csv":
            response = csv_stream_response(statement_filename(statement), statement_csv_rows(statement))
            response["Cache-Control"] = "no-store"
            return response
        if cursor_paging:
            legs, pagination = statement_cursor_page(
                statement,
                scope=scope,
                after_seq=cursor.after_seq if cursor is not None else None,
                limit=query.get("limit", DEFAULT_LIMIT),
            )
        else:
            legs, pagination = statement_page(statement, page=query["page"], page_size=query["page_size"])
        return Response(statement_document(statement, legs, pagination), headers=NO_STORE)
