"""GET /tx/{hash}: a public, verifiable receipt; identities only for the parties and staff."""

import hashlib
import json
from decimal import Decimal

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.receipts import canonical_transaction
from transactions.models import Transaction
from transactions.services import transfer_create

pytestmark = pytest.mark.django_db

# A transfer's; a reversal's has ``reverses`` instead of what was reversed of it (test_reversals_api.py).
PUBLIC_FIELDS = {
    "hash",
    "signature",
    "status",
    "type",
    "currency",
    "amount",
    "created_at",
    "reversed_amount",
    "reversals",
}


@pytest.fixture
def receipt_tx(user_factory, usdt):
    alice, bob = user_factory(balance=100), user_factory()
    tx = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("12.5"), memo="rent")
    return alice, bob, tx


def public_key(api) -> Ed25519PublicKey:
    response = api.get("/receipts/public-key")
    assert response.status_code == 200
    assert response.json()["algorithm"] == "Ed25519"
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(response.json()["public_key"]))


def test_anonymous_callers_see_only_public_fields(receipt_tx, api):
    _, _, tx = receipt_tx

    response = api.get(f"/tx/{tx.hash}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == PUBLIC_FIELDS
    assert body["hash"] == tx.hash and body["amount"] == "12.50000000" and body["currency"] == "USDT"
    assert body["type"] == "transfer" and body["status"] == "completed"
    assert "rent" not in response.content.decode()


@pytest.mark.parametrize("who", ["sender", "recipient", "staff"])
def test_parties_and_staff_also_see_the_user_ids(receipt_tx, client_for, user_factory, who):
    alice, bob, tx = receipt_tx
    viewer = {"sender": alice, "recipient": bob, "staff": user_factory(is_staff=True)}[who]

    body = client_for(viewer).get(f"/tx/{tx.hash}").json()

    assert set(body) == PUBLIC_FIELDS | {"from_user_id", "to_user_id", "uid", "memo", "canonical"}
    assert (body["from_user_id"], body["to_user_id"]) == (alice.pk, bob.pk)
    # A party can recompute the hash from what it is shown.
    assert hashlib.sha256(body["canonical"].encode()).hexdigest() == body["hash"] == tx.hash
    assert json.loads(body["canonical"])["uid"] == body["uid"] == str(tx.uid)


def test_a_bystander_sees_only_public_fields(receipt_tx, client_for, user_factory):
    _, _, tx = receipt_tx
    assert set(client_for(user_factory()).get(f"/tx/{tx.hash}").json()) == PUBLIC_FIELDS


def test_the_hash_is_case_insensitive(receipt_tx, api):
    _, _, tx = receipt_tx
    assert api.get(f"/tx/{tx.hash.upper()}").json()["hash"] == tx.hash


@pytest.mark.parametrize(
    "path", ["0" * 64, "f" * 64, "abc", "z" * 64, "0" * 65, "%27%20OR%201=1--", "%00" * 64, "%C3%A9" * 64]
)
def test_unknown_hashes_are_404_transaction_not_found(receipt_tx, api, path):
    response = api.get(f"/tx/{path}")
    assert response.status_code == 404
    assert response.json()["code"] == "TRANSACTION_NOT_FOUND"


def test_the_signature_verifies_with_the_published_key(receipt_tx, api):
    _, _, tx = receipt_tx
    receipt = api.get(f"/tx/{tx.hash}").json()
    key = public_key(api)

    key.verify(bytes.fromhex(receipt["signature"]), receipt["hash"].encode("ascii"))

    forged = ("0" if receipt["hash"][0] != "0" else "1") + receipt["hash"][1:]
    with pytest.raises(InvalidSignature):
        key.verify(bytes.fromhex(receipt["signature"]), forged.encode("ascii"))


def test_the_hash_recomputes_from_the_canonical_encoding(receipt_tx, api):
    alice, bob, tx = receipt_tx
    stored = Transaction.objects.select_related("currency").get(pk=tx.pk)

    canonical = canonical_transaction(
        uid=str(stored.uid),
        type=stored.type,
        from_user_id=stored.from_user_id,
        to_user_id=stored.to_user_id,
        currency=stored.currency.code,
        amount=stored.amount,
        memo=stored.memo,
        created_at=stored.created_at,
    )

    assert hashlib.sha256(canonical).hexdigest() == stored.hash == api.get(f"/tx/{tx.hash}").json()["hash"]
    assert b'"memo":"rent"' in canonical and b'"currency":"USDT"' in canonical


def test_two_identical_transfers_have_different_hashes(user_factory, usdt):
    alice, bob = user_factory(balance=10), user_factory()
    first = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal(1))
    second = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal(1))
    assert first.hash != second.hash


def test_the_receipt_matches_what_the_transfer_answered(user_factory, client_for, api):
    alice, bob = user_factory(balance=10), user_factory()
    sent = client_for(alice).post("/wallet/transfer", {"to_user_id": bob.pk, "amount": "3"}, format="json").json()

    receipt = api.get(f"/tx/{sent['hash']}").json()

    for field in PUBLIC_FIELDS - {"reversed_amount", "reversals"}:  # (a receipt's alone)
        assert receipt[field] == sent[field], field
    assert (receipt["reversed_amount"], receipt["reversals"]) == ("0.00000000", [])
