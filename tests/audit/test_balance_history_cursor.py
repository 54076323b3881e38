"""GET /audit/balance-history by cursor: stable while entries are appended, bound to its viewer and filters."""

from decimal import Decimal

import pytest

from audit.models import BalanceHistory
from holds.services import hold_create
from transactions.services import deposit_create, transfer_create
from wallets.models import Wallet

from ..paging import read_by_cursor, tampered

PATH = "/audit/balance-history"
LIMIT = 4


def body_of(response):
    assert response.status_code == 200, response.content
    return response.json()


def every_id(client, *, limit=LIMIT, **params):
    body = body_of(client.get(PATH, {"limit": limit, **params}))
    ids = [entry["id"] for entry in body["data"]]
    while body["pagination"]["has_more"]:
        body = body_of(client.get(PATH, {"cursor": body["pagination"]["next_cursor"], "limit": limit, **params}))
        ids += [entry["id"] for entry in body["data"]]
    return ids


@pytest.fixture
def trail(user_factory, usdt, btc):
    """Transfers both ways, a BTC deposit and a hold: movement entries and a held-only one, two wallets each."""
    alice, bob = user_factory(balance=100), user_factory(balance=100)
    for n in range(5):
        sender, recipient = (alice, bob) if n % 2 else (bob, alice)
        transfer_create(sender_id=sender.pk, recipient_id=recipient.pk, currency=usdt, amount=Decimal(n + 1))
    deposit_create(user_id=alice.pk, currency=btc, amount=Decimal(1))
    hold_create(payer_id=alice.pk, currency=usdt, amount=Decimal(3), payee_id=bob.pk)
    return alice, bob


def ids_of(**filters):
    return list(BalanceHistory.objects.filter(**filters).order_by("-id").values_list("id", flat=True))


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("viewer", ["owner", "staff", "staff, one user's USDT", "staff, one wallet"])
def test_entry_pages_read_exactly_the_entries_that_existed_while_entries_are_appended(
    trail, client_for, user_factory, usdt, viewer
):
    alice, bob = trail
    if viewer == "owner":
        client, params, before = client_for(alice), {}, ids_of(user=alice)
    else:
        client = client_for(user_factory(is_staff=True))
        params, before = {}, ids_of()
        if viewer == "staff, one user's USDT":
            params, before = {"user_id": bob.pk, "currency": "usdt"}, ids_of(user=bob, wallet__currency=usdt)
        elif viewer == "staff, one wallet":  # paged by the chain's positions
            wallet = Wallet.objects.get(user=alice, currency=usdt)
            params, before = {"wallet_id": wallet.pk}, ids_of(wallet=wallet)

    def append(n):  # a transfer (an entry per party) or a hold (a held-only entry)
        if n % 3 == 2:
            hold_create(payer_id=bob.pk, currency=usdt, amount=Decimal("0.1"), payee_id=alice.pk)
        else:
            sender, recipient = (alice, bob) if n % 2 else (bob, alice)
            transfer_create(sender_id=sender.pk, recipient_id=recipient.pk, currency=usdt, amount=Decimal("0.1"))

    pages, inserted = read_by_cursor(
        lambda query: body_of(client.get(PATH, {**params, **query})), limit=LIMIT, insert=append
    )

    assert [entry["id"] for page in pages for entry in page] == before
    assert len(pages) >= 2 and inserted >= len(pages)
    now = every_id(client, **params)
    assert len(now) > len(before) and now[len(now) - len(before) :] == before


def test_entry_cursor_pages_are_the_page_number_pages(trail, client_for, user_factory):
    alice, bob = trail
    staff = client_for(user_factory(is_staff=True))
    wallet = BalanceHistory.objects.filter(user=alice).values_list("wallet_id", flat=True).first()
    for client, params in [
        (client_for(alice), {}),
        (client_for(bob), {"currency": "USDT"}),
        (staff, {}),
        (staff, {"user_id": alice.pk}),
        (staff, {"wallet_id": wallet}),
        (staff, {"created_after": "2000-01-01T00:00:00Z"}),
    ]:
        numbered = body_of(client.get(PATH, {"page_size": 100, **params}))
        assert body_of(client.get(PATH, {"limit": 100, **params}))["data"] == numbered["data"]
        assert every_id(client, limit=3, **params) == [entry["id"] for entry in numbered["data"]]


def test_a_modified_cursor_is_400(trail, client_for):
    alice, _ = trail
    client = client_for(alice)
    cursor = body_of(client.get(PATH, {"limit": 2}))["pagination"]["next_cursor"]
    for bad in [*tampered(cursor), "", "e30:AAAA"]:
        response = client.get(PATH, {"cursor": bad})
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "INVALID_REQUEST" and list(response.json()["errors"]) == ["cursor"]


def test_a_cursor_of_another_viewer_or_filter_is_400(trail, client_for, user_factory):
    alice, bob = trail
    as_alice, as_bob = client_for(alice), client_for(bob)
    staff = client_for(user_factory(is_staff=True))

    def cursor_of(client, **params):
        return body_of(client.get(PATH, {"limit": 1, **params}))["pagination"]["next_cursor"]

    refused = [
        (as_bob, {"cursor": cursor_of(as_alice)}),  # Alice's own entries are not Bob's
        (staff, {"cursor": cursor_of(as_alice)}),  # nor everyone's
        (as_alice, {"cursor": cursor_of(staff)}),
        (staff, {"cursor": cursor_of(staff, user_id=alice.pk), "user_id": bob.pk}),
        (as_alice, {"cursor": cursor_of(as_alice, currency="USDT"), "currency": "BTC"}),
        (as_alice, {"cursor": cursor_of(as_alice, created_after="2000-01-01T00:00:00Z")}),
    ]
    for client, params in refused:
        response = client.get(PATH, params)
        assert response.status_code == 400, (params, response.content)
        assert response.json()["code"] == "INVALID_REQUEST" and list(response.json()["errors"]) == ["cursor"]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "1e3"}, "limit"),
        ({"page": "1", "cursor": "x"}, "cursor"),
        ({"page_size": "20", "limit": "20"}, "limit"),
    ],
)
def test_limits_and_mixed_modes_are_400(trail, client_for, params, named):
    alice, _ = trail
    response = client_for(alice).get(PATH, params)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "INVALID_REQUEST" and list(response.json()["errors"]) == [named]


def test_page_number_requests_keep_their_envelope(trail, client_for):
    alice, _ = trail
    body = body_of(client_for(alice).get(PATH, {"page": 2, "page_size": 3}))
    assert body["pagination"] == {"page": 2, "page_size": 3, "total": 8, "total_pages": 3}
