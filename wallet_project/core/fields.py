"""Strict serializer fields: no floats, no booleans, no non-ASCII digits sneaking through."""

from __future__ import annotations

import copy
import re
from typing import Any

from rest_framework import serializers

MAX_ID = 2**63 - 1


class IdField(serializers.Field):
    default_error_messages = {"invalid": "must be a positive integer id"}

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, int):
            value = data
        elif isinstance(data, str) and data.isascii() and data.isdigit() and len(data) <= 19:
            value = int(data)
        else:
            self.fail("invalid")
        if not 1 <= value <= MAX_ID:
            self.fail("invalid")
        return value

    def to_representation(self, value: int) -> int:
        return value


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer and nothing else: DRF's IntegerField takes "60", 60.0 and 6e1 as 60, and a boolean."""

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A JSON string and nothing else (DRF's CharField turns the number 42 into "42"), matching
    ``pattern`` in full when one is given (a RegexField's ``$`` would let a trailing newline through).
    A value with a pattern is judged as sent, not trimmed first: the schema publishes the pattern."""

    default_error_messages = {"pattern": "does not match the pattern {pattern}"}

    def __init__(self, *, pattern: str | None = None, **kwargs: Any) -> None:
        self.pattern = None if pattern is None else re.compile(pattern)
        if pattern is not None:
            kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: object) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if self.pattern is not None and value and not self.pattern.fullmatch(value):
            self.fail("pattern", pattern=self.pattern.pattern)
        return value


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know: a typo or an attempt to set `balance` is an error, not a no-op."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)


# Fields that hold other bound fields: these need DRF's deep copy.
NESTING_FIELDS = (serializers.BaseSerializer, serializers.ListField, serializers.DictField)


class FlatStrictSerializer(StrictSerializer):
    """A strict serializer of flat fields only, for request bodies on the hot path.

    DRF deep-copies every declared field for each serializer instance, which re-runs each field's
    ``__init__`` (validators and all): much of the cost of validating a transfer body
    (docs/benchmarks.md). Flat fields hold
    nothing per request but their binding, so a shallow copy, bound to this instance, is enough.
    """

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = {}
        for name, field in self._declared_fields.items():
            if isinstance(field, NESTING_FIELDS):
                raise TypeError(f"{type(self).__name__}.{name}: {type(field).__name__} is not a flat field")
            fields[name] = copy.copy(field)
        return fields
