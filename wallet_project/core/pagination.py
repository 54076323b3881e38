"""The seed's page-number envelope: ``{data: [...], pagination: {page, page_size, total, total_pages}}``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet

from .params import int_param

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_PAGE = 1_000_000


def paginate(queryset: QuerySet, params, render: Callable[[Any], dict]) -> dict:
    page = int_param(params, "page", default=1, maximum=MAX_PAGE)
    page_size = int_param(params, "page_size", default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    total = queryset.count()
    offset = (page - 1) * page_size
    rows = []
    if offset < total:
        # Skip through the index only (ids), then load just the page's rows: deep pages stay cheap.
        ids = list(queryset.values_list("pk", flat=True)[offset : offset + page_size])
        by_id = {row.pk: row for row in queryset.filter(pk__in=ids).order_by()}
        rows = [by_id[pk] for pk in ids if pk in by_id]
    return {
        "data": [render(row) for row in rows],
        "pagination": {
            "page": page,
            "page_size": page_size,
            "total": total,
            "total_pages": (total + page_size - 1) // page_size,
        },
    }
