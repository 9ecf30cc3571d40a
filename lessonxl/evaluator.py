"""What a formula gives from given cell values: a small evaluator with a spreadsheet's rules.

`lessonxl verify` evaluates lessonxl's own formula for a cell on the values the user's sheet holds
(`diagnose`): how far that is from the user's value says how far off the user's formula is there. The
formula is parsed into a tree (`parse`) and evaluated (`evaluate`) with the functions of `functions`.
A formula it cannot read or a function it does not know raises `Unsupported`: the caller then says
nothing rather than a guess. Recalculating through LibreOffice instead would cost a second load of the
workbook (seconds) for a few cells.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .functions import (ARRAY_ARGUMENTS, FUNCTIONS, SpreadsheetError, as_number, as_text, checked, divide,
                        is_true, ordering, raise_if_error, to_power)
from .references import Names, Area, Token, Unsupported, function_name, ref_rect, tokens

# --- parsing -----------------------------------------------------------------------------------------

_INFIX = {"=": 1, "<>": 1, "<": 1, ">": 1, "<=": 1, ">=": 1, "&": 2, "+": 3, "-": 3, "*": 4, "/": 4, "^": 5,
          ":": 8}
_PREFIX = 6
_PERCENT = 7


class _Parser:
    """A formula's tokens read into a tree, operators by their precedence."""

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
            return ("value", token.text)
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
                return ("call", function_name(token.text), args)
            while True:
                if self.peek() is not None and self.peek().text in (",", ")"):
                    args.append(("value", None))  # an omitted argument
                else:
                    args.append(self.expression())
                separator = self.take()
                if separator.text == ")":
                    return ("call", function_name(token.text), args)
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
    evaluator = Evaluator(sheet, row, col, values, names, array)
    try:
        result = evaluator.run(parse(formula))
        if isinstance(result, Area):
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
        if result is None:
            return 0.0
        if isinstance(result, float) and not math.isfinite(result):
            return "#NUM!"
        return result
    except SpreadsheetError as error:
        return error.value
    except (RecursionError, MemoryError):
        raise Unsupported("too deep or too large") from None


class Evaluator:
    """One formula's evaluation: its cell, the values it reads, and whether operators take whole ranges."""

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

    def read(self, ref: Area) -> np.ndarray:
        rows, cols = ref.shape
        if rows * cols > 1_000_000:
            raise Unsupported("a range too large to read")
        grid = np.empty((rows, cols), dtype=object)
        for r in range(rows):
            for c in range(cols):
                grid[r, c] = self.values(ref.sheet, ref.min_row + r, ref.min_col + c)
        return grid

    def implicit(self, ref: Area):
        """A range where one value belongs: its one cell, or the cell of this row (column) of it."""
        if ref.shape == (1, 1):
            return self.values(ref.sheet, ref.min_row, ref.min_col)
        if ref.sheet == self.sheet and ref.min_col == ref.max_col and ref.min_row <= self.row <= ref.max_row:
            return self.values(ref.sheet, self.row, ref.min_col)
        if ref.sheet == self.sheet and ref.min_row == ref.max_row and ref.min_col <= self.col <= ref.max_col:
            return self.values(ref.sheet, ref.min_row, self.col)
        raise SpreadsheetError("#VALUE!")

    def scalar(self, value):
        """One value: a range's one cell, an array's first element."""
        if isinstance(value, Area):
            value = self.implicit(value)
        if isinstance(value, np.ndarray):
            value = value[0, 0]
        return value

    def array(self, value) -> np.ndarray:
        """A value as a 2-D array of values (a scalar is 1 x 1)."""
        if isinstance(value, Area):
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
        return tuple(self.implicit(o) if isinstance(o, Area) else o for o in operands)

    def arithmetic(self, operation, *operands):
        """An elementwise operation on numbers (`elementwise` with its operands as numbers; a result
        that is not finite is #NUM!)."""
        def on_numbers(*values):
            with np.errstate(all="ignore"):
                return checked(operation(*(as_number(v) for v in values)))
        return self.elementwise(on_numbers, *operands)

    def operator(self, op: str, left_node, right_node):
        left, right = self.run(left_node), self.run(right_node)
        if op == ":":
            if not (isinstance(left, Area) and isinstance(right, Area)) or left.sheet != right.sheet:
                raise SpreadsheetError("#VALUE!")
            return Area(left.sheet, min(left.min_row, right.min_row), min(left.min_col, right.min_col), max(left.max_row, right.max_row),
                       max(left.max_col, right.max_col))
        if op in _ARITHMETIC:
            return self.arithmetic(_ARITHMETIC[op], left, right)
        if op == "&":
            return self.elementwise(lambda a, b: as_text(a) + as_text(b), left, right)
        return self.elementwise(lambda a, b: _COMPARE[op](ordering(a, b)), left, right)

    def elementwise(self, operation, *operands):
        """An operation on scalars, or elementwise on arrays (ranges read and broadcast; an error value
        met spreads into its own entry)."""
        operands = self.operands(operands)
        if not any(isinstance(o, (Area, np.ndarray)) for o in operands):
            return operation(*(raise_if_error(o) for o in operands))
        grids = [self.array(o) for o in operands]
        shape = np.broadcast_shapes(*(g.shape for g in grids))
        out = np.empty(shape, dtype=object)
        expanded = [np.broadcast_to(g, shape) for g in grids]
        for index in np.ndindex(shape):
            try:
                out[index] = operation(*(raise_if_error(g[index]) for g in expanded))
            except SpreadsheetError as error:
                out[index] = error.value
        return out

    def call(self, name: str, args: list):
        if name == "IF":
            return self.if_(args)
        if name == "IFERROR":
            try:
                value = self.scalar(self.run(args[0]))
                return raise_if_error(value)
            except SpreadsheetError:
                return self.run(args[1])
        function = FUNCTIONS.get(name)
        if function is None:
            raise Unsupported(f"the function {name}")
        arrays = ARRAY_ARGUMENTS.get(name, ())
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
        if isinstance(condition, Area) and not self.array_mode:
            condition = self.implicit(condition)
        if isinstance(condition, (Area, np.ndarray)) and self.array(condition).size > 1:
            grid = self.array(condition)
            yes = self.run(args[1]) if len(args) > 1 else True
            no = self.run(args[2]) if len(args) > 2 else False
            return self.elementwise(lambda c, a, b: a if is_true(c) else b, grid, yes, no)
        chosen = is_true(self.scalar(condition))
        if chosen:
            return self.run(args[1]) if len(args) > 1 else True
        return self.run(args[2]) if len(args) > 2 else False


_ARITHMETIC = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
               "/": divide, "^": to_power}
_COMPARE = {"=": lambda o: o == 0, "<>": lambda o: o != 0, "<": lambda o: o < 0, ">": lambda o: o > 0,
            "<=": lambda o: o <= 0, ">=": lambda o: o >= 0}
