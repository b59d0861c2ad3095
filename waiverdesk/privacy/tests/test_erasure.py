"""Erasing a person or a contact: gone from every table in clear, the trail and its signed
checkpoints still verify (with the standalone verifier too), and what was erased reads
"erased on DATE"; refused under a legal hold, and said in plain words."""

import io
import json
import re

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from waiverdesk.audit import services as audit
from waiverdesk.audit.models import AuditEntry, Subject
from waiverdesk.core.errors import Denied, Invalid
from waiverdesk.directory import people, provisioning
from waiverdesk.directory import services as directory
from waiverdesk.directory.models import Customer
from waiverdesk.privacy import services as privacy
from waiverdesk.testing import NOW, as_read, client_for, request_body
from waiverdesk.waivers import services

COMMENT = "Quillfeather signs off: strategic for the spring renewal"
EMAIL = "mona.quillfeather@vendor.example"


def dump() -> str:
    """Every live table and the trail, as `dumpdata` writes them."""
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue()


@pytest.fixture
def mona_decided(world):
    User.objects.filter(username="mona").update(
        first_name="Mona", last_name="Quillfeather", email=EMAIL
    )
    ref = services.create(request_body(submit=True), world["rita"], now=NOW).reference
    services.decide(ref, User.objects.get(username="mona"), "approve", COMMENT, now=NOW)
    client_for("mona").get("/settings/")  # a session of hers
    audit.checkpoint()
    return ref


def test_an_erased_person_is_in_no_table_in_clear_and_the_trail_still_verifies(
    mona_decided,
    standalone,
    tmp_path,
):
    # Others whose names look like hers stay as they are.
    directory.add_user("mona.rossi", ["requester"], "mona.rossi@vendor.example")
    User.objects.filter(username="mona.rossi").update(first_name="Mona", last_name="Rossi")
    directory.add_customer("MONA-CO", "Mona's cousin", "EMEA")
    before = dump()
    assert EMAIL in before and COMMENT in before  # the test looks for what is there
    said = io.StringIO()
    call_command("privacy", "erase", "mona", "--why", "request DP-41", "--yes", "--as", "adam",
                 stdout=said)  # fmt: skip
    pseudonym = Subject.objects.get(erased_at__isnull=False).pseudonym
    assert said.getvalue().strip() == f"erased mona: the trail and the records now say {pseudonym}"

    after = dump()
    for text in (EMAIL, "Quillfeather", COMMENT):
        assert text not in after, text
    assert not re.search(r"(?<![\w.@+-])mona(?![\w@-]|\.\w)", after)
    assert User.objects.filter(username="mona.rossi", first_name="Mona").exists()
    assert Customer.objects.filter(external_id="MONA-CO", name="Mona's cousin").exists()
    assert pseudonym in after
    assert User.objects.get(username=pseudonym).is_active is False

    # The chain, the checkpoint signed before the erasure and an export still verify.
    assert audit.verify().ok
    audit.checkpoint()
    path = tmp_path / "trail.jsonl"
    call_command("audit", "export", "-o", str(path))
    key = audit.public_key_hex(audit.signing_key())
    code, out = standalone("trail", path, "--key", key)
    assert code == 0, out

    # What she wrote reads "erased on DATE"; she is named by her pseudonym.
    page = client_for("rita").get(f"/requests/{mona_decided}/").content.decode()
    assert f"{pseudonym}</strong>" in page and "erased on " in page
    erased = AuditEntry.objects.get(action="privacy.erased")
    assert as_read(erased) == ("adam", {"subject": pseudonym, "why": "request DP-41",
                                        "kind": "person"})  # fmt: skip
    assert "mona" not in erased.canonical.replace(pseudonym, "")

    # Once only: by her old name nobody is found, by her pseudonym she is erased already.
    with pytest.raises(Invalid, match="no person or contact named 'mona'"):
        privacy.erase("mona", "system", "again")
    with pytest.raises(Invalid, match="already erased on "):
        privacy.erase(pseudonym, "system", "again")


def test_the_command_asks_before_erasing_and_only_admins_may(mona_decided, world):
    with pytest.raises(CommandError, match="add --yes"):
        call_command("privacy", "erase", "mona", "--why", "request")
    with pytest.raises(CommandError, match="why"):
        call_command("privacy", "erase", "mona", "--why", " ", "--yes")
    with pytest.raises(CommandError, match="say what is held"):
        call_command("privacy", "hold", "--reason", "audit", "--owner", "audrey")
    with pytest.raises(Denied, match="only admin may erase personal data"):
        privacy.erase("mona", world["audrey"], "request")
    assert User.objects.filter(username="mona", email=EMAIL).exists()
    assert not AuditEntry.objects.filter(action="privacy.erased").exists()


def test_a_legal_hold_keeps_a_person_until_it_is_released(mona_decided, world):
    call_command("privacy", "hold", "waiver", mona_decided, "--reason", "litigation 2027-3",
                 "--owner", "audrey", "--as", "adam")  # fmt: skip
    with pytest.raises(Invalid) as refused:
        privacy.erase("mona", world["adam"], "request")
    problem = refused.value.problems[0]
    assert (problem.field, problem.code) == ("person", "held")
    assert (
        problem.message.startswith("kept by legal hold #")
        and "litigation 2027-3" in problem.message
    )
    out = io.StringIO()
    call_command("privacy", "holds", stdout=out)
    assert f"waiver {mona_decided}" in out.getvalue() and "audrey" in out.getvalue()
    hold = privacy.LegalHold.objects.get()
    call_command("privacy", "release", str(hold.pk), "--as", "audrey")
    with pytest.raises(CommandError, match="was released on"):
        call_command("privacy", "release", str(hold.pk), "--as", "audrey")
    privacy.erase("mona", world["adam"], "request")
    actions = [e.action for e in AuditEntry.objects.filter(action__startswith="privacy.")]
    assert actions == ["privacy.hold_placed", "privacy.hold_released", "privacy.erased"]


def test_a_person_answerable_for_open_work_is_erased_once_it_is_handed_over(mona_decided, world):
    with pytest.raises(Invalid) as refused:
        privacy.erase("olga", world["adam"], "request")
    said = refused.value.problems[0].message
    assert said == (
        f"first hand over what they answer for: {mona_decided}, control owner of this approved "
        f"request; {mona_decided}, task: Review that the exception works as intended"
    )
    assert User.objects.get(username="olga").is_active
    directory.add_user("carl", ["control_owner"])
    people.hand_over("olga", "carl", "adam")
    assert privacy.erase("olga", world["adam"], "request").startswith("person-")


def test_placing_a_hold_says_every_problem_at_once(world):
    with pytest.raises(Invalid) as refused:
        privacy.hold("person", "nobody", " ", "ghost", world["adam"])
    assert {p.field for p in refused.value.problems} == {"target", "reason", "owner"}
    with pytest.raises(Denied):
        privacy.hold("customer", "ACME-001", "audit", "audrey", world["rita"])
    assert not privacy.LegalHold.objects.exists()


def test_a_customers_contact_is_erased_by_address(world):
    directory.add_customer(
        "INITECH-003", "Initech", "EMEA", contact_email="Bill.Lumbergh@initech.example"
    )
    pseudonym = privacy.erase("bill.lumbergh@initech.example", world["adam"], "request")
    assert pseudonym.startswith("contact-")
    assert Customer.objects.get(external_id="INITECH-003").contact_email == ""
    assert "lumbergh" not in dump().lower()
    assert audit.verify().ok
    with pytest.raises(Invalid) as again:  # nobody by that address any more, and no reason
        privacy.erase("bill.lumbergh@initech.example", world["adam"], "")
    assert [(p.field, p.code) for p in again.value.problems] == [
        ("person", "not_found"),
        ("why", "required"),
    ]


def test_the_privacy_page_erases_with_a_confirmation_and_places_holds(mona_decided):
    adam = client_for("adam")
    assert "Erase a person" in adam.get("/manage/privacy/").content.decode()
    refused = adam.post("/manage/privacy/erase", {"person": "mona", "why": "request"})
    assert refused.status_code == 422
    assert "tick the box: erasing cannot be undone" in refused.content.decode()
    assert User.objects.filter(username="mona").exists()
    unknown = adam.post("/manage/privacy/hold", {"on": "customer", "target": "NOPE",
                                                 "reason": "", "owner": "audrey"})  # fmt: skip
    page = unknown.content.decode()
    assert unknown.status_code == 422
    assert "no customer &#x27;NOPE&#x27;" in page and "say why the records must be kept" in page
    placed = adam.post("/manage/privacy/hold", {"on": "customer", "target": "GLOBEX-002",
                                                "reason": "audit 2027", "owner": "audrey"},
                       follow=True).content.decode()  # fmt: skip
    assert "placed" in placed and "customer GLOBEX-002" in placed
    held = adam.post("/manage/privacy/erase", {"person": "mona", "why": "request",
                                               "confirm": "yes"}).content.decode()  # fmt: skip
    assert "kept by legal hold #" in held  # she decided a Globex request
    hold = privacy.LegalHold.objects.get()
    adam.post(f"/manage/privacy/holds/{hold.pk}/release")
    erase = {"person": "mona", "why": "request", "confirm": "yes"}
    done = adam.post("/manage/privacy/erase", erase, follow=True).content.decode()
    assert "Erased: the records now say person-" in done
    assert client_for("audrey").get("/manage/privacy/").status_code == 200  # holds, not erasure
    assert "Erase a person" not in client_for("audrey").get("/manage/privacy/").content.decode()
    assert client_for("rita").get("/manage/privacy/").status_code == 403


def test_the_trail_names_people_by_pseudonym_and_seals_what_they_write(mona_decided):
    decided = AuditEntry.objects.get(action="waiver.decided")
    raw = json.loads(decided.payload)
    assert decided.actor.startswith("person-") and "mona" not in decided.canonical
    assert set(raw["comment"]) == {"sealed", "data"} and COMMENT not in decided.canonical
    assert as_read(decided)[1]["comment"] == COMMENT


def test_a_person_renamed_by_the_directory_is_erased_under_both_names(world):
    nina = provisioning.provision(None, "nina.rossi", "nina@vendor.example", "Nina", "Rossi",
                                  "ext-7", {"title": "Buyer"}, by="scim")  # fmt: skip
    provisioning.provision(nina, "nina.bianchi", "nina@vendor.example", "Nina", "Bianchi",
                           "ext-7", {"title": "Buyer"}, by="scim")  # fmt: skip
    renamed = AuditEntry.objects.get(action="user.renamed")
    assert as_read(renamed)[1] == {"former_name": "nina.rossi", "to": "nina.bianchi"}
    privacy.erase("nina.bianchi", world["adam"], "request")
    after = dump()
    for text in ("nina.rossi", "nina.bianchi", "nina@vendor.example", "Rossi", "Bianchi"):
        assert text not in after, text
    assert as_read(AuditEntry.objects.get(action="user.renamed"))[1]["former_name"].startswith(
        "erased on "
    )


def test_an_erased_requesters_requests_are_found_by_their_pseudonym_not_their_name(world):
    directory.add_user("Rita.Lind", ["requester"])
    ref = services.create(request_body(submit=True), User.objects.get(username="Rita.Lind"),
                          now=NOW).reference  # fmt: skip
    services.withdraw(ref, User.objects.get(username="Rita.Lind"), "not needed", now=NOW)
    audrey = client_for("audrey")
    assert ref in audrey.get("/requests/all/", {"q": "rita.lind"}).content.decode()
    pseudonym = privacy.erase("Rita.Lind", world["adam"], "request")
    assert ref not in audrey.get("/requests/all/", {"q": "rita.lind"}).content.decode()
    assert ref in audrey.get("/requests/all/", {"q": pseudonym}).content.decode()
    assert "rita.lind" not in dump().lower()
