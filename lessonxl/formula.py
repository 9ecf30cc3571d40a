"""Spreadsheet formulas read as text: their tokens, the cells they read, a canonical (R1C1) form, and a
small evaluator for the functions lesson workbooks use.

`lessonxl verify` needs three things from a formula it finds in a user's file (`diagnose`): the cells it
reads (its precedents: cell references, ranges, defined names; INDEX, OFFSET and MATCH pick cells at run
time, so a range they are given counts as wholly read), a form that is the same for the same formula
filled down or across (references relative to the cell, as R1C1 writes them; defined names resolved to
the cells they point at, so `beta2` scoped to a sheet and the workbook-wide `adam_beta2` are one), and
what a formula gives from given cell values: lessonxl's own formula for a cell, on the values the user's
sheet holds, says how far off the user's formula is there.

The evaluator knows the functions lessonxl writes (SUM, SUMPRODUCT, MMULT, INDEX, MATCH, OFFSET, IF, EXP,
LN, SQRT, COS, PI, ...) and a few more, with a spreadsheet's rules for blanks (0 in arithmetic, "" beside
text), text (compared ignoring case) and error values (they spread). A formula it cannot read or a
function it does not know raises `Unsupported`: the caller then says nothing rather than a guess.
Recalculating through LibreOffice instead would cost a second load of the workbook (seconds) for a few
cells.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

#: The error values a cell can hold.
ERRORS = ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A")

_SHEET = r"(?:'(?:[^']|'')+'|[A-Za-z_\\][\w.]*)!"
_CELL = r"\$?[A-Za-z]{1,3}\$?[0-9]{1,7}"
_END = r"(?![\w.(!])"
_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<string>"(?:[^"]|"")*")
    |(?P<error>\#(?:NULL!|DIV/0!|VALUE!|REF!|NAME\?|NUM!|N/A|GETTING_DATA))
    |(?P<ref>(?P<sheet>""" + _SHEET + r""")?(?:""" + _CELL + r"(?::" + _CELL + r")?" + _END +
    r"""|\$?[A-Za-z]{1,3}:\$?[A-Za-z]{1,3}""" + _END + r"""|\$?[0-9]{1,7}:\$?[0-9]{1,7}""" + _END + r"""))
    |(?P<number>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
    |(?P<function>(?:_xlfn\.|_xlws\.)?[A-Za-z_][\w.]*(?=\())
    |(?P<name>(?P<namesheet>""" + _SHEET + r""")?[A-Za-z_\\][\w.?\\]*)
    |(?P<op><>|<=|>=|[-+*/^&=<>%:])
    |(?P<punct>[(),;{}])""", re.VERBOSE)

MAX_ROW, MAX_COL = 1048576, 16384


class Unsupported(Exception):
    """A formula this module cannot read or evaluate (an unknown function, a syntax it lacks)."""


class SpreadsheetError(Exception):
    """An error value (#DIV/0!, #NUM!, ...) met while evaluating: it spreads as in a spreadsheet."""

    def __init__(self, value: str):
        super().__init__(value)
        self.value = value


@dataclass(frozen=True)
class Ref:
    """A rectangle of one sheet (1-based, inclusive), as a reference evaluates before its values are read."""

    sheet: str
    r0: int
    c0: int
    r1: int
    c1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.r1 - self.r0 + 1, self.c1 - self.c0 + 1


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


_PART = re.compile(r"(\$?)([A-Za-z]{0,3})(\$?)([0-9]{0,7})")


def _column(letters: str) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - 64
    return number


def _corner(text: str) -> tuple[int | None, bool, int | None, bool]:
    """(row, row absolute, col, col absolute) of one side of a reference; None where it has no row
    (A:A) or no column (1:1)."""
    col_abs, letters, row_abs, digits = _PART.fullmatch(text).groups()
    return (int(digits) if digits else None, bool(row_abs) if digits else False,
            _column(letters) if letters else None, bool(col_abs) if letters else False)


def corners(text: str):
    """The two corners of a reference as (row, row absolute, col, col absolute)."""
    first, _, second = text.partition(":")
    start = _corner(first)
    end = _corner(second) if second else start
    if start[0] is None and start[2] is None:
        start, end = _corner(first.lstrip("$") + "1"), end  # never: a bare column without letters
    return start, end


def ref_rect(token: Token, host_sheet: str) -> Ref:
    """The rectangle a ref token points at (A:A is the whole column, 1:1 the whole row)."""
    (r0, _, c0, _), (r1, _, c1, _) = corners(token.text)
    if r0 is None:
        r0, r1 = 1, MAX_ROW
    if c0 is None:
        c0, c1 = 1, MAX_COL
    return Ref(token.sheet or host_sheet, min(r0, r1), min(c0, c1), max(r0, r1), max(c0, c1))


#: How a defined name is resolved: (the formula's sheet, the name's own sheet prefix or None, name) -> Ref.
Names = Callable[[str, "str | None", str], "Ref | None"]


def precedents(formula: str, sheet: str, names: Names) -> list[Ref]:
    """The rectangles a formula on `sheet` reads: every reference, and every defined name, whole (INDEX,
    OFFSET and MATCH read some part of a range they are given: all of it counts)."""
    return read(formula, sheet, 1, 1, names)[0]


def read(formula: str, sheet: str, row: int, col: int, names: Names) -> tuple[list[Ref], str]:
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
                parts.append(f"<{area.sheet}!{area.r0},{area.c0}:{area.r1},{area.c1}>")
        elif token.kind == "function":
            parts.append(_function_name(token.text))
        elif token.kind == "number":
            parts.append(repr(float(token.text)))
        else:
            parts.append(token.text)
    return found, " ".join(parts)


def _r1c1_side(row, row_abs, col, col_abs, host_row, host_col) -> str:
    text = ""
    if row is not None:
        text += f"R{row}" if row_abs else f"R[{row - host_row}]"
    if col is not None:
        text += f"C{col}" if col_abs else f"C[{col - host_col}]"
    return text


def canonical(formula: str, sheet: str, row: int, col: int, names: Names) -> str:
    """The formula as R1C1 writes it, relative to its cell (the same text for the same formula filled
    down or across), with defined names resolved to the cells they point at and functions, spacing and
    numbers in one spelling: two cells with the same canonical form hold the same formula."""
    return read(formula, sheet, row, col, names)[1]


_ROW = re.compile(r"(?<![\w.$])(\$?[A-Za-z]{1,3})([0-9]{1,7})(?![\w.(!])")


class Reader:
    """`read` for many cells of one workbook, quick where formulas repeat down a column: a formula is
    read once per column and shape (its relative rows taken from the cell's), then moved."""

    def __init__(self, names: Names):
        self.names = names
        self._known: dict[tuple, tuple] = {}

    def read(self, formula: str, sheet: str, row: int, col: int) -> tuple[list[Ref], str]:
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
            r0, r1 = rect.r0 + move * first, rect.r1 + move * last
            rects.append(rect if not move or not (first or last) else
                         Ref(rect.sheet, min(r0, r1), rect.c0, max(r0, r1), rect.c1))
        return rects, form


def _r1c1(token: Token, rect: Ref, sheet: str, row: int, col: int) -> str:
    """A reference as R1C1 writes it from the cell (row, col)."""
    start, end = corners(token.text)
    text = _r1c1_side(*start, row, col)
    if ":" in token.text:
        text += ":" + _r1c1_side(*end, row, col)
    return f"{rect.sheet}!{text}" if rect.sheet != sheet else text


def _function_name(text: str) -> str:
    upper = text.upper()
    for prefix in ("_XLFN.", "_XLWS."):
        upper = upper.removeprefix(prefix)
    return upper


def shifted(formula: str, rows: int, cols: int) -> str:
    """The formula as it reads `rows` rows down and `cols` columns right (relative references moved),
    as a shared formula of an .xlsx file is filled (`<f t="shared" si=...>`)."""
    out = []
    for token in tokens(formula):
        if token.kind != "ref":
            out.append(_written(token))
            continue
        sides = []
        for side in token.text.split(":"):
            col_abs, letters, row_abs, digits = _PART.fullmatch(side).groups()
            if letters and not col_abs:
                letters = _letters(_column(letters) + cols)
            if digits and not row_abs:
                digits = str(int(digits) + rows)
            sides.append(f"{col_abs}{letters}{row_abs}{digits}")
        out.append(_written(Token("ref", ":".join(sides), token.sheet)))
    return "".join(out)


def _written(token: Token) -> str:
    if token.sheet is None:
        return token.text
    sheet = token.sheet
    if not re.fullmatch(r"[A-Za-z_][\w.]*", sheet):
        sheet = "'" + sheet.replace("'", "''") + "'"
    return f"{sheet}!{token.text}"


def _letters(col: int) -> str:
    letters = ""
    while col > 0:
        col, rest = divmod(col - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


# --- parsing -----------------------------------------------------------------------------------------

_INFIX = {"=": 1, "<>": 1, "<": 1, ">": 1, "<=": 1, ">=": 1, "&": 2, "+": 3, "-": 3, "*": 4, "/": 4, "^": 5,
          ":": 8}
_PREFIX = 6
_PERCENT = 7


class _Parser:
    def __init__(self, items: list[Token]):
        self.items, self.at = items, 0

    def peek(self) -> Token | None:
        return self.items[self.at] if self.at < len(self.items) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise Unsupported("the formula ends too soon")
        self.at += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise Unsupported(f"expected {text}, found {token.text}")

    def expression(self, power: int = 0):
        token = self.take()
        if token.kind == "op" and token.text in "+-":
            operand = self.expression(_PREFIX)
            left = ("neg", operand) if token.text == "-" else ("pos", operand)
        else:
            left = self.primary(token)
        while True:
            token = self.peek()
            if token is None or token.kind != "op":
                return left
            if token.text == "%":
                if _PERCENT < power:
                    return left
                self.at += 1
                left = ("pct", left)
                continue
            strength = _INFIX[token.text]
            if strength <= power:
                return left
            self.at += 1
            left = ("op", token.text, left, self.expression(strength))

    def primary(self, token: Token):
        if token.kind == "number":
            return ("value", float(token.text))
        if token.kind == "string":
            return ("value", token.text[1:-1].replace('""', '"'))
        if token.kind == "error":
            return ("value", _Error(token.text))
        if token.kind == "ref":
            return ("ref", token)
        if token.kind == "name":
            if token.text.upper() in ("TRUE", "FALSE") and token.sheet is None:
                return ("value", token.text.upper() == "TRUE")
            return ("name", token)
        if token.kind == "function":
            self.expect("(")
            args = []
            if self.peek() is not None and self.peek().text == ")":
                self.at += 1
                return ("call", _function_name(token.text), args)
            while True:
                if self.peek() is not None and self.peek().text in (",", ")"):
                    args.append(("value", None))  # an omitted argument
                else:
                    args.append(self.expression())
                separator = self.take()
                if separator.text == ")":
                    return ("call", _function_name(token.text), args)
                if separator.text != ",":
                    raise Unsupported(f"expected , or ), found {separator.text}")
        if token.text == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        if token.text == "{":
            return self.array()
        raise Unsupported(f"unexpected {token.text}")

    def array(self):
        rows, row = [], []
        while True:
            token = self.take()
            if token.kind == "op" and token.text == "-":
                number = self.take()
                row.append(-float(number.text))
            elif token.kind == "number":
                row.append(float(token.text))
            elif token.kind == "string":
                row.append(token.text[1:-1].replace('""', '"'))
            elif token.kind == "name" and token.text.upper() in ("TRUE", "FALSE"):
                row.append(token.text.upper() == "TRUE")
            else:
                raise Unsupported(f"unexpected {token.text} in an array constant")
            separator = self.take()
            if separator.text == ";":
                rows.append(row)
                row = []
            elif separator.text == "}":
                rows.append(row)
                if len({len(r) for r in rows}) != 1:
                    raise Unsupported("a ragged array constant")
                return ("value", np.array(rows, dtype=object))
            elif separator.text != ",":
                raise Unsupported(f"unexpected {separator.text} in an array constant")


def parse(formula: str):
    """The formula's syntax tree; Unsupported where it cannot be read."""
    parser = _Parser(tokens(formula))
    tree = parser.expression()
    if parser.peek() is not None:
        raise Unsupported(f"unexpected {parser.peek().text}")
    return tree


# --- evaluating --------------------------------------------------------------------------------------

class _Error(str):
    """An error value written in a formula (#N/A)."""


Values = Callable[[str, int, int], object]


def evaluate(formula: str, sheet: str, row: int, col: int, values: Values, names: Names,
             array_at: tuple[int, int] = (0, 0), array: bool = False):
    """What `formula`, written in `sheet`'s cell (row, col), gives when the cells it reads hold `values`
    (sheet, row, col -> a number, text, a bool, None for blank, or an error value such as "#NUM!"): a
    number, text, a bool, or an error value. `array`: an array formula (`array_at`: the cell's place in
    it), whose operators take whole ranges; in any other formula an operator or a function of one
    number given a range takes the range's cell in the formula's row or column (#VALUE! where there is
    none), as Excel 2010 and LibreOffice do, except inside the arguments of functions that take arrays
    (SUMPRODUCT, MMULT, INDEX, MATCH, ...). Raises Unsupported where the formula uses what this evaluator
    does not know."""
    evaluator = _Evaluator(sheet, row, col, values, names, array)
    try:
        result = evaluator.run(parse(formula))
        if isinstance(result, Ref):
            result = evaluator.implicit(result)
        if isinstance(result, np.ndarray):
            r, c = array_at
            if result.shape[0] == 1:
                r = 0
            if result.shape[1] == 1:
                c = 0
            if r >= result.shape[0] or c >= result.shape[1]:
                return "#N/A"
            result = result[r, c]
        if isinstance(result, SpreadsheetError):
            return result.value
        if result is None:
            return 0.0
        if isinstance(result, float) and not math.isfinite(result):
            return "#NUM!"
        if isinstance(result, str) and _is_error(result):
            return str(result)
        return result
    except SpreadsheetError as error:
        return error.value
    except (RecursionError, MemoryError):
        raise Unsupported("too deep or too large") from None


def _is_error(value) -> bool:
    return isinstance(value, _Error) or (isinstance(value, str) and value in ERRORS)


def _raise_if_error(value):
    if isinstance(value, str) and _is_error(value):
        raise SpreadsheetError(str(value))
    return value


def _number(value) -> float:
    """A scalar as arithmetic takes it: a blank is 0, TRUE 1, text that reads as a number that number."""
    _raise_if_error(value)
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise SpreadsheetError("#VALUE!") from None
    raise SpreadsheetError("#VALUE!")


def _numbers_in(array: np.ndarray) -> list[float]:
    """The numbers of a range (text, logical values and blanks are left out, as SUM and COUNT do);
    an error value in it spreads."""
    out = []
    for value in array.ravel():
        _raise_if_error(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(float(value))
    return out


def _checked(value: float) -> float:
    if isinstance(value, float) and not math.isfinite(value):
        raise SpreadsheetError("#NUM!")
    return value


class _Evaluator:
    def __init__(self, sheet: str, row: int, col: int, values: Values, names: Names, array: bool = False):
        self.sheet, self.row, self.col = sheet, row, col
        self.array_mode = array  # operators take whole ranges (an array formula, or an array argument)
        self.values, self.names = values, names

    def run(self, node):
        kind = node[0]
        if kind == "value":
            return node[1]
        if kind == "ref":
            return ref_rect(node[1], self.sheet)
        if kind == "name":
            token = node[1]
            area = self.names(self.sheet, token.sheet, token.text)
            if area is None:
                raise SpreadsheetError("#NAME?")
            return area
        if kind == "neg":
            return self.arithmetic(lambda a: -a, self.run(node[1]))
        if kind == "pos":
            return self.run(node[1])
        if kind == "pct":
            return self.arithmetic(lambda a: a / 100.0, self.run(node[1]))
        if kind == "op":
            return self.operator(node[1], node[2], node[3])
        if kind == "call":
            return self.call(node[1], node[2])
        raise Unsupported(kind)

    # values

    def read(self, ref: Ref) -> np.ndarray:
        rows, cols = ref.shape
        if rows * cols > 1_000_000:
            raise Unsupported("a range too large to read")
        grid = np.empty((rows, cols), dtype=object)
        for r in range(rows):
            for c in range(cols):
                grid[r, c] = self.values(ref.sheet, ref.r0 + r, ref.c0 + c)
        return grid

    def implicit(self, ref: Ref):
        """A range where one value belongs: its one cell, or the cell of this row (column) of it."""
        if ref.shape == (1, 1):
            return self.values(ref.sheet, ref.r0, ref.c0)
        if ref.sheet == self.sheet and ref.c0 == ref.c1 and ref.r0 <= self.row <= ref.r1:
            return self.values(ref.sheet, self.row, ref.c0)
        if ref.sheet == self.sheet and ref.r0 == ref.r1 and ref.c0 <= self.col <= ref.c1:
            return self.values(ref.sheet, ref.r0, self.col)
        raise SpreadsheetError("#VALUE!")

    def scalar(self, value):
        """One value: a range's one cell, an array's first element."""
        if isinstance(value, Ref):
            value = self.implicit(value)
        if isinstance(value, np.ndarray):
            value = value[0, 0]
        return value

    def array(self, value) -> np.ndarray:
        """A value as a 2-D array of values (a scalar is 1 x 1)."""
        if isinstance(value, Ref):
            return self.read(value)
        if isinstance(value, np.ndarray):
            return value
        grid = np.empty((1, 1), dtype=object)
        grid[0, 0] = value
        return grid

    def operands(self, operands: tuple) -> tuple:
        """Ranges as an operator takes them: whole in array mode, else their cell in this row or column."""
        if self.array_mode:
            return operands
        return tuple(self.implicit(o) if isinstance(o, Ref) else o for o in operands)

    def arithmetic(self, operation, *operands):
        """An elementwise arithmetic operation on scalars or arrays (ranges read), as numbers."""
        operands = self.operands(operands)
        if not any(isinstance(o, (Ref, np.ndarray)) for o in operands):
            with np.errstate(all="ignore"):
                return _checked(operation(*(_number(o) for o in operands)))
        grids = [self.array(o) for o in operands]
        shape = np.broadcast_shapes(*(g.shape for g in grids))
        out = np.empty(shape, dtype=object)
        expanded = [np.broadcast_to(g, shape) for g in grids]
        for index in np.ndindex(shape):
            try:
                with np.errstate(all="ignore"):
                    out[index] = _checked(operation(*(_number(g[index]) for g in expanded)))
            except SpreadsheetError as error:
                out[index] = error.value
        return out

    def operator(self, op: str, left_node, right_node):
        if op == ":":
            left, right = self.run(left_node), self.run(right_node)
            if not (isinstance(left, Ref) and isinstance(right, Ref)) or left.sheet != right.sheet:
                raise SpreadsheetError("#VALUE!")
            return Ref(left.sheet, min(left.r0, right.r0), min(left.c0, right.c0), max(left.r1, right.r1),
                       max(left.c1, right.c1))
        left, right = self.run(left_node), self.run(right_node)
        if op in _ARITHMETIC:
            return self.arithmetic(_ARITHMETIC[op], left, right)
        if op == "&":
            return self.elementwise(lambda a, b: _text(a) + _text(b), left, right)
        return self.elementwise(lambda a, b: _COMPARE[op](_order(a, b)), left, right)

    def elementwise(self, operation, *operands):
        operands = self.operands(operands)
        if not any(isinstance(o, (Ref, np.ndarray)) for o in operands):
            return operation(*(_raise_if_error(o) for o in operands))
        grids = [self.array(o) for o in operands]
        shape = np.broadcast_shapes(*(g.shape for g in grids))
        out = np.empty(shape, dtype=object)
        expanded = [np.broadcast_to(g, shape) for g in grids]
        for index in np.ndindex(shape):
            try:
                out[index] = operation(*(_raise_if_error(g[index]) for g in expanded))
            except SpreadsheetError as error:
                out[index] = error.value
        return out

    def call(self, name: str, args: list):
        if name == "IF":
            return self.if_(args)
        if name == "IFERROR":
            try:
                value = self.scalar(self.run(args[0]))
                return _raise_if_error(value)
            except SpreadsheetError:
                return self.run(args[1])
        function = _FUNCTIONS.get(name)
        if function is None:
            raise Unsupported(f"the function {name}")
        arrays = _ARRAY_ARGUMENTS.get(name, ())
        return function(self, [self.argument(arg, arrays is all or index in arrays) for index, arg in enumerate(args)])

    def argument(self, node, array: bool):
        """A function's argument, evaluated in array mode where the function takes an array there."""
        if not array or self.array_mode:
            return self.run(node)
        self.array_mode = True
        try:
            return self.run(node)
        finally:
            self.array_mode = False

    def if_(self, args):
        if not 1 <= len(args) <= 3:
            raise SpreadsheetError("#VALUE!")
        condition = self.run(args[0])
        if isinstance(condition, Ref) and not self.array_mode:
            condition = self.implicit(condition)
        if isinstance(condition, (Ref, np.ndarray)) and self.array(condition).size > 1:
            grid = self.array(condition)
            yes = self.run(args[1]) if len(args) > 1 else True
            no = self.run(args[2]) if len(args) > 2 else False
            return self.elementwise(lambda c, a, b: a if _truth(c) else b, grid, yes, no)
        chosen = _truth(self.scalar(condition))
        if chosen:
            return self.run(args[1]) if len(args) > 1 else True
        return self.run(args[2]) if len(args) > 2 else False


def _truth(value) -> bool:
    _raise_if_error(value)
    if isinstance(value, str):
        if value.upper() in ("TRUE", "FALSE"):
            return value.upper() == "TRUE"
        raise SpreadsheetError("#VALUE!")
    return bool(_number(value))


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return f"{value:.15g}"
    return str(value)


def _order(a, b) -> int:
    """-1, 0 or 1 as a spreadsheet orders two values: numbers before text before logical values, text
    ignoring case, a blank as 0 beside a number and as "" beside text."""
    def rank(value):
        if isinstance(value, bool):
            return 2, value
        if isinstance(value, (int, float)):
            return 0, float(value)
        return 1, value.casefold()

    if a is None and b is None:
        return 0
    if a is None:
        a = "" if isinstance(b, str) else (False if isinstance(b, bool) else 0.0)
    if b is None:
        b = "" if isinstance(a, str) else (False if isinstance(a, bool) else 0.0)
    left, right = rank(a), rank(b)
    return (left > right) - (left < right)


_ARITHMETIC = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
               "/": lambda a, b: _divide(a, b), "^": lambda a, b: _power(a, b)}
_COMPARE = {"=": lambda o: o == 0, "<>": lambda o: o != 0, "<": lambda o: o < 0, ">": lambda o: o > 0,
            "<=": lambda o: o <= 0, ">=": lambda o: o >= 0}


def _divide(a: float, b: float) -> float:
    if b == 0:
        raise SpreadsheetError("#DIV/0!")
    return a / b


def _power(a: float, b: float) -> float:
    if a == 0 and b == 0:
        raise SpreadsheetError("#NUM!")
    if a == 0 and b < 0:
        raise SpreadsheetError("#DIV/0!")
    try:
        result = a ** b
    except OverflowError:
        raise SpreadsheetError("#NUM!") from None
    if isinstance(result, complex):
        raise SpreadsheetError("#NUM!")
    return result


# --- functions ---------------------------------------------------------------------------------------

def _arguments(count: int, at_most: int | None = None):
    def check(args):
        if len(args) < count or len(args) > (count if at_most is None else at_most):
            raise SpreadsheetError("#VALUE!")
    return check


def _math(operation, domain=lambda x: True):
    """A one-argument function of a number, elementwise over an array."""
    def function(ev: _Evaluator, args):
        _arguments(1)(args)

        def one(x):
            if not domain(x):
                raise SpreadsheetError("#NUM!")
            return operation(x)
        return ev.arithmetic(one, args[0])
    return function


def _collect(ev: _Evaluator, args) -> list[float]:
    """The numbers of SUM's arguments: a range's numbers, a typed argument as a number."""
    numbers = []
    for arg in args:
        if isinstance(arg, (Ref, np.ndarray)):
            numbers += _numbers_in(ev.array(arg))
        elif arg is not None:
            numbers.append(_number(arg))
    return numbers


def _sum(ev, args):
    return _checked(float(sum(_collect(ev, args))))


def _sumsq(ev, args):
    return _checked(float(sum(x * x for x in _collect(ev, args))))


def _count(ev, args):
    count = 0
    for arg in args:
        if isinstance(arg, (Ref, np.ndarray)):
            count += sum(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ev.array(arg).ravel())
        elif isinstance(arg, (int, float)) and not isinstance(arg, bool):
            count += 1
    return float(count)


def _average(ev, args):
    numbers = _collect(ev, args)
    if not numbers:
        raise SpreadsheetError("#DIV/0!")
    return _checked(float(sum(numbers)) / len(numbers))


def _max(ev, args):
    numbers = _collect(ev, args)
    return max(numbers) if numbers else 0.0


def _min(ev, args):
    numbers = _collect(ev, args)
    return min(numbers) if numbers else 0.0


def _product_grid(ev, arg) -> np.ndarray:
    """An argument of SUMPRODUCT as numbers: anything but a number counts 0; an error value spreads."""
    grid = ev.array(arg)
    out = np.zeros(grid.shape)
    for index, value in np.ndenumerate(grid):
        _raise_if_error(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[index] = float(value)
    return out


def _sumproduct(ev, args):
    if not args:
        raise SpreadsheetError("#VALUE!")
    grids = [_product_grid(ev, arg) for arg in args]
    if len({g.shape for g in grids}) != 1:
        raise SpreadsheetError("#VALUE!")
    product = grids[0]
    for grid in grids[1:]:
        product = product * grid
    return _checked(float(product.sum()))


def _numeric_grid(ev, arg) -> np.ndarray:
    """An array whose every entry must be a number (MMULT)."""
    grid = ev.array(arg)
    out = np.empty(grid.shape)
    for index, value in np.ndenumerate(grid):
        _raise_if_error(value)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise SpreadsheetError("#VALUE!")
        out[index] = float(value)
    return out


def _mmult(ev, args):
    _arguments(2)(args)
    left, right = _numeric_grid(ev, args[0]), _numeric_grid(ev, args[1])
    if left.shape[1] != right.shape[0]:
        raise SpreadsheetError("#VALUE!")
    with np.errstate(all="ignore"):
        product = left @ right
    out = np.empty(product.shape, dtype=object)
    for index, value in np.ndenumerate(product):
        out[index] = float(value) if math.isfinite(value) else "#NUM!"
    return out


def _sumxmy2(ev, args):
    _arguments(2)(args)
    left, right = ev.array(args[0]), ev.array(args[1])
    if left.size != right.size:
        raise SpreadsheetError("#N/A")
    total = 0.0
    for a, b in zip(left.ravel(), right.ravel()):
        _raise_if_error(a)
        _raise_if_error(b)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
            total += (float(a) - float(b)) ** 2
    return _checked(total)


def _transpose(ev, args):
    _arguments(1)(args)
    return ev.array(args[0]).T.copy()


def _whole(value) -> int:
    return int(math.floor(_number(value)))


def _index(ev, args):
    _arguments(2, 3)(args)
    source = args[0]
    rows, cols = source.shape if isinstance(source, (Ref, np.ndarray)) else (1, 1)
    row = _whole(ev.scalar(args[1])) if args[1] is not None else 0
    col = _whole(ev.scalar(args[2])) if len(args) > 2 and args[2] is not None else None
    if col is None:
        if rows == 1:
            row, col = 1, row
        elif cols == 1:
            col = 1
        else:
            col = 0
    if row < 0 or col < 0 or row > rows or col > cols:
        raise SpreadsheetError("#REF!")
    r_range = range(rows) if row == 0 else range(row - 1, row)
    c_range = range(cols) if col == 0 else range(col - 1, col)
    if isinstance(source, Ref):
        return Ref(source.sheet, source.r0 + r_range[0], source.c0 + c_range[0], source.r0 + r_range[-1],
                   source.c0 + c_range[-1])
    grid = ev.array(source)
    return grid[r_range[0]:r_range[-1] + 1, c_range[0]:c_range[-1] + 1]


def _offset(ev, args):
    _arguments(3, 5)(args)
    base = args[0]
    if not isinstance(base, Ref):
        raise SpreadsheetError("#VALUE!")
    rows, cols = _whole(ev.scalar(args[1])), _whole(ev.scalar(args[2]))
    height = _whole(ev.scalar(args[3])) if len(args) > 3 and args[3] is not None else base.shape[0]
    width = _whole(ev.scalar(args[4])) if len(args) > 4 and args[4] is not None else base.shape[1]
    if height < 1 or width < 1:
        raise SpreadsheetError("#REF!")
    r0, c0 = base.r0 + rows, base.c0 + cols
    if r0 < 1 or c0 < 1 or r0 + height - 1 > MAX_ROW or c0 + width - 1 > MAX_COL:
        raise SpreadsheetError("#REF!")
    return Ref(base.sheet, r0, c0, r0 + height - 1, c0 + width - 1)


def _match(ev, args):
    _arguments(2, 3)(args)
    wanted = _raise_if_error(ev.scalar(args[0]))
    table = ev.array(args[1])
    if table.shape[0] != 1 and table.shape[1] != 1:
        raise SpreadsheetError("#N/A")
    kind = _number(ev.scalar(args[2])) if len(args) > 2 and args[2] is not None else 1.0
    entries = list(table.ravel())
    if kind == 0:
        for position, entry in enumerate(entries, 1):
            if entry is not None and not _is_error(entry) and type(entry) is not bool and \
                    isinstance(entry, str) == isinstance(wanted, str) and _order(entry, wanted) == 0:
                return float(position)
        raise SpreadsheetError("#N/A")
    found = None
    for position, entry in enumerate(entries, 1):
        if entry is None or _is_error(entry) or isinstance(entry, str) != isinstance(wanted, str):
            continue
        order = _order(entry, wanted)
        if (kind > 0 and order <= 0) or (kind < 0 and order >= 0):
            found = position
        else:
            break
    if found is None:
        raise SpreadsheetError("#N/A")
    return float(found)


def _rows(ev, args):
    _arguments(1)(args)
    return float(args[0].shape[0]) if isinstance(args[0], (Ref, np.ndarray)) else 1.0


def _columns(ev, args):
    _arguments(1)(args)
    return float(args[0].shape[1]) if isinstance(args[0], (Ref, np.ndarray)) else 1.0


def _kth(largest: bool):
    def function(ev, args):
        _arguments(2)(args)
        numbers = sorted(_numbers_in(ev.array(args[0])), reverse=largest)
        k = _whole(ev.scalar(args[1]))
        if not 1 <= k <= len(numbers):
            raise SpreadsheetError("#NUM!")
        return numbers[k - 1]
    return function


def _log(ev, args):
    _arguments(1, 2)(args)
    base = _number(ev.scalar(args[1])) if len(args) > 1 and args[1] is not None else 10.0
    if base <= 0 or base == 1:
        raise SpreadsheetError("#NUM!" if base <= 0 else "#DIV/0!")

    def one(x):
        if x <= 0:
            raise SpreadsheetError("#NUM!")
        return math.log(x) / math.log(base)
    return ev.arithmetic(one, args[0])


def _round(ev, args):
    _arguments(1, 2)(args)
    digits = _whole(ev.scalar(args[1])) if len(args) > 1 else 0

    def one(x):
        scale = 10.0 ** digits
        return math.copysign(math.floor(abs(x) * scale + 0.5) / scale, x)
    return ev.arithmetic(one, args[0])


def _power_function(ev, args):
    _arguments(2)(args)
    return ev.arithmetic(_power, args[0], args[1])


def _mod(ev, args):
    _arguments(2)(args)

    def one(a, b):
        if b == 0:
            raise SpreadsheetError("#DIV/0!")
        return a - b * math.floor(a / b)
    return ev.arithmetic(one, args[0], args[1])


def _logical(combine):
    def function(ev, args):
        values = []
        for arg in args:
            if isinstance(arg, (Ref, np.ndarray)):
                values += [_truth(v) for v in ev.array(arg).ravel() if v is not None and not isinstance(v, str)]
            else:
                values.append(_truth(arg))
        if not values:
            raise SpreadsheetError("#VALUE!")
        return combine(values)
    return function


def _not(ev, args):
    _arguments(1)(args)
    return not _truth(ev.scalar(args[0]))


def _is(test):
    def function(ev, args):
        _arguments(1)(args)
        return test(ev.scalar(args[0]))
    return function


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        raise SpreadsheetError("#NUM!") from None


#: The arguments where a function takes an array (all of them, or their places): an operator there
#: works on whole ranges, even outside an array formula.
_ARRAY_ARGUMENTS = {"SUMPRODUCT": all, "MMULT": all, "TRANSPOSE": all, "SUMXMY2": all, "INDEX": (0,),
                    "MATCH": (1,), "LARGE": (0,), "SMALL": (0,), "ROWS": all, "COLUMNS": all}

_FUNCTIONS = {
    "SUM": _sum, "SUMSQ": _sumsq, "COUNT": _count, "AVERAGE": _average, "MAX": _max, "MIN": _min,
    "SUMPRODUCT": _sumproduct, "MMULT": _mmult, "SUMXMY2": _sumxmy2, "TRANSPOSE": _transpose,
    "INDEX": _index, "OFFSET": _offset, "MATCH": _match, "ROWS": _rows, "COLUMNS": _columns,
    "LARGE": _kth(True), "SMALL": _kth(False), "LOG": _log, "ROUND": _round, "POWER": _power_function,
    "MOD": _mod, "AND": _logical(all), "OR": _logical(any), "NOT": _not,
    "ISNUMBER": _is(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "ISBLANK": _is(lambda v: v is None), "ISERROR": _is(_is_error),
    "PI": lambda ev, args: math.pi,
    "SQRT": _math(math.sqrt, lambda x: x >= 0),
    "EXP": _math(_exp),
    "LN": _math(math.log, lambda x: x > 0),
    "LOG10": _math(math.log10, lambda x: x > 0),
    "ABS": _math(abs),
    "INT": _math(lambda x: float(math.floor(x))),
    "SIGN": _math(lambda x: float((x > 0) - (x < 0))),
    "COS": _math(math.cos, lambda x: abs(x) < 2**27),
    "SIN": _math(math.sin, lambda x: abs(x) < 2**27),
    "TANH": _math(math.tanh),
}
