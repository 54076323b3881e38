"""Where money moves: transfers, deposits, withdrawals and the sign-up grant.

Every movement takes one path, ``ledger_post``, in named steps: prepare (everything that needs no
lock: ids, hash, signature, the event's JSON), then in one database transaction claim or replay the
idempotency key, lock the wallets in ascending primary key, check (the sender's account, the
wallets, the balance, the limit), build the hash-chained legs, write every row, record the outcome
against the key and enqueue the event, published to Kafka after commit, never inside the lock.
The two backends share every step but the final statements (``transactions.sql`` on PostgreSQL,
the ORM on SQLite).
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from audit.chain import entry_hash
from audit.models import BalanceHistory
from audit.receipts import sign, transaction_hash
from currencies.models import Currency
from currencies.money import MAX_AMOUNT, check_amount
from events.models import OutboxEvent
from events.outbox import outbox_insert, publish_on_commit
from transactions import sql
from transactions.events import tx_created_event
from transactions.idempotency import idempotency_claim, idempotency_store, replayed_error
from transactions.models import Transaction
from transactions.sql import LockedRow
from wallet_project.core import errors
from wallet_project.core.principal import Principal, principal_account_valid
from wallet_project.core.tracing import current_trace_id
from wallets.models import Wallet

User = get_user_model()  # the ledger sits below accounts: the user table by its setting

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


@dataclass(frozen=True)
class _Draft:
    """A movement as prepared before the lock: the transaction row (without its id) and its event."""

    tx: Transaction
    user_ids: list[int]
    active_only: bool
    idempotency: Idempotency | None
    owner_id: int | None
    event_id: uuid.UUID
    event: dict
    payload_head: str  # the event's JSON up to the transaction id, which the insert assigns ...
    payload_tail: str  # ... and after it
    headers: dict


@dataclass(frozen=True)
class _Refused:
    """A refusal recorded against the idempotency key: raised once its transaction has committed."""

    error: errors.ApiError


_ID_SLOT = '"transaction": {"id": 0, '  # (quotes inside JSON strings are escaped: found only as the key)


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
    principal: Principal | None = None,
    composed: bool = False,
) -> Transaction:
    """Move ``amount`` (already validated) between the users' wallets in ``currency``: the one posting path.

    Runs in a transaction of its own (retrying deadlocks), or with ``composed`` inside the caller's
    (the sign-up grant), where a refusal rolls the caller back. Returns the new transaction, or the
    original one for a replayed key; raises the refusal otherwise. A refusal found under the lock is
    recorded against the idempotency key in the same transaction, which commits before it is raised,
    so that a replay answers the same. ``principal``: the sender, when their account is still to be
    checked (``Principal.verified`` false): the check rides on the wallet lock.
    """
    draft = _prepare(
        type=type,
        currency=currency,
        amount=amount,
        from_user_id=from_user_id,
        to_user_id=to_user_id,
        memo=memo,
        created_by_id=created_by_id,
        idempotency=idempotency,
        owner_id=owner_id,
    )
    if composed:
        assert idempotency is None, "a recorded refusal needs the movement's own transaction to commit"
        outcome = _post(draft, principal)
    else:
        outcome = run_in_transaction(lambda: _post(draft, principal))
    if isinstance(outcome, _Refused):
        raise outcome.error
    return outcome


def _post(draft: _Draft, principal: Principal | None) -> Transaction | _Refused:
    with transaction.atomic(savepoint=False):
        original = _claim_or_replay(draft)
        if original is not None:
            return original
        locked = _lock(draft)
        _check_account(draft, principal, locked)
        try:
            legs = _check_and_build_legs(draft, locked)
        except errors.ApiError as refusal:  # nothing is written before the checks: no savepoint needed
            _store_outcome(draft, error=refusal)
            return _Refused(refusal)
        event = _write(draft, legs)
        _store_outcome(draft, transaction_id=draft.tx.pk)
        publish_on_commit(event)
    draft.tx.replayed = False
    return draft.tx


def _prepare(
    *,
    type: Transaction.Type,
    currency: Currency,
    amount: Decimal,
    from_user_id: int | None,
    to_user_id: int | None,
    memo: str,
    created_by_id: int | None,
    idempotency: Idempotency | None,
    owner_id: int | None,
) -> _Draft:
    """Everything that needs no lock: the row, its hash and signature, the event serialised."""
    assert idempotency is None or owner_id is not None  # an idempotency key belongs to a user
    created_at = timezone.now()
    trace_id = current_trace_id()
    tx = Transaction(
        uid=uuid.uuid4(),
        type=type,
        status=Transaction.Status.COMPLETED,
        from_user_id=from_user_id,
        to_user_id=to_user_id,
        currency=currency,
        amount=amount,
        memo=memo,
        created_by_id=created_by_id,
        trace_id=trace_id,
        created_at=created_at,
    )
    tx.hash = transaction_hash(
        uid=str(tx.uid),
        type=str(type),
        from_user_id=from_user_id,
        to_user_id=to_user_id,
        currency=currency.code,
        amount=amount,
        memo=memo,
        created_at=created_at,
    )
    tx.signature = sign(tx.hash)
    event_id = uuid.uuid4()
    tx.pk = 0  # the insert assigns the id: the event is serialised around it
    event = tx_created_event(tx, currency_code=currency.code, event_id=event_id, trace_id=trace_id)
    tx.pk = None
    head, slot, tail = json.dumps(event).partition(_ID_SLOT)
    assert slot, "the event's transaction document starts with its id"
    return _Draft(
        tx=tx,
        user_ids=[user_id for user_id in (from_user_id, to_user_id) if user_id is not None],
        active_only=type == Transaction.Type.TRANSFER,
        idempotency=idempotency,
        owner_id=owner_id,
        event_id=event_id,
        event=event,
        payload_head=head + _ID_SLOT[: -len("0, ")],
        payload_tail=", " + tail,
        headers={"event_id": str(event_id), "trace_id": trace_id},
    )


def _claim_or_replay(draft: _Draft) -> Transaction | None:
    """Claim the idempotency key; for a key used before, the original transaction (or its refusal, raised)."""
    key = draft.idempotency
    if key is None:
        return None
    assert draft.owner_id is not None
    record = idempotency_claim(user_id=draft.owner_id, key=key.key, scope=key.scope, fingerprint=key.fingerprint)
    if record is None:
        return None
    if record.transaction_id is None:
        raise replayed_error(record)  # (nothing was written: the rollback loses nothing)
    original = Transaction.objects.select_related("currency").get(pk=record.transaction_id)
    original.replayed = True
    return original


def _lock(draft: _Draft) -> dict[int, LockedRow]:
    """``SELECT ... FOR UPDATE`` of the users' wallets in the currency, by user id."""
    if connection.vendor == "postgresql":
        rows = sql.lock_wallets(draft.user_ids, draft.tx.currency_id, active_only=draft.active_only)
    else:  # SQLite (which locks nothing: its transactions are serialised) needs the ORM's value converters
        wallets = Wallet.objects.filter(user_id__in=draft.user_ids, currency_id=draft.tx.currency_id)
        if draft.active_only:
            wallets = wallets.filter(user__is_active=True)
        values = wallets.order_by("pk").values_list(
            "id", "user_id", "balance", "audit_head", "entries", "user__token_version"
        )
        rows = [LockedRow(*row) for row in values]
    return {row.user_id: row for row in rows}


def _check_account(draft: _Draft, principal: Principal | None, locked: dict[int, LockedRow]) -> None:
    """The sender's account check, when authentication left it to the lock: active, token not revoked."""
    if principal is None or principal.verified:
        return
    assert principal.id == draft.tx.from_user_id
    source = locked.get(principal.id)
    if source is not None:  # the locked row came with its owner, who is active (transfers join on it)
        valid = source.token_version == principal.token_version
    else:  # no wallet row: tell "no such wallet" from "no such account" (rare, so a query of its own)
        valid = principal_account_valid(principal)
    if not valid:
        raise errors.Unauthorized("user not found or inactive, or token revoked")


def _check_and_build_legs(draft: _Draft, locked: dict[int, LockedRow]) -> list[sql.LegValues]:
    """Refuse what the locked rows do not allow; otherwise the legs, each linked to its wallet's chain."""
    tx, code = draft.tx, draft.tx.currency.code
    source = locked.get(tx.from_user_id) if tx.from_user_id is not None else None
    target = locked.get(tx.to_user_id) if tx.to_user_id is not None else None
    if tx.from_user_id is not None and source is None:
        raise errors.SenderWalletNotFound(f"sender has no {code} wallet")
    if tx.to_user_id is not None and target is None:
        if tx.from_user_id is not None:
            raise errors.RecipientNotFound(f"recipient has no {code} wallet")
        raise errors.WalletNotFound(f"user has no {code} wallet")
    if source is not None and source.balance < tx.amount:
        raise errors.InsufficientBalance(f"insufficient balance: {code} balance is lower than the amount")
    if target is not None and target.balance + tx.amount > MAX_AMOUNT:
        # Refused here rather than by a numeric overflow in the write (a 500 TRANSACTION_FAILED).
        raise errors.AmountExceedsLimit("amount would exceed the largest balance a wallet can hold")
    tx.from_wallet_id = source.wallet_id if source is not None else None
    tx.to_wallet_id = target.wallet_id if target is not None else None
    legs = []
    for wallet, delta in ((source, -tx.amount), (target, tx.amount)):
        if wallet is None:
            continue
        after = wallet.balance + delta
        link = entry_hash(
            prev_hash=wallet.audit_head,
            wallet_id=wallet.wallet_id,
            transaction_hash=tx.hash,
            delta=delta,
            balance_before=wallet.balance,
            balance_after=after,
            created_at=tx.created_at,
        )
        legs.append(
            sql.LegValues(wallet.wallet_id, wallet.user_id, delta, wallet.balance, after, wallet.audit_head, link,
                          wallet.entries + 1)
        )  # fmt: skip
    return legs


def _write(draft: _Draft, legs: list[sql.LegValues]) -> OutboxEvent:
    """All writes of one movement; sets ``tx.pk`` and returns the outbox row as written."""
    tx, event = draft.tx, draft.event
    if connection.vendor == "postgresql":
        tx.pk, event_pk = sql.write_movement(
            sql.TransactionValues(
                tx.uid, str(tx.type), str(tx.status), tx.from_user_id, tx.to_user_id, tx.from_wallet_id,
                tx.to_wallet_id, tx.currency_id, tx.amount, tx.memo, tx.hash, tx.signature, tx.created_by_id,
                tx.trace_id, tx.created_at,
            ),
            legs,
            sql.EventValues(
                draft.event_id, settings.KAFKA_TOPIC, tx.hash, draft.payload_head, draft.payload_tail,
                json.dumps(draft.headers),
            ),
        )  # fmt: skip
        event["transaction"]["id"] = tx.pk
        return OutboxEvent(
            pk=event_pk,
            event_id=draft.event_id,
            topic=settings.KAFKA_TOPIC,
            key=tx.hash,
            payload=event,
            headers=draft.headers,
        )
    # SQLite: the same rows through the ORM (its money columns convert only there).
    tx.save(force_insert=True)
    event["transaction"]["id"] = tx.pk
    for leg in legs:
        Wallet.objects.filter(pk=leg.wallet_id).update(
            balance=leg.balance_after, audit_head=leg.entry_hash, entries=leg.seq, updated_at=tx.created_at
        )
    BalanceHistory.objects.bulk_create(
        [BalanceHistory(transaction=tx, created_at=tx.created_at, **leg._asdict()) for leg in legs]
    )
    return outbox_insert(key=tx.hash, event_id=draft.event_id, payload=event, headers=draft.headers)


def _store_outcome(draft: _Draft, *, transaction_id: int | None = None, error: errors.ApiError | None = None) -> None:
    key = draft.idempotency
    if key is None:
        return
    assert draft.owner_id is not None
    idempotency_store(
        user_id=draft.owner_id,
        key=key.key,
        scope=key.scope,
        fingerprint=key.fingerprint,
        transaction_id=transaction_id,
        error=error,
    )


def transfer_create(
    *,
    sender_id: int,
    recipient_id: int,
    currency: Currency,
    amount: Decimal,
    memo: str = "",
    idempotency: Idempotency | None = None,
    principal: Principal | None = None,
) -> Transaction:
    """Move ``amount`` of ``currency`` from the sender's wallet to the recipient's.

    ``principal``: the sender as the transfer endpoint authenticates them, from the token alone (an
    unverified ``Principal``): the account check happens under the wallet lock, and an inactive,
    deleted or revoked sender gets 401 with nothing moved.
    """
    amount = check_amount(amount, decimals=currency.decimals, limit=currency.max_transfer_amount)
    if sender_id == recipient_id:
        raise errors.SameAccountTransfer("cannot transfer to the same account")
    try:
        return ledger_post(
            type=Transaction.Type.TRANSFER,
            currency=currency,
            amount=amount,
            from_user_id=sender_id,
            to_user_id=recipient_id,
            memo=memo,
            idempotency=idempotency,
            owner_id=sender_id,
            principal=principal,
        )
    except errors.ApiError as exc:
        # ledger_post checks the sender before it finds any other failure: the view need not again.
        exc.account_checked = True
        raise


def movement_create(
    *,
    type: Transaction.Type,
    user_id: int,
    currency: Currency,
    amount: Decimal,
    memo: str = "",
    created_by_id: int | None = None,
    idempotency: Idempotency | None = None,
    composed: bool = False,
) -> Transaction:
    """Money entering (a deposit) or leaving (a withdrawal) the system through one user's wallet.

    Staff moves (``created_by_id``, the key's owner) and the sign-up grant (``composed`` into the
    sign-up's transaction) take this one entry; the amount has no per-transfer limit.
    """
    amount = check_amount(amount, decimals=currency.decimals, limit=None)
    return ledger_post(
        type=type,
        currency=currency,
        amount=amount,
        from_user_id=user_id if type == Transaction.Type.WITHDRAWAL else None,
        to_user_id=user_id if type == Transaction.Type.DEPOSIT else None,
        memo=memo,
        created_by_id=created_by_id,
        idempotency=idempotency,
        owner_id=created_by_id,
        composed=composed,
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
    return movement_create(
        type=Transaction.Type.DEPOSIT, user_id=user_id, currency=currency, amount=amount, memo=memo,
        created_by_id=created_by_id, idempotency=idempotency,
    )  # fmt: skip


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
    return movement_create(
        type=Transaction.Type.WITHDRAWAL, user_id=user_id, currency=currency, amount=amount, memo=memo,
        created_by_id=created_by_id, idempotency=idempotency,
    )  # fmt: skip
