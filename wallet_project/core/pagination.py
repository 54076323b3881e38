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
    rows = list(queryset[offset : offset + page_size]) if offset < total else []
    return {
        "data": [render(row) for row in rows],
        "pagination": {
            "page": page,
            "page_size": page_size,
            "total": total,
            "total_pages": (total + page_size - 1) // page_size,
        },
    }
