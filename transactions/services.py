"""Where money moves: transfers, deposits and withdrawals.

Every movement follows the same path (``ledger_post``): validation that needs no lock happens
first; then, in one database transaction, the wallets involved are locked in ascending primary-key
order, the source balance is checked, balances are updated, and the transaction row, one
balance-history row per wallet (hash-chained) and the outbox event are inserted. Publishing to
Kafka happens after commit, never inside the locked section.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone

from audit.chain import entry_hash
from audit.models import BalanceHistory
from currencies.models import Currency
from transactions.events import tx_created_event
from transactions.models import Transaction
from wallet_project.core import exceptions as errors
from wallet_project.core.idempotency import idempotency_claim, idempotency_store, replayed_error
from wallet_project.core.money import check_amount
from wallet_project.core.outbox import outbox_enqueue
from wallet_project.core.receipts import sign, transaction_hash
from wallet_project.core.tracing import current_trace_id
from wallets.models import Wallet

logger = logging.getLogger(__name__)

T = TypeVar("T")
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected


@dataclass(frozen=True)
class Idempotency:
    key: str
    scope: str
    fingerprint: str


def run_in_transaction(fn: Callable[[], T]) -> T:
    """Run ``fn`` in the outermost, durable transaction, retrying deadlocks and serialization failures."""
    attempts = max(1, settings.DB_RETRY_ATTEMPTS)
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic(durable=True):
                return fn()
        except OperationalError as exc:
            sqlstate = getattr(exc.__cause__, "sqlstate", None)
            if sqlstate not in RETRYABLE_SQLSTATES or attempt == attempts:
                raise
            logger.warning("retrying transaction", extra={"sqlstate": sqlstate, "attempt": attempt})
            time.sleep(random.uniform(0.005, 0.02) * attempt)
    raise AssertionError("unreachable")


def ledger_post(
    *,
    type: Transaction.Type,
    currency: Currency,
    amount: Decimal,
    from_user_id: int | None = None,
    to_user_id: int | None = None,
    memo: str = "",
    created_by_id: int | None = None,
    idempotency: Idempotency | None = None,
    owner_id: int | None = None,
) -> Transaction | errors.ApiError:
    """Move ``amount`` between the users' wallets in ``currency``; compose inside an outer atomic block.

    ``amount`` must already be validated. Returns the new (or, for a replayed key, the original)
    transaction, or the contract failure to raise once the outer transaction has committed
    (a failure is recorded against the idempotency key so that a replay answers the same).
    """
    uid = uuid.uuid4()
    event_id = uuid.uuid4()
    created_at = timezone.now()
    trace_id = current_trace_id()
    tx_hash = transaction_hash(
        uid=str(uid),
        type=str(type),
        from_user_id=from_user_id,
        to_user_id=to_user_id,
        currency=currency.code,
        amount=amount,
        memo=memo,
        created_at=created_at,
    )
    signature = sign(tx_hash)
    user_ids = [uid_ for uid_ in (from_user_id, to_user_id) if uid_ is not None]

    with transaction.atomic(savepoint=False):
        if idempotency is not None:
            record = idempotency_claim(
                user_id=owner_id, key=idempotency.key, scope=idempotency.scope, fingerprint=idempotency.fingerprint
            )
            if record is not None:
                if record.transaction_id is None:
                    return replayed_error(record)
                original = Transaction.objects.select_related("currency").get(pk=record.transaction_id)
                original.replayed = True
                return original

        wallets = {
            w.user_id: w
            for w in Wallet.objects.select_for_update()
            .filter(user_id__in=user_ids, currency=currency)
            .order_by("pk")
            .only("id", "user_id", "balance", "audit_head")
        }
        source = wallets.get(from_user_id) if from_user_id is not None else None
        target = wallets.get(to_user_id) if to_user_id is not None else None
        failure: errors.ApiError | None = None
        if from_user_id is not None and source is None:
            failure = errors.SenderWalletNotFound(f"sender has no {currency.code} wallet")
        elif to_user_id is not None and target is None:
            failure = errors.RecipientNotFound(f"recipient has no {currency.code} wallet")
        elif source is not None and source.balance < amount:
            failure = errors.InsufficientBalance(
                f"insufficient balance: {currency.code} balance is lower than the amount"
            )
        if failure is not None:
            if idempotency is not None:
                idempotency_store(
                    user_id=owner_id,
                    key=idempotency.key,
                    scope=idempotency.scope,
                    fingerprint=idempotency.fingerprint,
                    error=failure,
                )
            return failure

        tx = Transaction.objects.create(
            uid=uid,
            type=type,
            from_user_id=from_user_id,
            to_user_id=to_user_id,
            from_wallet=source,
            to_wallet=target,
            currency=currency,
            amount=amount,
            memo=memo,
            hash=tx_hash,
            signature=signature,
            created_by_id=created_by_id,
            trace_id=trace_id,
            created_at=created_at,
        )
        entries = []
        for wallet, delta in ((source, -amount), (target, amount)):
            if wallet is None:
                continue
            before = wallet.balance
            after = before + delta
            link = entry_hash(
                prev_hash=wallet.audit_head,
                wallet_id=wallet.pk,
                transaction_hash=tx_hash,
                delta=delta,
                balance_before=before,
                balance_after=after,
                created_at=created_at,
            )
            entries.append(
                BalanceHistory(
                    wallet_id=wallet.pk,
                    user_id=wallet.user_id,
                    transaction=tx,
                    delta=delta,
                    balance_before=before,
                    balance_after=after,
                    prev_hash=wallet.audit_head,
                    entry_hash=link,
                    created_at=created_at,
                )
            )
            Wallet.objects.filter(pk=wallet.pk).update(balance=after, audit_head=link, updated_at=created_at)
        BalanceHistory.objects.bulk_create(entries)
        outbox_enqueue(
            key=tx_hash,
            event_id=event_id,
            payload=tx_created_event(tx, currency_code=currency.code, event_id=event_id, trace_id=trace_id),
        )
        if idempotency is not None:
            idempotency_store(
                user_id=owner_id,
                key=idempotency.key,
                scope=idempotency.scope,
                fingerprint=idempotency.fingerprint,
                transaction_id=tx.pk,
            )
    tx.replayed = False
    return tx


def _commit(post: Callable[[], Transaction | errors.ApiError]) -> Transaction:
    outcome = run_in_transaction(post)
    if isinstance(outcome, errors.ApiError):
        raise outcome
    return outcome


def transfer_create(
    *,
    sender_id: int,
    recipient_id: int,
    currency: Currency,
    amount: Decimal,
    memo: str = "",
    idempotency: Idempotency | None = None,
) -> Transaction:
    """Move ``amount`` of ``currency`` from the sender's wallet to the recipient's."""
    amount = check_amount(amount, decimals=currency.decimals, limit=currency.max_transfer_amount)
    if sender_id == recipient_id:
        raise errors.SameAccountTransfer("cannot transfer to the same account")
    return _commit(
        lambda: ledger_post(
            type=Transaction.Type.TRANSFER,
            currency=currency,
            amount=amount,
            from_user_id=sender_id,
            to_user_id=recipient_id,
            memo=memo,
            idempotency=idempotency,
            owner_id=sender_id,
        )
    )


def deposit_create(
    *,
    user_id: int,
    currency: Currency,
    amount: Decimal,
    memo: str = "",
    created_by_id: int | None = None,
    idempotency: Idempotency | None = None,
) -> Transaction:
    """Money entering the system (staff only): credits the user's wallet with an audit trail."""
    amount = check_amount(amount, decimals=currency.decimals, limit=None)
    return _commit(
        lambda: ledger_post(
            type=Transaction.Type.DEPOSIT,
            currency=currency,
            amount=amount,
            to_user_id=user_id,
            memo=memo,
            created_by_id=created_by_id,
            idempotency=idempotency,
            owner_id=created_by_id,
        )
    )


def withdrawal_create(
    *,
    user_id: int,
    currency: Currency,
    amount: Decimal,
    memo: str = "",
    created_by_id: int | None = None,
    idempotency: Idempotency | None = None,
) -> Transaction:
    """Money leaving the system (staff only): debits the user's wallet with an audit trail."""
    amount = check_amount(amount, decimals=currency.decimals, limit=None)
    return _commit(
        lambda: ledger_post(
            type=Transaction.Type.WITHDRAWAL,
            currency=currency,
            amount=amount,
            from_user_id=user_id,
            memo=memo,
            created_by_id=created_by_id,
            idempotency=idempotency,
            owner_id=created_by_id,
        )
    )
