"""The seed's page-number envelope: ``{data: [...], pagination: {page, page_size, total, total_pages}}``."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers

from .params import FilterSerializer, IntQuery

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_PAGE = 1_000_000


class PageFilter(FilterSerializer):
    """``page`` and ``page_size``, read after the filters a subclass declares (in that order they answer)."""

    page = IntQuery(maximum=MAX_PAGE, fallback=1)
    page_size = IntQuery(maximum=MAX_PAGE_SIZE, fallback=DEFAULT_PAGE_SIZE)

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        # DRF lists a base class's fields first; the page comes after the filters, as it always has.
        return {name: field for name, field in fields.items() if name not in ("page", "page_size")} | {
            "page": fields["page"],
            "page_size": fields["page_size"],
        }


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


class PaginationOut(serializers.Serializer):
    """The envelope's ``pagination`` object, as the schema documents it."""

    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    total = serializers.IntegerField()
    total_pages = serializers.IntegerField()
