from datetime import timedelta
from typing import Any

from rest_framework import serializers

from wallet_project.core.fields import StrictSerializer
from wallet_project.core.params import FilterSerializer, IntQuery, QueryField, TextQuery
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
