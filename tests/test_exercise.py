"""Exercises: `generate --exercise` leaves blocks empty, and verify grades what a student writes into them.

Each submission is made as a student makes it, formulas typed into the empty cells (`exercise_fill`), saved
without cached values: the grade comes from LibreOffice's recalculation compared with torch, never from
values the generator cached.
"""

from __future__ import annotations

import csv
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import openpyxl
import pytest

from lessonxl import reader
from lessonxl.api import generate, verify, watch
from lessonxl.exercise import BLOCKS, EMPTY, PARTLY, RIGHT, SHEET, WRONG
from lessonxl.references import a1

from conftest import mutate_formula, run_cli, set_value
from exercise_fill import answers, cells_of, fill, student

ENTROPY = ["softmax!P6:T7", "binary_xent!E5:E12", "multiclass_xent!AL6:AL13"]
GRADDESC = ["momentum!I28:J627", "momentum!K28:L627", "adam!I28:J627", "adam!K28:L627", "adam!M28:N627"]


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    """The full entropy_example and graddesc workbooks, their exercises, and entropy's easy exercise."""
    folder = tmp_path_factory.mktemp("exercise")
    generate(["entropy_example", "graddesc"], out=folder / "full", device="cpu", jobs=1)
    generate(["entropy_example", "graddesc"], out=folder / "exercise", device="cpu", exercise=True)
    generate(["entropy_example"], out=folder / "easy", device="cpu", exercise=True, easy=True)
    return folder


def paths(books: Path, name: str) -> tuple[Path, Path]:
    return books / "exercise" / f"{name}_exercise.xlsx", books / "full" / f"{name}.xlsx"


def test_exercise_leaves_its_blocks_empty_to_do_and_lists_them(books):
    exercise, full = paths(books, "entropy_example")
    made = openpyxl.load_workbook(exercise)
    whole = openpyxl.load_workbook(full)
    assert made.sheetnames == [SHEET, *whole.sheetnames]
    listed = [made[SHEET].cell(row, 1).value for row in range(6, 6 + len(ENTROPY))]
    assert listed == ["softmax_probs", "binary_xent_loss", "multiclass_xent_loss_lookup"]
    blank = set()
    for where in ENTROPY:
        sheet, cells = cells_of(where)
        for cell in cells:
            assert made[sheet][cell].value is None
            assert made[sheet][cell].fill.fgColor.rgb.endswith("FCE4D6")  # styled "to do"
            blank.add((sheet, cell))
        assert made[sheet][cells[0]].comment.text.startswith("To do: ")
    for sheet in whole.sheetnames:  # every other cell as in the full workbook
        for row in whole[sheet].iter_rows():
            for cell in row:
                if (sheet, cell.coordinate) not in blank:
                    assert made[sheet][cell.coordinate].value == cell.value, (sheet, cell.coordinate)


def test_exercises_are_deterministic_and_the_easy_level_gives_the_first_row(books, tmp_path):
    generate(["entropy_example"], out=tmp_path, device="cpu", exercise=True)
    assert (tmp_path / "entropy_example_exercise.xlsx").read_bytes() == paths(books, "entropy_example")[0].read_bytes()
    easy = openpyxl.load_workbook(books / "easy" / "entropy_example_exercise.xlsx")
    assert easy["binary_xent"]["E5"].value == "=-(B5*LN(C5)+(1-B5)*LN(1-C5))"
    assert easy["binary_xent"]["E6"].value is None


def test_every_lesson_with_exercises_declares_blocks_it_has():
    from lessonxl.registry import by_name

    for name, blocks in BLOCKS.items():
        sheets = by_name(name).sheets
        for block in blocks:
            for key in block.keys:
                assert key.rpartition("!")[0] in sheets, key


@pytest.fixture(scope="module")
def graded(books, tmp_path_factory):
    """Entropy submissions of every kind, verified in one run: name -> report."""
    exercise, full = paths(books, "entropy_example")
    folder = tmp_path_factory.mktemp("submissions")
    key = answers(full, [cells_of(where)[0] for where in ENTROPY])
    lessonxl_formulas = {(sheet, cell): key[sheet, cell] for sheet, cells in map(cells_of, ENTROPY) for cell in cells}
    equivalent = {cell: _equivalent(*cell) for cell in lessonxl_formulas}
    partly = {cell: f for cell, f in lessonxl_formulas.items()
              if cell[0] == "softmax" or cell in {("binary_xent", f"E{r}") for r in range(5, 9)}}
    made = {
        "empty": dict(),
        "right": lessonxl_formulas,
        "equivalent": equivalent,
        "partly": partly,
        "partly_wrong": {cell: f.replace("LN(", "LOG(") for cell, f in partly.items()},  # LOG: base 10
        "wrong": {cell: f.replace("LN(", "LOG(") if cell[0] == "binary_xent" else f
                  for cell, f in lessonxl_formulas.items()},
    }
    for name, formulas in made.items():
        fill(exercise, folder / f"{name}.xlsx", formulas)
    # typed numbers where formulas belong: the right values, hard-coded
    values = openpyxl.load_workbook(full, data_only=True)
    typed = openpyxl.load_workbook(folder / "right.xlsx")
    for cell in _cells("multiclass_xent!AL6:AL13"):
        typed["multiclass_xent"][cell] = values["multiclass_xent"][cell].value
    typed.save(folder / "typed.xlsx")
    # a student's own sheet and notes beside a right answer
    noted = openpyxl.load_workbook(folder / "right.xlsx")
    noted.create_sheet("my notes")["A1"] = "softmax = exp / sum of exp"
    noted["my notes"]["B2"] = "=SUM(softmax!P6:T6)"
    noted["softmax"]["A20"] = "checked against the lesson video"
    noted.save(folder / "noted.xlsx")
    # every block right, but a given formula changed: softmax's row sums, which the probabilities read
    mutate_formula(folder / "right.xlsx", folder / "given_changed.xlsx", "softmax", "N6")
    names = [*made, "typed", "noted", "given_changed"]
    reports = verify([folder / f"{name}.xlsx" for name in names], device="cpu", raise_on_error=False)
    return dict(zip(names, reports))


def _equivalent(sheet: str, cell: str) -> str:
    """Another formula with the same value as lessonxl's in a cell of an entropy_example block."""
    row = cell.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    if sheet == "softmax":  # P6:T7, from the logits in B6:F7: exp / sum of exp
        logit = chr(ord(cell[0]) - ord("P") + ord("B"))
        return f"=EXP({logit}{row})/SUMPRODUCT(EXP($B{row}:$F{row}))"
    if sheet == "binary_xent":
        return f"=-IF(B{row}=1,LN(C{row}),LN(1-C{row}))"
    return f"=-SUMPRODUCT(AE{row}:AI{row},V{row}:Z{row})"  # the one-hot form of the lookup


def _cells(where: str) -> list[str]:
    return cells_of(where)[1]


def statuses(report) -> list[str]:
    return [block.status for block in report.grade.blocks]


def test_lessonxl_formulas_pass_and_so_do_equivalent_ones(graded):
    for name in ("right", "equivalent", "noted"):
        report = graded[name]
        assert report.error is None
        assert statuses(report) == [RIGHT] * 3, (name, report.grade.line())
        assert report.passed and report.exit_code == 0
        assert report.grade.line() == "3 of 3 blocks right"


def test_an_empty_or_partly_done_exercise_reports_progress(graded):
    assert statuses(graded["empty"]) == [EMPTY] * 3
    assert graded["empty"].exit_code == 1
    partly = graded["partly"]
    assert statuses(partly) == [RIGHT, PARTLY, EMPTY]
    assert partly.grade.line() == ("1 of 3 blocks right; binary_xent!E5:E12 partly done (4 of 8 cells); "
                                   "multiclass_xent!AL6:AL13 still empty")
    assert partly.exit_code == 1


def test_a_wrong_formula_in_a_block_partly_done_is_named(graded):
    partly = graded["partly_wrong"]
    assert statuses(partly) == [RIGHT, PARTLY, EMPTY]
    assert partly.grade.blocks[1].mistake == "binary_xent!E5" == partly.grade.first_wrong
    assert partly.grade.line() == ("1 of 3 blocks right; binary_xent!E5:E12 partly done (4 of 8 cells), wrong at "
                                   "binary_xent!E5; multiclass_xent!AL6:AL13 still empty")
    assert graded["partly"].grade.first_wrong == ""  # nothing filled in is wrong: progress only


def test_a_wrong_formula_names_its_root_cell(graded):
    wrong = graded["wrong"]
    assert statuses(wrong) == [RIGHT, WRONG, RIGHT]
    assert wrong.grade.blocks[1].mistake == "binary_xent!E5"
    assert wrong.exit_code == 1


def test_a_changed_given_formula_is_named_and_fails_though_the_blocks_are_right(graded):
    changed = graded["given_changed"]
    assert statuses(changed) == [RIGHT] * 3
    assert changed.grade.outside == ["softmax!N6"]
    assert changed.grade.line() == "3 of 3 blocks right; and a given formula changed at softmax!N6"
    assert changed.exit_code == 1


def test_typed_values_are_not_an_answer(graded):
    assert statuses(graded["typed"]) == [RIGHT, RIGHT, WRONG]


def test_a_wrong_step_of_adam_is_named_and_the_blocks_that_only_read_it_stay_right(books, tmp_path):
    exercise, full = paths(books, "graddesc")
    target = tmp_path / "adam.xlsx"
    student(exercise, full, target, GRADDESC,
            change=lambda sheet, cell, f: f.replace("adam_beta2*", "adam_beta1*") if sheet == "adam" and
            cell.startswith("K") else f)
    report, = verify(target, device="cpu")
    assert report.grade.line() == "4 of 5 blocks right; adam!K28:L627 wrong at adam!K29"
    assert report.exit_code == 1


def test_twenty_submissions_make_a_gradebook_and_a_junit_report(graded, tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    kinds = ["right", "equivalent", "partly", "wrong", "empty"]
    for number in range(20):
        kind = kinds[number % len(kinds)]
        shutil.copy(Path(graded[kind].path), folder / f"student{number:02d}_{kind}.xlsx")
    (folder / "README.txt").write_text("not a workbook")
    # two LibreOffice processes, the files dealt out in turn: the same grades as one gives (`graded`)
    result = run_cli("verify", "-q", "--device", "cpu", "--jobs", "2", "--csv", tmp_path / "grades.csv",
                     "--junit", tmp_path / "grades.xml", folder)
    assert result.returncode == 1, result.stderr
    with open(tmp_path / "grades.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [Path(row["file"]).name for row in rows] == sorted(path.name for path in folder.glob("*.xlsx"))
    expected = {"right": ("3", "", "PASS"), "equivalent": ("3", "", "PASS"), "partly": ("1", "", "FAIL"),
                "wrong": ("2", "binary_xent!E5", "FAIL"), "empty": ("0", "", "FAIL")}
    for row in rows:
        kind = Path(row["file"]).stem.split("_")[1]
        assert (row["blocks_right"], row["first_wrong_cell"], row["verdict"]) == expected[kind], row
        assert row["workbook"] == "entropy_example" and row["blocks_total"] == "3"
    suite = ET.parse(tmp_path / "grades.xml").getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 20 and suite.get("tests") == "20"
    assert suite.get("failures") == "12" and suite.get("errors") == "0"
    for case in cases:
        kind = Path(case.get("name")).stem.split("_")[1]
        failure = case.find("failure")
        assert (failure is None) == (kind in ("right", "equivalent"))
        if kind == "wrong":
            assert "binary_xent!E5" in failure.get("message") and "binary_xent!E5" in failure.text


def test_an_ordinary_workbook_in_the_gradebook_has_no_blocks(books, tmp_path):
    full = paths(books, "entropy_example")[1]
    result = run_cli("verify", "--device", "cpu", "--csv", tmp_path / "g.csv", full)
    assert result.returncode == 0, result.stdout + result.stderr
    row, = csv.DictReader(open(tmp_path / "g.csv", newline=""))
    assert (row["blocks_right"], row["blocks_total"], row["verdict"]) == ("n/a", "n/a", "PASS")


def test_a_folder_without_workbooks_and_a_pattern_that_matched_nothing_are_one_line_each(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("verify", tmp_path / "empty", tmp_path / "nothing*.xlsx")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"lessonxl verify: {tmp_path / 'empty'}: a folder with no .xlsx workbook in it",
        f"lessonxl verify: {tmp_path / 'nothing*.xlsx'}: no file matches this pattern"]


def test_easy_exercise_untouched_is_still_empty(books):
    report, = verify(books / "easy" / "entropy_example_exercise.xlsx", device="cpu")
    assert statuses(report) == [EMPTY] * 3


def test_watch_gives_a_new_grade_at_each_save(graded, tmp_path):
    path = tmp_path / "mine.xlsx"
    shutil.copy(graded["empty"].path, path)
    grades = []

    def on_reports(reports):
        grades.append(reports[0].grade.line())
        if len(grades) == 1:  # the student saves some work
            shutil.copy(graded["partly"].path, tmp_path / "saving.xlsx")
            os.replace(tmp_path / "saving.xlsx", path)

    watch(path, device="cpu", on_reports=on_reports, until=lambda: len(grades) >= 2)
    assert grades == [graded["empty"].grade.line(), graded["partly"].grade.line()]
    assert grades[0].startswith("0 of 3") and grades[1].startswith("1 of 3")


def test_collab_filter_exercise_passes_filled_and_names_an_rmse_that_counts_blanks(tmp_path):
    generate(["collab_filter"], out=tmp_path / "full", device="cpu", jobs=1)
    generate(["collab_filter"], out=tmp_path, device="cpu", exercise=True)
    exercise, full = tmp_path / "collab_filter_exercise.xlsx", tmp_path / "full" / "collab_filter.xlsx"
    blocks = ["dotprod!I40:W54", "dotprod!B4:B4"]
    student(exercise, full, tmp_path / "right.xlsx", blocks)
    # SUMXMY2 counts an unrated (blank) cell as a rating of 0 in LibreOffice: not the RMSE over rated cells
    unmasked = "=SQRT(SUMXMY2(dotprod_ratings,dotprod_predictions)/COUNT(dotprod_ratings))"
    student(exercise, full, tmp_path / "sumxmy2.xlsx", blocks,
            change=lambda sheet, cell, formula: unmasked if cell == "B4" else formula)
    right, sumxmy2 = verify([tmp_path / "right.xlsx", tmp_path / "sumxmy2.xlsx"], device="cpu")
    assert right.grade.line() == "2 of 2 blocks right" and right.exit_code == 0
    assert sumxmy2.grade.line() == "1 of 2 blocks right; dotprod!B4 wrong at dotprod!B4"


def test_mnist_sgd_exercise_passes_filled_and_names_a_gradient_without_weight_decay(tmp_path):
    generate(["mnist_sgd"], out=tmp_path / "full", device="cpu", jobs=1)
    generate(["mnist_sgd"], out=tmp_path, device="cpu", exercise=True)
    exercise, full = tmp_path / "mnist_sgd_exercise.xlsx", tmp_path / "full" / "mnist_sgd.xlsx"
    names = reader.outline(exercise).names
    blocks = [f"{area.sheet}!{a1(area.min_row, area.min_col)}:{a1(area.max_row, area.max_col)}"
              for block in BLOCKS["mnist_sgd"] for area in (names[key] for key in block.keys)]
    student(exercise, full, tmp_path / "right.xlsx", blocks)
    # d loss / d W without its weight decay term (=SUMPRODUCT(...)+2*logistic_wd*B36 in lessonxl's)
    grad_w = blocks[1]
    in_grad_w = _in(grad_w)
    student(exercise, full, tmp_path / "no_decay.xlsx", blocks,
            change=lambda sheet, cell, formula: formula.partition("+2*logistic_wd")[0]
            if f"{sheet}!{cell}" in in_grad_w else formula)
    right, no_decay = verify([tmp_path / "right.xlsx", tmp_path / "no_decay.xlsx"], device="cpu")
    assert right.grade.line() == "3 of 3 blocks right" and right.exit_code == 0
    first = grad_w.partition(":")[0]
    assert no_decay.grade.line() == f"2 of 3 blocks right; {grad_w} wrong at {first}"
    assert no_decay.exit_code == 1


def _in(where: str) -> set[str]:
    sheet, cells = cells_of(where)
    return {f"{sheet}!{cell}" for cell in cells}


def test_torch_is_computed_again_for_other_inputs_in_the_same_run(books, tmp_path):
    """verify keeps torch's results for inputs it has seen (a class's copies of one exercise): a file
    whose inputs differ must get its own."""
    full = paths(books, "entropy_example")[1]
    set_value(full, tmp_path / "edited.xlsx", "softmax", "B6", 7.25)
    reports = verify([full, tmp_path / "edited.xlsx", full], device="cpu")
    assert [report.exit_code for report in reports] == [0, 0, 0]
    assert reports[1].checks[0].cells > 0
