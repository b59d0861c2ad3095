"""Evidence uploads under load: the same file sent by many at once never leaves a row
without its file, and a huge upload is streamed, never held in memory."""

import http.client
import http.cookiejar
import re
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from waiverdesk.core.errors import Denied
from waiverdesk.testing import at_once, once_on_sqlite, postgres_only, request_body, request_form
from waiverdesk.waivers import attachments, services
from waiverdesk.waivers.models import Attachment, Waiver

FORECAST = b"month,seats\n" + b"".join(b"%d,80\n" % i for i in range(1, 13))


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_same_file_uploaded_by_many_at_once_leaves_every_row_with_its_file(
    committed_world,
):
    rita = User.objects.get(username="rita")
    for round_ in range(4):
        content = FORECAST + b"round %d\n" % round_

        def upload(i, content=content):
            # Every other request is refused after its file was stored (its control owner is
            # its requester), and so takes its file back, unless another request uses it.
            body = request_body(control_owner="olga" if i % 2 else "rita")
            file = services.Upload("usage_forecast", "forecast.csv", content, "text/csv")
            return services.create(body, rita, uploads=[file])

        results = at_once(12, upload)
        assert sum(isinstance(r, Waiver) for r in results) == 6
        assert sum(isinstance(r, Denied) for r in results) == 6
    rows = Attachment.objects.all()
    assert rows.count() == 24
    assert all(attachments.path_for(row.sha256).read_bytes().startswith(FORECAST) for row in rows)
    assert not any((Path(settings.ATTACHMENT_DIR) / "staging").iterdir())


def post_new_request(person, notes: bytes):
    """Rita's web form of a new request, with `notes` as a file of evidence."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = Client()
    client.force_login(person)
    notes_file = SimpleUploadedFile("notes.txt", notes, content_type="text/plain")
    return client.post("/requests/new/temporary_access/",
                       {**request_form(), "evidence.notes": notes_file})  # fmt: skip


def test_a_form_carrying_more_than_the_upload_bound_is_refused_unread(world, settings):
    settings.UPLOAD_MAX_BYTES = 1000
    response = post_new_request(world["rita"], b"x" * 2000)
    assert response.status_code == 413 and b"at most" in response.content
    assert not Waiver.objects.exists()


def test_a_file_over_the_limit_is_named_at_its_field_and_nothing_is_kept(world, settings):
    settings.ATTACHMENT_MAX_BYTES = 100
    response = post_new_request(world["rita"], b"a,b\n" * 100)
    assert response.status_code == 422 and b"files may be at most 100 bytes" in response.content
    assert not Waiver.objects.exists()
    assert [p for p in Path(settings.ATTACHMENT_DIR).rglob("*") if p.is_file()] == []


# -- a real server, a real 300 MB upload ------------------------------------------------------

SIZE = 300 * 2**20


@pytest.fixture
def roomy(monkeypatch):
    """Limits that let a 300 MB file in, for the server the `served` fixture starts."""
    monkeypatch.setenv("WAIVERDESK_ATTACHMENT_MAX_BYTES", str(SIZE + 2**20))
    monkeypatch.setenv("WAIVERDESK_UPLOAD_MAX_BYTES", str(SIZE + 2**21))


def peak_memory_of_workers(port: int) -> dict[int, int]:
    """The peak resident memory (kB) of each gunicorn worker serving `port`."""
    master = None
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"127.0.0.1:{port}".encode() in cmdline and b"serve" in cmdline:
                master = master or proc.name
    peaks = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                status = (proc / "status").read_text()
            except OSError:
                continue
            if re.search(rf"^PPid:\s+{master}$", status, re.M):
                peaks[int(proc.name)] = int(re.search(r"^VmHWM:\s+(\d+)", status, re.M)[1])
    return peaks


@once_on_sqlite  # a file streamed to disk: the engine stores only its record
def test_a_300_mb_upload_is_streamed_to_disk(roomy, served):
    app, base = served
    port = int(base.rsplit(":", 1)[1])
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def csrf(page: str) -> str:
        html = browser.open(f"{base}{page}").read().decode()
        return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)[1]

    form = {"csrfmiddlewaretoken": csrf("/sign-in/"), "username": "rita",
            "password": "try-waiverdesk"}  # fmt: skip
    browser.open(f"{base}/sign-in/", urllib.parse.urlencode(form).encode())
    token = csrf("/requests/new/temporary_access/")
    before = peak_memory_of_workers(port)

    boundary = "----waiverdesk-test-boundary"
    fields = {**request_form(), "csrfmiddlewaretoken": token}
    head = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                   for k, v in fields.items())  # fmt: skip
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="evidence.usage_log"; '
             'filename="usage.csv"\r\nContent-Type: text/csv\r\n\r\n')  # fmt: skip
    tail = f"\r\n--{boundary}--\r\n".encode()
    line = b"2027-01-01,analytics,80\n"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    connection.putrequest("POST", "/requests/new/temporary_access/")
    connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    connection.putheader("Content-Length", str(len(head.encode()) + SIZE + len(tail)))
    connection.putheader("Cookie", "; ".join(f"{c.name}={c.value}" for c in jar))
    connection.putheader("Referer", base + "/requests/new/temporary_access/")
    connection.endheaders(head.encode())
    chunk = line * (2**20 // len(line)) + line[: 2**20 % len(line)]
    for _ in range(SIZE // 2**20):
        connection.send(chunk)
    connection.send(tail)
    response = connection.getresponse()
    assert response.status == 302, response.read()[:500]  # to the new request's page

    after = peak_memory_of_workers(port)
    grown = max(after[pid] - before.get(pid, after[pid]) for pid in after)
    assert grown < 50 * 1024, f"a worker's peak memory grew by {grown} kB"
    stored = ("from waiverdesk.waivers.models import Attachment as A; "
              "print([a.size for a in A.objects.filter(kind='usage_log')])")  # fmt: skip
    assert app.waiverdesk("shell", "-v", "0", "-c", stored) == f"[{SIZE}]"


# -- opening the evidence ---------------------------------------------------------------------


@pytest.fixture
def filed(world):
    """A submitted request with a forecast, and an HTML page sent as plain text."""
    files = [
        services.Upload("usage_forecast", "forecast.csv", FORECAST, "text/csv"),
        services.Upload("notes", "notes.txt", b"<script>alert(1)</script>", "text/plain"),
    ]
    waiver = services.create(request_body(submit=True), world["rita"], uploads=files)
    return waiver.reference, {a.filename: a.pk for a in waiver.attachments.all()}


def open_as(person, url):
    client = Client()
    client.force_login(person)
    return client.get(url)


@pytest.mark.parametrize(
    ("who", "status"),
    [("rita", 200), ("mona", 200), ("olga", 200), ("audrey", 200), ("adam", 200),
     ("sam", 404), ("charlie", 404), ("fiona", 404)],
)  # fmt: skip
def test_evidence_opens_for_those_who_see_the_request_and_no_one_else(world, filed, who, status):
    ref, ids = filed
    response = open_as(world[who], f"/requests/{ref}/evidence/{ids['forecast.csv']}")
    assert response.status_code == status
    if status == 200:
        assert b"".join(response.streaming_content) == FORECAST
        assert response["Content-Disposition"] == 'attachment; filename="forecast.csv"'


def test_evidence_is_never_rendered_in_the_sites_origin(world, filed):
    ref, ids = filed
    response = open_as(world["mona"], f"/requests/{ref}/evidence/{ids['notes.txt']}")
    assert response["Content-Type"].startswith("text/plain")
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_a_file_of_another_request_is_not_found_through_this_one(world, filed):
    ref, ids = filed
    other = services.create(request_body(), world["rita"]).reference
    assert (
        open_as(world["rita"], f"/requests/{other}/evidence/{ids['notes.txt']}").status_code == 404
    )


def test_the_request_page_links_each_file(world, filed):
    ref, ids = filed
    page = open_as(world["mona"], f"/requests/{ref}/").content.decode()
    assert f'href="/requests/{ref}/evidence/{ids["forecast.csv"]}"' in page
