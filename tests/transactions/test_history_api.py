"""GET /transactions/{user_id}: the seed's page envelope, newest first, strict parameters."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.http import QueryDict
from django.utils import timezone

from transactions.api.serializers import TransactionHistoryFilter
from transactions.selectors import history_item, history_page, history_queryset
from transactions.services import deposit_create, transfer_create, withdrawal_create
from wallet_project.core.pagination import paginate

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(user_factory, usdt, btc):
    """alice: deposit 100 USDT, sends 1..5 USDT to bob, gets 2 USDT back, 1 BTC deposit, 0.5 BTC withdrawn."""
    alice, bob = user_factory(balance=100), user_factory(balance=10)
    for n in range(1, 6):
        transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal(n))
    transfer_create(sender_id=bob.pk, recipient_id=alice.pk, currency=usdt, amount=Decimal(2))
    deposit_create(user_id=alice.pk, currency=btc, amount=Decimal(1))
    withdrawal_create(user_id=alice.pk, currency=btc, amount=Decimal("0.5"))
    return alice, bob


def page(client, user, **params):
    response = client.get(f"/transactions/{user.pk}", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_the_envelope_and_newest_first(history, client_for):
    alice, bob = history

    body = page(client_for(alice), alice)

    assert set(body) == {"data", "pagination"}
    assert body["pagination"] == {"page": 1, "page_size": 20, "total": 9, "total_pages": 1}
    kinds = [(tx["type"], tx["direction"], tx["currency"], tx["amount"]) for tx in body["data"]]
    assert kinds == [
        ("withdrawal", "sent", "BTC", "0.50000000"),
        ("deposit", "received", "BTC", "1.00000000"),
        ("transfer", "received", "USDT", "2.00000000"),
        ("transfer", "sent", "USDT", "5.00000000"),
        ("transfer", "sent", "USDT", "4.00000000"),
        ("transfer", "sent", "USDT", "3.00000000"),
        ("transfer", "sent", "USDT", "2.00000000"),
        ("transfer", "sent", "USDT", "1.00000000"),
        ("deposit", "received", "USDT", "100.00000000"),
    ]
    first = body["data"][0]
    assert {"id", "hash", "signature", "status", "from_user_id", "to_user_id", "memo", "created_at"} <= set(first)
    created = [tx["created_at"] for tx in body["data"]]
    assert created == sorted(created, reverse=True)


def test_pages_are_stable_and_cover_everything_once(history, client_for):
    alice, _ = history
    client = client_for(alice)

    pages = [page(client, alice, page=n, page_size=4) for n in (1, 2, 3)]

    assert [p["pagination"]["total_pages"] for p in pages] == [3, 3, 3]
    ids = [tx["id"] for p in pages for tx in p["data"]]
    assert len(ids) == len(set(ids)) == 9
    assert ids == [tx["id"] for tx in page(client, alice, page_size=100)["data"]]
    assert page(client, alice, page=4, page_size=4)["data"] == []


def test_identical_timestamps_still_order_stably(user_factory, client_for, usdt):
    """Many transfers inside one clock tick: the order must not depend on the query plan."""
    alice, bob = user_factory(balance=100), user_factory()
    for _ in range(30):
        transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal(1))
    client = client_for(bob)

    first = [tx["id"] for tx in page(client, bob, page_size=100)["data"]]
    paged = [tx["id"] for n in range(1, 8) for tx in page(client, bob, page=n, page_size=5)["data"]]

    assert first == paged == sorted(first, reverse=True)


@pytest.mark.parametrize("page_size", [1, 3, 7, 100])
def test_paging_by_chain_position_gives_what_counting_and_skipping_give(
    user_factory, usdt, btc, page_size, django_assert_num_queries
):
    """Unfiltered pages, and pages filtered by currency alone, come from the wallets' entry counts and
    chain positions, never from a count or an offset; every page, past the end included, must equal
    the generic count-and-skip answer."""
    alice, bob = user_factory(balance=100), user_factory()
    for n in range(1, 12):
        transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal(n))
    transfer_create(sender_id=bob.pk, recipient_id=alice.pk, currency=usdt, amount=Decimal(5))
    carol = user_factory(balance=3)  # two wallets with entries: total from the counts, rows by skipping
    deposit_create(user_id=carol.pk, currency=btc, amount=Decimal(1))
    transfer_create(sender_id=carol.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal(1))

    cases = [
        (alice, "", 13, True),
        (bob, "", 13, True),
        (carol, "", 3, False),  # two chains
        (alice, "USDT", 13, True),
        (carol, "usdt", 2, True),
        (carol, "BTC", 1, True),
        (bob, "BTC", 0, False),  # no chain in that currency
    ]
    for user, code, entries, one_chain in cases:
        for number in range(1, entries // page_size + 3):
            params = QueryDict(f"page={number}&page_size={page_size}" + (f"&currency={code}" if code else ""))
            query = TransactionHistoryFilter.parse(params)
            currency_id, window = query.get("currency"), {"page": query["page"], "page_size": query["page_size"]}
            expected = paginate(history_queryset(user_id=user.pk, currency_id=currency_id), history_item, **window)
            assert expected["pagination"]["total"] == entries
            if one_chain:  # the entry counts, then one range of positions: no count, no skip
                with django_assert_num_queries(1 + bool(expected["data"])):
                    got = history_page(user_id=user.pk, currency_id=currency_id, **window)
            else:
                got = history_page(user_id=user.pk, currency_id=currency_id, **window)
            assert got == expected, (user.username, code, number)


@pytest.mark.parametrize(
    "params",
    [
        {"page_size": "101"},
        {"page_size": "0"},
        {"page": "0"},
        {"page": "-1"},
        {"page": "abc"},
        {"page": "1.5"},
        {"page_size": "ten"},
        {"page": "9" * 40},
        {"direction": "up"},
        {"type": "refund"},
        {"created_after": "yesterday"},
        {"created_before": "2024-13-45T00:00:00Z"},
    ],
)
def test_malformed_parameters_are_400_not_silent_defaults(history, client_for, params):
    alice, _ = history
    response = client_for(alice).get(f"/transactions/{alice.pk}", params)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "INVALID_REQUEST"


def test_filters(history, client_for):
    alice, _ = history
    client = client_for(alice)

    assert page(client, alice, currency="btc")["pagination"]["total"] == 2
    assert page(client, alice, direction="sent")["pagination"]["total"] == 6
    assert page(client, alice, direction="received")["pagination"]["total"] == 3
    assert page(client, alice, type="deposit")["pagination"]["total"] == 2
    assert page(client, alice, type="transfer", direction="received")["pagination"]["total"] == 1
    assert page(client, alice, currency="USDT", direction="sent", type="transfer")["pagination"]["total"] == 5


def test_date_filters(history, client_for):
    alice, _ = history
    client = client_for(alice)
    now = timezone.now()

    assert page(client, alice, created_after=(now - timedelta(hours=1)).isoformat())["pagination"]["total"] == 9
    assert page(client, alice, created_after=(now + timedelta(hours=1)).isoformat())["pagination"]["total"] == 0
    assert page(client, alice, created_before=(now - timedelta(hours=1)).isoformat())["pagination"]["total"] == 0
    assert page(client, alice, created_before=(now + timedelta(hours=1)).isoformat())["pagination"]["total"] == 9
    assert page(client, alice, created_after="2000-01-01")["pagination"]["total"] == 9


def test_someone_elses_history_is_403_but_staff_may_read_it(history, client_for, user_factory):
    alice, bob = history

    forbidden = client_for(bob).get(f"/transactions/{alice.pk}")

    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "FORBIDDEN"
    assert page(client_for(user_factory(is_staff=True)), alice)["pagination"]["total"] == 9


def test_history_needs_a_token(history, api):
    alice, _ = history
    assert api.get(f"/transactions/{alice.pk}").status_code == 401


def test_an_empty_history(user_factory, client_for):
    user = user_factory()
    body = page(client_for(user), user)
    assert body == {"data": [], "pagination": {"page": 1, "page_size": 20, "total": 0, "total_pages": 0}}
