"""How lessons name and shape their values, on both sides of the comparison.

A value is keyed `sheet!name` for a name of one sheet, `name` for a global one; and it is a 2-D grid in
the orientation the sheet shows it. The workbook defines every name for the whole workbook (Google
Sheets has no sheet-scoped names, nor `Sheet!name` in formulas): `sheet!name` is the defined name
`sheet_name` there (`defined_name`), and `key_of` reads it back. Files of releases up to 0.4.0 defined
`sheet!name` as the name `name` scoped to `sheet`.
"""

from __future__ import annotations

import numpy as np


def key(sheet: str | None, name: str) -> str:
    """The key of the defined name `name`, scoped to `sheet` (None: a global name)."""
    return name if sheet is None else f"{sheet}!{name}"


def resolve(values, sheet: str, name: str):
    """The value of the name `name` as a formula on `sheet` reads it: the sheet's own name if it has
    one, else the global name (a KeyError when neither is in `values`)."""
    scoped = key(sheet, name)
    return values[scoped] if scoped in values else values[name]


def defined_name(key: str) -> str:
    """The workbook's defined name of a key: `sheet_name` for `sheet!name` (adam!lr -> adam_lr), a global
    name as it is. The one place that says how a key is spelled in the file."""
    sheet, _, name = key.rpartition("!")
    return f"{sheet}_{name}" if sheet else name


def key_of(name: str, sheets, global_names) -> str:
    """The key of the workbook's defined name `name` (the inverse of `defined_name`): a global name of
    `global_names` as it is; else `sheet!rest` for the longest of `sheets` that `name` starts with, and
    an underscore (adam_lesson_lr -> adam_lesson!lr: sheet names hold underscores); else `name`.
    `sheets.Book` checks that every name it defines reads back so."""
    if name in global_names:
        return name
    for sheet in sorted(sheets, key=len, reverse=True):
        if name.startswith(sheet) and name[len(sheet):len(sheet) + 1] == "_":
            return key(sheet, name[len(sheet) + 1:])
    return name


def name_of(key: str) -> str:
    """The defined name a key stands for, without its sheet."""
    return key.rpartition("!")[2]


def as_grid(values) -> np.ndarray:
    """A value as a 2-D array: a scalar is 1 x 1, a vector is one column."""
    grid = np.asarray(values)
    if grid.ndim == 0:
        return grid.reshape(1, 1)
    if grid.ndim == 1:
        return grid.reshape(-1, 1)
    return grid


#: The error values a cell can hold, as an .xlsx file and a formula write them (#GETTING_DATA: Excel's,
#: while an external query runs). LibreOffice's own codes (Err:502, ...) are translated to these by the
#: bridge (`unobridge.XLSX_ERRORS`, which runs outside lessonxl and cannot import this).
ERRORS = ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA")


def is_error(value) -> bool:
    """Whether a cell's value, as read back, is a spreadsheet error value (#NUM!, #DIV/0!, ...): any text
    that starts with #, so that an error value not in `ERRORS` counts too."""
    return isinstance(value, str) and value.startswith("#")
