"""The shared layer, unit by unit and without LibreOffice: cell references, shown and cached values,
defined names (made and read back), what a cell holds in a user's words, how a file that is no zip
is named, and the comparator's single cells and report lines.

Table-driven, as xlsxwriter's and pycel's suites are: every expectation is written out by hand (an A1
string, a sentence), or comes from an independent reader (openpyxl, json), never from the code under
test.
"""

from __future__ import annotations

import datetime
import importlib
import io
import json
import math
import re
import subprocess
import sys
import warnings

import numpy as np
import openpyxl
import pytest
from openpyxl.workbook.defined_name import DefinedName

from lessonxl import reader
from lessonxl.errors import LessonxlError
from lessonxl.sheets import Book, _cached, _shown
from lessonxl.compare import Check, Truth, compare
from lessonxl.report import Report, as_json, exit_code, format_summary, summary_line


def _from_either(name: str, modules=("lessonxl.values", "lessonxl.files", "lessonxl.sheets", "lessonxl.reader")):
    """A function that the refactor of issue 10 moves between modules, wherever it is now."""
    for module in modules:
        try:
            found = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if found is not None:
            return found
    raise AssertionError(f"no module of lessonxl defines {name}")


as_grid = _from_either("as_grid")


# --- references: a block as a formula on its own sheet, or on another, writes it ------------------

def tiny_book(extra: dict | None = None) -> Book:
    """Sheets `data` and `my data` (a name that must be quoted); `data!w` is 3 x 2, `my data!x` 1 x 1,
    the global `g` 2 x 1."""
    values = {"data!w": np.arange(6.0).reshape(3, 2), "my data!x": 1.0, "g": [1.0, 2.0], **(extra or {})}
    return Book(io.BytesIO(), values, inputs=list(values))


@pytest.fixture
def blocks():
    book = tiny_book()
    data = book.sheet("data", "t")
    w = data.area("w", 4, 1)   # B5:C7
    g = data.area("g", 0, 5, global_name=True)  # F1:F2
    mine = book.sheet("my data", "t")
    x = mine.area("x", 2, 3)   # D3
    return book, data, mine, w, g, x


REFERENCES = {
    # case: (the block, the sheet being built, what to write, the hand-written A1 text)
    "corner, same sheet": ("w", "data", lambda b: b.cell(), "B5"),
    "cell (2, 1), same sheet": ("w", "data", lambda b: b.cell(2, 1), "C7"),
    "absolute cell": ("w", "data", lambda b: b.cell(1, 1, absolute=True), "$C$6"),
    "span": ("w", "data", lambda b: b.span(0, 0, 2, 1), "B5:C7"),
    "absolute span": ("w", "data", lambda b: b.span(1, 0, 2, 1, absolute=True), "$B$6:$C$7"),
    "row": ("w", "data", lambda b: b.row(1), "B6:C6"),
    "column": ("w", "data", lambda b: b.column(1), "C5:C7"),
    "absolute column": ("w", "data", lambda b: b.column(0, absolute=True), "$B$5:$B$7"),
    "a one-cell span is one cell": ("x", "my data", lambda b: b.span(0, 0, 0, 0), "D3"),
    "name, same sheet": ("w", "data", lambda b: b.ref, "data_w"),  # one name for the workbook: data!w
    "address, same sheet": ("w", "data", lambda b: b.address(), "data!$B$5:$C$7"),
    "corner, other sheet": ("w", "my data", lambda b: b.cell(), "data!B5"),
    "row, other sheet": ("w", "my data", lambda b: b.row(2), "data!B7:C7"),
    "name, other sheet": ("w", "my data", lambda b: b.ref, "data_w"),  # never Sheet!name
    "quoted sheet, cell": ("x", "data", lambda b: b.cell(), "'my data'!D3"),
    "quoted sheet, absolute": ("x", "data", lambda b: b.cell(absolute=True), "'my data'!$D$3"),
    "quoted sheet, address": ("x", "my data", lambda b: b.address(), "'my data'!$D$3"),  # one cell, no range
    "global name, other sheet": ("g", "my data", lambda b: b.ref, "g"),
    "global name's cells keep their sheet": ("g", "my data", lambda b: b.column(0), "data!F1:F2"),
}


@pytest.mark.parametrize("case", REFERENCES)
def test_block_references_are_the_a1_text_a_user_writes(blocks, case):
    book, data, mine, w, g, x = blocks
    block, building, write, expected = REFERENCES[case]
    reader = {"data": data, "my data": mine}[building]
    assert write({"w": w, "g": g, "x": x}[block].seen_from(reader)) == expected


def test_a_block_found_from_another_sheet_carries_that_sheets_name(blocks):
    book, data, mine, *_ = blocks
    data.block("w", 4, 1)
    assert mine.block_on("data", "w").cell(2, 1) == "data!C7"
    assert data.block_on("data", "w").cell(2, 1) == "C7"


@pytest.mark.parametrize("down, gaps, expected", [
    (False, (0, 0, 2), [(4, 1), (4, 3), (4, 7)]),   # w is 3 x 2: the next block starts right after it
    (True, (0, 1, 0), [(4, 1), (8, 1), (11, 1)]),   # down: below it, one empty row
])
def test_a_cursor_places_blocks_after_each_other(down, gaps, expected):
    book = tiny_book({"data!v": np.zeros((3, 2)), "data!u": np.zeros((1, 1))})
    sheet = book.sheet("data", "t")
    place = sheet.down(4, 1) if down else sheet.across(4, 1)
    corners = [(block.top, block.left) for block in
               (place.block(name, gap=gap) for name, gap in zip(("w", "v", "u"), gaps))]
    assert corners == expected


def test_a_block_knows_its_key_and_corners(blocks):
    _, _, _, w, g, x = blocks
    assert (w.key, g.key, x.key) == ("data!w", "g", "my data!x")
    assert (w.top, w.left, w.bottom, w.right, w.rows, w.cols) == (4, 1, 6, 2, 3, 2)


@pytest.mark.parametrize("name, expected", [
    ("it's", "'it''s'!A1"),        # a quote inside a quoted name is doubled
    ("A1", "'A1'!A1"),             # a sheet named like a cell
    ("R1C1", "'R1C1'!A1"),         # ... or like an R1C1 reference
    ("2019", "'2019'!A1"),         # starts with a digit
    ("sheet_2.b", "sheet_2.b!A1"),  # letters, digits, _ and . need no quotes
])
def test_sheet_names_are_quoted_where_a_formula_needs_it(name, expected):
    book = Book(io.BytesIO(), {f"{name}!v": 0.0}, inputs=[f"{name}!v"])
    block = book.sheet(name, "t").area("v", 0, 0)
    assert block.seen_from(book.sheet("other", "t")).cell() == expected


# --- values as a spreadsheet shows and caches them -------------------------------------------------

@pytest.mark.parametrize("value, num_format, shown", [
    ("a label", "0.0000", "a label"),
    (1.23456, "0.0000", "1.2346"),
    (2, "0.00", "2.00"),
    (np.float64(-0.125), "0.0", "-0.1"),   # round half to even, as Python formats
    (7.0, "0", "7"),
    (1 / 3, "General", "0.3333333333"),
    (0.1 + 0.2, "General", "0.3"),        # General shows at most 10 significant digits
    (1234567.0, "General", "1234567"),
    (12345.678, "0.00E+00", "1.23E+04"),
    (math.inf, "0.0000", "#NUM!"),
    (-math.inf, "General", "#NUM!"),
    (math.nan, "0.00", "#NUM!"),
])
def test_shown_is_how_the_number_format_displays_a_value(value, num_format, shown):
    assert _shown(value, num_format) == shown


@pytest.mark.parametrize("value, cached", [
    (1.5, 1.5),
    (2, 2.0),
    (np.float64(-3.25), -3.25),
    (True, 1.0),
    (math.nan, "#NUM!"),
    (np.float64("nan"), "#NUM!"),
    (math.inf, "#DIV/0!"),
    (-math.inf, "#DIV/0!"),
])
def test_cached_results_are_numbers_or_spreadsheet_errors(value, cached):
    result = _cached(value)
    assert result == cached and type(result) is type(cached)


def test_an_infinite_result_is_cached_as_an_error_value_openpyxl_reads_back():
    values = {"s!a": 2.0, "s!inv": math.inf, "s!half": 1.0, "s!nan": math.nan}
    target = io.BytesIO()
    book = Book(target, values, inputs=["s!a"])
    sheet = book.sheet("s", "t")
    a = sheet.block("a", 2, 0)
    sheet.block("inv", 3, 0, formula=f"=1/({a.cell()}-2)")
    sheet.block("half", 4, 0, formula=f"={a.cell()}/2")
    sheet.block("nan", 5, 0, formula=f"=SQRT(-{a.cell()})")
    book.close()
    target.seek(0)
    cached = openpyxl.load_workbook(target, data_only=True)["s"]
    formulas = openpyxl.load_workbook(io.BytesIO(target.getvalue()))["s"]
    assert [cached[f"A{row}"].value for row in (3, 4, 5, 6)] == [2, "#DIV/0!", 1, "#NUM!"]
    assert [formulas[f"A{row}"].value for row in (4, 5, 6)] == ["=1/(A3-2)", "=A3/2", "=SQRT(-A3)"]


@pytest.mark.parametrize("value, shape, column", [
    (3.0, (1, 1), [3.0]),
    (np.float64(2.5), (1, 1), [2.5]),
    ([1.0, 2.0, 3.0], (3, 1), [1.0, 2.0, 3.0]),   # a vector stands as a column
    ([[1.0, 2.0, 3.0]], (1, 3), [1.0]),           # a row stays a row
    (np.arange(6.0).reshape(2, 3), (2, 3), [0.0, 3.0]),
    (np.array(["cat", "dog"], dtype=object), (2, 1), ["cat", "dog"]),
])
def test_as_grid_makes_every_value_two_dimensional(value, shape, column):
    grid = as_grid(value)
    assert grid.shape == shape
    assert list(grid[:, 0]) == column


# --- defined names: valid ones made and read back, invalid ones refused ---------------------------

def book_with_name(name: str, global_name: bool = False, sheet: str = "data") -> tuple[Book, object, str]:
    key = name if global_name else f"{sheet}!{name}"
    book = Book(io.BytesIO(), {key: [[1.0, 2.0]]}, inputs=[key])
    return book, book.sheet(sheet, "t"), key


@pytest.mark.parametrize("name", [
    "A1", "a1", "XFD1048576", "ab12", "R1C1", "r2c3", "R", "c",   # cell references, A1 or R1C1
    "my name", "a-b", "1st", "rate%", "x(1)", "",                 # spaces, bad characters, a digit first
])
def test_an_invalid_defined_name_is_refused(name):
    book, sheet, _ = book_with_name(name, global_name=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # xlsxwriter warns as well as refusing
        with pytest.raises(ValueError, match="not a valid Excel name"):
            sheet.block(name, 3, 1, global_name=True)


@pytest.mark.parametrize("name", [
    "abe1", "exp1", "val1", "rms2",
])
def test_a_name_that_is_a_three_letter_column_cell_is_refused(name):
    book, sheet, _ = book_with_name(name, global_name=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="not a valid Excel name"):
            sheet.block(name, 3, 1, global_name=True)


@pytest.mark.parametrize("name", ["true_slope", "FALSE_x", "trueness"])
def test_a_name_beginning_with_true_or_false_is_refused_for_google_sheets(name):
    book, sheet, _ = book_with_name(name, global_name=True)
    with pytest.raises(ValueError, match="beginning with true or false, which Google Sheets refuses"):
        sheet.block(name, 3, 1, global_name=True)


@pytest.mark.parametrize("name", ["xfe1", "rate1x", "truth"])
def test_names_past_the_last_cell_are_accepted(name):
    book, sheet, _ = book_with_name(name, global_name=True)
    assert sheet.block(name, 3, 1, global_name=True).name == name


@pytest.mark.parametrize("sheet, name, words", [
    ("trueness", "x", "trueness_x is a name beginning with true or false"),  # the sheet's name first
    ("my data", "x", "my data_x is not a valid Excel name"),               # a space
    ("2019", "x", "2019_x is not a valid Excel name"),                     # a digit first
    ("data", "x" * 251, "is longer than Excel's 255 characters"),
])
def test_a_sheets_name_is_checked_as_the_workbook_writes_it(sheet, name, words):
    """A block of one sheet is the workbook's name `sheet_name`: the rules apply to that."""
    book, block_sheet, _ = book_with_name(name, sheet=sheet)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=re.escape(words)):
            block_sheet.block(name, 3, 1)


def test_two_blocks_with_one_workbook_name_are_refused():
    """data!x would be data_x, the global name data_x's; names ignore case (DATA_X is data_x)."""
    book = Book(io.BytesIO(), {"data_x": [[1.0]], "data!x": [[2.0]], "data!X": [[3.0]]},
                inputs=["data_x", "data!x", "data!X"])
    sheet = book.sheet("data", "t")
    sheet.block("data_x", 0, 1, global_name=True)
    with pytest.raises(ValueError, match="data!x: data_x is already the name of data_x"):
        sheet.block("x", 2, 1)
    with pytest.raises(ValueError, match="data!X: data_X is already the name of data_x"):
        sheet.block("X", 4, 1)


def test_a_name_that_would_read_back_as_another_sheets_is_refused():
    """Sheet names hold underscores: lesson_lr on sheet adam would be adam_lesson_lr, which reads back as
    adam_lesson!lr once a sheet adam_lesson exists (the check runs when every sheet is known)."""
    book = Book(io.BytesIO(), {"adam!lesson_lr": [[1.0]], "adam_lesson!beta": [[2.0]]},
                inputs=["adam!lesson_lr", "adam_lesson!beta"])
    book.sheet("adam", "t").block("lesson_lr", 2, 1)
    book.sheet("adam_lesson", "t").block("beta", 2, 1)
    with pytest.raises(ValueError, match="adam!lesson_lr: its defined name adam_lesson_lr would be read back "
                                         "as adam_lesson!lr"):
        book.close()


def written(book: Book) -> openpyxl.Workbook:
    book.close()
    target = book.workbook.filename
    target.seek(0)
    return openpyxl.load_workbook(target)


@pytest.mark.parametrize("name", ["lr", "user_factors", "beta1", "y.hat", "_private", "abcd1", "xfe1"])
def test_a_valid_name_is_defined_where_the_block_is(name):
    """A sheet's name `data!lr` is the workbook's name data_lr (no name is scoped to a sheet)."""
    book, sheet, key = book_with_name(name)
    sheet.block(name, 3, 1)
    read = written(book)
    definition = read.defined_names[f"data_{name}"]
    assert definition.attr_text == "data!$B$4:$C$4"
    assert not read["data"].defined_names
    assert read["data"]["B4"].value == 1 and read["data"]["C4"].value == 2
    # Not a lesson's workbook: its names are read as they are (a lesson's are read as its keys).
    assert reader.defined_names(read)[f"data_{name}"] == reader.Area("data", 4, 2, 4, 3)


def test_a_global_name_is_defined_for_the_workbook():
    book, sheet, _ = book_with_name("data_x", global_name=True)
    sheet.block("data_x", 0, 3, global_name=True)
    read = written(book)
    assert read.defined_names["data_x"].attr_text == "data!$D$1:$E$1"
    assert "data_x" not in read["data"].defined_names


@pytest.mark.parametrize("kwargs, words", [
    ({"formula": "=1"}, "an input takes no formula"),
    ({"headers": ["one"]}, "1 headers for 2 columns"),
    ({"row_labels": ["a", "b"]}, "2 row labels for 1 rows"),
])
def test_a_block_that_cannot_be_written_is_refused(kwargs, words):
    book, sheet, _ = book_with_name("v")
    with pytest.raises(ValueError, match=words):
        sheet.block("v", 3, 1, **kwargs)


def test_a_computed_block_needs_a_formula_and_one_string_fits_one_cell():
    book = Book(io.BytesIO(), {"s!two": [[1.0, 2.0]], "s!one": 1.0}, inputs=[])
    sheet = book.sheet("s", "t")
    with pytest.raises(ValueError, match="a computed block needs one"):
        sheet.block("one", 3, 1)
    with pytest.raises(ValueError, match="one formula string needs a 1 x 1 block"):
        sheet.block("two", 3, 1, formula="=1")


# --- reading a workbook back: addresses, areas, defined names --------------------------------------

@pytest.mark.parametrize("sheet, row, col, expected", [
    ("s", 4, 2, "s!B4"),
    ("basic", 1, 26, "basic!Z1"),
    ("basic", 10, 27, "basic!AA10"),
    ("my data", 1048576, 16384, "my data!XFD1048576"),
])
def test_address_is_sheet_and_a1_cell(sheet, row, col, expected):
    assert reader.address(sheet, row, col) == expected


def test_an_area_knows_its_shape_and_cells_row_by_row():
    area = reader.Area("s", 2, 3, 3, 5)  # C2:E3
    assert area.shape == (2, 3)
    assert list(area.cells()) == [(2, 3), (2, 4), (2, 5), (3, 3), (3, 4), (3, 5)]
    assert reader.Area("s", 7, 1, 7, 1).shape == (1, 1) and list(reader.Area("s", 7, 1, 7, 1).cells()) == [(7, 1)]


def test_defined_names_reads_global_scoped_quoted_and_skips_multi_range_names():
    book = openpyxl.Workbook()
    book.active.title = "data"
    other = book.create_sheet("my data")
    book.defined_names["data_x"] = DefinedName("data_x", attr_text="data!$A$2:$A$31")
    book["data"].defined_names["lr"] = DefinedName("lr", attr_text="data!$C$3")
    other.defined_names["probs"] = DefinedName("probs", attr_text="'my data'!$B$4:$F$11")
    book.defined_names["two"] = DefinedName("two", attr_text="data!$A$1,data!$C$1")
    buffer = io.BytesIO()
    book.save(buffer)
    names = reader.defined_names(openpyxl.load_workbook(io.BytesIO(buffer.getvalue())))
    assert names == {
        "data_x": reader.Area("data", 2, 1, 31, 1),
        "data!lr": reader.Area("data", 3, 3, 3, 3),
        "my data!probs": reader.Area("my data", 4, 2, 11, 6),
    }


# --- what a cell holds, in a user's words (beyond the cases of test_truth) -------------------------

@pytest.mark.parametrize("value, words", [
    (None, "nothing"),
    ("   ", "nothing"),
    (False, "the logical value FALSE"),
    (datetime.datetime(2024, 1, 15, 13, 45), "a date (2024-01-15 13:45:00)"),
    (datetime.date(2024, 1, 15), "a date (2024-01-15)"),
    (datetime.time(13, 45), "a time (13:45:00)"),
    ("#N/A", "the error value #N/A"),
    ("ten", 'the text "ten"'),
    (3, "the number 3"),
    (0.1, "the number 0.1"),
    (1 / 3, "the number 0.333333333333333"),
    (-2.5e-20, "the number -2.5e-20"),
    (b"bytes", "something other than a number or a label"),
])
def test_describe_says_what_a_cell_holds(value, words):
    assert reader.describe(value) == words


@pytest.mark.parametrize("value, text, blank_ok, formula, taken", [
    (7, False, False, False, 7.0),
    (None, False, True, False, "nan"),
    ("  ", False, True, False, "nan"),     # a cell holding spaces is a blank too
    ("cat", True, False, False, "cat"),
    (3, True, False, False, "3"),          # a number typed as a label is a label
    (2.5, True, False, True, "2.5"),
])
def test_an_input_value_is_taken(value, text, blank_ok, formula, taken):
    result = reader._input_value(value, "s!B2", text=text, blank_ok=blank_ok, formula=formula)
    if taken == "nan":
        assert isinstance(result, float) and math.isnan(result)
    else:
        assert result == taken and type(result) is type(taken)


@pytest.mark.parametrize("value, text, blank_ok, formula, words", [
    (None, False, True, True, "holds a formula whose value is empty; a number belongs there"),
    (None, True, False, False, "is empty; a label belongs there"),
    ("", True, False, False, "is empty; a label belongs there"),
    ("#N/A", True, False, False, "holds the error value #N/A; a label belongs there"),
    (True, True, False, False, "holds the logical value TRUE; a label belongs there"),
    (False, False, True, False, "holds the logical value FALSE; a number belongs there"),
    ("#REF!", True, False, True, "holds a formula whose value is the error value #REF!; a label belongs there"),
])
def test_an_unusable_input_value_is_refused_in_a_users_words(value, text, blank_ok, formula, words):
    with pytest.raises(LessonxlError) as raised:
        reader._input_value(value, "s!B2", text=text, blank_ok=blank_ok, formula=formula)
    assert str(raised.value) == f"input cell s!B2 {words}"


# --- a file that is no zip archive, named by its first bytes ---------------------------------------

@pytest.mark.parametrize("head, words", [
    (b"PK\x01\x02 central directory first", "is a damaged or truncated .xlsx workbook (its zip archive is incomplete)"),
    (b"\x00\x01\x02 binary", "is not an .xlsx workbook (not a zip archive)"),
    (b"<?xml version='1.0'?><workbook/>", "is an XML or HTML text file, not an .xlsx workbook"),
    (b"\n  <html><body>a table</body></html>", "is an XML or HTML text file, not an .xlsx workbook"),
    (b"\xef\xbb\xbf<?xml version='1.0'?>", "is an XML or HTML text file, not an .xlsx workbook"),
    (b"a\tb\n1\t2\n", "is a CSV text file, not an .xlsx workbook"),
    (b"\xef\xbb\xbfuser,movie\n1,2\n", "is a CSV text file, not an .xlsx workbook"),
    (b"caf\xe9;cr\xe8me\n1;2\n", "is a CSV text file, not an .xlsx workbook"),     # latin-1, not UTF-8
    (b"user,movie\n\n\n1,2\n", "is a CSV text file, not an .xlsx workbook"),       # blank lines skipped
    (b"user,movie\nno separator here\n", "is a text file, not an .xlsx workbook"),  # every line must have one
    (b"just words", "is a text file, not an .xlsx workbook"),
])
def test_a_file_that_is_no_zip_is_named_by_its_first_bytes(head, words):
    assert _from_either("_not_a_zip", ("lessonxl.files", "lessonxl.reader"))(head) == words


# --- the lines a report prints (the comparison rule itself: tests/test_compare.py) -----------------

def checked(actual, want, cells=1) -> Check:
    area = reader.Area("s", 1, 1, 1, cells)
    values = {(1, c): actual for c in range(1, cells + 1)}
    return compare(values, area, "q", Truth(np.full((1, cells), want)), 1e-9, 1e-9)


def test_summary_of_an_unusable_file_is_its_error():
    report = Report("x.xlsx", error="x.xlsx: the file is empty")
    assert summary_line(report) == "ERROR x.xlsx: the file is empty"
    assert format_summary(report) == "ERROR x.xlsx: the file is empty"
    assert exit_code([report]) == 2 and not report.passed


def test_summary_of_a_passing_file_counts_the_covered_cells():
    report = Report("x.xlsx", "graddesc", "cpu", [checked(1.5, 1.5)], formula_cells=3,
                           uncovered=["s!B1"], seconds=1.25)
    assert summary_line(report) == ("PASS x.xlsx: graddesc, 2 of 3 formula cells equal torch "
                                           "(worst relative error 0.0e+00), 1.2 s")
    assert format_summary(report).splitlines()[1] == "  note: 1 formula cells are not covered by any check: s!B1"


def test_summary_of_a_failing_file_names_the_cells_and_the_worst():
    report = Report("x.xlsx", "graddesc", "cpu", [checked(2.0, 1.5, cells=7)], formula_cells=7)
    assert format_summary(report) == (
        "FAIL x.xlsx: graddesc, 7 of 7 formula cells differ from torch (worst relative error 3.3e-01), 0.0 s\n"
        "  s!q: 7 of 7 cells differ from torch (s!A1, s!B1, s!C1, s!D1, s!E1 and 2 more); "
        "worst s!A1: sheet 2, torch 1.5")
    assert exit_code([report]) == 1


def test_json_turns_inf_and_nan_into_null():
    check = checked(1e308, math.inf)
    check.max_rel = math.nan
    report = Report("x.xlsx", "graddesc", "cpu", [check], formula_cells=1)
    [data] = as_json([report])
    text = json.dumps(data, allow_nan=False)  # raises on any inf or nan left
    back = json.loads(text)["checks"][0]
    assert back["worst_values"] == [1e308, None] and back["max_rel"] is None
    assert back["passed"] is False and json.loads(text)["ok"] is False


def test_reading_and_verifying_do_not_load_the_file_writer():
    """verify recognises lessons and computes with them; only generate needs xlsxwriter and the layouts."""
    code = ("import sys, lessonxl, lessonxl.registry, lessonxl.pipeline; "
            "print(sorted(m for m in sys.modules if m == 'xlsxwriter' or m == 'lessonxl.sheets'))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


@pytest.mark.parametrize("sheet, name, expected", [
    ("data", "w", "data's own w"),     # a sheet's own name first
    ("other", "w", "the global w"),    # a sheet without one reads the global name
    ("data", "g", "the global g"),
])
def test_a_name_is_looked_up_as_a_formula_on_the_sheet_reads_it(sheet, name, expected):
    from lessonxl.values import resolve

    values = {"data!w": "data's own w", "w": "the global w", "g": "the global g"}
    assert resolve(values, sheet, name) == expected
    with pytest.raises(KeyError):
        resolve(values, "data", "absent")
