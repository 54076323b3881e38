"""Strict serializer fields: no floats, no booleans, no non-ASCII digits sneaking through."""

from __future__ import annotations

import copy
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
