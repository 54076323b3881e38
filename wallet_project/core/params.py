"""Strict query-parameter parsing: malformed values are a 400, never a silent default."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, overload

from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware
from rest_framework import serializers
from rest_framework.fields import SkipField, empty

from . import errors


@overload
def int_param(params: Mapping[str, str], name: str, *, default: int, minimum: int = ..., maximum: int = ...) -> int: ...
@overload
def int_param(
    params: Mapping[str, str], name: str, *, default: None = None, minimum: int = ..., maximum: int = ...
) -> int | None: ...
def int_param(
    params: Mapping[str, str], name: str, *, default: int | None = None, minimum: int = 1, maximum: int = 10**18
) -> int | None:
    raw = params.get(name)
    if raw is None:
        return default
    # An empty value ("?page=") is malformed like any other, not a silent default.
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise errors.InvalidRequest(f"{name} must be a positive integer", errors={name: ["must be an integer"]})
    value = int(raw)
    if value < minimum or value > maximum:
        raise errors.InvalidRequest(
            f"{name} must be between {minimum} and {maximum}",
            errors={name: [f"must be between {minimum} and {maximum}"]},
        )
    return value


def datetime_param(params: Mapping[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        # "+" arrives as " " from an unencoded query; RFC 3339 also allows a lower-case "t" and "z".
        value = parse_datetime(raw.replace(" ", "+").upper())
    except ValueError:
        value = None
    if value is None:
        raise errors.InvalidRequest(f"{name} must be an ISO 8601 date-time", errors={name: ["invalid date-time"]})
    value = make_aware(value) if is_naive(value) else value
    try:
        # In UTC: PostgreSQL refuses offsets beyond ±15:59 that Python accepts (a 500, not a 400).
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise errors.InvalidRequest(f"{name} is out of range", errors={name: ["out of range"]}) from exc


def choice_param(params: Mapping[str, str], name: str, choices: set[str]) -> str | None:
    raw = params.get(name)
    if raw is None:
        return None
    if raw not in choices:
        raise errors.InvalidRequest(
            f"{name} must be one of {', '.join(sorted(choices))}", errors={name: ["invalid choice"]}
        )
    return raw


# --- Filter serializers: the same parsing, declared once for the view and for the schema ------------


class QueryField(serializers.Field):
    """A query parameter parsed as the functions above parse it.

    A malformed value raises ``InvalidRequest`` at once rather than a ValidationError, so the first bad
    parameter in declaration order answers, with the message and ``errors`` entry of that parameter.
    An empty value is a value (malformed for most types), never the default. ``fallback`` is the value of
    an absent parameter; it is not DRF's ``default``, which the schema would publish.
    """

    def __init__(self, *, fallback: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        self.fallback = fallback
        super().__init__(**kwargs)

    @property
    def param(self) -> str:
        """The parameter's name (the field's, once bound)."""
        assert self.field_name is not None
        return self.field_name

    def get_value(self, dictionary: Mapping[str, Any]) -> Any:
        # DRF turns an empty form value into "absent"; a query's empty value is judged like any other.
        return dictionary.get(self.param, empty)

    def get_default(self) -> Any:
        if self.fallback is None:
            raise SkipField()
        return self.fallback

    def to_representation(self, value: Any) -> Any:
        return value

    def openapi_schema(self) -> dict[str, Any]:
        raise NotImplementedError


class IntQuery(QueryField):
    def __init__(self, *, minimum: int = 1, maximum: int = 10**18, **kwargs: Any) -> None:
        self.minimum, self.maximum = minimum, maximum
        super().__init__(**kwargs)

    def to_internal_value(self, data: str) -> int:
        return int_param({self.param: data}, self.param, default=0, minimum=self.minimum, maximum=self.maximum)

    def openapi_schema(self) -> dict[str, Any]:
        # At most 18 digits, whatever the maximum.
        return {"type": "integer", "minimum": self.minimum, "maximum": min(self.maximum, 10**18 - 1)}


class DateTimeQuery(QueryField):
    def to_internal_value(self, data: str) -> datetime | None:
        return datetime_param({self.param: data}, self.param)

    def openapi_schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "date-time"}


class ChoiceQuery(QueryField):
    def __init__(self, *, choices: Iterable[str], **kwargs: Any) -> None:
        self.choices = set(choices)
        super().__init__(**kwargs)

    def to_internal_value(self, data: str) -> str | None:
        return choice_param({self.param: data}, self.param, self.choices)

    def openapi_schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": sorted(self.choices)}


class TextQuery(QueryField):
    """A string taken as sent; an empty one is the same as none (``None``)."""

    def __init__(self, *, pattern: str | None = None, **kwargs: Any) -> None:
        self.pattern = pattern
        super().__init__(**kwargs)

    def to_internal_value(self, data: str) -> str | None:
        return data or None

    def openapi_schema(self) -> dict[str, Any]:
        return {"type": "string", **({"pattern": self.pattern} if self.pattern else {})}


class FilterSerializer(serializers.Serializer):
    """Query parameters of one action: the view validates them, selectors get typed values, and
    ``extend_schema(parameters=[TheFilter])`` documents them. Unknown parameters are ignored."""

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> dict[str, Any]:
        """The typed values of the parameters sent (and the fallbacks of those absent).

        What ``is_valid`` would give, without a serializer and its field copies per request (which cost
        far more than the parsing itself, on the history page: docs/benchmarks.md): the fields are
        bound once per class and hold no state of their own while they parse.
        """
        values: dict[str, Any] = {}
        for name, field in _bound_fields(cls).items():
            raw = params.get(name)
            if raw is not None:
                values[name] = field.to_internal_value(raw)
            elif field.fallback is not None:
                values[name] = field.fallback
        return values


@cache
def _bound_fields(cls: type[FilterSerializer]) -> dict[str, QueryField]:
    fields = cls().fields
    for name, field in fields.items():
        if not isinstance(field, QueryField):
            raise TypeError(f"{cls.__name__}.{name}: a filter takes QueryFields only")
    return dict(fields)  # type: ignore[arg-type]  # checked above
