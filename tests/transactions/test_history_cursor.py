"""GET /transactions/{user_id} by cursor: stable while transactions arrive, tamper-evident, bound to its list."""

from decimal import Decimal

import pytest
from django.core import signing
from django.db import connection
from django.test.utils import CaptureQueriesContext

from currencies.models import Currency
from transactions.selectors import history_queryset
from transactions.services import deposit_create, transfer_create
from wallet_project.core.cursor import SALT
from wallets.models import Wallet

from ..paging import read_by_cursor, tampered

LIMIT = 4


def get(client, user, **params):
    return client.get(f"/transactions/{user.pk}", params)


def body_of(response):
    assert response.status_code == 200, response.content
    return response.json()


def every_page(client, user, *, limit=LIMIT, **params):
    """The ids of a whole history read by cursor (nothing written meanwhile), and the pages' sizes."""
    body = body_of(get(client, user, limit=limit, **params))
    pages = [body["data"]]
    while body["pagination"]["has_more"]:
        body = body_of(get(client, user, cursor=body["pagination"]["next_cursor"], limit=limit, **params))
        pages.append(body["data"])
    return [tx["id"] for page in pages for tx in page], [len(page) for page in pages]


def position(cursor):
    """What a cursor carries (the test reads it; a client cannot change it)."""
    return signing.loads(cursor, salt=SALT)["p"]


def ids_now(user, **filters):
    return list(history_queryset(user_id=user.pk, **filters).values_list("transaction_id", flat=True))


@pytest.fixture
def parties(user_factory, usdt):
    """Alice: a deposit and 10 transfers with Bob in USDT, both ways (one wallet's history)."""
    alice, bob = user_factory(balance=100), user_factory(balance=100)
    for n in range(10):
        sender, recipient = (alice, bob) if n % 3 else (bob, alice)
        transfer_create(sender_id=sender.pk, recipient_id=recipient.pk, currency=usdt, amount=Decimal(n + 1))
    return alice, bob


# The query, the selector's filters, and whether Alice also has a BTC history. Unfiltered or by currency
# alone, a one-wallet history is paged by chain positions; the rest by entry ids.
CASES = {
    "one wallet": ({}, {}, False),
    "two wallets": ({}, {}, True),
    "one currency of two": ({"currency": "USDT"}, {"currency_id": "USDT"}, True),
    "received only": ({"direction": "received"}, {"direction": "received"}, False),
    "transfers only, two wallets": ({"type": "transfer"}, {"tx_type": "transfer"}, True),
}


def case_of(name, alice, btc):
    params, filters, second_wallet = CASES[name]
    if second_wallet:
        deposit_create(user_id=alice.pk, currency=btc, amount=Decimal(1))
    if "currency_id" in filters:
        filters = {**filters, "currency_id": Currency.objects.get(code=filters["currency_id"]).pk}
    return params, filters


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("case", CASES)
def test_cursor_pages_read_exactly_the_history_that_existed_while_transfers_arrive(
    parties, client_for, usdt, btc, case
):
    """Newest first, so what arrives while a client pages is newer than every cursor it holds: it never
    shifts a later page (nothing skipped, nothing repeated) and shows on a fresh first page instead."""
    alice, bob = parties
    params, filters = case_of(case, alice, btc)
    before = ids_now(alice, **filters)
    client = client_for(alice)

    def transfer(n):  # both ways, so every filter's list grows
        sender, recipient = (alice, bob) if n % 2 else (bob, alice)
        transfer_create(sender_id=sender.pk, recipient_id=recipient.pk, currency=usdt, amount=Decimal("0.5"))

    pages, inserted = read_by_cursor(lambda query: body_of(get(client, alice, **params, **query)), limit=LIMIT,
                                     insert=transfer)  # fmt: skip

    read = [tx["id"] for page in pages for tx in page]
    assert read == before  # in order: each once, none missing, none added
    assert len(pages) == -(-len(before) // LIMIT) and all(len(page) == LIMIT for page in pages[:-1])
    assert inserted >= len(pages)  # the list grew between every two reads
    now = ids_now(alice, **filters)
    arrived = now[: len(now) - len(before)]
    assert arrived and now[len(arrived) :] == before  # the new ones come first on a fresh read
    assert every_page(client, alice, **params)[0] == now


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_history_that_gains_a_second_wallet_while_paged_goes_on_from_the_same_entry(parties, client_for, usdt, btc):
    """Paged by the USDT wallet's chain positions, then a BTC deposit makes it a two-wallet history:
    the next pages go on by entry id from where the last one stopped."""
    alice, bob = parties
    before = ids_now(alice)
    client = client_for(alice)
    cursors = []

    def fetch(query):
        body = body_of(get(client, alice, **query))
        cursors.append(body["pagination"]["next_cursor"])
        return body

    def deposit_then_transfer(n):
        if n == 0:
            deposit_create(user_id=alice.pk, currency=btc, amount=Decimal(1))
        else:
            transfer_create(sender_id=bob.pk, recipient_id=alice.pk, currency=usdt, amount=Decimal("0.5"))

    pages, _ = read_by_cursor(fetch, limit=LIMIT, insert=deposit_then_transfer)

    assert [tx["id"] for page in pages for tx in page] == before
    assert set(position(cursors[0])) == {"w", "p"}  # the first page came from the USDT chain
    assert set(position(cursors[-2])) == {"id"}  # later ones from the user's entries
    assert Wallet.objects.filter(user=alice, postings__gt=0).count() == 2


@pytest.mark.parametrize("case", CASES)
def test_cursor_pages_are_the_page_number_pages(parties, client_for, btc, case):
    """Both modes read the same list the same way (the chain-position path renders rows as the ORM path does)."""
    alice, _ = parties
    params, _ = case_of(case, alice, btc)
    client = client_for(alice)
    numbered = body_of(get(client, alice, page_size=100, **params))["data"]

    for limit in (1, 3, 100):
        first = body_of(get(client, alice, limit=limit, **params))
        assert first["data"] == numbered[:limit]
        ids, sizes = every_page(client, alice, limit=limit, **params)
        assert ids == [tx["id"] for tx in numbered]
        assert sizes == [limit] * (len(ids) // limit) + ([len(ids) % limit] if len(ids) % limit else [])


def test_the_last_page_says_so_and_an_empty_history_has_no_cursor(parties, client_for, user_factory):
    alice, _ = parties
    client = client_for(alice)
    assert body_of(get(client, alice, limit=11))["pagination"] == {"next_cursor": None, "has_more": False}
    exact = body_of(get(client, alice, limit=10))
    assert exact["pagination"]["has_more"] is True  # 11 entries: one more
    last = body_of(get(client, alice, cursor=exact["pagination"]["next_cursor"]))
    assert len(last["data"]) == 1 and last["pagination"] == {"next_cursor": None, "has_more": False}

    nobody = user_factory()
    assert body_of(get(client_for(nobody), nobody, limit=5)) == {
        "data": [],
        "pagination": {"next_cursor": None, "has_more": False},
    }


def test_a_cursor_alone_pages_by_20(user_factory, client_for, usdt):
    alice, bob = user_factory(balance=100), user_factory()
    for _ in range(23):
        transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal(1))
    client = client_for(bob)
    first = body_of(get(client, bob, limit=1))
    second = body_of(get(client, bob, cursor=first["pagination"]["next_cursor"]))
    assert len(second["data"]) == 20 and second["pagination"]["has_more"] is True


@pytest.mark.parametrize("params", [{}, {"direction": "sent"}])
def test_a_modified_cursor_is_400_naming_the_cursor(parties, client_for, params):
    alice, _ = parties
    client = client_for(alice)
    cursor = body_of(get(client, alice, limit=2, **params))["pagination"]["next_cursor"]

    for bad in [*tampered(cursor), "", "not-a-cursor"]:
        response = get(client, alice, cursor=bad, **params)
        assert response.status_code == 400, (bad, response.content)
        assert response.json()["code"] == "INVALID_REQUEST"
        assert list(response.json()["errors"]) == ["cursor"]


def test_a_cursor_of_another_users_or_another_filters_list_is_400(parties, client_for, user_factory):
    alice, bob = parties
    staff = client_for(user_factory(is_staff=True))

    def cursor_of(user, **params):
        return body_of(get(staff, user, limit=2, **params))["pagination"]["next_cursor"]

    refused = [
        (alice, {"cursor": cursor_of(bob)}),  # Bob's history on Alice's
        (alice, {"cursor": cursor_of(alice, direction="sent"), "direction": "received"}),
        (alice, {"cursor": cursor_of(alice, direction="sent")}),
        (alice, {"cursor": cursor_of(alice), "currency": "USDT"}),
        (alice, {"cursor": cursor_of(alice, type="transfer"), "type": "deposit"}),
    ]
    for user, params in refused:
        response = get(staff, user, **params)
        assert response.status_code == 400, (params, response.content)
        assert response.json()["code"] == "INVALID_REQUEST" and list(response.json()["errors"]) == ["cursor"]
    # The same list read by its owner or by staff is the same list.
    assert get(client_for(alice), alice, cursor=cursor_of(alice)).status_code == 200


@pytest.mark.parametrize("limit", ["0", "101", "", "x", "1.5", "-1", "9" * 30])
def test_a_limit_outside_1_to_100_or_malformed_is_400(parties, client_for, limit):
    alice, _ = parties
    response = get(client_for(alice), alice, limit=limit)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "INVALID_REQUEST" and list(response.json()["errors"]) == ["limit"]


def test_limits_1_and_100_are_taken(parties, client_for):
    alice, _ = parties
    assert len(body_of(get(client_for(alice), alice, limit=1))["data"]) == 1
    assert len(body_of(get(client_for(alice), alice, limit=100))["data"]) == 11


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"page": "1", "limit": "5"}, "limit"),
        ({"page_size": "5", "limit": "5"}, "limit"),
        ({"page": "2", "cursor": "x"}, "cursor"),
        ({"page": "1", "page_size": "5", "cursor": "x", "limit": "5"}, "cursor"),
    ],
)
def test_page_numbers_and_cursors_do_not_mix(parties, client_for, params, named):
    alice, _ = parties
    response = get(client_for(alice), alice, **params)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "INVALID_REQUEST" and list(response.json()["errors"]) == [named]


def test_page_number_requests_keep_their_envelope(parties, client_for):
    alice, _ = parties
    body = body_of(get(client_for(alice), alice, page=2, page_size=4))
    assert body["pagination"] == {"page": 2, "page_size": 4, "total": 11, "total_pages": 3}
    assert body_of(get(client_for(alice), alice))["pagination"]["page_size"] == 20


@pytest.mark.parametrize("case", ["one wallet", "two wallets", "received only"])
def test_a_cursor_page_costs_no_more_queries_than_a_numbered_page(parties, client_for, btc, case):
    """One wallet: its chain length and one range of positions, as page numbers; otherwise the chain
    lengths (or nothing) and one range of ids, where page numbers also count and skip."""
    alice, _ = parties
    params, _ = case_of(case, alice, btc)
    client = client_for(alice)
    cursor = body_of(get(client, alice, limit=3, **params))["pagination"]["next_cursor"]
    with CaptureQueriesContext(connection) as numbered:
        body_of(get(client, alice, page=2, page_size=3, **params))
    with CaptureQueriesContext(connection) as by_cursor:
        body_of(get(client, alice, cursor=cursor, limit=3, **params))
    assert len(by_cursor) <= len(numbered)
    assert not any("OFFSET" in (query["sql"] or "") for query in by_cursor.captured_queries)
