"""List paging, in the two modes a request chooses between.

- The seed's page numbers (``page``, ``page_size``): ``{data, pagination: {page, page_size, total,
  total_pages}}``, for the clients that already use it; a count and a skip.
- Cursors (``cursor``, ``limit``; either one sent chooses this mode, ``limit`` alone asks for the first
  page): ``{data, pagination: {next_cursor, has_more}}``. Keyset paging: a page is the rows after the
  position a cursor carries (``core.cursor``: opaque, signed, bound to its list and filters), in the
  list's newest-first order of a unique key; one index range, no count, no skip. Rows added while a
  client pages are newer than every position it holds, so they never shift a later page (nothing is
  skipped or repeated); they appear on a fresh first page. (Ids are taken at insert, so a row whose
  transaction was still open when the first page was read may hold a lower id than one committed before
  it, and appear on a later page once committed: once, and nothing else moves.)

Sending both modes' parameters (``page`` or ``page_size`` with ``cursor`` or ``limit``) is a 400.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from operator import attrgetter
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from . import errors
from .cursor import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor
from .params import FilterSerializer, IntQuery, QueryField

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_PAGE = 1_000_000

PAGE_PARAMS = ("page", "page_size")
CURSOR_PARAMS = ("cursor", "limit")
# What signing.dumps writes: URL-safe base64, "." (compressed), ":" (before the signature).
CURSOR_PATTERN = r"^[-A-Za-z0-9_.:]+(?!\n)$"


class CursorQuery(QueryField):
    """``cursor``: taken as sent (an empty one too); only the list that issued it can read it."""

    def to_internal_value(self, data: str) -> str:
        return data

    def openapi_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": CURSOR_PATTERN}


class PageFilter(FilterSerializer):
    """The paging parameters of both modes, read after the filters a subclass declares (in that order
    they answer); then the modes must not be mixed."""

    page = IntQuery(maximum=MAX_PAGE, fallback=1, help_text="Page-number mode: 1-based; malformed → 400")
    page_size = IntQuery(
        maximum=MAX_PAGE_SIZE, fallback=DEFAULT_PAGE_SIZE, help_text="Page-number mode: 1..100, default 20"
    )
    cursor = CursorQuery(
        help_text="Cursor mode: the `next_cursor` of the previous page, as it came; not with page or page_size"
    )
    limit = IntQuery(
        maximum=MAX_LIMIT,
        help_text=f"Cursor mode: 1..{MAX_LIMIT}, default {DEFAULT_LIMIT}; alone, it asks for the first page",
    )

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        # DRF lists a base class's fields first; the paging comes after the filters, as it always has.
        paging = (*PAGE_PARAMS, *CURSOR_PARAMS)
        return {name: field for name, field in fields.items() if name not in paging} | {
            name: fields[name] for name in paging
        }

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> dict[str, Any]:
        values = super().parse(params)
        _refuse_mixed_modes(params)
        return values

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        _refuse_mixed_modes(self.initial_data)
        return attrs


def _refuse_mixed_modes(params: Mapping[str, Any]) -> None:
    sent = [name for name in CURSOR_PARAMS if name in params]
    if sent and any(name in params for name in PAGE_PARAMS):
        raise errors.InvalidRequest(
            f"{sent[0]} cannot be combined with page or page_size",
            errors={sent[0]: ["cannot be combined with page or page_size"]},
        )


# --- Page numbers ------------------------------------------------------------------------------------


def paginate(
    queryset: QuerySet,
    render: Callable[[Any], dict],
    *,
    page: int,
    page_size: int,
    total: int | None = None,
    page_rows: Callable[[int, int], list] | None = None,
) -> dict:
    """One page of ``queryset``. ``total`` and ``page_rows(offset, limit)`` replace the count and the
    skip when the caller knows a cheaper way to get them (both must agree with ``queryset``)."""
    if total is None:
        total = queryset.count()
    offset = (page - 1) * page_size
    rows = []
    if offset < total:
        rows = (page_rows or partial(_skip_to, queryset))(offset, page_size)
    return {
        "data": [render(row) for row in rows],
        "pagination": {
            "page": page,
            "page_size": page_size,
            "total": total,
            "total_pages": (total + page_size - 1) // page_size,
        },
    }


def _skip_to(queryset: QuerySet, offset: int, limit: int) -> list:
    # Skip through the index only (ids), then load just the page's rows.
    ids = list(queryset.values_list("pk", flat=True)[offset : offset + limit])
    by_id = {row.pk: row for row in queryset.filter(pk__in=ids).order_by()}
    return [by_id[pk] for pk in ids if pk in by_id]


# --- Cursors -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CursorWindow:
    """A cursor-mode request: the position its page starts after (``None``: the first page), the page's
    size, and the scope (list and filters) that the cursors it hands out are bound to."""

    after: dict[str, Any] | None
    limit: int
    scope: str

    def key(self, name: str) -> int | None:
        """The position's integer ``name`` (``None`` on the first page)."""
        return None if self.after is None else self.value(name)

    def value(self, name: str) -> int:
        """The position's integer ``name``; a 400 if it has none."""
        value = (self.after or {}).get(name)
        # Signed by this server, so never forged; a cursor of an older layout is refused as any bad one.
        if type(value) is not int or value < 0:
            raise invalid_cursor()
        return value

    def starting_after(self, position: dict[str, Any]) -> CursorWindow:
        return replace(self, after=position)

    def envelope(self, data: list[dict], next_position: dict[str, Any] | None) -> dict:
        """The page: ``next_position`` is where the next one starts, ``None`` when this is the last."""
        return {
            "data": data,
            "pagination": {
                "next_cursor": None if next_position is None else encode_cursor(next_position, scope=self.scope),
                "has_more": next_position is not None,
            },
        }


def invalid_cursor() -> errors.InvalidRequest:
    """What a cursor that cannot be read here is answered with (as ``core.cursor`` answers a bad one)."""
    return errors.InvalidRequest("cursor is not valid for this list", errors={"cursor": ["invalid cursor"]})


def cursor_window(query: Mapping[str, Any], *, scope: Mapping[str, Any]) -> CursorWindow | None:
    """The cursor-mode window of a parsed ``PageFilter`` query, or ``None`` in page-number mode.

    ``scope`` is what the list's cursors are bound to: its name, whose list it is and the parsed
    filter values (JSON-serialisable, or dates); a cursor issued under any other scope is a 400.
    """
    if "cursor" not in query and "limit" not in query:
        return None
    canonical = json.dumps(scope, sort_keys=True, default=str, separators=(",", ":"))
    bound = f"{scope.get('list', '')}:{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"
    text = query.get("cursor")
    return CursorWindow(
        after=None if text is None else decode_cursor(text, scope=bound),
        limit=query.get("limit", DEFAULT_LIMIT),
        scope=bound,
    )


def keyset_page(queryset: QuerySet | Sequence[QuerySet], render: Callable[[Any], dict], window: CursorWindow) -> dict:
    """One cursor page of ``queryset``, ordered newest first by one unique integer column (``order_by("-id")``,
    the cursor's key): the rows below the window's position, one more than the page to know whether another
    follows. A list no one index ranges over may come as disjoint parts, each so ordered (the holds a user
    pays, and those they are paid by): each part's range is read, and the ranges merged."""
    parts = [queryset] if isinstance(queryset, QuerySet) else list(queryset)
    key = _descending_key(parts)
    after = window.key(key)
    if after is not None:
        parts = [part.filter(**{f"{key}__lt": after}) for part in parts]
    wanted = window.limit + 1
    ranges = [list(part[:wanted]) for part in parts]
    rows = ranges[0] if len(ranges) == 1 else list(heapq.merge(*ranges, key=attrgetter(key), reverse=True))[:wanted]
    page = rows[: window.limit]
    more = len(rows) > window.limit
    return window.envelope([render(row) for row in page], {key: getattr(page[-1], key)} if more else None)


def _descending_key(parts: list[QuerySet]) -> str:
    orders = {tuple(part.query.order_by) for part in parts}
    order = orders.pop() if len(orders) == 1 else ()
    if len(order) != 1 or not isinstance(order[0], str) or not order[0].startswith("-"):
        raise ValueError(f"keyset paging needs querysets ordered by one descending column, not {orders}")
    return order[0][1:]


def list_page(
    queryset: QuerySet, render: Callable[[Any], dict], query: Mapping[str, Any], *, scope: Mapping[str, Any]
) -> dict:
    """The page of ``queryset`` (ordered by one descending unique column) that the request asked for, in either mode."""
    window = cursor_window(query, scope=scope)
    if window is None:
        return paginate(queryset, render, page=query["page"], page_size=query["page_size"])
    return keyset_page(queryset, render, window)


# --- The envelope's schema ---------------------------------------------------------------------------


class PaginationOut(serializers.Serializer):
    """Page-number mode's ``pagination`` object."""

    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    total = serializers.IntegerField()
    total_pages = serializers.IntegerField()


class CursorPaginationOut(serializers.Serializer):
    """Cursor mode's ``pagination`` object. Items that arrive while a client pages are newer than its
    cursor: they never shift a later page, and show on a fresh first page."""

    next_cursor = serializers.CharField(
        allow_null=True, help_text="Send as `cursor` for the next page; null on the last page"
    )
    has_more = serializers.BooleanField()


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="ListPagination",
        serializers=[PaginationOut, CursorPaginationOut],
        resource_type_field_name=None,
    )
)
class ListPaginationOut(serializers.Field):
    """A list's ``pagination``: page-number mode's object or cursor mode's, as the request chose."""

    def to_representation(self, value: Any) -> Any:
        return value
