"""People over their time here, from the command line: roles given and taken away,
deactivation that ends sessions and API tokens from the next request on and names the work
to hand over, reactivation."""

import io
import json

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from waiverdesk.api import services as tokens
from waiverdesk.audit.models import AuditEntry
from waiverdesk.directory import services as directory
from waiverdesk.directory.models import Customer
from waiverdesk.notifications.models import Message
from waiverdesk.testing import NOW, as_read, client_for, pseudonym, request_body
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Waiver


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip()


def roles(name: str) -> set[str]:
    return set(User.objects.get(username=name).groups.values_list("name", flat=True))


def test_roles_are_given_and_taken_away_and_each_change_is_audited(world):
    assert run("user", "roles", "mona", "--add", "deal_desk", "--remove", "sales_manager") == (
        "mona: deal_desk"
    )
    assert roles("mona") == {"deal_desk"}
    entry = AuditEntry.objects.filter(action="user.roles_changed").latest("seq")
    assert entry.object_ref == pseudonym("mona")
    said = json.loads(entry.payload)
    assert said["added"] == ["deal_desk"] and said["removed"] == ["sales_manager"]
    count = AuditEntry.objects.count()
    run("user", "roles", "mona", "--add", "deal_desk")  # already held: nothing changes
    assert AuditEntry.objects.count() == count
    with pytest.raises(CommandError, match="roles: no role named wizard"):
        run("user", "roles", "mona", "--add", "wizard")
    with pytest.raises(CommandError, match="deal_desk: both added and removed"):
        run("user", "roles", "mona", "--add", "deal_desk", "--remove", "deal_desk")
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        run("user", "roles", "nobody", "--add", "deal_desk")
    assert roles("mona") == {"deal_desk"}


def test_a_deactivated_person_is_out_at_the_next_request_and_their_work_is_named(world):
    User.objects.filter(username="adam").update(email="adam@vendor.example")
    waiver = services.create(request_body(submit=True), world["rita"], now=NOW)
    assert waiver.control_owner.username == "olga"
    browser = client_for("olga")
    assert browser.get("/settings/").status_code == 200
    _, raw = tokens.create_token(world["olga"], "laptop")
    api = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert browser.get("/api/v1/waivers", **api).status_code == 200

    said = run("user", "deactivate", "olga", "--reason", "left the company")
    assert "olga may no longer sign in" in said
    assert f"{waiver.reference}: control owner of this submitted request" in said
    assert browser.get("/settings/").status_code == 302  # the session is over: back to sign-in
    assert client_for("anonymous").get("/api/v1/waivers", **api).status_code == 401
    entry = AuditEntry.objects.filter(action="user.deactivated").latest("seq")
    recorded = as_read(entry)[1]
    assert recorded["reason"] == "left the company"
    assert recorded["tokens_revoked"] == 1 and recorded["sessions_ended"] == 1
    email = Message.objects.get(event="user.deactivated")
    assert email.recipient == "adam@vendor.example" and waiver.reference in email.body
    assert "(deactivated)" in run("user", "list")

    run("user", "deactivate", "olga")  # again: nothing more happens or is recorded
    assert AuditEntry.objects.filter(action="user.deactivated").count() == 1

    assert "may sign in again" in run("user", "reactivate", "olga")
    assert client_for("olga").get("/settings/").status_code == 200
    assert client_for("anonymous").get("/api/v1/waivers", **api).status_code == 401  # stays
    assert AuditEntry.objects.filter(
        action="user.reactivated", object_ref=pseudonym("olga")
    ).exists()


def test_an_admin_changes_roles_and_offboards_a_control_owner_in_the_browser_pages(world):
    waiver = services.create(request_body(submit=True), world["rita"], now=NOW)
    adam = client_for("adam")
    listed = adam.get("/people/?q=olg").content.decode()
    assert 'href="/people/olga/"' in listed and "1 person found" in listed
    page = adam.get("/people/olga/").content.decode()
    work = page.split('id="work"')[1].split("</ul>")[0]
    assert waiver.reference in work and "control owner" in work

    adam.post("/people/mona/change", {"action": "roles", "roles": ["sales_manager", "deal_desk"]})
    assert roles("mona") == {"sales_manager", "deal_desk"}
    assert AuditEntry.objects.filter(action="user.roles_changed", actor=pseudonym("adam")).exists()
    answer = adam.post("/people/mona/change", {"action": "roles", "roles": ["wizard"]},
                       follow=True)  # fmt: skip
    assert "no role named wizard" in answer.content.decode()
    assert roles("mona") == {"sales_manager", "deal_desk"}

    done = adam.post("/people/olga/change", {"action": "deactivate", "reason": "left"},
                     follow=True).content.decode()  # fmt: skip
    assert "olga may no longer sign in" in done and "1 item(s) to hand over" in done
    assert not User.objects.get(username="olga").is_active
    refused = adam.post("/people/adam/change", {"action": "deactivate"}, follow=True)
    assert refused.status_code == 403 and User.objects.get(username="adam").is_active
    assert (
        client_for("rita").post("/people/olga/change", {"action": "reactivate"}).status_code == 403
    )
    adam.post("/people/olga/change", {"action": "reactivate"})
    assert User.objects.get(username="olga").is_active


def test_an_admin_hands_a_leavers_work_over_each_item_checked_and_audited(world):
    directory.add_user("otto", ["control_owner"])
    waiver = services.create(request_body(submit=True), world["rita"], now=NOW)
    adam = client_for("adam")
    # rita may not take over a control of her own request: refused, and said why.
    said = adam.post("/people/olga/change", {"action": "hand_over", "to": "rita"},
                     follow=True).content.decode()  # fmt: skip
    assert f"{waiver.reference} was not handed over" in said
    assert Waiver.objects.get(pk=waiver.pk).control_owner.username == "olga"
    said = adam.post("/people/olga/change", {"action": "hand_over", "to": "otto"},
                     follow=True).content.decode()  # fmt: skip
    assert "Handed over to otto" in said
    assert Waiver.objects.get(pk=waiver.pk).control_owner.username == "otto"
    entry = AuditEntry.objects.filter(action="work.handed_over").latest("seq")
    assert as_read(entry)[0] == "adam" and entry.object_ref == waiver.reference
    # mark's customer account goes through the customer's own change (audited there).
    adam.post("/people/mark/change", {"action": "hand_over", "to": "mona"})
    assert Customer.objects.get(external_id="ACME-001").account_owner.username == "mona"
    assert "answerable for nothing open" in adam.get("/people/mark/").content.decode()


def test_an_admin_revokes_one_of_a_persons_tokens_from_their_page(world):
    token, raw = tokens.create_token(world["olga"], "laptop")
    adam = client_for("adam")
    assert f"Revoke {token.prefix}…" in adam.get("/people/olga/").content.decode()
    adam.post("/people/olga/change", {"action": "revoke_token", "token": token.pk})
    api = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert client_for("anonymous").get("/api/v1/waivers", **api).status_code == 401
    assert AuditEntry.objects.filter(action="token.revoked", actor=pseudonym("adam")).exists()
    other, _ = tokens.create_token(world["rita"], "hers")  # not olga's: not found on her page
    wrong = adam.post("/people/olga/change", {"action": "revoke_token", "token": other.pk})
    assert wrong.status_code == 404
    assert adam.post("/people/olga/change", {"action": "revoke_token", "token": "x"}
                     ).status_code == 404  # fmt: skip
