"""CSV downloads: streamed row by row, with spreadsheet formula injection defused. Every export uses this."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django.http import StreamingHttpResponse


class _Echo:
    """A file-like object whose write returns what it was given: csv.writer then yields lines to stream."""

    def write(self, value: str) -> str:
        return value


def _safe(value: object) -> object:
    # Cells starting with = + - @ would run as formulas in a spreadsheet: prefix them.
    return f"'{value}" if str(value)[:1] in "=+-@" else value


def csv_response(filename: str, header: list[str], rows: Iterable[Iterable[object]]) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([_safe(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
