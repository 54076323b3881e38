"""OpenAPI helpers: the error envelope and the documented error responses of each action."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

from . import errors

if TYPE_CHECKING:  # annotations only
    from drf_spectacular.openapi import AutoSchema
    from drf_spectacular.utils import Direction

Problem = inline_serializer(
    name="Problem",
    fields={
        "type": serializers.CharField(),
        "title": serializers.CharField(),
        "status": serializers.IntegerField(),
        "detail": serializers.CharField(),
        "error": serializers.CharField(),
        "code": serializers.CharField(),
        "errors": serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False),
        "trace_id": serializers.CharField(),
    },
)

# Why a status happens beyond its codes, where a client needs more than the code list.
_NOTES = {
    401: "missing, invalid, expired or revoked token",
    503: "service busy or database unavailable; retry after `Retry-After`",
}


def error_description(status: int) -> str:
    """The codes a response of this status may carry: every registered error with that status."""
    codes = ", ".join(f"`{cls.code}`" for cls in errors.registry.values() if cls.status_code == status)
    note = _NOTES.get(status)
    return f"{codes} ({note})" if note else codes


def error_responses(*statuses: int) -> dict[tuple[int, str], OpenApiResponse]:
    # Errors leave as application/problem+json (RFC 9457), not as the success media type.
    return {
        (status, errors.PROBLEM_CONTENT_TYPE): OpenApiResponse(response=Problem, description=error_description(status))
        for status in statuses
    }


def security(*requirements: dict[str, list[str]]) -> Any:
    """For ``extend_schema(auth=...)``: the operation's OpenAPI security requirements, ``security({})``
    meaning none. drf-spectacular annotates ``auth`` as ``Sequence[str]`` but copies it into the
    schema as it is, so it takes requirement objects; ``Any`` keeps that mismatch in this one place."""
    return list(requirements)


# --- Extensions: how the project's own auth class and fields appear in the schema ----------------
# Registered on import; every API view module imports this one. Without them drf-spectacular warns
# (drf_spectacular.W001), which fails `manage.py check --deploy --fail-level WARNING`, and documents
# ids and amounts as bare strings.
class JWTAuthenticationScheme(SimpleJWTScheme):
    target_class = "accounts.authentication.JWTAuthentication"


class IdFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "wallet_project.core.fields.IdField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        return {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}


class QueryFieldExtension(OpenApiSerializerFieldExtension):
    """A filter serializer's parameter, documented as its parser reads it (bounds, enum, pattern)."""

    target_class = "wallet_project.core.params.QueryField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        return self.target.openapi_schema()


# String patterns for what DRF's CharField refuses beyond its lengths: a NUL anywhere, and (unless blank
# is allowed) a value that is empty once trimmed. ``\\s`` is Python's, as str.strip() trims.
NO_NUL = "^[^\\x00]*$"
NOT_BLANK = "^[^\\x00]*[^\\s\\x00][^\\x00]*$"
NOT_ALL_DIGITS = "^[^\\x00]*[^0-9\\x00][^\\x00]*$"  # NumericPasswordValidator


def _text_pattern(field: serializers.CharField) -> str:
    return NOT_BLANK if field.trim_whitespace and not field.allow_blank else NO_NUL


class StrictSerializerExtension(OpenApiSerializerExtension):
    """A StrictSerializer refuses unknown fields, so its schema says ``additionalProperties: false``.

    Its request schema also states what its fields refuse beyond type and length (so that a body the
    schema calls valid is accepted): ``_text_pattern`` for strings without a pattern or format of their
    own, ``openapi_patterns`` for a field's stricter rule, ``openapi_rules`` (JSON Schema keywords) for
    rules across fields such as "exactly one of".
    """

    target_class = "wallet_project.core.fields.StrictSerializer"
    match_subclasses = True

    def map_serializer(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        schema = {**auto_schema._map_basic_serializer(self.target, direction), "additionalProperties": False}
        if direction != "request":
            return schema
        patterns = getattr(self.target, "openapi_patterns", {})
        for name, field in self.target.fields.items():
            prop = schema["properties"].get(name)
            if prop is None or not isinstance(field, serializers.CharField):
                continue
            if name in patterns:
                prop["pattern"] = patterns[name]
            elif getattr(field, "pattern", None) is not None:  # a StrictCharField's, matched in full
                prop["pattern"] = field.pattern.pattern  # type: ignore[attr-defined]
            elif "pattern" not in prop and "format" not in prop:
                prop["pattern"] = _text_pattern(field)
        return {**schema, **getattr(self.target, "openapi_rules", {})}


class AmountFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "currencies.money.AmountField"

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> dict[str, Any]:
        # parse_amount's plain decimal notation (surrounding blanks trimmed), with a non-zero digit: zero and
        # negative amounts are AMOUNT_NOT_POSITIVE. Per-currency places and limits, and balances, are the
        # domain's answer (400 with their own codes), beyond what a schema can say.
        positive = r"^\s*\+?(?=[0-9.]*[1-9])(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*$"
        return {
            "oneOf": [
                {"type": "string", "pattern": positive, "example": "12.5"},
                {"type": "number", "minimum": 0, "exclusiveMinimum": True, "example": 12.5},
            ]
        }
