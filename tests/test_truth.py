"""verify tells the truth on the edits students and teachers make.

No false alarm on a correct formula whose result cancels or overflows (spreadsheet engines snap a
near-total cancellation to 0 and spread error values; torch does neither), on labels typed in
another case (MATCH and = ignore case), or on an input typed as a formula; no pass for a hard-coded
answer; one clear line for unusable input; nothing left behind however verify ends.

The comparator's rules are checked first without LibreOffice (table-driven), then on workbooks edited
the way a user edits them: typed into cells and saved again through LibreOffice.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lessonxl import cli, reader
from lessonxl.entropy import Entropy
from lessonxl.errors import LessonxlError
from lessonxl.lesson import exact_match
from lessonxl.recalc import ipc_pipe
from lessonxl.registry import by_name, by_sheets
from lessonxl.compare import Truth, compare
from lessonxl.report import Report, exit_code, format_report
from lessonxl.pipeline import verify_paths

from conftest import area_of, cell_of, mutate_formula, saved_and_verified, set_cells

CPU = torch.device("cpu")
AREA = reader.Area("s", 1, 1, 1, 1)
TOL = 1e-9


# --- the comparator's rules, one cell at a time (no LibreOffice) -----------------------------------

def one_cell(actual, want, scale=None, spread=None, formula=True):
    truth = Truth(np.array([[want]]), None if scale is None else np.array([[scale]]),
                  None if spread is None else np.array([[spread]]))
    return compare({(1, 1): actual}, AREA, "q", truth, TOL, TOL, {(1, 1)} if formula else set())


CELL_RULES = {
    # case: (sheet value, torch value, operand scale, spread from an overflow, formula cell, passes)
    "equal": (1.5, 1.5, None, None, True, True),
    "within tol": (1.0 + 5e-10, 1.0, None, None, True, True),
    "beyond tol": (1.0 + 5e-9, 1.0, None, None, True, False),
    "a changed formula, +0.5": (2.0, 1.5, None, None, True, False),
    "cancellation snapped to 0, within its operands' precision": (0.0, -8.6e11, 3.9e27, None, True, True),
    "cancellation off by more than its operands' precision": (0.0, -8.6e11, 3.9e12, None, True, False),
    "+0.5 on a finite difference of moderate losses": (12.5, 12.0, 1e7, None, True, False),
    "error value where torch overflows": ("#NUM!", math.inf, None, None, True, True),
    "error value where torch is nan": ("#DIV/0!", math.nan, None, None, True, True),
    "error value spread from an overflow (torch: x / inf = 0)": ("#NUM!", 0.0, None, True, True, True),
    "error value where nothing overflowed": ("#NUM!", 0.0, None, False, True, False),
    "a number where torch overflows": (1e308, math.inf, None, None, True, False),
    "a number where torch's value came from an overflow": (0.0, 0.0, None, True, True, True),
    "blank where a number belongs": (None, 1.0, None, None, True, False),
    "text where a number belongs": ("1.0", 1.0, None, None, True, False),
    "a typed value, exactly right, where a formula belongs": (1.5, 1.5, None, None, False, False),
}


@pytest.mark.parametrize("case", CELL_RULES)
def test_the_comparator_knows_floating_point_and_spreadsheets(case):
    actual, want, scale, spread, formula, passes = CELL_RULES[case]
    check = one_cell(actual, want, scale, spread, formula)
    assert check.passed == passes, check
    assert check.mismatches == ([] if passes else ["s!A1"])
    assert check.typed == ([] if formula else ["s!A1"])


def test_a_typed_answer_is_named_in_the_report():
    report = Report("x.xlsx", "entropy_example", "cpu", [one_cell(1.5, 1.5, formula=False)], 1, [])
    text = format_report(report)
    assert "FAIL s!q: s!A1 holds a typed value where the workbook has a formula" in text
    assert exit_code([report]) == 1


def test_report_lines_speak_spreadsheet_not_python():
    checks = [one_cell(None, 1.0), one_cell(True, 2.0), one_cell("#NUM!", 3.0, spread=False)]
    text = format_report(Report("x.xlsx", "graddesc", "cpu", checks, 3, []))
    assert "sheet nothing, torch 1" in text and "sheet the logical value TRUE" in text and "sheet #NUM!" in text
    assert "None" not in text and "True" not in text


# --- labels, overflow and inputs as torch sees them (no LibreOffice) -------------------------------

def test_labels_match_ignoring_case_like_match_and_equals():
    table = np.array([["cat", "Dog", "dog", "building"]], dtype=object)
    assert exact_match(np.array(["Building", "DOG", "cat"], dtype=object), table, "t") == [3, 1, 0]
    with pytest.raises(LessonxlError, match='t "cats" is not one of cat, Dog, dog, building'):
        exact_match(np.array(["cats"], dtype=object), table, "t")


def test_an_overflow_spreads_like_a_spreadsheet_error_in_the_second_run():
    lesson = Entropy()
    inputs = {key: np.array(value, dtype=object if key in lesson.text_inputs else float)
              for key, value in lesson.default_inputs(0).items()}
    inputs["softmax!logits"][0, 0] = 1000.0
    plain, _ = lesson.expected(inputs, CPU)
    spread, _ = lesson.expected(inputs, CPU, spreadsheet_errors=True)
    # torch alone: exp(1000) = inf, the other probabilities of the row are x / inf = 0
    assert np.isinf(plain["softmax!exp_logits"][0, 0]) and np.all(plain["softmax!probs"][0, 1:] == 0)
    # as a sheet: the whole row is an error, the other row is untouched and equal
    assert np.all(np.isnan(spread["softmax!probs"][0])) and np.isnan(spread["softmax!sum_exp"][0, 0])
    np.testing.assert_array_equal(spread["softmax!probs"][1], plain["softmax!probs"][1])


@pytest.mark.parametrize("value, formula, words", [
    ("twelve", False, 'holds the text "twelve"'),
    (True, False, "holds the logical value TRUE"),
    (__import__("datetime").datetime(2024, 1, 15), False, "holds a date (2024-01-15)"),
    (None, False, "is empty"),
    ("#DIV/0!", True, "holds a formula whose value is the error value #DIV/0!"),
    ("abc", True, 'holds a formula whose value is the text "abc"'),
])
def test_an_unusable_input_is_named_in_a_spreadsheet_users_words(value, formula, words):
    with pytest.raises(LessonxlError) as raised:
        reader._input_value(value, "basic!B5", text=False, blank_ok=False, formula=formula)
    assert str(raised.value) == f"input cell basic!B5 {words}; a number belongs there"
    for python in ("None", "datetime", "True", "'"):
        assert python not in str(raised.value).replace("TRUE", "")


@pytest.mark.parametrize("sheets, needles", [
    (["notes", "data", "sgd", *[s for s in by_name("graddesc").sheets if s not in ("notes", "data", "basic")]],
     ["has no sheet basic, which every graddesc.xlsx has; was it renamed to sgd?", "sgd? Rename it back to basic (the sheets of graddesc.xlsx: notes, data, basic,"]),
    (["notes", "Softmax", "binary_xent", "multiclass_xent"],
     ["has no sheet softmax", "it is called Softmax here"]),
    (["budget"], ["was not made by lessonxl"]),
])
def test_a_renamed_or_missing_sheet_is_named(sheets, needles):
    with pytest.raises(LessonxlError) as raised:
        by_sheets(sheets, "my.xlsx")
    for needle in needles:
        assert needle in str(raised.value)


def test_the_notes_sheet_may_go():
    assert by_sheets([s for s in by_name("entropy_example").sheets if s != "notes"], "x").name == "entropy_example"


# --- command-line options out of range, and generate never destroying work -------------------------

@pytest.mark.parametrize("argv, needle", [
    (["verify", "--tol", "nan", "x.xlsx"], "--tol: nan is out of range"),
    (["verify", "--tol", "inf", "x.xlsx"], "--tol: inf is out of range"),
    (["verify", "--tol=-1e-9", "x.xlsx"], "--tol: -1e-9 is out of range"),
    (["verify", "--timeout", "-5", "x.xlsx"], "--timeout: -5 is out of range"),
    (["verify", "--timeout", "nan", "x.xlsx"], "--timeout: nan is out of range"),
    (["verify", "--timeout", "0", "x.xlsx"], "--timeout: 0 is out of range"),
    (["generate", "--seed", "99999999999999999999"], "--seed: 99999999999999999999 is out of range"),
    (["generate", "--seed", "-1"], "--seed: -1 is out of range"),
])
def test_options_out_of_range_are_usage_errors(capsys, argv, needle):
    with pytest.raises(SystemExit) as raised:
        cli.main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_generate_into_a_file_or_an_unwritable_place_is_one_line(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert cli.main(["generate", "--out", str(a_file), "entropy_example"]) == 2
    assert capsys.readouterr().err == f"lessonxl generate: --out {a_file}: is a file, not a folder\n"
    assert a_file.read_text() == "mine"

    def read_only(self, data):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(Path, "write_bytes", read_only)
    assert cli.main(["generate", "--out", str(tmp_path / "ro"), "--device", "cpu", "entropy_example"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(Read-only file system)" in err and "Traceback" not in err


def test_ratings_for_a_workbook_that_takes_none_is_refused(tmp_path, capsys):
    assert cli.main(["generate", "--out", str(tmp_path), "--ratings", "u.data", "graddesc"]) == 2
    assert "--ratings applies to collab_filter only" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_generate_keeps_a_workbook_the_user_edited_unless_forced(generated, tmp_path, capsys):
    mine = tmp_path / "entropy_example.xlsx"
    set_cells(generated["entropy_example"], mine, [(*cell_of(generated["entropy_example"], "softmax!logits"), 3.0)])
    edited = mine.read_bytes()
    assert cli.main(["generate", "--out", str(tmp_path), "--device", "cpu", "entropy_example"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (f"lessonxl generate: kept {mine}: it was edited since lessonxl wrote it (or lessonxl "
                            "did not write it); --force overwrites it, --out writes elsewhere\n")
    assert mine.read_bytes() == edited
    assert cli.main(["generate", "--out", str(tmp_path), "--device", "cpu", "--force", "entropy_example"]) == 0
    assert mine.read_bytes() == generated["entropy_example"].read_bytes()
    assert capsys.readouterr().out.startswith(f"wrote {mine}")


# --- workbooks edited as a user edits them, saved through LibreOffice, verified -------------------

def edits_of(path: Path, changes: dict[tuple[str, int, int], object]) -> list[tuple[str, str, object]]:
    return [(*cell_of(path, key, r, c), content) for (key, r, c), content in changes.items()]


PASSING_EDITS = {
    # The notes' own experiment: lr 0.001 on basic blows up; finite differences cancel near 1e25.
    "graddesc, basic lr 0.001 and a negative lr": ("graddesc", {
        ("basic!lr", 0, 0): 0.001, ("momentum!lr", 0, 0): -1e-4}),
    "graddesc, inputs typed as formulas": ("graddesc", {
        ("adam!lr", 0, 0): "=0.15*2", ("rmsprop!eps", 0, 0): "=1/100000000", ("basic!lr", 0, 0): "=10%/1000"}),
    "entropy, a logit of 1000 and labels in another case": ("entropy_example", {
        ("softmax!logits", 0, 0): 1000.0, ("multiclass_xent!logits", 1, 2): 1000.0,
        ("multiclass_xent!target", 0, 0): "Building", ("multiclass_xent!target", 1, 0): "DOG"}),
    "entropy, logits typed as formulas": ("entropy_example", {
        ("softmax!logits", 0, 0): "=1+1", ("binary_xent!predicted", 0, 0): "=1/4"}),
    "regularization, lr 0.001 and 1000 blow both trajectories up": ("regularization", {
        ("l2_vs_wd_sgd!lr", 0, 0): 0.001, ("l2_vs_wd_adam!lr", 0, 0): 1000.0}),
}


@pytest.fixture(scope="module")
def saved(generated, tmp_path_factory):
    """Each edit typed into its workbook, saved through LibreOffice; then every file verified at once."""
    folder = tmp_path_factory.mktemp("truth")
    typed = {}
    for case, (name, changes) in PASSING_EDITS.items():
        source = generated[name]
        typed[case] = folder / f"{len(typed)}_{name}.xlsx"
        set_cells(source, typed[case], edits_of(source, changes))
    return saved_and_verified(typed, folder)


@pytest.mark.parametrize("case", PASSING_EDITS)
def test_a_correct_workbook_passes_whatever_the_user_typed(saved, case):
    files, reports = saved
    report = reports[case]
    assert report.error is None, report.error
    assert report.passed, format_report(report)
    assert report.uncovered == []


def test_the_blow_up_really_cancels_overflows_and_spreads(saved):
    """The cases above are the hard ones: the sheet holds snapped zeros and spread error values."""
    _, reports = saved
    basic = {c.name: c for c in reports["graddesc, basic lr 0.001 and a negative lr"].checks if c.sheet == "basic"}
    assert basic["intercept"].sheet_errors > 0 and basic["est_de_db"].max_abs > 1e9  # sheet 0, torch not
    softmax = {c.name: c for c in reports["entropy, a logit of 1000 and labels in another case"].checks
               if c.sheet == "softmax"}
    assert softmax["probs"].sheet_errors == 5 and softmax["probs"].non_finite == 1


def test_a_formula_typed_as_input_is_the_value_torch_uses(saved):
    """=1+1 in a logit: the sheet and torch both computed with 2 (the sheet's exp is e^2)."""
    files, reports = saved
    path = files["entropy, logits typed as formulas"]
    snapshot = reader.Snapshot(path, data_only=True)
    area = area_of(path, "softmax!exp_logits")
    assert snapshot.value(area.sheet, area.min_row, area.min_col) == pytest.approx(math.exp(2), rel=1e-12)
    assert reports["entropy, logits typed as formulas"].passed


FAILING_EDITS = {
    # A computed cell typed over with its own exact value: a hard-coded answer.
    "hard-coded answer": ("graddesc", "basic!slope", 98),
    "hard-coded probability": ("entropy_example", "softmax!probs", 0),
}


@pytest.fixture(scope="module")
def hard_coded(generated, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hard_coded")
    typed, cells = {}, {}
    for case, (name, key, r) in FAILING_EDITS.items():
        source = generated[name]
        sheet, cell = cell_of(source, key, r)
        area = area_of(source, key)
        exact = reader.Snapshot(source, data_only=True).value(sheet, area.min_row + r, area.min_col)
        typed[case] = folder / f"{name}.xlsx"
        set_cells(source, typed[case], [(sheet, cell, exact)])
        cells[case] = f"{sheet}!{cell}"
    return cells, saved_and_verified(typed, folder)[1]


@pytest.mark.parametrize("case", FAILING_EDITS)
def test_a_hard_coded_answer_fails_naming_its_cell(hard_coded, case):
    cells, reports = hard_coded
    report = reports[case]
    assert exit_code([report]) == 1
    typed = [cell for check in report.checks for cell in check.typed]
    assert typed == [cells[case]]
    assert f"{cells[case]} holds a typed value where the workbook has a formula" in format_report(report)


def test_mutants_inside_cancelling_columns_and_overflow_paths_still_fail(saved, tmp_path):
    """Changed formulas (stale cached values left) in the blown-up workbook: early finite differences,
    which still have moderate operands, and the row of probabilities that did not overflow."""
    files, _ = saved
    graddesc, entropy = files["graddesc, basic lr 0.001 and a negative lr"], \
        files["entropy, a logit of 1000 and labels in another case"]
    mutants = ((graddesc, "basic!est_de_db", 0, 0), (graddesc, "basic!est_de_da", 3, 0),
               (graddesc, "basic!est_de_db", 1, 0), (entropy, "softmax!probs", 1, 0),
               (entropy, "softmax!sum_exp", 1, 0))
    cases = []
    for source, key, r, c in mutants:
        sheet, cell = cell_of(source, key, r, c)
        target = tmp_path / f"mutant_{len(cases)}.xlsx"
        mutate_formula(source, target, sheet, cell)
        cases.append((target, f"{sheet}!{cell}"))
    for (path, cell), report in zip(cases, verify_paths([path for path, _ in cases], device="cpu")):
        assert exit_code([report]) == 1, cell
        assert cell in {where for check in report.checks for where in check.mismatches}


# --- unusable input: exit 2, one line, named in a user's words -------------------------------------

def run_verify(*paths, env=None):
    return subprocess.run([sys.executable, "-m", "lessonxl", "verify", "--device", "cpu", *map(str, paths)],
                          capture_output=True, text=True, env=env, timeout=300)


def test_a_31st_sample_gets_a_message_about_the_workbooks_size(generated, tmp_path):
    """data_x grown by a row (as inserting a row inside the range does): the size is explained."""
    import openpyxl
    path = tmp_path / "grown.xlsx"
    book = openpyxl.load_workbook(generated["graddesc"])
    area = reader.defined_names(book)["data_x"]
    book["data"].cell(area.max_row + 1, area.min_col).value = 42.0
    book.defined_names["data_x"].attr_text = book.defined_names["data_x"].attr_text.replace(
        f"${area.max_row}", f"${area.max_row + 1}")
    book.save(path)
    result = run_verify(path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "data_x holds 31 x 1 cells where the workbook was made for 30 x 1 cells" in result.stderr
    assert "A workbook's size is fixed when lessonxl generates it" in result.stderr


def test_a_renamed_sheet_is_named_through_libreoffice(generated, tmp_path):
    import openpyxl
    path = tmp_path / "renamed.xlsx"
    book = openpyxl.load_workbook(generated["entropy_example"])
    book["softmax"].title = "renaming"  # openpyxl refuses a title equal to another but for case
    book["renaming"].title = "Softmax"
    book.save(path)
    result = run_verify(path)
    assert result.returncode == 2
    assert "has no sheet softmax, which every entropy_example.xlsx has; it is called Softmax here" in result.stderr


# --- nothing left behind, however verify ends ------------------------------------------------------

def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_unusable_input_leaves_no_libreoffice_files(generated, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    bad = tmp_path / "bad.xlsx"
    set_cells(generated["entropy_example"], bad, [(*cell_of(generated["entropy_example"], "softmax!logits"), "x")])
    for _ in range(3):
        result = run_verify(bad, env={**os.environ, "TMPDIR": str(scratch)})
        assert result.returncode == 2
    assert leftovers(scratch) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_mid_run_leaves_nothing_behind(generated, tmp_path, signum):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "lessonxl", "verify", "--device", "cpu",
                                str(generated["graddesc"])], env={**os.environ, "TMPDIR": str(scratch)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (runs := [p for p in scratch.glob("lessonxl-verify-*") if (p / "engine0" / "profile").exists()]):
        assert time.monotonic() < deadline and process.poll() is None, "verify never started LibreOffice"
        time.sleep(0.05)
    pipe = ipc_pipe(runs[0] / "engine0" / "profile")
    while not pipe.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)  # LibreOffice is up once it listens on its socket
    assert pipe.is_socket(), "LibreOffice never listened on the socket named after its profile"
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode in (128 + signum, 130), err
    assert "Traceback" not in err
    assert leftovers(scratch) == []
    assert not pipe.exists(), "LibreOffice's socket was left in /tmp"
    soffice = subprocess.run(["pgrep", "-f", str(scratch)], capture_output=True, text=True)
    assert soffice.stdout == "", "LibreOffice outlived verify"


@pytest.mark.parametrize("content, words", [
    (__import__("datetime").datetime(2024, 1, 15), "holds a date (2024-01-15)"),
    (True, "holds the logical value TRUE"),
    ('="ten"', 'holds a formula whose value is the text "ten"'),
    ("=1/0", "holds a formula whose value is the error value #DIV/0!"),
])
def test_an_unusable_input_in_a_saved_file_is_one_line_in_a_users_words(generated, tmp_path, content, words):
    import openpyxl
    path = tmp_path / "unusable.xlsx"
    book = openpyxl.load_workbook(generated["entropy_example"])
    area = reader.defined_names(book)["softmax!binary_logit"]
    book[area.sheet].cell(area.min_row, area.min_col).value = content
    book.save(path)
    result = run_verify(path)
    assert result.returncode == 2, result.stdout + result.stderr
    where = reader.address(area.sheet, area.min_row, area.min_col)
    assert result.stderr == f"lessonxl verify: {path}: input cell {where} {words}; a number belongs there\n"


def test_a_word_typed_in_capitals_is_found_as_match_finds_it(generated, tmp_path):
    source = generated["collab_filter"]
    sheet, cell = cell_of(source, "word_emb!sentence")
    area = area_of(source, "word_emb!sentence")
    word = reader.Snapshot(source).value(area.sheet, area.min_row, area.min_col)
    typed = tmp_path / "capitals.xlsx"
    set_cells(source, typed, [(sheet, cell, word.upper() if word.upper() != word else word.lower())])
    [report] = saved_and_verified({"capitals": typed}, tmp_path)[1].values()
    assert report.passed, report.error or format_report(report)


def test_a_ratings_csv_with_a_byte_order_mark_is_read(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte-order mark."""
    from lessonxl.movielens import synthetic_ratings
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("\ufeff" + synthetic_ratings(0)[["userId", "movieId", "rating"]].to_csv(index=False),
                       encoding="utf-8")
    assert ratings.read_bytes().startswith(b"\xef\xbb\xbf")
    assert cli.main(["generate", "--ratings", str(ratings), "--out", str(tmp_path), "--device", "cpu",
                     "collab_filter"]) == 0
    assert (tmp_path / "collab_filter.xlsx").exists()
