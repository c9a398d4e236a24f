"""CSV files for people to open in a spreadsheet (Excel): what every export of every service shares.

UTF-8 with a BOM (so Excel reads Cyrillic), RFC 4180 with CRLF, and every cell through ``csv_cell``:
ISO dates, true/false, an empty cell for null, and text a spreadsheet would run as a formula (``=``,
``+``, ``-``, ``@``, tab or CR first) neutralised with a leading apostrophe (CSV injection). A download
is an attachment, never cached, never sniffed."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

BOM = "\ufeff"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """One cell: ISO dates, true/false, and text that a spreadsheet would run as a formula
    (=, +, -, @ first) neutralised with a leading apostrophe (CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    s = str(value)
    return "'" + s if s.startswith(FORMULA_START) else s


def csv_text(rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None, delimiter: str = ",") -> str:
    """Rows (cells already made with ``csv_cell``) as CSV text: RFC 4180, CRLF, quotes doubled where
    needed; ``header`` first when given."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    if header is not None:
        w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def attachment_headers(filename: str) -> dict[str, str]:
    """Response headers of a CSV (or any file) download."""
    return {"content-disposition": f'attachment; filename="{filename}"', "cache-control": "no-store",
            "x-content-type-options": "nosniff"}


CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
