"""JSON parsing that never goes through float: numbers become Decimal, NaN/Infinity are refused."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# No request of this API nests deeper than 3; anything far deeper is refused before any code walks it
# (recursive consumers such as the idempotency fingerprint would otherwise hit the recursion limit).
MAX_DEPTH = 32


class _NotAJsonNumber(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotAJsonNumber(f"{name} is not a valid JSON number")


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return False


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)


class DecimalJSONParser(JSONParser):
    def parse(
        self, stream: IO[Any] | None, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            raw = stream.read() if stream is not None else b""
            if not raw:
                raise ParseError("empty body")
            data = loads(raw.decode(encoding))
        except (json.JSONDecodeError, _NotAJsonNumber) as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        # decimal.InvalidOperation (not a ValueError): an exponent beyond Decimal's range, e.g. 1e9999999999999999999.
        except ArithmeticError as exc:
            raise ParseError("JSON parse error - number out of range") from exc
        except RecursionError as exc:
            raise ParseError("JSON parse error - nested too deeply") from exc
        except ValueError as exc:  # undecodable bytes, or an integer too long to convert (no internals in the text)
            raise ParseError("JSON parse error - invalid text encoding or number") from exc
        if _depth_exceeds(data, MAX_DEPTH):
            raise ParseError("JSON parse error - nested too deeply")
        return data
