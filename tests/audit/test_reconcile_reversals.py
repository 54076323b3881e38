"""reconcile and the checkpoint with reversals: their legs, their supply, and a forged one caught."""

import json
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from audit.chain import entry_hash
from audit.models import BalanceHistory, Checkpoint
from audit.receipts import public_key_hex, sign_message, transaction_hash
from audit.signed import canonical
from currencies.models import Currency
from tests.audit.test_checkpoint import by_name, take_checkpoint
from tests.audit.test_reconcile_command import _wallet, failing_checks, run_reconcile, tamper
from transactions.models import Transaction
from transactions.services import deposit_create, ledger_post, reversal_create, transfer_create, withdrawal_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger(user_factory, cashier_factory):
    """Alice paid Bob 40; Carol had 50 deposited and 20 withdrawn; each of the three is partly reversed."""
    usdt = Currency.objects.get(code="USDT")
    cashier = cashier_factory()
    alice, bob, carol = user_factory(balance=100), user_factory(), user_factory()
    transfer = transfer_create(sender_id=alice.pk, recipient_id=bob.pk, currency=usdt, amount=Decimal("40"))
    deposit = deposit_create(user_id=carol.pk, currency=usdt, amount=Decimal("50"), created_by_id=cashier.pk)
    withdrawal = withdrawal_create(user_id=carol.pk, currency=usdt, amount=Decimal("20"), created_by_id=cashier.pk)
    for original, amount in ((transfer, "15"), (deposit, "5"), (withdrawal, "20")):
        reversal_create(original=original, amount=Decimal(amount), memo="fix", created_by_id=cashier.pk)
    return {"alice": alice, "bob": bob, "carol": carol, "cashier": cashier, "transfer": transfer, "deposit": deposit}


def examples(report, name="reversals"):
    return by_name(report, name)["examples"]


def test_a_ledger_with_every_kind_of_reversal_reconciles(ledger):
    ok, report = run_reconcile("--verify-receipts")
    assert ok and failing_checks(report) == set()
    assert by_name(report, "reversals")["checked"] == 3
    assert by_name(report, "legs")["checked"] == Transaction.objects.count()
    assert report["supply"]["USDT"] == {
        "balances": "145.00000000",  # Alice's 100 and Carol's 50 deposited, 20 out, 5 taken back, 20 back in
        "held": "0.00000000",
        "deposits": "150.00000000",
        "withdrawals": "20.00000000",
        "deposits_reversed": "5.00000000",
        "withdrawals_reversed": "20.00000000",
        "expected": "145.00000000",
    }


def forge_reversal(original, amount):
    """Append a reversal of ``original`` the way a DBA could: plain INSERTs, a correct receipt hash naming
    the original, correctly chained legs, wallets moved on. Only the signature cannot be made."""
    created_at, uid = timezone.now(), uuid.uuid4()
    source = _wallet(original.to_user) if original.to_user_id else None
    target = _wallet(original.from_user) if original.from_user_id else None
    tx_hash = transaction_hash(
        uid=str(uid), type="reversal", from_user_id=original.to_user_id, to_user_id=original.from_user_id,
        currency="USDT", amount=amount, memo="", created_at=created_at, reverses=original.hash,
    )  # fmt: skip
    tx = Transaction.objects.create(
        uid=uid, type="reversal", from_user_id=original.to_user_id, to_user_id=original.from_user_id,
        from_wallet=source, to_wallet=target, currency=original.currency, amount=amount, hash=tx_hash,
        signature="ab" * 64, reverses=original, created_at=created_at,
    )  # fmt: skip
    for wallet, delta in ((source, -amount), (target, amount)):
        if wallet is None:
            continue
        after = wallet.balance + delta
        head = entry_hash(
            prev_hash=wallet.audit_head, wallet_id=wallet.pk, transaction_hash=tx_hash, delta=delta,
            balance_before=wallet.balance, balance_after=after, created_at=created_at,
        )  # fmt: skip
        BalanceHistory.objects.create(
            wallet=wallet, user_id=wallet.user_id, transaction=tx, delta=delta, balance_before=wallet.balance,
            balance_after=after, prev_hash=wallet.audit_head, entry_hash=head, seq=wallet.entries + 1,
            posting=wallet.postings + 1, total_in_after=wallet.total_in + max(delta, 0),
            total_out_after=wallet.total_out + max(-delta, 0), postings_after=wallet.postings + 1,
            created_at=created_at,
        )  # fmt: skip
        tamper(
            "UPDATE wallets_wallet SET balance = %s, audit_head = %s, entries = entries + 1, postings = postings + 1,"
            " total_in = total_in + GREATEST(%s, 0), total_out = total_out + GREATEST(-%s, 0) WHERE id = %s",
            [after, head, delta, delta, wallet.pk],
        )
    return tx


def test_a_forged_reversal_beyond_its_original_is_reported(ledger):
    transfer, bob = ledger["transfer"], ledger["bob"]
    transfer_create(sender_id=ledger["alice"].pk, recipient_id=bob.pk, currency=transfer.currency, amount=Decimal(50))
    forge_reversal(transfer, Decimal("30"))  # 15 already reversed of 40: 45 in all

    ok, report = run_reconcile()

    assert not ok
    # Balances, chains, legs and supply all add up: only the cap and the missing signature give it away.
    assert failing_checks(report) == {"reversals", "receipts"}
    (example,) = examples(report)
    assert example == {
        "original_id": transfer.pk,
        "original_amount": "40.00000000",
        "reversed": "45.00000000",
        "problem": "reversals exceed the original",
    }
    assert by_name(report, "receipts")["examples"][0]["hash_ok"] is True


def test_a_validly_signed_reversal_beyond_its_original_is_caught_by_the_reversals_check_alone(ledger):
    """A bug that skipped the cap (the posting path called without reversal_create's check) leaves a
    ledger every other check accepts."""
    transfer, cashier = ledger["transfer"], ledger["cashier"]
    transfer_create(sender_id=transfer.from_user_id, recipient_id=transfer.to_user_id, currency=transfer.currency,
                    amount=Decimal(50))  # fmt: skip
    ledger_post(
        type=Transaction.Type.REVERSAL, currency=transfer.currency, amount=Decimal("26"),
        from_user_id=transfer.to_user_id, to_user_id=transfer.from_user_id, memo="", created_by_id=cashier.pk,
        reverses_id=transfer.pk,
    )  # fmt: skip
    ok, report = run_reconcile("--verify-receipts")
    assert not ok and failing_checks(report) == {"reversals"}
    assert [e["problem"] for e in examples(report)] == ["reversals exceed the original"]


def test_an_inflated_reversal_amount_is_reported(ledger):
    reversal = ledger["transfer"].reversals.get()
    tamper("UPDATE transactions_transaction SET amount = 45 WHERE id = %s", [reversal.pk])
    ok, report = run_reconcile()
    assert not ok
    assert failing_checks(report) == {"legs", "receipts", "reversals"}
    assert examples(report)[0]["problem"] == "reversals exceed the original"


@pytest.mark.parametrize(
    "shape, problem",
    [
        ("same direction", "reversal does not move money between its original's parties the other way round"),
        ("other currency", "reversal in another currency than its original"),
        ("of a reversal", "reversal of a reversal"),
    ],
)
def test_a_reversal_that_does_not_mirror_its_original_is_reported(ledger, shape, problem):
    transfer, alice, bob, cashier = ledger["transfer"], ledger["alice"], ledger["bob"], ledger["cashier"]
    btc = Currency.objects.get(code="BTC")
    deposit_create(user_id=bob.pk, currency=btc, amount=Decimal("1"))
    kwargs = {
        "same direction": {"from_user_id": alice.pk, "to_user_id": bob.pk},
        "other currency": {"currency": btc},
        "of a reversal": {"reverses_id": transfer.reversals.get().pk, "from_user_id": alice.pk, "to_user_id": bob.pk},
    }[shape]
    ledger_post(**{
        "type": Transaction.Type.REVERSAL, "currency": transfer.currency, "amount": Decimal("1"),
        "from_user_id": bob.pk, "to_user_id": alice.pk, "created_by_id": cashier.pk, "reverses_id": transfer.pk,
        **kwargs,
    })  # fmt: skip
    ok, report = run_reconcile("--verify-receipts")
    assert not ok and failing_checks(report) == {"reversals"}
    assert [e["problem"] for e in examples(report)] == [problem]


def test_a_reversal_pointed_at_another_original_is_reported(ledger):
    reversal = ledger["transfer"].reversals.get()
    tamper("UPDATE transactions_transaction SET reverses_id = %s WHERE id = %s", [ledger["deposit"].pk, reversal.pk])
    ok, report = run_reconcile()
    assert not ok
    # Its receipt names the transfer's hash, and it does not mirror the deposit.
    assert failing_checks(report) == {"receipts", "reversals"}
    problems = {e["problem"] for e in examples(report)}
    assert problems == {"reversal does not move money between its original's parties the other way round"}


def test_a_reversal_of_a_missing_transaction_is_reported(ledger):
    reversal = ledger["transfer"].reversals.get()
    tamper("UPDATE transactions_transaction SET reverses_id = 999999999 WHERE id = %s", [reversal.pk])
    ok, report = run_reconcile()
    assert not ok and {"receipts", "reversals"} <= failing_checks(report)
    assert examples(report)[0]["problem"] == "reversal of a transaction that does not exist"


def test_a_reversal_of_a_deposit_with_a_leg_too_many_is_reported(ledger):
    reversal = ledger["deposit"].reversals.get()  # one debit, on Carol's wallet
    moved = BalanceHistory.objects.get(transaction__reverses=ledger["transfer"], user=ledger["bob"])
    tamper("UPDATE audit_balancehistory SET transaction_id = %s WHERE id = %s", [reversal.pk, moved.pk])
    ok, report = run_reconcile()
    assert not ok and "legs" in failing_checks(report)
    flagged = {e["transaction_id"]: e["legs"] for e in by_name(report, "legs")["examples"] if "legs" in e}
    assert flagged == {reversal.pk: 2, moved.transaction_id: 1}


# -- Checkpoints ------------------------------------------------------------------------------------


def test_a_checkpoint_commits_to_the_reversal_totals(ledger, tmp_path):
    path, _ = take_checkpoint(tmp_path)
    fields = json.loads(Checkpoint.objects.get().payload)
    assert fields["supply"]["USDT"]["deposits_reversed"] == "5.00000000"
    assert fields["supply"]["USDT"]["withdrawals_reversed"] == "20.00000000"
    ok, report = run_reconcile("--checkpoint", str(path))
    assert ok and failing_checks(report) == set()

    # A reversal of a deposit made smaller behind the checkpoint: what it signed no longer holds.
    reversal = ledger["deposit"].reversals.get()
    tamper("UPDATE transactions_transaction SET amount = 4 WHERE id = %s", [reversal.pk])
    ok, report = run_reconcile()
    assert not ok
    problems = {e["problem"] for e in by_name(report, "checkpoint")["examples"]}
    assert problems == {"deposits_reversed up to the checkpoint changed"}


def test_a_checkpoint_signed_before_reversals_existed_still_verifies(ledger, tmp_path):
    """Checkpoints of the earlier format commit to deposits and withdrawals alone: each is proven on
    the totals it signed, and the next checkpoint extends it."""
    path, _ = take_checkpoint(tmp_path)
    current = Checkpoint.objects.get()
    fields = json.loads(current.payload)
    for totals in fields["supply"].values():
        del totals["deposits_reversed"], totals["withdrawals_reversed"]
    fields["uid"] = str(uuid.uuid4())
    payload = canonical(fields)
    tamper("DELETE FROM audit_checkpoint")
    old = Checkpoint.objects.create(
        created_at=current.created_at, last_transaction_id=current.last_transaction_id,
        transaction_count=current.transaction_count, wallet_count=current.wallet_count,
        heads_digest=current.heads_digest, supply=fields["supply"], payload=payload,
        signature=sign_message(payload.encode()), key_id=public_key_hex(),
    )  # fmt: skip
    document = json.loads(path.read_text())
    document.update(payload=payload, signature=old.signature)
    path.write_text(json.dumps(document))

    ok, report = run_reconcile("--checkpoint", str(path))

    assert ok and failing_checks(report) == set()
    assert by_name(report, "checkpoint")["checked"] > 0 and report["checkpoints"]["database"]["uid"] == fields["uid"]
    transfer_create(
        sender_id=ledger["alice"].pk,
        recipient_id=ledger["bob"].pk,
        currency=ledger["transfer"].currency,
        amount=Decimal(1),
    )
    take_checkpoint(tmp_path, "next.json")  # refuses to sign when the previous one no longer holds
    assert Checkpoint.objects.count() == 2
