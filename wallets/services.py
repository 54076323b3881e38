from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError, transaction

from currencies.models import Currency
from wallet_project.core import errors
from wallets.models import Wallet


def wallet_open(*, user_id: int, currency: Currency) -> Wallet:
    """Open a wallet in another active currency; one per (user, currency), enforced by a constraint."""
    try:
        with transaction.atomic(durable=True):
            # An explicit Decimal: the field default (int 0) is not reloaded and would reach format_amount.
            wallet = Wallet.objects.create(user_id=user_id, currency=currency, balance=Decimal(0))
    except IntegrityError as exc:
        raise errors.WalletAlreadyExists(f"a {currency.code} wallet already exists") from exc
    wallet.currency = currency
    return wallet
