"""The shared layer of every workbook: cell references, defined names, styles and formula building.

A lesson lays its quantities out as *blocks*: rectangular ranges that carry a defined name. An input
block holds numbers (or labels) that the user may edit; a computed block holds one formula per cell.
Every block's cached value is the torch result, so a file previewer shows real numbers; `lessonxl
verify` never trusts them and recalculates.

No block is a legacy array formula: LibreOffice (7.4) takes an .xlsx file's cached results on load and
then misses updates through an array formula's cells, so a student who edits an input sees stale
numbers (measured: 9,104 stale cells over 75 edits of 0.4.0's workbooks, 0 with one formula per cell).
A matrix product is written cell by cell instead (`Block.matmul`): each cell the MMULT of a row and a column.
"""

from __future__ import annotations

import datetime
import functools
import math
import re
from typing import Callable, Sequence

import numpy as np
import xlsxwriter
import xlsxwriter.worksheet
from xlsxwriter.utility import (quote_sheetname, xl_cell_to_rowcol, xl_col_to_name, xl_range, xl_range_abs,
                                xl_rowcol_to_cell)

from .values import as_grid, defined_name, key as value_key, key_of, resolve

#: Workbook timestamps are fixed so that the same seed gives byte-identical files.
FIXED_TIMESTAMP = datetime.datetime(2019, 1, 1)

# The three kinds of numbers of the lesson, plus computed cells worth looking at first, and (in an
# exercise, `exercise`) the cells a student fills in.
PARAM, INPUT, COMPUTED, RESULT, TODO = "param", "input", "computed", "result", "todo"

NUMBER_FORMAT = "0.0000"
_STYLES = {
    PARAM: {"bg_color": "#FFE94D", "border": 1, "border_color": "#BFBFBF"},
    INPUT: {"bg_color": "#DDEBF7", "border": 1, "border_color": "#BFBFBF"},
    COMPUTED: {"num_format": NUMBER_FORMAT},
    RESULT: {"num_format": NUMBER_FORMAT, "bold": True, "bg_color": "#E2EFDA", "border": 1,
             "border_color": "#BFBFBF"},
    TODO: {"num_format": NUMBER_FORMAT, "bg_color": "#FCE4D6", "border": 1, "border_color": "#ED7D31"},
    "title": {"bold": True, "font_size": 13},
    "header": {"bold": True, "align": "center", "bottom": 1, "text_wrap": True},
    "label": {"italic": True, "font_color": "#595959"},
    "section": {"bold": True, "font_size": 12},
    "note": {"text_wrap": True, "valign": "top"},
}
LEGEND = (
    (PARAM, "yellow: a parameter, learned by training (edit it and verify again)"),
    (INPUT, "blue: an input: data or a hyperparameter (edit it and verify again)"),
    (COMPUTED, "plain: an activation, computed by a formula"),
    (RESULT, "green: a result worth looking at first, computed by a formula"),
)
_MIN_WIDTH, _MAX_WIDTH = 9, 40

Formula = Callable[[int, int], str]


class Block:
    """A named rectangular range of one sheet, as the formulas of `reader` refer to it: its cells without
    the sheet's name on its own sheet, with it from another (`seen_from`); its defined name the same
    from every sheet (`ref`)."""

    def __init__(self, sheet: "Sheet", name: str, top: int, left: int, rows: int, cols: int,
                 global_name: bool, reader: "Sheet | None" = None):
        self.sheet, self.name = sheet, name
        self.top, self.left, self.rows, self.cols = top, left, rows, cols
        self.global_name = global_name
        self.reader = reader or sheet

    def seen_from(self, reader: "Sheet") -> "Block":
        """The same block, referred to from the formulas of the sheet `reader`."""
        return Block(self.sheet, self.name, self.top, self.left, self.rows, self.cols, self.global_name,
                     reader)

    @property
    def key(self) -> str:
        """The name as lesson modules key their values (see `values.key`)."""
        return value_key(None if self.global_name else self.sheet.name, self.name)

    @property
    def values(self) -> np.ndarray:
        """The block's grid in the book's values (the inputs, or the torch results)."""
        return as_grid(self.sheet.book.values[self.key])

    @property
    def bottom(self) -> int:
        return self.top + self.rows - 1

    @property
    def right(self) -> int:
        return self.left + self.cols - 1

    def _prefix(self) -> str:
        return "" if self.sheet is self.reader else self.sheet.quoted + "!"

    @functools.cached_property
    def ref(self) -> str:
        """The defined name, as every formula writes it: one name for the whole workbook
        (`values.defined_name`: adam!lr is adam_lr), never `Sheet!name`, which Google Sheets lacks; the
        same from every sheet, so worked out once per block (graddesc's rows read it 55,000 times)."""
        return defined_name(self.key)

    def cell(self, r: int = 0, c: int = 0, absolute: bool = False) -> str:
        """Cell (r, c) of the block, counted from its top-left corner."""
        if absolute:
            return self._prefix() + xl_rowcol_to_cell(self.top + r, self.left + c, True, True)
        return self._prefix() + _column_name(self.left + c) + str(self.top + r + 1)

    def span(self, r0: int, c0: int, r1: int, c1: int, absolute: bool = False) -> str:
        """The sub-range from (r0, c0) to (r1, c1), inclusive, counted from the corner."""
        make = xl_range_abs if absolute else xl_range
        return self._prefix() + make(self.top + r0, self.left + c0, self.top + r1, self.left + c1)

    def row(self, r: int, absolute: bool = False) -> str:
        return self.span(r, 0, r, self.cols - 1, absolute)

    def column(self, c: int, absolute: bool = False) -> str:
        return self.span(0, c, self.rows - 1, c, absolute)

    def matmul(self, other: "Block", transpose: bool = False, transpose_other: bool = False,
               scale: str = "") -> Formula:
        """The formula of cell (r, c) of the matrix product of this block and `other` (or of their
        transposes), times `scale` if given: the dot product of row r of the left factor and column c of
        the right one. `MMULT(row, column)` where they meet as a row and a column, `SUMPRODUCT` of the two
        where both run the same way (no TRANSPOSE: outside an array formula Excel 2010 intersects it)."""
        def product(r: int, c: int) -> str:
            left = self.column(r) if transpose else self.row(r)
            right = other.row(c) if transpose_other else other.column(c)
            if transpose != transpose_other:
                dot = f"SUMPRODUCT({left},{right})"
            else:  # a row and a column; both transposed, a column and a row: MMULT(row, column) all the same
                dot = f"MMULT({right},{left})" if transpose else f"MMULT({left},{right})"
            return f"={scale}*{dot}" if scale else f"={dot}"
        return product

    def address(self) -> str:
        """The absolute range the defined name points at, sheet included."""
        return self.sheet.quoted + "!" + xl_range_abs(
            self.top, self.left, self.bottom, self.right)


class Sheet:
    """One worksheet under construction."""

    def __init__(self, book: "Book", name: str, worksheet):
        self.book, self.name, self.ws = book, name, worksheet
        self.quoted = quote_sheetname(name)  # as a formula on another sheet writes the name
        self.blocks: dict[str, Block] = {}
        self._widths: dict[int, int] = {}

    def _widen(self, col: int, text) -> None:
        width = min(_MAX_WIDTH, max(_MIN_WIDTH, len(str(text)) + 2))
        self._widths[col] = max(self._widths.get(col, _MIN_WIDTH), width)

    def text(self, row: int, col: int, text: str, style: str = "label", widen: bool = False) -> None:
        """A label; `widen` makes its column wide enough for it."""
        self.ws.write_string(row, col, text, self.book.style(style))
        if widen:
            self._widen(col, text)

    def title(self, text: str, subtitle: str = "") -> None:
        """Row 0 holds the sheet's title, row 1 a one-line explanation."""
        self.ws.write_string(0, 0, text, self.book.style("title"))
        if subtitle:
            self.ws.write_string(1, 0, subtitle, self.book.style("label"))

    def value(self, name: str) -> np.ndarray:
        """The grid of this sheet's name `name` (or of the global name `name`) in the book's values."""
        return as_grid(resolve(self.book.values, self.name, name))

    def block_on(self, sheet: str, name: str) -> Block:
        """The block `name` that the sheet `sheet` holds, as this sheet's formulas refer to it."""
        return self.book.sheet_named(sheet).blocks[name].seen_from(self)

    def across(self, top: int, left: int) -> "Cursor":
        """A cursor placing blocks left to right along row `top`, from column `left`."""
        return Cursor(self, top, left, down=False)

    def down(self, top: int, left: int) -> "Cursor":
        """A cursor placing blocks top to bottom down column `left`, from row `top`."""
        return Cursor(self, top, left, down=True)

    def labelled(self, name: str, row: int, col: int, label: str, widen: bool = False, **options) -> Block:
        """A block with a label in the header style in the cell to its left (a scalar and its name);
        `widen` makes the label's column wide enough for it."""
        self.text(row, col - 1, label, "header", widen=widen)
        return self.block(name, row, col, **options)

    def means(self, row: int, columns: dict[str, Block], label_col: int, results: Sequence[str] = ()) -> None:
        """A row labelled `mean`: for each name of `columns`, the AVERAGE of that one-column block below it."""
        self.text(row, label_col, "mean", "header")
        for name, column in columns.items():
            self.block(name, row, column.left, result=name in results, formula=f"=AVERAGE({column.column(0)})")

    def area(self, name: str, top: int, left: int, global_name: bool = False) -> Block:
        """Where the block `name` will be, before it is written: for formulas that refer to it first
        (a recurrence reads its own earlier rows; columns of a table read each other)."""
        rows, cols = as_grid(self.book.values[value_key(None if global_name else self.name, name)]).shape
        return Block(self, name, top, left, rows, cols, global_name)

    def block(self, name: str, top: int, left: int, *, formula: Formula | str | None = None,
              headers: Sequence[str] | None = None,
              row_labels: Sequence[str] | None = None, caption: str | None = None,
              result: bool = False, global_name: bool = False,
              num_format: str | None = None) -> Block:
        """Write the block `name` with its top-left corner at (top, left) and define its name.

        Its values come from the book (the torch results, or the inputs). An input block is written
        as numbers or labels; a computed block needs `formula` (a function of the cell's (r, c), or
        one string for a 1 x 1 block).
        `headers` go in the row above, `row_labels` in the column to the left, `caption` two rows above.
        """
        block = self.area(name, top, left, global_name)
        key = block.key
        values = as_grid(self.book.values[key])
        kind = self.book.kind_of(key, result)
        is_input = kind in (PARAM, INPUT)
        if is_input == (formula is not None):
            raise ValueError(f"{key}: an input takes no formula, a computed block needs one")
        style = self.book.style(kind, num_format)
        self._fit(block, values, num_format or _STYLES[kind].get("num_format", "General"))
        if is_input:
            self._write_values(block, values, style)
        else:
            self._write_formulas(block, formula, values, style)
        self._decorate(block, headers, row_labels, caption)
        self.book.define(block)
        self.blocks[name] = block
        return block

    def _fit(self, block: Block, values: np.ndarray, num_format: str) -> None:
        """Widen each column of the block to show its values in `num_format`."""
        for c in range(block.cols):
            shown = [_shown(value, num_format) for value in values[:, c]]
            self._widen(block.left + c, max(shown, key=len))

    def _write_values(self, block: Block, values: np.ndarray, style) -> None:
        for (r, c), value in np.ndenumerate(values):
            row, col = block.top + r, block.left + c
            if isinstance(value, str):
                self.ws.write_string(row, col, value, style)
            elif value is None or (isinstance(value, float) and math.isnan(value)):
                self.ws.write_blank(row, col, None, style)
            else:
                self.ws.write_number(row, col, float(value), style)

    def _write_formulas(self, block: Block, formula: Formula | str, values: np.ndarray, style) -> None:
        if isinstance(formula, str):
            if values.shape != (1, 1):
                raise ValueError(f"{block.key}: one formula string needs a 1 x 1 block")
            text = formula
            formula = lambda r, c: text  # noqa: E731
        given = self.book.todo.get(block.key)  # an exercise block: rows from `given` on left to the student
        for (r, c), value in np.ndenumerate(values):
            if given is not None and r >= given:
                self.ws.write_blank(block.top + r, block.left + c, None, self.book.style(TODO))
            else:
                self.ws.write_formula(block.top + r, block.left + c, formula(r, c), style, _cached(value))

    def _decorate(self, block: Block, headers, row_labels, caption) -> None:
        header_style = self.book.style("header")
        if headers is not None:
            if len(headers) != block.cols:
                raise ValueError(f"{block.key}: {len(headers)} headers for {block.cols} columns")
            for c, text in enumerate(headers):
                self.ws.write_string(block.top - 1, block.left + c, str(text), header_style)
                self._widen(block.left + c, text)
        if row_labels is not None:
            if len(row_labels) != block.rows:
                raise ValueError(f"{block.key}: {len(row_labels)} row labels for {block.rows} rows")
            for r, text in enumerate(row_labels):
                self.ws.write_string(block.top + r, block.left - 1, str(text), header_style)
                self._widen(block.left - 1, text)
        if caption:
            self.ws.write_string(block.top - 2, block.left, caption, self.book.style("label"))

    def line_chart(self, title: str, series: Sequence[tuple[str, Block]], row: int, col: int, *,
                   x_title: str = "step", y_title: str = "", size: tuple[int, int] = (640, 320)) -> None:
        """A line chart of one-column blocks, its top-left corner at (row, col)."""
        chart = self.book.workbook.add_chart({"type": "line"})
        for label, block in series:
            chart.add_series({
                "name": label,
                "values": [block.sheet.name, block.top, block.left, block.bottom, block.right],
                "marker": {"type": "none"},
            })
        chart.set_title({"name": title})
        chart.set_x_axis({"name": x_title})
        chart.set_y_axis({"name": y_title, "major_gridlines": {"visible": True}})
        chart.set_size({"width": size[0], "height": size[1]})
        self.ws.insert_chart(row, col, chart)

    def scatter_chart(self, title: str, x: Block, y: Block, row: int, col: int, *, x_col: int = 0,
                      y_col: int = 0, x_title: str = "", y_title: str = "",
                      point_labels: Sequence[str] | None = None, size: tuple[int, int] = (560, 420)) -> None:
        """A scatter chart (markers only) of column `y_col` of `y` against column `x_col` of `x`, its
        top-left corner at (row, col); `point_labels`: each point's label, as text (LibreOffice 7.4 reads
        no label text from a cell: given a reference, it shows each point's y value instead)."""
        chart = self.book.workbook.add_chart({"type": "scatter"})
        series = {
            "name": title,
            "categories": [x.sheet.name, x.top, x.left + x_col, x.bottom, x.left + x_col],
            "values": [y.sheet.name, y.top, y.left + y_col, y.bottom, y.left + y_col],
            "marker": {"type": "circle", "size": 6},
        }
        if point_labels is not None:
            # The schema wants a show flag beside custom labels (without one, <c:dLbls> is invalid and
            # Excel repairs the file); a label's own text replaces the value it would show.
            series["data_labels"] = {"value": True, "position": "right",
                                     "custom": [{"value": text} for text in point_labels]}
        chart.add_series(series)
        chart.set_title({"name": title})
        chart.set_x_axis({"name": x_title, "major_gridlines": {"visible": True}})
        chart.set_y_axis({"name": y_title, "major_gridlines": {"visible": True}})
        chart.set_legend({"none": True})
        chart.set_size({"width": size[0], "height": size[1]})
        self.ws.insert_chart(row, col, chart)

    def finish(self) -> None:
        for col, width in self._widths.items():
            self.ws.set_column(col, col, width)


@functools.cache
def _column_name(col: int) -> str:
    """The letters of a column (0 -> A), remembered: a graddesc workbook refers to cells 300,000 times."""
    return xl_col_to_name(col)


def _shown(value, num_format: str) -> str:
    """Roughly how a spreadsheet shows `value` in `num_format` (to size its column)."""
    if isinstance(value, str):
        return value
    value = float(value)
    if not math.isfinite(value):
        return "#NUM!"
    if num_format == "General":
        return f"{value:.10g}"
    if "E" in num_format:
        return f"{value:.2E}"
    decimals = len(num_format.partition(".")[2])
    return f"{value:.{decimals}f}"


def _cached(value) -> float | str:
    """A formula's cached result as xlsxwriter writes it (a label as it is); inf and nan become spreadsheet
    errors."""
    if isinstance(value, str):
        return value
    value = float(value)
    if math.isnan(value):
        return "#NUM!"
    if math.isinf(value):
        return "#DIV/0!"
    return value


_A1 = re.compile(r"([A-Za-z]{1,3})([0-9]{1,7})")


def _is_cell(name: str) -> bool:
    """Whether `name` is a cell of Excel 2007+ (columns A to XFD, rows 1 to 1,048,576), e.g. EXP1:
    xlsxwriter's own check misses most three-letter columns."""
    found = _A1.fullmatch(name)
    if not found:
        return False
    row, col = xl_cell_to_rowcol(name.upper())
    return col < 16384 and 0 <= row < 1048576


class Cursor:
    """Places blocks one after another, left to right (or top to bottom), `gap` empty cells apart."""

    def __init__(self, sheet: Sheet, top: int, left: int, down: bool):
        self.sheet, self.top, self.left, self.down = sheet, top, left, down

    def block(self, name: str, gap: int = 0, **options) -> Block:
        """Write the block `name` after `gap` empty cells (see `Sheet.block` for the options)."""
        self.skip(gap)
        return self._past(self.sheet.block(name, self.top, self.left, **options))

    def area(self, name: str, gap: int = 0, global_name: bool = False) -> Block:
        """Where the block `name` will be, after `gap` empty cells, for a block written later (see
        `Sheet.area`); the cursor moves past it."""
        self.skip(gap)
        return self._past(self.sheet.area(name, self.top, self.left, global_name))

    def _past(self, block: Block) -> Block:
        if self.down:
            self.top = block.bottom + 1
        else:
            self.left = block.right + 1
        return block

    def skip(self, cells: int) -> int:
        """Leave `cells` empty cells; the row (or column) where the next block would start."""
        if self.down:
            self.top += cells
            return self.top
        self.left += cells
        return self.left


class _PortableWorksheet(xlsxwriter.worksheet.Worksheet):
    """A worksheet for formulas that use only the functions every engine shares (tests/test_portability.py
    checks each one): xlsxwriter's ~30 regular expressions per formula, which prefix Excel 365's dynamic-
    array functions with _xlfn., find nothing to do in them, and were half of graddesc's generation time."""

    def _prepare_formula(self, formula, expand_future_functions=False):
        return formula.removeprefix("=")


class Book:
    """A workbook under construction: the lesson's values in, an .xlsx file out."""

    def __init__(self, target, values: dict, inputs: Sequence[str], params: Sequence[str] = ()):
        self.values = values
        #: In an exercise (`exercise.Exercise.write`): the keys of the computed blocks left empty for the
        #: student, each with how many of its first rows keep their formulas (given as an example).
        self.todo: dict[str, int] = {}
        self._inputs, self._params = set(inputs), set(params)
        self.workbook = xlsxwriter.Workbook(target, {"in_memory": True})
        self.workbook.set_properties({"created": FIXED_TIMESTAMP, "author": "lessonxl"})
        self.sheets: list[Sheet] = []
        self._styles: dict[tuple, object] = {}
        self._names: dict[str, tuple[str, str]] = {}  # defined name, lower case -> (name, key)

    def style(self, kind: str, num_format: str | None = None):
        """The (cached) cell format of a kind of cell."""
        key = (kind, num_format)
        if key not in self._styles:
            props = dict(_STYLES[kind])
            if num_format:
                props["num_format"] = num_format
            self._styles[key] = self.workbook.add_format(props)
        return self._styles[key]

    def kind_of(self, key: str, result: bool) -> str:
        if key in self._params:
            return PARAM
        if key in self._inputs:
            return INPUT
        return RESULT if result else COMPUTED

    def sheet(self, name: str, title: str, subtitle: str = "") -> Sheet:
        sheet = Sheet(self, name, self.workbook.add_worksheet(name, worksheet_class=_PortableWorksheet))
        sheet.title(title, subtitle)
        self.sheets.append(sheet)
        return sheet

    def sheet_named(self, name: str) -> Sheet:
        """The sheet `name`, already written."""
        return next(sheet for sheet in self.sheets if sheet.name == name)

    def notes(self, title: str, paragraphs: Sequence[str]) -> Sheet:
        """The `notes` sheet: what the workbook shows, what to try, and the colour legend."""
        sheet = self.sheet("notes", title)
        sheet.ws.set_column(0, 0, 100)
        row = 2
        for text in paragraphs:
            sheet.ws.write_string(row, 0, text, self.style("note"))
            row += 1
        row += 1
        sheet.ws.write_string(row, 0, "Colours", self.style("header"))
        for kind, text in LEGEND:
            row += 1
            sheet.ws.write_string(row, 0, text, self.style(kind))
        return sheet

    def define(self, block: Block) -> None:
        """Define the block's name for the whole workbook (`values.defined_name`: no name is scoped to a
        sheet, which Google Sheets cannot do); refuse one that an engine would not take as a name, or
        that another block has (names ignore case)."""
        name = defined_name(block.key)
        if _is_cell(name):
            raise ValueError(f"{block.key}: {name} is not a valid Excel name (a cell of Excel 2007+, whose "
                             "columns run to XFD)")
        if name.lower().startswith(("true", "false")):
            raise ValueError(f"{block.key}: {name} is a name beginning with true or false, which Google Sheets "
                             "refuses")
        if len(name) > 255:
            raise ValueError(f"{block.key}: {name} is longer than Excel's 255 characters")
        if name.lower() in self._names:
            raise ValueError(f"{block.key}: {name} is already the name of {self._names[name.lower()][1]}")
        if self.workbook.define_name(name, "=" + block.address()) != 0:
            raise ValueError(f"{block.key}: {name} is not a valid Excel name (a cell reference, or bad "
                             "characters)")
        self._names[name.lower()] = (name, block.key)

    def _check_names(self) -> None:
        """Every defined name reads back as its key (`values.key_of`, as `reader` does), now that every
        sheet is known. Sheet names hold underscores: a name lesson_lr on a sheet adam, beside a sheet
        adam_lesson, would be adam_lesson_lr, read back as adam_lesson!lr, and is refused."""
        sheets = [sheet.name for sheet in self.sheets]
        global_names = {key for _, key in self._names.values() if "!" not in key}
        for name, key in self._names.values():
            if (read := key_of(name, sheets, global_names)) != key:
                raise ValueError(f"{key}: its defined name {name} would be read back as {read}; rename it")

    def close(self) -> None:
        self._check_names()
        for sheet in self.sheets:
            sheet.finish()
        self.workbook.close()
