"""Round trips: every workbook saved again by software other than lessonxl still verifies.

- re-saved by headless LibreOffice (xlsx -> xlsx, as a user who opens and saves it in Calc): the defined
  names, array formulas and inputs survive, and `verify` passes with every formula cell covered;
- edited with openpyxl (an input changed) and saved: `verify` passes, and the values LibreOffice
  recalculates differ from the generated file's, so the edit really reached what was compared.
"""

from __future__ import annotations

import numpy as np
import openpyxl
import pytest
from openpyxl.worksheet.formula import ArrayFormula

from lessonxl import reader
from lessonxl.registry import by_name
from lessonxl.pipeline import verify_paths

from conftest import NAMES, first_number_input
from libreoffice import Recalculation


def inputs_of(path, lesson) -> dict[str, np.ndarray]:
    book = reader.Snapshot(path)
    return {key: reader.read_input(book, book.names[key], key in lesson.text_inputs,
                                   key in lesson.blank_inputs)
            for key in lesson.inputs}


@pytest.fixture(scope="module")
def round_trips(generated, tmp_path_factory):
    """Each workbook re-saved by LibreOffice and edited by openpyxl; all verified in one run."""
    folder = tmp_path_factory.mktemp("roundtrip")
    resaved = Recalculation(list(generated.values()), folder / "libreoffice").wait()
    edited, edits = {}, {}
    for name, path in generated.items():
        key, sheet, row, col, value = first_number_input(path, by_name(name))
        book = openpyxl.load_workbook(path)
        new_value = 0.9 * value if value else 0.25
        book[sheet].cell(row, col).value = new_value
        edited[name] = folder / f"openpyxl_{name}.xlsx"
        book.save(edited[name])
        edits[name] = (key, reader.address(sheet, row, col), new_value)
    paths = {("libreoffice", name): resaved[path] for name, path in generated.items()}
    paths.update({("openpyxl", name): path for name, path in edited.items()})
    assert all(paths.values()), "LibreOffice did not re-save every workbook"
    reports = dict(zip(paths, verify_paths(list(paths.values()), device="cpu")))
    return paths, reports, edits, folder


def assert_verified(report):
    assert report.error is None, report.error
    failed = [f"{c.sheet}!{c.name} at {c.worst}" for c in report.checks if not c.passed]
    assert not failed
    assert report.checks and report.uncovered == []


@pytest.mark.parametrize("name", NAMES)
def test_a_workbook_resaved_by_libreoffice_still_verifies(generated, round_trips, name):
    paths, reports, _, _ = round_trips
    resaved = paths[("libreoffice", name)]
    assert_verified(reports[("libreoffice", name)])
    lesson = by_name(name)
    original, again = reader.Snapshot(generated[name]), reader.Snapshot(resaved)
    # Every defined name survives, pointing at the same cells.
    assert again.names == original.names
    # Every formula cell survives (each cell of a multi-cell array formula included) ...
    assert again.formulas == original.formulas
    # ... and the legacy array formulas stay array formulas.
    def arrays(book):
        return {(sheet, where, value.ref) for sheet, cells in book.cells.items()
                for where, value in cells.items() if isinstance(value, ArrayFormula)}
    assert arrays(again) == arrays(original)
    # The inputs read back are the same numbers and labels.
    before, after = inputs_of(generated[name], lesson), inputs_of(resaved, lesson)
    for key in lesson.inputs:
        if key in lesson.text_inputs:
            assert (before[key] == after[key]).all(), key
        else:
            np.testing.assert_array_equal(before[key], after[key], err_msg=key)


@pytest.mark.parametrize("name", NAMES)
def test_an_input_edited_with_openpyxl_verifies_and_changes_the_sheet(generated, round_trips, name):
    paths, reports, edits, folder = round_trips
    assert_verified(reports[("openpyxl", name)])
    key, where, new_value = edits[name]
    lesson = by_name(name)
    edited_inputs = inputs_of(paths[("openpyxl", name)], lesson)
    assert new_value in edited_inputs[key], f"{where} lost its new value {new_value}"
    # The recalculated sheet itself (not torch) moved away from the generated workbook's values.
    fresh = Recalculation([paths[("openpyxl", name)]], folder / f"recalc_{name}").wait()
    fresh = openpyxl.load_workbook(fresh[paths[("openpyxl", name)]], data_only=True)
    cached = openpyxl.load_workbook(generated[name], data_only=True)
    formulas = reader.Snapshot(generated[name]).formulas
    changed = [cell for cell in formulas
               if fresh[cell[0]].cell(*cell[1:]).value != cached[cell[0]].cell(*cell[1:]).value]
    assert changed, f"editing {where} changed no recalculated cell"
