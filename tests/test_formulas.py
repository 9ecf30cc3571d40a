"""Formulas read as text (tokens, A1 references, what a formula reads, its R1C1 form) and evaluated with
a spreadsheet's rules, as `lessonxl verify`'s diagnosis uses them; no LibreOffice."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import lessonxl

from lessonxl.evaluator import evaluate
from lessonxl.references import (MAX_ROW, Names, Area, Reader, Unsupported, a1, canonical, column_letters,
                                 column_number, precedents, read, row_col, shifted)
from lessonxl.values import ERRORS


def names_of(mapping: dict) -> Names:
    return lambda sheet, prefix, name: mapping.get((prefix or sheet, name)) or mapping.get((None, name))


NAMES_HERE = names_of({("adam", "beta2"): Area("adam", 8, 2, 8, 2), (None, "adam_beta2"): Area("adam", 8, 2, 8, 2),
                       (None, "data_x"): Area("data", 9, 2, 38, 2)})


def test_precedents_are_refs_ranges_and_names_whole():
    rects = precedents("=adam_beta2*K39+(1-adam_beta2)*G40^2+SUM(data!B2:C3)+INDEX(data_x,A1)", "adam",
                          NAMES_HERE)
    assert rects == [Area("adam", 8, 2, 8, 2), Area("adam", 39, 11, 39, 11), Area("adam", 8, 2, 8, 2),
                     Area("adam", 40, 7, 40, 7), Area("data", 2, 2, 3, 3), Area("data", 9, 2, 38, 2),
                     Area("adam", 1, 1, 1, 1)]
    assert precedents("='my sheet'!$A$1+SUM(B:B)", "s", NAMES_HERE) == [
        Area("my sheet", 1, 1, 1, 1), Area("s", 1, 2, MAX_ROW, 2)]


def test_the_same_formula_filled_down_has_one_canonical_form_and_names_resolve():
    # A sheet-scoped beta2 (files up to 0.4.0) and the workbook-wide adam_beta2 point at the same cell.
    old = canonical("=beta2*K39+(1-beta2)*G40^2", "adam", 40, 11, NAMES_HERE)
    new = canonical("=adam_beta2 * K40 + (1 - adam_beta2) * G41 ^ 2", "adam", 41, 11, NAMES_HERE)
    assert old == new
    assert canonical("=K39", "adam", 40, 11, NAMES_HERE) != canonical("=K38", "adam", 40, 11, NAMES_HERE)
    assert shifted("K39+$A$1+data!B$2", 3, 1) == "L42+$A$1+data!C$2"
    reading = Reader(NAMES_HERE)  # the quick path gives what the slow one gives
    for row in (40, 41, 300):
        text = f"=adam_beta2*K{row - 1}+(1-adam_beta2)*G{row}^2+$A$5"
        assert reading.read(text, "adam", row, 11) == read(text, "adam", row, 11, NAMES_HERE)


CELLS = {("s", 1, 1): 2.0, ("s", 2, 1): 3.0, ("s", 3, 1): None, ("s", 1, 2): "Dog", ("s", 2, 2): "cat",
         ("s", 3, 2): 4.0, ("s", 1, 3): -1.0}


@pytest.mark.parametrize("text, value", [
    ("=A1+A2*2^2", 14.0), ("=-2^2", 4.0), ("=10%", 0.1), ("=SUM(A1:A3)", 5.0), ("=A3+1", 1.0),
    ("=SUMPRODUCT((A1:A3<>\"\")*(A1:A3-1)^2)", 5.0), ("=MMULT(A1:B1,A2:A2)", "#VALUE!"),
    ("=INDEX(A1:A3,2)", 3.0), ("=MATCH(\"dog\",B1:B2,0)", 1.0), ("=OFFSET(A1,1,0,1,1)", 3.0),
    ("=IF(A1>A2,\"yes\",\"no\")", "no"), ("=SQRT(C1)", "#NUM!"), ("=A1/0", "#DIV/0!"), ("=LN(A1)", np.log(2)),
    ("=EXP(1000)", "#NUM!"), ("=COUNT(A1:B3)", 3.0), ("=AVERAGE(A1:A3)", 2.5), ("=SUMSQ(A1:A2)", 13.0),
    ("=B1=\"DOG\"", True), ("=COS(PI())", -1.0), ("=INT(-1.5)", -2.0), ("=MAX(A1:A2)-MIN(A1:A2)", 1.0),
    ("=ROWS(A1:B3)", 3.0), ("=LARGE(A1:A2,1)", 3.0), ("=LOG(100)", 2.0), ("=ABS(C1)", 1.0),
    # Outside an array formula, an operator given a range takes its cell in the formula's row (here 5: none),
    # except in the arguments of functions that take arrays.
    ("=SUM((A1:A3<>\"\")*A1:A3)", "#VALUE!"), ("=SUMPRODUCT((A1:A3<>\"\")*A1:A3)", 5.0), ("=SQRT(A1:A3)", "#VALUE!"),
    ("=A1:A9*2", 0.0),
    # SUMPRODUCT counts anything but a number as 0; MMULT takes only numbers.
    ("=SUMPRODUCT(A1:B1)", 2.0), ("=MMULT(A1:A2,C1)", -2.0), ("=MMULT(B1,C1)", "#VALUE!"),
    # Too few or too many arguments.
    ("=SQRT(4,1)", "#VALUE!"), ("=INDEX(A1:A3)", "#VALUE!"), ("=INDEX(A1:B3,2,2,1)", "#VALUE!"),
])
def test_the_evaluator_computes_as_a_spreadsheet(text, value):
    got = evaluate(text, "s", 5, 5, lambda sheet, row, col: CELLS.get((sheet, row, col)), NAMES_HERE)
    assert got == pytest.approx(value) if isinstance(value, float) else got == value


def test_an_unknown_function_is_said_not_guessed():
    with pytest.raises(Unsupported):
        evaluate("=LAMBDA(1)", "s", 1, 1, lambda *a: None, NAMES_HERE)


@pytest.mark.parametrize("letters, number", [("A", 1), ("Z", 26), ("AA", 27), ("az", 52), ("XFD", 16384)])
def test_columns_are_numbered_as_a_spreadsheet_does(letters, number):
    assert column_number(letters) == number
    assert column_letters(number) == letters.upper()


def test_a_cell_address_reads_back_to_its_row_and_column():
    assert row_col("K40") == (40, 11) == row_col("$K$40")
    assert a1(40, 11) == "K40"
    for text in ("K", "40", "K40:K41", "adam!K40"):
        with pytest.raises(ValueError):
            row_col(text)


def test_an_error_in_an_array_stays_in_its_own_entry():
    def value(at):
        return evaluate("=1/(A1:A3-2)", "s", 5, 5, lambda sheet, row, col: CELLS.get((sheet, row, col)),
                        NAMES_HERE, array_at=at, array=True)
    assert value((0, 0)) == "#DIV/0!"  # A1 is 2
    assert value((1, 0)) == 1.0
    assert value((2, 0)) == -0.5       # A3 is blank: 0


@pytest.mark.parametrize("cell, text, value", [
    ("#N/A", "=ISERROR(A1)", True), ("#GETTING_DATA", "=ISERROR(A1)", True), ("#N/A", "=A1+1", "#N/A"),
    ("#hello", "=ISERROR(A1)", False), ("#hello", '=A1&"!"', "#hello!"),
])
def test_error_values_spread_and_text_that_looks_like_one_is_text(cell, text, value):
    assert evaluate(text, "s", 5, 5, lambda *at: cell if at == ("s", 1, 1) else None, NAMES_HERE) == value


def test_an_error_written_in_a_formula_is_an_error_value():
    assert evaluate("=IFERROR(#DIV/0!,7)", "s", 1, 1, lambda *at: None, NAMES_HERE) == 7.0
    assert evaluate("=#N/A", "s", 1, 1, lambda *at: None, NAMES_HERE) == "#N/A"


def test_every_error_value_the_bridge_gives_is_one_lessonxl_knows():
    # unobridge.py runs outside lessonxl's Python (it cannot import values.ERRORS): its table is read as text.
    bridge = ast.parse(Path(lessonxl.__file__).with_name("unobridge.py").read_text())
    [table] = [node.value for node in bridge.body if isinstance(node, ast.Assign)
               and [getattr(target, "id", None) for target in node.targets] == ["XLSX_ERRORS"]]
    given = set(ast.literal_eval(table).values())
    assert "#DIV/0!" in given and given <= set(ERRORS)
