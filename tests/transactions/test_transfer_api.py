"""POST /wallet/transfer: the seed's contract, every error code, and nothing half-written."""

from decimal import Decimal

import pytest

from audit.chain import GENESIS_HASH
from audit.models import BalanceHistory
from currencies.models import Currency
from events.models import OutboxEvent
from tests.currencies.factories import CurrencyFactory
from tests.ledger import balance, chain_problems, ledger_state
from transactions.models import Transaction
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


def transfer(client, **body):
    return client.post("/wallet/transfer", body, format="json")


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_transfer_moves_money_and_answers_with_the_seed_fields(user_factory, client_for):
    alice, bob = user_factory(balance=100), user_factory()
    response = client_for(alice).post(
        "/wallet/transfer", {"to_user_id": bob.pk, "amount": "12.5", "memo": "rent"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["message"] == "transfer successful"
    assert body["status"] == "completed" and body["type"] == "transfer"
    assert body["amount"] == "12.50000000" and body["currency"] == "USDT"
    assert (body["from_user_id"], body["to_user_id"]) == (alice.pk, bob.pk)
    assert balance(alice) == Decimal("87.5") and balance(bob) == Decimal("12.5")


def test_the_success_body_has_the_seed_fields_and_the_resulting_balance(user_factory, client_for):
    alice, bob = user_factory(balance=100), user_factory()

    body = transfer(client_for(alice), to_user_id=bob.pk, amount="1").json()

    assert set(body) == {
        "balance_after",
        "available_after",
        "message",
        "id",
        "hash",
        "signature",
        "status",
        "type",
        "from_user_id",
        "to_user_id",
        "currency_id",
        "currency",
        "amount",
        "memo",
        "created_at",
    }
    assert body["memo"] == "" and body["currency_id"] == 1
    assert len(body["hash"]) == 64 and len(body["signature"]) == 128
    assert body["created_at"].endswith("Z")


def test_insufficient_balance_changes_nothing(user_factory, client_for):
    alice, bob = user_factory(balance=10), user_factory()
    response = client_for(alice).post("/wallet/transfer", {"to_user_id": bob.pk, "amount": 999999}, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "INSUFFICIENT_BALANCE"
    assert "insufficient" in response.json()["error"]
    assert balance(alice) == 10 and balance(bob) == 0


def test_a_success_writes_exactly_one_transaction_two_chained_legs_and_one_event(user_factory, client_for):
    alice, bob = user_factory(balance=100), user_factory()
    before = ledger_state()
    alice_head = Wallet.objects.get(user=alice, currency_id=1).audit_head

    body = transfer(client_for(alice), to_user_id=bob.pk, amount="12.5", memo="rent").json()

    after = ledger_state()
    assert after["transactions"] == before["transactions"] + 1
    assert after["history"] == before["history"] + 2
    assert after["outbox"] == before["outbox"] + 1
    tx = Transaction.objects.get(pk=body["id"])
    assert tx.hash == body["hash"] and tx.amount == Decimal("12.5") and tx.memo == "rent"
    assert tx.from_wallet.user_id == alice.pk and tx.to_wallet.user_id == bob.pk
    legs = {leg.user_id: leg for leg in BalanceHistory.objects.filter(transaction=tx)}
    sent, received = legs[alice.pk], legs[bob.pk]
    assert (sent.delta, sent.balance_before, sent.balance_after) == (Decimal("-12.5"), 100, Decimal("87.5"))
    assert (received.delta, received.balance_before, received.balance_after) == (Decimal("12.5"), 0, Decimal("12.5"))
    assert sent.prev_hash == alice_head != GENESIS_HASH  # alice's chain continues from her deposit
    assert received.prev_hash == GENESIS_HASH  # bob's first entry
    for user in (alice, bob):
        assert chain_problems(Wallet.objects.get(user=user, currency_id=1)) == []
    event = OutboxEvent.objects.get(key=tx.hash)
    assert event.state == "pending"
    assert event.payload["event_type"] == "tx.created" and event.payload["hash"] == tx.hash
    assert event.payload["transaction"]["id"] == tx.pk
    assert event.payload["transaction"]["amount"] == "12.50000000"
    assert event.headers["event_id"] == event.payload["event_id"] == str(event.event_id)


def test_to_username_is_case_insensitive(user_factory, client_for):
    alice, bob = user_factory(balance=10), user_factory(username="Bobby")

    response = transfer(client_for(alice), to_username="bobby", amount="1")

    assert response.status_code == 200, response.content
    assert response.json()["to_user_id"] == bob.pk and balance(bob) == 1


@pytest.mark.parametrize("field", ["currency_id", "currency"])
def test_another_currency_by_id_or_code(user_factory, client_for, btc, field):
    from transactions.services import deposit_create

    alice, bob = user_factory(), user_factory()
    deposit_create(user_id=alice.pk, currency=btc, amount=Decimal("1"))

    value = btc.pk if field == "currency_id" else "btc"
    response = transfer(client_for(alice), to_user_id=bob.pk, amount="0.00000001", **{field: value})

    assert response.status_code == 200, response.content
    assert response.json()["currency"] == "BTC" and response.json()["amount"] == "0.00000001"
    assert balance(bob, "BTC") == Decimal("0.00000001") and balance(bob, "USDT") == 0


def test_from_user_id_may_name_the_caller(user_factory, client_for):
    alice, bob = user_factory(balance=10), user_factory()
    assert transfer(client_for(alice), from_user_id=alice.pk, to_user_id=bob.pk, amount="1").status_code == 200


# --- failures: each with its code, each leaving the ledger untouched -------------------------------


@pytest.fixture
def parties(user_factory):
    return user_factory(balance=1000, username="alice"), user_factory(username="bob")


FAILURES = [
    # (body overrides, status, code)
    ({"amount": "2000000"}, 400, "AMOUNT_EXCEEDS_LIMIT"),
    ({"amount": "1000000.000001"}, 400, "AMOUNT_EXCEEDS_LIMIT"),
    ({"amount": "0.0000001"}, 400, "INVALID_DECIMALS"),
    ({"amount": "0"}, 400, "AMOUNT_NOT_POSITIVE"),
    ({"amount": "-5"}, 400, "AMOUNT_NOT_POSITIVE"),
    ({"amount": "1000.000001"}, 400, "INSUFFICIENT_BALANCE"),
    ({"amount": 999999}, 400, "INSUFFICIENT_BALANCE"),
    ({"to_user_id": 999999999}, 404, "RECIPIENT_NOT_FOUND"),
    ({"to_user_id": None, "to_username": "nobody"}, 404, "RECIPIENT_NOT_FOUND"),
    ({"currency": "DOGE"}, 404, "NOT_FOUND"),
    ({"currency_id": 999}, 404, "NOT_FOUND"),
    ({"currency": "USDC"}, 404, "SENDER_WALLET_NOT_FOUND"),
    ({"memo": "m" * 257}, 400, "INVALID_REQUEST"),
    ({"memo": "nul\x00byte"}, 400, "INVALID_REQUEST"),
    ({"to_user_id": None}, 400, "INVALID_REQUEST"),
    ({"to_username": "bob"}, 400, "INVALID_REQUEST"),  # both recipients
    ({"currency": "BTC", "currency_id": 1}, 404, "NOT_FOUND"),  # no currency is both
    ({"balance": "5"}, 400, "INVALID_REQUEST"),
    ({"to_user_id": "bob"}, 400, "INVALID_REQUEST"),
    ({"to_user_id": 0}, 400, "INVALID_REQUEST"),
    ({"to_user_id": True}, 400, "INVALID_REQUEST"),
    ({"to_user_id": 2**64}, 400, "INVALID_REQUEST"),
    ({"amount": None}, 400, "INVALID_REQUEST"),
]


@pytest.mark.parametrize(("overrides", "status", "code"), FAILURES)
def test_each_failure_has_its_code_and_writes_nothing(parties, client_for, overrides, status, code):
    alice, bob = parties
    body = {"to_user_id": bob.pk, "amount": "1", **overrides}
    body = {k: v for k, v in body.items() if v is not None or k == "amount"}
    before = ledger_state()

    response = transfer(client_for(alice), **body)

    assert_error(response, status, code)
    assert ledger_state() == before


def test_same_account_by_id_or_username(parties, client_for):
    alice, _ = parties
    before = ledger_state()

    by_id = transfer(client_for(alice), to_user_id=alice.pk, amount="1")
    by_name = transfer(client_for(alice), to_username="ALICE", amount="1")

    for response in (by_id, by_name):
        assert_error(response, 400, "SAME_ACCOUNT_TRANSFER")
        assert "same account" in response.json()["error"]
    assert ledger_state() == before


def test_the_limit_never_hides_the_balance_check_below_it(user_factory, client_for, api):
    """Seed clients take currencies[0] and send 999,999 expecting INSUFFICIENT_BALANCE."""
    alice, bob = user_factory(balance=1000), user_factory()
    first = api.get("/currencies").json()[0]

    response = transfer(client_for(alice), to_user_id=bob.pk, currency_id=first["id"], amount=999999)

    assert_error(response, 400, "INSUFFICIENT_BALANCE")


def test_from_user_id_of_someone_else_is_403(parties, client_for, user_factory):
    alice, bob = parties
    carol = user_factory(balance=50)
    before = ledger_state()

    response = transfer(client_for(alice), from_user_id=carol.pk, to_user_id=bob.pk, amount="1")

    assert_error(response, 403, "FORBIDDEN")
    assert "forbidden" in response.json()["error"]
    assert ledger_state() == before


def test_no_token_is_401(parties, api):
    _, bob = parties
    before = ledger_state()
    assert_error(transfer(api, to_user_id=bob.pk, amount="1"), 401, "UNAUTHORIZED")
    assert ledger_state() == before


def test_an_inactive_currency_is_404_even_with_wallets(parties, client_for):
    alice, bob = parties
    retired = CurrencyFactory(code="OLD", is_active=False)
    for user in (alice, bob):
        Wallet.objects.create(user=user, currency=retired)
    before = ledger_state()

    assert_error(transfer(client_for(alice), to_user_id=bob.pk, currency="OLD", amount="1"), 404, "NOT_FOUND")
    assert_error(transfer(client_for(alice), to_user_id=bob.pk, currency_id=retired.pk, amount="1"), 404, "NOT_FOUND")
    assert ledger_state() == before


def test_a_recipient_without_a_wallet_in_the_currency_is_404(parties, client_for, user_factory):
    alice, _ = parties
    no_usdt = user_factory(currencies=("BTC",))
    before = ledger_state()

    assert_error(transfer(client_for(alice), to_user_id=no_usdt.pk, amount="1"), 404, "RECIPIENT_NOT_FOUND")
    assert ledger_state() == before


@pytest.mark.parametrize("by", ["to_user_id", "to_username"])
def test_an_inactive_recipient_is_not_found_by_id_or_by_name(parties, client_for, user_factory, by):
    alice, _ = parties
    gone = user_factory(username="gone", is_active=False)
    before = ledger_state()

    response = transfer(client_for(alice), amount="1", **{by: gone.pk if by == "to_user_id" else "gone"})

    assert_error(response, 404, "RECIPIENT_NOT_FOUND")
    assert ledger_state() == before


def test_the_exact_balance_can_be_sent_and_leaves_zero(user_factory, client_for):
    alice, bob = user_factory(balance="0.000001"), user_factory()
    assert transfer(client_for(alice), to_user_id=bob.pk, amount="0.000001").status_code == 200
    assert balance(alice) == 0 and balance(bob) == Decimal("0.000001")


def test_the_limit_itself_is_allowed(user_factory, client_for):
    alice, bob = user_factory(balance=1_000_000), user_factory()
    response = transfer(client_for(alice), to_user_id=bob.pk, amount="1000000")
    assert response.status_code == 200, response.content
    assert balance(bob) == 1_000_000


def test_a_transfer_that_would_overflow_the_recipients_wallet_is_refused_cleanly(user_factory, client_for, btc):
    from transactions.services import deposit_create

    alice, bob = user_factory(), user_factory()
    deposit_create(user_id=alice.pk, currency=btc, amount=Decimal("50"))
    deposit_create(user_id=bob.pk, currency=btc, amount=Decimal("999999999999"))
    before = ledger_state()

    response = transfer(client_for(alice), to_user_id=bob.pk, currency="BTC", amount="50")

    assert response.status_code < 500, response.content
    assert response.status_code == 400
    assert ledger_state() == before


def test_memo_is_kept_verbatim(user_factory, client_for):
    alice, bob = user_factory(balance=10), user_factory()
    memo = "  ünïcode ✓ <script> ' \" " + "m" * 200

    body = transfer(client_for(alice), to_user_id=bob.pk, amount="1", memo=memo).json()

    assert Transaction.objects.get(pk=body["id"]).memo == body["memo"]
    assert len(body["memo"]) <= 256


def test_seed_currencies_are_unchanged_by_transfers(parties, client_for):
    alice, bob = parties
    transfer(client_for(alice), to_user_id=bob.pk, amount="1")
    assert Currency.objects.get(pk=1).max_transfer_amount == Decimal("1000000")


@pytest.mark.parametrize("with_key", [False, True], ids=["checked-under-the-lock", "checked-up-front"])
@pytest.mark.parametrize("revoke", ["logout-everywhere", "deactivated", "no-wallet-and-deactivated"])
def test_a_revoked_or_inactive_senders_token_moves_nothing(user_factory, client_for, revoke, with_key):
    from accounts.models import User
    from accounts.services import user_revoke_tokens

    alice, bob = user_factory(balance=50), user_factory()
    client = client_for(alice)
    if revoke == "logout-everywhere":
        user_revoke_tokens(user=alice)
    else:
        User.objects.filter(pk=alice.pk).update(is_active=False)
    currency = "BTC" if revoke == "no-wallet-and-deactivated" else "USDT"
    if revoke == "no-wallet-and-deactivated":
        Wallet.objects.filter(user=alice, currency__code="BTC").delete()
    before = ledger_state()
    headers = {"HTTP_IDEMPOTENCY_KEY": "k-1"} if with_key else {}

    response = client.post(
        "/wallet/transfer", {"to_user_id": bob.pk, "amount": "1", "currency": currency}, format="json", **headers
    )

    assert_error(response, 401, "UNAUTHORIZED")
    assert ledger_state() == before
    assert balance(alice) == Decimal(50)


def _revoke(user, how: str) -> None:
    from accounts.models import User
    from accounts.services import user_revoke_tokens

    if how == "logout-everywhere":
        user_revoke_tokens(user=user)
    else:
        User.objects.filter(pk=user.pk).update(is_active=False)


@pytest.mark.parametrize("revoke", ["logout-everywhere", "deactivated"])
@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"to_username": "{bob}", "amount": "1"}, id="existing-username"),
        pytest.param({"to_username": "no-such-user-42", "amount": "1"}, id="unknown-username"),
        pytest.param({"to_user_id": 2**62, "amount": "1"}, id="unknown-user-id"),
        pytest.param({"to_user_id": "{alice_id}", "amount": "1"}, id="same-account"),
        pytest.param({"to_user_id": "{bob_id}", "amount": "1", "from_user_id": "{bob_id}"}, id="someone-elses-id"),
        pytest.param({"to_user_id": "{bob_id}", "amount": "1", "currency": "NOPE"}, id="unknown-currency"),
        pytest.param({"to_user_id": "{bob_id}", "amount": "1.1234567"}, id="too-many-decimals"),
        pytest.param({"to_user_id": "{bob_id}", "amount": "-1"}, id="negative-amount"),
        pytest.param({"to_user_id": "{bob_id}", "amount": "abc"}, id="malformed-amount"),
        pytest.param({"to_user_id": "{bob_id}", "amount": "1", "balance": "9"}, id="unknown-field"),
        pytest.param({"amount": "1"}, id="no-recipient"),
    ],
)
def test_a_revoked_token_gets_401_whatever_the_body_so_it_probes_nothing(user_factory, client_for, revoke, body):
    alice, bob = user_factory(balance=50), user_factory()
    client = client_for(alice)
    _revoke(alice, revoke)
    names = {"{bob}": bob.username, "{bob_id}": bob.pk, "{alice_id}": alice.pk}
    body = {k: names.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    before = ledger_state()

    assert_error(client.post("/wallet/transfer", body, format="json"), 401, "UNAUTHORIZED")
    assert ledger_state() == before


def test_a_revoked_token_with_a_malformed_body_gets_401(user_factory, client_for):
    alice = user_factory(balance=50)
    client = client_for(alice)
    _revoke(alice, "logout-everywhere")
    response = client.post("/wallet/transfer", '{"to_username": "x",', content_type="application/json")
    assert_error(response, 401, "UNAUTHORIZED")


def _account_queries(queries) -> list[str]:
    # The lock statement joins the account (and is prepared: its text is not captured); any other
    # statement reading accounts_user is a round trip of its own.
    return [q["sql"] for q in queries if q["sql"] and "accounts_user" in q["sql"] and "FOR UPDATE" not in q["sql"]]


@pytest.mark.parametrize(
    "body, status, account_queries",
    [
        pytest.param({"to_user_id": "{bob_id}", "amount": "1"}, 200, 0, id="by-id"),
        pytest.param({"to_username": "{bob}", "amount": "1"}, 200, 1, id="by-username"),  # the recipient
        pytest.param({"to_user_id": "{bob_id}", "amount": "999"}, 400, 0, id="insufficient-balance"),
    ],
)
def test_the_account_check_rides_on_the_lock_and_adds_no_round_trip(
    user_factory, client_for, body, status, account_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    alice, bob = user_factory(balance=50), user_factory()
    client = client_for(alice)
    names = {"{bob}": bob.username, "{bob_id}": bob.pk}
    body = {k: names.get(v, v) for k, v in body.items()}
    with CaptureQueriesContext(connection) as captured:
        response = client.post("/wallet/transfer", body, format="json")
    assert response.status_code == status
    assert len(_account_queries(captured.captured_queries)) == account_queries, captured.captured_queries


def test_a_currency_named_by_both_id_and_code_is_used_when_they_agree(parties, client_for, usdt):
    alice, bob = parties
    response = transfer(client_for(alice), to_user_id=bob.pk, amount="1", currency_id=usdt.pk, currency=" usdt ")
    assert response.status_code == 200, response.content
    assert response.json()["currency"] == "USDT"


def test_the_transfer_view_authenticates_a_principal_from_the_token_without_a_query(user_factory):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from accounts.authentication import JWTAuthentication
    from accounts.services import _issue_tokens
    from transactions.api.views import TransferViewSet
    from wallet_project.core.principal import Principal

    alice = user_factory()
    raw = _issue_tokens(alice).access
    django_request = APIRequestFactory().post("/wallet/transfer", HTTP_AUTHORIZATION=f"Bearer {raw}")
    request = Request(django_request, parser_context={"view": TransferViewSet()})

    with CaptureQueriesContext(connection) as captured:
        principal, _ = JWTAuthentication().authenticate(request)

    assert captured.captured_queries == []
    assert principal == Principal(id=alice.pk, username=alice.username, token_version=alice.token_version)
    assert principal.is_authenticated and principal.pk == alice.pk and not principal.verified
