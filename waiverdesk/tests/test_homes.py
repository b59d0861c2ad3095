"""Each role starts where its day's work is, and the navigation shows only what it may use."""

import re

import pytest

from waiverdesk.testing import NOW, client_for, request_body
from waiverdesk.waivers import services


def links(client) -> set[str]:
    html = client.get("/settings/").content.decode()
    nav = html.split('aria-label="Main"')[1].split("</nav>")[0]
    return set(re.findall(r'href="([^"]+)"', nav))


@pytest.mark.parametrize(
    "person, home",
    [
        ("rita", "/requests/"),  # a requester: their requests
        ("mona", "/inbox/"),  # an approver: the inbox
        ("audrey", "/requests/all/"),  # an auditor: all requests
        ("adam", "/requests/all/"),  # an admin: all requests
        ("olga", "/governance/"),  # a control owner: the exceptions they own
        ("ivan", "/implementation/"),  # an implementer: the board
    ],
)
def test_each_role_lands_on_its_work(world, person, home):
    assert client_for(person).get("/")["Location"] == home


def test_an_approver_with_nothing_to_decide_still_starts_in_the_inbox(world):
    services.create(request_body(submit=True), world["rita"], now=NOW)
    assert client_for("mona").get("/")["Location"] == "/inbox/"
    assert client_for("dana").get("/")["Location"] == "/inbox/"


def test_navigation_offers_only_what_each_person_may_use(world):
    rita, mona, audrey = links(client_for("rita")), links(client_for("mona")), links(
        client_for("audrey"))  # fmt: skip
    assert {"/requests/", "/requests/new/"} <= rita
    assert not {"/inbox/", "/requests/all/", "/audit/", "/dashboard/", "/governance/"} & rita
    assert "/inbox/" in mona and "/requests/new/" not in mona and "/audit/" not in mona
    assert {"/requests/all/", "/audit/", "/governance/"} <= audrey and "/inbox/" not in audrey
    for person in ("rita", "mona", "audrey", "charlie"):
        assert "/settings/" in links(client_for(person))
