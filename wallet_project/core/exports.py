"""CSV exports: read-only admin changelists, and streamed downloads (statements)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection); memos and
# usernames are user input.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    if text.startswith(_FORMULA_PREFIXES):
        try:
            Decimal(text)  # a negative amount such as "-12.5" stays a number
        except InvalidOperation:
            return "'" + text
    return text


def csv_response(filename: str, columns: list[tuple[str, Callable[[Any], Any]]], rows: Iterable[Any]) -> HttpResponse:
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow([name for name, _ in columns])
    for row in rows:
        writer.writerow([_cell(getter(row)) for _, getter in columns])
    return response


class _Line:
    """A file that hands back what is written to it: ``csv.writer`` formats one row, the caller streams it."""

    def write(self, text: str) -> str:
        return text


def csv_stream_response(filename: str, rows: Iterable[Sequence[Any]]) -> StreamingHttpResponse:
    """``rows`` (the header first) streamed as a CSV attachment named ``filename``, read as they are sent."""
    writer = csv.writer(_Line())

    def lines() -> Iterator[str]:
        for row in rows:
            yield writer.writerow([_cell(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
