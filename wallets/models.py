from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from audit.chain import GENESIS_HASH
from currencies.money_field import MoneyField


class Wallet(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="wallets")
    currency = models.ForeignKey("currencies.Currency", on_delete=models.PROTECT, related_name="wallets")
    balance = MoneyField(max_digits=20, decimal_places=8, default=0)
    # Sum of the remaining amounts of the wallet's active holds (the holds app), changed only under
    # this row's lock together with a chain entry: what a spend may take is ``balance - held``.
    held = MoneyField(max_digits=20, decimal_places=8, default=0)
    # entry_hash of the wallet's newest balance-history row: the head of its hash chain, read under
    # the same row lock as the balance so the next entry can be chained without another query.
    audit_head = models.CharField(max_length=64, default=GENESIS_HASH, editable=False)
    # Length of that chain (the newest entry's ``seq``), kept under the same lock: a user's history
    # total without counting rows, and page N of it as a range of positions.
    entries = models.PositiveBigIntegerField(default=0, editable=False)
    # How many of those entries are money movements (legs of a transaction), the rest being changes of
    # ``held`` alone: the length of the user's transaction history in this wallet.
    postings = models.PositiveBigIntegerField(default=0, editable=False)
    # The newest entry's running totals (what ever came in, what ever went out), kept under the same
    # lock like the head itself: the next entry's totals without reading the chain.
    total_in = MoneyField(max_digits=38, decimal_places=8, default=0, db_default=0, editable=False)
    total_out = MoneyField(max_digits=38, decimal_places=8, default=0, db_default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(balance__gte=0), name="wallet_balance_non_negative"),
            models.CheckConstraint(condition=Q(held__gte=0), name="wallet_held_non_negative"),
            models.CheckConstraint(condition=Q(held__lte=models.F("balance")), name="wallet_held_within_balance"),
            models.UniqueConstraint(fields=["user", "currency"], name="wallet_one_per_user_currency"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.currency_id}"

    @property
    def available(self) -> Decimal:
        return self.balance - self.held
