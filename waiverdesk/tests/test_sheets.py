"""Spreadsheet exports as Excel, LibreOffice and billing systems write them (sheets/*), read
alike by `usage import` and `billing import`: encodings, delimiters, headers in words, blank
rows, grouped and quoted figures, dates in other orders; and errors in plain words."""

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from waiverdesk.billing.models import InvoiceLine
from waiverdesk.usage.models import UsageRecord

SHEETS = Path(__file__).parent / "sheets"


def run(capsys, *args):
    """The command's standard output and error, and its failure (or None)."""
    try:
        call_command(*args)
        failure = None
    except CommandError as error:
        failure = error
    out, err = capsys.readouterr()
    return out, err, failure


def usage():
    return {r.record_id: (r.customer.external_id, r.metric, r.quantity, str(r.period_start),
                          str(r.period_end)) for r in UsageRecord.objects.all()}  # fmt: skip


def test_excel_utf8_with_bom_crlf_trailing_rows_and_spaces(world, capsys):
    out, err, failure = run(capsys, "usage", "import", str(SHEETS / "usage_excel_utf8_bom.csv"))
    assert failure is None, out
    assert "2 records kept, 0 already received, 0 rejected" in out
    assert usage()["x2"] == ("ACME-001", "seats", 1250, "2027-02-01", "2027-02-28")
    assert "lines read (100%)" in err


def test_excel_semicolons_in_windows_1252_with_european_dates(world, capsys):
    file = str(SHEETS / "usage_excel_semicolon_cp1252.csv")
    out, _err, failure = run(capsys, "usage", "import", file, "--date-format", "%d.%m.%Y")
    assert failure is None, out
    assert usage() == {
        "é1": ("GLOBEX-002", "Sitzplätze", 12, "2027-02-01", "2027-02-28"),
        "é2": ("ACME-001", "Sitzplätze", 1250, "2027-03-01", "2027-03-31"),
    }


def test_tabs_in_latin_1_and_excel_unicode_text_in_utf_16(world, capsys):
    for name in ("usage_libreoffice_tab_latin1.tsv", "usage_excel_unicode_text.txt"):
        out, _err, failure = run(capsys, "usage", "import", str(SHEETS / name))
        assert failure is None and "1 records kept" in out, (name, out)
    assert usage()["l1"][1] == "utilisé" and usage()["t1"][2] == 9


def test_an_encoding_can_be_named_and_an_unknown_one_is_refused(world, capsys):
    file = str(SHEETS / "usage_libreoffice_tab_latin1.tsv")
    out, _err, failure = run(capsys, "usage", "import", file, "--encoding", "utf-8")
    assert failure is None and usage()["l1"][1] == "utilis\ufffd"  # as told: misread
    UsageRecord.objects.all().delete()
    _out, _err, failure = run(capsys, "usage", "import", file, "--encoding", "klingon")
    assert "no encoding named klingon" in str(failure)


def test_us_dates_and_quoted_thousands_with_ambiguous_figures_refused(world, capsys):
    file = str(SHEETS / "usage_us_dates_quoted_thousands.csv")
    out, _err, failure = run(capsys, "usage", "import", file, "--date-format", "%m/%d/%Y")
    assert failure is None
    assert usage() == {"u1": ("GLOBEX-002", "seats", 12000, "2027-02-01", "2027-02-28")}
    assert "line 3: quantity: a number, zero or more" in out  # 1,5: a decimal or a group?
    assert "line 4: period: " in out  # 2027-02-30 is no day
    assert "Error" not in out and "Traceback" not in out


def test_a_header_of_another_file_is_one_error_naming_the_columns(world, capsys):
    file = str(SHEETS / "usage_not_a_usage_header.csv")
    out, _err, failure = run(capsys, "usage", "import", file)
    assert failure is not None and failure.returncode != 0
    message = str(failure)
    assert message.count("\n") == 1  # "refused:" and one problem
    assert "Expected the columns record_id, customer, product, metric, quantity" in message
    assert "found Name, Email, Phone" in message
    assert "line " not in out and not UsageRecord.objects.exists()
    _out, _err, failure = run(capsys, "billing", "import", file)
    assert "Expected the columns invoice, line, customer" in str(failure)


def test_billing_excel_with_dollars_percent_and_headers_in_words(world, capsys):
    out, err, failure = run(capsys, "billing", "import", str(SHEETS / "billing_excel_utf8_bom.csv"))
    assert failure is None, out
    assert "2 lines kept, 0 already imported, 0 rejected" in out and "lines read" in err
    first, second = InvoiceLine.objects.order_by("line")
    assert (first.quantity, first.unit_price, first.discount_pct) == (1200, 1200.5, 15)
    assert second.discount_pct == 0  # left blank: none


def test_billing_semicolons_cp1252_and_day_first_dates(world, capsys):
    file = str(SHEETS / "billing_semicolon_cp1252_eu_dates.csv")
    out, _err, failure = run(capsys, "billing", "import", file, "--date-format", "%d/%m/%Y")
    assert failure is None, out
    line = InvoiceLine.objects.get()
    assert (line.invoice, str(line.period_start), str(line.period_end)) == (
        "RÉF-7", "2027-02-01", "2027-02-28"
    )  # fmt: skip


def test_billing_refuses_negative_quantities_and_discounts_over_100_in_words(world, capsys):
    out, _err, failure = run(capsys, "billing", "import", str(SHEETS / "billing_bad_values.csv"))
    assert failure is None
    assert out.splitlines() == [
        "line 2: quantity: a number, zero or more",
        "line 3: discount_pct: a discount from 0 to 100 %",
        "line 4: line: a line number: a whole number, 1 or more",
        "line 5: period_end: the period ends before it starts",
        "1 lines kept, 0 already imported, 4 rejected",
    ]
    assert list(InvoiceLine.objects.values_list("line", flat=True)) == [5]


@pytest.mark.parametrize("command", ["usage", "billing"])
def test_nothing_kept_is_a_failure_and_the_rules_are_in_the_help(world, capsys, tmp_path, command):
    empty = tmp_path / "empty.csv"
    empty.write_text({"usage": "record_id,customer,product,metric,quantity,period_start\n",
                      "billing": (SHEETS / "billing_bad_values.csv").read_text().splitlines()[0]
                      + "\n"}[command])  # fmt: skip
    _out, _err, failure = run(capsys, command, "import", str(empty))
    assert failure is not None and "nothing was imported" in str(failure)
    with pytest.raises(SystemExit):
        call_command(command, "import", "--help")
    help_text = capsys.readouterr().out
    assert "--date-format" in help_text and "1,234.5" in help_text and "--encoding" in help_text
