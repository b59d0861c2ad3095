"""What the OpenAPI document says of values the services check: enums read when the document
is made (the active policy's types among them) and dates that a service parses itself, so
that a bad one is reported with every other problem of the request at once."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated

from pydantic import WithJsonSchema

# A date sent as text (YYYY-MM-DD), checked by the service that takes it.
Day = Annotated[str, WithJsonSchema({"type": "string", "format": "date"})]
OptionalDay = Annotated[
    str | None, WithJsonSchema({"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]})
]


def enum(values: Callable[[], Iterable[str]]):
    """A `json_schema_extra` that documents a text field's (or a list's items') values as an
    enum, read when the document is made."""

    def extra(schema: dict) -> None:
        known = list(values())
        if not known:
            return
        if schema.get("type") == "array":
            schema["items"]["enum"] = known
        elif "anyOf" in schema:  # optional: the text alternative
            next(s for s in schema["anyOf"] if s.get("type") == "string")["enum"] = known
        else:
            schema["enum"] = known

    return extra


def policy_types() -> list[str]:
    """The active policy's exception types (none before a policy is published)."""
    from waiverdesk.policies.services import NoActivePolicy, active_version, compiled

    try:
        return list(compiled(active_version()).types)
    except NoActivePolicy:
        return []
