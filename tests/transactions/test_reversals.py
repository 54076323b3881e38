"""reversal_create: money of a transfer, deposit or withdrawal moved back as a new, linked transaction."""

import hashlib
import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model

from audit.models import BalanceHistory
from audit.receipts import canonical_transaction, verify
from audit.reconcile import reconcile
from currencies.models import Currency
from events.models import OutboxEvent
from events.schemas import event_problems
from holds.services import hold_create
from tests.conftest import make_cashier, make_user
from tests.ledger import balance, chain_problems, ledger_state, ledger_state_with_keys, run_in_threads
from transactions.models import Transaction
from transactions.services import (
    Idempotency,
    deposit_create,
    reversal_create,
    transfer_create,
    withdrawal_create,
)
from wallet_project.core import errors
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


def assert_reconciles():
    report = reconcile(verify_receipts=True)
    assert report.ok, [(c.name, c.examples) for c in report.checks if not c.ok]
    return report


def assert_chains_sound(*users, code="USDT"):
    for user in users:
        assert chain_problems(Wallet.objects.get(user=user, currency__code=code)) == []


@pytest.fixture
def cashier(cashier_factory):
    return cashier_factory()


@pytest.fixture
def paid(user_factory, usdt):
    """Alice (100 deposited) paid Bob 40."""
    alice, bob = user_factory(balance=100), user_factory()
    tx = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("40"), memo="rent")
    return alice, bob, tx


def reverse(original, cashier, amount=None, memo="refund", **kwargs):
    return reversal_create(original=original, amount=amount, memo=memo, created_by_id=cashier.pk, **kwargs)


# -- What a reversal is -------------------------------------------------------------------------------


def test_a_transfer_reverses_as_the_same_money_moving_back(paid, cashier):
    alice, bob, original = paid

    tx = reverse(original, cashier, memo="sent by mistake")

    assert tx.type == "reversal" and tx.status == "completed" and tx.replayed is False
    assert (tx.from_user_id, tx.to_user_id, tx.amount) == (bob.pk, alice.pk, Decimal("40"))
    assert (tx.from_wallet_id, tx.to_wallet_id) == (original.to_wallet_id, original.from_wallet_id)
    assert (tx.reverses_id, tx.memo, tx.created_by_id, tx.currency_id) == (
        original.pk, "sent by mistake", cashier.pk, original.currency_id,
    )  # fmt: skip
    assert (balance(alice), balance(bob)) == (Decimal("100"), Decimal("0"))
    legs = {(e.user_id, e.delta) for e in BalanceHistory.objects.filter(transaction=tx)}
    assert legs == {(bob.pk, Decimal("-40")), (alice.pk, Decimal("40"))}
    # Never an edit: the original is as it was.
    assert Transaction.objects.get(pk=original.pk).amount == Decimal("40")
    assert_chains_sound(alice, bob)
    assert_reconciles()


def test_the_reversal_emits_tx_created_naming_what_it_reverses(paid, cashier):
    *_, original = paid
    tx = reverse(original, cashier)
    event = OutboxEvent.objects.get(key=tx.hash)
    assert event.payload["event_type"] == "tx.created"
    assert event.payload["transaction"]["type"] == "reversal"
    assert event.payload["transaction"]["reverses"] == original.hash
    assert event.payload["transaction"]["id"] == tx.pk
    # What consumers check (consume_events --check) accepts it.
    encoded = json.dumps(event.payload).encode()
    assert event_problems(key=event.key.encode(), headers=event.headers, value=encoded) == []
    # The original's event has no such key (only reversals name another transaction).
    assert "reverses" not in OutboxEvent.objects.get(key=original.hash).payload["transaction"]


def test_a_partial_reversal_then_the_rest_then_nothing_more(paid, cashier):
    alice, bob, original = paid

    first = reverse(original, cashier, amount=Decimal("15"))
    assert (first.amount, balance(alice), balance(bob)) == (Decimal("15"), Decimal("75"), Decimal("25"))

    rest = reverse(original, cashier)  # default: what remains
    assert rest.amount == Decimal("25")
    assert (balance(alice), balance(bob)) == (Decimal("100"), Decimal("0"))

    before = ledger_state()
    with pytest.raises(errors.ReversalExceedsOriginal) as refused:
        reverse(original, cashier)
    assert refused.value.code == "REVERSAL_EXCEEDS_ORIGINAL" and refused.value.status_code == 409
    with pytest.raises(errors.ReversalExceedsOriginal):
        reverse(original, cashier, amount=Decimal("0.000001"))
    assert ledger_state() == before
    assert list(original.reversals.order_by("id")) == [first, rest]
    assert_reconciles()


def test_an_amount_above_what_remains_is_refused_and_nothing_moves(paid, cashier):
    alice, bob, original = paid
    reverse(original, cashier, amount=Decimal("30"))
    bob_wallet = Wallet.objects.get(user=bob, currency__code="USDT")
    assert bob_wallet.available == Decimal("10")
    before = ledger_state()

    with pytest.raises(errors.ReversalExceedsOriginal) as refused:
        reverse(original, cashier, amount=Decimal("10.000001"))

    assert "10.00000000" in refused.value.message  # says what is left
    assert ledger_state() == before
    assert reverse(original, cashier, amount=Decimal("10")).amount == Decimal("10")
    assert_reconciles()


def test_a_deposit_reverses_as_money_leaving_the_user(user_factory, cashier, usdt):
    user = user_factory()
    deposit = deposit_create(user_id=user.pk, currency=usdt, amount=Decimal("50"), created_by_id=cashier.pk)

    tx = reverse(deposit, cashier, amount=Decimal("20"))

    assert (tx.from_user_id, tx.to_user_id, tx.from_wallet_id, tx.to_wallet_id) == (
        user.pk, None, deposit.to_wallet_id, None,
    )  # fmt: skip
    assert balance(user) == Decimal("30")
    assert [e.delta for e in BalanceHistory.objects.filter(transaction=tx)] == [Decimal("-20")]
    report = assert_reconciles()
    assert report.supply["USDT"]["deposits_reversed"] == "20.00000000"


def test_a_withdrawal_reverses_as_money_entering_the_user(user_factory, cashier, usdt):
    user = user_factory(balance=50)
    withdrawal = withdrawal_create(user_id=user.pk, currency=usdt, amount=Decimal("50"), created_by_id=cashier.pk)
    assert balance(user) == 0

    tx = reverse(withdrawal, cashier)

    assert (tx.from_user_id, tx.to_user_id, tx.from_wallet_id, tx.to_wallet_id) == (
        None, user.pk, None, withdrawal.from_wallet_id,
    )  # fmt: skip
    assert balance(user) == Decimal("50")
    assert [e.delta for e in BalanceHistory.objects.filter(transaction=tx)] == [Decimal("50")]
    report = assert_reconciles()
    assert report.supply["USDT"]["withdrawals_reversed"] == "50.00000000"
    assert report.supply["USDT"]["balances"] == report.supply["USDT"]["expected"] == "50.00000000"


def test_a_reversal_is_in_its_originals_currency(user_factory, cashier, btc):
    user = user_factory()
    deposit = deposit_create(user_id=user.pk, currency=btc, amount=Decimal("0.5"), created_by_id=cashier.pk)
    tx = reverse(deposit, cashier, amount=Decimal("0.00000001"))  # BTC's 8 places
    assert tx.currency_id == btc.pk
    assert balance(user, "BTC") == Decimal("0.49999999")
    assert_reconciles()


def test_deactivated_users_can_still_be_reversed(paid, cashier):
    alice, bob, original = paid
    get_user_model().objects.filter(pk__in=[alice.pk, bob.pk]).update(is_active=False)

    tx = reverse(original, cashier)

    assert tx.amount == Decimal("40") and (balance(alice), balance(bob)) == (Decimal("100"), Decimal("0"))
    # (A transfer between them is still refused: only transfers need active parties.)
    with pytest.raises(errors.SenderWalletNotFound):
        transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=original.currency, amount=Decimal("1"))
    assert_reconciles()


def test_the_hash_is_the_only_lookup_needed(paid, cashier):
    *_, original = paid
    tx = reversal_create(original_hash=original.hash.upper(), memo="by hash", created_by_id=cashier.pk)
    assert tx.reverses_id == original.pk and tx.amount == original.amount


@pytest.mark.parametrize("tx_hash", ["0" * 64, "abc", "z" * 64, ""])
def test_an_unknown_original_is_transaction_not_found(db, cashier, tx_hash):
    with pytest.raises(errors.TransactionNotFound) as refused:
        reversal_create(original_hash=tx_hash, memo="x", created_by_id=cashier.pk)
    assert refused.value.code == "TRANSACTION_NOT_FOUND" and refused.value.status_code == 404


# -- Refusals -----------------------------------------------------------------------------------------


def test_a_reversal_cannot_be_reversed(paid, cashier):
    *_, original = paid
    reversal = reverse(original, cashier, amount=Decimal("10"))
    before = ledger_state()

    with pytest.raises(errors.InvalidRequest) as refused:
        reverse(reversal, cashier, amount=Decimal("1"))

    assert refused.value.code == "INVALID_REQUEST"
    assert "a reversal cannot be reversed" in refused.value.message
    assert ledger_state() == before


@pytest.mark.parametrize("memo", ["", "   ", "x" * 257])
def test_a_memo_is_required_and_at_most_256_characters(paid, cashier, memo):
    *_, original = paid
    before = ledger_state()
    with pytest.raises(errors.InvalidRequest) as refused:
        reverse(original, cashier, memo=memo)
    assert refused.value.errors == {"memo": ["required, 1-256 characters"]}
    assert ledger_state() == before


def test_a_memo_of_256_characters_is_kept(paid, cashier):
    *_, original = paid
    assert reverse(original, cashier, memo="m" * 256).memo == "m" * 256


@pytest.mark.parametrize(
    "amount, code",
    [
        (Decimal("0"), "AMOUNT_NOT_POSITIVE"),
        (Decimal("-1"), "AMOUNT_NOT_POSITIVE"),
        (Decimal("0.0000001"), "INVALID_DECIMALS"),  # USDT has 6 places
    ],
)
def test_the_amount_is_checked_against_the_currency(paid, cashier, amount, code):
    *_, original = paid
    before = ledger_state()
    with pytest.raises(errors.ApiError) as refused:
        reverse(original, cashier, amount=amount)
    assert refused.value.code == code
    assert ledger_state() == before


def test_no_per_transfer_limit_applies(user_factory, cashier, usdt):
    user = user_factory()
    big = usdt.max_transfer_amount * 3
    deposit = deposit_create(user_id=user.pk, currency=usdt, amount=big, created_by_id=cashier.pk)
    assert reverse(deposit, cashier, amount=big - 1).amount == big - 1
    assert balance(user) == Decimal("1")


def test_the_recipient_who_spent_the_money_cannot_be_reversed_below_zero(paid, cashier, user_factory, usdt):
    alice, bob, original = paid
    carol = user_factory()
    transfer_create(sender_id=bob.pk, recipient_id=carol.pk, currency=usdt, amount=Decimal("35"))
    before = ledger_state()

    with pytest.raises(errors.InsufficientBalance) as refused:
        reverse(original, cashier)  # all 40: Bob has 5

    assert refused.value.code == "INSUFFICIENT_BALANCE"
    assert ledger_state() == before
    assert reverse(original, cashier, amount=Decimal("5")).amount == Decimal("5")
    assert balance(bob) == 0
    assert_reconciles()


def test_money_on_hold_is_not_available_to_a_reversal(paid, cashier, user_factory, usdt):
    alice, bob, original = paid
    carol = user_factory()
    hold_create(payer_id=bob.pk, payee_id=carol.pk, currency=usdt, amount=Decimal("30"))
    wallet = Wallet.objects.get(user=bob, currency=usdt)
    assert (wallet.balance, wallet.available) == (Decimal("40"), Decimal("10"))
    before = ledger_state()

    with pytest.raises(errors.InsufficientBalance):
        reverse(original, cashier, amount=Decimal("10.000001"))

    assert ledger_state() == before
    reverse(original, cashier, amount=Decimal("10"))
    wallet.refresh_from_db()
    assert (wallet.balance, wallet.held) == (Decimal("30"), Decimal("30"))
    assert_chains_sound(alice, bob)
    assert_reconciles()


def test_a_refused_deposit_reversal_leaves_nothing_half_written(user_factory, cashier, usdt):
    user = user_factory()
    deposit = deposit_create(user_id=user.pk, currency=usdt, amount=Decimal("50"), created_by_id=cashier.pk)
    withdrawal_create(user_id=user.pk, currency=usdt, amount=Decimal("45"), created_by_id=cashier.pk)
    before = ledger_state_with_keys()
    key = Idempotency(key="r-1", scope="reversal", fingerprint="f")

    with pytest.raises(errors.InsufficientBalance):
        reverse(deposit, cashier, amount=Decimal("6"), idempotency=key)

    # The refusal is recorded against the key (for its replay), and nothing else is written.
    after = ledger_state_with_keys()
    assert after == {**before, "idempotency_keys": before["idempotency_keys"] + 1}
    assert_reconciles()


# -- Idempotency --------------------------------------------------------------------------------------


def test_a_replayed_key_returns_the_same_reversal(paid, cashier):
    alice, bob, original = paid
    key = Idempotency(key="rev-1", scope="reversal", fingerprint="same")

    first = reverse(original, cashier, amount=Decimal("10"), idempotency=key)
    again = reverse(original, cashier, amount=Decimal("10"), idempotency=key)

    assert again.pk == first.pk and again.replayed is True and first.replayed is False
    assert again.reverses.hash == original.hash  # loaded with it
    assert original.reversals.count() == 1 and balance(bob) == Decimal("30")


def test_a_replayed_refusal_answers_the_same_even_once_it_would_pass(paid, cashier):
    alice, bob, original = paid
    key = Idempotency(key="rev-2", scope="reversal", fingerprint="same")
    with pytest.raises(errors.ReversalExceedsOriginal):
        reverse(original, cashier, amount=Decimal("41"), idempotency=key)
    with pytest.raises(errors.ReversalExceedsOriginal) as replayed:
        reverse(original, cashier, amount=Decimal("41"), idempotency=key)
    assert replayed.value.headers == {"Idempotent-Replayed": "true"}
    assert original.reversals.count() == 0


def test_a_key_used_with_another_body_is_a_mismatch(paid, cashier):
    *_, original = paid
    reverse(original, cashier, amount=Decimal("1"), idempotency=Idempotency(key="k", scope="reversal", fingerprint="a"))
    with pytest.raises(errors.IdempotencyKeyMismatch):
        reverse(
            original, cashier, amount=Decimal("2"), idempotency=Idempotency(key="k", scope="reversal", fingerprint="b")
        )
    assert original.reversals.count() == 1


# -- The receipt covers what it reverses --------------------------------------------------------------


def test_the_reversals_hash_covers_its_originals_hash(paid, cashier):
    *_, original = paid
    tx = reverse(original, cashier, amount=Decimal("1"), memo="refund")
    stored = Transaction.objects.select_related("currency").get(pk=tx.pk)
    fields = dict(
        uid=str(stored.uid), type=stored.type, from_user_id=stored.from_user_id, to_user_id=stored.to_user_id,
        currency=stored.currency.code, amount=stored.amount, memo=stored.memo, created_at=stored.created_at,
    )  # fmt: skip

    canonical = canonical_transaction(**fields, reverses=original.hash)

    assert hashlib.sha256(canonical).hexdigest() == stored.hash and verify(stored.hash, stored.signature)
    assert json.loads(canonical)["reverses"] == original.hash
    # Without it, or naming another transaction, the hash is another one: the receipt is bound to its original.
    assert hashlib.sha256(canonical_transaction(**fields)).hexdigest() != stored.hash
    assert hashlib.sha256(canonical_transaction(**fields, reverses="0" * 64)).hexdigest() != stored.hash


def test_other_types_encode_as_before(paid):
    """Receipts signed before reversals existed recompute unchanged: no ``reverses`` key for them."""
    *_, original = paid
    canonical = canonical_transaction(
        uid=str(original.uid), type="transfer", from_user_id=original.from_user_id, to_user_id=original.to_user_id,
        currency="USDT", amount=original.amount, memo=original.memo, created_at=original.created_at,
    )  # fmt: skip
    assert b"reverses" not in canonical and hashlib.sha256(canonical).hexdigest() == original.hash


# -- Races on real PostgreSQL -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_twenty_concurrent_partial_reversals_never_exceed_the_original():
    usdt = Currency.objects.get(code="USDT")
    cashier = make_cashier()
    # Bob has more than the original: his balance would not stop a 16th reversal, only the cap does.
    alice, bob = make_user(balance=150), make_user(balance=1000)
    original = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("150"))

    def one_reversal():
        return reversal_create(
            original_hash=original.hash, amount=Decimal("10"), memo="partial", created_by_id=cashier.pk
        )

    results = run_in_threads([one_reversal] * 20, threads=20)

    done = [r for r in results if isinstance(r, Transaction)]
    refused = [r for r in results if isinstance(r, errors.ApiError)]
    assert len(done) + len(refused) == 20, [r for r in results if not isinstance(r, Transaction | errors.ApiError)]
    # Exactly as many as fit: none lost to a race, none let through by one.
    assert len(done) == 15 and {e.code for e in refused} == {"REVERSAL_EXCEEDS_ORIGINAL"}
    assert sum(t.amount for t in Transaction.objects.filter(reverses=original)) == Decimal("150")
    assert (balance(alice), balance(bob)) == (Decimal("150"), Decimal("1000"))
    assert_chains_sound(alice, bob)
    assert_reconciles()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_reversal_racing_the_recipients_own_transfer_never_overdraws():
    usdt = Currency.objects.get(code="USDT")
    cashier = make_cashier()
    alice, carol = make_user(balance=400), make_user()
    pairs = []
    for _ in range(8):
        bob = make_user()
        original = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("40"))
        pairs.append((bob, original))
    tasks = []
    for bob, original in pairs:
        tasks.append(
            lambda original=original: reversal_create(original=original, memo="race", created_by_id=cashier.pk)
        )
        tasks.append(
            lambda bob=bob: transfer_create(
                sender_id=bob.pk, recipient_id=carol.pk, currency=usdt, amount=Decimal("30")
            )
        )

    results = run_in_threads(tasks, threads=16)

    for index, (bob, _) in enumerate(pairs):
        reversal, spend = results[2 * index], results[2 * index + 1]
        outcomes = [r for r in (reversal, spend) if isinstance(r, Transaction)]
        # Bob holds 40: a full reversal and a 30 transfer cannot both pass, and one always does.
        assert len(outcomes) == 1, (reversal, spend)
        (refusal,) = [r for r in (reversal, spend) if not isinstance(r, Transaction)]
        assert isinstance(refusal, errors.InsufficientBalance), refusal
        assert balance(bob) == (Decimal("0") if isinstance(reversal, Transaction) else Decimal("10"))
    assert not Wallet.objects.filter(balance__lt=0).exists()
    assert sum(Wallet.objects.filter(currency=usdt).values_list("balance", flat=True)) == Decimal("400")
    assert_chains_sound(alice, carol, *(bob for bob, _ in pairs))
    assert_reconciles()
