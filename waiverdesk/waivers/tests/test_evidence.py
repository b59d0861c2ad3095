"""Evidence as people give it in the browser: several files of one kind, a text where the
policy allows "a text or an attachment", more evidence after filing, files kept across a
refused form, and images and PDFs previewed without ever running in the site's origin."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from waiverdesk.api import services as tokens
from waiverdesk.testing import NOW, big_discount_body, client_for, request_body
from waiverdesk.tests.test_pages import big_discount_form
from waiverdesk.waivers import services
from waiverdesk.waivers.models import Attachment, PendingUpload, Waiver

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PDF = b"%PDF-1.4\n%%EOF\n"


def upload(name: str, content: bytes, kind: str = "text/plain") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=kind)


def test_a_refused_form_keeps_the_files_chosen_and_the_corrected_one_sends_them(world):
    rita = client_for("rita")
    form = big_discount_form(submit="1", start="2001-01-01")  # a mistake: a start in the past
    form["evidence.business_impact_analysis"] = [
        upload("a.txt", b"first part\n"),
        upload("b.csv", b"x,y\n1,2\n", "text/csv"),
    ]
    refused = rita.post("/requests/new/volume_discount/", form)
    html = refused.content.decode()
    assert refused.status_code == 422 and Waiver.objects.count() == 0
    kept = list(PendingUpload.objects.filter(user=world["rita"]))
    assert [p.filename for p in kept] == ["a.txt", "b.csv"]
    for p in kept:
        assert f'name="pending" value="{p.pk}" checked' in html and p.filename in html
    # Corrected, without choosing the files again: both are the request's evidence.
    form = big_discount_form(submit="1", pending=[str(p.pk) for p in kept])
    assert rita.post("/requests/new/volume_discount/", form).status_code == 302
    waiver = Waiver.objects.get()
    assert waiver.status == "submitted"
    assert sorted(waiver.attachments.values_list("kind", "filename")) == [
        ("business_impact_analysis", "a.txt"),
        ("business_impact_analysis", "b.csv"),
    ]
    assert not PendingUpload.objects.exists()


def test_files_kept_from_a_refused_form_are_forgotten_after_a_day(world, settings):
    from datetime import timedelta

    from waiverdesk.waivers import attachments, pending

    kept = pending.hold(world["rita"], [services.Upload("other", "a.txt", b"left behind\n",
                                                        "text/plain")], now=NOW)  # fmt: skip
    path = attachments.path_for(kept[0].sha256)
    assert path.is_file()
    assert pending.forget_stale(NOW + timedelta(hours=23)) == []
    assert pending.forget_stale(NOW + timedelta(days=2)) == [("pending uploads", "forgot 1")]
    assert not PendingUpload.objects.exists() and not path.exists()


def test_nobody_sends_the_files_another_person_chose(world):
    rita, sam = client_for("rita"), client_for("sam")
    form = big_discount_form(submit="1", start="2001-01-01")
    form["evidence.business_impact_analysis"] = upload("secret.txt", b"rita's numbers\n")
    rita.post("/requests/new/volume_discount/", form)
    (kept,) = PendingUpload.objects.all()
    form = big_discount_form(submit="1", pending=[str(kept.pk)])
    assert sam.post("/requests/new/volume_discount/", form).status_code == 422  # no evidence
    assert not Attachment.objects.exists()


def test_evidence_in_words_is_enough_where_the_policy_allows_a_text(world):
    form = big_discount_form(submit="1", **{
        "evidence_text.business_impact_analysis": "Adds 4.1M over three years"})  # fmt: skip
    assert client_for("rita").post("/requests/new/volume_discount/", form).status_code == 302
    waiver = Waiver.objects.get()
    assert waiver.evidence == {"business_impact_analysis": "Adds 4.1M over three years"}
    assert waiver.status == "submitted"


def test_evidence_a_rule_reads_added_under_review_starts_a_new_round(world):
    ref = services.create(big_discount_body(submit=True), world["rita"], now=NOW).reference
    services.decide(ref, world["mona"], "approve", now=NOW)
    rita = client_for("rita")
    rita.post(
        f"/requests/{ref}/evidence/",
        {
            "kind": "business_impact_analysis",  # the type's required evidence
            "files": [
                upload("q1.csv", b"m,n\n1,2\n", "text/csv"),
                upload("q2.csv", b"m,n\n3,4\n", "text/csv"),
            ],
        },
    )
    waiver = services.get(ref)
    assert waiver.round == 2 and not waiver.current_route().filter(status="approved").exists()
    assert sorted(waiver.attachments.filter(kind="business_impact_analysis").values_list(
        "filename", flat=True)) == ["q1.csv", "q2.csv"]  # fmt: skip
    # Only the requester adds evidence; the approver's attempt changes nothing.
    client_for("dana").post(f"/requests/{ref}/evidence/", {"kind": "other", "text": "x"})
    assert services.get(ref).round == 2 and "other" not in services.get(ref).evidence


@pytest.mark.parametrize(
    ("name", "content", "kind", "inline"),
    [("chart.png", PNG, "image/png", True), ("memo.pdf", PDF, "application/pdf", True),
     ("page.txt", b"<html><script>alert(1)</script>", "text/plain", False),
     ("svg.txt", b"<svg onload=alert(1)>", "text/plain", False)],
)  # fmt: skip
def test_a_preview_shows_images_and_pdfs_and_nothing_else(world, name, content, kind, inline):
    files = [services.Upload("other", name, content, kind)]
    waiver = services.create(request_body(), world["rita"], uploads=files)
    pk = waiver.attachments.get().pk
    answer = client_for("rita").get(f"/requests/{waiver.reference}/evidence/{pk}?preview=1")
    assert answer["Content-Disposition"].startswith("inline" if inline else "attachment")
    assert answer["X-Content-Type-Options"] == "nosniff"
    policy = answer["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'")
    assert ("sandbox" in policy) == (kind != "application/pdf")
    assert client_for("sam").get(f"/requests/{waiver.reference}/evidence/{pk}?preview=1"
                                 ).status_code == 404  # fmt: skip


def test_evidence_is_named_as_the_policy_names_it_through_every_door(world):
    ref = services.create(request_body(), world["rita"], now=NOW).reference
    odd = {"kind": "Bad Kind", "text": "x"}
    page = client_for("rita").post(f"/requests/{ref}/evidence/", odd, follow=True)
    assert "Evidence: name the evidence in lower case" in page.content.decode()
    assert services.get(ref).evidence == {}
    raw = tokens.create_token(world["rita"], "t", ["read", "write"])[1]
    answer = Client(HTTP_AUTHORIZATION=f"Bearer {raw}").post(
        "/api/v1/waivers", request_body(evidence={"Usage Forecast!": "x"}),
        content_type="application/json")  # fmt: skip
    assert answer.status_code == 422
    assert [(e["field"], e["message"]) for e in answer.json()["errors"]] == [
        ("evidence", "name the evidence in lower case, e.g. usage_forecast")
    ]
