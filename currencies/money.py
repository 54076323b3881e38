"""Money helpers: Decimal end to end, never float, never silently rounded."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from rest_framework import serializers

from wallet_project.core import errors

MAX_DIGITS = 20
DECIMAL_PLACES = 8
QUANT = Decimal(1).scaleb(-DECIMAL_PLACES)
# Largest value a DecimalField(20, 8) holds.
MAX_AMOUNT = Decimal(10) ** (MAX_DIGITS - DECIMAL_PLACES) - QUANT
# ASCII digits only: "١٢" (Arabic-Indic digits) must not quietly become 12.
_PLAIN_DECIMAL = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$", re.ASCII)


def parse_amount(value: object) -> Decimal:
    """Turn request input into a Decimal, exactly.

    Accepts a JSON number (already a Decimal or int from the parser) or a string in plain decimal
    notation. Rejects floats, booleans, exponents in strings, NaN, Infinity and non-ASCII digits.
    """
    if isinstance(value, bool) or value is None:
        raise errors.InvalidRequest("amount must be a decimal number")
    if isinstance(value, float):
        # Only reachable through non-JSON parsers; a float has already lost the exact value.
        raise errors.InvalidRequest("amount must be sent as a string or an exact JSON number")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, Decimal):
        amount = value
    elif isinstance(value, str):
        text = value.strip()
        if not _PLAIN_DECIMAL.match(text):
            raise errors.InvalidRequest('amount must be a plain decimal number such as "12.50"')
        try:
            amount = Decimal(text)
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid literals
            raise errors.InvalidRequest("amount must be a decimal number") from exc
    else:
        raise errors.InvalidRequest("amount must be a decimal number")
    if not amount.is_finite():
        raise errors.InvalidRequest("amount must be a finite number")
    return amount


def decimal_places(amount: Decimal) -> int:
    """Significant decimal places, computed exactly (Decimal.normalize would round to 28 digits)."""
    _, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0:
        return 0
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -exponent - trailing_zeros)


def check_amount(amount: Decimal, *, decimals: int, limit: Decimal | None) -> Decimal:
    """Validate a positive amount against a currency; returns it quantized to storage precision.

    Order matters for seed clients: sign, then places, then limit (the balance check comes later).
    """
    if amount <= 0:
        raise errors.AmountNotPositive()
    if decimal_places(amount) > decimals:
        raise errors.InvalidDecimals(f"amount has more than {decimals} decimal places")
    if limit is not None and amount > limit:
        raise errors.AmountExceedsLimit(f"amount exceeds the maximum transfer amount of {format_amount(limit)}")
    if amount > MAX_AMOUNT:
        raise errors.AmountExceedsLimit("amount exceeds the largest representable amount")
    return amount.quantize(QUANT)


def format_amount(value: Decimal) -> str:
    """Amounts leave the service as strings with exactly 8 decimal places: "100.00000000"."""
    return f"{Decimal(value).quantize(QUANT):f}"


class AmountField(serializers.Field):
    """A request amount: string or exact JSON number, parsed straight to Decimal."""

    default_error_messages = {"invalid": "amount must be a decimal number"}

    def to_internal_value(self, data: object) -> Decimal:
        try:
            return parse_amount(data)
        except errors.ApiError as exc:
            raise serializers.ValidationError(exc.message, code=exc.code) from exc

    def to_representation(self, value: Decimal) -> str:
        return format_amount(value)
