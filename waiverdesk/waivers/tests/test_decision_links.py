"""Deciding from the email (A7): the "waiting for your decision" email carries links that
open a confirmation page for exactly that step, person, round and version; only the person
it was sent to, signed in, decides, once, by confirming; never on a GET."""

import json
import re
from datetime import timedelta

import pytest

from waiverdesk.audit.models import AuditEntry
from waiverdesk.notifications.models import Message
from waiverdesk.testing import NOW, client_for, email_text, request_body
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Approval

LATER = NOW + timedelta(hours=1)


pytestmark = pytest.mark.usefixtures("mail_and_a_fixed_clock")


def links_for(name: str, ref: str, event: str = "waiver.step_opened") -> dict[str, str]:
    """The decision links in `name`'s latest email of `event` about `ref`, by label."""
    body = email_text(Message.objects.filter(event=event, object_ref=ref,
                                             recipient=f"{name}@example.com").last())  # fmt: skip
    found = dict(re.findall(r"^  (Approve|Reject|Request changes): (\S+)$", body, re.M))
    return {label: url.removeprefix("http://127.0.0.1:8000") for label, url in found.items()}


def filed(world, **changes) -> str:
    return services.create(request_body(submit=True, **changes), world["rita"], now=NOW).reference


def decided(ref: str) -> list[tuple[str, str]]:
    return list(Approval.objects.filter(waiver__reference=ref)
                .values_list("user__username", "decision"))  # fmt: skip


def test_the_approver_opens_the_link_signs_in_and_confirms(world, settings):
    settings.BASE_URL = "http://127.0.0.1:8000"
    ref = filed(world)
    links = links_for("mona", ref)
    assert set(links) == {"Approve", "Reject", "Request changes"}
    anonymous = client_for("anonymous").get(links["Approve"])
    assert anonymous.status_code == 302 and "/sign-in/" in anonymous["Location"]
    assert "next=" in anonymous["Location"]
    mona = client_for("mona")
    page = mona.get(links["Approve"])
    assert page.status_code == 200 and "Approve WVR-2027-00001?" in page.content.decode()
    assert decided(ref) == []  # a GET never decides
    done = mona.post(links["Approve"], {"comment": "fine"})
    assert done.status_code == 302 and done["Location"].endswith(f"/requests/{ref}/")
    assert decided(ref) == [("mona", "approve")]
    entry = AuditEntry.objects.get(object_ref=ref, action="waiver.decided")
    assert json.loads(entry.payload)["by_email_link"] is True
    again = mona.post(links["Approve"], {"comment": "twice"})
    assert again.status_code == 409 and "has been used already" in again.content.decode()


def test_another_person_cannot_use_a_link_sent_to_someone_else(world, settings):
    settings.BASE_URL = "http://127.0.0.1:8000"
    ref = filed(world)
    link = links_for("mona", ref)["Approve"]
    mark = client_for("mark")  # a sales manager too, with links of his own
    assert mark.get(link).status_code == 403
    refused = mark.post(link, {"comment": ""})
    assert refused.status_code == 403 and "sent to someone else" in refused.content.decode()
    assert decided(ref) == []


def test_a_reject_link_asks_why_and_decides_nothing_without_it(world, settings):
    settings.BASE_URL = "http://127.0.0.1:8000"
    ref = filed(world)
    link = links_for("mona", ref)["Reject"]
    mona = client_for("mona")
    refused = mona.post(link, {"comment": "  "})
    assert refused.status_code == 422 and "say why" in refused.content.decode()
    assert decided(ref) == []
    mona.post(link, {"comment": "out of policy"})
    assert decided(ref) == [("mona", "reject")] and services.get(ref).status == "rejected"


def test_a_link_for_an_earlier_round_says_so_and_offers_the_current_request(world, settings):
    settings.BASE_URL = "http://127.0.0.1:8000"
    ref = filed(world)
    old = links_for("mona", ref)["Approve"]
    services.edit(ref, world["rita"], {"scope": {"seats": 70}}, now=LATER)  # material
    mona = client_for("mona")
    page = mona.get(old)
    text = page.content.decode()
    assert page.status_code == 409 and "for an earlier round" in text
    assert "Decide on the request as it is now" in text
    assert mona.post(old, {"comment": ""}).status_code == 409 and decided(ref) == []
    fresh = links_for("mona", ref)["Approve"]  # the new round's email
    assert fresh != old and mona.post(fresh, {}).status_code == 302
    assert decided(ref) == [("mona", "approve")]


def test_a_link_to_a_request_that_changed_since_is_refused(world, settings):
    settings.BASE_URL = "http://127.0.0.1:8000"
    ref = filed(world)
    link = links_for("mona", ref)["Approve"]
    why = {"benefit": "Keeps 50 analysts working, all of them"}
    services.edit(ref, world["rita"], {"justification": why}, now=LATER)  # not material
    assert services.get(ref).round == 1
    refused = client_for("mona").post(link, {})
    assert refused.status_code == 409 and "has changed since" in refused.content.decode()
    assert decided(ref) == []


def test_an_altered_link_is_refused(world, settings):
    settings.BASE_URL = "http://127.0.0.1:8000"
    ref = filed(world)
    link = links_for("mona", ref)["Approve"]
    tampered = link[:-6] + ("A" if link[-6] != "A" else "B") + link[-5:]
    for where in (tampered, "/decide/nonsense/", "/decide/%ff%fe/"):
        page = client_for("mona").get(where)
        assert page.status_code == 400 and "not valid" in page.content.decode()
        assert client_for("mona").post(where, {}).status_code == 400
    assert decided(ref) == []


def test_a_link_of_a_request_no_longer_under_review_decides_nothing(world, settings):
    settings.BASE_URL = "http://127.0.0.1:8000"
    ref = filed(world)
    link = links_for("mona", ref)["Approve"]
    services.withdraw(ref, world["rita"], now=LATER)
    page = client_for("mona").get(link)
    assert page.status_code == 409 and "withdrawn" in page.content.decode()
    assert client_for("mona").post(link, {}).status_code == 409 and decided(ref) == []
