from functools import partial
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, viewsets
from rest_framework.response import Response

from holds.api.serializers import (
    EmptyIn,
    HoldCaptureIn,
    HoldCaptureOut,
    HoldCreateIn,
    HoldListFilter,
    HoldOut,
    HoldPageOut,
    WithdrawalApproveIn,
    WithdrawalRejectIn,
    WithdrawalRequestCreateIn,
    WithdrawalRequestListFilter,
    WithdrawalRequestOut,
    WithdrawalRequestPageOut,
)
from holds.events import hold_document, withdrawal_request_document
from holds.selectors import (
    hold_get_for,
    hold_list,
    hold_list_parts,
    withdrawal_request_get_for,
    withdrawal_request_list,
)
from holds.services import (
    hold_capture,
    hold_create,
    hold_void,
    withdrawal_request_approve,
    withdrawal_request_cancel,
    withdrawal_request_create,
    withdrawal_request_reject,
)
from transactions.api.views import IDEMPOTENCY_PARAM, NO_STORE, body_currency, money_response, request_idempotency
from transactions.events import transaction_document
from transactions.selectors import recipient_id_by_username, sender_balances_after
from wallet_project.core.pagination import cursor_window, keyset_page, list_page, paginate
from wallet_project.core.schema import error_responses


def _valid(serializer_class, request) -> dict:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


@extend_schema_serializer(component_name="HoldCaptureOut")
class HoldCaptureReplyOut(HoldCaptureOut):
    # (Here rather than in holds.api.serializers only to keep the #16 change to this app to one file.)
    balance_after = serializers.CharField(
        allow_null=True,
        help_text="The payer's wallet, which the money left, after the capture (8 places); null unless the "
        "caller may read that wallet (staff: the payee may not)",
    )
    available_after = serializers.CharField(
        allow_null=True, help_text="What the payer's wallet could still spend after the capture; null as above"
    )


class HoldViewSet(viewsets.ViewSet):
    """Holds: part of the caller's balance reserved (for a payee, if named) until captured, voided or expired."""

    @extend_schema(
        summary="Hold part of the caller's balance (for a payee, if named)",
        request=HoldCreateIn,
        parameters=[IDEMPOTENCY_PARAM],
        responses={201: HoldOut, **error_responses(400, 401, 404, 409, 422, 429, 503)},
        tags=["holds"],
    )
    def create(self, request):
        idempotency = request_idempotency(request, "hold")
        data = _valid(HoldCreateIn, request)
        currency = body_currency(data)
        payee_id = recipient_id_by_username(data["to_username"]) if "to_username" in data else data.get("to_user_id")
        hold = hold_create(
            payer_id=request.user.pk,
            currency=currency,
            amount=data["amount"],
            payee_id=payee_id,
            expires_in=data["expires_in"],
            memo=data["memo"],
            idempotency=idempotency,
        )
        return money_response(hold, hold_document(hold), status=201)

    @extend_schema(
        summary="Holds the caller pays or is paid by, newest first",
        parameters=[HoldListFilter],
        responses={200: HoldPageOut, **error_responses(400, 401, 429)},
        tags=["holds"],
    )
    def list(self, request):
        query = HoldListFilter.parse(request.query_params)
        status, role = query.get("status"), query.get("role")
        now = timezone.now()
        render = partial(hold_document, now=now)
        window = cursor_window(
            query, scope={"list": "holds", "viewer": request.user.pk, "status": status, "role": role}
        )
        if window is None:
            holds = hold_list(user=request.user, status=status, role=role)
            page = paginate(holds, render, page=query["page"], page_size=query["page_size"])
        else:
            page = keyset_page(hold_list_parts(user=request.user, status=status, role=role), render, window)
        return Response(page, headers=NO_STORE)

    @extend_schema(
        summary="One hold (its payer, its payee or staff)",
        responses={200: HoldOut, **error_responses(401, 404, 429)},
        tags=["holds"],
    )
    def retrieve(self, request, hold_id: int):
        return Response(hold_document(hold_get_for(user=request.user, hold_id=hold_id)), headers=NO_STORE)

    @extend_schema(
        summary="Capture a hold, in full or in part (its payee, or staff who move money)",
        request=HoldCaptureIn,
        parameters=[IDEMPOTENCY_PARAM],
        responses={200: HoldCaptureReplyOut, **error_responses(400, 401, 403, 404, 409, 422, 429, 503)},
        tags=["holds"],
    )
    def capture(self, request, hold_id: int):
        idempotency = request_idempotency(request, "hold.capture", hold_id)
        data = _valid(HoldCaptureIn, request)
        hold, tx = hold_capture(
            hold_id=hold_id,
            actor=request.user,
            amount=data.get("amount"),
            to_user_id=data.get("to_user_id"),
            idempotency=idempotency,
        )
        body: dict[str, Any] = {
            "hold": hold_document(hold),
            "transaction": transaction_document(tx, currency_code=tx.currency.code),
        }
        # The wallet spent from is the payer's, which users other than its owner may not read: the payee
        # gets nulls, staff the figures.
        readable = request.user.pk == hold.payer_id or request.user.is_staff
        balances = sender_balances_after(tx) if readable else None
        body.update(balances.document() if balances is not None else {"balance_after": None, "available_after": None})
        return money_response(tx, body)

    @extend_schema(
        summary="Void a hold: release what remains (its payer, its payee, or staff who move money)",
        request=None,
        parameters=[IDEMPOTENCY_PARAM],
        responses={200: HoldOut, **error_responses(400, 401, 403, 404, 409, 422, 429, 503)},
        tags=["holds"],
    )
    def void(self, request, hold_id: int):
        idempotency = request_idempotency(request, "hold.void", hold_id)
        _valid(EmptyIn, request)
        hold = hold_void(hold_id=hold_id, actor=request.user, idempotency=idempotency)
        return money_response(hold, hold_document(hold))


class WithdrawalRequestViewSet(viewsets.ViewSet):
    """Requests to send money to an external address: held at once, then approved or rejected by staff."""

    @extend_schema(
        summary="Ask to withdraw to an external address: the amount is held, pending staff",
        request=WithdrawalRequestCreateIn,
        parameters=[IDEMPOTENCY_PARAM],
        responses={202: WithdrawalRequestOut, **error_responses(400, 401, 404, 409, 422, 429, 503)},
        tags=["withdrawal requests"],
    )
    def create(self, request):
        idempotency = request_idempotency(request, "withdrawal_request")
        data = _valid(WithdrawalRequestCreateIn, request)
        withdrawal = withdrawal_request_create(
            user_id=request.user.pk,
            currency=body_currency(data),
            amount=data["amount"],
            address=data["address"],
            network=data.get("network", ""),
            memo=data["memo"],
            idempotency=idempotency,
        )
        return money_response(withdrawal, withdrawal_request_document(withdrawal), status=202)

    @extend_schema(
        summary="The caller's withdrawal requests (staff: everyone's), newest first",
        parameters=[WithdrawalRequestListFilter],
        responses={200: WithdrawalRequestPageOut, **error_responses(400, 401, 403, 429)},
        tags=["withdrawal requests"],
    )
    def list(self, request):
        query = WithdrawalRequestListFilter.parse(request.query_params)
        status, user_id = query.get("status"), query.get("user_id")
        page = list_page(
            withdrawal_request_list(user=request.user, status=status, user_id=user_id),
            withdrawal_request_document,
            query,
            scope={"list": "withdrawal-requests", "viewer": request.user.pk, "status": status, "user_id": user_id},
        )
        return Response(page, headers=NO_STORE)

    @extend_schema(
        summary="One withdrawal request (its owner or staff)",
        responses={200: WithdrawalRequestOut, **error_responses(401, 404, 429)},
        tags=["withdrawal requests"],
    )
    def retrieve(self, request, request_id: int):
        withdrawal = withdrawal_request_get_for(user=request.user, request_id=request_id)
        return Response(withdrawal_request_document(withdrawal), headers=NO_STORE)

    @extend_schema(
        summary="Approve a pending request: the hold is captured as a withdrawal (staff with permission)",
        request=WithdrawalApproveIn,
        parameters=[IDEMPOTENCY_PARAM],
        responses={200: WithdrawalRequestOut, **error_responses(400, 401, 403, 404, 409, 422, 429, 503)},
        tags=["withdrawal requests"],
    )
    def approve(self, request, request_id: int):
        idempotency = request_idempotency(request, "withdrawal_request.approve", request_id)
        data = _valid(WithdrawalApproveIn, request)
        withdrawal = withdrawal_request_approve(
            request_id=request_id,
            actor=request.user,
            network_tx_id=data.get("network_tx_id", ""),
            idempotency=idempotency,
        )
        return money_response(withdrawal, withdrawal_request_document(withdrawal))

    @extend_schema(
        summary="Reject a pending request: the hold is released (staff with permission)",
        request=WithdrawalRejectIn,
        parameters=[IDEMPOTENCY_PARAM],
        responses={200: WithdrawalRequestOut, **error_responses(400, 401, 403, 404, 409, 422, 429, 503)},
        tags=["withdrawal requests"],
    )
    def reject(self, request, request_id: int):
        idempotency = request_idempotency(request, "withdrawal_request.reject", request_id)
        data = _valid(WithdrawalRejectIn, request)
        withdrawal = withdrawal_request_reject(
            request_id=request_id, actor=request.user, reason=data["reason"], idempotency=idempotency
        )
        return money_response(withdrawal, withdrawal_request_document(withdrawal))

    @extend_schema(
        summary="Cancel one's own pending request: the hold is released",
        request=None,
        parameters=[IDEMPOTENCY_PARAM],
        responses={200: WithdrawalRequestOut, **error_responses(400, 401, 403, 404, 409, 422, 429, 503)},
        tags=["withdrawal requests"],
    )
    def cancel(self, request, request_id: int):
        idempotency = request_idempotency(request, "withdrawal_request.cancel", request_id)
        _valid(EmptyIn, request)
        withdrawal = withdrawal_request_cancel(request_id=request_id, actor=request.user, idempotency=idempotency)
        return money_response(withdrawal, withdrawal_request_document(withdrawal))
