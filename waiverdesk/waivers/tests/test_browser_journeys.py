"""Each role's day in headless chromium against `waiverdesk serve` with the demo, every page
it visits checked with axe-core (no violation of serious or critical impact)."""

import contextlib
import io
import json
import re
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

from waiverdesk.waivers.tests.test_browser import PASSWORD, browser, field  # noqa: F401

AXE = Path(__file__).resolve().parents[3] / "node_modules" / "axe-core" / "axe.min.js"
REF = re.compile(r"WVR-\d{4}-\d{5}")
CHECKED: set[tuple[str, str, bool]] = set()  # (person, kind of page, problems) axe checked


def violations(page: Page) -> list[str]:
    """The serious and critical axe-core violations of the page as it is now."""
    page.add_script_tag(path=str(AXE))
    return page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ["violations"]});
        return result.violations.filter(v => ["serious", "critical"].includes(v.impact))
            .map(v => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map(n => n.target)}`);
    }""")


@pytest.fixture
def served(served_shared):
    """The demo served for the browser tests: each makes its own requests."""
    return served_shared


@pytest.fixture
def person(browser, served):  # noqa: F811
    """Open a page signed in as a demo person; each page it goes to is checked by axe."""
    _app, base = served
    contexts, found = [], []

    def check(page: Page, name: str) -> None:
        # Each kind of page once for each person (a request's page is one kind; a page
        # showing problems is another).
        if "/sign-in/" in page.url:
            return
        with contextlib.suppress(PlaywrightError):  # the page moved on: the next is checked
            problems = page.locator("#error-summary").count() > 0
            seen = (name, REF.sub("REF", urlsplit(page.url).path), problems)
            if seen not in CHECKED:
                found.extend(f"{page.url}: {v}" for v in violations(page))
                CHECKED.add(seen)

    def sign_in(name: str) -> Page:
        # axe is injected as a script, which the site's own policy rightly refuses.
        context = browser.new_context(base_url=base, bypass_csp=True, accept_downloads=True)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("dialog", lambda dialog: dialog.accept())  # the confirmations
        page.on("load", lambda loaded: check(loaded, name))
        page.goto("/sign-in/")
        found.extend(violations(page))
        page.get_by_label("User name").fill(name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        return page

    yield sign_in
    for context in contexts:
        for page in context.pages:
            check(page, "")
        context.close()
    assert not found, "\n".join(dict.fromkeys(found))


def body(customer: str, days: int) -> dict:
    """A temporary-access request on `customer`, starting in `days`, submitted."""
    start = date.today() + timedelta(days=days)
    return {
        "type": "temporary_access", "customer": customer, "products": ["AN-EDGE"],
        "license_type": "subscription", "region": "AMER", "start": start.isoformat(),
        "end": (start + timedelta(days=30)).isoformat(), "scope": {"seats": 10},
        "financials": {"currency": "EUR", "list_value": 5000, "concession": 500},
        "justification": {"benefit": "Keeps the team working", "alternatives": "none",
                          "customer_impact": "no outage", "why_not_standard": "renewal late"},
        "outcomes": [{"metric": "team working", "target": 10}], "control_owner": "olga",
        "submit": True,
    }  # fmt: skip


# What the journeys start from, made through the services in one `waiverdesk shell`.
SETTING_UP = """
import json
from django.contrib.auth.models import User
from waiverdesk.directory import services as directory
from waiverdesk.waivers import services
wanted = json.loads(WANTED)
who = {n: User.objects.get(username=n) for n in ("rita", "sam", "mona")}
made = {}
for name, (person, request) in wanted["requests"].items():
    made[name] = services.create(request, who[person]).reference
services.attach(made["evidence"], who["rita"], "forecast.csv", b"month,seats\\n1,10\\n",
                "text/csv", "usage_forecast")
services.decide(made["notice"], who["mona"], "approve", conditions=wanted["conditions"])
directory.update_customer("PIEDPIPER-012", {"contact_email": "it@piedpiper.test"})
directory.add_user("cora", ["control_owner"])  # leaves in the admin's journey
made["leaving"] = services.create({**wanted["leaving"], "control_owner": "cora"},
                                  who["rita"]).reference
print(json.dumps(made))
"""


@pytest.fixture(scope="module")
def filed(served_shared) -> dict[str, str]:
    """The requests the journeys need, by name: their references."""
    app, _base = served_shared
    due = (date.today() + timedelta(days=40)).isoformat()
    wanted = {
        "requests": {
            "evidence": ("rita", body("STARK-005", 21)), "next": ("rita", body("WAYNE-006", 22)),
            **{f"bulk{i}": ("sam", body(c, 30 + i)) for i, c in enumerate(
                ["STARK-005", "WAYNE-006", "WONKA-007", "TYRELL-008", "INITECH-003"])},
            "notice": ("rita", body("PIEDPIPER-012", 25)),
            "by_email": ("rita", body("STARK-005", 27)),
        },
        "leaving": body("HOOLI-011", 26),
        "conditions": [
            {"text": "Check the margin with finance", "owner": "olga", "due": due},
            {"text": "Report seat use monthly", "owner": "olga", "due": due,
             "customer_visible": True},
        ],
    }  # fmt: skip
    code = SETTING_UP.replace("WANTED", repr(json.dumps(wanted)))
    return json.loads(app.waiverdesk("shell", "-v", "0", "-c", code).splitlines()[-1])


def test_rita_files_with_two_files_corrects_a_mistake_and_keeps_them(person, tmp_path):
    rita = person("rita")
    start = date.today() + timedelta(days=14)
    rita.goto("/requests/new/seat_overage/")
    field(rita, "Customer").select_option("HOOLI-011")
    field(rita, "Analytics Edge (AN-EDGE, Analytics)").check()
    field(rita, "License type").select_option("subscription")
    field(rita, "Region").select_option("AMER")
    field(rita, "Start").fill(start.isoformat())
    field(rita, "End").fill((start - timedelta(days=3)).isoformat())  # the mistake
    field(rita, "Seats").fill("25")
    for label in ("Business benefit", "Alternatives considered", "Customer impact",
                  "Why the standard terms do not work"):  # fmt: skip
        field(rita, label).fill(f"{label}: as the customer told us")
    field(rita, "Measurable outcome (KPI)").fill("seats in use")
    field(rita, "Target").fill("25")
    field(rita, "Control owner").select_option("olga")
    forecast, history = tmp_path / "forecast.csv", tmp_path / "history.csv"
    forecast.write_text("month,seats\n1,120\n2,125\n")
    history.write_text("month,seats\n-1,100\n")
    rita.locator("#f-evidence-usage-forecast").set_input_files([forecast, history])
    rita.get_by_role("button", name="Submit for approval").click()

    summary = rita.locator("#error-summary")
    expect(summary).to_contain_text("End:")  # the label, linked to its field
    expect(summary).to_contain_text("the files you chose are kept")
    kept = rita.get_by_role("list", name=re.compile("Files already chosen"))
    expect(kept).to_contain_text("forecast.csv")
    expect(kept).to_contain_text("history.csv")

    field(rita, "End").fill((start + timedelta(days=30)).isoformat())
    rita.get_by_role("button", name="Submit for approval").click()
    expect(rita.locator(".messages")).to_contain_text("submitted for approval")
    files = rita.locator("#evidence-files")
    expect(files).to_contain_text("forecast.csv")
    expect(files).to_contain_text("history.csv")


def test_mona_opens_the_evidence_decides_and_lands_on_the_next(person, filed):
    first, second = filed["evidence"], filed["next"]
    mona = person("mona")
    mona.goto("/inbox/")
    expect(mona.locator("#inbox")).to_contain_text(first)
    mona.locator("#inbox").get_by_role("link", name=first).click()
    form = mona.locator("#decision-form")
    expect(form).to_be_visible()
    with mona.expect_download() as download:
        mona.locator("#evidence-files").get_by_role("link", name="forecast.csv").click()
    assert Path(download.value.path()).read_text() == "month,seats\n1,10\n"
    form.get_by_label("Comment").fill("Renewal is in legal review; fine for a month")
    form.get_by_role("button", name="Approve").click()
    expect(mona.locator(".messages")).to_contain_text(f"Your approval of {first} is recorded")
    expect(mona.locator("h1")).not_to_contain_text(first)  # the next request opened
    assert "from=inbox" in mona.url
    mona.goto("/inbox/")
    expect(mona.locator("#inbox")).not_to_contain_text(first)
    expect(mona.locator("#inbox")).to_contain_text(second)


# The address of the approve link in mona's "waiting for your decision" email about REF.
LINK_IN_EMAIL = """
import re
from waiverdesk.notifications.models import Message
from waiverdesk.testing import email_text
body = email_text(Message.objects.filter(event="waiver.step_opened", object_ref=REF,
                                         recipient="mona@example.com").last())
print(re.search(r"Approve: (\\S+)", body)[1])
"""


def test_mona_decides_from_her_email_signing_in_on_the_way(browser, served, filed):  # noqa: F811
    app, base = served
    ref = filed["by_email"]
    link = app.waiverdesk("shell", "-v", "0", "-c", LINK_IN_EMAIL.replace("REF", repr(ref)))
    context = browser.new_context(base_url=base)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(urlsplit(link).path)  # not signed in: the sign-in page first
    page.get_by_label("User name").fill("mona")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_have_text(f"Approve {ref}?")  # nothing decided yet
    page.get_by_label("Comment").fill("Fine for a month")
    page.get_by_role("button", name="Confirm: approve").click()
    expect(page.locator(".messages")).to_contain_text(f"Your decision on {ref} is recorded")
    expect(page.locator(".route")).to_contain_text("mona approve")
    page.goto(urlsplit(link).path)  # once only
    expect(page.locator("#link-refusal")).to_contain_text("has been used already")
    context.close()


def test_bulk_approval_of_five_with_one_refused_for_a_conflict(person, served, filed):
    app, _base = served
    refs = [filed[f"bulk{i}"] for i in range(5)]
    mona = person("mona")
    mona.goto("/inbox/?sort=-waited")
    for ref in refs:
        mona.get_by_label(f"Select {ref}").check()
    # Between the page and the click, mona becomes the account owner of Initech.
    app.waiverdesk("customer", "update", "INITECH-003", "--account-owner", "mona")
    mona.locator("#bulk-comment").fill("Renewals in flight")
    mona.get_by_role("button", name="Approve selected").click()
    messages = mona.locator(".messages")
    approved = messages.locator("li.success")
    for ref in refs[:4]:
        expect(approved).to_contain_text(ref)
    expect(messages).to_contain_text(f"{refs[4]} not approved: you own this customer's account")
    mona.goto(f"/requests/{refs[4]}/")
    expect(mona.locator("h1 .status")).to_have_text("Submitted")


def test_audrey_finds_filters_exports_and_opens_the_trail(person):
    audrey = person("audrey")
    expect(audrey.locator("h1")).to_have_text("All requests")  # her home
    audrey.get_by_role("searchbox", name="Search").fill("wonka")
    audrey.get_by_role("button", name="Search").click()
    rows = audrey.locator("#requests tbody tr")
    expect(rows.first).to_contain_text("Wonka Foods")
    count = rows.count()
    if audrey.locator("details.more-filters[open]").count() == 0:
        audrey.locator("summary", has_text="Filters").click()
    audrey.get_by_label("Draft", exact=True).check()
    audrey.get_by_role("button", name="Search").click()
    assert rows.count() <= count
    for row in rows.all():
        expect(row).to_contain_text("Draft")
    with audrey.expect_download() as download:
        audrey.get_by_role("link", name="Excel").click()
    sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).active
    exported = [r for r in sheet.iter_rows(values_only=True)][1:]
    assert len(exported) == rows.count()
    assert all(r[2] == "Wonka Foods" and r[6] == "draft" for r in exported)
    audrey.get_by_role("link", name="Audit trail").click()
    expect(audrey.locator("#trail tbody tr").first).to_be_visible()
    audrey.get_by_role("link", name="Verify the whole chain now").click()
    expect(audrey.locator("#verification")).to_contain_text("Verified just now")


def test_the_customer_notice_preview_keeps_internal_conditions_inside(person, filed):
    ref = filed["notice"]
    rita = person("rita")
    rita.goto(f"/requests/{ref}/notice/")
    preview = rita.locator("#notice-preview")
    expect(preview).to_contain_text("Report seat use monthly")
    expect(preview).not_to_contain_text("margin")
    expect(preview).not_to_contain_text("mona")
    rita.get_by_label(re.compile("Cover note")).fill("Dear Richard, as agreed on the phone.")
    rita.get_by_role("button", name="Preview").click()
    expect(preview).to_contain_text("Dear Richard, as agreed on the phone.")
    rita.get_by_label(re.compile("Copy to")).fill("not-an-address")
    rita.get_by_role("button", name=re.compile("Send to")).click()
    expect(rita.locator("#error-summary")).to_contain_text("Copy to: not-an-address")
    rita.get_by_label(re.compile("Copy to")).fill("legal@piedpiper.test")
    rita.get_by_role("button", name=re.compile("Send to")).click()
    expect(rita.locator(".messages")).to_contain_text("legal@piedpiper.test")
    expect(rita.locator("#h-sent")).to_be_visible()


def test_adam_offboards_a_control_owner_and_hands_her_exceptions_to_olga(person, filed):
    adam = person("adam")
    adam.get_by_role("link", name="People").click()
    adam.get_by_label("Search").fill("cora")
    adam.get_by_role("button", name="Search").click()
    adam.get_by_role("link", name="cora").click()
    expect(adam.locator("#work")).to_contain_text(filed["leaving"])
    adam.get_by_label("Hand all of it over to").select_option("olga")
    adam.get_by_role("button", name="Hand over").click()
    expect(adam.locator(".messages")).to_contain_text("Handed over to olga")
    expect(adam.get_by_text("cora is answerable for nothing open")).to_be_visible()
    adam.get_by_label("Why").fill("left the company")
    adam.get_by_role("button", name="Deactivate").click()
    expect(adam.get_by_role("heading", name="cora (deactivated)")).to_be_visible()
    adam.goto(f"/requests/{filed['leaving']}/")
    expect(adam.locator("main")).to_contain_text("olga")
    # She asked to be forgotten: erased from the Privacy page, after ticking the box.
    adam.get_by_role("link", name="Privacy").click()
    adam.get_by_label("User name or email address").fill("cora")
    adam.get_by_label("Why (the request or ground, without their name)").fill("request DP-9")
    adam.get_by_role("button", name="Erase").click()
    expect(adam.locator("#confirm-error")).to_have_text("tick the box: erasing cannot be undone")
    adam.get_by_label("I understand that erasing cannot be undone").check()
    adam.get_by_role("button", name="Erase").click()
    expect(adam.locator(".messages")).to_contain_text("Erased: the records now say person-")
