"""Spreadsheet exports as Excel, LibreOffice and billing systems write them, read one way for
every import: the encoding (UTF-8 with or without its BOM, UTF-16 with one, Windows-1252 or
Latin-1 as charset-normalizer tells them, or any one named), the delimiter (`,`, `;` or tab,
from the header), the header's columns in any case and spacing, blank rows skipped, and
dates in ISO 8601 or a format given.

A file is handed on as UTF-8 lines, so the database can read what is plain CSV itself."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from charset_normalizer import from_bytes

from waiverdesk.core.errors import Invalid, Problem

SAMPLE = 1 << 16
# What a spreadsheet's text encoding is, when its bytes are not UTF-8 (nor UTF-16, which has
# a BOM): the ones Excel and billing systems write, for charset-normalizer to choose between.
# (With more candidates, a short file of Windows-1252 is as likely to pass for MacRoman.)
LEGACY = ["cp1252", "latin_1"]
BOMS = [(codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16")]  # fmt: skip
BLANK = b' \t\r\n,;"'

NUMBER_RULE = (
    "Figures may be written 1234.5, 1,234.5 or 1 234.5 (a comma or a space between groups "
    "of three digits, a point before the decimals), with a $ before or a % after; "
    "1,5 is refused as ambiguous."
)


@dataclass
class Sheet:
    """An opened export: its header's columns (the known name of each, or None), the
    delimiter, and its lines after the header as UTF-8."""

    columns: list[str | None]
    delimiter: str
    lines: Iterator[bytes]
    header_lines: int  # lines the header took (1, unless a name holds a line break)


def open_sheet(
    handle: IO[bytes],
    known: Iterable[str],
    required: Iterable[Iterable[str]],
    encoding: str | None = None,
) -> Sheet:
    """Read an export's header. `known` are the column names an import takes; `required`,
    sets of names of which each must be there. Raises Invalid with one problem, listing the
    expected columns, when the header is not one of this import's."""
    known = list(known)
    sample = handle.read(SAMPLE)
    encoding = encoding or detect(sample)
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise Invalid([Problem("encoding", "invalid", f"no encoding named {encoding}")]) from None
    lines = _utf8_lines(_Prefixed(sample, handle), encoding)
    header_text, header_lines = "", 0
    for line in lines:
        header_text += line.decode("utf-8", errors="replace")
        header_lines += 1
        if header_text.count('"') % 2 == 0 and header_text.strip():
            break
    delimiter = sniff(header_text)
    header = next(csv.reader([header_text], delimiter=delimiter), [])
    names = [column_name(h) for h in header]
    columns = [n if n in known and n not in names[:i] else None for i, n in enumerate(names)]
    missing = [" or ".join(group) for group in map(list, required)
               if not any(name in columns for name in group)]  # fmt: skip
    if missing:
        found = ", ".join(h.strip() for h in header if h.strip()) or "nothing"
        recognised = any(columns)
        message = (
            f"the header lacks {'; '.join(missing)}" if recognised
            else "the first line is not a header this import knows"
        ) + f". Expected the columns {', '.join(known)}; found {found}."  # fmt: skip
        raise Invalid([Problem("header", "unknown_header", message)])
    return Sheet(columns, delimiter, lines, header_lines)


def detect(sample: bytes) -> str:
    """The encoding of a file that begins with `sample`: by its BOM; UTF-8 when its bytes
    are; otherwise charset-normalizer's choice among the legacy encodings."""
    for bom, name in BOMS:
        if sample.startswith(bom):
            return name
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as error:
        if error.start >= len(sample) - 3 and len(sample) == SAMPLE:
            return "utf-8"  # cut inside a character at the sample's end
    best = from_bytes(sample, cp_isolation=LEGACY).best()
    return best.encoding if best else "cp1252"


def sniff(header: str) -> str:
    """The delimiter of a header line: the one of `,`, `;` and tab it holds most of, outside
    quotes (a comma when there is none)."""
    bare = re.sub(r'"[^"]*"', "", header)
    counts = {d: bare.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def column_name(text: str) -> str:
    """A header cell as a column name: `Record ID` → record_id, `Discount %` → discount_pct,
    ` period-start ` → period_start."""
    name = text.strip().strip("\ufeff").strip().lower().replace("%", "pct")
    return re.sub(r"[^a-z0-9]+", "_", name).strip("_")


def blank(line: bytes) -> bool:
    """Whether a line is an empty row (Excel writes `,,,,` for rows it once formatted)."""
    return not line.strip(BLANK)


def to_iso(text: str | None, date_format: str) -> str | None:
    """A date written in `date_format` (strptime's codes: %d/%m/%Y) as YYYY-MM-DD; text that
    is not such a date as it is, for the import's check to name."""
    if not text or not text.strip():
        return text
    try:
        return datetime.strptime(text.strip(), date_format).date().isoformat()
    except ValueError:
        return text


class _Prefixed(io.RawIOBase):
    """A stream that gives `first`, then the rest of `rest`."""

    def __init__(self, first: bytes, rest: IO[bytes]):
        self.first, self.rest = first, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.first:
            n = min(len(buffer), len(self.first))
            buffer[:n], self.first = self.first[:n], self.first[n:]
            return n
        data = self.rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _utf8_lines(raw: io.RawIOBase, encoding: str) -> Iterator[bytes]:
    """The lines of `raw` as UTF-8 (without a BOM): as they are when they are UTF-8."""
    buffered = io.BufferedReader(raw, 1 << 20)
    if encoding in ("utf-8", "utf-8-sig", "utf8"):
        first = buffered.readline()
        yield first.removeprefix(codecs.BOM_UTF8)
        yield from buffered
        return
    for line in io.TextIOWrapper(buffered, encoding=encoding, errors="replace", newline=""):
        yield line.encode()
