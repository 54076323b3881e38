"""/withdrawal-requests over HTTP (in process): held at once, decided by staff, every refusal with its code."""

import json
from decimal import Decimal

import jsonschema
import pytest

from audit.reconcile import reconcile
from currencies.models import Currency
from events.models import OutboxEvent
from holds.api.serializers import WithdrawalRequestOut
from holds.events import withdrawal_request_document
from holds.models import Hold, WithdrawalRequest
from tests.holds.support import assert_error, post, post_raw, wallet_of
from tests.ledger import chain_problems, ledger_state, ledger_state_with_keys
from transactions.models import Transaction
from transactions.services import deposit_create
from wallets.models import Wallet

pytestmark = pytest.mark.django_db

REQUEST_FIELDS = {
    "id", "uid", "status", "user_id", "currency_id", "currency", "amount", "address", "network", "memo", "hold_id",
    "transaction_hash", "network_tx_id", "reason", "decided_by", "decided_at", "created_at", "updated_at",
}  # fmt: skip


def state():
    """The ledger, the holds and the requests: equal snapshots mean nothing was (half-)written."""
    return {
        **ledger_state(),
        "held": sorted(Wallet.objects.values_list("id", "held")),
        "holds": sorted(Hold.objects.values_list("id", "status", "captured", "updated_at")),
        "requests": sorted(WithdrawalRequest.objects.values_list("id", "status", "updated_at")),
    }


@pytest.fixture
def alice(user_factory):
    return user_factory(balance=100, username="alice", currencies=("USDT", "BTC"))


@pytest.fixture
def approver(approver_factory):
    return approver_factory()


@pytest.fixture
def pending(alice, client_for):
    response = post(
        client_for(alice), "/withdrawal-requests", {"amount": "60", "address": "TXa9zQ", "network": "TRC20"}
    )
    assert response.status_code == 202, response.content
    return response.json()


def decide(client, request_id, action, body=None, **kwargs):
    return post(client, f"/withdrawal-requests/{request_id}/{action}", body, **kwargs)


# --- The lifecycle --------------------------------------------------------------------------------------


def test_a_request_is_held_then_approved_by_staff_as_a_withdrawal(alice, approver, client_for):
    owner, staff = client_for(alice), client_for(approver)
    before = ledger_state()

    created = post(owner, "/withdrawal-requests", {"amount": "60", "address": "bc1qar0srrr", "memo": "savings"},
                   key="w-1")  # fmt: skip

    assert created.status_code == 202, created.content
    request = created.json()
    assert set(request) == REQUEST_FIELDS
    assert (request["status"], request["user_id"], request["amount"]) == ("pending", alice.pk, "60.00000000")
    assert (request["address"], request["network"], request["memo"]) == ("bc1qar0srrr", "", "savings")
    assert request["transaction_hash"] is None and request["decided_by"] is None and request["decided_at"] is None
    assert wallet_of(owner, alice) == ("100.00000000", "60.00000000", "40.00000000")
    assert ledger_state()["transactions"] == before["transactions"]
    assert owner.get(f"/withdrawal-requests/{request['id']}").json() == request
    assert staff.get(f"/withdrawal-requests/{request['id']}").json() == request

    approved = decide(staff, request["id"], "approve", {"network_tx_id": "0xfeed01"}, key="a-1")

    assert approved.status_code == 200, approved.content
    done = approved.json()
    assert (done["status"], done["network_tx_id"], done["decided_by"]) == ("completed", "0xfeed01", approver.pk)
    assert done["decided_at"] is not None
    tx = Transaction.objects.get(hash=done["transaction_hash"])
    assert (tx.type, tx.from_user_id, tx.to_user_id, tx.amount) == ("withdrawal", alice.pk, None, Decimal(60))
    assert wallet_of(owner, alice) == ("40.00000000", "0.00000000", "40.00000000")
    assert owner.get(f"/withdrawal-requests/{request['id']}").json() == done
    assert Hold.objects.get(pk=request["hold_id"]).status == "captured"
    assert chain_problems(Wallet.objects.get(user=alice, currency_id=1)) == []
    events = OutboxEvent.objects.filter(topic="wallet.events", key=str(request["id"])).order_by("id")
    assert [e.payload["event_type"] for e in events] == ["withdrawal.requested", "withdrawal.approved"]
    assert OutboxEvent.objects.filter(key=tx.hash, payload__event_type="tx.created").exists()
    assert reconcile().ok


def test_a_rejected_request_releases_the_money_with_its_reason(alice, pending, approver, client_for):
    response = decide(client_for(approver), pending["id"], "reject", {"reason": "address on a sanctions list"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["reason"], body["decided_by"]) == (
        "rejected", "address on a sanctions list", approver.pk
    )  # fmt: skip
    assert body["transaction_hash"] is None
    assert wallet_of(client_for(alice), alice) == ("100.00000000", "0.00000000", "100.00000000")
    assert Hold.objects.get(pk=pending["hold_id"]).status == "voided"
    assert reconcile().ok


def test_the_owner_cancels_a_pending_request(alice, pending, client_for):
    response = decide(client_for(alice), pending["id"], "cancel")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled" and response.json()["decided_by"] == alice.pk
    assert wallet_of(client_for(alice), alice) == ("100.00000000", "0.00000000", "100.00000000")


def test_the_list_shows_own_requests_and_staff_see_and_filter_all(alice, user_factory, client_for, approver):
    bob = user_factory(balance=50)
    owner = client_for(alice)
    first = post(owner, "/withdrawal-requests", {"amount": "1", "address": "a1"}).json()
    second = post(owner, "/withdrawal-requests", {"amount": "2", "address": "a2"}).json()
    theirs = post(client_for(bob), "/withdrawal-requests", {"amount": "3", "address": "b1"}).json()
    decide(owner, first["id"], "cancel")

    def ids(client, **query):
        response = client.get("/withdrawal-requests", query)
        assert response.status_code == 200, response.content
        assert all(set(item) == REQUEST_FIELDS for item in response.json()["data"])
        return [item["id"] for item in response.json()["data"]]

    assert ids(owner) == [second["id"], first["id"]]
    assert ids(owner, status="pending") == [second["id"]]
    assert ids(owner, user_id=alice.pk) == [second["id"], first["id"]]
    assert_error(owner.get("/withdrawal-requests", {"user_id": bob.pk}), 403, "FORBIDDEN")
    staff = client_for(user_factory(is_staff=True))  # reading needs staff status only
    assert ids(staff) == [theirs["id"], second["id"], first["id"]]
    assert ids(staff, status="pending") == [theirs["id"], second["id"]]
    assert ids(staff, user_id=bob.pk) == [theirs["id"]]
    assert ids(staff, status="cancelled", user_id=alice.pk) == [first["id"]]
    page = staff.get("/withdrawal-requests", {"page": 2, "page_size": 2}).json()
    assert [item["id"] for item in page["data"]] == [first["id"]]
    assert page["pagination"] == {"page": 2, "page_size": 2, "total": 3, "total_pages": 2}


@pytest.mark.parametrize("query", [{"status": "active"}, {"user_id": "x"}, {"user_id": "0"}, {"page_size": "0"}])
def test_malformed_list_parameters_are_400(alice, client_for, query):
    assert_error(client_for(alice).get("/withdrawal-requests", query), 400, "INVALID_REQUEST")


def test_a_request_in_another_currency(alice, client_for, btc):
    deposit_create(user_id=alice.pk, currency=btc, amount=Decimal("1"))
    owner = client_for(alice)
    response = post(owner, "/withdrawal-requests", {"amount": "0.25", "currency": "BTC", "address": "bc1q"})
    assert response.status_code == 202, response.content
    assert (response.json()["currency"], response.json()["currency_id"]) == ("BTC", btc.pk)
    assert wallet_of(owner, alice, "BTC") == ("1.00000000", "0.25000000", "0.75000000")


# --- Refusals -------------------------------------------------------------------------------------------


def test_someone_elses_or_an_unknown_request_is_not_found(pending, user_factory, client_for):
    carol = client_for(user_factory(balance=5))
    before = state()
    for response in (
        carol.get(f"/withdrawal-requests/{pending['id']}"),
        decide(carol, pending["id"], "cancel"),
        carol.get("/withdrawal-requests/999999"),
        decide(carol, 999999, "cancel"),
    ):
        assert_error(response, 404, "WITHDRAWAL_REQUEST_NOT_FOUND")
    assert carol.get("/withdrawal-requests").json()["data"] == []
    assert state() == before


def test_staff_deciding_an_unknown_request_get_not_found(approver, client_for):
    staff = client_for(approver)
    assert_error(decide(staff, 999999, "approve"), 404, "WITHDRAWAL_REQUEST_NOT_FOUND")
    assert_error(decide(staff, 999999, "reject", {"reason": "no"}), 404, "WITHDRAWAL_REQUEST_NOT_FOUND")


def test_only_staff_with_the_permission_decide(alice, pending, user_factory, cashier_factory, client_for):
    outsiders = [
        client_for(alice),  # the owner
        client_for(user_factory()),  # anyone
        client_for(user_factory(is_staff=True)),  # staff without permissions
        client_for(cashier_factory()),  # staff who move money, without the approval permission
    ]
    before = state()
    for client in outsiders:
        assert_error(decide(client, pending["id"], "approve"), 403, "FORBIDDEN")
        assert_error(decide(client, pending["id"], "reject", {"reason": "no"}), 403, "FORBIDDEN")
    assert state() == before
    assert client_for(alice).get(f"/withdrawal-requests/{pending['id']}").json()["status"] == "pending"


def test_an_approver_does_not_decide_their_own_request(approver_factory, client_for):
    """Four eyes: the permission to decide is not a permission to pay oneself out."""
    approver = approver_factory()
    deposit_create(user_id=approver.pk, currency=Currency.objects.get(code="USDT"), amount=Decimal("10"))
    own = client_for(approver)
    request = own.post("/withdrawal-requests", {"amount": "4", "address": "0xabc"}, format="json").json()
    before = state()
    assert_error(decide(own, request["id"], "approve"), 403, "FORBIDDEN")
    assert_error(decide(own, request["id"], "reject", {"reason": "mine"}), 403, "FORBIDDEN")
    assert state() == before
    other = client_for(approver_factory())
    assert decide(other, request["id"], "approve").json()["status"] == "completed"


def test_staff_may_not_cancel_someone_elses_request(pending, approver, client_for):
    before = state()
    assert_error(decide(client_for(approver), pending["id"], "cancel"), 403, "FORBIDDEN")
    assert state() == before


@pytest.mark.parametrize("ending", ["approve", "reject", "cancel"])
def test_a_decided_request_is_not_pending_for_any_later_decision(alice, pending, approver, client_for, ending):
    owner, staff = client_for(alice), client_for(approver)
    first = decide(
        owner if ending == "cancel" else staff, pending["id"], ending, {"reason": "no"} if ending == "reject" else None
    )
    assert first.status_code == 200, first.content
    before = state()

    assert_error(decide(staff, pending["id"], "approve"), 409, "WITHDRAWAL_REQUEST_NOT_PENDING")
    assert_error(decide(staff, pending["id"], "reject", {"reason": "late"}), 409, "WITHDRAWAL_REQUEST_NOT_PENDING")
    assert_error(decide(owner, pending["id"], "cancel"), 409, "WITHDRAWAL_REQUEST_NOT_PENDING")

    assert state() == before


CREATE_FAILURES = [
    pytest.param({"amount": "100.000001"}, 400, "INSUFFICIENT_BALANCE", id="more-than-available"),
    pytest.param({"amount": "0"}, 400, "AMOUNT_NOT_POSITIVE", id="zero"),
    pytest.param({"amount": "-1"}, 400, "AMOUNT_NOT_POSITIVE", id="negative"),
    pytest.param({"amount": "1.0000001"}, 400, "INVALID_DECIMALS", id="too-many-decimals"),
    pytest.param({"amount": "1" * 40}, 400, "AMOUNT_EXCEEDS_LIMIT", id="huge"),
    pytest.param({"amount": "1000000.000001"}, 400, "AMOUNT_EXCEEDS_LIMIT", id="above-the-currency-limit"),
    pytest.param({"amount": "1e2"}, 400, "INVALID_REQUEST", id="exponent-in-a-string"),
    pytest.param({"amount": "Infinity"}, 400, "INVALID_REQUEST", id="infinity-string"),
    pytest.param({"currency": "ETH"}, 404, "SENDER_WALLET_NOT_FOUND", id="no-wallet-in-currency"),
    pytest.param({"currency": "NOPE"}, 404, "NOT_FOUND", id="unknown-currency"),
    pytest.param({"address": None}, 400, "INVALID_REQUEST", id="no-address"),
    pytest.param({"address": ""}, 400, "INVALID_REQUEST", id="empty-address"),
    pytest.param({"address": "bc1 q"}, 400, "INVALID_REQUEST", id="address-with-a-space"),
    pytest.param({"address": " bc1q"}, 400, "INVALID_REQUEST", id="address-with-a-leading-space"),
    pytest.param({"address": "bc1q\n"}, 400, "INVALID_REQUEST", id="address-with-a-trailing-newline"),
    pytest.param({"address": "bc1q\t"}, 400, "INVALID_REQUEST", id="address-with-a-tab"),
    pytest.param({"address": "bc1q\x00"}, 400, "INVALID_REQUEST", id="address-with-nul"),
    pytest.param({"address": "bc1qé"}, 400, "INVALID_REQUEST", id="address-not-ascii"),
    pytest.param({"address": "a" * 129}, 400, "INVALID_REQUEST", id="address-too-long"),
    pytest.param({"address": 12345}, 400, "INVALID_REQUEST", id="address-a-number"),
    pytest.param({"network": ""}, 400, "INVALID_REQUEST", id="empty-network"),
    pytest.param({"network": "TRC 20"}, 400, "INVALID_REQUEST", id="network-with-a-space"),
    pytest.param({"network": "a.b"}, 400, "INVALID_REQUEST", id="network-with-a-dot"),
    pytest.param({"network": "n" * 33}, 400, "INVALID_REQUEST", id="network-too-long"),
    pytest.param({"memo": "m" * 257}, 400, "INVALID_REQUEST", id="memo-too-long"),
    pytest.param({"user_id": 1}, 400, "INVALID_REQUEST", id="extra-field-user"),
    pytest.param({"status": "completed"}, 400, "INVALID_REQUEST", id="extra-field-status"),
]


@pytest.mark.parametrize(("overrides", "status", "code"), CREATE_FAILURES)
def test_each_refusal_of_a_new_request_has_its_code_and_writes_nothing(alice, client_for, overrides, status, code):
    body = {"amount": "1", "address": "0xabc", **overrides}
    body = {k: v for k, v in body.items() if v is not None}
    before = state()

    response = post(client_for(alice), "/withdrawal-requests", body)

    assert_error(response, status, code)
    assert state() == before


@pytest.mark.parametrize(
    "address", ["a", "!", "~" * 128, "0x52908400098527886E0F7030069857D2E4169EE7", "bc1q:memo/1?x=%"]
)
def test_any_printable_ascii_address_without_blanks_is_accepted(alice, client_for, address):
    response = post(client_for(alice), "/withdrawal-requests", {"amount": "1", "address": address, "network": "a-_Z9"})
    assert response.status_code == 202, response.content
    assert response.json()["address"] == address and response.json()["network"] == "a-_Z9"


@pytest.mark.parametrize(
    "raw",
    [
        '{"amount": NaN, "address": "a"}',
        '{"amount": "1", "address": "\\ud800"}',
        '{"amount": "1", "address": "a", "memo": "\\udc00"}',
        '{"amount": true, "address": "a"}',
        '{"amount": "1", "address": ["a"]}',
    ],
)
def test_nasty_bodies_are_invalid_request(alice, client_for, raw):
    before = state()
    assert_error(post_raw(client_for(alice), "/withdrawal-requests", raw), 400, "INVALID_REQUEST")
    assert state() == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reason": ""},
        {"reason": "   "},
        {"reason": "r" * 513},
        {"reason": 5},
        {"reason": None},
        {"reason": "ok", "status": "approved"},
    ],
)
def test_a_rejection_needs_a_reason_of_1_to_512_characters(pending, approver, client_for, body):
    before = state()
    response = decide(client_for(approver), pending["id"], "reject", body)
    assert_error(response, 400, "INVALID_REQUEST")
    assert "reason" in response.json()["errors"] or "status" in response.json()["errors"]
    assert state() == before


def test_a_512_character_reason_is_kept_whole(pending, approver, client_for):
    response = decide(client_for(approver), pending["id"], "reject", {"reason": "r" * 512})
    assert response.status_code == 200 and response.json()["reason"] == "r" * 512


@pytest.mark.parametrize(
    "body",
    [{"network_tx_id": ""}, {"network_tx_id": "0x 1"}, {"network_tx_id": "x" * 129}, {"network_tx_id": 7}, {"x": 1}],
)
def test_an_approval_refuses_a_malformed_network_tx_id(pending, approver, client_for, body):
    before = state()
    assert_error(decide(client_for(approver), pending["id"], "approve", body), 400, "INVALID_REQUEST")
    assert state() == before


def test_a_cancel_refuses_a_body_with_fields(alice, pending, client_for):
    before = state()
    assert_error(decide(client_for(alice), pending["id"], "cancel", {"reason": "x"}), 400, "INVALID_REQUEST")
    assert state() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/withdrawal-requests"),
        ("post", "/withdrawal-requests"),
        ("get", "/withdrawal-requests/1"),
        ("post", "/withdrawal-requests/1/approve"),
        ("post", "/withdrawal-requests/1/reject"),
        ("post", "/withdrawal-requests/1/cancel"),
    ],
)
def test_without_a_token_every_endpoint_is_401(api, method, path):
    assert_error(getattr(api, method)(path, {}, format="json"), 401, "UNAUTHORIZED")


# --- Idempotency ------------------------------------------------------------------------------------------


def test_a_replayed_request_is_the_same_request_and_holds_once(alice, client_for):
    owner = client_for(alice)
    body = {"amount": "10", "address": "0xabc"}
    first = post(owner, "/withdrawal-requests", body, key="w-1")
    before = ledger_state_with_keys()

    again = post(owner, "/withdrawal-requests", body, key="w-1")

    assert again.status_code == 202 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert ledger_state_with_keys() == before and WithdrawalRequest.objects.count() == 1
    before = state()
    assert_error(post(owner, "/withdrawal-requests", {**body, "amount": "11"}, key="w-1"), 422,
                 "IDEMPOTENCY_KEY_MISMATCH")  # fmt: skip
    assert_error(post(owner, "/holds", {"amount": "10"}, key="w-1"), 422, "IDEMPOTENCY_KEY_MISMATCH")
    assert state() == before


def test_a_replayed_approval_is_the_same_completion_and_withdraws_once(alice, pending, approver, client_for):
    staff = client_for(approver)
    first = decide(staff, pending["id"], "approve", {"network_tx_id": "0x1"}, key="a-1")
    before = ledger_state_with_keys()

    again = decide(staff, pending["id"], "approve", {"network_tx_id": "0x1"}, key="a-1")

    assert again.status_code == 200 and again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert ledger_state_with_keys() == before
    assert Transaction.objects.filter(type="withdrawal").count() == 1
    # The same key on another request is a mismatch, not a replay of the first.
    other = post(client_for(alice), "/withdrawal-requests", {"amount": "1", "address": "x"}).json()
    before = state()
    assert_error(decide(staff, other["id"], "approve", {"network_tx_id": "0x1"}, key="a-1"), 422,
                 "IDEMPOTENCY_KEY_MISMATCH")  # fmt: skip
    assert state() == before


def test_a_replayed_refusal_answers_as_the_first(alice, pending, approver, client_for):
    owner = client_for(alice)
    assert decide(owner, pending["id"], "cancel", key="c-1").status_code == 200
    assert decide(owner, pending["id"], "cancel", key="c-1")["Idempotent-Replayed"] == "true"
    staff = client_for(approver)
    assert_error(decide(staff, pending["id"], "reject", {"reason": "x"}, key="r-1"), 409,
                 "WITHDRAWAL_REQUEST_NOT_PENDING")  # fmt: skip
    again = decide(staff, pending["id"], "reject", {"reason": "x"}, key="r-1")
    assert_error(again, 409, "WITHDRAWAL_REQUEST_NOT_PENDING")
    assert again["Idempotent-Replayed"] == "true"


# --- The schema documents what the API does ----------------------------------------------------------------


@pytest.fixture
def schema(api):
    response = api.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


OPERATIONS = {
    ("/withdrawal-requests", "post"): {"202", "400", "401", "404", "409", "422"},
    ("/withdrawal-requests", "get"): {"200", "400", "401", "403"},
    ("/withdrawal-requests/{request_id}", "get"): {"200", "401", "404"},
    ("/withdrawal-requests/{request_id}/approve", "post"): {"200", "400", "401", "403", "404", "409", "422"},
    ("/withdrawal-requests/{request_id}/reject", "post"): {"200", "400", "401", "403", "404", "409", "422"},
    ("/withdrawal-requests/{request_id}/cancel", "post"): {"200", "400", "401", "403", "404", "409", "422"},
}


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_every_withdrawal_request_operation_documents_its_responses(schema, path, method):
    operation = schema["paths"][path][method]
    assert OPERATIONS[path, method] <= set(operation["responses"])
    if method == "post":
        assert "Idempotency-Key" in [p["name"] for p in operation["parameters"]]
    if "409" in operation["responses"]:
        assert "WITHDRAWAL_REQUEST_NOT_PENDING" in operation["responses"]["409"]["description"]


def test_a_request_renders_the_declared_properties(schema, pending):
    request = WithdrawalRequest.objects.select_related("currency", "transaction").get(pk=pending["id"])
    assert WithdrawalRequestOut(request).data == withdrawal_request_document(request)
    declared = set(schema["components"]["schemas"]["WithdrawalRequestOut"]["properties"])
    assert set(withdrawal_request_document(request)) == declared == REQUEST_FIELDS


@pytest.mark.parametrize(
    ("body", "accepted"),
    [
        ({"amount": "1", "address": "bc1q"}, True),
        ({"amount": "1", "address": "bc1q", "network": "TRC20"}, True),
        ({"amount": "1", "address": "bc1 q"}, False),
        ({"amount": "1", "address": "bc1q\n"}, False),
        ({"amount": "1", "address": " bc1q"}, False),
        ({"amount": "1", "address": "bc1q", "network": ""}, False),
        ({"amount": "1", "address": "bc1q", "network": "a/b"}, False),
        ({"amount": "1"}, False),
    ],
)
def test_the_create_schema_says_what_the_api_accepts(schema, alice, client_for, body, accepted):
    component = {"$ref": "#/components/schemas/WithdrawalRequestCreateInRequest", "components": schema["components"]}
    assert jsonschema.Draft4Validator(component).is_valid(body) is accepted
    response = post_raw(client_for(alice), "/withdrawal-requests", json.dumps(body))
    assert (response.status_code == 202) is accepted, response.content
