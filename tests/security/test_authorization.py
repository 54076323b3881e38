"""Authorization: other users' ids, mass assignment and staff-only endpoints are refused, and nothing changes."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from accounts.services import _issue_tokens
from currencies.models import Currency
from tests.conftest import make_cashier
from tests.ledger import balance, ledger_state_with_keys
from transactions.idempotency import request_fingerprint
from transactions.services import Idempotency, transfer_create
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

SHARED_KEY = "shared-key-1"


@pytest.fixture
def world(user_factory, client_for):
    alice, bob, carol = user_factory(balance=100), user_factory(balance=50), user_factory()
    staff = make_cashier()
    body = {"to_user_id": carol.pk, "amount": "5"}
    # Bob's transfer to Carol, made with an Idempotency-Key that Alice will also use.
    tx = transfer_create(
        sender_id=bob.pk,
        recipient_id=carol.pk,
        currency=Currency.objects.get(code="USDT"),
        amount=Decimal(5),
        idempotency=Idempotency(key=SHARED_KEY, scope="transfer", fingerprint=request_fingerprint("transfer", body)),
    )
    return {
        "alice": alice,
        "bob": bob,
        "carol": carol,
        "staff": staff,
        "tx": tx,
        "as_alice": client_for(alice),
        "as_bob": client_for(bob),
        "as_staff": client_for(staff),
        "body": body,
    }


def _state() -> dict:
    return {
        **ledger_state_with_keys(),
        "users": sorted(User.objects.values_list("id", "username", "is_staff", "is_superuser", "is_active")),
        "wallet_ids": sorted(Wallet.objects.values_list("id", "user_id", "currency_id")),
    }


def _refused(response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    if code == "FORBIDDEN":
        assert "forbidden" in body["error"]


def test_other_users_ids_are_403_on_every_owned_resource(world):
    alice, bob = world["alice"], world["bob"]
    before = _state()
    paths = [
        f"/wallet/{bob.pk}",
        f"/wallet/{bob.pk}?currency=BTC",
        f"/wallet/{bob.pk}?currency_id=2",
        f"/wallet/{bob.pk}/stats",
        f"/wallet/{bob.pk}/stats?window=7d&currency=USDT",
        f"/transactions/{bob.pk}",
        f"/transactions/{bob.pk}?direction=sent&page_size=100",
        f"/audit/balance-history?user_id={bob.pk}",
        # An id nobody has is refused the same way: no enumeration of user ids.
        f"/wallet/{10**12}",
        f"/transactions/{10**12}",
    ]
    for path in paths:
        _refused(world["as_alice"].get(path), 403, "FORBIDDEN")
    # The same requests for her own id work, so the 403s are about ownership.
    assert world["as_alice"].get(f"/wallet/{alice.pk}").status_code == 200
    assert world["as_alice"].get(f"/transactions/{alice.pk}").status_code == 200
    assert _state() == before


def test_balance_history_shows_only_own_entries_whatever_the_filters(world):
    alice, bob = world["alice"], world["bob"]
    bobs_wallets = list(Wallet.objects.filter(user=bob).values_list("id", flat=True))
    for query in ["", f"?wallet_id={bobs_wallets[0]}", "?currency=USDT", "?page_size=100"]:
        response = world["as_alice"].get(f"/audit/balance-history{query}")
        assert response.status_code == 200
        assert {entry["user_id"] for entry in response.json()["data"]} <= {alice.pk}
    assert world["as_alice"].get(f"/audit/balance-history?wallet_id={bobs_wallets[0]}").json()["data"] == []
    staff_view = world["as_staff"].get(f"/audit/balance-history?user_id={bob.pk}").json()["data"]
    assert staff_view and {entry["user_id"] for entry in staff_view} == {bob.pk}


def test_a_receipt_shows_party_ids_only_to_parties_and_staff(world):
    tx, bob, carol = world["tx"], world["bob"], world["carol"]
    path = f"/tx/{tx.hash}"
    for client in (world["as_alice"], APIClient()):
        body = client.get(path).json()
        assert body["hash"] == tx.hash
        assert "from_user_id" not in body and "to_user_id" not in body
        assert str(bob.pk) not in {str(v) for v in body.values()}
    for client in (world["as_bob"], world["as_staff"]):
        body = client.get(path).json()
        assert (body["from_user_id"], body["to_user_id"]) == (bob.pk, carol.pk)
    # A token for someone else cannot be forged into party status: a bad token is a 401, not a public view.
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer not.a.token")
    assert bad.get(path).status_code == 401


def test_another_users_idempotency_key_never_replays_their_response(world):
    alice, bob, carol, tx = world["alice"], world["bob"], world["carol"], world["tx"]
    response = world["as_alice"].post("/wallet/transfer", world["body"], format="json", HTTP_IDEMPOTENCY_KEY=SHARED_KEY)
    assert response.status_code == 200, response.content
    assert "Idempotent-Replayed" not in response
    body = response.json()
    assert body["from_user_id"] == alice.pk and body["id"] != tx.pk and body["hash"] != tx.hash
    assert balance(alice) == 95 and balance(bob) == 45 and balance(carol) == 10
    # Bob's own replay still answers with Bob's transfer.
    replay = world["as_bob"].post("/wallet/transfer", world["body"], format="json", HTTP_IDEMPOTENCY_KEY=SHARED_KEY)
    assert replay["Idempotent-Replayed"] == "true" and replay.json()["id"] == tx.pk
    # And a staff member's deposit with the same key is a deposit of its own.
    deposit = world["as_staff"].post(
        "/deposits",
        {"user_id": carol.pk, "currency": "USDT", "amount": "1"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=SHARED_KEY,
    )
    assert deposit.status_code == 201 and "Idempotent-Replayed" not in deposit
    assert deposit.json()["type"] == "deposit" and deposit.json()["id"] not in (tx.pk, body["id"])


@pytest.mark.parametrize(
    "extra",
    [
        {"balance": "1000000"},
        {"is_staff": True},
        {"is_superuser": True},
        {"user_id": 1},
        {"id": 1},
        {"token_version": 0},
        {"wallets": [{"currency": "USDT", "balance": "1000"}]},
    ],
    ids=lambda extra: next(iter(extra)),
)
def test_signup_refuses_mass_assignment(extra, api):
    before = _state()
    response = api.post(
        "/users",
        {"username": "mallory", "email": "mallory@example.com", "password": "correct horse 1", **extra},
        format="json",
    )
    _refused(response, 400, "INVALID_REQUEST")
    assert set(extra) <= set(response.json()["errors"])
    assert _state() == before


@pytest.mark.parametrize(
    "extra",
    [{"balance": "1000"}, {"user_id": "bob"}, {"is_staff": True}, {"audit_head": "0" * 64}],
    ids=lambda extra: next(iter(extra)),
)
def test_opening_a_wallet_refuses_mass_assignment(extra, world):
    extra = {k: (world["bob"].pk if v == "bob" else v) for k, v in extra.items()}
    before = _state()
    _refused(world["as_alice"].post("/wallets", {"currency": "USDC", **extra}, format="json"), 400, "INVALID_REQUEST")
    assert _state() == before
    opened = world["as_alice"].post("/wallets", {"currency": "USDC"}, format="json")
    assert opened.status_code == 201
    assert opened.json()["user_id"] == world["alice"].pk and opened.json()["balance"] == "0.00000000"


@pytest.mark.parametrize(
    ("extra", "status", "code"),
    [
        ({"from_user_id": "bob"}, 403, "FORBIDDEN"),
        ({"from_user_id": "bob", "to_user_id": "alice"}, 403, "FORBIDDEN"),
        ({"balance": "1000"}, 400, "INVALID_REQUEST"),
        ({"user_id": "bob"}, 400, "INVALID_REQUEST"),
        ({"status": "pending"}, 400, "INVALID_REQUEST"),
        ({"type": "deposit"}, 400, "INVALID_REQUEST"),
        ({"hash": "0" * 64}, 400, "INVALID_REQUEST"),
        ({"created_by_id": 1}, 400, "INVALID_REQUEST"),
    ],
    ids=str,
)
def test_a_transfer_refuses_mass_assignment_and_spending_for_someone_else(extra, status, code, world):
    ids = {"alice": world["alice"].pk, "bob": world["bob"].pk}
    extra = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in extra.items()}
    before = _state()
    body = {"to_user_id": world["carol"].pk, "amount": "1", **extra}
    _refused(world["as_alice"].post("/wallet/transfer", body, format="json"), status, code)
    assert _state() == before


@pytest.mark.parametrize("path", ["/deposits", "/withdrawals"])
def test_staff_only_money_endpoints_refuse_normal_users_and_strangers(path, world):
    body = {"user_id": world["alice"].pk, "currency": "USDT", "amount": "10"}
    before = _state()
    _refused(world["as_alice"].post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="x"), 403, "FORBIDDEN")
    _refused(APIClient().post(path, body, format="json"), 401, "UNAUTHORIZED")
    assert _state() == before
    assert world["as_staff"].post(path, body, format="json").status_code == 201  # the endpoint itself works


def test_the_admin_refuses_a_normal_user_even_with_a_session(world):
    alice = world["alice"]
    client = APIClient()
    client.force_login(alice)
    for path in ["/admin/", "/admin/accounts/user/", f"/admin/accounts/user/{alice.pk}/change/", "/admin/wallets/"]:
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), (path, response)
    client.post(f"/admin/accounts/user/{alice.pk}/change/", {"is_staff": "on", "is_superuser": "on"})
    alice.refresh_from_db()
    assert not alice.is_staff and not alice.is_superuser
    # A bearer token does not open the admin either (it is session-only).
    response = world["as_alice"].get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_read_only_resources_refuse_writes(method, world):
    alice = world["alice"]
    before = _state()
    for path in [f"/wallet/{alice.pk}", f"/transactions/{alice.pk}", f"/tx/{world['tx'].hash}", "/currencies/1"]:
        response = getattr(world["as_alice"], method)(path, {"balance": "1000000"}, format="json")
        _refused(response, 405, "METHOD_NOT_ALLOWED")
    assert _state() == before


def test_logging_out_someone_elses_refresh_token_is_refused(world):
    bobs = _issue_tokens(world["bob"])
    _refused(world["as_alice"].post("/auth/logout", {"refresh": bobs.refresh}, format="json"), 403, "FORBIDDEN")
    assert APIClient().post("/auth/refresh", {"refresh": bobs.refresh}, format="json").status_code == 200


def test_lookup_and_profile_never_leak_secrets(world):
    lookup = world["as_alice"].get(f"/users/lookup?username={world['bob'].username}").json()
    assert set(lookup) == {"id", "username"}
    me = world["as_alice"].get("/users/me").json()
    assert not {"password", "token_version", "is_staff", "is_superuser"} & set(me)
    assert "argon2" not in str(me) and world["alice"].password not in str(me)


@pytest.mark.parametrize("path", ["/deposits", "/withdrawals"])
@pytest.mark.parametrize("key", [None, "k-1"], ids=["no-key", "with-key"])
def test_staff_without_the_movement_permission_cannot_move_money(path, key, world, user_factory, client_for):
    clerk = user_factory(is_staff=True)  # staff status alone: the admin refuses this clerk too
    body = {"user_id": world["alice"].pk, "currency": "USDT", "amount": "10"}
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    before = _state()
    _refused(client_for(clerk).post(path, body, format="json", **headers), 403, "FORBIDDEN")
    assert _state() == before
