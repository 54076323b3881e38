from rest_framework import serializers

from currencies.models import Currency
from currencies.selectors import currency_document


class CurrencyOut(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    symbol = serializers.CharField()
    decimals = serializers.IntegerField()
    is_active = serializers.BooleanField()
    max_transfer_amount = serializers.CharField(allow_null=True, help_text="Decimal string, 8 places")

    # The fields are the schema; the representation is currency_document's.
    def to_representation(self, instance: Currency) -> dict:
        return currency_document(instance)
