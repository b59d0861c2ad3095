"""The request form of one exception type, laid out from the policy, and a posted form read
back into the canonical request body (so the form and the API share one validation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User

from waiverdesk.core.policy import ExceptionType
from waiverdesk.directory.models import Customer, Product

from . import intake, services

REGIONS = ("AMER", "EMEA", "APAC")
CURRENCIES = ("EUR", "USD", "GBP")
SCOPE_FIELDS = {
    "scope.seats": "Seats",
    "scope.quantity": "Committed quantity",
    "scope.discount_pct": "Discount (% of list price)",
}
# The figures of a request, in words.
FINANCIAL_LABELS = {
    "list_value": "List value",
    "concession": "Concession (value given up)",
    "revenue_effect": "Revenue effect",
}
# The standard justification template: each answer's prompt.
JUSTIFICATION = {
    "justification.benefit": (
        "Business benefit",
        "What the company gains: revenue kept or won, a strategic account, a reference.",
    ),
    "justification.alternatives": (
        "Alternatives considered",
        "Which standard offers were tried or ruled out, and why they do not fit.",
    ),
    "justification.customer_impact": (
        "Customer impact",
        "What happens to the customer with and without the exception.",
    ),
    "justification.why_not_standard": (
        "Why the standard terms do not work",
        "The specific clause or limit that does not fit this deal.",
    ),
}


@dataclass
class Field:
    name: str  # the body path, e.g. "scope.seats": errors are matched to fields by it
    label: str
    widget: str  # text, number, date, select, checkboxes, textarea, file
    required: bool = False
    choices: list[tuple[str, str]] = field(default_factory=list)
    help: str = ""
    value: Any = ""
    errors: list[str] = field(default_factory=list)
    pending: list[Any] = field(default_factory=list)  # files kept from a refused form
    text: str = ""  # evidence given as a text instead of a file

    @property
    def id(self) -> str:
        return "f-" + self.name.replace(".", "-").replace("_", "-")

    @property
    def maxlength(self) -> int | None:
        """The most characters the field takes, as the request body's validation checks it."""
        return intake.max_length(self.name) if self.widget in ("text", "textarea") else None


@dataclass
class Section:
    title: str
    fields: list[Field]


def sections(type_name: str, kind: ExceptionType) -> list[Section]:
    """The form of `type_name`: every field the policy reads, marked when it is required."""
    required = set(kind.required_fields)
    said = " ".join(r.when for r in kind.eligibility)

    def needed(path: str) -> bool:
        return path in required

    products = Product.objects.order_by("family", "code")
    if kind.scope.families:
        products = products.filter(family__in=kind.scope.families)
    owners = User.objects.filter(groups__name="control_owner", is_active=True).order_by("username")
    scope = [
        Field(path, label, "number", needed(path))
        for path, label in SCOPE_FIELDS.items()
        if needed(path) or f"request.{path}" in said
    ]
    return [
        Section(
            "Customer and products",
            [
                Field(
                    "customer",
                    "Customer",
                    "select",
                    True,
                    [
                        (c.external_id, f"{c.name} ({c.external_id})")
                        for c in Customer.objects.all()
                    ],
                ),
                Field(
                    "products",
                    "Products",
                    "checkboxes",
                    True,
                    [(p.code, f"{p.name} ({p.code}, {p.family})") for p in products],
                ),
                Field(
                    "license_type",
                    "License type",
                    "select",
                    True,
                    [(t, t) for t in kind.scope.license_types or ("subscription", "term")],
                ),
                Field("region", "Region", "select", True, [(r, r) for r in REGIONS]),
            ],
        ),
        Section(
            "Period",
            [
                Field("start", "Start", "date", True),
                Field(
                    "end",
                    "End",
                    "date",
                    True,
                    help=f"At most {kind.max_duration_days} days, start and end included.",
                ),
            ],
        ),
        Section("Scope", scope),
        Section(
            "Financial impact",
            [
                Field(
                    "financials.currency", "Currency", "select", False, [(c, c) for c in CURRENCIES]
                ),
                *(
                    Field(
                        f"financials.{name}",
                        FINANCIAL_LABELS[name],
                        "number",
                        needed(f"financials.{name}"),
                    )
                    for name in ("list_value", "concession")
                ),  # fmt: skip
            ],
        ),
        Section(
            "Justification",
            [
                Field(path, label, "textarea", needed(path), help=prompt)
                for path, (label, prompt) in JUSTIFICATION.items()
            ],
        ),
        Section(
            "Expected outcome",
            [
                Field("outcomes.metric", "Measurable outcome (KPI)", "text", True),
                Field("outcomes.target", "Target", "text", True),
            ],
        ),
        Section(
            "Accountability and evidence",
            [
                Field(
                    "control_owner",
                    "Control owner",
                    "select",
                    True,
                    [(u.username, u.get_full_name() or u.username) for u in owners],
                    help="Stays accountable for the exception while it lasts.",
                ),
                *(
                    Field(
                        f"evidence.{name}",
                        name.replace("_", " ").capitalize(),
                        "file",
                        True,
                        help="One or more files (PDF, spreadsheet, document, image, CSV or "
                        "text), or describe it in words below.",
                    )
                    for name in kind.required_evidence
                ),
            ],
        ),
    ]


def body_from(type_name: str, post: Any) -> dict[str, Any]:
    """The request body a posted form stands for; blank answers are left out."""
    body: dict[str, Any] = {
        "type": type_name,
        "products": post.getlist("products"),
        "scope": {},
        "financials": {},
        "justification": {},
    }
    for name in ("customer", "license_type", "region", "start", "end", "control_owner"):
        if value := post.get(name, "").strip():
            body[name] = value
    for name in [*SCOPE_FIELDS, "financials.list_value", "financials.concession"]:
        if value := post.get(name, "").strip():
            section, key = name.split(".")
            body[section][key] = _number(value)
    evidence = {
        name.split(".", 1)[1]: text.strip()
        for name, text in post.items()
        if name.startswith("evidence_text.") and text.strip()
    }
    if evidence:
        body["evidence"] = evidence
    if currency := post.get("financials.currency", "").strip():
        body["financials"]["currency"] = currency
    for name in JUSTIFICATION:
        body["justification"][name.split(".")[1]] = post.get(name, "").strip()
    metric, target = post.get("outcomes.metric", "").strip(), post.get("outcomes.target", "")
    if metric or target.strip():
        body["outcomes"] = [{"metric": metric, "target": _number(target.strip())}]
    return body


def uploads_from(files: Any) -> list[services.Upload]:
    """The evidence files of a posted form (several per kind), each named by its kind."""
    return [
        services.Upload(name.split(".", 1)[1], f.name, f, f.content_type or "")
        for name, chosen in files.lists()
        if name.startswith("evidence.")
        for f in chosen
    ]


def fill(form: list[Section], values: Any, problems: list, pending=()) -> list[str]:
    """Put the posted `values`, the files kept for it (`pending`) and every problem at its
    field of `form`; return the messages of problems that have no field of their own."""
    by_field: dict[str, list[str]] = {}
    for p in problems:
        by_field.setdefault(field_of(p.field), []).append(p.message)
    for s in form:
        for f in s.fields:
            f.value = values.getlist(f.name) if f.widget == "checkboxes" else values.get(f.name, "")
            f.errors = by_field.pop(f.name, [])
            if f.widget == "file":
                kind = f.name.split(".", 1)[1]
                f.pending = [p for p in pending if p.kind == kind]
                f.text = values.get(f"evidence_text.{kind}", "")
    return [m for messages in by_field.values() for m in messages]


def field_of(path: str) -> str:
    """The form field a problem's path points at: `products[1]` -> products,
    `outcomes[0].metric` -> outcomes.metric, `outcomes` -> outcomes.metric."""
    base = path.split("[")[0]
    if base == "outcomes":
        rest = path.split("].", 1)
        return f"outcomes.{rest[1]}" if len(rest) == 2 else "outcomes.metric"
    return base


def _number(text: str) -> Any:
    """A number when the text is one; otherwise the text, for validation to name."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


# What a problem's field is called where the person sees it (the form's labels).
LABELS = {
    "type": "Type", "customer": "Customer", "products": "Products",
    "license_type": "License type", "region": "Region", "start": "Start", "end": "End",
    "control_owner": "Control owner", "outcomes.metric": "Measurable outcome (KPI)",
    "outcomes.target": "Target", "financials.currency": "Currency",
    **SCOPE_FIELDS,
    **{f"financials.{k}": v for k, v in FINANCIAL_LABELS.items()},
    **{path: label for path, (label, _prompt) in JUSTIFICATION.items()},
    "decision": "Decision", "comment": "Comment", "checks": "Checklist",
    "reason": "Reason", "rationale": "Rationale", "score": "Score", "dimension": "Dimension",
    "contact_email": "Customer contact address", "cc": "Copy to", "kind": "Evidence",
    "file": "File", "filename": "File name", "content_type": "File type",
}  # fmt: skip


def label_of(path: str) -> str:
    """A problem's field in words: `justification.benefit` -> Business benefit,
    `conditions[0].due` -> Condition due, `evidence.usage_forecast` -> Usage forecast."""
    if path.startswith("conditions"):
        rest = path.split("].", 1)
        return f"Condition {rest[1].replace('_', ' ')}" if len(rest) == 2 else "Condition"
    if path.startswith("evidence."):
        return path.split(".", 1)[1].replace("_", " ").capitalize()
    found = LABELS.get(field_of(path)) or LABELS.get(path)
    return found or path.split(".")[-1].replace("_", " ").capitalize()
