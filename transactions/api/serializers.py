from typing import Any

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from audit.models import BalanceHistory
from currencies.money import AmountField
from currencies.selectors import currency_get
from transactions.events import transaction_document
from transactions.models import Transaction
from transactions.selectors import history_item, receipt_document, sender_balances_after
from transactions.services import BATCH_MAX_ITEMS, TransferBatchResult
from wallet_project.core.fields import FlatStrictSerializer, IdField, StrictSerializer
from wallet_project.core.pagination import ListPaginationOut, PageFilter
from wallet_project.core.params import ChoiceQuery, DateTimeQuery, QueryField


class TransferIn(FlatStrictSerializer):
    from_user_id = IdField(required=False, help_text="Optional; when given it must be the caller")
    to_user_id = IdField(required=False)
    to_username = serializers.CharField(required=False, max_length=150)
    currency_id = IdField(required=False)
    currency = serializers.CharField(required=False, max_length=16, help_text="Currency code, e.g. USDT")
    amount = AmountField(help_text='Decimal string ("12.5") or exact JSON number; never rounded')
    memo = serializers.CharField(required=False, allow_blank=True, max_length=256, default="")

    # validate() below, in the schema.
    openapi_rules = {"oneOf": [{"required": ["to_user_id"]}, {"required": ["to_username"]}]}

    def validate(self, attrs):
        if ("to_user_id" in attrs) == ("to_username" in attrs):
            raise serializers.ValidationError({"to_user_id": ["give exactly one of to_user_id or to_username"]})
        return attrs


class BatchTransferIn(TransferIn):
    """One transfer of a batch: a transfer's body; the sender is the caller."""

    from_user_id = None  # type: ignore[assignment]  # (a declared field removed)


class TransferBatchIn(StrictSerializer):
    """`{transfers: [...]}`, every item validated, each error keyed by its item: `transfers[2].to_user_id`."""

    transfers = serializers.ListField(
        child=BatchTransferIn(), min_length=1, max_length=BATCH_MAX_ITEMS
    )  # (the schema: see below)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        # DRF would nest the items' errors as a list of dicts; the contract names them by path.
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["expected a JSON object"]})
        unknown = sorted(set(data) - {"transfers"})
        if unknown:
            raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        items = data.get("transfers")
        if not isinstance(items, list) or not 1 <= len(items) <= BATCH_MAX_ITEMS:
            raise serializers.ValidationError(
                {"transfers": [f"a list of 1 to {BATCH_MAX_ITEMS} transfers is required"]}
            )
        validated, problems = [], {}
        for index, item in enumerate(items):
            serializer = BatchTransferIn(data=item)
            if serializer.is_valid():
                validated.append(serializer.validated_data)
                continue
            for field, messages in serializer.errors.items():
                problems[f"transfers[{index}]" if field == "non_field_errors" else f"transfers[{index}].{field}"] = (
                    messages
                )
        if problems:
            raise serializers.ValidationError(problems)
        return {"transfers": validated}


class MovementIn(FlatStrictSerializer):
    user_id = IdField()
    currency_id = IdField(required=False)
    currency = serializers.CharField(required=False, max_length=16)
    amount = AmountField()
    memo = serializers.CharField(required=False, allow_blank=True, max_length=256, default="")


class ReversalIn(FlatStrictSerializer):
    amount = AmountField(required=False, help_text="Default: all of the original that is not reversed yet")
    memo = serializers.CharField(max_length=256, help_text="Why the money goes back (required)")


class CurrencyCodeQuery(QueryField):
    """A currency code, resolved to the currency's id: an unknown one is 404 NOT_FOUND, an empty one none."""

    def to_internal_value(self, data: str) -> int | None:
        # Active or not: a history may hold a currency that has since been switched off.
        return currency_get(code=data, active_only=False).pk if data else None

    def openapi_schema(self) -> dict[str, Any]:
        return {"type": "string"}


class TransactionHistoryFilter(PageFilter):
    # In this order they are judged: the first bad one answers.
    currency = CurrencyCodeQuery()
    direction = ChoiceQuery(choices=["sent", "received"])
    type = ChoiceQuery(choices=Transaction.Type.values)
    created_after = DateTimeQuery(help_text="ISO 8601, inclusive")
    created_before = DateTimeQuery(help_text="ISO 8601, exclusive")


class TransactionOut(serializers.Serializer):
    id = serializers.IntegerField()
    hash = serializers.CharField(help_text="SHA-256 of the canonical transaction encoding")
    signature = serializers.CharField(help_text="Ed25519 signature of the hash, hex")
    status = serializers.CharField()
    type = serializers.ChoiceField(choices=Transaction.Type.values)
    from_user_id = serializers.IntegerField(allow_null=True)
    to_user_id = serializers.IntegerField(allow_null=True)
    currency_id = serializers.IntegerField()
    currency = serializers.CharField()
    amount = serializers.CharField(help_text="Decimal string with 8 places")
    memo = serializers.CharField()
    created_at = serializers.DateTimeField()
    reverses = serializers.CharField(
        required=False, help_text="Only for a reversal: the hash of the transaction it takes back"
    )

    # The fields are the schema; the representation is transaction_document's, the one function every
    # response and event uses (a history page renders raw rows with it, which a serializer per row
    # would slow down).
    def to_representation(self, instance: Transaction) -> dict:
        return transaction_document(instance, currency_code=instance.currency.code)


class BalancesAfterOut(serializers.Serializer):
    """The resulting balance of the wallet a movement spent from, as the write left it (not as it is now)."""

    balance_after = serializers.CharField(help_text="Balance of the wallet spent from, after this movement (8 places)")
    available_after = serializers.CharField(
        help_text="What that wallet could still spend after this movement: balance less held (8 places)"
    )


class TransferOut(TransactionOut, BalancesAfterOut):
    message = serializers.CharField(default="transfer successful")

    def to_representation(self, instance: Transaction) -> dict:
        return transfer_reply(instance)


def transfer_reply(tx: Transaction) -> dict:
    """The transfer reply: the transaction document, and the caller's wallet as the transfer left it
    (an idempotent replay: as the original left it)."""
    balances = sender_balances_after(tx)
    assert balances is not None, "a transfer has a sender"
    return {
        "message": "transfer successful",
        **transaction_document(tx, currency_code=tx.currency.code),
        **balances.document(),
    }


class BatchBalanceOut(BalancesAfterOut):
    currency_id = serializers.IntegerField()
    currency = serializers.CharField()


class TransferBatchOut(serializers.Serializer):
    transactions = TransactionOut(many=True, help_text="One transfer per item, in item order")
    balances = BatchBalanceOut(
        many=True, help_text="The caller's wallet in each currency the batch spent from, as the batch left it"
    )

    def to_representation(self, instance: TransferBatchResult) -> dict:
        return transfer_batch_reply(instance)


def transfer_batch_reply(result: TransferBatchResult) -> dict:
    return {
        "transactions": [transaction_document(tx, currency_code=tx.currency.code) for tx in result.transactions],
        "balances": [
            {"currency_id": b.currency.pk, "currency": b.currency.code, **b.after.document()} for b in result.balances
        ],
    }


class HistoryItemOut(TransactionOut):
    direction = serializers.ChoiceField(choices=["sent", "received"])

    def to_representation(self, instance: BalanceHistory) -> dict:  # type: ignore[override]  # a leg, not a tx
        return history_item(instance)


@extend_schema_serializer(many=False)  # a list action answering with one page object
class HistoryPageOut(serializers.Serializer):
    # A declared field leaves the class body (DRF's metaclass collects it), so .data is still the property.
    data = HistoryItemOut(many=True)  # type: ignore[assignment]
    pagination = ListPaginationOut()


class ReversalRefOut(serializers.Serializer):
    hash = serializers.CharField()
    amount = serializers.CharField()
    created_at = serializers.DateTimeField()


class ReceiptOut(serializers.Serializer):
    hash = serializers.CharField()
    signature = serializers.CharField()
    status = serializers.CharField()
    type = serializers.CharField()
    currency = serializers.CharField()
    amount = serializers.CharField()
    created_at = serializers.DateTimeField()
    reverses = serializers.CharField(
        required=False, help_text="Only for a reversal: the hash of the transaction it takes back"
    )
    reversed_amount = serializers.CharField(
        required=False, help_text="Not for a reversal: how much of this transaction reversals took back"
    )
    reversals = ReversalRefOut(many=True, required=False, help_text="Not for a reversal: its reversals, oldest first")
    from_user_id = serializers.IntegerField(required=False, help_text="Only for a party or staff")
    to_user_id = serializers.IntegerField(required=False, help_text="Only for a party or staff")
    uid = serializers.UUIDField(required=False, help_text="Only for a party or staff")
    memo = serializers.CharField(required=False, help_text="Only for a party or staff")
    canonical = serializers.CharField(
        required=False, help_text="Only for a party or staff: the exact JSON whose SHA-256 is `hash`"
    )

    def to_representation(self, instance: Transaction) -> dict:
        return receipt_document(instance, viewer=self.context.get("viewer"))


class PublicKeyOut(serializers.Serializer):
    algorithm = serializers.CharField()
    public_key = serializers.CharField(help_text="Raw Ed25519 public key, hex")
    signed_message = serializers.CharField()
