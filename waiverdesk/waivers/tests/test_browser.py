"""The web UI end to end, in headless chromium against `waiverdesk serve` (the demo loaded)."""

import os
import re
from datetime import date, timedelta

import pytest
from playwright.sync_api import Page, expect, sync_playwright

CHROMIUM = os.environ.get("WAIVERDESK_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "try-waiverdesk"


def field(page: Page, label: str):
    """The form control labelled `label` (whether or not marked required)."""
    return page.get_by_label(re.compile(rf"^\s*{re.escape(label)}( required)?\s*$"))


@pytest.fixture
def browser():
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM)
        yield chromium
        chromium.close()


@pytest.fixture
def served(served_shared):
    """The demo served for the browser tests: each makes its own requests."""
    return served_shared


@pytest.fixture
def as_user(browser, served):
    """A function that opens a page signed in as a demo person."""
    _app, base = served
    pages = []

    def sign_in(name: str) -> Page:
        page = browser.new_context(base_url=base).new_page()
        page.set_default_timeout(15_000)
        page.goto("/sign-in/")
        page.get_by_label("User name").fill(name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        pages.append(page)
        return page

    yield sign_in
    for page in pages:
        page.context.close()


def test_a_volume_discount_from_the_form_to_its_approval(as_user, tmp_path):
    start = date.today() + timedelta(days=14)
    mark = as_user("mark")  # a sales manager who also files requests
    mark.goto("/requests/new/")
    mark.get_by_role("link", name="Volume discount not normally offered").click()
    field(mark, "Customer").select_option("INITECH-003")
    field(mark, "Analytics Edge (AN-EDGE, Analytics)").check()
    field(mark, "License type").select_option("subscription")
    field(mark, "Region").select_option("AMER")
    field(mark, "Start").fill(start.isoformat())
    field(mark, "End").fill((start + timedelta(days=89)).isoformat())
    field(mark, "Seats").fill("40")
    field(mark, "Discount (% of list price)").fill("12")
    field(mark, "Currency").select_option("EUR")
    field(mark, "List value").fill("40000")
    field(mark, "Concession (value given up)").fill("4800")
    for label in (
        "Business benefit",
        "Alternatives considered",
        "Customer impact",
        "Why the standard terms do not work",
    ):
        field(mark, label).fill(f"{label}: stated for the test")
    field(mark, "Measurable outcome (KPI)").fill("seats in use by day 60")
    field(mark, "Target").fill("40")
    field(mark, "Control owner").select_option("olga")
    analysis = tmp_path / "impact.txt"
    analysis.write_text("Business impact: 40 seats, 3-year commitment.\n")
    field(mark, "Business impact analysis").set_input_files(analysis)

    # The live preview names the route before anything is submitted.
    route = mark.locator("#preview-route")
    expect(route).to_contain_text("manager")
    expect(route).to_contain_text("deal_desk")
    expect(mark.locator("#preview")).to_contain_text("Eligible under the policy")

    mark.get_by_role("button", name="Submit for approval").click()
    expect(mark.locator(".messages")).to_contain_text("submitted for approval")
    reference = re.search(r"WVR-\d{4}-\d{5}", mark.locator("h1").inner_text())[0]

    # Mark may approve for sales managers, but not his own request: not offered, and
    # refused when forced.
    expect(mark.locator("#decision-form")).to_have_count(0)
    expect(mark.locator("#no-decision")).to_contain_text("you requested this waiver")
    mark.evaluate(
        """(url) => {
            const f = document.createElement("form");
            f.method = "post"; f.action = url;
            const csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
            for (const [k, v] of [["decision", "approve"], ["csrfmiddlewaretoken", csrf]]) {
                const i = document.createElement("input"); i.name = k; i.value = v; f.append(i);
            }
            document.body.append(f); f.submit();
        }""",
        f"/requests/{reference}/decide",
    )
    expect(mark.locator(".messages")).to_contain_text("you requested this waiver")

    mona = as_user("mona")
    mona.goto("/inbox/")
    mona.locator("#inbox").get_by_role("link", name=reference).click()
    mona.locator("#decision-form").get_by_role("button", name="Approve").click()
    expect(mona.locator(".messages")).to_contain_text(f"Your approval of {reference} is recorded")
    mona.goto(f"/requests/{reference}/")
    expect(mona.locator("#waiting-on")).to_contain_text("Deal desk: dana or dirk")

    dana = as_user("dana")
    dana.goto(f"/requests/{reference}/")
    form = dana.locator("#decision-form")
    form.get_by_label("The master agreement allows a non-standard discount").check()
    form.get_by_label("Revenue recognition reviewed for the discounted term").check()
    form.get_by_label("Comment").fill("Within the deal desk's guidance")
    form.get_by_role("button", name="Approve").click()
    expect(dana.locator("h1 .status")).to_have_text("Approved")

    timeline = dana.locator("#timeline")
    expect(timeline.locator("li")).to_have_count(6)  # created, attached, submitted, refused,
    for text in ("mark created", "mark submitted", "mark refused", "mona decided", "dana decided"):
        expect(timeline).to_contain_text(text)  # two decisions
    expect(timeline).to_contain_text("Within the deal desk's guidance")


def test_a_form_with_bad_input_shows_each_problem_at_its_field_and_stores_nothing(as_user):
    rita = as_user("rita")
    rita.goto("/requests/")
    before = rita.locator("table.list tbody tr").count()

    rita.goto("/requests/new/temporary_access/")
    field(rita, "Customer").select_option("STARK-005")
    field(rita, "Analytics Edge (AN-EDGE, Analytics)").check()
    field(rita, "License type").select_option("subscription")
    field(rita, "Region").select_option("AMER")
    field(rita, "Start").fill("2027-06-01")
    field(rita, "End").fill("2027-05-01")  # before the start
    field(rita, "Seats").fill("-3")
    rita.get_by_role("button", name="Submit for approval").click()

    expect(rita.locator("#error-summary")).to_contain_text("Nothing was saved")
    expect(rita.locator("#f-end-error")).to_contain_text("end must not be before start")
    expect(rita.locator("#f-scope-seats-error")).to_be_visible()
    expect(field(rita, "Start")).to_have_value("2027-06-01")  # what was typed stays

    rita.goto("/requests/")
    expect(rita.locator("table.list tbody tr")).to_have_count(before)


def test_the_pages_fit_a_phone_screen(as_user):
    mona = as_user("mona")
    mona.set_viewport_size({"width": 390, "height": 844})
    mona.goto("/inbox/")
    reference = mona.locator("#inbox tbody a").first.inner_text()
    for path in (
        "/inbox/",
        f"/requests/{reference}/",
        "/requests/new/volume_discount/",
        "/policy/",
        "/dashboard/",
        "/tokens/",
    ):
        mona.goto(path)
        width = mona.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide on a 390 px screen"
