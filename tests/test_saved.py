"""verify also checks what the user's own application computed: the values a workbook was saved with.

A file saved by LibreOffice (here, headless, as a user's Calc saves it) carries LibreOffice's results;
one that names Microsoft Excel carries Excel's. verify compares them with torch and reports them apart
from its own recalculation; it says when saved values cannot be the application's own (lessonxl's
cached torch values, openpyxl, XlsxWriter, a file saved without recalculating) instead of guessing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

from lessonxl.report import exit_code, format_summary, run_notes, saved_lines
from lessonxl.pipeline import verify_paths

from conftest import cell_of, resave_with_libreoffice, rewrite_part, sheet_parts

REPO = Path(__file__).resolve().parents[1]
EXCEL_APP = ("<Application>Microsoft Excel</Application><DocSecurity>0</DocSecurity>"
             "<AppVersion>16.0300</AppVersion>")


def as_if_saved_by_excel(source: Path, target: Path) -> None:
    """`source` (saved by LibreOffice, values its own) with docProps/app.xml naming Excel 16."""
    rewrite_part(source, target, "docProps/app.xml",
                 lambda xml: re.sub(r"<Application>.*?</AppVersion>", EXCEL_APP, xml, flags=re.S))


def alter_saved_value(source: Path, target: Path, sheet: str, cell: str) -> float:
    """Double the value saved for the formula cell `cell`; the old value."""
    found = {}

    def edit(xml: str) -> str:
        pattern = re.compile(rf'(<c r="{cell}"[^>]*><f[^>]*>[^<]*</f><v>)([^<]*)(</v>)')
        match = pattern.search(xml)
        assert match, f"{sheet}!{cell} has no saved value"
        found["old"] = float(match.group(2))
        return pattern.sub(lambda m: f"{m.group(1)}{2 * found['old'] + 1!r}{m.group(3)}", xml, count=1)
    rewrite_part(source, target, sheet_parts(source)[sheet], edit)
    return found["old"]


def drop_saved_values(source: Path, target: Path, sheet: str, count: int) -> None:
    def edit(xml: str) -> str:
        return re.sub(r"(<c r=\"[A-Z]+[0-9]+\"[^>]*><f[^>]*>[^<]*</f>)<v>[^<]*</v>", r"\1", xml, count=count)
    rewrite_part(source, target, sheet_parts(source)[sheet], edit)


@pytest.fixture(scope="module")
def cases(generated, tmp_path_factory):
    """entropy_example saved by LibreOffice, then made into the cases below; all verified at once."""
    folder = tmp_path_factory.mktemp("saved")
    source = generated["entropy_example"]
    by_libreoffice = resave_with_libreoffice([source], folder / "lo")[source]
    files = {"libreoffice": by_libreoffice, "lessonxl": source}
    as_if_saved_by_excel(by_libreoffice, folder / "excel.xlsx")
    files["excel"] = folder / "excel.xlsx"
    sheet, cell = cell_of(by_libreoffice, "softmax!probs", 1, 2)
    alter_saved_value(files["excel"], folder / "excel_altered.xlsx", sheet, cell)
    files["excel, one value altered"] = folder / "excel_altered.xlsx"
    alter_saved_value(by_libreoffice, folder / "lo_stale.xlsx", sheet, cell)
    files["libreoffice, one value stale"] = folder / "lo_stale.xlsx"
    files["no app.xml"] = folder / "no_app.xlsx"
    _without_part(by_libreoffice, files["no app.xml"], "docProps/app.xml")
    drop_saved_values(files["excel"], folder / "missing.xlsx", "multiclass_xent", 3)
    files["excel, three values missing"] = folder / "missing.xlsx"
    book = openpyxl.load_workbook(by_libreoffice)
    book.save(folder / "openpyxl.xlsx")
    files["openpyxl"] = folder / "openpyxl.xlsx"
    reports = dict(zip(files, verify_paths(list(files.values()), device="cpu")))
    return files, reports, f"{sheet}!{cell}"


def _without_part(source: Path, target: Path, part: str) -> None:
    import zipfile
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            if item.filename != part:
                new.writestr(item, old.read(item.filename))


def test_values_saved_by_libreoffice_are_compared_and_reported_apart(cases):
    _, reports, _ = cases
    report = reports["libreoffice"]
    assert report.passed and report.saved.evidence
    assert report.saved.application.startswith("LibreOffice 7.")
    assert sum(check.cells for check in report.saved.checks) == report.formula_cells == 249
    assert report.saved.missing == 0
    assert "computed by LibreOffice 7." in format_summary(report)
    assert "249 of 249 formula cells equal torch" in format_summary(report).splitlines()[1]


def test_an_excel_value_that_differs_fails_naming_excel_and_the_cell(cases):
    _, reports, cell = cases
    report = reports["excel, one value altered"]
    assert all(check.passed for check in report.checks), "verify's own recalculation is right"
    assert report.saved.application == "Microsoft Excel 16.0300"
    failing = [check for check in report.saved.checks if not check.passed]
    assert [check.mismatches for check in failing] == [[cell]]
    assert exit_code([report]) == 1
    text = format_summary(report)
    assert text.startswith("FAIL") and "computed by Microsoft Excel 16.0300: 1 of 249 formula cells differ" in text
    assert f"softmax!probs: 1 of 10 cells differ from torch ({cell})" in text
    assert "formula cells equal torch" not in text.splitlines()[0]
    assert "if Microsoft Excel 16.0300 saved 1 cell it had not recalculated" in text and "Ctrl+Alt+F9" in text
    assert reports["excel"].passed and reports["excel"].saved.application == "Microsoft Excel 16.0300"


def test_a_value_libreoffice_saved_without_recalculating_is_called_stale_with_what_to_press(cases):
    """LibreOffice is verify's own engine: where its recalculation agrees with torch and the value it saved
    does not, the value is stale (LibreOffice 7.4 misses updates through legacy array formulas in a file
    it opened; a user saves what it shows)."""
    files, reports, cell = cases
    report = reports["libreoffice, one value stale"]
    assert all(check.passed for check in report.checks) and not report.passed and exit_code([report]) == 1
    summary, *rest = format_summary(report).splitlines()
    assert summary.startswith(f"FAIL {files['libreoffice, one value stale']}: entropy_example, 1 of the values "
                              "LibreOffice 7.")
    assert "formula cells equal torch" not in summary  # a FAIL line never says every cell equals torch
    [line] = rest
    saved = openpyxl.load_workbook(files["libreoffice, one value stale"], data_only=True)
    shows = saved[cell.partition("!")[0]][cell.partition("!")[2]].value
    torch_value = openpyxl.load_workbook(files["libreoffice"], data_only=True)[
        cell.partition("!")[0]][cell.partition("!")[2]].value
    assert re.fullmatch(rf"  LibreOffice 7[0-9.]+ saved 1 cell it had not recalculated \({re.escape(cell)} shows "
                        rf"{shows:.6g}, torch {torch_value:.6g}\): press Ctrl\+Shift\+F9 \(Data > Calculate > "
                        r"Recalculate Hard\), then save again", line), line


def test_a_file_without_app_xml_is_compared_as_an_unnamed_application(cases):
    _, reports, _ = cases
    report = reports["no app.xml"]
    assert report.passed and report.saved.evidence
    assert report.saved.application.startswith("an application that does not name itself")


def test_cells_without_a_saved_value_are_counted_not_guessed(cases):
    _, reports, _ = cases
    report = reports["excel, three values missing"]
    assert report.passed and report.saved.missing == 3
    assert sum(check.cells for check in report.saved.checks) == 249 - 3
    assert "3 formula cells hold no saved value" in format_summary(report)


@pytest.mark.parametrize("case, words", [
    ("lessonxl", "lessonxl wrote them: they are torch's own results"),
    ("openpyxl", "openpyxl does not calculate"),
])
def test_saved_values_that_are_no_applications_own_are_not_compared(cases, case, words):
    _, reports, _ = cases
    report = reports[case]
    assert report.passed and not report.saved.evidence and report.saved.checks == []
    said = format_summary(report) + "\n".join(run_notes([report])) + "\n".join(saved_lines(report))
    assert words in said


def test_json_carries_both_comparisons(cases):
    files, _, cell = cases
    result = subprocess.run([sys.executable, "-m", "lessonxl", "verify", "--json", "--device", "cpu",
                             str(files["excel, one value altered"])], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    [report] = json.loads(result.stdout)
    assert report["checks"] and all(check["passed"] for check in report["checks"])
    assert report["saved"]["application"] == "Microsoft Excel 16.0300"
    assert [c["mismatches"] for c in report["saved"]["checks"] if not c["passed"]] == [[cell]]


def test_a_workbook_from_the_previous_release_still_verifies():
    """Release 0.1.0 wrote data!true_intercept and data!true_slope, since renamed for Google Sheets."""
    old = REPO / "tests" / "fixtures" / "graddesc_0.1.0.xlsx"
    names = openpyxl.load_workbook(old, read_only=True)["data"].defined_names
    assert {"true_intercept", "true_slope"} <= set(names) and "intercept_truth" not in names
    [report] = verify_paths([old], device="cpu")
    assert report.passed and report.uncovered == [], report.error
    assert report.saved.application == "XlsxWriter" and not report.saved.evidence
