from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from audit.models import BalanceHistory
from audit.selectors import balance_history_document
from wallet_project.core.pagination import ListPaginationOut, PageFilter
from wallet_project.core.params import DateTimeQuery, IntQuery, TextQuery


class BalanceHistoryFilter(PageFilter):
    # In this order they are judged: the first bad one answers.
    user_id = IntQuery(help_text="Staff only (others: must be themselves)")
    wallet_id = IntQuery()
    currency = TextQuery()
    created_after = DateTimeQuery()
    created_before = DateTimeQuery()


class BalanceHistoryOut(serializers.Serializer):
    id = serializers.IntegerField()
    wallet_id = serializers.IntegerField()
    user_id = serializers.IntegerField()
    currency = serializers.CharField()
    transaction_id = serializers.IntegerField(allow_null=True, help_text="Null for a change of held alone")
    transaction_hash = serializers.CharField(allow_null=True)
    type = serializers.CharField(help_text='The transaction\'s type, or "hold" for a change of held alone')
    delta = serializers.CharField()
    balance_before = serializers.CharField()
    balance_after = serializers.CharField()
    held_delta = serializers.CharField()
    held_before = serializers.CharField()
    held_after = serializers.CharField()
    hold_uid = serializers.UUIDField(allow_null=True, help_text="The hold that changed held, if one did")
    prev_hash = serializers.CharField(help_text="entry_hash of the wallet's previous entry (64 zeros for the first)")
    entry_hash = serializers.CharField(
        help_text="sha256(prev_hash|wallet|tx hash|delta|before|after|created_at[|held|before|delta|after|hold uid])",
    )
    created_at = serializers.DateTimeField()

    # The fields are the schema; the representation is balance_history_document's.
    def to_representation(self, instance: BalanceHistory) -> dict:
        return balance_history_document(instance)


@extend_schema_serializer(many=False)  # a list action answering with one page object
class BalanceHistoryPageOut(serializers.Serializer):
    # A declared field leaves the class body (DRF's metaclass collects it), so .data is still the property.
    data = BalanceHistoryOut(many=True)  # type: ignore[assignment]
    pagination = ListPaginationOut()
