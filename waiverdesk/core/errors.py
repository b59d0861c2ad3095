"""The errors every entry point turns into a clear, field-level answer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One reason a request cannot go ahead, named by the field it concerns."""

    field: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class Invalid(Exception):
    """Bad input: nothing was stored."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]):
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


class Denied(Exception):
    """An action the rules do not allow this person, or not in this state; it is audited."""

    def __init__(self, code: str, message: str):
        self.code, self.message = code, message
        self.audited = False  # set once the refusal is in the audit trail
        super().__init__(message)
