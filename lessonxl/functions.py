"""A spreadsheet's functions, and the rules for values that they and its operators follow.

The functions are those lessonxl writes (SUM, SUMPRODUCT, MMULT, INDEX, MATCH, OFFSET, EXP, LN, SQRT,
COS, PI, ...) and a few more; IF and IFERROR, which choose what to evaluate, are `evaluator`'s. The
rules are a spreadsheet's: a blank is 0 in arithmetic and "" beside text, text compares ignoring case,
and an error value spreads (`SpreadsheetError`). Each function takes the evaluator (for its arguments'
values) and its evaluated arguments: values, `Area`s and arrays.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .references import MAX_COL, MAX_ROW, Area
from .values import ERRORS

if TYPE_CHECKING:
    from .evaluator import Evaluator


# --- values ------------------------------------------------------------------------------------------

class SpreadsheetError(Exception):
    """An error value (#DIV/0!, #NUM!, ...) met while evaluating: it spreads as in a spreadsheet."""

    def __init__(self, value: str):
        super().__init__(value)
        self.value = value


def is_error_value(value) -> bool:
    """Whether a value is one of the error values (text that only looks like one is text)."""
    return isinstance(value, str) and value in ERRORS


def raise_if_error(value):
    """The value, unless it is an error value: that spreads (SpreadsheetError)."""
    if is_error_value(value):
        raise SpreadsheetError(str(value))
    return value


def as_number(value) -> float:
    """A scalar as arithmetic takes it: a blank is 0, TRUE 1, text that reads as a number that number."""
    raise_if_error(value)
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


def is_number(value) -> bool:
    """Whether a value is a number (TRUE and FALSE are not, though Python counts them)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def numbers_in(array: np.ndarray) -> list[float]:
    """The numbers of a range (text, logical values and blanks are left out, as SUM and COUNT do);
    an error value in it spreads."""
    out = []
    for value in array.ravel():
        raise_if_error(value)
        if is_number(value):
            out.append(float(value))
    return out


def checked(value: float) -> float:
    """The value, unless it is not finite: #NUM!."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SpreadsheetError("#NUM!")
    return value


def is_true(value) -> bool:
    """A value as a condition takes it: TRUE and FALSE as text too, a number true unless 0."""
    raise_if_error(value)
    if isinstance(value, str):
        if value.upper() in ("TRUE", "FALSE"):
            return value.upper() == "TRUE"
        raise SpreadsheetError("#VALUE!")
    return bool(as_number(value))


def as_text(value) -> str:
    """A value as & joins it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return f"{value:.15g}"
    return str(value)


def ordering(a, b) -> int:
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


def divide(a: float, b: float) -> float:
    """a / b, #DIV/0! for b = 0."""
    if b == 0:
        raise SpreadsheetError("#DIV/0!")
    return a / b


def to_power(a: float, b: float) -> float:
    """a ^ b by a spreadsheet's rules: 0 ^ 0 is #NUM!, 0 ^ -1 #DIV/0!, a complex or too large result #NUM!."""
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

def _arguments(args: list, count: int, at_most: int | None = None) -> None:
    """#VALUE! unless a function is given `count` arguments (from `count` to `at_most`)."""
    if not count <= len(args) <= (count if at_most is None else at_most):
        raise SpreadsheetError("#VALUE!")


def _math(operation, domain=lambda x: True):
    """A one-argument function of a number, elementwise over an array."""
    def function(ev: Evaluator, args):
        _arguments(args, 1)

        def one(x):
            if not domain(x):
                raise SpreadsheetError("#NUM!")
            return operation(x)
        return ev.arithmetic(one, args[0])
    return function


def _collect(ev: Evaluator, args) -> list[float]:
    """The numbers of SUM's arguments: a range's numbers, a typed argument as a number."""
    numbers = []
    for arg in args:
        if isinstance(arg, (Area, np.ndarray)):
            numbers += numbers_in(ev.array(arg))
        elif arg is not None:
            numbers.append(as_number(arg))
    return numbers


def _sum(ev, args):
    return checked(float(sum(_collect(ev, args))))


def _sumsq(ev, args):
    return checked(float(sum(x * x for x in _collect(ev, args))))


def _count(ev, args):
    count = 0
    for arg in args:
        if isinstance(arg, (Area, np.ndarray)):
            count += sum(is_number(v) for v in ev.array(arg).ravel())
        elif is_number(arg):
            count += 1
    return float(count)


def _average(ev, args):
    numbers = _collect(ev, args)
    if not numbers:
        raise SpreadsheetError("#DIV/0!")
    return checked(float(sum(numbers)) / len(numbers))


def _max(ev, args):
    numbers = _collect(ev, args)
    return max(numbers) if numbers else 0.0


def _min(ev, args):
    numbers = _collect(ev, args)
    return min(numbers) if numbers else 0.0


def _number_grid(ev, arg, strict: bool) -> np.ndarray:
    """An array argument as numbers (an error value spreads): anything but a number counts 0, or is
    #VALUE! where `strict` (MMULT)."""
    grid = ev.array(arg)
    out = np.zeros(grid.shape)
    for index, value in np.ndenumerate(grid):
        raise_if_error(value)
        if is_number(value):
            out[index] = float(value)
        elif strict:
            raise SpreadsheetError("#VALUE!")
    return out


def _sumproduct(ev, args):
    if not args:
        raise SpreadsheetError("#VALUE!")
    grids = [_number_grid(ev, arg, strict=False) for arg in args]
    if len({g.shape for g in grids}) != 1:
        raise SpreadsheetError("#VALUE!")
    product = grids[0]
    for grid in grids[1:]:
        product = product * grid
    return checked(float(product.sum()))


def _mmult(ev, args):
    _arguments(args, 2)
    left, right = (_number_grid(ev, arg, strict=True) for arg in args)
    if left.shape[1] != right.shape[0]:
        raise SpreadsheetError("#VALUE!")
    with np.errstate(all="ignore"):
        product = left @ right
    out = np.empty(product.shape, dtype=object)
    for index, value in np.ndenumerate(product):
        out[index] = float(value) if math.isfinite(value) else "#NUM!"
    return out


def _sumxmy2(ev, args):
    _arguments(args, 2)
    left, right = ev.array(args[0]), ev.array(args[1])
    if left.size != right.size:
        raise SpreadsheetError("#N/A")
    total = 0.0
    for a, b in zip(left.ravel(), right.ravel()):
        raise_if_error(a)
        raise_if_error(b)
        if is_number(a) and is_number(b):
            total += (float(a) - float(b)) ** 2
    return checked(total)


def _transpose(ev, args):
    _arguments(args, 1)
    return ev.array(args[0]).T.copy()


def _whole(value) -> int:
    return int(math.floor(as_number(value)))


def _index(ev, args):
    _arguments(args, 2, 3)
    source = args[0]
    rows, cols = source.shape if isinstance(source, (Area, np.ndarray)) else (1, 1)
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
    if isinstance(source, Area):
        return Area(source.sheet, source.min_row + r_range[0], source.min_col + c_range[0], source.min_row + r_range[-1],
                   source.min_col + c_range[-1])
    grid = ev.array(source)
    return grid[r_range[0]:r_range[-1] + 1, c_range[0]:c_range[-1] + 1]


def _offset(ev, args):
    _arguments(args, 3, 5)
    base = args[0]
    if not isinstance(base, Area):
        raise SpreadsheetError("#VALUE!")
    rows, cols = _whole(ev.scalar(args[1])), _whole(ev.scalar(args[2]))
    height = _whole(ev.scalar(args[3])) if len(args) > 3 and args[3] is not None else base.shape[0]
    width = _whole(ev.scalar(args[4])) if len(args) > 4 and args[4] is not None else base.shape[1]
    if height < 1 or width < 1:
        raise SpreadsheetError("#REF!")
    r0, c0 = base.min_row + rows, base.min_col + cols
    if r0 < 1 or c0 < 1 or r0 + height - 1 > MAX_ROW or c0 + width - 1 > MAX_COL:
        raise SpreadsheetError("#REF!")
    return Area(base.sheet, r0, c0, r0 + height - 1, c0 + width - 1)


def _match(ev, args):
    _arguments(args, 2, 3)
    wanted = raise_if_error(ev.scalar(args[0]))
    table = ev.array(args[1])
    if table.shape[0] != 1 and table.shape[1] != 1:
        raise SpreadsheetError("#N/A")
    kind = as_number(ev.scalar(args[2])) if len(args) > 2 and args[2] is not None else 1.0
    entries = list(table.ravel())
    if kind == 0:
        for position, entry in enumerate(entries, 1):
            if entry is not None and not is_error_value(entry) and type(entry) is not bool and \
                    isinstance(entry, str) == isinstance(wanted, str) and ordering(entry, wanted) == 0:
                return float(position)
        raise SpreadsheetError("#N/A")
    found = None
    for position, entry in enumerate(entries, 1):
        if entry is None or is_error_value(entry) or isinstance(entry, str) != isinstance(wanted, str):
            continue
        order = ordering(entry, wanted)
        if (kind > 0 and order <= 0) or (kind < 0 and order >= 0):
            found = position
        else:
            break
    if found is None:
        raise SpreadsheetError("#N/A")
    return float(found)


def _rows(ev, args):
    _arguments(args, 1)
    return float(args[0].shape[0]) if isinstance(args[0], (Area, np.ndarray)) else 1.0


def _columns(ev, args):
    _arguments(args, 1)
    return float(args[0].shape[1]) if isinstance(args[0], (Area, np.ndarray)) else 1.0


def _kth(largest: bool):
    def function(ev, args):
        _arguments(args, 2)
        numbers = sorted(numbers_in(ev.array(args[0])), reverse=largest)
        k = _whole(ev.scalar(args[1]))
        if not 1 <= k <= len(numbers):
            raise SpreadsheetError("#NUM!")
        return numbers[k - 1]
    return function


def _log(ev, args):
    _arguments(args, 1, 2)
    base = as_number(ev.scalar(args[1])) if len(args) > 1 and args[1] is not None else 10.0
    if base <= 0 or base == 1:
        raise SpreadsheetError("#NUM!" if base <= 0 else "#DIV/0!")

    def one(x):
        if x <= 0:
            raise SpreadsheetError("#NUM!")
        return math.log(x) / math.log(base)
    return ev.arithmetic(one, args[0])


def _round(ev, args):
    _arguments(args, 1, 2)
    digits = _whole(ev.scalar(args[1])) if len(args) > 1 else 0

    def one(x):
        scale = 10.0 ** digits
        return math.copysign(math.floor(abs(x) * scale + 0.5) / scale, x)
    return ev.arithmetic(one, args[0])


def _power_function(ev, args):
    _arguments(args, 2)
    return ev.arithmetic(to_power, args[0], args[1])


def _mod(ev, args):
    _arguments(args, 2)

    def one(a, b):
        if b == 0:
            raise SpreadsheetError("#DIV/0!")
        return a - b * math.floor(a / b)
    return ev.arithmetic(one, args[0], args[1])


def _logical(combine):
    def function(ev, args):
        values = []
        for arg in args:
            if isinstance(arg, (Area, np.ndarray)):
                values += [is_true(v) for v in ev.array(arg).ravel() if v is not None and not isinstance(v, str)]
            else:
                values.append(is_true(arg))
        if not values:
            raise SpreadsheetError("#VALUE!")
        return combine(values)
    return function


def _not(ev, args):
    _arguments(args, 1)
    return not is_true(ev.scalar(args[0]))


def _is(test):
    def function(ev, args):
        _arguments(args, 1)
        return test(ev.scalar(args[0]))
    return function


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        raise SpreadsheetError("#NUM!") from None


#: The arguments where a function takes an array (all of them, or their places): an operator there
#: works on whole ranges, even outside an array formula.
ARRAY_ARGUMENTS = {"SUMPRODUCT": all, "MMULT": all, "TRANSPOSE": all, "SUMXMY2": all, "INDEX": (0,),
                    "MATCH": (1,), "LARGE": (0,), "SMALL": (0,), "ROWS": all, "COLUMNS": all}

FUNCTIONS = {
    "SUM": _sum, "SUMSQ": _sumsq, "COUNT": _count, "AVERAGE": _average, "MAX": _max, "MIN": _min,
    "SUMPRODUCT": _sumproduct, "MMULT": _mmult, "SUMXMY2": _sumxmy2, "TRANSPOSE": _transpose,
    "INDEX": _index, "OFFSET": _offset, "MATCH": _match, "ROWS": _rows, "COLUMNS": _columns,
    "LARGE": _kth(True), "SMALL": _kth(False), "LOG": _log, "ROUND": _round, "POWER": _power_function,
    "MOD": _mod, "AND": _logical(all), "OR": _logical(any), "NOT": _not,
    "ISNUMBER": _is(is_number),
    "ISBLANK": _is(lambda v: v is None), "ISERROR": _is(is_error_value),
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
