"""Opaque, tamper-evident list cursors: ``?cursor=&limit=`` → ``pagination: {next_cursor, has_more}``.

A cursor is the position after the last row of a page (keyset paging: the values of the list's
order, e.g. ``{"id": 123}``), bound to the list it came from (``scope``: the endpoint and its
filters, so a cursor of one list cannot be replayed against another), serialised and signed with
Django's ``signing`` (HMAC-SHA256 with ``SECRET_KEY``, salt below). A modified, truncated or foreign
cursor is a 400 ``INVALID_REQUEST`` naming ``cursor``; it never reaches a query.
"""

from __future__ import annotations

from typing import Any

from django.core import signing

from . import errors

SALT = "wallet.cursor.v1"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def encode_cursor(position: dict[str, Any], *, scope: str) -> str:
    """The opaque text of ``position`` (JSON-serialisable values) for the list named ``scope``."""
    return signing.dumps({"s": scope, "p": position}, salt=SALT, compress=True)


def decode_cursor(text: str, *, scope: str) -> dict[str, Any]:
    """The position a cursor of ``scope`` carries; 400 INVALID_REQUEST for anything else."""
    try:
        value = signing.loads(text, salt=SALT)
    except (signing.BadSignature, ValueError, UnicodeError):
        value = None
    if not isinstance(value, dict) or value.get("s") != scope or not isinstance(value.get("p"), dict):
        raise errors.InvalidRequest("cursor is not valid for this list", errors={"cursor": ["invalid cursor"]})
    position: dict[str, Any] = value["p"]
    return position
