from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from audit.receipts import public_key_hex
from currencies.selectors import currency_get
from transactions.api.serializers import (
    HistoryPageOut,
    MovementIn,
    PublicKeyOut,
    ReceiptOut,
    ReversalIn,
    TransactionHistoryFilter,
    TransactionOut,
    TransferBatchIn,
    TransferBatchOut,
    TransferIn,
    TransferOut,
    transfer_batch_reply,
    transfer_reply,
)
from transactions.events import transaction_document
from transactions.idempotency import HEADER, MAX_KEY_LENGTH, REPLAYED_HEADER, request_fingerprint, validate_key
from transactions.selectors import (
    history_cursor_page,
    history_page,
    receipt_document,
    recipient_id_by_username,
    transaction_get_by_hash,
)
from transactions.services import (
    BATCH_SCOPE,
    BatchTransfer,
    Idempotency,
    batch_item_error,
    deposit_create,
    reversal_create,
    transfer_batch_create,
    transfer_create,
    withdrawal_create,
)
from wallet_project.core import errors
from wallet_project.core.pagination import cursor_window
from wallet_project.core.permissions import CanMoveMoney, ensure_owner_or_staff
from wallet_project.core.principal import principal_check, unverified_principal
from wallet_project.core.schema import error_responses, security

IDEMPOTENCY_PARAM = OpenApiParameter(
    HEADER,
    # validate_key's rule: printable ASCII, not blank.
    {"type": "string", "maxLength": MAX_KEY_LENGTH, "pattern": "^[ -~]*[!-~][ -~]*$"},
    OpenApiParameter.HEADER,
    required=False,
    description="Retry-safe key (per user, kept 24 h): same key + body replays the original outcome",
)
NO_STORE = {"Cache-Control": "no-store"}


def request_idempotency(request, scope: str, target: int | str | None = None) -> Idempotency | None:
    """The request's Idempotency-Key, fingerprinting its body and the resource it acts on, if any (the
    same key and body sent to another hold or transaction is a mismatch, not a replay of the first)."""
    key = validate_key(request.headers.get(HEADER))
    if key is None:
        return None
    body = request.data if target is None else {"target": target, "body": request.data}
    return Idempotency(key=key, scope=scope, fingerprint=request_fingerprint(scope, body))


def money_response(tx, body: dict, status: int = 200) -> Response:
    headers = dict(NO_STORE)
    if getattr(tx, "replayed", False):
        headers[REPLAYED_HEADER] = "true"
    return Response(body, status=status, headers=headers)


def body_currency(data: dict):
    currency = currency_get(currency_id=data.get("currency_id"), code=data.get("currency"))
    # Both given: they must name the same currency; no currency has that id and that code. (A schema
    # cannot say "at most one" in a way generators honour, so the pair is judged, not refused unread.)
    if "currency_id" in data and "currency" in data and data["currency"].strip().upper() != currency.code.upper():
        raise errors.NotFound("currency not found")
    return currency


class TransferViewSet(viewsets.ViewSet):
    # The caller is a Principal read from the token: its account is checked inside the wallet-lock
    # statement, not by a query of its own.
    defer_account_check = True

    def handle_exception(self, exc):
        # A refusal that comes before the lock (a bad body, an unknown recipient or currency) would
        # otherwise answer a revoked token too, and tell it which usernames exist. Such answers run
        # the account check first; the success path and the failures found under the lock (which
        # checked the account already) keep their round trips.
        if _before_the_account_check(exc):
            try:
                principal_check(self.request.user)
            except AuthenticationFailed as failed:
                exc = failed
        return super().handle_exception(exc)

    @extend_schema(
        summary="Transfer money to another user",
        request=TransferIn,
        parameters=[IDEMPOTENCY_PARAM],
        responses={200: TransferOut, **error_responses(400, 401, 403, 404, 409, 422, 429, 503)},
        tags=["transfers"],
    )
    def create(self, request):
        idempotency = request_idempotency(request, "transfer")
        serializer = TransferIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data.get("from_user_id", request.user.pk) != request.user.pk:
            raise errors.Forbidden("forbidden: from_user_id must be the authenticated user")
        currency = body_currency(data)
        if "to_username" in data:
            recipient_id = recipient_id_by_username(data["to_username"])
        else:
            # Existence and activity are checked under the wallet lock (transactions.services.ledger_post).
            recipient_id = data["to_user_id"]
        tx = transfer_create(
            sender_id=request.user.pk,
            recipient_id=recipient_id,
            currency=currency,
            amount=data["amount"],
            memo=data["memo"],
            idempotency=idempotency,
            principal=unverified_principal(request.user),
        )
        return money_response(tx, transfer_reply(tx))


class TransferBatchViewSet(viewsets.ViewSet):
    # (The caller's account is checked when the request is authenticated: a revoked token is a 401.)

    @extend_schema(
        summary="Several transfers from the caller, all or nothing",
        description=(
            "Up to 100 transfers, in one or several currencies, posted in one database transaction: all "
            "of them or none. Each item is a transfer's body without `from_user_id` and is checked as a "
            "transfer is (the per-transfer `max_transfer_amount` applies to each item), against what the "
            "caller's wallet has available after the items before it. A refusal names the item and its "
            'field, `errors: {"transfers[3].amount": [...]}`, with that item\'s error code (e.g. '
            "`INSUFFICIENT_BALANCE`, `RECIPIENT_NOT_FOUND`, `SAME_ACCOUNT_TRANSFER`), and nothing moves. "
            "The reply lists one transaction per item, in item order, and the caller's wallet in each "
            "currency spent from as the batch left it. One Idempotency-Key stands for the whole batch; "
            "the batch counts as one request against the rate limit."
        ),
        request=TransferBatchIn,
        parameters=[IDEMPOTENCY_PARAM],
        responses={201: TransferBatchOut, **error_responses(400, 401, 404, 409, 422, 429, 503)},
        tags=["transfers"],
    )
    def create(self, request):
        idempotency = request_idempotency(request, BATCH_SCOPE)
        serializer = TransferBatchIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        recipients: dict[str, int] = {}  # by username: each spelling looked up once
        transfers = [
            _batch_transfer(index, item, recipients)
            for index, item in enumerate(serializer.validated_data["transfers"])
        ]
        result = transfer_batch_create(sender_id=request.user.pk, transfers=transfers, idempotency=idempotency)
        return money_response(result, transfer_batch_reply(result), status=201)


def _batch_transfer(index: int, data: dict, recipients: dict[str, int]) -> BatchTransfer:
    """An item's currency and recipient resolved; a failure names the item."""
    currency_field = "currency" if "currency" in data else "currency_id"
    try:
        currency = body_currency(data)
    except errors.ApiError as exc:
        raise batch_item_error(exc, index, currency_field) from exc
    if "to_username" in data:
        # Keyed by the spelling sent: only the database's own case-insensitive match may say which
        # spellings are one account (Python's casefold would take "ß" for "ss").
        name = data["to_username"].strip()
        if name not in recipients:
            try:
                recipients[name] = recipient_id_by_username(data["to_username"])
            except errors.ApiError as exc:
                raise batch_item_error(exc, index, "to_username") from exc
        recipient_id, recipient_field = recipients[name], "to_username"
    else:
        # Existence and activity are checked under the wallet lock, as for a transfer.
        recipient_id, recipient_field = data["to_user_id"], "to_user_id"
    return BatchTransfer(
        recipient_id=recipient_id,
        currency=currency,
        amount=data["amount"],
        memo=data["memo"],
        recipient_field=recipient_field,
        currency_field=currency_field,
    )


def _before_the_account_check(exc: Exception) -> bool:
    if isinstance(exc, errors.ApiError) and exc.account_checked:
        return False
    api_error = errors.to_api_error(exc)
    # 401s are the check's own answer; a 429 never looked at the body (and costs no query).
    return api_error is not None and 400 <= api_error.status_code < 500 and api_error.status_code not in (401, 429)


class MovementViewSet(viewsets.ViewSet):
    """Deposits and withdrawals: the only ways money enters or leaves. Staff with the permission only."""

    permission_classes = [CanMoveMoney]

    def _create(self, request, service, scope: str):
        idempotency = request_idempotency(request, scope)
        serializer = MovementIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        currency = body_currency(data)
        tx = service(
            user_id=data["user_id"],
            currency=currency,
            amount=data["amount"],
            memo=data["memo"],
            created_by_id=request.user.pk,
            idempotency=idempotency,
        )
        return money_response(tx, transaction_document(tx, currency_code=currency.code), status=201)

    @extend_schema(
        summary="Deposit into a user's wallet (staff)",
        request=MovementIn,
        parameters=[IDEMPOTENCY_PARAM],
        responses={201: TransactionOut, **error_responses(400, 401, 403, 404, 409, 422)},
        tags=["staff"],
    )
    def deposit(self, request):
        return self._create(request, deposit_create, "deposit")

    @extend_schema(
        summary="Withdraw from a user's wallet (staff)",
        request=MovementIn,
        parameters=[IDEMPOTENCY_PARAM],
        responses={201: TransactionOut, **error_responses(400, 401, 403, 404, 409, 422)},
        tags=["staff"],
    )
    def withdraw(self, request):
        return self._create(request, withdrawal_create, "withdrawal")


class ReversalViewSet(viewsets.ViewSet):
    """Reversals: money of a completed transaction moved back, as a new transaction. Staff with the permission only."""

    permission_classes = [CanMoveMoney]

    @extend_schema(
        summary="Reverse a transfer, deposit or withdrawal, in full or in part (staff)",
        request=ReversalIn,
        parameters=[IDEMPOTENCY_PARAM],
        responses={201: TransactionOut, **error_responses(400, 401, 403, 404, 409, 422, 429, 503)},
        tags=["staff"],
    )
    def create(self, request, tx_hash: str):
        # The original is part of what the key stands for: the same body against another hash is another request.
        idempotency = request_idempotency(request, "reversal", tx_hash.lower())
        serializer = ReversalIn(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        tx = reversal_create(
            original_hash=tx_hash,
            amount=data.get("amount"),
            memo=data["memo"],
            created_by_id=request.user.pk,
            idempotency=idempotency,
        )
        return money_response(tx, transaction_document(tx, currency_code=tx.currency.code), status=201)


class HistoryViewSet(viewsets.ViewSet):
    @extend_schema(
        summary="A user's transactions, newest first",
        parameters=[TransactionHistoryFilter],
        responses={200: HistoryPageOut, **error_responses(400, 401, 403, 404)},
        tags=["transactions"],
    )
    def list(self, request, user_id: int):
        ensure_owner_or_staff(request.user, user_id)
        query = TransactionHistoryFilter.parse(request.query_params)
        filters = {
            "currency_id": query.get("currency"),
            "direction": query.get("direction"),
            "tx_type": query.get("type"),
            "created_after": query.get("created_after"),
            "created_before": query.get("created_before"),
        }
        window = cursor_window(query, scope={"list": "transactions", "user_id": user_id, **filters})
        if window is None:
            page = history_page(user_id=user_id, **filters, page=query["page"], page_size=query["page_size"])
        else:
            page = history_cursor_page(user_id=user_id, **filters, window=window)
        return Response(page, headers=NO_STORE)


class ReceiptViewSet(viewsets.ViewSet):
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Public receipt of a transaction (parties and staff also see user ids)",
        # A token is optional, but one that is sent must be valid: a stale one is a 401, not ignored.
        responses={200: ReceiptOut, **error_responses(401, 404)},
        tags=["transactions"],
        auth=security({}, {"jwtAuth": []}),
    )
    def retrieve(self, request, tx_hash: str):
        tx = transaction_get_by_hash(tx_hash=tx_hash)
        return Response(receipt_document(tx, viewer=request.user))

    @extend_schema(
        summary="Ed25519 public key that verifies receipt signatures",
        responses={200: PublicKeyOut, **error_responses(401)},
        tags=["transactions"],
        auth=security({}),
    )
    def public_key(self, request):
        return Response(
            {
                "algorithm": "Ed25519",
                "public_key": public_key_hex(),
                "signed_message": "the ASCII bytes of the hex transaction hash",
            }
        )
