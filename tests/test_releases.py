"""Every file a release wrote verifies, edited and saved through LibreOffice as a user would, on the
sheets that release had (issue 20, item 6).

The fixtures are each workbook as releases 0.1.0 to 0.4.0 committed it (git history: the commit that set
each version), one input changed and the file saved by LibreOffice; identical bytes make one fixture.
`scripts/make_release_fixtures.py` made them and says how. Only collab_filter's sheets changed across
releases: 0.3.0 added `interpret` (and dotprod's `movie_titles`, which only interpret reads), 0.5.0 held-out
ratings, weight decay on gd_steps and principal components by repeated squaring, all recorded in
`registry.ADDED`; files before 0.5.0 are verified on their sheets as they were (`CollabFilter.specs_before`).
So a collab_filter.xlsx of 0.2.0 (or of 0.1.0's last commit) is verified on its eight sheets, one of 0.3.0 or
0.4.0 on its sheets without held-out cells, while a current one whose interpret was deleted is refused, naming
the sheet.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openpyxl
import pytest
import torch

from lessonxl import reader, registry
from lessonxl.errors import LessonxlError
from lessonxl.registry import Earlier, by_name, by_sheets
from lessonxl.pipeline import verify_paths

FIXTURES = Path(__file__).with_name("fixtures")

#: release -> workbook -> the fixture holding that release's workbook, edited. At 0.1.0's own commit
#: (1e430b6) only entropy_example.xlsx existed; the other workbooks of its last commit (48fadc5) are
#: byte-identical to 0.2.0's. entropy_example.xlsx differs between 0.1.0 and 0.2.0 only by lessonxl's
#: stamp in the zip comment, gone once LibreOffice saves it.
RELEASES = {
    "0.1.0": {"entropy_example": "entropy_example_0.1.0_edited.xlsx"},
    "0.2.0": {"collab_filter": "collab_filter_0.2.0_edited.xlsx", "graddesc": "graddesc_0.2.0_edited.xlsx",
              "entropy_example": "entropy_example_0.1.0_edited.xlsx",
              "regularization": "regularization_0.2.0_edited.xlsx"},
    "0.3.0": {"collab_filter": "collab_filter_0.3.0_edited.xlsx", "graddesc": "graddesc_0.3.0_edited.xlsx",
              "entropy_example": "entropy_example_0.1.0_edited.xlsx",
              "regularization": "regularization_0.2.0_edited.xlsx"},
}
RELEASES["0.4.0"] = RELEASES["0.3.0"]  # 0497f3c: the four workbooks byte-identical to 0.3.0's

#: fixture -> (the edited input, its cell in the range, the value typed, the value the release wrote,
#: a quantity downstream of it)
EDITS = {
    "entropy_example_0.1.0_edited.xlsx": ("softmax!logits", (0, 0), 1.5, -2.17, "softmax!probs"),
    "collab_filter_0.2.0_edited.xlsx": ("gd_steps!lr", (0, 0), 0.5, 1.0, "gd_steps!user_factors_12"),
    "collab_filter_0.3.0_edited.xlsx": ("gd_steps!lr", (0, 0), 0.5, 1.0, "gd_steps!user_factors_12"),
    "graddesc_0.2.0_edited.xlsx": ("adam!lr", (0, 0), 0.1, 0.3, "adam!slope"),
    "graddesc_0.3.0_edited.xlsx": ("adam!lr", (0, 0), 0.1, 0.3, "adam!slope"),
    "regularization_0.2.0_edited.xlsx": ("l2_vs_wd_adam!wd", (0, 0), 0.1, 0.01, "l2_vs_wd_adam!wd_slope"),
}
NO_INTERPRET = "collab_filter_0.3.0_no_interpret.xlsx"
NO_INTERPRET_NOW = "collab_filter_no_interpret.xlsx"
CPU = torch.device("cpu")


def current_collab_filter(tmp_path_factory) -> Path:
    """collab_filter.xlsx as this release generates it (made once per test session)."""
    folder = tmp_path_factory.getbasetemp() / "releases_current"
    path = folder / "collab_filter.xlsx"
    if not path.exists():
        by_name("collab_filter").write(folder, 0, CPU)
    return path


def without_sheet(source: Path, target: Path, sheet: str) -> None:
    """`source` with `sheet` deleted, as a user deletes it (its sheet-scoped names go with it)."""
    book = openpyxl.load_workbook(source)
    del book[sheet]
    book.save(target)


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    """Every fixture, and collab_filter of 0.4.0 and of today with interpret deleted, verified in one run."""
    folder = tmp_path_factory.mktemp("releases")
    without_sheet(FIXTURES / "collab_filter_0.3.0_edited.xlsx", folder / NO_INTERPRET, "interpret")
    without_sheet(current_collab_filter(tmp_path_factory), folder / NO_INTERPRET_NOW, "interpret")
    paths = [FIXTURES / name for name in EDITS] + [folder / NO_INTERPRET, folder / NO_INTERPRET_NOW]
    reports = verify_paths(paths, device="cpu")
    return {Path(report.path).name: report for report in reports}


def test_every_release_has_a_fixture_of_each_workbook():
    assert set(RELEASES) == {"0.1.0", "0.2.0", "0.3.0", "0.4.0"}
    for workbooks in RELEASES.values():
        for name in workbooks.values():
            assert (FIXTURES / name).is_file() and name in EDITS
    assert {name for workbooks in RELEASES.values() for name in workbooks.values()} == set(EDITS)
    # every workbook a release wrote (mnist_sgd came after 0.4.0: no release wrote it yet)
    assert {w for release in ("0.2.0", "0.3.0", "0.4.0") for w in RELEASES[release]} == \
        {lesson.name for lesson in registry.LESSONS} - {"mnist_sgd"}


@pytest.mark.parametrize("name", list(EDITS))
def test_an_edited_file_of_each_release_verifies(verified, name):
    """Recalculated by verify's LibreOffice and as LibreOffice saved it, every formula cell equals torch,
    no formula cell is left unchecked, and the sheets checked are those the file has."""
    report = verified[name]
    assert report.error is None, report.error
    assert report.passed and report.exit_code == 0
    assert report.saved.evidence and report.saved.application.startswith("LibreOffice") and report.saved.checks
    assert report.uncovered == []
    sheets = reader.outline(FIXTURES / name).sheetnames
    assert {check.sheet for check in report.checks} == set(sheets) - {"notes"}


@pytest.mark.parametrize("name", list(EDITS))
def test_the_edit_is_what_torch_computed_from(name):
    """The value typed is the input torch read; the file's own values downstream are torch's from it, and
    differ from what the value the release wrote gives."""
    key, (r, c), typed, original, downstream = EDITS[name]
    path = FIXTURES / name
    book = reader.Snapshot(path, data_only=True)
    lesson = by_sheets(book.sheetnames, name, book.names)
    inputs = reader.read_inputs(lesson, book)
    assert inputs[key][r, c] == typed
    as_released = {k: v.copy() for k, v in inputs.items()}
    as_released[key][r, c] = original
    edited, before = lesson.evaluate(inputs, CPU)[downstream], lesson.evaluate(as_released, CPU)[downstream]
    area = lesson.area_of(book.names, downstream)
    saved = np.array([[book.value(area.sheet, row, col) for col in range(area.min_col, area.max_col + 1)]
                      for row in range(area.min_row, area.max_row + 1)], dtype=np.float64)
    assert np.allclose(saved, edited, rtol=1e-9, atol=1e-9)
    assert np.abs(edited - before).max() > 1e-6


def test_collab_filter_of_0_2_0_verifies_on_its_eight_sheets(verified):
    """0.2.0 (and 0.1.0's last commit) wrote no interpret sheet and no dotprod!movie_titles: neither is
    required nor compared."""
    report = verified["collab_filter_0.2.0_edited.xlsx"]
    sheets = {check.sheet for check in report.checks}
    assert "interpret" not in sheets and len(sheets) == 7  # and notes
    assert report.formula_cells == 24_264
    outline = reader.outline(FIXTURES / "collab_filter_0.2.0_edited.xlsx")
    lesson = by_sheets(outline.sheetnames, "0.2.0", outline.names)
    assert isinstance(lesson, Earlier) and lesson.since == "0.3.0" and lesson.name == "collab_filter"
    assert "dotprod!movie_titles" not in lesson.inputs and not any(k.startswith("interpret!") for k in lesson.inputs)
    assert lesson.note == "written by lessonxl before 0.3.0: verified on the 7 sheets it has (interpret came in 0.3.0)"


@pytest.mark.parametrize("name, release", [(NO_INTERPRET, "as lessonxl wrote it before 0.5.0"),
                                           (NO_INTERPRET_NOW, "")])
def test_a_file_of_0_4_0_or_today_with_interpret_deleted_is_refused_naming_it(verified, name, release):
    report = verified[name]
    assert report.exit_code == 2
    assert "has no sheet interpret, which every collab_filter.xlsx has. Rename it back to interpret" in report.error
    assert f"(the sheets of collab_filter.xlsx{' ' + release if release else ''}: notes, dotprod" in report.error


def test_collab_filter_of_0_3_0_and_0_4_0_verifies_as_they_wrote_it(verified):
    """0.5.0 held out cells on the crosstab sheets and gd_steps, gave gd_steps wd and replaced interpret's 150
    power-iteration steps by repeated squaring: a file of 0.3.0 or 0.4.0 has none of that, and its sheets are
    verified as those releases computed them (every rated cell trained on, no decay, plain power iteration)."""
    report = verified["collab_filter_0.3.0_edited.xlsx"]
    checked = {f"{check.sheet}!{check.name}" for check in report.checks}
    assert {"gd_steps!n_rated", "interpret!pc1_steps", "interpret!pc2_products"} <= checked
    assert not any(key.endswith(("valid_rmse", "train_rmse", "mean_rmse")) or "square" in key for key in checked)
    outline = outline_of("collab_filter_0.3.0_edited.xlsx")
    lesson = by_sheets(outline.sheetnames, "0.4.0", outline.names)
    assert isinstance(lesson, Earlier) and lesson.since == "0.5.0"
    assert not {"dotprod!valid", "gd_steps!valid", "gd_steps!wd"} & set(lesson.inputs)
    assert lesson.note == "written by lessonxl before 0.5.0: verified on the 8 sheets it has"


def outline_of(name: str) -> reader.Outline:
    return reader.outline(FIXTURES / name)


def test_which_release_wrote_a_file_is_told_by_its_sheets_and_names(tmp_path_factory):
    """A current file keeps today's refusal when a sheet is gone (it still has dotprod!movie_titles, which
    came with interpret); a file of 0.2.0 is an Earlier lesson, and a sheet renamed in it is named."""
    current = reader.outline(current_collab_filter(tmp_path_factory))
    assert by_sheets(current.sheetnames, "new", current.names) is by_name("collab_filter")
    names = {key: area for key, area in current.names.items() if not key.startswith("interpret!")}
    sheets = [sheet for sheet in current.sheetnames if sheet != "interpret"]
    with pytest.raises(LessonxlError, match="has no sheet interpret, which every collab_filter.xlsx has. "
                                            "Rename it back to interpret"):
        by_sheets(sheets, "new", names)

    old = outline_of("collab_filter_0.2.0_edited.xlsx")
    assert isinstance(by_sheets(old.sheetnames, "old", old.names), Earlier)
    renamed = [("dp" if sheet == "dotprod" else sheet) for sheet in old.sheetnames]
    with pytest.raises(LessonxlError, match=r"has no sheet dotprod, .*; was it renamed to dp\? Rename it back to "
                                            r"dotprod \(the sheets of collab_filter.xlsx as lessonxl wrote it "
                                            r"before 0.3.0: notes, dotprod, .*gd_steps, word_emb\)"):
        by_sheets(renamed, "old", old.names)


def test_every_current_workbook_is_its_own_release():
    for lesson in registry.LESSONS:
        names = {spec.key(name): True for spec in lesson.specs for name in spec.inputs}  # a name's area
        assert by_sheets(list(lesson.sheets), lesson.filename, names) is lesson


def test_added_names_sheets_and_names_the_lessons_have(collab_defaults, collab_results):
    """Every sheet ADDED records is a sheet of its lesson, every name an input or a computed quantity of it;
    none of them is one of the sheets files before its release had (`Lesson.specs_before`)."""
    names = {"collab_filter": set(collab_defaults) | set(collab_results)}
    assert set(registry.ADDED) <= set(names)
    for workbook, added in registry.ADDED.items():
        lesson = by_name(workbook)
        for item, release in added.items():
            assert item in lesson.sheets if "!" not in item else item in names[workbook], item
            assert all(part.isdigit() for part in release.split(".")), release
            view = Earlier(lesson, release)
            assert item not in view.sheets and item not in view.inputs, item


def test_an_earlier_lesson_computes_what_the_whole_lesson_does_on_its_sheets(monkeypatch):
    """Without bias_yrange (which interpret reads) and dotprod's movie_ids (an input interpret reads),
    interpret's values are still torch's: the absent sheet is computed and the absent input takes its
    default when a present sheet reads them. Nothing absent comes out."""
    lesson = by_name("collab_filter")
    monkeypatch.setitem(registry.ADDED, "collab_filter", {"bias_yrange": "9.0.0", "dotprod!movie_ids": "9.0.0"})
    view = Earlier(lesson, "9.0.0")
    defaults = lesson.default_inputs(0)
    whole = lesson.evaluate(defaults, CPU)
    part = view.evaluate({key: defaults[key] for key in view.inputs}, CPU)
    assert "dotprod!movie_ids" not in view.inputs and "bias_yrange" not in view.sheets
    assert set(part) == {key for key in whole if not key.startswith("bias_yrange!")}
    for key, value in part.items():
        assert np.array_equal(value, whole[key], equal_nan=True), key
