"""Right on screen, not only in verify: each workbook opened in LibreOffice as a student opens it (default
settings: the file's saved results are shown, nothing is recalculated on load), one input changed or
deleted, every cell read, then Recalculate Hard: no cell may still show a value the edit made wrong.

LibreOffice 7.4 misses updates through the cells of legacy array formulas in a freshly opened file: in
0.4.0's workbooks 9,104 cells over 75 edits (collab_filter's RMSE after a factor changed, its whole
unrolled training after a rating was deleted). The workbooks now write matrix products cell by cell;
the last two tests show the check finds the fault, in two cells and in 0.4.0's collab_filter.xlsx.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter
from openpyxl.utils import get_column_letter

from conftest import NAMES, SEED
from lessonxl import reader, recalc, registry

DRIVER = Path(__file__).with_name("live_edit.py")
FIXTURES = Path(__file__).with_name("fixtures")


def cell_of(path: Path, key: str) -> tuple[str, int, int]:
    """(sheet, row, column) from 0 of the first cell of the defined name `key`."""
    area = reader.defined_names(openpyxl.load_workbook(path, read_only=True))[key]
    return area.sheet, area.min_row - 1, area.min_col - 1


def drive(edits: list[dict]) -> list[dict]:
    """Each edit made in LibreOffice as a user makes it (tests/live_edit.py): stale cells and drift."""
    soffice = recalc.find_soffice()
    python = recalc.find_uno_python(soffice)
    done = subprocess.run([python, str(DRIVER), soffice], input=json.dumps(edits), capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def sampled_edits(path: Path, lesson, seed: int = SEED) -> list[dict]:
    """For every sheet with inputs, one of its numeric input cells (seeded) typed over with another
    number, and the same cell deleted: the edits students make."""
    rng = random.Random(seed)
    book = openpyxl.load_workbook(path)
    areas = reader.defined_names(book)
    by_sheet: dict[str, list[tuple[int, int, float]]] = {}
    for key in lesson.inputs:
        area = areas[key]
        for row, col in area.cells():
            value = book[area.sheet].cell(row, col).value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                by_sheet.setdefault(area.sheet, []).append((row - 1, col - 1, float(value)))
    edits = []
    for sheet, cells in sorted(by_sheet.items()):
        row, col, value = rng.choice(cells)
        for typed in (value * 1.1 + 0.1, None):
            edits.append({"path": str(path), "sheet": sheet, "row": row, "col": col, "value": typed})
    return edits


@pytest.mark.parametrize("name", NAMES)
def test_no_stale_cell_after_an_edit(generated, name):
    lesson = registry.by_name(name)
    edits = sampled_edits(generated[name], lesson)
    results = drive(edits)
    stale = {f"{e['sheet']}!R{e['row'] + 1}C{e['col'] + 1} {'deleted' if e['value'] is None else 'changed'}":
             r["stale"] for e, r in zip(edits, results) if r["stale"]}
    drift = max(r["worst_drift"] for r in results)
    print(f"{name}: {len(edits)} edits, {sum(map(len, stale.values()))} stale cells, "
          f"{sum(r['drift'] for r in results)} cells off by rounding (worst relative {drift:.1e})")
    assert len(edits) >= 4
    assert not stale, {edit: (len(cells), cells[:3]) for edit, cells in stale.items()}
    assert drift < 1e-6  # what changed with the edit changed to the right value, up to rounding


def test_the_check_sees_the_stale_rmse_of_0_4_0():
    """The fault itself: collab_filter.xlsx as 0.4.0 wrote it (predictions by a legacy MMULT array
    formula). A user factor changed on dotprod: LibreOffice recalculates the array and leaves the RMSE,
    which reads it, showing its saved value."""
    path = FIXTURES / "collab_filter_0.4.0.xlsx"
    sheet, row, col = cell_of(path, "dotprod!user_factors")
    [result] = drive([{"path": str(path), "sheet": sheet, "row": row, "col": col, "value": 0.5}])
    rmse = cell_of(path, "dotprod!rmse")
    assert f"{rmse[0]}!{get_column_letter(rmse[2] + 1)}{rmse[1] + 1}" in [cell for cell, *_ in result["stale"]], result


def test_the_check_sees_a_stale_sum(tmp_path):
    """The fault in two cells: a legacy MMULT array formula with saved results and a SUM that reads it."""
    path = tmp_path / "array.xlsx"
    book = xlsxwriter.Workbook(path)
    sheet = book.add_worksheet("s")
    sheet.write_row("A1", [1.0, 2.0])
    sheet.write_row("A2", [3.0, 4.0])
    sheet.write_array_formula("D1:E2", "{=MMULT(A1:B2,A1:B2)}", None, 7.0)
    for cell, value in (("E1", 10.0), ("D2", 15.0), ("E2", 22.0)):  # the array's saved results
        sheet.write_number(cell, value)
    sheet.write_formula("G1", "=SUM(D1:E2)", None, 54.0)
    book.close()
    [result] = drive([{"path": str(path), "sheet": "s", "row": 0, "col": 0, "value": 5.0}])
    assert result["stale"] == [["s!G1", 54.0, 98.0]], result  # MMULT([[5,2],[3,4]], itself) sums to 98
