"""Safe policy conditions in Common Expression Language (CEL).

CEL has no `eval`, no imports and no access to host objects: an expression
sees only the plain values it is given. On top of that, every expression is
checked at compile time against a list of the functions CEL's standard
library offers, so a name such as `__import__` is refused even in a branch
that would never run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import cel

# Named functions of CEL's standard library; operators (`_&&_`, `@in`, `!_`)
# are recognised by their punctuation.
STANDARD_FUNCTIONS = frozenset(
    {
        "size",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "int",
        "uint",
        "double",
        "string",
        "bool",
        "bytes",
        "dyn",
        "type",
        "timestamp",
        "duration",
        "getFullYear",
        "getMonth",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getDate",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
        "exists",
        "exists_one",
        "all",
        "map",
        "filter",
        "has",
        "max",
        "min",
    }
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*)")


class ExpressionError(ValueError):
    """An expression that does not compile or uses something it may not."""


@dataclass(frozen=True)
class Expression:
    """A compiled condition; `evaluate` runs it against a prepared context."""

    source: str
    program: Any

    def evaluate(self, context: cel.Context) -> Any:
        return self.program.execute(context)


def compile_expression(source: str) -> Expression:
    """Compile `source` once, refusing parse errors and unknown functions."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("must be a non-empty expression")
    try:
        program = cel.compile(source)
    except (ValueError, RuntimeError) as exc:
        raise ExpressionError(_describe_parse_error(str(exc))) from None
    forbidden = [
        name
        for name in program.functions()
        if _IDENTIFIER.match(name) and name not in STANDARD_FUNCTIONS
    ]
    if forbidden:
        raise ExpressionError(f"calls unknown function {', '.join(sorted(forbidden))}")
    return Expression(source=source, program=program)


def make_context(variables: dict[str, Any]) -> cel.Context:
    """Build an evaluation context once, to run many expressions against."""
    return cel.Context(variables)


def _describe_parse_error(message: str) -> str:
    match = _POSITION.search(message)
    if not match:
        return f"does not parse: {message.splitlines()[0]}"
    line, column, detail = match.groups()
    return f"does not parse at line {line}, column {column}: {detail}"
