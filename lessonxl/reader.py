"""Reading a workbook back: checks on the file, its defined names, its inputs and its formula cells."""

from __future__ import annotations

import math
import shutil
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import openpyxl
from openpyxl.utils.cell import get_column_letter, range_boundaries
from openpyxl.worksheet.formula import ArrayFormula

from .errors import UsageError

#: A workbook whose parts inflate beyond this is refused before anything is decompressed.
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass(frozen=True)
class Area:
    """The rectangle a defined name points at (1-based rows and columns, as openpyxl counts)."""

    sheet: str
    min_row: int
    min_col: int
    max_row: int
    max_col: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.max_row - self.min_row + 1, self.max_col - self.min_col + 1

    def cells(self) -> Iterator[tuple[int, int]]:
        for row in range(self.min_row, self.max_row + 1):
            for col in range(self.min_col, self.max_col + 1):
                yield row, col


def address(sheet: str, row: int, col: int) -> str:
    """`sheet!B4` for 1-based (row, col)."""
    return f"{sheet}!{get_column_letter(col)}{row}"


def check_file(path: Path) -> None:
    """Refuse, with one line, anything that is not a plausible, safely sized .xlsx file."""
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if not path.is_file():
        raise UsageError(f"{path}: is a folder, not a workbook")
    with path.open("rb") as handle:
        head = handle.read(8)
    if not head:
        raise UsageError(f"{path}: the file is empty")
    if head == _OLE_SIGNATURE:
        raise UsageError(f"{path}: is password-protected or an old .xls file; save it as an "
                         "unprotected .xlsx workbook")
    if not zipfile.is_zipfile(path):
        raise UsageError(f"{path}: is not an .xlsx workbook (not a zip archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise UsageError(f"{path}: is a damaged .xlsx workbook ({error})") from None
    if sum(member.file_size for member in members) > MAX_UNCOMPRESSED_BYTES:
        raise UsageError(f"{path}: its parts would inflate to more than "
                         f"{MAX_UNCOMPRESSED_BYTES // 2**20} MB; refused")
    if "xl/workbook.xml" not in {member.filename for member in members}:
        raise UsageError(f"{path}: is a zip archive but not an .xlsx workbook")


def stage(path: Path, folder: Path, index: int) -> Path:
    """A checked copy of `path` in `folder`, so that nothing ever writes to the user's file."""
    check_file(path)
    copy = folder / f"{index:03d}_{path.stem}.xlsx"
    shutil.copyfile(path, copy)
    return copy


def load(path: Path, shown_as: Path, data_only: bool = False):
    """openpyxl's workbook, or a one-line error naming the file as the user gave it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about extensions it does not read
            return openpyxl.load_workbook(path, data_only=data_only)
    except Exception as error:  # openpyxl raises many kinds on damaged files
        raise UsageError(f"{shown_as}: cannot be read as a workbook ({type(error).__name__}: {error})") \
            from None


def defined_names(workbook) -> dict[str, Area]:
    """Every single-range defined name: `sheet!name` for sheet-scoped names, `name` for global."""
    scoped = [("", workbook.defined_names)]
    scoped += [(sheet.title + "!", sheet.defined_names) for sheet in workbook.worksheets]
    areas = {}
    for prefix, names in scoped:
        for name, definition in names.items():
            destinations = list(definition.destinations)
            if len(destinations) != 1:
                continue
            sheet, reference = destinations[0]
            min_col, min_row, max_col, max_row = range_boundaries(reference.replace("$", ""))
            areas[prefix + name] = Area(sheet, min_row, min_col, max_row, max_col)
    return areas


def _input_value(cell, where: str, text: bool, blank_ok: bool):
    value = cell.value
    if isinstance(value, ArrayFormula) or (isinstance(value, str) and value.startswith("=")):
        raise UsageError(f"input cell {where} holds a formula; an input must be a value")
    if value is None or (isinstance(value, str) and not value.strip()):
        if blank_ok:
            return math.nan
        raise UsageError(f"input cell {where} is empty; a {'label' if text else 'number'} belongs there")
    if text:
        return str(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"input cell {where} holds {value!r}; a number belongs there")
    return float(value)


def read_input(workbook, area: Area, text: bool = False, blank_ok: bool = False) -> np.ndarray:
    """The values of an input range as a 2-D array (floats, NaN for allowed blanks; or labels)."""
    sheet = workbook[area.sheet]
    grid = np.empty(area.shape, dtype=object if text else np.float64)
    for row, col in area.cells():
        where = address(area.sheet, row, col)
        grid[row - area.min_row, col - area.min_col] = _input_value(sheet.cell(row, col), where, text,
                                                                    blank_ok)
    return grid


def formula_cells(workbook) -> list[tuple[str, int, int]]:
    """Every cell holding a formula, each cell of a multi-cell array formula included."""
    cells = []
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, ArrayFormula):
                    min_col, min_row, max_col, max_row = range_boundaries(cell.value.ref)
                    cells += [(sheet.title, r, c) for r in range(min_row, max_row + 1)
                              for c in range(min_col, max_col + 1)]
                elif cell.data_type == "f":
                    cells.append((sheet.title, cell.row, cell.column))
    return cells
