"""Reading a lesson workbook back: its defined names, its inputs and its formula cells.

`files.stage` has checked and copied the file first; everything here reads that copy. Two views of a
workbook share one interface (`sheetnames`, `names`, `cells`, `formulas`, `value`): `Snapshot`, the file
as openpyxl reads it (its saved values, or its formulas), and `Recalculated`, the workbook as
LibreOffice recalculated it (`recalc.Engine`), whose constants are the file's and whose formula cells
hold LibreOffice's results.
"""

from __future__ import annotations

import datetime
import functools
import math
import warnings
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import openpyxl
from openpyxl.utils.cell import coordinate_to_tuple, get_column_letter, range_boundaries
from openpyxl.worksheet.formula import ArrayFormula

from .errors import LessonxlError
from .references import Area
from .values import key as value_key


def address(sheet: str, row: int, col: int) -> str:
    """`sheet!B4` for 1-based (row, col)."""
    return f"{sheet}!{get_column_letter(col)}{row}"


class Snapshot:
    """A workbook read in one streaming pass: its sheets, its defined names, every stored cell.

    With `data_only`, cells hold the results stored in the file; otherwise formulas, as strings
    starting with "=" or as openpyxl ArrayFormula objects (at the top-left cell of an array), and
    `formulas` holds the (sheet, row, col) of every formula cell, each cell of an array included.
    """

    def __init__(self, path: Path, shown_as: Path | None = None, data_only: bool = False):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # openpyxl warns about extensions it does not read
                book = openpyxl.load_workbook(path, data_only=data_only, read_only=True)
                try:
                    self.sheetnames = list(book.sheetnames)
                    try:
                        self.names = defined_names(book)
                    except (ValueError, TypeError, KeyError) as error:
                        raise LessonxlError(f"{shown_as or path}: a defined name is damaged ({error})") from None
                    self.cells, self.formulas = {}, set()
                    for sheet in book.worksheets:
                        self.cells[sheet.title] = self._read(sheet)
                finally:
                    book.close()
        except LessonxlError:
            raise
        except Exception as error:  # openpyxl raises many kinds on damaged files
            raise LessonxlError(f"{shown_as or path}: cannot be read as a workbook "
                                f"({type(error).__name__}: {error})") from None

    def _read(self, sheet) -> dict[tuple[int, int], object]:
        """The sheet's stored cells; formula cells (every cell of an array formula) go to `formulas`."""
        cells = {}
        for row in sheet.iter_rows():
            for cell in row:
                if cell.value is None:
                    continue
                cells[cell.row, cell.column] = cell.value
                if isinstance(cell.value, ArrayFormula):
                    min_col, min_row, max_col, max_row = range_boundaries(cell.value.ref)
                    self.formulas.update((sheet.title, r, c) for r in range(min_row, max_row + 1)
                                         for c in range(min_col, max_col + 1))
                elif cell.data_type == "f":
                    self.formulas.add((sheet.title, cell.row, cell.column))
        return cells

    def value(self, sheet: str, row: int, col: int):
        return self.cells[sheet].get((row, col))


def defined_names(workbook) -> dict[str, Area]:
    """Every single-range defined name, by the key its lesson gives it (see `keys`): a global name of a
    lesson's workbook as `key_of` reads it (adam_lr -> adam!lr), a sheet-scoped name (releases up to
    0.4.0) as `sheet!name`."""
    key_of = keys(workbook.sheetnames)
    scoped = [(None, workbook.defined_names)]
    scoped += [(sheet.title, sheet.defined_names) for sheet in workbook.worksheets]
    return dict(area for scope, names in scoped for name, definition in names.items()
                if (area := _single_area(scope, name, definition.attr_text or "", key_of)))


def keys(sheetnames) -> Callable[[str], str]:
    """How the global defined names of a workbook with these sheets are keyed: by `Lesson.key_of` of the
    lesson whose sheets are all there (the name `adam_lesson_lr` is the key `adam_lesson!lr`), as they
    are in any other workbook."""
    from .registry import LESSONS

    present = set(sheetnames)
    for lesson in LESSONS:
        if all(spec.name in present for spec in lesson.specs):
            return lesson.key_of
    return str


@functools.lru_cache(maxsize=4096)
def destinations(text: str) -> tuple[tuple[str, str], ...]:
    """The ranges a defined name's text (`'sgd'!$B$2:$C$3`) points at, as (sheet, reference), as openpyxl
    reads them; kept, since a class's copies of a workbook share their names (openpyxl's tokenizer took
    0.1 s a file)."""
    from openpyxl.workbook.defined_name import DefinedName

    return tuple(DefinedName("name", attr_text=text).destinations)


def _single_area(scope: str | None, name: str, text: str,
                 key_of: Callable[[str], str] = str) -> tuple[str, Area] | None:
    """The key and the area of a defined name (`text`: what it stands for) that points at one range;
    None for any other. A global name is keyed by `key_of` (see `keys`)."""
    found = destinations(text)
    if len(found) != 1:
        return None
    sheet, reference = found[0]
    min_col, min_row, max_col, max_row = range_boundaries(reference.replace("$", ""))
    key = key_of(name) if scope is None else value_key(scope, name)
    return key, Area(sheet, min_row, min_col, max_row, max_col)


_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_RELATIONSHIP = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"


@dataclass(frozen=True)
class Outline:
    """What xl/workbook.xml says: the sheets in order, the defined names (keyed as `defined_names` keys them)
    and whether dates count from 1904."""

    sheetnames: list[str]
    names: dict[str, Area]
    date1904: bool = False
    parts: dict[str, str] = field(default_factory=dict)  # worksheet part (xl/worksheets/sheet1.xml) -> sheet


def _workbook_part(path: Path, shown: Path, part: str = "xl/workbook.xml", needed: bool = True):
    """The parsed XML of a small part of the workbook (None when it is absent and not `needed`)."""
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                return ET.fromstring(archive.read(part))
            except KeyError:
                if needed:
                    raise
                return None
    except (KeyError, zipfile.BadZipFile, ET.ParseError, OSError) as error:
        raise LessonxlError(f"{shown}: cannot be read as a workbook ({type(error).__name__}: {error})") from None


def sheet_names(path: Path, shown_as: Path | None = None) -> list[str]:
    """The workbook's sheets in order, from xl/workbook.xml, without the lessons (or torch) that `outline`
    needs to key its defined names."""
    return [sheet.get("name") for sheet in _workbook_part(path, shown_as or path).iter(f"{_MAIN}sheet")]


def outline(path: Path, shown_as: Path | None = None) -> Outline:
    """The sheets and defined names of a workbook, from its xl/workbook.xml alone (a small part: nothing
    else of the file is read)."""
    shown = shown_as or path
    root = _workbook_part(path, shown)
    relations = _workbook_part(path, shown, "xl/_rels/workbook.xml.rels", needed=False)
    sheetnames = [sheet.get("name") for sheet in root.iter(f"{_MAIN}sheet")]
    targets = {} if relations is None else {
        relation.get("Id"): relation.get("Target", "") for relation in relations}
    parts = {}
    for sheet in root.iter(f"{_MAIN}sheet"):
        target = targets.get(sheet.get(f"{_RELATIONSHIP}id"), "")
        if target:
            parts[target.lstrip("/") if target.startswith("/") else f"xl/{target}"] = sheet.get("name")
    properties = root.find(f"{_MAIN}workbookPr")
    date1904 = properties is not None and properties.get("date1904", "0").lower() in ("1", "true")
    names, key_of = {}, keys(sheetnames)
    try:
        for element in root.iter(f"{_MAIN}definedName"):
            name, local = element.get("name", ""), element.get("localSheetId")
            if name.startswith("_xlnm."):
                continue  # print areas, filters: kept apart by spreadsheet applications, as by openpyxl
            scope = sheetnames[int(local)] if local is not None else None
            area = _single_area(scope, name, element.text or "", key_of)
            if area:
                names[area[0]] = area[1]
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise LessonxlError(f"{shown}: a defined name is damaged ({error})") from None
    return Outline(sheetnames, names, date1904, parts)


class Recalculated:
    """A workbook as LibreOffice recalculated it: every cell of each sheet's used area (constants as the
    file holds them, formula cells with LibreOffice's results, error values as "#NUM!"...), its formula
    cells, and its sheets and defined names from `outline`. Built from what `recalc.Engine` gets from the
    bridge (rows and columns from 0 there, from 1 here, as openpyxl counts): the whole workbook, or only
    its input areas (`Engine.inputs`), each a block with its `origin`. `logical`: the cells holding a
    typed TRUE or FALSE, by worksheet part (`files.Staged.logical`): LibreOffice loads them as =TRUE()
    formulas; here they are typed values, as in the file."""

    def __init__(self, outline: Outline, reply: dict, logical: dict | None = None):
        self.sheetnames = outline.sheetnames
        self.names = outline.names
        self.cells: dict[str, dict[tuple[int, int], object]] = {}
        self.formulas_by_sheet: dict[str, set[tuple[int, int]]] = {}
        self._formulas = None
        for sheet in reply["sheets"]:
            if sheet is None:
                continue
            title, (top, left) = sheet["name"], sheet.get("origin", (0, 0))
            cells = self.cells.setdefault(title, {})
            # Whole numbers as int, as a reader of an .xlsx file gets them.
            cells.update(((r, c), int(value) if type(value) is float and value.is_integer() and abs(value) < 2**53
                          else value)
                         for r, row in enumerate(sheet["rows"], top + 1)
                         for c, value in enumerate(row, left + 1) if value is not None)
            formulas = self.formulas_by_sheet.setdefault(title, set())
            for r0, c0, r1, c1 in sheet["formulas"]:
                formulas.update((r, c) for r in range(r0 + 1, r1 + 2) for c in range(c0 + 1, c1 + 2))
            for r, c, error in sheet["errors"]:
                cells[r + 1, c + 1] = error
            # Numbers that their number format shows as a date, a time or TRUE/FALSE, as a reader of the
            # file sees them (openpyxl gives datetime and bool): where the engine was asked (the inputs).
            for r0, c0, r1, c1, kind in sheet.get("kinds", ()):
                for r in range(r0 + 1, r1 + 2):
                    for c in range(c0 + 1, c1 + 2):
                        value = cells.get((r, c))
                        if isinstance(value, (int, float)) and not isinstance(value, bool):
                            cells[r, c] = _typed(value, kind, outline.date1904)
        for part, references in (logical or {}).items():
            title = outline.parts.get(part)
            for reference in references if title in self.cells else ():
                col, row = coordinate_to_tuple(reference)[::-1]
                self.formulas_by_sheet[title].discard((row, col))
                if isinstance(self.cells[title].get((row, col)), (int, float)):
                    self.cells[title][row, col] = bool(self.cells[title][row, col])

    @property
    def formulas(self) -> set[tuple[str, int, int]]:
        """(sheet, row, col) of every formula cell, as `Snapshot.formulas`."""
        if self._formulas is None:
            self._formulas = {(sheet, *cell) for sheet, cells in self.formulas_by_sheet.items() for cell in cells}
        return self._formulas

    def value(self, sheet: str, row: int, col: int):
        return self.cells[sheet].get((row, col))


def _typed(value: float, kind: str, date1904: bool):
    """A number as its number format shows it: a bool, or a datetime (a time below 1), as openpyxl
    reads such a cell."""
    if kind == "logical":
        return bool(value)
    from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel

    try:
        return from_excel(value, CALENDAR_MAC_1904 if date1904 else CALENDAR_WINDOWS_1900)
    except (ValueError, OverflowError):
        return value


class NeedsRecalculation(Exception):
    """An input cell holds a formula: its value is known only once the engine has recalculated."""


def describe(value) -> str:
    """What a cell holds, as a spreadsheet user says it (never a Python repr): "the text "abc""."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return "nothing"
    if isinstance(value, bool):
        return f"the logical value {'TRUE' if value else 'FALSE'}"
    if isinstance(value, datetime.datetime):
        return f"a date ({value.isoformat(sep=' ').removesuffix(' 00:00:00')})"
    if isinstance(value, (datetime.date, datetime.time)):
        return f"a {'time' if isinstance(value, datetime.time) else 'date'} ({value.isoformat()})"
    if isinstance(value, str) and value.startswith("#"):
        return f"the error value {value}"
    if isinstance(value, str):
        return f'the text "{value}"'
    if isinstance(value, (int, float)):
        return f"the number {float(value):.15g}"
    return "something other than a number or a label"


def _input_value(value, where: str, text: bool, blank_ok: bool, formula: bool = False):
    """A cell's value as an input takes it, or a one-line LessonxlError in a spreadsheet user's words."""
    empty = value is None or (isinstance(value, str) and not value.strip())
    if empty and blank_ok and not formula:
        return math.nan
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and not text:
        return float(value)
    if text and (number or (isinstance(value, str) and not empty and not value.startswith("#"))):
        return str(value)
    if formula:
        holds = f"holds a formula whose value is {'empty' if empty else describe(value)}"
    else:
        holds = "is empty" if empty else f"holds {describe(value)}"
    raise LessonxlError(f"input cell {where} {holds}; {'a label' if text else 'a number'} belongs there")


def read_input(book: Snapshot, area: Area, text: bool = False, blank_ok: bool = False,
               computed: Snapshot | None = None) -> np.ndarray:
    """The values of an input range as a 2-D array (floats, NaN for allowed blanks; or labels).

    A cell may hold a formula (`=1/1000`), as people type: its value is the one the engine computed,
    read from `computed` (the recalculated workbook); without it, NeedsRecalculation is raised.
    """
    grid = np.empty(area.shape, dtype=object if text else np.float64)
    for row, col in area.cells():
        where = address(area.sheet, row, col)
        formula = (area.sheet, row, col) in book.formulas
        if formula and computed is None:
            raise NeedsRecalculation(where)
        value = (computed if formula else book).value(area.sheet, row, col)
        grid[row - area.min_row, col - area.min_col] = _input_value(value, where, text, blank_ok, formula)
    return grid


def read_inputs(lesson, book: Snapshot, computed: Snapshot | None = None) -> dict[str, np.ndarray]:
    """Every input of `lesson` from `book`, found by its defined name (or the name an earlier release
    gave it); formula inputs from `computed`, the recalculated workbook (see `read_input`)."""
    inputs = {}
    for key in lesson.inputs:
        area = lesson.area_of(book.names, key)
        if area is None:
            raise LessonxlError(f"the defined name {key} is missing")
        try:
            inputs[key] = read_input(book, area, key in lesson.text_inputs, key in lesson.blank_inputs, computed)
        except (KeyError, IndexError):  # the name points at a sheet or cell that is not there
            raise LessonxlError(f"the defined name {key} points outside the workbook") from None
    return inputs
