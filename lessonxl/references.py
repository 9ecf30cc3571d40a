"""Spreadsheet formulas read as text: their tokens, A1 references, the cells a formula reads, and a
canonical (R1C1) form.

`lessonxl verify` needs two things of a formula it finds in a user's file (`diagnose`): the cells it
reads (its precedents: cell references, ranges, defined names; INDEX, OFFSET and MATCH pick cells at run
time, so a range they are given counts as wholly read), and a form that is the same for the same formula
filled down or across (references relative to the cell, as R1C1 writes them; defined names resolved to
the cells they point at, so `beta2` scoped to a sheet and the workbook-wide `adam_beta2` are one). What a
formula gives is `evaluator`'s. Text this module cannot read raises `Unsupported`.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass
from typing import Callable, Iterator

from .values import ERRORS

_SHEET = r"(?:'(?:[^']|'')+'|[A-Za-z_\\][\w.]*)!"
_CELL = r"\$?[A-Za-z]{1,3}\$?[0-9]{1,7}"
_END = r"(?![\w.(!])"
_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<string>"(?:[^"]|"")*")
    |(?P<error>""" + "|".join(re.escape(error) for error in ERRORS) + r""")
    |(?P<ref>(?P<sheet>""" + _SHEET + r""")?(?:""" + _CELL + r"(?::" + _CELL + r")?" + _END +
    r"""|\$?[A-Za-z]{1,3}:\$?[A-Za-z]{1,3}""" + _END + r"""|\$?[0-9]{1,7}:\$?[0-9]{1,7}""" + _END + r"""))
    |(?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
    |(?P<function>(?:_xlfn\.|_xlws\.)?[A-Za-z_][\w.]*(?=\())
    |(?P<name>(?P<namesheet>""" + _SHEET + r""")?[A-Za-z_\\][\w.?\\]*)
    |(?P<op><>|<=|>=|[-+*/^&=<>%:])
    |(?P<punct>[(),;{}])""", re.VERBOSE)

MAX_ROW, MAX_COL = 1048576, 16384


class Unsupported(Exception):
    """A formula lessonxl cannot read or evaluate (an unknown function, a syntax it lacks)."""


@dataclass(frozen=True)
class Area:
    """A rectangle of one sheet (1-based, inclusive, as openpyxl counts): what a defined name points at,
    and what a reference evaluates to before its values are read."""

    sheet: str
    min_row: int
    min_col: int
    max_row: int
    max_col: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.max_row - self.min_row + 1, self.max_col - self.min_col + 1

    def cells(self) -> Iterator[tuple[int, int]]:
        """Each (row, col), row by row."""
        return itertools.product(range(self.min_row, self.max_row + 1), range(self.min_col, self.max_col + 1))


@dataclass(frozen=True)
class Token:
    kind: str    # string, error, ref, number, function, name, op, punct
    text: str
    sheet: str | None = None  # a ref's or a name's sheet, unquoted, where the formula says one


def _unquote(prefix: str | None) -> str | None:
    if not prefix:
        return None
    sheet = prefix[:-1]
    return sheet[1:-1].replace("''", "'") if sheet.startswith("'") else sheet


def tokens(formula: str) -> list[Token]:
    """The tokens of a formula (with or without its leading =), spaces dropped; Unsupported where some
    text is no token."""
    text = formula[1:] if formula.startswith("=") else formula
    found, at = [], 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            raise Unsupported(f"cannot read {text[at:at + 12]!r}")
        at = match.end()
        kind = match.lastgroup
        if kind in ("sheet", "namesheet"):  # named groups nested in ref and name
            kind = "ref" if match.group("ref") else "name"
        if kind == "space":
            continue
        if kind == "ref":
            prefix = match.group("sheet")
            found.append(Token("ref", match.group("ref")[len(prefix or ""):], _unquote(prefix)))
        elif kind == "name":
            prefix = match.group("namesheet")
            found.append(Token("name", match.group("name")[len(prefix or ""):], _unquote(prefix)))
        else:
            found.append(Token(kind, match.group(kind)))
    return found


def written(token: Token) -> str:
    """A token as a formula writes it (its sheet quoted where it must be)."""
    if token.sheet is None:
        return token.text
    sheet = token.sheet
    if not re.fullmatch(r"[A-Za-z_][\w.]*", sheet):
        sheet = "'" + sheet.replace("'", "''") + "'"
    return f"{sheet}!{token.text}"


def function_name(text: str) -> str:
    """A function's one spelling: upper case, without the _xlfn. or _xlws. of newer functions."""
    upper = text.upper()
    for prefix in ("_XLFN.", "_XLWS."):
        upper = upper.removeprefix(prefix)
    return upper


# --- A1 references ----------------------------------------------------------------------------------

_PART = re.compile(r"(\$?)([A-Za-z]{0,3})(\$?)([0-9]{0,7})")


@functools.lru_cache(maxsize=None)
def column_number(letters: str) -> int:
    """The number of a column written in letters (A is 1, AA 27)."""
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - 64
    return number


def column_letters(col: int) -> str:
    """The letters of column number `col` (1 is A, 27 AA)."""
    letters = ""
    while col > 0:
        col, rest = divmod(col - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def a1(row: int, col: int) -> str:
    """A cell's address as A1 writes it."""
    return f"{column_letters(col)}{row}"


def _corner(text: str) -> tuple[int | None, bool, int | None, bool]:
    """(row, row absolute, col, col absolute) of one side of a reference; None where it has no row
    (A:A) or no column (1:1)."""
    col_abs, letters, row_abs, digits = _PART.fullmatch(text).groups()
    return (int(digits) if digits else None, bool(row_abs) if digits else False,
            column_number(letters) if letters else None, bool(col_abs) if letters else False)


def corners(text: str) -> tuple[tuple, tuple]:
    """The two corners of a reference as (row, row absolute, col, col absolute)."""
    first, _, second = text.partition(":")
    start = _corner(first)
    return start, _corner(second) if second else start


_CELL_ADDRESS = re.compile(r"\$?([A-Za-z]{1,3})\$?([0-9]+)")


def row_col(cell: str) -> tuple[int, int]:
    """(row, col) of one cell's address (K40, $K$40); ValueError where it is not one."""
    match = _CELL_ADDRESS.fullmatch(cell)
    if match is None:
        raise ValueError(f"not a cell address: {cell!r}")
    return int(match.group(2)), column_number(match.group(1))


def ref_rect(token: Token, host_sheet: str) -> Area:
    """The rectangle a ref token points at (A:A is the whole column, 1:1 the whole row)."""
    (r0, _, c0, _), (r1, _, c1, _) = corners(token.text)
    if r0 is None:
        r0, r1 = 1, MAX_ROW
    if c0 is None:
        c0, c1 = 1, MAX_COL
    return Area(token.sheet or host_sheet, min(r0, r1), min(c0, c1), max(r0, r1), max(c0, c1))


def shifted(formula: str, rows: int, cols: int) -> str:
    """The formula as it reads `rows` rows down and `cols` columns right (relative references moved),
    as a shared formula of an .xlsx file is filled (`<f t="shared" si=...>`)."""
    out = []
    for token in tokens(formula):
        if token.kind != "ref":
            out.append(written(token))
            continue
        sides = []
        for side in token.text.split(":"):
            col_abs, letters, row_abs, digits = _PART.fullmatch(side).groups()
            if letters and not col_abs:
                letters = column_letters(column_number(letters) + cols)
            if digits and not row_abs:
                digits = str(int(digits) + rows)
            sides.append(f"{col_abs}{letters}{row_abs}{digits}")
        out.append(written(Token("ref", ":".join(sides), token.sheet)))
    return "".join(out)


# --- what a formula reads, and its canonical form ----------------------------------------------------

#: How a defined name is resolved: (the formula's sheet, the name's own sheet prefix or None, name) -> Area.
Names = Callable[[str, "str | None", str], "Area | None"]


def precedents(formula: str, sheet: str, names: Names) -> list[Area]:
    """The rectangles a formula on `sheet` reads: every reference, and every defined name, whole (INDEX,
    OFFSET and MATCH read some part of a range they are given: all of it counts)."""
    return read(formula, sheet, 1, 1, names)[0]


def canonical(formula: str, sheet: str, row: int, col: int, names: Names) -> str:
    """The formula as R1C1 writes it, relative to its cell (the same text for the same formula filled
    down or across), with defined names resolved to the cells they point at and functions, spacing and
    numbers in one spelling: two cells with the same canonical form hold the same formula."""
    return read(formula, sheet, row, col, names)[1]


def read(formula: str, sheet: str, row: int, col: int, names: Names) -> tuple[list[Area], str]:
    """A formula of `sheet`'s cell (row, col) read once: its `precedents` and its `canonical` form."""
    found, form = _read(formula, sheet, row, col, names)
    return [rect for rect, _, _ in found], form


def _read(formula: str, sheet: str, row: int, col: int, names: Names):
    """`read`, each rectangle with whether its first and its last row are relative (move with the cell)."""
    found, parts = [], []
    for token in tokens(formula):
        if token.kind == "ref":
            rect = ref_rect(token, sheet)
            (r0, r0_abs, _, _), (r1, r1_abs, _, _) = corners(token.text)
            found.append((rect, r0 is not None and not r0_abs, r1 is not None and not r1_abs))
            parts.append(_r1c1(token, rect, sheet, row, col))
        elif token.kind == "name":
            upper = token.text.upper()
            area = None if upper in ("TRUE", "FALSE") else names(sheet, token.sheet, token.text)
            if area is None:
                parts.append(upper)
            else:
                found.append((area, False, False))
                parts.append(f"<{area.sheet}!{area.min_row},{area.min_col}:{area.max_row},{area.max_col}>")
        elif token.kind == "function":
            parts.append(function_name(token.text))
        elif token.kind == "number":
            parts.append(repr(float(token.text)))
        else:
            parts.append(token.text)
    return found, " ".join(parts)


def _r1c1(token: Token, rect: Area, sheet: str, row: int, col: int) -> str:
    """A reference as R1C1 writes it from the cell (row, col)."""
    start, end = corners(token.text)
    text = _r1c1_side(*start, row, col)
    if ":" in token.text:
        text += ":" + _r1c1_side(*end, row, col)
    return f"{rect.sheet}!{text}" if rect.sheet != sheet else text


def _r1c1_side(row, row_abs, col, col_abs, host_row, host_col) -> str:
    text = ""
    if row is not None:
        text += f"R{row}" if row_abs else f"R[{row - host_row}]"
    if col is not None:
        text += f"C{col}" if col_abs else f"C[{col - host_col}]"
    return text


_ROW = re.compile(r"(?<![\w.$])(\$?[A-Za-z]{1,3})([0-9]{1,7})(?![\w.(!])")


class Reader:
    """`read` for many cells of one workbook, quick where formulas repeat down a column: a formula is
    read once per column and shape (its relative rows taken from the cell's), then moved."""

    def __init__(self, names: Names):
        self.names = names
        self._known: dict[tuple, tuple] = {}

    def read(self, formula: str, sheet: str, row: int, col: int) -> tuple[list[Area], str]:
        if "'" in formula or '"' in formula:  # a sheet name or text could hide a row: read it all
            return read(formula, sheet, row, col, self.names)
        key = (sheet, col, _ROW.sub(lambda m: f"{m.group(1)}~{int(m.group(2)) - row}", formula))
        known = self._known.get(key)
        if known is None:
            found, form = _read(formula, sheet, row, col, self.names)
            self._known[key] = known = (row, found, form)
        at, found, form = known
        move = row - at
        rects = []
        for rect, first, last in found:
            r0, r1 = rect.min_row + move * first, rect.max_row + move * last
            rects.append(rect if not move or not (first or last) else
                         Area(rect.sheet, min(r0, r1), rect.min_col, max(r0, r1), rect.max_col))
        return rects, form
