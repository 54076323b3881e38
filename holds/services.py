"""Where money waits: holds (reserve, capture, void, expire) and withdrawal requests.

Every state change runs in one database transaction that locks the hold first, then the wallets
(``transactions.services`` locks wallets in ascending primary key), checks the hold's state under
that lock and writes the change of ``held`` as an entry of the payer wallet's hash chain, with its
event in the outbox. A capture is a completed transaction of the one posting path (``ledger_post``),
whose sender leg also releases what it captures. Expiry is enforced by the clock, not by a sweeper:
past ``expires_at`` a hold cannot be captured, reads show it ``expired``, and a spend that needs the
money releases it; ``expire_holds`` records the release of the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, AnonymousUser
from django.utils import timezone

from currencies.models import Currency
from currencies.money import check_amount
from holds.events import hold_event, withdrawal_event
from holds.models import Hold, HoldCapture, WithdrawalRequest
from transactions.models import IdempotencyKey, Transaction
from transactions.services import Idempotency, Outcome, held_change, ledger_post, run_idempotent, run_in_transaction
from wallet_project.core import errors
from wallet_project.core.permissions import can_move_money
from wallet_project.core.tracing import current_trace_id
from wallets.models import Wallet

logger = logging.getLogger(__name__)

APPROVE_PERMISSION = "holds.approve_withdrawalrequest"
DEFAULT_EXPIRES_IN = 86_400
MAX_EXPIRES_IN = 2_592_000  # 30 days

Actor = AbstractUser | AnonymousUser


def can_decide_withdrawals(user: Actor | None) -> bool:
    """Active staff holding ``APPROVE_PERMISSION`` (superusers hold every permission)."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm(APPROVE_PERMISSION)
    )


# -- Holds --------------------------------------------------------------------------------------------


def hold_create(
    *,
    payer_id: int,
    currency: Currency,
    amount: Decimal,
    payee_id: int | None = None,
    expires_in: int = DEFAULT_EXPIRES_IN,
    memo: str = "",
    idempotency: Idempotency | None = None,
) -> Hold:
    """Reserve ``amount`` of the payer's ``currency`` wallet for ``expires_in`` seconds (for a payee, if given)."""
    amount = check_amount(amount, decimals=currency.decimals, limit=currency.max_transfer_amount)
    if payee_id == payer_id:
        raise errors.SameAccountTransfer("cannot hold money for the same account")
    if not 1 <= expires_in <= MAX_EXPIRES_IN:
        raise errors.InvalidRequest(
            f"expires_in must be 1-{MAX_EXPIRES_IN} seconds", errors={"expires_in": ["out of range"]}
        )

    def body() -> Outcome[Hold]:
        hold = _hold_open(
            payer_id=payer_id, payee_id=payee_id, currency=currency, amount=amount, memo=memo,
            expires_at_in=timedelta(seconds=expires_in),
        )  # fmt: skip
        hold_event("hold.created", hold)
        return Outcome(hold, resource_id=hold.pk)

    return run_idempotent(idempotency=idempotency, owner_id=payer_id, body=body, replay=_replayed_hold)


def _hold_open(
    *,
    payer_id: int,
    payee_id: int | None,
    currency: Currency,
    amount: Decimal,
    memo: str,
    expires_at_in: timedelta | None,
    created_by_id: int | None = None,
) -> Hold:
    wallet = Wallet.objects.filter(user_id=payer_id, currency=currency, user__is_active=True).only("id").first()
    if wallet is None:
        raise errors.SenderWalletNotFound(f"payer has no {currency.code} wallet")
    if (
        payee_id is not None
        and not Wallet.objects.filter(user_id=payee_id, currency=currency, user__is_active=True).exists()
    ):
        raise errors.RecipientNotFound(f"payee has no {currency.code} wallet")
    now = timezone.now()
    hold = Hold.objects.create(
        payer_id=payer_id,
        payee_id=payee_id,
        wallet_id=wallet.pk,
        currency=currency,
        amount=amount,
        memo=memo,
        expires_at=None if expires_at_in is None else now + expires_at_in,
        created_by_id=created_by_id,
        trace_id=current_trace_id(),
        created_at=now,
        updated_at=now,
    )
    held_change(wallet_id=wallet.pk, delta=amount, hold_uid=hold.uid, created_at=now)
    return hold


def _replayed_hold(record: IdempotencyKey) -> Hold:
    assert record.resource_id is not None
    hold = Hold.objects.select_related("currency").get(pk=record.resource_id)
    hold.replayed = True  # type: ignore[attr-defined]
    return hold


def _locked_hold(hold_id: int) -> Hold:
    """The hold, locked; a withdrawal request's hold is reached only through the request."""
    hold = (
        Hold.objects.select_for_update(of=("self",))
        .select_related("currency")
        .filter(pk=hold_id, withdrawal_request__isnull=True)
        .first()
    )
    if hold is None:
        raise errors.HoldNotFound()
    return hold


def _ensure_active(hold: Hold, now: datetime) -> None:
    if hold.effective_status(now) != Hold.Status.ACTIVE:
        raise errors.HoldNotActive(f"hold is {hold.effective_status(now)}")


def hold_visible_to(hold: Hold, user: Actor) -> bool:
    return bool(user.is_authenticated and (user.is_staff or user.pk in (hold.payer_id, hold.payee_id)))


def hold_capture(
    *,
    hold_id: int,
    actor: Actor,
    amount: Decimal | None = None,
    to_user_id: int | None = None,
    idempotency: Idempotency | None = None,
) -> tuple[Hold, Transaction]:
    """Move ``amount`` (default: all that remains) out of the hold: a transfer to its payee, or, for a
    hold without payee captured by staff, a transfer to ``to_user_id`` or a withdrawal without it.

    The payee or staff with the movement permission; anyone else who can see the hold: 403.
    """
    assert actor.pk is not None

    def body() -> Outcome[tuple[Hold, Transaction]]:
        hold = _locked_hold(hold_id)
        staff = can_move_money(actor)
        if not hold_visible_to(hold, actor):
            raise errors.HoldNotFound()
        if actor.pk != hold.payee_id and not staff:
            raise errors.Forbidden("forbidden: only the payee or staff may capture a hold")
        if hold.payee_id is not None and to_user_id not in (None, hold.payee_id):
            raise errors.InvalidRequest(
                "this hold is for its payee: to_user_id must be left out", errors={"to_user_id": ["not allowed"]}
            )
        target = hold.payee_id if hold.payee_id is not None else to_user_id
        if target == hold.payer_id:
            raise errors.SameAccountTransfer("cannot capture a hold into the payer's own account")
        # The ledger takes a capture from the payer whether or not they are still active (the money was
        # reserved); the recipient must be (the payee capturing is, being authenticated).
        if (
            target is not None
            and target != actor.pk
            and not get_user_model().objects.filter(pk=target, is_active=True).exists()
        ):
            raise errors.RecipientNotFound("recipient not found or inactive")
        now = timezone.now()
        _ensure_active(hold, now)
        take = hold.remaining if amount is None else check_amount(amount, decimals=hold.currency.decimals, limit=None)
        if take > hold.remaining:
            raise errors.AmountExceedsHold(f"amount exceeds what remains of the hold ({hold.remaining})")
        tx = ledger_post(
            type=Transaction.Type.TRANSFER if target is not None else Transaction.Type.WITHDRAWAL,
            currency=hold.currency,
            amount=take,
            from_user_id=hold.payer_id,
            to_user_id=target,
            memo=hold.memo,
            created_by_id=actor.pk if staff else None,
            composed=True,
            held_release=take,
            hold_uid=hold.uid,
        )
        now = tx.created_at  # the capture's moment: a hold captured in full closes no earlier than its transaction
        HoldCapture.objects.create(hold=hold, transaction=tx, amount=take, created_by_id=actor.pk, created_at=now)
        hold.captured += take
        hold.updated_at = now
        if hold.remaining == 0:
            hold.status, hold.closed_at = Hold.Status.CAPTURED, now
        hold.save(update_fields=["captured", "status", "closed_at", "updated_at"])
        hold_event("hold.captured", hold, transaction=tx)
        return Outcome((hold, tx), transaction_id=tx.pk, resource_id=hold.pk)

    def replay(record: IdempotencyKey) -> tuple[Hold, Transaction]:
        hold = _replayed_hold(record)
        assert record.transaction_id is not None
        tx = Transaction.objects.select_related("currency").get(pk=record.transaction_id)
        tx.replayed = True
        return hold, tx

    return run_idempotent(idempotency=idempotency, owner_id=actor.pk, body=body, replay=replay)


def hold_void(*, hold_id: int, actor: Actor, idempotency: Idempotency | None = None) -> Hold:
    """Release what remains of the hold: its payer, its payee or staff."""
    assert actor.pk is not None

    def body() -> Outcome[Hold]:
        hold = _locked_hold(hold_id)
        if not hold_visible_to(hold, actor):
            raise errors.HoldNotFound()
        if actor.pk not in (hold.payer_id, hold.payee_id) and not can_move_money(actor):
            raise errors.Forbidden("forbidden: only the payer, the payee or staff may void a hold")
        now = timezone.now()
        _ensure_active(hold, now)
        _close(hold, Hold.Status.VOIDED, now)
        hold_event("hold.voided", hold)
        return Outcome(hold, resource_id=hold.pk)

    return run_idempotent(idempotency=idempotency, owner_id=actor.pk, body=body, replay=_replayed_hold)


def _close(hold: Hold, status: Hold.Status, now: datetime) -> None:
    """Release what remains (under the hold's lock) and end the hold with ``status``."""
    if hold.remaining > 0:
        held_change(wallet_id=hold.wallet_id, delta=-hold.remaining, hold_uid=hold.uid, created_at=now)
    hold.status, hold.closed_at, hold.updated_at = status, now, now
    hold.save(update_fields=["status", "closed_at", "updated_at"])


def _expire(hold: Hold, now: datetime) -> None:
    _close(hold, Hold.Status.EXPIRED, now)
    hold_event("hold.expired", hold)


def holds_release_expired(wallet_id: int) -> bool:
    """Release the wallet's expired holds inside the caller's transaction (which holds the wallet's lock).

    Holds another transaction has locked (being captured or voided) are skipped, never waited for:
    that transaction locked the hold before the wallet, and waiting here would deadlock with it.
    """
    now = timezone.now()
    due = list(
        Hold.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("currency")
        .filter(wallet_id=wallet_id, status=Hold.Status.ACTIVE, expires_at__lte=now)
        .order_by("id")
    )
    for hold in due:
        _expire(hold, now)
    return bool(due)


def holds_expire_due(*, limit: int = 100) -> int:
    """Record the release of up to ``limit`` holds past their expiry, each in a transaction of its own;
    returns how many it released. Several sweepers may run at once: each skips the holds another has
    locked, and a hold already released is not released again."""
    now = timezone.now()
    ids = list(
        Hold.objects.filter(status=Hold.Status.ACTIVE, expires_at__lte=now)
        .order_by("expires_at", "id")
        .values_list("id", flat=True)[:limit]
    )
    released = 0
    for hold_id in ids:

        def expire_one(hold_id: int = hold_id) -> bool:
            hold = (
                Hold.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("currency")
                .filter(pk=hold_id, status=Hold.Status.ACTIVE, expires_at__lte=timezone.now())
                .first()
            )
            if hold is None:
                return False
            _expire(hold, timezone.now())
            return True

        released += run_in_transaction(expire_one)
    return released


# -- Withdrawal requests ------------------------------------------------------------------------------


def withdrawal_request_create(
    *,
    user_id: int,
    currency: Currency,
    amount: Decimal,
    address: str,
    network: str = "",
    memo: str = "",
    idempotency: Idempotency | None = None,
) -> WithdrawalRequest:
    """Ask to send ``amount`` to an external ``address``: the amount is held at once, pending staff.

    A user's request is bounded by the currency's ``max_transfer_amount``, as a transfer and a hold
    are (staff withdrawals, ``/withdrawals``, are not)."""
    amount = check_amount(amount, decimals=currency.decimals, limit=currency.max_transfer_amount)

    def body() -> Outcome[WithdrawalRequest]:
        hold = _hold_open(
            payer_id=user_id, payee_id=None, currency=currency, amount=amount, memo=memo, expires_at_in=None
        )
        request = WithdrawalRequest.objects.create(
            user_id=user_id,
            currency=currency,
            amount=amount,
            address=address,
            network=network,
            memo=memo,
            hold=hold,
            created_at=hold.created_at,
            updated_at=hold.created_at,
        )
        withdrawal_event("withdrawal.requested", request)
        return Outcome(request, resource_id=request.pk)

    return run_idempotent(idempotency=idempotency, owner_id=user_id, body=body, replay=_replayed_request)


def _replayed_request(record: IdempotencyKey) -> WithdrawalRequest:
    assert record.resource_id is not None
    request = WithdrawalRequest.objects.select_related("currency", "transaction").get(pk=record.resource_id)
    request.replayed = True  # type: ignore[attr-defined]
    return request


def _locked_request(request_id: int, actor: Actor) -> tuple[WithdrawalRequest, Hold]:
    """The pending request and its hold, locked in that order (then the wallets, by the ledger)."""
    request = (
        WithdrawalRequest.objects.select_for_update(of=("self",))
        .select_related("currency")
        .filter(pk=request_id)
        .first()
    )
    if request is None or not (actor.is_staff or actor.pk == request.user_id):
        raise errors.WithdrawalRequestNotFound()
    hold = Hold.objects.select_for_update(of=("self",)).select_related("currency").get(pk=request.hold_id)
    if request.status != WithdrawalRequest.Status.PENDING:
        raise errors.WithdrawalRequestNotPending(f"withdrawal request is {request.status}")
    return request, hold


def withdrawal_request_approve(
    *, request_id: int, actor: Actor, network_tx_id: str = "", idempotency: Idempotency | None = None
) -> WithdrawalRequest:
    """Staff with the approval permission: the hold is captured in full as a ``withdrawal``. Once only."""
    assert actor.pk is not None
    if not can_decide_withdrawals(actor):
        raise errors.Forbidden(f"forbidden: needs staff status and the {APPROVE_PERMISSION} permission")

    def body() -> Outcome[WithdrawalRequest]:
        request, hold = _locked_request(request_id, actor)
        _not_their_own(request, actor)
        tx = ledger_post(
            type=Transaction.Type.WITHDRAWAL,
            currency=hold.currency,
            amount=hold.remaining,
            from_user_id=hold.payer_id,
            memo=request.memo,
            created_by_id=actor.pk,
            composed=True,
            held_release=hold.remaining,
            hold_uid=hold.uid,
        )
        now = tx.created_at  # the hold closes, and the request is decided, when the withdrawal happens
        HoldCapture.objects.create(hold=hold, transaction=tx, amount=tx.amount, created_by_id=actor.pk, created_at=now)
        hold.captured = hold.amount
        hold.status, hold.closed_at, hold.updated_at = Hold.Status.CAPTURED, now, now
        hold.save(update_fields=["captured", "status", "closed_at", "updated_at"])
        request.status, request.transaction = WithdrawalRequest.Status.COMPLETED, tx
        request.network_tx_id = network_tx_id
        _decided(request, actor, now, "status", "transaction", "network_tx_id")
        withdrawal_event("withdrawal.approved", request)
        return Outcome(request, transaction_id=tx.pk, resource_id=request.pk)

    return run_idempotent(idempotency=idempotency, owner_id=actor.pk, body=body, replay=_replayed_request)


def withdrawal_request_reject(
    *, request_id: int, actor: Actor, reason: str, idempotency: Idempotency | None = None
) -> WithdrawalRequest:
    """Staff with the approval permission: the hold is released, with the reason recorded."""
    assert actor.pk is not None
    if not can_decide_withdrawals(actor):
        raise errors.Forbidden(f"forbidden: needs staff status and the {APPROVE_PERMISSION} permission")
    return _release_request(request_id, actor, WithdrawalRequest.Status.REJECTED, "withdrawal.rejected",
                            reason=reason, idempotency=idempotency,
                            check=lambda request: _not_their_own(request, actor))  # fmt: skip


def _not_their_own(request: WithdrawalRequest, actor: Actor) -> None:
    """Four eyes: a staff member does not decide their own withdrawal request."""
    if request.user_id == actor.pk:
        raise errors.Forbidden("forbidden: a withdrawal request is decided by someone other than its owner")


def withdrawal_request_cancel(
    *, request_id: int, actor: Actor, idempotency: Idempotency | None = None
) -> WithdrawalRequest:
    """The owner, while the request is pending: the hold is released."""
    assert actor.pk is not None

    def owner_only(request: WithdrawalRequest) -> None:
        if request.user_id != actor.pk:
            raise errors.Forbidden("forbidden: only the owner may cancel a withdrawal request")

    return _release_request(request_id, actor, WithdrawalRequest.Status.CANCELLED, "withdrawal.cancelled",
                            idempotency=idempotency, check=owner_only)  # fmt: skip


def _release_request(
    request_id: int,
    actor: Actor,
    status: WithdrawalRequest.Status,
    event_type: str,
    *,
    reason: str = "",
    idempotency: Idempotency | None = None,
    check: Callable[[WithdrawalRequest], None] | None = None,
) -> WithdrawalRequest:
    assert actor.pk is not None

    def body() -> Outcome[WithdrawalRequest]:
        request, hold = _locked_request(request_id, actor)
        if check is not None:
            check(request)
        now = timezone.now()
        _close(hold, Hold.Status.VOIDED, now)
        request.status, request.reason = status, reason
        _decided(request, actor, now, "status", "reason")
        withdrawal_event(event_type, request)
        return Outcome(request, resource_id=request.pk)

    return run_idempotent(idempotency=idempotency, owner_id=actor.pk, body=body, replay=_replayed_request)


def _decided(request: WithdrawalRequest, actor: Actor, now: datetime, *fields: str) -> None:
    request.decided_by_id, request.decided_at, request.updated_at = actor.pk, now, now
    request.save(update_fields=[*fields, "decided_by", "decided_at", "updated_at"])
