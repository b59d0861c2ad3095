"""Usage records in: good rows kept, bad rows reported by position, nothing counted twice."""

import json

import pytest
from django.core.management import call_command
from django.db import transaction

from waiverdesk.api import services as tokens
from waiverdesk.testing import NOW
from waiverdesk.usage import services
from waiverdesk.usage.models import UsageRecord


def record(n: int, **changes) -> dict:
    return {
        "record_id": f"meter-{n}",
        "customer": "GLOBEX-002",
        "product": "AN-EDGE",
        "metric": "seats",
        "quantity": 40 + n,
        "period_start": "2027-02-01",
        "period_end": "2027-02-28",
        **changes,
    }


def test_bad_rows_are_reported_by_position_and_good_rows_kept(world):
    batch = [
        record(1),
        record(2, customer="NOBODY"),
        record(3, quantity="lots"),
        record(4, period_end="2027-01-01"),
        {k: v for k, v in record(5).items() if k not in ("period_start", "period_end")}
        | {"timestamp": "2027-02-03T10:00:00Z"},
        "not a record",
    ]
    report = services.ingest(enumerate(batch), NOW)
    assert (report.accepted, report.duplicates) == (2, 0)
    assert [(r["position"], [e["code"] for e in r["errors"]]) for r in report.rejected] == [
        (1, ["unknown_customer"]),
        (2, ["invalid"]),
        (3, ["before_start"]),
        (5, ["invalid"]),
    ]
    stamped = UsageRecord.objects.get(record_id="meter-5")
    assert stamped.period_start == stamped.period_end == NOW.date().replace(month=2, day=3)


def test_a_batch_sent_again_is_not_counted_twice(world):
    batch = [record(n) for n in range(10)]
    assert services.ingest(enumerate(batch), NOW).accepted == 10
    again = services.ingest(enumerate(batch + [record(10), record(10)]), NOW)
    assert (again.accepted, again.duplicates) == (1, 11)
    assert UsageRecord.objects.count() == 11


def test_a_failure_midway_keeps_every_chunk_already_acknowledged(world, monkeypatch):
    monkeypatch.setattr(services, "CHUNK", 3)
    real_store = services._store
    calls = []

    def failing_on_the_third_chunk(rows):
        calls.append(len(rows))
        if len(calls) == 3:
            raise RuntimeError("the database went away")
        return real_store(rows)

    monkeypatch.setattr(services, "_store", failing_on_the_third_chunk)
    with pytest.raises(RuntimeError):
        services.ingest(enumerate(record(n) for n in range(10)), NOW)
    assert UsageRecord.objects.count() == 6  # two chunks acknowledged, nothing of the third
    monkeypatch.setattr(services, "_store", real_store)
    resent = services.ingest(enumerate(record(n) for n in range(10)), NOW)
    assert (resent.accepted, resent.duplicates) == (4, 6)


def test_the_file_import_reads_csv_and_ndjson_and_names_bad_lines(world, tmp_path, capsys):
    csv_file = tmp_path / "usage.csv"
    csv_file.write_text(
        "record_id,customer,product,metric,quantity,period_start,period_end\n"
        "a1,GLOBEX-002,AN-EDGE,seats,40,2027-02-01,2027-02-28\n"
        "a2,GLOBEX-002,NOPE,seats,40,2027-02-01,2027-02-28\n"
    )
    ndjson = tmp_path / "usage.ndjson"
    ndjson.write_text(json.dumps(record(1)) + "\n{broken\n" + json.dumps(record(1)) + "\n")
    call_command("usage", "import", str(csv_file))
    call_command("usage", "import", str(ndjson))
    out = capsys.readouterr().out
    assert "line 3: product: no such product" in out
    assert "1 records kept, 0 already received, 1 rejected" in out
    assert "line 2: record: a record is an object of fields" in out
    assert "1 records kept, 1 already received, 1 rejected" in out


def test_usage_arrives_through_the_api(world, client):
    token = tokens.create_token(world["ivan"], "meter", ["write"])[1]
    sent = client.post(
        "/api/v1/usage",
        {"records": [record(1), record(2, metric="")]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert sent.status_code == 200
    assert sent.json() == {
        "accepted": 1,
        "duplicates": 0,
        "rejected": [
            {"index": 1, "errors": [{"field": "metric", "code": "required",
                                      "message": "name the metric, e.g. seats"}]}
        ],
    }  # fmt: skip


def test_an_api_batch_is_one_transaction_with_the_callers(world):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.ingest(enumerate([record(1)]), NOW)
        raise RuntimeError("rolled back")
    assert not UsageRecord.objects.exists()


def test_a_batch_over_the_size_limit_is_refused_in_json(world, client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2**20
    token = tokens.create_token(world["ivan"], "meter", ["write"])[1]
    sent = client.post(
        "/api/v1/usage",
        {"records": [record(n, metric="x" * 50) for n in range(20_000)]},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert sent.status_code == 413
    assert sent.json()["errors"][0]["code"] == "too_large"
    assert not UsageRecord.objects.exists()
