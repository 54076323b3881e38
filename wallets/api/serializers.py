from datetime import timedelta
from typing import Any

from rest_framework import serializers

from wallet_project.core.fields import StrictSerializer
from wallet_project.core.pagination import ListPaginationOut, PageFilter
from wallet_project.core.params import ChoiceQuery, DateTimeQuery, FilterSerializer, IntQuery, QueryField, TextQuery
from wallets.models import Wallet
from wallets.selectors import WINDOW_PATTERN, parse_window, wallet_document


class WalletOut(serializers.Serializer):
    id = serializers.IntegerField()
    user_id = serializers.IntegerField()
    currency_id = serializers.IntegerField()
    currency = serializers.CharField()
    balance = serializers.CharField(help_text="Posted total: decimal string with 8 places")
    held = serializers.CharField(help_text="Reserved by active holds (expired ones excluded), 8 places")
    available = serializers.CharField(help_text="What a spend may take: balance - held, 8 places")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    # The fields are the schema; the representation is wallet_document's.
    def to_representation(self, instance: Wallet) -> dict:
        return wallet_document(instance)


class WalletOpenIn(StrictSerializer):
    currency = serializers.CharField(max_length=16, help_text="Currency code, e.g. BTC")


class StatsOut(serializers.Serializer):
    window = serializers.CharField()
    currency = serializers.CharField()
    transaction_count = serializers.IntegerField()
    total_sent = serializers.CharField()
    total_received = serializers.CharField()
    balance_change = serializers.CharField()


class WalletCurrencyFilter(FilterSerializer):
    currency_id = IntQuery(help_text="Currency id (default: the default currency)")
    currency = TextQuery(help_text="Currency code, e.g. BTC")


class WindowQuery(QueryField):
    """``30m``, ``24h``, ``7d``: parsed to ``(text, span)``; absent, 24 hours."""

    def to_internal_value(self, data: str) -> tuple[str, timedelta]:
        return parse_window(data)

    def openapi_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": WINDOW_PATTERN}


class StatsFilter(WalletCurrencyFilter):
    window = WindowQuery(fallback=parse_window(None), help_text="30m, 24h, 7d… (default 24h, at most 3660d)")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # The window is judged before the currency, as it always was.
        return {"window": fields.pop("window"), **fields}


# -- The wallet at an instant ------------------------------------------------------------------------


class WalletAtFilter(WalletCurrencyFilter):
    at = DateTimeQuery(
        help_text="RFC 3339 instant (UTC without an offset): the wallet as it stood then, from its chain. "
        "Before the wallet was opened: 404 WALLET_NOT_FOUND; a future instant: the wallet as it stands now"
    )


class WalletAtOut(WalletOut):
    as_of = serializers.DateTimeField(
        required=False, help_text="Only with ?at=: the instant asked for, in UTC; balance, held, available then"
    )


# -- Statements --------------------------------------------------------------------------------------


class StatementFilter(WalletCurrencyFilter, PageFilter):
    """The currency, the window, the format, then either paging mode (PageFilter: not mixed)."""

    to = DateTimeQuery(help_text="RFC 3339, exclusive (default: now)")
    format = ChoiceQuery(choices=["json", "csv"], fallback="json", help_text="csv: every entry, streamed")

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # ``from`` is a Python keyword, so it cannot be declared above; judged after the currency.
        start = DateTimeQuery(help_text="RFC 3339, inclusive (default: the start of the UTC month before `to`)")
        ordered = {"currency_id": fields.pop("currency_id"), "currency": fields.pop("currency"), "from": start}
        return {**ordered, **fields}


class StatementEntryOut(serializers.Serializer):
    id = serializers.IntegerField(help_text="The transaction's id")
    hash = serializers.CharField()
    type = serializers.CharField()
    status = serializers.CharField()
    amount = serializers.CharField(help_text="The transaction's amount, 8 places")
    memo = serializers.CharField()
    created_at = serializers.DateTimeField()
    direction = serializers.ChoiceField(choices=["sent", "received"])
    counterparty_user_id = serializers.IntegerField(
        allow_null=True, help_text="The other party; null for a deposit or a withdrawal (or their reversal)"
    )
    delta = serializers.CharField(help_text="The change of this wallet's balance, signed, 8 places")
    balance_after = serializers.CharField()
    held_after = serializers.CharField()
    reverses = serializers.CharField(required=False, help_text="Only for a reversal: the hash it takes back")


class StatementOut(serializers.Serializer):
    wallet_id = serializers.IntegerField()
    currency = serializers.CharField()
    # ``from`` cannot be declared (a keyword): added below.
    to = serializers.DateTimeField(help_text="Exclusive")
    opening_balance = serializers.CharField(help_text="After every entry stamped before `from`")
    closing_balance = serializers.CharField(help_text="After every entry stamped before `to`")
    total_in = serializers.CharField(help_text="Sum of the positive deltas")
    total_out = serializers.CharField(help_text="Sum of the negative deltas, as a magnitude")
    count = serializers.IntegerField(help_text="Entries in the statement (all pages)")
    data = StatementEntryOut(many=True)  # type: ignore[assignment]  # a declared field, as DRF collects it
    pagination = ListPaginationOut()

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        start = serializers.DateTimeField(help_text="Inclusive")
        return {"wallet_id": fields.pop("wallet_id"), "currency": fields.pop("currency"), "from": start, **fields}
