from django.conf import settings
from django.db import models
from django.db.models import F, Q

from currencies.money_field import MoneyField


class BalanceHistory(models.Model):
    """One row per wallet per money movement; rows of a wallet form a hash chain.

    ``entry_hash = sha256(prev_hash | canonical fields)``: editing or deleting any row breaks the
    chain at that point, which ``manage.py reconcile`` reports.
    """

    wallet = models.ForeignKey("wallets.Wallet", on_delete=models.PROTECT, related_name="history")
    # Denormalised owner: a user's history is one index range scan.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The movement this leg belongs to; null for an entry that changes ``held`` alone (a hold placed,
    # voided or expired), which names its hold by ``hold_uid`` instead.
    transaction = models.ForeignKey(
        "transactions.Transaction", null=True, blank=True, on_delete=models.PROTECT, related_name="history"
    )
    delta = MoneyField(max_digits=21, decimal_places=8, default=0)
    balance_before = MoneyField(max_digits=20, decimal_places=8)
    balance_after = MoneyField(max_digits=20, decimal_places=8)
    # The wallet's ``held`` before and after, and the hold that changed it (a capture changes both
    # the balance and ``held`` in one entry). Hashed into the chain like the balance.
    held_delta = MoneyField(max_digits=21, decimal_places=8, default=0)
    held_before = MoneyField(max_digits=20, decimal_places=8, default=0)
    held_after = MoneyField(max_digits=20, decimal_places=8, default=0)
    hold_uid = models.UUIDField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)
    # Position in the wallet's chain, 1-based and gapless (``reconcile`` checks it): page N of a
    # one-wallet history is a range of positions rather than a skip over every newer row.
    seq = models.PositiveBigIntegerField()
    # Position among the wallet's movement entries (those with a transaction), 1-based and gapless;
    # null for a change of ``held`` alone. The transaction history pages by it.
    posting = models.PositiveBigIntegerField(null=True, blank=True)
    # The chain's running totals after this entry: the sum of its positive deltas, of its negative ones
    # as a magnitude, and the number of its movement entries (the ``posting`` of the newest one; a
    # change of ``held`` alone keeps the three). A statement's totals over any stretch of the chain are
    # the differences between the entries at its two ends, whatever its length. Derived from the hashed
    # deltas, so not hashed themselves: reconcile recomputes them along the chain. Null only for a row
    # written outside the ledger (which reconcile reports; a statement then sums the stretch instead).
    # 38 digits on PostgreSQL: a lifetime's volume, never an overflow (13 integer digits on SQLite).
    total_in_after = MoneyField(max_digits=38, decimal_places=8, null=True, blank=True)
    total_out_after = MoneyField(max_digits=38, decimal_places=8, null=True, blank=True)
    postings_after = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "balance history"
        constraints = [
            models.CheckConstraint(
                condition=Q(balance_after=F("balance_before") + F("delta")), name="history_after_is_before_plus_delta"
            ),
            models.CheckConstraint(condition=Q(balance_after__gte=0), name="history_after_non_negative"),
            models.CheckConstraint(
                condition=Q(held_after=F("held_before") + F("held_delta")),
                name="history_held_after_is_before_plus_delta",
            ),
            models.CheckConstraint(condition=Q(held_after__gte=0), name="history_held_non_negative"),
            models.CheckConstraint(condition=Q(held_after__lte=F("balance_after")), name="history_held_within_balance"),
            models.CheckConstraint(condition=~Q(delta=0) | ~Q(held_delta=0), name="history_changes_something"),
            # A leg of a movement has a position in the history; a change of held alone names its hold.
            models.CheckConstraint(
                condition=Q(transaction__isnull=False, posting__isnull=False)
                | Q(transaction__isnull=True, posting__isnull=True, hold_uid__isnull=False, delta=0),
                name="history_movement_or_hold",
            ),
            # A chain cannot fork: each entry has at most one successor.
            models.UniqueConstraint(fields=["wallet", "prev_hash"], name="history_chain_no_fork"),
            models.UniqueConstraint(fields=["wallet", "transaction"], name="history_one_leg_per_wallet"),
            models.UniqueConstraint(fields=["wallet", "seq"], name="history_wallet_position"),
            models.UniqueConstraint(fields=["wallet", "posting"], name="history_wallet_posting"),
            models.CheckConstraint(condition=Q(seq__gte=1), name="history_seq_positive"),
            # What came in less what went out is the balance (a chain starts at zero), and a movement's
            # position is the count of movements so far.
            models.CheckConstraint(
                condition=Q(total_in_after=F("balance_after") + F("total_out_after")), name="history_totals_add_up"
            ),
            models.CheckConstraint(condition=Q(total_out_after__gte=0), name="history_total_out_non_negative"),
            models.CheckConstraint(
                condition=Q(posting__isnull=True) | Q(posting=F("postings_after")), name="history_posting_is_postings"
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-id"], name="history_user_recent"),
            # A wallet as it stood at an instant (its newest entry stamped at or before it; ties: the
            # later position): one backward probe of this index, as for a statement's two ends.
            models.Index(fields=["wallet", "created_at", "seq"], name="history_wallet_time"),
        ]

    def __str__(self) -> str:
        return f"{self.wallet_id}:{self.entry_hash[:12]}"


class Checkpoint(models.Model):
    """A signed statement of the whole ledger at one moment, to anchor the chains outside the database.

    ``payload`` is the canonical JSON that ``signature`` (Ed25519, receipt key ``key_id``) covers; the
    other columns repeat it for the console and are never trusted by ``reconcile``, which reads the
    payload. A database superuser can delete rows here but cannot forge one: the copy an operator
    keeps outside the database (``checkpoint --out``) and the published event are the anchors.
    """

    created_at = models.DateTimeField()
    last_transaction_id = models.BigIntegerField()
    transaction_count = models.BigIntegerField()
    wallet_count = models.BigIntegerField()
    # sha256 over "wallet_id:length:entry_hash\n" of every wallet with history, in wallet id order.
    heads_digest = models.CharField(max_length=64)
    supply = models.JSONField()
    payload = models.TextField()
    signature = models.CharField(max_length=128)
    key_id = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["-last_transaction_id"], name="checkpoint_newest")]

    def __str__(self) -> str:
        return f"checkpoint {self.pk} @ tx {self.last_transaction_id}"


class ReconcileRun(models.Model):
    """One run of ``reconcile``: what it checked, when, and what it found, for the auditor's history.

    The command writes one for every run it makes (``trigger=command``); the console's button queues
    one (``state=queued``, ``trigger=console``) for the worker (``reconcile --queued``) to claim. Rows
    change only through ``audit.services`` and are read-only in the admin.
    """

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"

    class Outcome(models.TextChoices):
        PASS = "pass"  # noqa: S105 - an outcome, not a password
        FAIL = "fail"
        ERROR = "error"  # the run could not finish (a checkpoint file unreadable, a database error)

    class Trigger(models.TextChoices):
        COMMAND = "command"
        CONSOLE = "console"

    state = models.CharField(max_length=16, choices=State.choices)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True, default="")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # What was checked: {"verify_receipts": bool, "checkpoint_file": str | null}.
    scope = models.JSONField(default=dict)
    queued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    mismatch_count = models.BigIntegerField(default=0)
    # Per check: name, rows checked, mismatches; the failing checks' examples (reconcile keeps at most
    # MAX_EXAMPLES per check, so the column stays small whatever the ledger's size).
    checks = models.JSONField(default=list)
    mismatches = models.JSONField(default=dict)
    supply = models.JSONField(default=dict)
    checkpoints = models.JSONField(default=dict)
    error = models.TextField(blank=True, default="")

    class Meta:
        permissions = [("queue_reconcilerun", "Can queue a reconcile run from the console")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(state="done") & ~Q(outcome="")) | (~Q(state="done") & Q(outcome="")),
                name="reconcile_run_outcome_when_done",
            ),
        ]
        indexes = [
            models.Index(fields=["queued_at"], name="reconcile_run_queued", condition=Q(state="queued")),
            models.Index(fields=["-finished_at"], name="reconcile_run_finished", condition=Q(state="done")),
        ]

    def __str__(self) -> str:
        return f"reconcile run {self.pk} ({self.outcome or self.state})"
