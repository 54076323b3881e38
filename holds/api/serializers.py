from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from currencies.money import AmountField
from holds.events import hold_document, withdrawal_request_document
from holds.models import Hold, WithdrawalRequest
from holds.services import DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN
from transactions.api.serializers import TransactionOut
from wallet_project.core.fields import FlatStrictSerializer, IdField, StrictCharField, StrictIntegerField
from wallet_project.core.pagination import ListPaginationOut, PageFilter
from wallet_project.core.params import ChoiceQuery, IntQuery

# An external address or on-chain id: printable ASCII, no blanks (what any chain's notation uses). The
# ``(?!\n)`` keeps the pattern's meaning in Python's dialect (where ``$`` also matches before a final
# newline), the one the schema's Python consumers (jsonschema, schemathesis) read it in.
ADDRESS_PATTERN = r"^[!-~]{1,128}(?!\n)$"
NETWORK_PATTERN = r"^[A-Za-z0-9_-]{1,32}(?!\n)$"


# --- Requests ------------------------------------------------------------------------------------------


class HoldCreateIn(FlatStrictSerializer):
    """A hold on the caller's wallet in one currency (by id or code; default: the default currency)."""

    currency_id = IdField(required=False)
    currency = StrictCharField(required=False, max_length=16, help_text="Currency code, e.g. USDT")
    amount = AmountField(help_text='Decimal string ("12.5") or exact JSON number; never rounded')
    to_user_id = IdField(required=False, help_text="The payee, who may capture the hold (optional)")
    to_username = StrictCharField(required=False, max_length=150, help_text="The payee by username")
    expires_in = StrictIntegerField(
        required=False,
        default=DEFAULT_EXPIRES_IN,
        min_value=1,
        max_value=MAX_EXPIRES_IN,
        help_text="Seconds until the hold expires and releases what remains (a JSON integer)",
    )
    memo = StrictCharField(required=False, allow_blank=True, max_length=256, default="")

    # validate() below, in the schema: at most one payee.
    openapi_rules = {"not": {"required": ["to_user_id", "to_username"]}}

    def validate(self, attrs):
        if "to_user_id" in attrs and "to_username" in attrs:
            raise serializers.ValidationError({"to_user_id": ["give at most one of to_user_id or to_username"]})
        return attrs


class HoldCaptureIn(FlatStrictSerializer):
    """What to capture: by default all that remains, to the hold's payee."""

    amount = AmountField(required=False, help_text="Default: all that remains of the hold")
    to_user_id = IdField(
        required=False,
        help_text="Staff, on a hold without payee: capture as a transfer to this user (left out: a withdrawal)",
    )


class EmptyIn(FlatStrictSerializer):
    """No fields: an action that takes no body refuses one with fields in it, as any other would."""


class WithdrawalRequestCreateIn(FlatStrictSerializer):
    """A withdrawal of the caller's money to an external address, held until staff decide."""

    currency_id = IdField(required=False)
    currency = StrictCharField(required=False, max_length=16, help_text="Currency code, e.g. USDT")
    amount = AmountField(help_text='Decimal string ("12.5") or exact JSON number; never rounded')
    address = StrictCharField(max_length=128, pattern=ADDRESS_PATTERN, help_text="Destination address")
    network = StrictCharField(required=False, max_length=32, pattern=NETWORK_PATTERN, help_text="e.g. TRC20")
    memo = StrictCharField(required=False, allow_blank=True, max_length=256, default="")


class WithdrawalApproveIn(FlatStrictSerializer):
    """The approval of a pending request, with the on-chain id of the payout if known."""

    network_tx_id = StrictCharField(
        required=False, max_length=128, pattern=ADDRESS_PATTERN, help_text="The on-chain transaction id"
    )


class WithdrawalRejectIn(FlatStrictSerializer):
    """The refusal of a pending request, with its reason."""

    reason = StrictCharField(max_length=512, help_text="Shown to the owner")


# --- Query parameters -----------------------------------------------------------------------------------


class HoldListFilter(PageFilter):
    status = ChoiceQuery(choices=Hold.Status.values, help_text="Effective status: past expires_at is expired")
    role = ChoiceQuery(choices=["payer", "payee"], help_text="Only the holds the caller pays, or is paid by")


class WithdrawalRequestListFilter(PageFilter):
    status = ChoiceQuery(choices=WithdrawalRequest.Status.values)
    user_id = IntQuery(help_text="Staff: one user's requests (others may name only themselves)")


# --- Responses --------------------------------------------------------------------------------------------


class HoldOut(serializers.Serializer):
    id = serializers.IntegerField()
    uid = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Hold.Status.values, help_text="Past expires_at: expired")
    payer_user_id = serializers.IntegerField()
    payee_user_id = serializers.IntegerField(allow_null=True)
    currency_id = serializers.IntegerField()
    currency = serializers.CharField()
    amount = serializers.CharField(help_text="Decimal string with 8 places")
    captured = serializers.CharField(help_text="Captured so far, 8 places")
    remaining = serializers.CharField(help_text="amount - captured, 8 places")
    memo = serializers.CharField()
    expires_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    # The fields are the schema; the representation is hold_document's (the events' too).
    def to_representation(self, instance: Hold) -> dict:
        return hold_document(instance)


class HoldCaptureOut(serializers.Serializer):
    hold = HoldOut()
    transaction = TransactionOut()


@extend_schema_serializer(many=False)  # a list action answering with one page object
class HoldPageOut(serializers.Serializer):
    data = HoldOut(many=True)  # type: ignore[assignment]  # a declared field, not Serializer.data
    pagination = ListPaginationOut()


class WithdrawalRequestOut(serializers.Serializer):
    id = serializers.IntegerField()
    uid = serializers.UUIDField()
    status = serializers.ChoiceField(choices=WithdrawalRequest.Status.values)
    user_id = serializers.IntegerField()
    currency_id = serializers.IntegerField()
    currency = serializers.CharField()
    amount = serializers.CharField(help_text="Decimal string with 8 places")
    address = serializers.CharField()
    network = serializers.CharField()
    memo = serializers.CharField()
    hold_id = serializers.IntegerField(help_text="The hold that reserves the amount")
    transaction_hash = serializers.CharField(allow_null=True, help_text="The withdrawal, once completed")
    network_tx_id = serializers.CharField()
    reason = StrictCharField(help_text="Why it was rejected")
    decided_by = serializers.IntegerField(allow_null=True, help_text="The staff member or owner who decided")
    decided_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, instance: WithdrawalRequest) -> dict:
        return withdrawal_request_document(instance)


@extend_schema_serializer(many=False)
class WithdrawalRequestPageOut(serializers.Serializer):
    data = WithdrawalRequestOut(many=True)  # type: ignore[assignment]
    pagination = ListPaginationOut()
