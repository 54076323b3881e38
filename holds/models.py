"""Money in between: holds (funds reserved for a payee or an order) and withdrawal requests.

A hold reserves part of its payer's balance: the wallet's ``held`` grows by the hold's amount and
``available = balance - held`` shrinks, with a hash-chained entry. Captures move money out of the
hold (each a completed transaction, recorded here as a ``HoldCapture``); a void or an expiry
releases what remains. A withdrawal request is a hold without payee that staff approve (captured as
a ``withdrawal``) or reject, or that its owner cancels.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from currencies.money_field import MoneyField


class Hold(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        CAPTURED = "captured"
        VOIDED = "voided"
        EXPIRED = "expired"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The stored status: an ``active`` hold past ``expires_at`` reads as expired (``effective_status``)
    # before ``expire_holds`` records the release.
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    payer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    payee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    wallet = models.ForeignKey("wallets.Wallet", on_delete=models.PROTECT, related_name="+")  # the payer's
    currency = models.ForeignKey("currencies.Currency", on_delete=models.PROTECT, related_name="+")
    amount = MoneyField(max_digits=20, decimal_places=8)
    captured = MoneyField(max_digits=20, decimal_places=8, default=0)
    memo = models.CharField(max_length=256, blank=True, default="")
    # Null for the hold behind a withdrawal request: it waits for staff, however long that takes.
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    trace_id = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    # When it stopped being active (captured in full, voided, expired): nothing is captured after it.
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="hold_amount_positive"),
            models.CheckConstraint(condition=Q(captured__gte=0), name="hold_captured_non_negative"),
            models.CheckConstraint(condition=Q(captured__lte=F("amount")), name="hold_captured_within_amount"),
            models.CheckConstraint(
                condition=(
                    Q(status="active", closed_at__isnull=True) | (~Q(status="active") & Q(closed_at__isnull=False))
                ),
                name="hold_closed_when_not_active",
            ),
            models.CheckConstraint(
                condition=~Q(status="captured") | Q(captured=F("amount")), name="hold_captured_in_full"
            ),
            models.CheckConstraint(condition=Q(payee__isnull=True) | ~Q(payee=F("payer")), name="hold_payee_not_payer"),
        ]
        indexes = [
            models.Index(fields=["payer", "-id"], name="hold_payer_recent"),
            models.Index(fields=["payee", "-id"], name="hold_payee_recent"),
            # What expire_holds looks for: active holds by expiry.
            models.Index(fields=["expires_at"], name="hold_active_expiry", condition=Q(status="active")),
        ]

    def __str__(self) -> str:
        return f"hold {self.pk} ({self.status})"

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.captured

    def is_expired(self, now: datetime) -> bool:
        return self.status == self.Status.ACTIVE and self.expires_at is not None and self.expires_at <= now

    def effective_status(self, now: datetime) -> str:
        return self.Status.EXPIRED if self.is_expired(now) else self.status


class HoldCapture(models.Model):
    """One capture of a hold: the completed transaction that moved the money out of it."""

    hold = models.ForeignKey(Hold, on_delete=models.PROTECT, related_name="captures")
    transaction = models.OneToOneField("transactions.Transaction", on_delete=models.PROTECT, related_name="+")
    amount = MoneyField(max_digits=20, decimal_places=8)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="hold_capture_amount_positive")]

    def __str__(self) -> str:
        return f"capture of hold {self.hold_id}: {self.amount}"


class WithdrawalRequest(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        COMPLETED = "completed"
        REJECTED = "rejected"
        CANCELLED = "cancelled"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    currency = models.ForeignKey("currencies.Currency", on_delete=models.PROTECT, related_name="+")
    amount = MoneyField(max_digits=20, decimal_places=8)
    address = models.CharField(max_length=128)
    network = models.CharField(max_length=32, blank=True, default="")
    memo = models.CharField(max_length=256, blank=True, default="")
    hold = models.OneToOneField(Hold, on_delete=models.PROTECT, related_name="withdrawal_request")
    # The withdrawal that completed it, and the on-chain id staff recorded with the approval.
    transaction = models.OneToOneField(
        "transactions.Transaction", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    network_tx_id = models.CharField(max_length=128, blank=True, default="")
    reason = models.CharField(max_length=512, blank=True, default="")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        permissions = [("approve_withdrawalrequest", "Can approve or reject withdrawal requests")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="withdrawal_request_amount_positive"),
            models.CheckConstraint(
                condition=Q(status="completed", transaction__isnull=False)
                | (~Q(status="completed") & Q(transaction__isnull=True)),
                name="withdrawal_request_completed_has_transaction",
            ),
            models.CheckConstraint(
                condition=Q(status="pending", decided_at__isnull=True)
                | (~Q(status="pending") & Q(decided_at__isnull=False)),
                name="withdrawal_request_decided_when_not_pending",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-id"], name="withdrawal_request_user_recent"),
            models.Index(fields=["created_at"], name="withdrawal_request_pending", condition=Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"withdrawal request {self.pk} ({self.status})"
