"""Local passwords: changed by their holder (the current one first), reset by a single-use
emailed link that never says whether an address is known; every new password checked and
audited; none under WAIVERDESK_OIDC_ONLY but the break-glass account's."""

import io
import re

from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from waiverdesk.audit.models import AuditEntry
from waiverdesk.directory import services as directory
from waiverdesk.directory.models import Profile
from waiverdesk.notifications.models import Message
from waiverdesk.testing import client_for, pseudonym
from waiverdesk.waivers.management.commands.demo import DEMO_PASSWORD

OLD, NEW = "an old long passphrase", "a brand new passphrase"


def test_a_person_changes_their_password_and_their_other_sessions_end(world):
    directory.set_password("rita", OLD)
    here, elsewhere = client_for("rita"), client_for("rita")
    wrong = here.post("/password/", {"current": "not it", "new": NEW, "again": NEW})
    assert (
        wrong.status_code == 422 and "this is not your current password" in wrong.content.decode()
    )
    weak = here.post("/password/", {"current": OLD, "new": "short", "again": "short"})
    assert weak.status_code == 422 and "too short" in weak.content.decode()
    assert here.post("/password/", {"current": OLD, "new": NEW, "again": NEW}).status_code == 302
    assert User.objects.get(username="rita").check_password(NEW)
    assert here.get("/settings/").status_code == 200  # this session goes on
    assert elsewhere.get("/settings/").status_code == 302  # the other one ended
    assert AuditEntry.objects.filter(action="user.password_set", actor=pseudonym("rita")).exists()


def test_a_reset_link_is_emailed_works_once_and_the_answer_says_nothing_of_the_address(world):
    User.objects.filter(username="rita").update(email="rita@vendor.example")
    anyone = client_for("anonymous")
    known = anyone.post("/password/reset/", {"email": "RITA@vendor.example"}).content.decode()
    unknown = anyone.post("/password/reset/", {"email": "nobody@x.example"}).content.decode()
    assert "is on its way" in known and "is on its way" in unknown
    (email,) = Message.objects.filter(event="user.password_reset")
    assert email.recipient == "rita@vendor.example"
    link = re.search(r"http://\S+/password/reset/\S+/", email.body)[0].split("/", 3)[3]
    page = anyone.get(f"/{link}")
    assert page.status_code == 200 and "Choose a new password for rita" in page.content.decode()
    assert anyone.post(f"/{link}", {"new": NEW, "again": NEW}).status_code == 302
    assert User.objects.get(username="rita").check_password(NEW)
    again = anyone.post(f"/{link}", {"new": OLD, "again": OLD})
    assert again.status_code == 400 and "has been used or has expired" in again.content.decode()
    assert anyone.get("/password/reset/abc/def/").status_code == 400


def test_with_passwords_turned_off_only_the_break_glass_admin_has_one_to_reset(world, settings):
    settings.OIDC_ONLY, settings.BREAK_GLASS_USER = True, "adam"
    User.objects.filter(username__in=["rita", "adam"]).update(email="x@vendor.example")
    client_for("anonymous").post("/password/reset/", {"email": "x@vendor.example"})
    assert [m.object_ref for m in Message.objects.filter(event="user.password_reset")] == ["adam"]
    assert "no password here" in client_for("rita").get("/password/").content.decode()


def test_outside_a_sandbox_the_demo_password_is_changed_at_first_sign_in(db, settings):
    settings.SANDBOX = settings.DEVELOPMENT = False
    call_command("demo", stdout=io.StringIO())
    browser = Client()
    signed_in = browser.post("/sign-in/", {"username": "rita", "password": DEMO_PASSWORD})
    assert signed_in.status_code == 302
    assert browser.get("/requests/")["Location"] == "/password/"
    page = browser.get("/password/").content.decode()
    assert "choose your own before going on" in page
    browser.post("/password/", {"current": DEMO_PASSWORD, "new": NEW, "again": NEW})
    assert browser.get("/requests/").status_code == 200
    assert not Profile.objects.get(user__username="rita").must_change_password


def test_in_development_mode_the_demo_password_stays(db, settings):
    settings.DEVELOPMENT = True
    call_command("demo", stdout=io.StringIO())
    browser = Client()
    browser.post("/sign-in/", {"username": "rita", "password": DEMO_PASSWORD})
    assert browser.get("/requests/").status_code == 200
