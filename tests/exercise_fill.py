"""A student at work on an exercise file: formulas written into its empty cells, straight into the sheets'
XML (openpyxl takes minutes over graddesc's 64,000 cells on a loaded machine).

The formulas come from the full workbook (lessonxl's own), or are the student's own text. They are written
without cached values, so that only verify's LibreOffice recalculation can grade them.
"""

from __future__ import annotations

import re
import zipfile
from html import escape, unescape
from pathlib import Path
from typing import Callable, Iterable

from openpyxl.utils.cell import get_column_letter, range_boundaries

_SHEET = re.compile(r'<sheet name="([^"]+)" sheetId="\d+" r:id="rId(\d+)"/>')
_FORMULA = re.compile(r'<c r="([A-Z]+[0-9]+)"[^>]*><f>(.*?)</f>')


def cells_of(where: str) -> tuple[str, list[str]]:
    """The sheet and the A1 cells, row by row, of a range `sheet!I28:J627`."""
    sheet, _, span = where.rpartition("!")
    min_col, min_row, max_col, max_row = range_boundaries(span)
    return sheet, [f"{get_column_letter(c)}{r}" for r in range(min_row, max_row + 1)
                   for c in range(min_col, max_col + 1)]


def _parts(book: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name -> its worksheet part (xlsxwriter numbers them in sheet order)."""
    found = _SHEET.findall(book.read("xl/workbook.xml").decode())
    return {name: f"xl/worksheets/sheet{number}.xml" for name, number in found}


def answers(full: Path, sheets: Iterable[str]) -> dict[tuple[str, str], str]:
    """(sheet, cell) -> the formula ("=...") lessonxl wrote there in the full workbook."""
    with zipfile.ZipFile(full) as book:
        parts = _parts(book)
        return {(sheet, cell): "=" + unescape(formula) for sheet in set(sheets)
                for cell, formula in _FORMULA.findall(book.read(parts[sheet]).decode())}


def fill(exercise: Path, target: Path, formulas: dict[tuple[str, str], str]) -> None:
    """Write into `target` the exercise file with `formulas` ((sheet, cell) -> "=...") in its empty cells."""
    by_sheet: dict[str, dict[str, str]] = {}
    for (sheet, cell), formula in formulas.items():
        by_sheet.setdefault(sheet, {})[cell] = formula
    with zipfile.ZipFile(exercise) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        parts = {part: sheet for sheet, part in _parts(source).items() if sheet in by_sheet}
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename in parts:
                data = _written(data.decode(), by_sheet[parts[item.filename]]).encode()
            out.writestr(item, data)


def _written(xml: str, formulas: dict[str, str]) -> str:
    def put(match: re.Match) -> str:
        cell = match.group(1)
        if cell not in formulas:
            return match.group(0)
        return f'<c r="{cell}"{match.group(2)}><f>{escape(formulas[cell].removeprefix("="), quote=False)}</f></c>'
    return re.sub(r'<c r="([A-Z]+[0-9]+)"((?: s="\d+")?)/>', put, xml)


def student(exercise: Path, full: Path, target: Path, ranges: Iterable[str], rows: int | None = None,
            change: Callable[[str, str, str], str] | None = None) -> None:
    """Write into `target` the exercise with the cells of `ranges` filled with the full workbook's formulas
    (the first `rows` rows of each range only, where given); `change(sheet, cell, formula)`, where given,
    returns the formula the student writes instead."""
    ranges = list(ranges)
    key = answers(full, [cells_of(where)[0] for where in ranges])
    formulas = {}
    for where in ranges:
        sheet, cells = cells_of(where)
        if rows is not None:
            width = len({cell.rstrip("0123456789") for cell in cells})
            cells = cells[:rows * width]
        for cell in cells:
            formula = key[sheet, cell]
            formulas[sheet, cell] = change(sheet, cell, formula) if change else formula
    fill(exercise, target, formulas)
