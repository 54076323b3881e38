"""JSON parsing that never goes through float: numbers become Decimal, NaN/Infinity are refused.

Bodies are UTF-8 (RFC 8259 section 8.1): another declared charset is a 415, and text that cannot be
UTF-8 at all (a lone surrogate written as a ``\\u`` escape) is a 400, before any code sees it.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import IO, Any

from django.utils.http import parse_header_parameters
from rest_framework.exceptions import ParseError, UnsupportedMediaType
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


# A surrogate can only come from an escape (strict UTF-8 decoding never yields one); the cheap byte scan
# spares the walk over every string for the bodies, nearly all of them, that have no such escape.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _check_charset(media_type: str | None) -> None:
    charset = parse_header_parameters(media_type or "")[1].get("charset")
    if charset is None:
        return
    try:
        utf8 = codecs.lookup(charset).name == "utf-8"
    except LookupError:
        utf8 = False
    if not utf8:
        raise UnsupportedMediaType(media_type or "", detail="JSON bodies must be UTF-8 (no other charset)")


def loads(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)


class DecimalJSONParser(JSONParser):
    def parse(
        self, stream: IO[Any] | None, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        _check_charset(media_type)
        try:
            raw = stream.read() if stream is not None else b""
            if not raw:
                raise ParseError("empty body")
            data = loads(raw.decode("utf-8"))
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
        # Such a string breaks whatever encodes it later (a cache key, a database parameter, a log line).
        if _SURROGATE_ESCAPE.search(raw) and _has_lone_surrogate(data):
            raise ParseError("JSON parse error - a string is not valid Unicode (lone surrogate)")
        return data
