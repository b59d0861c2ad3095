"""Bad input, once and clearly (I4): every problem of a body in one answer, the body's and
the policy's together; numbers finite and within bounds, texts within their limits and free
of NUL characters on every channel; nothing stored, never a 500."""

import json

import pytest
from django.test import Client

from waiverdesk.api import services as tokens
from waiverdesk.core.errors import Invalid
from waiverdesk.testing import NOW, request_body, request_form
from waiverdesk.waivers import email_intake, services
from waiverdesk.waivers.models import Waiver
from waiverdesk.waivers.tests.test_email_intake import WELL_FORMED, email

BROKEN = {
    "financials.list_value": ('{"list_value": NaN}', "must be a finite number"),
    "financials.concession": ('{"concession": Infinity}', "must be a finite number"),
    "financials.revenue_effect": ('{"revenue_effect": 1e400}', "must be a finite number"),
}


def api(user) -> Client:
    return Client(headers={"Authorization": f"Bearer {tokens.create_token(user, 't')[1]}"})


def fields(answer) -> dict[str, str]:
    return {e["field"]: e["message"] for e in answer.json()["errors"]}


def test_every_problem_comes_at_once_the_bodys_and_the_policys(world):
    body = request_body(end="2027-09-30", region="X" * 17)  # 242 days; at most 120
    del body["customer"]
    del body["scope"]
    expected = {
        "customer": "is required",
        "region": "must be at most 16 characters",
        "end": "lasts 242 days; a temporary_access exception may last at most 120 days",
        "scope.seats": "scope.seats is required for this type",
    }
    with pytest.raises(Invalid) as caught:
        services.create(body, world["rita"], now=NOW)
    assert {p.field: p.message for p in caught.value.problems} == expected
    answer = api(world["rita"]).post("/api/v1/waivers", json.dumps(body), "application/json")
    assert answer.status_code == 422 and fields(answer) == expected
    answer = api(world["rita"]).post("/api/v1/simulate", json.dumps(body), "application/json")
    assert answer.status_code == 422 and fields(answer) == expected
    assert not Waiver.objects.exists()


@pytest.mark.parametrize("field", BROKEN)
def test_numbers_that_are_not_finite_are_refused_at_their_field(world, field):
    raw, says = BROKEN[field]
    body = json.dumps(request_body()).replace(
        '"financials": {"currency": "EUR", "list_value": 12000, "concession": 3000}',
        f'"financials": {raw}',
    )
    answer = api(world["rita"]).post("/api/v1/waivers", body, "application/json")
    assert answer.status_code == 422
    assert fields(answer)[field] == says
    assert not Waiver.objects.exists()


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"scope": {"seats": 10**30}}, "scope.seats", "must be 10,000,000 or less"),
        ({"financials": {"concession": 1e16}}, "financials.concession", "1,000,000,000,000,000"),
        ({"financials": {"currency": "euro"}}, "financials.currency", "a currency code"),
        ({"region": "R" * 300}, "region", "must be at most 16 characters"),
        ({"license_type": "L" * 41}, "license_type", "must be at most 40 characters"),
        ({"products": ["P" * 65]}, "products[0]", "must be at most 64 characters"),
        ({"justification": {"benefit": "b" * 10_001}}, "justification.benefit", "10,000"),
        ({"scope": {"seats": 5, "colour": "x" * 300}}, "scope.colour", "a short text or a number"),
        ({"outcomes": [{"metric": "m", "target": float("inf")}]}, "outcomes[0].target", "finite"),
        ({"evidence": {"usage_forecast": "nul\x00here"}}, "evidence.usage_forecast", "NUL"),
    ],
)
def test_values_beyond_what_can_be_stored_are_refused_by_the_service(world, change, field, says):
    with pytest.raises(Invalid) as caught:
        services.create(request_body(**change), world["rita"], now=NOW)
    found = {p.field: p.message for p in caught.value.problems}
    assert says in found.get(field, ""), found
    assert not Waiver.objects.exists()


def test_the_api_never_stores_a_value_the_database_cannot_hold(world):
    client = api(world["rita"])
    for change in ({"region": "R" * 300}, {"scope": {"seats": 10**30}},
                   {"justification": {"benefit": "b" * 20_000}}):  # fmt: skip
        answer = client.post("/api/v1/waivers", json.dumps(request_body(**change)),
                             "application/json")  # fmt: skip
        assert answer.status_code == 422, answer.content
    nul = json.dumps(request_body(region="EM\u0000EA"))
    assert client.post("/api/v1/waivers", nul, "application/json").status_code == 400
    assert not Waiver.objects.exists()


def test_the_web_form_refuses_a_nul_with_400_and_long_values_at_their_field(world):
    rita = Client()
    rita.force_login(world["rita"])
    form = request_form()
    answer = rita.post("/requests/new/temporary_access/", {**form, "region": "EM\x00EA"})
    assert answer.status_code == 400 and b"NUL character" in answer.content
    answer = rita.post("/requests/new/temporary_access/",
                       {**form, "region": "R" * 300, "financials.list_value": "1e400"})  # fmt: skip
    page = answer.content.decode()
    assert answer.status_code == 422
    assert "must be at most 16 characters" in page and "must be a finite number" in page
    assert not Waiver.objects.exists()


def test_email_intake_answers_each_problem_of_a_strange_message(
    world, smtp_server, trusted_mail_server
):
    world["rita"].email = "rita@example.com"
    world["rita"].save()
    strange = WELL_FORMED.replace("financials.list_value: 12000", "financials.list_value: NaN")
    strange = strange.replace("region: AMER", "region: " + "R" * 40)
    answer = email_intake.receive(email("rita@example.com", strange), NOW)
    assert "List value (financials.list_value): must be a finite number" in answer.body
    assert "Region (region): must be at most 16 characters" in answer.body
    assert not Waiver.objects.exists()


def test_the_duration_hint_and_the_rule_count_the_same_days(world):
    rita = Client()
    rita.force_login(world["rita"])
    page = rita.get("/requests/new/temporary_access/").content.decode()
    assert "At most 120 days, start and end included." in page
    assert 'name="justification.benefit" rows="3" maxlength="10000"' in page  # stated, too
    body = request_body(start="2027-02-01", end="2027-05-31", submit=True)  # 120 days
    services.create(body, world["rita"], now=NOW)
    with pytest.raises(Invalid, match="lasts 121 days"):
        services.create({**body, "end": "2027-06-01"}, world["rita"], now=NOW)
