"""Shared fixtures: every workbook generated once, and helpers that edit a workbook's XML in place;
the constants and small helpers that several test files use (`from conftest import ...`).

Edits go through the XML so that everything else in the file stays as the generator wrote it: a
mutated formula keeps its (now stale) cached value, so a check that read cached values would pass.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import openpyxl
import pytest
import torch
from openpyxl.utils import get_column_letter

from lessonxl import reader
from lessonxl.collab import CollabFilter
from lessonxl.registry import LESSONS
from lessonxl.values import as_grid

from libreoffice import Recalculation

SEED = 0
CPU = torch.device("cpu")
NAMES = [lesson.name for lesson in LESSONS]


def run_cli(*args, env=None, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    """`python -m lessonxl ARGS...` as a user's shell runs it, its output captured as text."""
    return subprocess.run([sys.executable, "-m", "lessonxl", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=timeout)


def default_grids(lesson, seed: int = SEED) -> dict[str, np.ndarray]:
    """A lesson's default inputs, each a fresh 2-D array (safe to edit)."""
    return {key: as_grid(value).copy() for key, value in lesson.default_inputs(seed).items()}


def tensor(grid) -> torch.Tensor:
    """A grid of numbers as a float64 tensor."""
    return torch.as_tensor(np.asarray(grid, dtype=np.float64))


def sheet_parts(path: Path) -> dict[str, str]:
    """Sheet name -> its XML part in the zip (xlsxwriter numbers them in sheet order)."""
    with zipfile.ZipFile(path) as archive:
        workbook = archive.read("xl/workbook.xml").decode()
    names = re.findall(r'<sheet name="([^"]+)"', workbook)
    return {name: f"xl/worksheets/sheet{i + 1}.xml" for i, name in enumerate(names)}


def rewrite_part(source: Path, target: Path, part: str, edit) -> None:
    """Copy the workbook `source` to `target` with `edit(xml) -> xml` applied to one part."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            data = old.read(item.filename)
            if item.filename == part:
                data = edit(data.decode()).encode()
            new.writestr(item, data)


def formula_cells_xml(path: Path) -> list[tuple[str, str]]:
    """(sheet, cell) of every cell whose XML holds a formula (the top-left cell of an array)."""
    found = []
    with zipfile.ZipFile(path) as archive:
        for sheet, part in sheet_parts(path).items():
            xml = archive.read(part).decode()
            found += [(sheet, ref) for ref in re.findall(r'<c r="([A-Z]+[0-9]+)"[^>]*><f[ >]', xml)]
    return found


def mutate_formula(source: Path, target: Path, sheet: str, cell: str) -> None:
    """Change the formula of `cell` to (formula)+0.5, leaving its cached value as it was."""
    def edit(xml: str) -> str:
        pattern = re.compile(rf'(<c r="{cell}"[^>]*><f[^>]*>)(.*?)(</f>)')
        assert pattern.search(xml), f"{sheet}!{cell} holds no formula"
        return pattern.sub(lambda m: f"{m.group(1)}({m.group(2)})+0.5{m.group(3)}", xml, count=1)
    rewrite_part(source, target, sheet_parts(source)[sheet], edit)


def set_value(source: Path, target: Path, sheet: str, cell: str, value: float) -> None:
    """Give the number in `cell` a new value, as a user who edits an input and saves."""
    def edit(xml: str) -> str:
        pattern = re.compile(rf'(<c r="{cell}"[^>]*>)<v>[^<]*</v>')
        assert pattern.search(xml), f"{sheet}!{cell} holds no number"
        return pattern.sub(lambda m: f"{m.group(1)}<v>{value!r}</v>", xml, count=1)
    rewrite_part(source, target, sheet_parts(source)[sheet], edit)


def cell_xml(cell: str, style: str, content) -> str:
    """A worksheet cell holding `content` as a spreadsheet stores what a user typed: a number, a
    logical value (bool), a formula ("=..."), text, or nothing (None)."""
    if content is None:
        return f'<c r="{cell}"{style}/>'
    if isinstance(content, bool):
        return f'<c r="{cell}"{style} t="b"><v>{int(content)}</v></c>'
    if isinstance(content, (int, float)):
        return f'<c r="{cell}"{style}><v>{float(content)!r}</v></c>'
    if content.startswith("="):
        return f'<c r="{cell}"{style}><f>{escape(content[1:])}</f></c>'
    return f'<c r="{cell}"{style} t="inlineStr"><is><t>{escape(content)}</t></is></c>'


def set_cells(source: Path, target: Path, edits: list[tuple[str, str, object]]) -> None:
    """Copy `source` to `target` with each (sheet, cell, content) of `edits` typed in (see `cell_xml`).

    The cell keeps its style; whatever it held (a number, a formula and its cached value) goes.
    """
    by_part: dict[str, list[tuple[str, object]]] = {}
    parts = sheet_parts(source)
    for sheet, cell, content in edits:
        by_part.setdefault(parts[sheet], []).append((cell, content))
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            data = old.read(item.filename)
            for cell, content in by_part.get(item.filename, []):
                xml = data.decode()
                pattern = re.compile(rf'<c r="{cell}"( s="\d+")?[^>]*?(?:/>|>.*?</c>)')
                assert pattern.search(xml), f"{item.filename}: no cell {cell}"
                data = pattern.sub(lambda m: cell_xml(cell, m.group(1) or "", content), xml, count=1).encode()
            new.writestr(item, data)


def area_of(path: Path, key: str) -> reader.Area:
    """Where the defined name `key` (`sheet!name` or `name`) points."""
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        return reader.defined_names(book)[key]
    finally:
        book.close()


def cell_of(path: Path, key: str, r: int = 0, c: int = 0) -> tuple[str, str]:
    """(sheet, A1 cell) of entry (r, c) of the defined name `key`."""
    area = area_of(path, key)
    return area.sheet, f"{get_column_letter(area.min_col + c)}{area.min_row + r}"


def saved_and_verified(typed: dict, folder: Path) -> tuple[dict, dict]:
    """Each typed-in workbook (case -> path) saved through LibreOffice, then all verified in one run:
    (case -> saved file, case -> report)."""
    from lessonxl.pipeline import verify_paths
    saved = resave_with_libreoffice(list(typed.values()), folder / "saved")
    files = {case: saved[path] for case, path in typed.items()}
    return files, dict(zip(files, verify_paths(list(files.values()), device="cpu")))


def resave_with_libreoffice(paths: list[Path], folder: Path) -> dict[Path, Path]:
    """Each workbook opened and saved again as .xlsx by LibreOffice (recalculated), as a user saves it."""
    saved = Recalculation(paths, folder).wait()
    assert all(saved.values()), f"LibreOffice did not save {[p for p, s in saved.items() if not s]}"
    return saved


def pick_mutations(path: Path, per_sheet: int = 2, seed: int = SEED) -> list[tuple[str, str]]:
    """A few formula cells of every sheet, chosen at random (seeded)."""
    by_sheet: dict[str, list[str]] = {}
    for sheet, cell in formula_cells_xml(path):
        by_sheet.setdefault(sheet, []).append(cell)
    rng = random.Random(seed)
    return [(sheet, cell) for sheet, cells in by_sheet.items()
            for cell in rng.sample(cells, min(per_sheet, len(cells)))]


def first_number_input(path, lesson):
    """(key, sheet, row, col, value) of the first input cell holding a number."""
    book = openpyxl.load_workbook(path)
    areas = reader.defined_names(book)
    for key in lesson.inputs:
        if key in lesson.text_inputs:
            continue
        area = areas[key]
        for row, col in area.cells():
            value = book[area.sheet].cell(row, col).value
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return key, area.sheet, row, col, value
    raise AssertionError(f"{lesson.name} has no numeric input")


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> dict[str, Path]:
    """Every workbook, generated once with the default seed on the CPU."""
    folder = tmp_path_factory.mktemp("generated")
    return {lesson.name: lesson.write(folder, SEED, CPU)[0] for lesson in LESSONS}


@pytest.fixture(scope="session")
def collab_defaults() -> dict[str, np.ndarray]:
    """collab_filter's default inputs (its factors trained once): copy before editing."""
    return CollabFilter().default_inputs(SEED)


@pytest.fixture(scope="session")
def collab_results(collab_defaults) -> dict[str, np.ndarray]:
    """Every quantity of collab_filter computed from its default inputs."""
    return CollabFilter().evaluate(collab_defaults, CPU)
