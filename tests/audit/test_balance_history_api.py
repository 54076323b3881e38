"""GET /audit/balance-history: own entries (staff: all), each wallet's entries a verifiable hash chain."""

from decimal import Decimal

import pytest

from audit.chain import GENESIS_HASH, entry_hash
from transactions.services import deposit_create, transfer_create, withdrawal_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail(user_factory, usdt, btc):
    alice, bob = user_factory(balance=100), user_factory(balance=50)
    transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("12.5"))
    transfer_create(sender_id=bob.pk, recipient_id=alice.pk, currency=usdt, amount=Decimal("0.000001"))
    deposit_create(user_id=alice.pk, currency=btc, amount=Decimal("1"))
    withdrawal_create(user_id=alice.pk, currency=btc, amount=Decimal("0.25"))
    return alice, bob


def entries(client, **params):
    response = client.get("/audit/balance-history", {"page_size": 100, **params})
    assert response.status_code == 200, response.content
    return response.json()


def test_a_user_sees_only_their_own_entries(trail, client_for):
    alice, _ = trail

    body = entries(client_for(alice))

    assert body["pagination"]["total"] == 5
    assert {e["user_id"] for e in body["data"]} == {alice.pk}
    newest = body["data"][0]
    assert set(newest) == {
        "id",
        "wallet_id",
        "user_id",
        "currency",
        "transaction_id",
        "transaction_hash",
        "type",
        "delta",
        "balance_before",
        "balance_after",
        "held_delta",
        "held_before",
        "held_after",
        "hold_uid",
        "prev_hash",
        "entry_hash",
        "created_at",
    }
    assert (newest["type"], newest["currency"], newest["delta"]) == ("withdrawal", "BTC", "-0.25000000")
    assert (newest["balance_before"], newest["balance_after"]) == ("1.00000000", "0.75000000")


def test_each_wallet_chain_links_from_genesis(trail, client_for):
    alice, _ = trail

    by_wallet: dict[int, list[dict]] = {}
    for entry in reversed(entries(client_for(alice))["data"]):  # oldest first
        by_wallet.setdefault(entry["wallet_id"], []).append(entry)

    assert len(by_wallet) == 2
    for chain in by_wallet.values():
        assert chain[0]["prev_hash"] == GENESIS_HASH
        assert chain[0]["balance_before"] == "0.00000000"
        for previous, entry in zip(chain, chain[1:], strict=False):
            assert entry["prev_hash"] == previous["entry_hash"]
            assert entry["balance_before"] == previous["balance_after"]
        assert len({e["entry_hash"] for e in chain}) == len(chain)


def test_entry_hashes_recompute(trail, client_for):
    from audit.models import BalanceHistory

    alice, _ = trail
    for entry in entries(client_for(alice))["data"]:
        row = BalanceHistory.objects.get(pk=entry["id"])
        assert entry["entry_hash"] == entry_hash(
            prev_hash=entry["prev_hash"],
            wallet_id=entry["wallet_id"],
            transaction_hash=entry["transaction_hash"],
            delta=Decimal(entry["delta"]),
            balance_before=Decimal(entry["balance_before"]),
            balance_after=Decimal(entry["balance_after"]),
            created_at=row.created_at,
        )


def test_staff_see_everything_and_can_filter_by_user(trail, client_for, user_factory):
    alice, bob = trail
    staff = client_for(user_factory(is_staff=True))

    everything = entries(staff)
    only_bob = entries(staff, user_id=bob.pk)

    assert {alice.pk, bob.pk} <= {e["user_id"] for e in everything["data"]}
    assert only_bob["pagination"]["total"] == 3  # deposit, transfer in, transfer out
    assert {e["user_id"] for e in only_bob["data"]} == {bob.pk}


def test_a_user_cannot_ask_for_someone_elses_entries(trail, client_for):
    alice, bob = trail

    response = client_for(alice).get("/audit/balance-history", {"user_id": bob.pk})

    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"
    assert entries(client_for(alice), user_id=alice.pk)["pagination"]["total"] == 5


def test_filters_by_currency_and_wallet(trail, client_for):
    alice, _ = trail
    client = client_for(alice)

    btc = entries(client, currency="btc")
    assert btc["pagination"]["total"] == 2 and {e["currency"] for e in btc["data"]} == {"BTC"}
    wallet_id = btc["data"][0]["wallet_id"]
    assert entries(client, wallet_id=wallet_id)["pagination"]["total"] == 2


@pytest.mark.parametrize(
    "params",
    [
        {"page": "0"},
        {"page_size": "101"},
        {"user_id": "x"},
        {"wallet_id": "-1"},
        {"created_after": "soon"},
    ],
)
def test_malformed_parameters_are_400(trail, client_for, params):
    alice, _ = trail
    response = client_for(alice).get("/audit/balance-history", params)
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_REQUEST"


def test_the_audit_trail_needs_a_token(api):
    response = api.get("/audit/balance-history")
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"
