"""Strict query-parameter parsing: malformed values are a 400, never a silent default."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import overload

from django.utils.dateparse import parse_datetime
from django.utils.timezone import is_naive, make_aware

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
