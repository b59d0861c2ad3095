"""Cells of an exported spreadsheet that a spreadsheet program will not run: text that
begins like a formula (=, +, -, @, a tab or a carriage return) is prefixed with ', as OWASP
advises against CSV injection. Numbers stay numbers, "-5" and a lone "-" included."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
SIGNED_NUMBER = re.compile(r"[+-]?(\d[\d,]*(\.\d+)?|\.\d+)%?|[+-]")


def cell(value: Any) -> Any:
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_START)
        and not SIGNED_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def row(values: Iterable[Any]) -> list[Any]:
    return [cell(v) for v in values]


def record(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: cell(v) for k, v in values.items()}
