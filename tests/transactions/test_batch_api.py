"""POST /transfers/batch over HTTP (in process): the reply, every refusal named by its item, keys and limits."""

import json
from decimal import Decimal

import pytest
from django.core.cache import cache

from accounts.models import User
from tests.holds.support import assert_error, post, post_raw
from tests.ledger import ledger_state, ledger_state_with_keys
from transactions.models import TransferBatch
from transactions.services import deposit_create
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

URL = "/transfers/batch"
TRANSACTION_FIELDS = {
    "id", "hash", "signature", "status", "type", "from_user_id", "to_user_id", "currency_id", "currency", "amount",
    "memo", "created_at",
}  # fmt: skip
BALANCE_FIELDS = {"currency_id", "currency", "balance_after", "available_after"}


@pytest.fixture
def people(user_factory, btc):
    """Alice has 100 USDT and 1 BTC; Bob and Carol have nothing."""
    alice = user_factory(balance=100, username="alice")
    deposit_create(user_id=alice.pk, currency=btc, amount=Decimal(1))
    return alice, user_factory(username="bob"), user_factory(username="carol")


def balance(user, code="USDT") -> Decimal:
    return Wallet.objects.get(user=user, currency__code=code).balance


def refused(client, body, status, code, *, key=None):
    """The batch is refused with ``code``, nothing is written; returns the error body."""
    before = ledger_state_with_keys()
    response = post(client, URL, body, key=key) if not isinstance(body, str) else post_raw(client, URL, body)
    assert_error(response, status, code)
    after = ledger_state_with_keys()
    if key is not None and status not in (401, 422):
        after["idempotency_keys"] -= int(after["idempotency_keys"] != before["idempotency_keys"])
    assert after == before
    return response.json()


def test_a_batch_answers_201_with_its_transactions_in_order_and_the_balances_it_left(people, client_for, btc):
    alice, bob, carol = people
    body = {
        "transfers": [
            {"to_username": "BOB", "currency": "usdt", "amount": "10", "memo": "rent"},
            {"to_user_id": carol.pk, "currency_id": btc.pk, "amount": 0.1},  # a JSON number, exact
            {"to_user_id": bob.pk, "amount": "2.5"},  # the default currency
        ]
    }

    response = post(client_for(alice), URL, body)

    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store" and "Idempotent-Replayed" not in response
    reply = response.json()
    assert set(reply) == {"transactions", "balances"}
    txs = reply["transactions"]
    assert all(set(tx) == TRANSACTION_FIELDS for tx in txs)
    assert [(t["to_user_id"], t["currency"], t["amount"], t["memo"]) for t in txs] == [
        (bob.pk, "USDT", "10.00000000", "rent"),
        (carol.pk, "BTC", "0.10000000", ""),
        (bob.pk, "USDT", "2.50000000", ""),
    ]
    assert {(t["type"], t["status"], t["from_user_id"]) for t in txs} == {("transfer", "completed", alice.pk)}
    assert reply["balances"] == [
        {"currency_id": 1, "currency": "USDT", "balance_after": "87.50000000", "available_after": "87.50000000"},
        {"currency_id": btc.pk, "currency": "BTC", "balance_after": "0.90000000", "available_after": "0.90000000"},
    ]
    assert (balance(alice), balance(bob), balance(carol, "BTC")) == (Decimal("87.5"), Decimal("12.5"), Decimal("0.1"))
    receipt = client_for(carol).get(f"/tx/{txs[1]['hash']}").json()
    assert receipt["amount"] == "0.10000000" and receipt["from_user_id"] == alice.pk


def test_the_reply_renders_what_the_schema_declares(people, client_for, api):
    alice, bob, _ = people
    schemas = api.get("/openapi.json").json()["components"]["schemas"]
    reply = post(client_for(alice), URL, {"transfers": [{"to_user_id": bob.pk, "amount": "1"}]}).json()
    assert set(reply) == set(schemas["TransferBatchOut"]["properties"])
    assert set(reply["balances"][0]) == set(schemas["BatchBalanceOut"]["properties"]) == BALANCE_FIELDS
    assert set(reply["transactions"][0]) <= set(schemas["TransactionOut"]["properties"])
    operation = api.get("/openapi.json").json()["paths"]["/transfers/batch"]["post"]
    assert {"201", "400", "401", "404", "409", "422", "429"} <= set(operation["responses"])
    request = schemas[operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]]
    assert (request["properties"]["transfers"]["minItems"], request["properties"]["transfers"]["maxItems"]) == (1, 100)


def test_each_username_goes_to_the_account_the_database_matches(people, client_for, user_factory):
    alice, _, _ = people
    strasse, strasze = user_factory(username="strasse"), user_factory(username="straße")
    body = {"transfers": [{"to_username": "STRASSE", "amount": "1"}, {"to_username": "straße", "amount": "2"}]}
    response = post(client_for(alice), URL, body)
    assert response.status_code == 201, response.content
    assert [t["to_user_id"] for t in response.json()["transactions"]] == [strasse.pk, strasze.pk]
    assert (balance(strasse), balance(strasze)) == (1, 2)


# --- refusals name the item -----------------------------------------------------------------------


def test_the_item_that_runs_out_is_named_with_its_code(people, client_for):
    alice, bob, carol = people
    body = {
        "transfers": [
            {"to_user_id": bob.pk, "amount": "40"},
            {"to_user_id": carol.pk, "amount": "40"},
            {"to_user_id": bob.pk, "amount": "15"},
            {"to_user_id": carol.pk, "amount": "10"},  # 105 in all
        ]
    }
    error = refused(client_for(alice), body, 400, "INSUFFICIENT_BALANCE")
    assert list(error["errors"]) == ["transfers[3].amount"]
    assert "insufficient" in error["error"] and "transfers[3]" in error["detail"]
    assert TransferBatch.objects.count() == 0


@pytest.mark.parametrize(
    "bad, status, code, field",
    [
        ({"to_username": "nobody-by-that-name", "amount": "1"}, 404, "RECIPIENT_NOT_FOUND", "to_username"),
        ({"to_user_id": 9_000_000_000, "amount": "1"}, 404, "RECIPIENT_NOT_FOUND", "to_user_id"),
        ({"to_username": "ALICE", "amount": "1"}, 400, "SAME_ACCOUNT_TRANSFER", "to_username"),
        ({"to_user_id": "{alice}", "amount": "1"}, 400, "SAME_ACCOUNT_TRANSFER", "to_user_id"),
        ({"to_user_id": "{bob}", "currency": "DOGE", "amount": "1"}, 404, "NOT_FOUND", "currency"),
        ({"to_user_id": "{bob}", "currency_id": 999, "amount": "1"}, 404, "NOT_FOUND", "currency_id"),
        ({"to_user_id": "{bob}", "currency_id": 1, "currency": "BTC", "amount": "1"}, 404, "NOT_FOUND", "currency"),
        ({"to_user_id": "{bob}", "currency": "ETH", "amount": "1"}, 404, "SENDER_WALLET_NOT_FOUND", "currency"),
        ({"to_user_id": "{bob}", "amount": "0.0000001"}, 400, "INVALID_DECIMALS", "amount"),
        ({"to_user_id": "{bob}", "amount": "1000001"}, 400, "AMOUNT_EXCEEDS_LIMIT", "amount"),
        ({"to_user_id": "{bob}", "amount": "0"}, 400, "AMOUNT_NOT_POSITIVE", "amount"),
        ({"to_user_id": "{bob}", "amount": "-5"}, 400, "AMOUNT_NOT_POSITIVE", "amount"),
        ({"to_user_id": "{bob}", "amount": "100.01"}, 400, "INSUFFICIENT_BALANCE", "amount"),
        ({"to_user_id": "{bob}"}, 400, "INVALID_REQUEST", "amount"),
        ({"to_user_id": "{bob}", "amount": "NaN"}, 400, "INVALID_REQUEST", "amount"),
        ({"to_user_id": "{bob}", "amount": 1e400}, 400, "AMOUNT_EXCEEDS_LIMIT", "amount"),  # exact, and too large
        ({"to_user_id": "{bob}", "amount": True}, 400, "INVALID_REQUEST", "amount"),
        ({"to_user_id": True, "amount": "1"}, 400, "INVALID_REQUEST", "to_user_id"),
        ({"to_user_id": "1.0", "amount": "1"}, 400, "INVALID_REQUEST", "to_user_id"),
        ({"amount": "1"}, 400, "INVALID_REQUEST", "to_user_id"),
        ({"to_user_id": "{bob}", "to_username": "bob", "amount": "1"}, 400, "INVALID_REQUEST", "to_user_id"),
        ({"to_user_id": "{bob}", "amount": "1", "from_user_id": "{alice}"}, 400, "INVALID_REQUEST", "from_user_id"),
        ({"to_user_id": "{bob}", "amount": "1", "balance": "1000"}, 400, "INVALID_REQUEST", "balance"),
        ({"to_user_id": "{bob}", "amount": "1", "memo": "x" * 257}, 400, "INVALID_REQUEST", "memo"),
        ({"to_user_id": "{bob}", "amount": "1", "memo": ["a"]}, 400, "INVALID_REQUEST", "memo"),
    ],
)
def test_a_bad_item_is_named_by_its_index_and_nothing_moves(people, client_for, bad, status, code, field):
    alice, bob, carol = people
    Wallet.objects.filter(user=alice, currency__code="ETH").delete()
    names = {"{alice}": alice.pk, "{bob}": bob.pk}
    bad = {k: names.get(v, v) if isinstance(v, str) else v for k, v in bad.items()}
    good = [{"to_user_id": bob.pk, "amount": "1"}, {"to_username": "carol", "currency": "BTC", "amount": "0.5"}]

    raw = json.dumps({"transfers": [*good, bad]}).replace("Infinity", "1e400")
    error = refused(client_for(alice), raw, status, code)

    assert list(error["errors"]) == [f"transfers[2].{field}"]


@pytest.mark.parametrize(
    "raw, field",
    [
        ('{"transfers": []}', "transfers"),
        ('{"transfers": null}', "transfers"),
        ('{"transfers": {"to_user_id": 2, "amount": "1"}}', "transfers"),
        ('{"transfers": "all of it"}', "transfers"),
        ("{}", "transfers"),
        ('{"transfers": [{"to_user_id": 2, "amount": "1"}], "from_user_id": 1}', "from_user_id"),
        ('[{"to_user_id": 2, "amount": "1"}]', "non_field_errors"),
        ('{"transfers": [{"to_user_id": 2, "amount": "1"}, 7]}', "transfers[1]"),
        ('{"transfers": [{"to_user_id": 2, "amount": "1"}, [1, 2]]}', "transfers[1]"),
        ('{"transfers": [{"to_user_id": 2, "amount": "1"}, null]}', "transfers[1]"),
    ],
)
def test_a_malformed_body_is_400_with_the_path_named(people, client_for, raw, field):
    alice, bob, _ = people
    raw = raw.replace('"to_user_id": 2', f'"to_user_id": {bob.pk}')
    error = refused(client_for(alice), raw, 400, "INVALID_REQUEST")
    assert list(error["errors"]) == [field]


def test_more_than_100_items_is_400(people, client_for):
    alice, bob, _ = people
    error = refused(
        client_for(alice), {"transfers": [{"to_user_id": bob.pk, "amount": "0.01"}] * 101}, 400, "INVALID_REQUEST"
    )
    assert list(error["errors"]) == ["transfers"]
    assert (
        post(client_for(alice), URL, {"transfers": [{"to_user_id": bob.pk, "amount": "0.01"}] * 100}).status_code == 201
    )
    assert balance(alice) == 99


def test_every_malformed_item_is_named_in_one_answer(people, client_for):
    alice, bob, _ = people
    body = {
        "transfers": [
            {"to_user_id": bob.pk, "amount": "1"},
            {"to_user_id": bob.pk},
            {"to_user_id": bob.pk, "amount": "1,5"},
            {"to_username": "bob", "amount": "1", "colour": "red"},
            {"to_user_id": bob.pk, "amount": "-1"},  # well-formed: refused by the checks, which come after
        ]
    }
    error = refused(client_for(alice), body, 400, "INVALID_REQUEST")
    assert list(error["errors"]) == ["transfers[1].amount", "transfers[2].amount", "transfers[3].colour"]


# --- who may send ---------------------------------------------------------------------------------


def test_a_batch_needs_a_valid_token_and_a_revoked_one_moves_nothing(people, client_for, api):
    alice, bob, _ = people
    body = {"transfers": [{"to_user_id": bob.pk, "amount": "1"}]}
    refused(api, body, 401, "UNAUTHORIZED")
    client = client_for(alice)
    User.objects.filter(pk=alice.pk).update(token_version=alice.token_version + 1)  # logged out everywhere
    refused(client, body, 401, "UNAUTHORIZED")
    refused(client, {"transfers": [{"to_username": "nobody", "amount": "1"}]}, 401, "UNAUTHORIZED")
    User.objects.filter(pk=alice.pk).update(token_version=alice.token_version, is_active=False)
    refused(client, body, 401, "UNAUTHORIZED")


def test_an_inactive_recipient_is_not_found(people, client_for):
    alice, bob, _ = people
    User.objects.filter(pk=bob.pk).update(is_active=False)
    error = refused(
        client_for(alice), {"transfers": [{"to_username": "bob", "amount": "1"}]}, 404, "RECIPIENT_NOT_FOUND"
    )
    assert list(error["errors"]) == ["transfers[0].to_username"]


# --- idempotency ------------------------------------------------------------------------------------


def test_the_same_key_and_body_replay_the_batch_and_another_body_is_422(people, client_for):
    alice, bob, carol = people
    client = client_for(alice)
    body = {"transfers": [{"to_user_id": bob.pk, "amount": "3"}, {"to_user_id": carol.pk, "amount": "4"}]}
    first = post(client, URL, body, key="pay-both")
    state = ledger_state()

    again = post(client, URL, body, key="pay-both")

    assert first.status_code == again.status_code == 201, again.content
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert ledger_state() == state
    other = {"transfers": [{"to_user_id": bob.pk, "amount": "3"}]}
    refused(client, other, 422, "IDEMPOTENCY_KEY_MISMATCH", key="pay-both")
    assert (balance(alice), balance(bob), balance(carol)) == (93, 3, 4)


def test_a_refused_batch_replays_its_code(people, client_for, usdt):
    alice, bob, _ = people
    client = client_for(alice)
    body = {"transfers": [{"to_user_id": bob.pk, "amount": "60"}, {"to_user_id": bob.pk, "amount": "60"}]}
    first = refused(client, body, 400, "INSUFFICIENT_BALANCE", key="too-much")
    deposit_create(user_id=alice.pk, currency=usdt, amount=Decimal(100))  # it would fit now

    again = post(client, URL, body, key="too-much")

    assert_error(again, 400, "INSUFFICIENT_BALANCE")
    assert again["Idempotent-Replayed"] == "true" and again.json()["error"] == first["error"]
    assert balance(bob) == 0


# --- the rate limit -----------------------------------------------------------------------------------


def test_a_batch_counts_as_one_request_against_the_rate_limit(people, client_for, settings):
    alice, bob, _ = people
    settings.RATELIMIT_ENABLE, settings.RATELIMIT_DEFAULT = True, "3/m"
    cache.clear()
    client = client_for(alice)
    body = {"transfers": [{"to_user_id": bob.pk, "amount": "0.01"}] * 100}
    try:
        remaining = [int(post(client, URL, body)["X-RateLimit-Remaining"]) for _ in range(3)]
        blocked = post(client, URL, body)
    finally:
        cache.clear()
    assert remaining == [2, 1, 0]
    assert_error(blocked, 429, "RATE_LIMIT_EXCEEDED")
    assert balance(bob) == 3
