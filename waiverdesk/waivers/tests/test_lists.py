"""The lists of requests: search, filters, sort by any column, keyset pages that neither skip
nor repeat a row, exports of exactly what is filtered, saved filters, and no silent caps."""

import csv
import io
import re
from datetime import date, timedelta

import pytest
from django.http import QueryDict
from openpyxl import load_workbook

from waiverdesk.directory import services as directory
from waiverdesk.testing import NOW, client_for, request_body
from waiverdesk.waivers import listing, services
from waiverdesk.waivers.models import SavedFilter, Waiver

REF = re.compile(r"WVR-\d{4}-\d{5}")


def listed(response) -> list[str]:
    """The references in the page's table of requests, in order."""
    table = response.content.decode().split('id="requests"', 1)
    return list(dict.fromkeys(REF.findall(table[1].split("</table>")[0]))) if len(table) > 1 else []


@pytest.fixture
def many(world):
    """60 drafts of rita's, on two customers and four products, with different periods
    and amounts; and one of sam's."""
    directory.add_customer("INITECH-003", "Initech Holdings", "EMEA")
    codes = ["AN-EDGE", "COL-SUITE", "DB-ENT", "SEC-GW"]
    for i in range(60):
        start = date(2027, 1, 1) + timedelta(days=i % 37)
        body = request_body(
            customer=["GLOBEX-002", "INITECH-003"][i % 2],
            products=[codes[i % 4]],
            start=start.isoformat(),
            end=(start + timedelta(days=20 + i % 11)).isoformat(),
            financials={"currency": "EUR", "list_value": 20000, "concession": 100 * (i % 23)},
        )
        body["justification"] = {**body["justification"], "benefit": f"keeps squad-{i}x working"}
        services.create(body, world["rita"], now=NOW + timedelta(minutes=i))
    services.create(request_body(), world["sam"], now=NOW)
    return world


def walk(waivers, params: str) -> list[Waiver]:
    """Every page of a list, following `next` from the first."""
    rows, after = [], None
    while True:
        query = listing.read(QueryDict(params + (f"&after={after}" if after else "")))
        assert not query.problems
        page = listing.page(waivers, query)
        rows += page.rows
        if not page.next:
            return rows
        after = page.next


def test_every_column_sorts_both_ways_and_the_pages_neither_skip_nor_repeat(many):
    mine = Waiver.objects.filter(requester=many["rita"])
    for key in listing.SORTS:
        for direction in ("", "-"):
            rows = walk(mine, f"sort={direction}{key}")
            assert len(rows) == 60 and len({w.pk for w in rows}) == 60, key
            keys = [(w.sort_key, w.pk) for w in rows]
            assert keys == sorted(keys, reverse=direction == "-"), key


def test_a_previous_page_is_the_page_before(many):
    mine = Waiver.objects.filter(requester=many["rita"])
    first = listing.page(mine, listing.read(QueryDict("sort=customer")))
    second = listing.page(mine, listing.read(QueryDict(f"sort=customer&after={first.next}")))
    back = listing.page(mine, listing.read(QueryDict(f"sort=customer&before={second.previous}")))
    assert [w.pk for w in back.rows] == [w.pk for w in first.rows]
    assert second.count == first.count == 60 and len(second.rows) == 10


def test_my_requests_has_no_silent_cap_and_its_links_page_through_all(many):
    rita = client_for("rita")
    page = rita.get("/requests/")
    assert "60 requests" in page.content.decode()
    seen = listed(page)
    while (found := re.search(r'rel="next" href="([^"]+)"', page.content.decode())) is not None:
        page = rita.get("/requests/" + found[1].replace("&amp;", "&"))
        seen += listed(page)
    assert len(seen) == len(set(seen)) == 60
    assert not Waiver.objects.filter(reference__in=seen, requester__username="sam").exists()


def test_a_count_past_the_exact_limit_says_more_than_and_still_pages_and_exports_all(
    many, monkeypatch
):
    monkeypatch.setattr(listing, "COUNT_MOST", 25)
    rita = client_for("rita")
    page = rita.get("/requests/?q=initech")
    assert "More than 25 requests found" in page.content.decode()
    assert "29 requests" not in page.content.decode() and "30 requests" not in page.content.decode()
    seen = listed(page)
    while (found := re.search(r'rel="next" href="([^"]+)"', page.content.decode())) is not None:
        page = rita.get("/requests/" + found[1].replace("&amp;", "&"))
        seen += listed(page)
    assert len(set(seen)) == 30
    exported = rita.get("/requests/?q=initech&export=csv")
    text = b"".join(exported.streaming_content).decode("utf-8-sig")
    assert len(list(csv.DictReader(io.StringIO(text)))) == 30
    monkeypatch.setattr(listing, "COUNT_MOST", 30)  # as many as it finds: exact
    html = rita.get("/requests/?q=initech").content.decode()
    assert "30 requests found" in html and "More than" not in html


SEARCHES = [
    ("initech", 30),  # part of a customer's name, in any case
    ("INITECH-003", 30),  # a customer's id
    ("Globex analytics", 15),  # two words: both must appear
    ("col-suite", 15),  # a product's code
    ("squad-17x working", 1),  # words of the justification
    ("rita", 60),  # the requester
    ("zz", 0),  # two letters: matched too, without the trigram index
    ("nothing-like-this", 0),
]


def test_search_finds_by_reference_customer_product_requester_and_justification(many):
    mine = Waiver.objects.filter(requester=many["rita"])
    for search, count in SEARCHES:
        found = listing.filtered(mine, listing.read(QueryDict(f"q={search}")))
        assert found.count() == count, search


def test_search_by_reference_and_after_an_edit(many):
    waiver = Waiver.objects.filter(requester=many["rita"]).order_by("id").first()
    query = listing.read(QueryDict(f"q={waiver.reference.lower()}"))
    assert list(listing.filtered(Waiver.objects.all(), query)) == [waiver]
    services.edit(waiver.reference, many["rita"], {"justification": {
        **waiver.justification, "benefit": "an unmistakable quokka"}})  # fmt: skip
    found = listing.filtered(Waiver.objects.all(), listing.read(QueryDict("q=quokka")))
    assert list(found) == [waiver]


def test_filters_narrow_to_what_they_say(many):
    mine = Waiver.objects.filter(requester=many["rita"])

    def count(params: str) -> int:
        query = listing.read(QueryDict(params))
        assert not query.problems, query.problems
        return listing.filtered(mine, query).count()

    everything = list(mine)
    assert count("family=Database") == sum(
        1 for w in everything if w.products.filter(family="Database").exists()
    )
    assert count("amount_min=1000&amount_max=1500") == sum(
        1 for w in everything if 1000 <= w.money["concession_base"] <= 1500
    )
    assert count("expiring_before=2027-01-25") == sum(
        1 for w in everything if w.end < date(2027, 1, 25)
    )
    assert count("active_from=2027-02-20&active_until=2027-02-21") == sum(
        1 for w in everything if w.end >= date(2027, 2, 20) and w.start <= date(2027, 2, 21)
    )
    assert count("status=draft&status=submitted") == 60
    assert count("status=approved") == 0
    assert count("type=temporary_access&region=AMER&risk=low") == sum(
        1 for w in everything if w.risk["overall"] == "low"
    )
    services.submit(everything[0].reference, many["rita"], now=NOW)
    assert count("tier=manager") == 1
    assert count("q=initech&family=Analytics&sort=-amount") == sum(
        1 for w in everything if w.customer.external_id == "INITECH-003"
        and w.products.filter(family="Analytics").exists()
    )  # fmt: skip


def test_every_bad_filter_is_named_by_its_label_at_once_and_nothing_breaks(many):
    rita = client_for("rita")
    bad = {"status": "bogus", "amount_min": "lots", "sort": "colour",
           "active_from": "2027-13-45", "after": "not-a-cursor"}  # fmt: skip
    page = rita.get("/requests/", bad)
    text = page.content.decode()
    assert page.status_code == 422
    for said in ("Status: choose from", "Amount from: give an amount", "Sort: choose a column",
                 "In force from: give a date", "this page link is out of date"):  # fmt: skip
        assert said in text
    shown = re.sub(r"<[^>]+>", " ", text)  # what a person reads: labels, not field names
    assert "amount_min" not in shown and "active_from" not in shown
    assert rita.get("/requests/", {"q": "\x00"}).status_code == 400  # refused at the door
    for odd in ("%", "'; drop table", "\u202e", "a" * 5000, '"', "*", "NEAR(", "^"):
        assert rita.get("/requests/", {"q": odd, "sort": odd, "after": odd}).status_code in (
            200, 422)  # fmt: skip


def test_exports_hold_exactly_what_is_filtered_and_no_cell_runs(many):
    rita = client_for("rita")
    sneaky = Waiver.objects.filter(requester=many["rita"]).order_by("id").first()
    services.edit(sneaky.reference, many["rita"], {"justification": {
        **sneaky.justification, "benefit": "=HYPERLINK(\"http://x\") initech"}})  # fmt: skip
    params = {"q": "initech", "sort": "reference"}
    wanted = [w.reference for w in listing.ordered(listing.filtered(
        Waiver.objects.filter(requester=many["rita"]), listing.read(QueryDict("q=initech"))),
        listing.read(QueryDict("sort=reference")))]  # fmt: skip
    answer = rita.get("/requests/", {**params, "export": "csv"})
    assert answer["Content-Disposition"].startswith("attachment")
    lines = list(csv.reader(io.StringIO(b"".join(answer.streaming_content).decode("utf-8-sig"))))
    assert lines[0][0] == "Request" and "Submitted (UTC)" in lines[0]
    assert [row[0] for row in lines[1:]] == wanted and len(wanted) == 31  # 30 and sneaky
    book = rita.get("/requests/", {**params, "export": "xlsx"})
    sheet = load_workbook(io.BytesIO(b"".join(book.streaming_content)), read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    assert [r[0] for r in rows[1:]] == wanted
    assert rows[1][rows[0].index("Start")].date() >= date(2027, 1, 1)  # a date, not text
    assert isinstance(rows[1][rows[0].index("Amount")], int | float)
    assert not any(isinstance(v, str) and v.startswith("=") for r in rows for v in r)


def test_saved_filters_are_each_persons_own(many):
    rita, sam = client_for("rita"), client_for("sam")
    rita.post("/filters/", {"name": "Initech", "path": "/requests/", "query": "q=initech"})
    page = rita.get("/requests/").content.decode()
    assert 'href="/requests/?q=initech">Initech</a>' in page
    assert "Initech</a>" not in sam.get("/requests/").content.decode()
    saved = SavedFilter.objects.get(user=many["rita"])
    assert sam.post(f"/filters/{saved.pk}/remove").status_code == 404
    rita.post(f"/filters/{saved.pk}/remove")
    assert not SavedFilter.objects.exists()
    # An address elsewhere is never where a saved filter leads.
    rita.post("/filters/", {"name": "Away", "path": "//evil.example/", "query": ""})
    assert SavedFilter.objects.get(name="Away").path == "/requests/"


def test_all_requests_and_a_customers_page_show_what_the_person_may_see(many):
    audrey, sam = client_for("audrey"), client_for("sam")
    assert "61 requests" in audrey.get("/requests/all/").content.decode()
    assert sam.get("/requests/all/").status_code == 403
    initech = audrey.get("/customers/INITECH-003/")
    assert (
        "Initech Holdings" in initech.content.decode() and "30 requests" in initech.content.decode()
    )
    assert "0 requests" in sam.get("/customers/INITECH-003/").content.decode()
    assert audrey.get("/customers/NOPE-999/").status_code == 404
    assert "15 requests" in audrey.get("/products/COL-SUITE/").content.decode()
