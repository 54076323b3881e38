from django.db import models
from django.db.models import Q

from currencies.money_field import MoneyField


class Currency(models.Model):
    code = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=64)
    symbol = models.CharField(max_length=8, blank=True)
    decimals = models.PositiveSmallIntegerField(default=8)
    is_active = models.BooleanField(default=True)
    # Default currencies get a wallet for every new user.
    is_default = models.BooleanField(default=False)
    max_transfer_amount = MoneyField(max_digits=20, decimal_places=8, null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "currencies"
        constraints = [
            models.CheckConstraint(condition=Q(decimals__lte=8), name="currency_decimals_lte_8"),
            models.CheckConstraint(
                condition=Q(max_transfer_amount__isnull=True) | Q(max_transfer_amount__gt=0),
                name="currency_max_transfer_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.code
