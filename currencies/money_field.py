"""The money column: ``numeric(20, 8)`` on PostgreSQL, exact fixed-width text on SQLite.

SQLite has no decimal type. A NUMERIC column turns ``'12345678.12345678'`` into a 64-bit float
(15 significant digits), and adds, sums and compares as floats: a one-unit transfer between large
balances credits one side and rounds the debit away. So on SQLite a money column is TEXT holding
one spelling per value, an optional minus, 13 zero-padded integer digits, a point and 8 places
(``0000012345678.12345678``, 22 characters); a CHECK refuses anything else, so a float computed by
SQL arithmetic cannot be stored by accident. That spelling

- round-trips every ``numeric(21, 8)`` value exactly;
- compares and sorts as text in the order of the values when they are not negative, and puts
  every negative value below zero, so the comparisons the schema and the queries make (against
  a value, zero included, or another money column) are exact; only ordering negative values
  among themselves would be wrong, and nothing does that;
- is summed by ``money_sum`` (``MoneySum``), an aggregate added to every SQLite connection that
  adds Decimals; a plain ``Sum`` arrives as a float, which reading refuses;
- checks the ledger identity ``balance_after = balance_before + delta`` in integer arithmetic on the
  integer and fractional parts (``MoneyExact``). Other money arithmetic in SQL fails loudly (an
  ``F("balance") + x`` update breaks the spelling CHECK; any other sum in a comparison raises
  ``NotSupportedError``): on SQLite money is added in Python, under the write lock.

On PostgreSQL nothing changes: the column stays ``numeric(max_digits, decimal_places)`` and values
pass through as Decimals, with no converter on reads.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import DataError, NotSupportedError, models
from django.db.models import Sum
from django.db.models.expressions import Col, CombinedExpression
from django.db.models.lookups import Exact

INTEGER_DIGITS = 13  # room for max_digits=21 (a signed delta) with 8 places
PLACES = 8
_QUANT = Decimal(1).scaleb(-PLACES)
_DIGIT = "[0-9]"
_CANONICAL_GLOB = _DIGIT * INTEGER_DIGITS + "." + _DIGIT * PLACES


def to_sqlite_text(value: Decimal, *, max_digits: int = INTEGER_DIGITS + PLACES) -> str:
    """The one text spelling of ``value`` in a SQLite money column; refuses what would not be exact."""
    try:
        quantized = value.quantize(_QUANT)
    except InvalidOperation as exc:
        raise DataError(f"money value {value} is not a finite decimal") from exc
    if quantized != value:
        raise DataError(f"money value {value} has more than {PLACES} decimal places")
    if abs(quantized) >= Decimal(10) ** (max_digits - PLACES):
        raise DataError(f"numeric field overflow: {value} has more than {max_digits} digits")
    sign = "-" if quantized < 0 else ""  # never "-0": zero has one spelling
    return f"{sign}{abs(quantized):0{INTEGER_DIGITS + 1 + PLACES}.{PLACES}f}"


def from_sqlite_value(value: Any, expression: Any = None, connection: Any = None) -> Decimal | None:
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        return Decimal(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    # A float means SQLite did the arithmetic (a plain Sum, an F() expression): digits are gone.
    raise TypeError(f"money computed inexactly by SQLite ({value!r}); sum with MoneySum, add in Python")


class MoneyField(models.DecimalField):
    """A DecimalField stored exactly on every backend (see the module docstring)."""

    def get_internal_type(self) -> str:
        # Not "DecimalField": the SQLite backend would read every value through a 15-digit float.
        return "MoneyField"

    def db_type(self, connection: Any) -> str:
        if connection.vendor == "sqlite":
            return "decimal_text"  # TEXT affinity: SQLite keeps the characters as written
        return connection.data_types["DecimalField"] % self.db_type_parameters(connection)

    def db_check(self, connection: Any) -> str | None:
        if connection.vendor != "sqlite":
            return None
        column = self.db_type_parameters(connection)["qn_column"]
        return f"({column} GLOB '{_CANONICAL_GLOB}' OR {column} GLOB '-{_CANONICAL_GLOB}')"

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if connection.vendor != "sqlite":
            return super().get_db_prep_value(value, connection, prepared)
        if not prepared:
            value = self.get_prep_value(value)
        if value is None or hasattr(value, "as_sql"):
            return value
        return to_sqlite_text(self.to_python(value), max_digits=self.max_digits)

    def get_db_converters(self, connection: Any) -> list[Callable]:
        converters = super().get_db_converters(connection)
        if connection.vendor == "sqlite":
            return [*converters, from_sqlite_value]
        return converters


class MoneySum(Sum):
    """``Sum`` of a money column: SQL's own on PostgreSQL, exact Decimal addition on SQLite."""

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, Any]:
        return super().as_sql(compiler, connection, function="money_sum", **extra_context)


def _integer_part(sql: str) -> str:
    return f"CAST(substr({sql}, 1, length({sql}) - {PLACES + 1}) AS INTEGER)"


def _fraction_units(sql: str) -> str:
    # Signed like the value: the integer part of -0.5 is 0 and cannot carry the sign.
    return f"(CASE WHEN substr({sql}, 1, 1) = '-' THEN -1 ELSE 1 END * CAST(substr({sql}, -{PLACES}) AS INTEGER))"


@MoneyField.register_lookup
class MoneyExact(Exact):
    """``money = other_money + more_money`` checked exactly on SQLite, in 64-bit integers.

    The value in units (20 or 21 digits) overflows a 64-bit integer, so the sum is checked as
    ``(integer parts) * 10^8 + (fractions) = 0``; the fractions differ by less than 3 * 10^8, so the
    integer parts must differ by at most 3 for it to hold, and the product never overflows.
    """

    def as_sqlite(self, compiler: Any, connection: Any) -> tuple[str, Any]:
        rhs = self.rhs
        if not isinstance(rhs, CombinedExpression):
            return self.as_sql(compiler, connection)
        if rhs.connector != CombinedExpression.ADD or not all(
            isinstance(side, Col) and isinstance(side.output_field, MoneyField) for side in (rhs.lhs, rhs.rhs)
        ):
            raise NotSupportedError("SQLite compares money exactly only as column = column + column")
        (total, total_params), (a, a_params), (b, b_params) = (
            compiler.compile(node) for node in (self.lhs, rhs.lhs, rhs.rhs)
        )
        whole = f"({_integer_part(total)} - {_integer_part(a)} - {_integer_part(b)})"
        units = f"({_fraction_units(total)} - {_fraction_units(a)} - {_fraction_units(b)})"
        assert not (total_params or a_params or b_params), "columns take no parameters"
        return f"({whole} BETWEEN -3 AND 3 AND {whole} * {10**PLACES} + {units} = 0)", ()


class _MoneySumAggregate:
    """SQLite's ``money_sum``: adds canonical texts as Decimals; NULL for no rows, like SUM."""

    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: Any) -> None:
        amount = from_sqlite_value(value)
        if amount is not None:
            self.total = (self.total or Decimal(0)) + amount

    def finalize(self) -> str | None:
        return None if self.total is None else f"{self.total:f}"


def register_sqlite_functions(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: give every SQLite connection its exact money aggregate."""
    if connection.vendor == "sqlite":
        connection.connection.create_aggregate("money_sum", 1, _MoneySumAggregate)


# --- Migrating an existing SQLite file -----------------------------------------------------------
# Turning a NUMERIC column into the text one rebuilds the table, copying floats as SQLite prints
# them ("1.0e-08", "12345678.1234568"), which the new CHECKs refuse. The migrations suspend CHECKs
# for the copy, respell every value, then turn them back on. Digits a float already lost stay lost.


def sqlite_checks_suspended(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "sqlite":
        schema_editor.execute("PRAGMA ignore_check_constraints = ON")


def sqlite_money_respelled(app_label: str, model_name: str, *fields: str) -> Callable[[Any, Any], None]:
    """A RunPython step: rewrite ``fields`` of the model in the text spelling and re-enable CHECKs."""

    def respell(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "sqlite":
            return
        rows = apps.get_model(app_label, model_name)._base_manager.using(schema_editor.connection.alias)
        for pk, *values in list(rows.values_list("pk", *fields)):
            # Read back as the float's text ("1.0e-08"), written back as MoneyField spells it.
            rows.filter(pk=pk).update(
                **{
                    name: None if value is None else value.quantize(_QUANT)
                    for name, value in zip(fields, values, strict=True)
                }
            )
        schema_editor.execute("PRAGMA ignore_check_constraints = OFF")

    return respell
