"""Strict serializer fields: no floats, no booleans, no non-ASCII digits sneaking through."""

from __future__ import annotations

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

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["unknown field"] for name in unknown})
        return super().to_internal_value(data)
