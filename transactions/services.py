"""Where money moves: transfers (one at a time or in batches), deposits, withdrawals, reversals and the sign-up grant.

Every movement takes one path, ``ledger_post``, in named steps: prepare (everything that needs no
lock: ids, hash, signature, the event's JSON), then in one database transaction claim or replay the
idempotency key, lock the wallets in ascending primary key, check (the sender's account, the
wallets, the balance, the limit), build the hash-chained legs, write every row, record the outcome
against the key and enqueue the event, published to Kafka after commit, never inside the lock.
The two backends share every step but the final statements (``transactions.sql`` on PostgreSQL,
the ORM on SQLite).
"""

from __future__ import annotations

import copy
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Generic, TypeVar

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit.chain import entry_hash
from audit.models import BalanceHistory
from audit.receipts import sign, transaction_hash
from currencies.models import Currency
from currencies.money import MAX_AMOUNT, check_amount, format_amount
from events.models import OutboxEvent
from events.outbox import outbox_insert, publish_on_commit
from transactions import sql
from transactions.events import tx_created_event
from transactions.idempotency import idempotency_claim, idempotency_store, replayed_error
from transactions.models import IdempotencyKey, Transaction, TransferBatch, TransferBatchItem
from transactions.selectors import BalancesAfter, sender_balances_after, transaction_get_by_hash
from transactions.sql import LockedRow
from wallet_project.core import errors
from wallet_project.core.principal import Principal, principal_account_valid
from wallet_project.core.telemetry import inject_headers
from wallet_project.core.tracing import current_trace_id
from wallets.models import Wallet

User = get_user_model()  # the ledger sits below accounts: the user table by its setting

logger = logging.getLogger(__name__)

T = TypeVar("T")
ZERO = Decimal(0)
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
    held_release: Decimal  # taken off the sender's ``held`` by the same leg (a hold's capture)
    hold_uid: uuid.UUID | None
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
    held_release: Decimal = ZERO,
    hold_uid: uuid.UUID | None = None,
    reverses_id: int | None = None,
) -> Transaction:
    """Move ``amount`` (already validated) between the users' wallets in ``currency``: the one posting path.

    ``held_release`` with ``hold_uid``: the movement captures that much of a hold on the sender's
    wallet, whose ``held`` falls by it in the same leg (the amount was reserved: what the sender may
    spend is ``available`` plus it). ``reverses_id``: the transaction a reversal takes back.

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
        held_release=held_release,
        hold_uid=hold_uid,
        reverses_id=reverses_id,
    )
    if held_release:
        # A capture moves money reserved while its payer was active: it is not refused because the
        # payer was deactivated since (hold_capture checks that the recipient is active).
        draft = replace(draft, active_only=False)
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
            try:
                draft = _not_before_the_chains(draft, locked)
                legs = _check_and_build_legs(draft, locked)
            except errors.InsufficientBalance:
                # Expired holds not yet swept still count in ``held``: release them and look again.
                # (Nothing else is written before the checks: a refusal needs no savepoint.)
                if not _released_expired_holds(draft, locked):
                    raise
                locked = _lock(draft)
                draft = _not_before_the_chains(draft, locked)  # (the releases are entries too)
                legs = _check_and_build_legs(draft, locked)
        except errors.ApiError as refusal:
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
    held_release: Decimal = ZERO,
    hold_uid: uuid.UUID | None = None,
    reverses_id: int | None = None,
) -> _Draft:
    """Everything that needs no lock: the row, its hash and signature, the event serialised."""
    assert idempotency is None or owner_id is not None  # an idempotency key belongs to a user
    assert (type == Transaction.Type.REVERSAL) == (reverses_id is not None), (
        "a reversal, and only one, names its original"
    )
    # A reversal's receipt covers what it takes back: the original's hash is part of what is hashed.
    reverses = Transaction.objects.only("hash").get(pk=reverses_id) if reverses_id is not None else None
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
        reverses=reverses,
        created_at=created_at,
    )
    event_id = uuid.uuid4()
    event, head, tail = _seal(tx, event_id=event_id, trace_id=trace_id)
    return _Draft(
        tx=tx,
        user_ids=[user_id for user_id in (from_user_id, to_user_id) if user_id is not None],
        active_only=type == Transaction.Type.TRANSFER,
        held_release=held_release,
        hold_uid=hold_uid,
        idempotency=idempotency,
        owner_id=owner_id,
        event_id=event_id,
        event=event,
        payload_head=head,
        payload_tail=tail,
        # With tracing on, the request's traceparent too: the hot path's single INSERT writes these headers
        # itself (sql.write_movement), so outbox_insert's own injection never sees them.
        headers=inject_headers({"event_id": str(event_id), "trace_id": trace_id}),
    )


def _seal(tx: Transaction, *, event_id: uuid.UUID, trace_id: str) -> tuple[dict, str, str]:
    """Hash and sign ``tx`` as stamped (``created_at``); its event, and the event's JSON around the id."""
    tx.hash = transaction_hash(
        uid=str(tx.uid),
        type=str(tx.type),
        from_user_id=tx.from_user_id,
        to_user_id=tx.to_user_id,
        currency=tx.currency.code,
        amount=tx.amount,
        memo=tx.memo,
        created_at=tx.created_at,
        reverses=tx.reverses.hash if tx.reverses is not None else None,
    )
    tx.signature = sign(tx.hash)
    tx.pk = 0  # the insert assigns the id: the event is serialised around it
    event = tx_created_event(tx, currency_code=tx.currency.code, event_id=event_id, trace_id=trace_id)
    tx.pk = None
    head, slot, tail = json.dumps(event).partition(_ID_SLOT)
    assert slot, "the event's transaction document starts with its id"
    return event, head + _ID_SLOT[: -len("0, ")], ", " + tail


def _not_before_the_chains(draft: _Draft, locked: dict[int, LockedRow]) -> _Draft:
    """The draft, stamped no earlier than the newest entry of any wallet it locked.

    It was stamped before the lock, so a movement that committed while it waited can be a little newer:
    a wallet's entries would go back in time along its chain. On that rare path it is stamped again
    (not before that entry; now, as a rule) and what covers the time is derived again: the hash, the
    signature and the event. A copy: a retried attempt starts again from the draft as prepared.
    """
    latest = max((row.updated_at for row in locked.values()), default=None)
    if latest is None or draft.tx.created_at >= latest:
        return draft
    tx = copy.copy(draft.tx)
    tx.created_at = max(latest, timezone.now())
    event, head, tail = _seal(tx, event_id=draft.event_id, trace_id=tx.trace_id)
    return replace(draft, tx=tx, event=event, payload_head=head, payload_tail=tail)


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


# The wallet fields of a LockedRow, in its order, for the ORM's version of the lock (SQLite).
_LOCKED_FIELDS = (
    "id",
    "user_id",
    "balance",
    "held",
    "audit_head",
    "entries",
    "postings",
    "total_in",
    "total_out",
    "user__token_version",
    "updated_at",
)


def _lock(draft: _Draft) -> dict[int, LockedRow]:
    """``SELECT ... FOR UPDATE`` of the users' wallets in the currency, by user id."""
    if connection.vendor == "postgresql":
        rows = sql.lock_wallets(draft.user_ids, draft.tx.currency_id, active_only=draft.active_only)
    else:  # SQLite (which locks nothing: its transactions are serialised) needs the ORM's value converters
        wallets = Wallet.objects.filter(user_id__in=draft.user_ids, currency_id=draft.tx.currency_id)
        if draft.active_only:
            wallets = wallets.filter(user__is_active=True)
        values = wallets.order_by("pk").values_list(*_LOCKED_FIELDS)
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
    if source is not None and source.available + draft.held_release < tx.amount:
        raise errors.InsufficientBalance(f"insufficient balance: {code} available balance is lower than the amount")
    if target is not None and target.balance + tx.amount > MAX_AMOUNT:
        # Refused here rather than by a numeric overflow in the write (a 500 TRANSACTION_FAILED).
        raise errors.AmountExceedsLimit("amount would exceed the largest balance a wallet can hold")
    tx.from_wallet_id = source.wallet_id if source is not None else None
    tx.to_wallet_id = target.wallet_id if target is not None else None
    legs = []
    for wallet, delta, held_delta, hold_uid in (
        (source, -tx.amount, -draft.held_release, draft.hold_uid),
        (target, tx.amount, ZERO, None),
    ):
        if wallet is None:
            continue
        after, held_after = wallet.balance + delta, wallet.held + held_delta
        link = entry_hash(
            prev_hash=wallet.audit_head,
            wallet_id=wallet.wallet_id,
            transaction_hash=tx.hash,
            delta=delta,
            balance_before=wallet.balance,
            balance_after=after,
            created_at=tx.created_at,
            held_before=wallet.held,
            held_delta=held_delta,
            held_after=held_after,
            hold_uid=str(hold_uid) if hold_uid else "",
        )
        # The running totals (not hashed: reconcile recomputes them from the deltas along the chain).
        total_in, total_out = wallet.total_in + max(delta, ZERO), wallet.total_out + max(-delta, ZERO)
        legs.append(
            sql.LegValues(wallet.wallet_id, wallet.user_id, delta, wallet.balance, after, held_delta, wallet.held,
                          held_after, hold_uid, wallet.audit_head, link, wallet.entries + 1, wallet.postings + 1,
                          total_in, total_out, wallet.postings + 1)
        )  # fmt: skip
    if source is not None:  # the reply's resulting balances, from the write itself (no read after it)
        tx.sender_balance_after = legs[0].balance_after
        tx.sender_available_after = legs[0].balance_after - legs[0].held_after
    return legs


def _after_leg(row: LockedRow, leg: sql.LegValues, *, created_at: datetime) -> LockedRow:
    """The locked wallet as ``leg`` (stamped ``created_at``) leaves it: what a batch's next item on that
    wallet checks, chains to and is stamped no earlier than."""
    return row._replace(
        balance=leg.balance_after, held=leg.held_after, audit_head=leg.entry_hash, entries=leg.seq,
        postings=leg.posting, total_in=leg.total_in_after, total_out=leg.total_out_after, updated_at=created_at,
    )  # fmt: skip


# The holds app's release of a wallet's expired holds (``register_expired_hold_releaser``): the ledger
# sits below it and calls it back, under the wallet lock, when a spend finds too little available.
_expired_hold_releaser: Callable[[int], bool] | None = None


def register_expired_hold_releaser(releaser: Callable[[int], bool]) -> None:
    """``releaser(wallet_id)`` releases the wallet's expired holds and says whether it released any."""
    global _expired_hold_releaser
    _expired_hold_releaser = releaser


def _released_expired_holds(draft: _Draft, locked: dict[int, LockedRow]) -> bool:
    source = locked.get(draft.tx.from_user_id) if draft.tx.from_user_id is not None else None
    if source is None or source.held <= draft.held_release or _expired_hold_releaser is None:
        return False
    return _expired_hold_releaser(source.wallet_id)


def _write(draft: _Draft, legs: list[sql.LegValues]) -> OutboxEvent:
    """All writes of one movement; sets ``tx.pk`` and returns the outbox row as written."""
    tx, event = draft.tx, draft.event
    if connection.vendor == "postgresql":
        tx.pk, event_pk = sql.write_movement(
            sql.TransactionValues(
                tx.uid, str(tx.type), str(tx.status), tx.from_user_id, tx.to_user_id, tx.from_wallet_id,
                tx.to_wallet_id, tx.currency_id, tx.amount, tx.memo, tx.hash, tx.signature, tx.created_by_id,
                tx.trace_id, tx.reverses_id, tx.created_at,
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
            balance=leg.balance_after, held=leg.held_after, audit_head=leg.entry_hash, entries=leg.seq,
            postings=leg.posting, total_in=leg.total_in_after, total_out=leg.total_out_after,
            updated_at=tx.created_at,
        )  # fmt: skip
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


MAX_MEMO_LENGTH = 256


def reversal_create(
    *,
    original: Transaction | None = None,
    original_hash: str | None = None,
    amount: Decimal | None = None,
    memo: str,
    created_by_id: int,
    idempotency: Idempotency | None = None,
) -> Transaction:
    """Take back ``amount`` (default: all that is still reversible) of a transfer, deposit or withdrawal.

    The reversal is a new transaction of type ``reversal`` naming the ``original`` (or the one with
    ``original_hash``: 404 TRANSACTION_NOT_FOUND otherwise), never an edit of it. It moves the money
    back: a transfer A→B reverses as B→A, a deposit to U as money leaving U, a withdrawal from U as
    money entering U, whether or not those users are still active. Refusals: a reversal cannot itself
    be reversed (400 INVALID_REQUEST), the reversals of one transaction never add up to more than it
    (409 REVERSAL_EXCEEDS_ORIGINAL), and the wallet it debits must have the amount available (400
    INSUFFICIENT_BALANCE); nothing moves then. ``memo`` (1-256 characters) says why. Staff with the
    movement permission only: the caller checks ``can_move_money``; ``created_by_id`` is recorded on
    the transaction and owns the idempotency key.
    """
    assert (original is None) != (original_hash is None), "give the original or its hash"
    if original is None:
        original = transaction_get_by_hash(tx_hash=original_hash or "")
    if original.type == Transaction.Type.REVERSAL:
        raise errors.InvalidRequest(
            "a reversal cannot be reversed: it is already the correction of another transaction; "
            "move the money again with a new transaction instead"
        )
    if not memo.strip() or len(memo) > MAX_MEMO_LENGTH:
        raise errors.InvalidRequest(
            f"memo must say why (1-{MAX_MEMO_LENGTH} characters)", errors={"memo": ["required, 1-256 characters"]}
        )
    currency = original.currency
    wanted = None if amount is None else check_amount(amount, decimals=currency.decimals, limit=None)
    reversed_tx = original  # (narrowed for the closures)

    def body() -> Outcome[Transaction]:
        remaining = _reversible_remainder(reversed_tx)
        take = remaining if wanted is None else wanted
        if remaining <= 0 or take > remaining:
            raise errors.ReversalExceedsOriginal(
                f"only {format_amount(remaining)} {currency.code} of the original's "
                f"{format_amount(reversed_tx.amount)} is left to reverse"
            )
        tx = ledger_post(
            type=Transaction.Type.REVERSAL,
            currency=currency,
            amount=take,
            from_user_id=reversed_tx.to_user_id,
            to_user_id=reversed_tx.from_user_id,
            memo=memo,
            created_by_id=created_by_id,
            reverses_id=reversed_tx.pk,
            composed=True,
        )
        return Outcome(tx, transaction_id=tx.pk)

    def replay(record: IdempotencyKey) -> Transaction:
        assert record.transaction_id is not None
        tx = Transaction.objects.select_related("currency", "reverses").get(pk=record.transaction_id)
        tx.replayed = True
        return tx

    return run_idempotent(idempotency=idempotency, owner_id=created_by_id, body=body, replay=replay)


def _reversible_remainder(original: Transaction) -> Decimal:
    """What of ``original`` its reversals have not taken back yet, read under its wallets' lock.

    Every reversal of ``original`` posts on the same wallets, the original's parties' in its currency,
    and locks them (ascending primary key, as ``ledger_post`` does) before it reads this sum. So of two
    concurrent reversals, the second waits for the first to commit or roll back, and its sum, a new
    statement and so (READ COMMITTED) a new snapshot, counts the first; the check and the write that
    follows it see one state. ``ledger_post`` then locks the same rows again, at no cost: this
    transaction holds them until it ends.
    """
    wallet_ids = [pk for pk in (original.from_wallet_id, original.to_wallet_id) if pk is not None]
    list(Wallet.objects.select_for_update().filter(pk__in=wallet_ids).order_by("pk").values_list("pk", flat=True))
    # Summed here, exactly (SQLite sums money as floats); a transaction has few reversals.
    taken = sum(Transaction.objects.filter(reverses_id=original.pk).values_list("amount", flat=True), ZERO)
    return original.amount - taken


# -- Changes of ``held`` and the services above the ledger ------------------------------------------


def held_change(*, wallet_id: int, delta: Decimal, hold_uid: uuid.UUID, created_at: datetime) -> BalanceHistory:
    """Reserve (``delta`` > 0) or release (< 0) part of a wallet's balance, as an entry of its chain.

    Must run inside the caller's transaction; locks the wallet (a caller that locks a hold does so
    first: holds, then wallets). A reservation needs that much ``available`` (after releasing the
    wallet's expired holds, if that is what stands in the way): otherwise INSUFFICIENT_BALANCE.
    The entry is stamped ``created_at``, or now if the wallet's newest entry is newer (``created_at``
    was taken before the lock): a wallet's entries never go back in time along its chain.
    """
    assert connection.in_atomic_block and delta != 0
    # The wallet row alone (``of``): FOR UPDATE on the joined currency row would block every movement in
    # the currency until this transaction ends (their commits take FOR KEY SHARE on it, for the FK).
    wallet = Wallet.objects.select_for_update(of=("self",)).select_related("currency").get(pk=wallet_id)
    if delta > 0 and wallet.available < delta:
        if not (wallet.held > 0 and _expired_hold_releaser is not None and _expired_hold_releaser(wallet_id)):
            raise errors.InsufficientBalance(
                f"insufficient balance: {wallet.currency.code} available balance is lower than the amount"
            )
        wallet.refresh_from_db()
        if wallet.available < delta:
            raise errors.InsufficientBalance(
                f"insufficient balance: {wallet.currency.code} available balance is lower than the amount"
            )
    if delta < 0 and wallet.held + delta < 0:
        raise AssertionError(f"wallet {wallet_id} holds {wallet.held}, less than the release of {-delta}")
    if created_at < wallet.updated_at:  # stamped before the lock: never before the chain's newest entry
        created_at = max(wallet.updated_at, timezone.now())
    held_after = wallet.held + delta
    entry = BalanceHistory(
        wallet_id=wallet.pk,
        user_id=wallet.user_id,
        transaction=None,
        delta=ZERO,
        balance_before=wallet.balance,
        balance_after=wallet.balance,
        held_delta=delta,
        held_before=wallet.held,
        held_after=held_after,
        hold_uid=hold_uid,
        prev_hash=wallet.audit_head,
        seq=wallet.entries + 1,
        posting=None,
        # No money moves: the running totals stay the wallet's.
        total_in_after=wallet.total_in,
        total_out_after=wallet.total_out,
        postings_after=wallet.postings,
        created_at=created_at,
    )
    entry.entry_hash = entry_hash(
        prev_hash=wallet.audit_head,
        wallet_id=wallet.pk,
        transaction_hash="",
        delta=ZERO,
        balance_before=wallet.balance,
        balance_after=wallet.balance,
        created_at=created_at,
        held_before=wallet.held,
        held_delta=delta,
        held_after=held_after,
        hold_uid=str(hold_uid),
    )
    entry.save(force_insert=True)
    Wallet.objects.filter(pk=wallet.pk).update(
        held=held_after, audit_head=entry.entry_hash, entries=entry.seq, updated_at=created_at
    )
    return entry


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What a service body made: its result, and the ids an idempotency key records for a replay."""

    value: T
    transaction_id: int | None = None
    resource_id: int | None = None


def run_idempotent(
    *,
    idempotency: Idempotency | None,
    owner_id: int,
    body: Callable[[], Outcome[T]],
    replay: Callable[[IdempotencyKey], T],
) -> T:
    """Run ``body`` in a durable transaction (retrying deadlocks) behind an optional idempotency key.

    A used key answers with ``replay(record)`` (or its stored refusal, raised). Behind a key, a refusal
    the body raises is rolled back to a savepoint, recorded against the key, committed, then raised,
    so that a replay answers the same (without a key it rolls the whole transaction back). The holds
    app's services take this path; transfers take ``ledger_post``'s own, which needs no savepoint.
    """

    def attempt() -> T | _Refused:
        if idempotency is not None:
            record = idempotency_claim(
                user_id=owner_id, key=idempotency.key, scope=idempotency.scope, fingerprint=idempotency.fingerprint
            )
            if record is not None:
                if record.transaction_id is None and record.resource_id is None:
                    raise replayed_error(record)
                return replay(record)
        if idempotency is None:  # a refusal rolls the whole transaction back: no savepoint needed
            outcome = body()
            return outcome.value
        try:
            with transaction.atomic():
                outcome = body()
        except errors.ApiError as refusal:
            idempotency_store(
                user_id=owner_id,
                key=idempotency.key,
                scope=idempotency.scope,
                fingerprint=idempotency.fingerprint,
                error=refusal,
            )
            return _Refused(refusal)
        idempotency_store(
            user_id=owner_id,
            key=idempotency.key,
            scope=idempotency.scope,
            fingerprint=idempotency.fingerprint,
            transaction_id=outcome.transaction_id,
            resource_id=outcome.resource_id,
        )
        return outcome.value

    result = run_in_transaction(attempt)
    if isinstance(result, _Refused):
        raise result.error
    return result


# -- Batches: several transfers from one sender, all or nothing ---------------------------------------

BATCH_MAX_ITEMS = 100
BATCH_SCOPE = "transfer_batch"


@dataclass(frozen=True)
class BatchTransfer:
    """One item of a batch as the caller asked for it: its recipient and currency resolved, nothing checked.

    ``recipient_field`` and ``currency_field`` are the request's fields that named them, which a
    refusal of the item names (``transfers[3].to_username``).
    """

    recipient_id: int
    currency: Currency
    amount: Decimal
    memo: str = ""
    recipient_field: str = "to_user_id"
    currency_field: str = "currency_id"


@dataclass(frozen=True)
class BatchBalance:
    """The sender's wallet in one currency as the batch left it."""

    currency: Currency
    after: BalancesAfter


@dataclass(frozen=True)
class TransferBatchResult:
    batch_id: int
    transactions: list[Transaction]  # in item order
    balances: list[BatchBalance]  # per currency spent from, in the order the items first name them
    replayed: bool = False


def batch_item_error(error: errors.ApiError, index: int, field: str) -> errors.ApiError:
    """``error`` as the refusal of item ``index`` of a batch: its code and status, the item's field named."""
    key = f"transfers[{index}].{field}"
    return type(error)(f"{key}: {error.message}", errors={key: [error.message]}, headers=error.headers)


def transfer_batch_create(
    *,
    sender_id: int,
    transfers: Sequence[BatchTransfer],
    idempotency: Idempotency | None = None,
) -> TransferBatchResult:
    """Post ``transfers`` (1 to ``BATCH_MAX_ITEMS``) from the sender, all or nothing, in one database transaction.

    Each item is a transfer as ``transfer_create`` makes it (its own transaction row, two hash-chained
    legs, its ``tx.created`` event) and takes its checks: the amount against its currency (places,
    ``max_transfer_amount`` per item; with at most 100 items a batch moves at most 100 times the limit
    of a currency), not to the sender, to an active recipient with a wallet in the currency, and
    against what the sender's wallet has available after the items before it. The wallets of every
    item, in every currency, are locked by one statement in ascending primary key (as a single
    transfer locks its two), and each item is checked and chained against the state the items
    before it leave, so one wallet may appear in several items. The first item refused refuses the
    batch: nothing moves, and the error (its code, its status) names the item's field,
    ``errors: {"transfers[3].amount": [...]}``.

    ``idempotency``: one key for the whole batch; it records the batch (``resource_id``, with its first
    transaction as ``transaction_id``) and a replay answers with the same transactions and balances, or
    the same refusal when one was found under the lock.
    """
    if not 1 <= len(transfers) <= BATCH_MAX_ITEMS:
        message = f"a batch has 1 to {BATCH_MAX_ITEMS} transfers"
        raise errors.InvalidRequest(message, errors={"transfers": [message]})
    drafts = []
    for index, item in enumerate(transfers):
        currency = item.currency
        try:
            amount = check_amount(item.amount, decimals=currency.decimals, limit=currency.max_transfer_amount)
        except errors.ApiError as exc:
            raise batch_item_error(exc, index, "amount") from exc
        if item.recipient_id == sender_id:
            same = errors.SameAccountTransfer("cannot transfer to the same account")
            raise batch_item_error(same, index, item.recipient_field)
        drafts.append(
            _prepare(
                type=Transaction.Type.TRANSFER,
                currency=currency,
                amount=amount,
                from_user_id=sender_id,
                to_user_id=item.recipient_id,
                memo=item.memo,
                created_by_id=None,
                idempotency=None,  # the batch's key, not the item's
                owner_id=sender_id,
            )
        )
    outcome = run_in_transaction(lambda: _post_batch(sender_id, transfers, drafts, idempotency))
    if isinstance(outcome, _Refused):
        raise outcome.error
    return outcome


def _post_batch(
    sender_id: int, transfers: Sequence[BatchTransfer], drafts: list[_Draft], idempotency: Idempotency | None
) -> TransferBatchResult | _Refused:
    with transaction.atomic(savepoint=False):
        if idempotency is not None:
            record = idempotency_claim(
                user_id=sender_id, key=idempotency.key, scope=idempotency.scope, fingerprint=idempotency.fingerprint
            )
            if record is not None:
                if record.resource_id is None:
                    raise replayed_error(record)
                return _replayed_batch(record.resource_id)
        try:
            legs = _check_batch(sender_id, transfers, drafts)
        except errors.ApiError as refusal:
            # Nothing is written before the checks (but expired holds released, as a transfer does).
            if idempotency is not None:
                idempotency_store(
                    user_id=sender_id,
                    key=idempotency.key,
                    scope=idempotency.scope,
                    fingerprint=idempotency.fingerprint,
                    error=refusal,
                )
            return _Refused(refusal)
        events = [_write(draft, item_legs) for draft, item_legs in zip(drafts, legs, strict=True)]
        batch = TransferBatch.objects.create(sender_id=sender_id, created_at=drafts[0].tx.created_at)
        TransferBatchItem.objects.bulk_create(
            [TransferBatchItem(batch=batch, position=i, transaction=draft.tx) for i, draft in enumerate(drafts)]
        )
        if idempotency is not None:
            idempotency_store(
                user_id=sender_id,
                key=idempotency.key,
                scope=idempotency.scope,
                fingerprint=idempotency.fingerprint,
                transaction_id=drafts[0].tx.pk,
                resource_id=batch.pk,
            )
        for event in events:
            publish_on_commit(event)
    transactions = [draft.tx for draft in drafts]
    for tx in transactions:
        tx.replayed = False
    return TransferBatchResult(batch.pk, transactions, _batch_balances(transactions))


def _check_batch(sender_id: int, transfers: Sequence[BatchTransfer], drafts: list[_Draft]) -> list[list[sql.LegValues]]:
    """Lock every wallet of the batch, then check and build each item's legs against the state the
    items before it leave; the first refusal, named by its item, is raised."""
    pairs = list(dict.fromkeys((user_id, draft.tx.currency_id) for draft in drafts for user_id in draft.user_ids))
    tried: set[int] = set()
    while True:
        locked = _lock_batch(pairs)
        running = dict(locked)
        legs: list[list[sql.LegValues]] = []
        for index, draft in enumerate(drafts):
            currency_id = draft.tx.currency_id
            rows = {u: running[(u, currency_id)] for u in draft.user_ids if (u, currency_id) in running}
            draft = drafts[index] = _not_before_the_chains(draft, rows)
            try:
                item_legs = _check_and_build_legs(draft, rows)
            except errors.InsufficientBalance as exc:
                # Expired holds not yet swept still count in ``held``: release them and look again (from
                # the start, the wallets read anew), once per wallet.
                source = locked[(sender_id, currency_id)]
                if source.wallet_id not in tried and source.held > 0 and _expired_hold_releaser is not None:
                    tried.add(source.wallet_id)
                    if _expired_hold_releaser(source.wallet_id):
                        break  # (to the lock again)
                raise batch_item_error(exc, index, "amount") from exc
            except errors.ApiError as exc:
                item = transfers[index]
                field = {
                    errors.RecipientNotFound: item.recipient_field,
                    errors.SenderWalletNotFound: item.currency_field,
                }.get(type(exc), "amount")
                raise batch_item_error(exc, index, field) from exc
            for leg in item_legs:
                running[(leg.user_id, currency_id)] = _after_leg(
                    running[(leg.user_id, currency_id)], leg, created_at=draft.tx.created_at
                )
            legs.append(item_legs)
        else:
            return legs


def _lock_batch(pairs: list[tuple[int, int]]) -> dict[tuple[int, int], LockedRow]:
    """``SELECT ... FOR UPDATE`` of the active users' wallets of the (user, currency) pairs, by pair."""
    if connection.vendor == "postgresql":
        return sql.lock_wallet_pairs(pairs)
    # SQLite (serialised transactions, no row locks) through the ORM, as ``_lock``.
    match = Q()
    for user_id, currency_id in pairs:
        match |= Q(user_id=user_id, currency_id=currency_id)
    values = (
        Wallet.objects.filter(match, user__is_active=True).order_by("pk").values_list(*_LOCKED_FIELDS, "currency_id")
    )
    return {(row[1], row[-1]): LockedRow(*row[:-1]) for row in values}


def _replayed_batch(batch_id: int) -> TransferBatchResult:
    items = TransferBatchItem.objects.filter(batch_id=batch_id).select_related("transaction__currency")
    transactions = [item.transaction for item in items.order_by("position")]
    for tx in transactions:
        tx.replayed = True
    return TransferBatchResult(batch_id, transactions, _batch_balances(transactions), replayed=True)


def _batch_balances(transactions: list[Transaction]) -> list[BatchBalance]:
    """Per currency, the sender's wallet as the batch's last transfer in it left it.

    From the write itself for a batch just posted; for a replay, one read of a stored leg per currency.
    """
    # Keys in the order the currencies first appear, each with its last transfer.
    last = {tx.currency_id: tx for tx in transactions}
    balances = []
    for tx in last.values():
        after = sender_balances_after(tx)
        assert after is not None, "a transfer has a sender"
        balances.append(BatchBalance(tx.currency, after))
    return balances
