"""The write path of a waiver.

Every function here is one transaction: it locks the waiver row (or updates
it conditionally), applies the rules of the pure core, and appends the audit
entry last. Views, API endpoints, commands and jobs only call these. The
modules follow the life of a request: filing, routing (its rounds and who is
asked), deciding, chasing (late steps), successors (renewal, amendment), ending,
implementation and sweeping (the clock: activation, expiry, lapse); separation
holds who may do what, delegating who decides for an approver who is away,
evaluating what the policy sees, guards what every write shares.
"""

from . import delegating
from .chasing import chase
from .deciding import decide, override_risk, void_conflicted_approvals
from .ending import terminate, withdraw
from .evaluating import (
    Simulation,
    evaluate_waiver,
    facts,
    facts_of,
    overrides_of,
    read_with_policy,
    simulate,
)
from .filing import (
    Upload,
    attach,
    create,
    edit,
    next_reference,
    prepare_references,
    startable_types,
    submit,
)
from .guards import NotFound, get, lock, policy_of, stakeholders, with_parties
from .implementation import complete_task, may_do
from .separation import allowed, deciders, may_act, require_attester, step_for, step_roles
from .successors import amend, renew
from .sweeping import due_for_clock, sweep

__all__ = [
    "NotFound",
    "Simulation",
    "Upload",
    "allowed",
    "amend",
    "attach",
    "chase",
    "complete_task",
    "create",
    "decide",
    "deciders",
    "delegating",
    "void_conflicted_approvals",
    "due_for_clock",
    "edit",
    "evaluate_waiver",
    "facts",
    "facts_of",
    "get",
    "lock",
    "may_act",
    "may_do",
    "next_reference",
    "override_risk",
    "overrides_of",
    "policy_of",
    "prepare_references",
    "read_with_policy",
    "renew",
    "require_attester",
    "simulate",
    "stakeholders",
    "startable_types",
    "step_for",
    "step_roles",
    "submit",
    "sweep",
    "terminate",
    "with_parties",
    "withdraw",
]
