from rest_framework import serializers


class CurrencyOut(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    symbol = serializers.CharField()
    decimals = serializers.IntegerField()
    is_active = serializers.BooleanField()
    max_transfer_amount = serializers.CharField(allow_null=True, help_text="Decimal string, 8 places")
