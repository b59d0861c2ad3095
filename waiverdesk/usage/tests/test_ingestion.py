"""Usage records in: good rows kept, bad rows reported by position, nothing counted twice.

The suite runs on both engines, and each checks records in its own SQL: the cases below
hold them to the same answers."""

import io
import json
from datetime import date

import pytest
from django.core.management import call_command
from django.db import transaction
from django.db.models import ProtectedError

from waiverdesk import staging
from waiverdesk.api import services as tokens
from waiverdesk.directory.models import Customer, Product
from waiverdesk.testing import NOW, at_once, postgres_only
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


FEB = (date(2027, 2, 1), date(2027, 2, 28))
MARCH_4 = (date(2027, 3, 4), date(2027, 3, 4))
STAMPED = {"period_start": None, "period_end": None}
# (changes to a good record, what is stored: (quantity, start, end), or the fields refused)
CASES = [
    ({"quantity": "12.5"}, (12.5, *FEB)),
    ({"quantity": " 7 "}, (7, *FEB)),
    ({"quantity": "1e3"}, (1000, *FEB)),
    ({"quantity": 0}, (0, *FEB)),
    ({"record_id": "  padded  "}, (41, *FEB)),
    ({"period_start": "2028-02-29", "period_end": "2028-02-29"},
     (41, date(2028, 2, 29), date(2028, 2, 29))),
    (STAMPED | {"timestamp": "2027-03-04T10:00:00Z"}, (41, *MARCH_4)),
    (STAMPED | {"timestamp": "2027-03-04T23:30:00-05:00"}, (41, *MARCH_4)),
    (STAMPED | {"timestamp": "2027-03-04 10:00"}, (41, *MARCH_4)),
    (STAMPED | {"timestamp": "2027-03-04"}, (41, *MARCH_4)),
    ({"timestamp": "2027-03-04T10:00:00.250Z"}, (41, *MARCH_4)),
    ({"timestamp": ""}, (41, *FEB)),
    ({"quantity": "-3"}, ["quantity"]),
    ({"quantity": "lots"}, ["quantity"]),
    ({"quantity": "1,5"}, ["quantity"]),
    ({"quantity": "NaN"}, ["quantity"]),
    ({"quantity": "1e999"}, ["quantity"]),
    ({"quantity": ""}, ["quantity"]),
    ({"quantity": True}, ["quantity"]),
    ({"quantity": None}, ["quantity"]),
    ({"record_id": "   "}, ["record_id"]),
    ({"record_id": "x" * 101}, ["record_id"]),
    ({"metric": None}, ["metric"]),
    ({"customer": "globex-002"}, ["customer"]),
    ({"product": None, "metric": ""}, ["product", "metric"]),
    ({"period_end": "2027-02-30"}, ["period"]),
    ({"period_start": "2027-2-1"}, ["period"]),
    ({"period_start": "0000-01-01"}, ["period"]),
    ({"period_start": "2027-13-01"}, ["period"]),
    ({"period_start": "01/02/2027"}, ["period"]),
    ({"period_end": None}, ["period"]),
    ({"period_end": "2027-01-31"}, ["period_end"]),
    (STAMPED | {"timestamp": "2027-03-04T25:00:00Z"}, ["period"]),
    (STAMPED | {"timestamp": "2027-02-30T10:00:00Z"}, ["period"]),
    (STAMPED | {"timestamp": "yesterday"}, ["period"]),
    (STAMPED | {"timestamp": "1772618400"}, ["period"]),
]  # fmt: skip


def test_each_value_is_checked_alike_on_every_engine(world):
    batch = [record(n, **({"quantity": 41} | changes)) for n, (changes, _) in enumerate(CASES)]
    report = services.ingest(enumerate(batch), NOW)
    refused = {bad["position"]: [e["field"] for e in bad["errors"]] for bad in report.rejected}
    stored = {key: values for key, *values in UsageRecord.objects.values_list(
        "record_id", "quantity", "period_start", "period_end")}  # fmt: skip
    for n, (changes, expected) in enumerate(CASES):
        if isinstance(expected, list):
            assert refused.get(n) == expected, changes
        else:
            assert stored.get(batch[n]["record_id"].strip()) == list(expected), changes
    assert report.accepted == len(stored) == len(CASES) - len(refused)


def test_a_batch_sent_again_is_not_counted_twice(world):
    batch = [record(n) for n in range(10)]
    assert services.ingest(enumerate(batch), NOW).accepted == 10
    again = services.ingest(enumerate(batch + [record(10), record(10)]), NOW)
    assert (again.accepted, again.duplicates) == (1, 11)
    assert UsageRecord.objects.count() == 11


def test_a_failure_midway_keeps_every_chunk_already_acknowledged(world, monkeypatch):
    monkeypatch.setattr(staging, "CHUNK", 3)
    real_keep = staging.keep
    calls = []

    def failing_on_the_third_chunk(spec, rows, *args, **kwargs):
        calls.append(len(rows))
        if len(calls) == 3:
            raise RuntimeError("the database went away")
        return real_keep(spec, rows, *args, **kwargs)

    monkeypatch.setattr(staging, "keep", failing_on_the_third_chunk)
    with pytest.raises(RuntimeError):
        services.ingest(enumerate(record(n) for n in range(10)), NOW)
    assert UsageRecord.objects.count() == 6  # two chunks acknowledged, nothing of the third
    monkeypatch.setattr(staging, "keep", real_keep)
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
    out, err = capsys.readouterr()
    assert "3 lines read (100%)" in err
    assert "line 3: product: no such product" in out
    assert "1 records kept, 0 already received, 1 rejected" in out
    assert "line 2: record: a record is an object of fields" in out
    assert "1 records kept, 1 already received, 1 rejected" in out


HEADER = "record_id,customer,product,metric,quantity,period_start,period_end\n"


def line(n: int, product: str = "AN-EDGE") -> str:
    return f"r{n},GLOBEX-002,{product},seats,{n},2027-02-01,2027-02-28\n"


def imported(text: str, chunk: int, monkeypatch) -> services.Report:
    monkeypatch.setattr(staging, "CHUNK", chunk)
    return services.import_file(io.BytesIO(text.encode()), "csv", NOW)


@pytest.mark.parametrize("chunk", [3, 50_000])
def test_a_csv_file_of_any_shape_is_read_with_its_line_numbers(world, monkeypatch, chunk):
    text = (
        "\ufeffproduct, note ,record_id,customer,metric,quantity,period_start,period_end\n"
        'AN-EDGE,"two\nlines",a1,GLOBEX-002,seats,40,2027-02-01,2027-02-28\n'  # lines 2-3
        "NOPE,,a2,GLOBEX-002,seats,40,2027-02-01,2027-02-28\n"  # line 4
        "AN-EDGE,,a3,GLOBEX-002,seats\n"  # line 5: short
        "\n"
        'AN-EDGE,"say ""hi""",a4,GLOBEX-002,seats,1,2027-02-01,2027-02-28,extra\n'  # line 7
        "AN-EDGE,,a5,GLOBEX-002,seats,2,2027-02-01,2027-02-30\n"  # line 8
    )
    report = imported(text, chunk, monkeypatch)
    assert (report.accepted, report.duplicates) == (2, 0)
    assert [(r["position"], [e["field"] for e in r["errors"]]) for r in report.rejected] == [
        (4, ["product"]),
        (5, ["quantity", "period"]),
        (8, ["period"]),
    ]
    assert set(UsageRecord.objects.values_list("record_id", flat=True)) == {"a1", "a4"}


def test_a_file_read_in_chunks_names_the_line_of_each_bad_row(world, monkeypatch):
    text = HEADER + "".join(line(n) for n in range(7)) + line(7, product="NOPE") + line(8)
    report = imported(text, 4, monkeypatch)
    assert (report.accepted, report.duplicates) == (8, 0)
    assert [r["position"] for r in report.rejected] == [9]  # the header is line 1


def test_records_sent_twice_in_a_file_or_again_count_once(world, monkeypatch):
    text = HEADER + "".join(line(n) for n in [1, 2, 1, 3, 4, 5, 2, 6])
    first = imported(text, 3, monkeypatch)
    assert (first.accepted, first.duplicates, first.rejected) == (6, 2, [])
    again = imported(text + line(7), 3, monkeypatch)
    assert (again.accepted, again.duplicates, again.rejected) == (1, 8, [])
    assert UsageRecord.objects.count() == 7


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


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_file_is_stored_by_several_connections_at_once(
    committed_world, monkeypatch
):
    monkeypatch.setattr(staging, "WORKERS", 3)
    text = HEADER + "".join(line(n) for n in range(200)) + line(200, product="NOPE")
    report = imported(text + line(5), 10, monkeypatch)
    assert (report.accepted, report.duplicates) == (200, 1)
    assert [r["position"] for r in report.rejected] == [202]
    assert UsageRecord.objects.count() == 200


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_two_imports_of_one_file_at_once_keep_each_record_once(
    committed_world, monkeypatch
):
    monkeypatch.setattr(staging, "CHUNK", 25)
    text = (HEADER + "".join(line(n) for n in range(500))).encode()
    reports = at_once(2, lambda i: services.import_file(io.BytesIO(text), "csv", NOW))
    assert sum(r.accepted for r in reports) == 500
    assert sum(r.duplicates for r in reports) == 500
    assert UsageRecord.objects.count() == 500


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_a_failing_chunk_stops_the_import_and_keeps_what_was_stored(
    committed_world, monkeypatch
):
    real_keep = staging.keep_csv

    def failing_at_line_52(spec, lines, first, *args):
        if first == 52:
            raise RuntimeError("the database went away")
        return real_keep(spec, lines, first, *args)

    monkeypatch.setattr(staging, "keep_csv", failing_at_line_52)
    text = HEADER + "".join(line(n) for n in range(200))
    with pytest.raises(RuntimeError):
        imported(text, 10, monkeypatch)
    stored = UsageRecord.objects.count()
    assert stored % 10 == 0 and stored < 200
    assert not UsageRecord.objects.filter(record_id__in=[f"r{n}" for n in range(50, 60)]).exists()
    monkeypatch.setattr(staging, "keep_csv", real_keep)
    again = imported(text, 10, monkeypatch)
    assert (again.accepted, again.duplicates) == (200 - stored, stored)


def test_a_customer_or_product_with_usage_is_not_deleted(world):
    services.ingest(enumerate([record(1)]), NOW)
    for reference in (Customer.objects.get(external_id="GLOBEX-002"),
                      Product.objects.get(code="AN-EDGE")):  # fmt: skip
        with pytest.raises(ProtectedError) as refused:
            reference.delete()
        assert list(refused.value.protected_objects) == [UsageRecord.objects.get()]
    assert UsageRecord.objects.get().customer.external_id == "GLOBEX-002"
