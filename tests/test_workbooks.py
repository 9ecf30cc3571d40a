"""Every registered workbook, checked end to end against LibreOffice and torch.

These tests run the real engine: `lessonxl verify` recalculates with headless LibreOffice and torch
recomputes from the workbook's own inputs.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path

import numpy as np
import openpyxl
import pytest
import torch
from openpyxl.utils import get_column_letter

from lessonxl import reader
from lessonxl.registry import LESSONS, by_name
from lessonxl.report import exit_code
from lessonxl.pipeline import verify_paths

from conftest import CPU, NAMES, SEED, default_grids, first_number_input, mutate_formula, pick_mutations, set_value
from libreoffice import Recalculation

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def reports(generated):
    """One verify run (one LibreOffice process) over every generated workbook."""
    return dict(zip(generated, verify_paths(list(generated.values()), device="cpu")))


@pytest.mark.parametrize("name", NAMES)
def test_generated_workbook_verifies_with_every_formula_cell_covered(reports, name):
    report = reports[name]
    assert report.error is None
    assert report.checks, "nothing was compared"
    failed = [f"{c.sheet}!{c.name}" for c in report.checks if not c.passed]
    assert not failed
    assert report.formula_cells > 0
    assert report.uncovered == []


@pytest.mark.parametrize("name", NAMES)
def test_declared_inputs_match_default_inputs(name):
    lesson = by_name(name)
    assert set(lesson.default_inputs(SEED)) == set(lesson.inputs)
    assert lesson.params <= set(lesson.inputs)


@pytest.fixture(scope="session")
def mutated(generated, tmp_path_factory):
    """Copies of each workbook with one formula changed (cached value left stale), all verified."""
    folder = tmp_path_factory.mktemp("mutated")
    cases = []
    for name, path in generated.items():
        for sheet, cell in pick_mutations(path):
            target = folder / f"{name}_{sheet}_{cell}.xlsx"
            mutate_formula(path, target, sheet, cell)
            cases.append((name, sheet, cell, target))
    found = verify_paths([case[3] for case in cases], device="cpu")
    return {(name, sheet, cell): report for (name, sheet, cell, _), report in zip(cases, found)}


@pytest.mark.parametrize("name", NAMES)
def test_a_changed_formula_anywhere_fails_verify_and_names_its_cell(mutated, name):
    cases = {key: report for key, report in mutated.items() if key[0] == name}
    assert len({sheet for _, sheet, _ in cases}) >= 2, "mutations should reach several sheets"
    for (_, sheet, cell), report in cases.items():
        assert report.error is None
        assert exit_code([report]) == 1, f"{sheet}!{cell} changed and verify passed"
        mismatched = {where for check in report.checks for where in check.mismatches}
        assert f"{sheet}!{cell}" in mismatched


@pytest.mark.parametrize("name", NAMES)
def test_an_edited_input_is_recomputed_and_passes(generated, tmp_path, name):
    lesson = by_name(name)
    key, sheet, row, col, value = first_number_input(generated[name], lesson)
    edited = tmp_path / f"edited_{name}.xlsx"
    new_value = 0.9 * value if value else 0.25
    set_value(generated[name], edited, sheet, f"{get_column_letter(col)}{row}", new_value)

    [report] = verify_paths([edited], device="cpu")
    assert report.passed, [c for c in report.checks if not c.passed]

    defaults = default_grids(lesson)
    changed = default_grids(lesson)
    area = reader.defined_names(openpyxl.load_workbook(edited))[key]
    changed[key][row - area.min_row, col - area.min_col] = new_value
    before = lesson.evaluate(defaults, CPU)
    after = lesson.evaluate(changed, CPU)
    assert any(not np.allclose(before[k], after[k], equal_nan=True) for k in before), \
        f"editing {key} changed no computed value"


def test_cached_values_equal_what_libreoffice_recalculates(generated, tmp_path):
    paths = list(generated.values())
    engine = Recalculation(paths, tmp_path)
    recalculated = engine.wait()
    for path in paths:
        cached = openpyxl.load_workbook(path, data_only=True)
        fresh = openpyxl.load_workbook(recalculated[path], data_only=True)
        formulas = reader.Snapshot(path).formulas
        assert formulas
        for sheet, row, col in formulas:
            want = fresh[sheet].cell(row, col).value
            got = cached[sheet].cell(row, col).value
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9), reader.address(sheet, row, col)


def test_verify_leaves_its_input_byte_identical(generated):
    path = generated["entropy_example"]
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    verify_paths([path], device="cpu")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_the_same_seed_gives_byte_identical_files(generated):
    for lesson in LESSONS:
        assert lesson.build(SEED, CPU) == generated[lesson.name].read_bytes()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_equals_cpu(name):
    lesson = by_name(name)
    inputs = default_grids(lesson)
    on_cpu = lesson.evaluate(inputs, CPU)
    on_cuda = lesson.evaluate(inputs, torch.device("cuda"))
    assert on_cpu.keys() == on_cuda.keys()
    for key in on_cpu:
        np.testing.assert_allclose(on_cuda[key], on_cpu[key], rtol=1e-12, atol=1e-12, err_msg=key)


def test_error_values_agree_with_torch_out_of_domain(generated, tmp_path):
    """A probability above 1 makes LN(1-p) leave its domain: sheet error and torch nan agree."""
    path = generated["entropy_example"]
    book = openpyxl.load_workbook(path)
    area = reader.defined_names(book)["binary_xent!predicted"]
    cell = reader.address(area.sheet, area.min_row, area.min_col).split("!")[1]
    edited = tmp_path / "domain.xlsx"
    set_value(path, edited, area.sheet, cell, 1.5)
    [report] = verify_paths([edited], device="cpu")
    assert report.passed
    inputs = default_grids(by_name("entropy_example"))
    inputs["binary_xent!predicted"][0, 0] = 1.5
    torch_loss = by_name("entropy_example").evaluate(inputs, CPU)["binary_xent!loss"]
    assert math.isnan(torch_loss[0, 0])


def test_copies_keep_their_names(generated, tmp_path):
    """A renamed copy is still recognised by its sheets."""
    path = tmp_path / "my copy.xlsx"
    shutil.copyfile(generated["entropy_example"], path)
    [report] = verify_paths([path], device="cpu")
    assert report.passed and report.workbook == "entropy_example"
