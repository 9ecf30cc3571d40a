"""The Python API a notebook uses, and the example notebook itself, executed as a student would run it."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

import lessonxl

from conftest import cell_of, set_cells

REPO = Path(__file__).resolve().parents[1]


def test_the_public_names():
    assert set(lessonxl.__all__) == {"generate", "verify", "watch", "read", "Workbook", "Report", "Reports",
                                     "LessonxlError", "__version__"}
    assert all(getattr(lessonxl, name).__doc__ for name in ("generate", "verify", "watch", "read", "Workbook"))


def test_generate_verify_read_back_and_report_frames(generated, tmp_path):
    [path] = lessonxl.generate(["entropy_example"], out=tmp_path, device="cpu")
    assert path.read_bytes() == generated["entropy_example"].read_bytes()
    edited = tmp_path / "edited.xlsx"
    set_cells(path, edited, [(*cell_of(path, "softmax!logits"), 4.0)])
    reports = lessonxl.verify([path, edited], device="cpu")
    assert reports.passed and reports.exit_code == 0
    frame = reports.to_frame()
    assert list(frame.columns) == ["workbook", "computed_by", "sheet", "quantity", "cells", "max_abs_err",
                                   "max_rel_err", "worst_cell", "result", "detail", "mistakes", "inherited"]
    assert len(frame) == sum(len(report.checks) for report in reports) and set(frame["result"]) == {"pass"}
    assert "<table" not in reports._repr_html_() and "249 of 249 formula cells equal torch" in reports._repr_html_()
    assert repr(reports) == "<Reports: 2 files, 2 passed, 0 failed, 0 unusable>"
    book = lessonxl.read(edited)
    # the recalculated softmax of the edited row, against torch's own softmax of the inputs read back
    logits = book.tensor("softmax!logits")
    assert logits[0, 0] == 4.0
    torch.testing.assert_close(book.tensor("softmax!probs"), torch.softmax(logits, dim=1), rtol=1e-12, atol=0)
    assert book.frame("softmax!probs").shape == (2, 5)
    # keyed sheet!name, as lessons key them; the file's own name softmax_probs finds the same
    assert "softmax!probs" in book.names and "softmax_probs" not in book.names
    assert book.tensor("softmax_probs").equal(book.tensor("softmax!probs"))
    shown = repr(book)  # a line or two, not every array (graddesc's ran to 1.4 million characters)
    assert shown.count("\n") == 1 and len(shown) < 300 and "entropy_example" in shown and str(edited) in shown


def test_a_failing_report_shows_failures_first(generated, tmp_path):
    from conftest import mutate_formula
    mutant = tmp_path / "mutant.xlsx"
    mutate_formula(generated["entropy_example"], mutant, "softmax", "K6")
    [report] = lessonxl.verify(mutant, device="cpu")
    assert not report.passed and report.exit_code == 1
    html = report._repr_html_()
    assert "<table" in html and "FAIL" in html and "softmax!K6" in html
    shown = repr(report)  # one line (the dataclass's own repr of a failing report ran to 100 KB)
    assert shown.startswith(f"<Report FAIL {mutant}: entropy_example, 7 of ") and "\n" not in shown \
        and len(shown) < 300, shown
    listed = repr(lessonxl.Reports([report, lessonxl.Report("broken.xlsx", error="broken.xlsx: not a workbook")]))
    assert listed == f"<Reports: 2 files, 0 passed, 1 failed, 1 unusable; first: {shown[len('<Report '):-1]}>"
    failing = report.to_frame().query("result == 'FAIL'")
    assert list(failing["quantity"]) == ["exp_logits", "sum_exp", "probs"]  # the change and what it feeds
    assert "softmax!K6" in failing["detail"].iloc[0]
    assert list(failing["mistakes"]) == ["softmax!K6", "", ""] and failing["inherited"].tolist()[1:] == [1, 5]
    assert html.index("the mistake is at softmax!K6") < html.index("<table")


def test_errors_raise_one_exception_type_with_the_command_lines_message(tmp_path):
    missing = tmp_path / "nope.xlsx"
    with pytest.raises(lessonxl.LessonxlError, match=f"^{missing}: no such file$"):
        lessonxl.verify(missing)
    [report] = lessonxl.verify(missing, raise_on_error=False)
    assert report.exit_code == 2 and report.to_frame()["result"].tolist() == ["error"]
    with pytest.raises(lessonxl.LessonxlError, match="unknown workbook 'nope'"):
        lessonxl.generate(["nope"], out=tmp_path)
    with pytest.raises(lessonxl.LessonxlError, match="has no defined name softmax!nope"):
        lessonxl.read(REPO / "workbooks" / "entropy_example.xlsx").grid("softmax!nope")


def test_the_example_notebook_runs(tmp_path, monkeypatch):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))  # the kernel's: where the notebook's workbooks go
    notebook = nbformat.read(REPO / "docs" / "lessonxl_in_a_notebook.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "commit the notebook without outputs"
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert re.search(r"([0-9,]+) of \1 formula cells equal torch", html)  # every cell, however many
    assert not list(temporary.iterdir())  # the notebook removes what it wrote (it left 1.9 MB a run)
