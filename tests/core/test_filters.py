"""Filter serializers: ``parse`` (the views' fast path) answers as DRF's own validation of the filter does."""

import pytest
from django.http import QueryDict

from audit.api.serializers import BalanceHistoryFilter
from transactions.api.serializers import TransactionHistoryFilter
from wallet_project.core import errors
from wallets.api.serializers import StatsFilter

pytestmark = pytest.mark.django_db


def drf_validated(filter_class, params):
    serializer = filter_class(data=params)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@pytest.mark.parametrize(
    ("filter_class", "query"),
    [
        (TransactionHistoryFilter, ""),
        (TransactionHistoryFilter, "page=2&page_size=5&direction=sent&type=deposit&currency=usdt"),
        (TransactionHistoryFilter, "created_after=2024-01-01T00:00:00Z&created_before=2024-02-01t00:00:00z"),
        (TransactionHistoryFilter, "currency=&unknown=1"),
        (BalanceHistoryFilter, "user_id=3&wallet_id=4&currency=BTC&page=1"),
        (BalanceHistoryFilter, "user_id=3&limit=5"),
        (TransactionHistoryFilter, "direction=sent&cursor=abc&limit=100"),
        (TransactionHistoryFilter, "cursor="),
        (StatsFilter, ""),
        (StatsFilter, "window=7d&currency_id=1"),
    ],
)
def test_parse_gives_what_validation_gives(usdt, filter_class, query):
    params = QueryDict(query)
    assert filter_class.parse(params) == drf_validated(filter_class, params)


@pytest.mark.parametrize(
    ("filter_class", "query", "field"),
    [
        (TransactionHistoryFilter, "page=", "page"),
        (TransactionHistoryFilter, "direction=up&page=0", "direction"),  # the first bad one answers
        (TransactionHistoryFilter, "page_size=101", "page_size"),
        (TransactionHistoryFilter, "created_before=yesterday", "created_before"),
        (BalanceHistoryFilter, "wallet_id=-1", "wallet_id"),
        (BalanceHistoryFilter, "limit=0", "limit"),
        (BalanceHistoryFilter, "limit=101&cursor=x", "limit"),
        (TransactionHistoryFilter, "page=1&cursor=x", "cursor"),  # the modes do not mix
        (TransactionHistoryFilter, "page_size=5&limit=5", "limit"),
        (TransactionHistoryFilter, "limit=5&page=0", "page"),  # a malformed value answers first
        (StatsFilter, "window=&currency_id=x", "window"),
    ],
)
def test_a_malformed_value_is_the_same_400_either_way(filter_class, query, field):
    params = QueryDict(query)
    with pytest.raises(errors.InvalidRequest) as parsed:
        filter_class.parse(params)
    with pytest.raises(errors.InvalidRequest) as validated:
        drf_validated(filter_class, params)
    assert parsed.value.errors == validated.value.errors and list(parsed.value.errors) == [field]
    assert parsed.value.message == validated.value.message


def test_an_unknown_currency_is_404(db):
    with pytest.raises(errors.NotFound):
        TransactionHistoryFilter.parse(QueryDict("currency=NOPE"))
