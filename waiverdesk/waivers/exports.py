"""A list of requests as a spreadsheet: CSV or Excel, every row the list's filters find, in
its order. Moments are in the reader's time zone, which the headings name; amounts are
numbers with their currency in a column of its own; no cell runs as a formula."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from openpyxl import Workbook

from waiverdesk.core import cells
from waiverdesk.directory.readers import Reader


def headings(reader: Reader) -> list[str]:
    zone = reader.zone_name
    return [
        "Request", "Type", "Customer", "Customer ID", "Products", "Requester", "Status",
        "Start", "End", "Amount", "Base currency", "Amount as filed", "Currency", "Risk",
        "Waiting on", f"Submitted ({zone})", f"Created ({zone})",
    ]  # fmt: skip


def values(row: dict, reader: Reader, type_labels: dict[str, str]) -> list[Any]:
    """One row (from listing.everything): dates as dates, moments in the reader's zone,
    amounts as numbers."""
    money, financials = row["money"] or {}, row["financials"] or {}

    def local(moment: datetime | None):
        return moment.astimezone(reader.zone).replace(tzinfo=None) if moment else None

    return [
        row["reference"],
        type_labels.get(row["type"], row["type"]),
        row["customer__name"],
        row["customer__external_id"],
        ", ".join(row["products"]),
        row["requester__username"],
        row["status"].replace("_", " "),
        row["start"],
        row["end"],
        money.get("concession_base"),
        money.get("base", ""),
        financials.get("concession"),
        money.get("currency") or financials.get("currency") or "",
        (row["risk"] or {}).get("overall", ""),
        row["waiting"] or "",
        local(row["submitted_at"]),
        local(row["created_at"]),
    ]


def as_csv(rows: Iterable[dict], reader: Reader, type_labels: dict[str, str]) -> Iterator[str]:
    """The lines of a CSV file (UTF-8 with a byte-order mark, which Excel reads as such)."""
    buffer = io.StringIO()
    out = csv.writer(buffer)

    def line(items) -> str:
        out.writerow(cells.row("" if v is None else _text(v) for v in items))
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield "\ufeff" + line(headings(reader))
    for row in rows:
        yield line(values(row, reader, type_labels))


def as_xlsx(rows: Iterable[dict], reader: Reader, type_labels: dict[str, str]):
    """An Excel workbook of one sheet, written row by row to a temporary file (returned
    open, at its start)."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Requests")
    sheet.append(headings(reader))
    for row in rows:
        sheet.append(cells.row(values(row, reader, type_labels)))
    file = tempfile.TemporaryFile()  # noqa: SIM115 - the response closes it
    book.save(file)
    file.seek(0)
    return file


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
