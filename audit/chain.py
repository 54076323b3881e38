"""The per-wallet hash chain over balance history."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal

from currencies.money import format_amount

# The prev_hash of a wallet's first entry, and the audit_head of a wallet with none.
GENESIS_HASH = "0" * 64
ZERO = Decimal(0)


def entry_hash(
    *,
    prev_hash: str,
    wallet_id: int,
    transaction_hash: str,
    delta: Decimal,
    balance_before: Decimal,
    balance_after: Decimal,
    created_at: datetime,
    held_before: Decimal = ZERO,
    held_delta: Decimal = ZERO,
    held_after: Decimal = ZERO,
    hold_uid: str = "",
) -> str:
    """The entry's hash. ``transaction_hash`` is empty for a change of ``held`` alone.

    The held fields are hashed when any of them is set (they are then part of the material, so
    editing one, zero included, breaks the link); an entry of a wallet that never had a hold hashes
    as entries did before holds existed, so the chains written then still verify.
    """
    parts = [
        prev_hash,
        str(wallet_id),
        transaction_hash,
        format_amount(delta),
        format_amount(balance_before),
        format_amount(balance_after),
        created_at.isoformat(),
    ]
    if held_before or held_delta or held_after or hold_uid:
        parts += ["held", format_amount(held_before), format_amount(held_delta), format_amount(held_after), hold_uid]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()
