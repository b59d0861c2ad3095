"""After approval: the policy's implementation tasks, who may do them, and the revert."""

from datetime import date, timedelta

import pytest

from waiverdesk.core.errors import Denied
from waiverdesk.testing import NOW, request_body
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Task


@pytest.fixture
def approved(world):
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    services.decide(ref, world["mona"], "approve", now=NOW)
    return services.get(ref)


def test_approval_creates_the_policy_tasks_with_owners_and_due_dates(approved):
    tasks = {t.name: t for t in approved.tasks.all()}
    assert set(tasks) == {
        "update_entitlements",
        "update_billing",
        "notify_customer",
        "update_customer_records",
        "post_implementation_review",
    }
    assert tasks["notify_customer"].owner.username == "rita"
    assert tasks["post_implementation_review"].owner.username == "olga"
    assert tasks["update_billing"].owner is None and tasks["update_billing"].role == "implementer"
    assert tasks["update_billing"].due == NOW.date() + timedelta(days=2)
    assert not tasks["update_customer_records"].required


def test_a_task_is_done_by_its_owner_or_a_holder_of_its_role_only(approved, world):
    notice = approved.tasks.get(name="notify_customer")
    billing = approved.tasks.get(name="update_billing")
    for who, task in (("sam", notice), ("ivan", notice), ("charlie", billing), ("rita", billing)):
        with pytest.raises(Denied):
            services.complete_task(task.pk, world[who], now=NOW)
    services.complete_task(notice.pk, world["rita"], "sent by email", now=NOW)
    services.complete_task(billing.pk, world["ivan"], now=NOW)
    with pytest.raises(Denied, match="done already"):
        services.complete_task(billing.pk, world["ivan"], now=NOW)
    notice.refresh_from_db()
    assert (notice.status, notice.done_by.username) == ("done", "rita")
    assert notice.note == "sent by email"


def test_the_waiver_takes_effect_only_when_its_start_has_come_and_its_required_work_is_done(
    approved, world
):
    start = NOW.replace(month=2, day=1)
    for task in approved.tasks.filter(required=True).exclude(name="update_billing"):
        services.complete_task(task.pk, task.owner or world["ivan"], now=NOW)
    assert services.sweep(now=start) == []
    services.complete_task(approved.tasks.get(name="update_billing").pk, world["ivan"], now=NOW)
    assert services.sweep(now=start) == [(approved.reference, "activate")]


def test_an_exception_that_ends_gets_one_revert_task(approved, world):
    after_end = NOW.replace(month=3, day=16)
    services.sweep(now=after_end)
    services.sweep(now=after_end)
    revert = approved.tasks.get(name="revert_entitlements")
    assert (revert.role, revert.due) == ("implementer", date(2027, 3, 17))
    assert Task.objects.filter(name="revert_entitlements").count() == 1
