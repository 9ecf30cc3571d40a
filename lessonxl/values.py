"""How lessons name and shape their values, on both sides of the comparison.

A value is keyed as the workbook names it: `sheet!name` for a sheet-scoped defined name, `name` for a
global one; and it is a 2-D grid in the orientation the sheet shows it.
"""

from __future__ import annotations

import numpy as np


def key(sheet: str | None, name: str) -> str:
    """The key of the defined name `name`, scoped to `sheet` (None: a global name)."""
    return name if sheet is None else f"{sheet}!{name}"


def lookup(values, sheet: str, name: str):
    """The value of the name `name` as a formula on `sheet` reads it: the sheet's own name if it has
    one, else the global name (a KeyError when neither is in `values`)."""
    scoped = key(sheet, name)
    return values[scoped] if scoped in values else values[name]


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
