"""A policy in plain language: its conditions read as sentences, its rules as an FAQ (K1)."""

from __future__ import annotations

import re

from .policy import PolicyDocument

FACTS = {
    "request.type": "the type",
    "request.kind": "the kind of request",
    "request.region": "the region",
    "request.license_type": "the license type",
    "request.families": "the product families",
    "request.product_risk": "the product risk (1 low, 3 high)",
    "request.duration_days": "the duration in days",
    "request.review_window_days": "the type's review window",
    "request.max_duration_days": "the type's longest duration",
    "request.renewal_count": "the number of renewals",
    "request.customer.exceptions_last_365_days": "the customer's exceptions in the last year",
    "request.scope.seats": "the seats",
    "request.scope.quantity": "the quantity",
    "request.scope.discount_pct": "the discount (%)",
    "request.financials.list_value": "the list value",
    "request.financials.concession": "the concession",
    "request.financials.concession_pct": "the concession as a % of list value",
    "request.financials.revenue_effect": "the revenue effect",
    "request.financials.list_value_base": "the list value in the base currency",
    "request.financials.concession_base": "the concession in the base currency",
    "request.financials.revenue_effect_base": "the revenue effect in the base currency",
    "risk.financial": "the financial risk",
    "risk.operational": "the operational risk",
    "risk.reputational": "the reputational risk",
    "risk.compliance": "the compliance risk",
    "risk.max": "the highest risk score",
    "risk.total": "the sum of the risk scores",
    "risk.overall": "the overall risk",
    "risk.level": "the risk level (1 low, 4 critical)",
}
OPERATORS = {
    ">=": "is {} or more",
    ">": "is more than {}",
    "<=": "is {} or less",
    "<": "is less than {}",
    "==": "is {}",
    "!=": "is not {}",
}
_ATOM = re.compile(
    r"^(?P<left>[\w.]+|'[^']*')\s*(?P<op>>=|<=|==|!=|>|<|in)\s*(?P<right>[\w.]+|'[^']*')$"
)


def condition(expression: str) -> str | None:
    """`expression` as a sentence, or None when it is beyond these simple forms."""
    text = expression.strip()
    if text == "true":
        return "always"
    if text == "false":
        return "never"
    if "(" in text:
        return None
    alternatives = []
    for alternative in text.split("||"):
        parts = [_atom(a.strip()) for a in alternative.split("&&")]
        if None in parts:
            return None
        alternatives.append(" and ".join(parts))
    return ", or ".join(alternatives)


def _atom(text: str) -> str | None:
    match = _ATOM.match(text)
    if not match:
        return None
    left, op, right = match["left"], match["op"], match["right"]
    if op == "in":
        return f"{_term(right)} include {_value(left)}" if right in FACTS else None
    if left not in FACTS:
        return None
    return f"{FACTS[left]} " + OPERATORS[op].format(_term(right))


def _term(text: str) -> str:
    return FACTS.get(text) or _value(text)


def _value(text: str) -> str:
    if text.startswith("'"):
        return text.strip("'").replace("_", " ")
    try:
        number = float(text)
    except ValueError:
        return text
    return f"{number:,.0f}" if number == int(number) else f"{number:,}"


def faq(document: PolicyDocument) -> list[tuple[str, str]]:
    """Questions a requester or approver asks, answered from the policy document."""
    tiers = document.tiers
    answers = [
        (
            "Which exceptions can I ask for?",
            "; ".join(f"{t.label} ({name})" for name, t in document.types.items()) + ".",
        ),
        (
            "Who approves my request?",
            "Every request goes through the tiers whose condition it meets, most junior first: "
            + "; ".join(
                f"{t.label or t.name} ({t.approvers} approver{'s' * (t.approvers > 1)}, "
                f"within {t.sla_hours} hours) when {condition(t.when) or t.when}"
                for t in tiers
            )
            + ".",
        ),
        (
            "Can I approve a request I made, or one for a customer whose account I own?",
            "No. Nobody approves their own request"
            + (
                ", and the account owner of the customer may not decide on its exceptions"
                if "account_owner" in document.separation_of_duties.conflicted
                else ""
            )
            + ". One person fills one step of a route.",
        ),
        (
            "What makes a request need more approvals?",
            " ".join(
                f"When {condition(t.when) or t.when} ({t.flag}), "
                f"it also needs {', '.join(t.add_tiers) or 'no more tiers'}."
                for t in document.triggers
            )
            or "Nothing beyond the tiers' own conditions.",
        ),
        (
            "When will I be reminded that an exception ends?",
            "The requester and the control owner are reminded "
            + ", ".join(str(d) for d in document.reminders.days_before_end)
            + " days before the end. At the end the exception expires by itself.",
        ),
        (
            "Who can end an exception early?",
            ", ".join(r.replace("_", " ") for r in document.termination.roles) + ", with a reason.",
        ),
    ]
    for t in document.types.values():
        needs = [f.split(".")[-1].replace("_", " ") for f in t.required_fields]
        evidence = [e.replace("_", " ") for e in t.required_evidence]
        answers.append(
            (
                f"What does a {t.label.lower()} request need?",
                f"It lasts at most {t.max_duration_days} days. "
                + (f"Answer: {', '.join(needs)}. " if needs else "")
                + (f"Attach: {', '.join(evidence)}. " if evidence else "")
                + (f"At the end: {t.at_end}." if t.at_end else ""),
            )
        )
    return answers


def changes(old: PolicyDocument, new: PolicyDocument) -> list[str]:
    """What changed from `old` to `new`, in plain language (K2): types, tiers and triggers
    added, removed or changed, conditions read as sentences, then any other setting."""
    said: list[str] = []
    said += _named_changes("exception type", old.types, new.types, lambda t: t.label)
    said += _named_changes("approval tier", {t.name: t for t in old.tiers},
                           {t.name: t for t in new.tiers}, lambda t: t.label or t.name)  # fmt: skip
    said += _named_changes("trigger", {t.name: t for t in old.triggers},
                           {t.name: t for t in new.triggers}, lambda t: t.name)  # fmt: skip
    before = old.model_dump(exclude={"types", "tiers", "triggers", "name"})
    after = new.model_dump(exclude={"types", "tiers", "triggers", "name"})
    said += [_setting(path, a, b) for path, a, b in _leaf_changes(before, after)]
    return said


def _named_changes(noun: str, old: dict, new: dict, label) -> list[str]:
    said = [f"New {noun}: {label(new[n])} ({n})." for n in new if n not in old]
    said += [f"Removed {noun}: {label(old[n])} ({n})." for n in old if n not in new]
    for name in (n for n in new if n in old and new[n] != old[n]):
        for path, a, b in _leaf_changes(old[name].model_dump(), new[name].model_dump()):
            said.append(f"{label(new[name])}: {_setting(path, a, b)}")
    return said


def _leaf_changes(old, new, path: str = "") -> list[tuple[str, object, object]]:
    if isinstance(old, dict) and isinstance(new, dict):
        pairs = [(key, old.get(key), new.get(key)) for key in dict.fromkeys([*old, *new])]
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        pairs = [(f"rule {i}", a, b) for i, (a, b) in enumerate(zip(old, new, strict=True), 1)]
    else:
        return [] if old == new else [(path, old, new)]
    return [change for key, a, b in pairs
            for change in _leaf_changes(a, b, f"{path}.{key}" if path else str(key))]  # fmt: skip


def _setting(path: str, old, new) -> str:
    words = path.replace(".", " ").replace("_", " ")
    if path.endswith("when") and isinstance(new, str):
        where = words.removesuffix("when").strip()
        sentence = f"applies when {condition(new) or new} (was: {condition(old or '') or old})."
        return f"{where}: {sentence}" if where else sentence
    if isinstance(old, list) or isinstance(new, list):
        items = [*(old or []), *(new or [])]
        if all(isinstance(i, str | int | float) for i in items):
            listed = lambda values: ", ".join(map(str, values)) or "none"  # noqa: E731
            return f"{words} is now {listed(new or [])} (was {listed(old or [])})."
        return f"{words} changed ({len(old or [])} entries before, {len(new or [])} now)."
    if old is None:
        return f"{words} is now {new}."
    if new is None:
        return f"{words} is no longer set (was {old})."
    return f"{words} is now {new} (was {old})."
