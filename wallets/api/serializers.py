from rest_framework import serializers

from wallet_project.core.fields import StrictSerializer


class WalletOut(serializers.Serializer):
    id = serializers.IntegerField()
    user_id = serializers.IntegerField()
    currency_id = serializers.IntegerField()
    currency = serializers.CharField()
    balance = serializers.CharField(help_text="Decimal string with 8 places")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class WalletOpenIn(StrictSerializer):
    currency = serializers.CharField(max_length=16, help_text="Currency code, e.g. BTC")


class StatsOut(serializers.Serializer):
    window = serializers.CharField()
    currency = serializers.CharField()
    transaction_count = serializers.IntegerField()
    total_sent = serializers.CharField()
    total_received = serializers.CharField()
    balance_change = serializers.CharField()
