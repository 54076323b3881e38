"""Where money moves: transfers, deposits and withdrawals.

Every movement follows the same path (``ledger_post``): validation that needs no lock happens
first; then, in one database transaction, the wallets involved are locked in ascending primary-key
order, the source balance is checked, balances are updated, and the transaction row, one
balance-history row per wallet (hash-chained) and the outbox event are inserted. Publishing to
Kafka happens after commit, never inside the locked section.
"""

from __future__ import annotations

import functools
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
from django.db import OperationalError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from audit.chain import entry_hash
from audit.models import BalanceHistory
from currencies.models import Currency
from transactions.events import tx_created_event
from transactions.models import Transaction
from wallet_project.core import errors
from wallet_project.core.db import int8, prepared_cursor
from wallet_project.core.idempotency import idempotency_claim, idempotency_store, replayed_error
from wallet_project.core.models import OutboxEvent
from wallet_project.core.money import MAX_AMOUNT, check_amount
from wallet_project.core.outbox import outbox_insert, publish_on_commit
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


@dataclass(frozen=True)
class _Leg:
    wallet_id: int
    user_id: int
    delta: Decimal
    before: Decimal
    after: Decimal
    prev_hash: str
    entry_hash: str
    seq: int


@dataclass(frozen=True)
class _OutboxDraft:
    event_id: uuid.UUID
    payload: dict
    payload_json: str
    headers: dict


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
    sender_token_version: int | None = None,
) -> Transaction | errors.ApiError:
    """Move ``amount`` between the users' wallets in ``currency``; compose inside an outer atomic block.

    ``amount`` must already be validated. Returns the new (or, for a replayed key, the original)
    transaction, or the contract failure to raise once the outer transaction has committed
    (a failure is recorded against the idempotency key so that a replay answers the same).

    Everything that needs no lock (ids, hash, signature, event payload) is computed before the
    wallets are locked; inside the lock there is one ``SELECT ... FOR UPDATE`` and, on PostgreSQL,
    one statement for all writes.
    """
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
    tx.pk = 0  # placeholder: the insert assigns the id, and the event's copy is patched with it
    event = tx_created_event(tx, currency_code=currency.code, event_id=event_id, trace_id=trace_id)
    tx.pk = None
    # Serialised here, not under the lock (the insert patches the transaction id in with jsonb_set).
    outbox = _OutboxDraft(
        event_id=event_id,
        payload=event,
        payload_json=json.dumps(event),
        headers={"event_id": str(event_id), "trace_id": trace_id},
    )
    user_ids = [user_id for user_id in (from_user_id, to_user_id) if user_id is not None]

    with transaction.atomic(savepoint=False):
        if idempotency is not None:
            assert owner_id is not None  # an idempotency key belongs to a user: callers pass both
            record = idempotency_claim(
                user_id=owner_id, key=idempotency.key, scope=idempotency.scope, fingerprint=idempotency.fingerprint
            )
            if record is not None:
                if record.transaction_id is None:
                    return replayed_error(record)
                original = Transaction.objects.select_related("currency").get(pk=record.transaction_id)
                original.replayed = True
                return original

        # The lock: both wallets, ascending primary key, so A->B and B->A can never deadlock.
        locked = {
            user_id: (wallet_id, balance, head, token_version, entries)
            for wallet_id, user_id, balance, head, token_version, entries in _lock_wallets(
                user_ids, currency.pk, active_only=type == Transaction.Type.TRANSFER
            )
        }
        source = locked.get(from_user_id) if from_user_id is not None else None
        target = locked.get(to_user_id) if to_user_id is not None else None
        failure: errors.ApiError | None = None
        if sender_token_version is not None and not _sender_token_valid(from_user_id, source, sender_token_version):
            return errors.Unauthorized("user not found or inactive, or token revoked")
        if from_user_id is not None and source is None:
            failure = errors.SenderWalletNotFound(f"sender has no {currency.code} wallet")
        elif to_user_id is not None and target is None:
            failure = (errors.RecipientNotFound if from_user_id is not None else errors.WalletNotFound)(
                f"{'recipient' if from_user_id is not None else 'user'} has no {currency.code} wallet"
            )
        elif source is not None and source[1] < amount:
            failure = errors.InsufficientBalance(
                f"insufficient balance: {currency.code} balance is lower than the amount"
            )
        elif target is not None and target[1] + amount > MAX_AMOUNT:
            # Refused here rather than by a numeric overflow in the write (a 500 TRANSACTION_FAILED).
            failure = errors.AmountExceedsLimit("amount would exceed the largest balance a wallet can hold")
        if failure is not None:
            if idempotency is not None:
                assert owner_id is not None
                idempotency_store(
                    user_id=owner_id,
                    key=idempotency.key,
                    scope=idempotency.scope,
                    fingerprint=idempotency.fingerprint,
                    error=failure,
                )
            return failure

        legs = []
        for wallet, user_id, delta in ((source, from_user_id, -amount), (target, to_user_id, amount)):
            if wallet is None or user_id is None:  # (a wallet is only ever found by its user id)
                continue
            wallet_id, before, prev_hash, _, entries = wallet
            after = before + delta
            link = entry_hash(
                prev_hash=prev_hash,
                wallet_id=wallet_id,
                transaction_hash=tx.hash,
                delta=delta,
                balance_before=before,
                balance_after=after,
                created_at=created_at,
            )
            legs.append(_Leg(wallet_id, user_id, delta, before, after, prev_hash, link, entries + 1))
        tx.from_wallet_id = source[0] if source else None
        tx.to_wallet_id = target[0] if target else None
        outbox_event = _write(tx, legs, outbox)
        if idempotency is not None:
            assert owner_id is not None
            idempotency_store(
                user_id=owner_id,
                key=idempotency.key,
                scope=idempotency.scope,
                fingerprint=idempotency.fingerprint,
                transaction_id=tx.pk,
            )
        publish_on_commit(outbox_event)
    tx.replayed = False
    return tx


def _wallet_lock_queryset(
    user_ids: list[int], currency_id: int, *, active_only: bool
) -> QuerySet[Wallet, tuple[int, int, Decimal, str, int, int]]:
    wallets = Wallet.objects.select_for_update(of=("self",)).filter(user_id__in=user_ids, currency_id=currency_id)
    if active_only:
        # A deactivated user neither sends nor receives: as unknown by id as by name.
        wallets = wallets.filter(user__is_active=True)
    return wallets.order_by("pk").values_list(
        "id", "user_id", "balance", "audit_head", "user__token_version", "entries"
    )


@functools.lru_cache(maxsize=16)
def _wallet_lock_sql(users: int, active_only: bool) -> tuple[str, tuple[int, ...]]:
    """The ORM's SQL for the lock, compiled once per shape, with the position of each parameter.

    Compiling a queryset costs more CPU than the rest of the locked section; the statement only
    changes with the number of users and ``active_only``, so it is built once from stand-in values.
    """
    stand_ins = [-2 - i for i in range(users)]
    sql, params = _wallet_lock_queryset(stand_ins, -1, active_only=active_only).query.sql_with_params()
    assert set(params) == {-1, *stand_ins}, params  # every parameter is one we can fill in again
    return sql, tuple(params)


def _lock_wallets(user_ids: list[int], currency_id: int, *, active_only: bool) -> list[tuple]:
    """``SELECT ... FOR UPDATE`` of the users' wallets in ``currency_id``, in ascending primary key."""
    if connection.vendor != "postgresql":  # SQLite needs the ORM's value converters (and locks nothing)
        return list(_wallet_lock_queryset(user_ids, currency_id, active_only=active_only))
    sql, slots = _wallet_lock_sql(len(user_ids), active_only)
    values = {-1: int8(currency_id), **{-2 - i: int8(user_id) for i, user_id in enumerate(user_ids)}}
    with prepared_cursor() as cursor:
        cursor.execute(sql, [values[slot] for slot in slots])
        return cursor.fetchall()


def _sender_token_valid(sender_id: int | None, source: tuple | None, token_version: int) -> bool:
    if source is not None:  # the locked row came with its owner, who is active (transfers join on it)
        return source[3] == token_version
    # No wallet row: tell "no such wallet" from "no such account" (rare, so a query of its own).
    if sender_id is None:
        return False
    return User.objects.filter(pk=sender_id, is_active=True, token_version=token_version).exists()


_PG_WRITE = """
WITH tx AS (
    INSERT INTO transactions_transaction (uid, type, status, from_user_id, to_user_id, from_wallet_id, to_wallet_id,
        currency_id, amount, memo, hash, signature, created_by_id, trace_id, created_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    RETURNING id
), legs (wallet_id, user_id, delta, balance_before, balance_after, prev_hash, entry_hash, seq) AS (
    VALUES {legs}
), moved AS (
    UPDATE wallets_wallet AS w
    SET balance = legs.balance_after, audit_head = legs.entry_hash, entries = legs.seq, updated_at = %s
    FROM legs WHERE w.id = legs.wallet_id
), history AS (
    INSERT INTO audit_balancehistory (wallet_id, user_id, transaction_id, delta, balance_before, balance_after,
        prev_hash, entry_hash, seq, created_at)
    SELECT legs.wallet_id, legs.user_id, tx.id, legs.delta, legs.balance_before, legs.balance_after,
        legs.prev_hash, legs.entry_hash, legs.seq, %s
    FROM tx, legs
), event AS (
    INSERT INTO core_outboxevent (event_id, topic, key, payload, headers, state, attempts, last_error, created_at)
    SELECT %s, %s, %s, jsonb_set(%s::jsonb, '{{transaction,id}}', to_jsonb(tx.id)), %s::jsonb, 'pending', 0, '', %s
    FROM tx
    RETURNING id
)
SELECT tx.id, event.id FROM tx, event
"""
_PG_LEG = "(%s::bigint, %s::bigint, %s::numeric, %s::numeric, %s::numeric, %s::varchar, %s::varchar, %s::bigint)"


def _write(tx: Transaction, legs: list[_Leg], outbox: _OutboxDraft) -> OutboxEvent:
    """All writes of one movement; returns the outbox row as written. Sets ``tx.pk``."""
    event, event_id, headers = outbox.payload, outbox.event_id, outbox.headers
    if connection.vendor == "postgresql":
        params: list = [
            tx.uid, str(tx.type), str(tx.status), int8(tx.from_user_id), int8(tx.to_user_id), int8(tx.from_wallet_id),
            int8(tx.to_wallet_id), int8(tx.currency_id), tx.amount, tx.memo, tx.hash, tx.signature,
            int8(tx.created_by_id), tx.trace_id, tx.created_at,
        ]  # fmt: skip
        for leg in legs:
            params += [
                int8(leg.wallet_id), int8(leg.user_id), leg.delta, leg.before, leg.after, leg.prev_hash, leg.entry_hash,
                int8(leg.seq),
            ]  # fmt: skip
        params += [tx.created_at, tx.created_at]
        params += [event_id, settings.KAFKA_TOPIC, tx.hash, outbox.payload_json, json.dumps(headers), tx.created_at]
        with prepared_cursor() as cursor:
            cursor.execute(_PG_WRITE.format(legs=", ".join([_PG_LEG] * len(legs))), params)
            tx.pk, event_pk = cursor.fetchone()
        event["transaction"]["id"] = tx.pk
        return OutboxEvent(
            pk=event_pk, event_id=event_id, topic=settings.KAFKA_TOPIC, key=tx.hash, payload=event, headers=headers
        )
    # Portable path (SQLite for local runs): the same rows through the ORM.
    tx.save(force_insert=True)
    event["transaction"]["id"] = tx.pk
    for leg in legs:
        Wallet.objects.filter(pk=leg.wallet_id).update(
            balance=leg.after, audit_head=leg.entry_hash, entries=leg.seq, updated_at=tx.created_at
        )
    BalanceHistory.objects.bulk_create(
        [
            BalanceHistory(
                wallet_id=leg.wallet_id, user_id=leg.user_id, transaction=tx, delta=leg.delta,
                balance_before=leg.before, balance_after=leg.after, prev_hash=leg.prev_hash,
                entry_hash=leg.entry_hash, seq=leg.seq, created_at=tx.created_at,
            )
            for leg in legs
        ]
    )  # fmt: skip
    return outbox_insert(key=tx.hash, event_id=event_id, payload=event, headers=headers)


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
    sender_token_version: int | None = None,
) -> Transaction:
    """Move ``amount`` of ``currency`` from the sender's wallet to the recipient's.

    ``sender_token_version``: when the caller's token has not been checked against the account yet
    (``DeferredJWTAuthentication``), the check happens under the wallet lock: an inactive, deleted or
    revoked sender gets 401 and nothing moves.
    """
    amount = check_amount(amount, decimals=currency.decimals, limit=currency.max_transfer_amount)
    if sender_id == recipient_id:
        raise errors.SameAccountTransfer("cannot transfer to the same account")
    try:
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
                sender_token_version=sender_token_version,
            )
        )
    except errors.ApiError as exc:
        # ledger_post checks the sender before it finds any other failure: the view need not again.
        exc.account_checked = True
        raise


def _staff_movement(
    type: Transaction.Type,
    *,
    user_id: int,
    currency: Currency,
    amount: Decimal,
    memo: str,
    created_by_id: int | None,
    idempotency: Idempotency | None,
) -> Transaction:
    amount = check_amount(amount, decimals=currency.decimals, limit=None)
    side = "to_user_id" if type == Transaction.Type.DEPOSIT else "from_user_id"
    return _commit(
        lambda: ledger_post(
            type=type,
            currency=currency,
            amount=amount,
            memo=memo,
            created_by_id=created_by_id,
            idempotency=idempotency,
            owner_id=created_by_id,
            **{side: user_id},
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
    return _staff_movement(
        Transaction.Type.DEPOSIT,
        user_id=user_id,
        currency=currency,
        amount=amount,
        memo=memo,
        created_by_id=created_by_id,
        idempotency=idempotency,
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
    return _staff_movement(
        Transaction.Type.WITHDRAWAL,
        user_id=user_id,
        currency=currency,
        amount=amount,
        memo=memo,
        created_by_id=created_by_id,
        idempotency=idempotency,
    )
