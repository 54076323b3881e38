import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from currencies.money_field import MoneyField


class Transaction(models.Model):
    class Type(models.TextChoices):
        TRANSFER = "transfer"
        DEPOSIT = "deposit"
        WITHDRAWAL = "withdrawal"
        REVERSAL = "reversal"

    class Status(models.TextChoices):
        COMPLETED = "completed"

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=16, choices=Type.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETED)
    from_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    from_wallet = models.ForeignKey("wallets.Wallet", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    to_wallet = models.ForeignKey("wallets.Wallet", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    currency = models.ForeignKey("currencies.Currency", on_delete=models.PROTECT, related_name="+")
    amount = MoneyField(max_digits=20, decimal_places=8)
    memo = models.CharField(max_length=256, blank=True, default="")
    hash = models.CharField(max_length=64, unique=True)
    signature = models.CharField(max_length=128)
    # Staff member who made a deposit or withdrawal; null for transfers and the sign-up grant.
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    trace_id = models.CharField(max_length=128, blank=True, default="")
    # For a reversal: the transaction it takes back (in part or in full). Never an edit of the original.
    reverses = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversals", db_index=True
    )
    created_at = models.DateTimeField()
    # Not a column: set by the ledger services on the transaction they return, True when an
    # idempotency key replayed it (read with getattr: a transaction loaded otherwise has none).
    replayed: bool
    # Not columns either: the sender's wallet as this movement left it (the sender leg's balance_after,
    # and that less its held_after), set by the ledger on a transaction it posts; replies read them
    # through transactions.selectors.sender_balances_after, which reads the leg for any other.
    sender_balance_after: Decimal
    sender_available_after: Decimal

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="transaction_amount_positive"),
            models.CheckConstraint(
                condition=(
                    Q(type="transfer", from_wallet__isnull=False, to_wallet__isnull=False)
                    | Q(type="deposit", from_wallet__isnull=True, to_wallet__isnull=False)
                    | Q(type="withdrawal", from_wallet__isnull=False, to_wallet__isnull=True)
                    | (Q(type="reversal") & (Q(from_wallet__isnull=False) | Q(to_wallet__isnull=False)))
                ),
                name="transaction_legs_match_type",
            ),
            models.CheckConstraint(
                condition=Q(type="reversal", reverses__isnull=False) | (~Q(type="reversal") & Q(reverses__isnull=True)),
                name="transaction_reversal_names_original",
            ),
            models.CheckConstraint(
                condition=Q(from_wallet__isnull=True)
                | Q(to_wallet__isnull=True)
                | ~Q(from_wallet=models.F("to_wallet")),
                name="transaction_not_same_wallet",
            ),
        ]
        indexes = [
            models.Index(fields=["from_user", "-created_at", "-id"], name="tx_from_user_recent"),
            # The console's movements of today and of the last 24 h: an index-only range scan (the
            # grouped and summed columns are carried), docs/benchmarks.md "#18 dashboard".
            models.Index(fields=["created_at"], include=["currency", "type", "amount"], name="tx_created_at"),
            models.Index(fields=["to_user", "-created_at", "-id"], name="tx_to_user_recent"),
            models.Index(fields=["-created_at", "-id"], name="tx_recent"),
        ]

    def __str__(self) -> str:
        return self.hash


class IdempotencyKey(models.Model):
    """The outcome of a money-moving POST, stored in the same database transaction as its effect.

    A replay with the same key and body gets the stored outcome back; a crash mid-request rolls
    the row back together with the money movement, so no key is ever left stuck.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    scope = models.CharField(max_length=64)
    fingerprint = models.CharField(max_length=64)
    transaction = models.ForeignKey(Transaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # The other thing the request created, by id, its kind named by ``scope`` (a hold, a withdrawal
    # request: models of the apps above this one).
    resource_id = models.BigIntegerField(null=True, blank=True)
    # For failures that are part of the contract (e.g. INSUFFICIENT_BALANCE), the code, status and message.
    # The status is stored because a replay must answer as the original did, even when it reaches a
    # version that no longer has the code.
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_message = models.CharField(max_length=512, blank=True, default="")
    # The refusal's field errors (``{"transfers[3].amount": [...]}``), replayed with it; null when none.
    error_fields = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "core_idempotencykey"  # created by the core app before transactions owned it
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


class TransferBatch(models.Model):
    """Transfers one sender posted together, all or nothing (``POST /transfers/batch``).

    Its items say which transactions, in the request's order: their ids need not be consecutive
    (other movements take ids in between), so an idempotent replay (the key's ``resource_id`` is the
    batch) reads them here.
    """

    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "transfer batches"

    def __str__(self) -> str:
        return f"batch {self.pk}"


class TransferBatchItem(models.Model):
    batch = models.ForeignKey(TransferBatch, on_delete=models.PROTECT, related_name="items")
    position = models.PositiveSmallIntegerField(help_text="The item's index in the request, from 0")
    transaction = models.OneToOneField(Transaction, on_delete=models.PROTECT, related_name="batch_item")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["batch", "position"], name="transfer_batch_item_position"),
        ]

    def __str__(self) -> str:
        return f"batch {self.batch_id}[{self.position}]"
