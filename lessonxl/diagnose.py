"""Where a failing workbook's mistakes are: the cells that differ from torch because their own formula
is wrong, not because something they read differs.

One wrong formula early in graddesc's Adam table makes 5,896 cells differ; one of them is the mistake.
A differing formula cell is a mistake when its formula, given torch's value in every verified cell it
reads, does not give torch's value (`evaluator.evaluate`, judged by `compare`'s rule): the formula itself
is wrong, whatever it reads, so a mistake below another one is found too, and so is one whose difference
an error value read from above hides. A formula the evaluator cannot compute is a mistake where it reads
no differing cell (a *root*) and the same formula elsewhere in its column or row does not give torch's
values. The same wrong formula filled down or across (the same R1C1 form) is one finding; typed values
where formulas belong are findings too. Every other differing cell *inherits*: it reads, through
differing cells, a finding; or it reads none and its difference is one within the tolerance above it,
grown by a cancellation (graddesc's prediction - y), traced up to the finding it comes from.

The cells a formula reads come from the formulas as the file holds them (`references.precedents`: cell
references, ranges, defined names of the file, sheet-scoped ones of earlier releases included; a range
given to INDEX, OFFSET or MATCH counts as wholly read). Where lessonxl can lay the workbook out again
from the file's own inputs (`Lesson.layout`, with the same defined names in the same places), each cell
has lessonxl's own formula: a cell holding it is no mistake, and beside each mistake stands what
lessonxl's formula gives from the values the user's sheet holds, which shows how far off the user's
formula is at that cell.
"""

from __future__ import annotations

import functools
import html
import io
import re
import xml.etree.ElementTree as ET
import zipfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, NamedTuple

import numpy as np

from .compare import Check, agrees
from .evaluator import evaluate
from .reader import address, destinations
from .references import (Names, Reader, Area, Token, Unsupported, column_number, corners, ref_rect, row_col,
                         shifted)
from .values import is_error

#: The kinds of finding: a wrong formula; typed values where formulas belong; lessonxl's own formula that
#: still differs; a formula that gives torch's value from torch's values as lessonxl computes it, but
#: not as the spreadsheet engine does.
FORMULA, TYPED, OWN, ENGINE = "formula", "typed", "own", "engine"


@dataclass
class Finding:
    """One mistake: a wrong formula (the same formula in each of `cells`), typed values where formulas
    belong, cells whose formula is lessonxl's own and still differ, or cells whose formula the engine
    computes otherwise than lessonxl (`kind` FORMULA, TYPED, OWN, ENGINE). The values are those of its
    first cell (in reading order)."""

    kind: str
    sheet: str
    quantity: str            # the defined name of its first cell's quantity
    where: str               # "adam!K29:K628", "adam!K40", or a list of cells
    cells: list[str]
    first: str
    formula: str             # as the file writes it, at the first cell ("=..."); "" for a typed value
    sheet_value: object
    torch_value: object
    expected: object = None  # what lessonxl's formula gives there from the sheet's own values (None: unknown)
    lessonxl_formula: str | None = None  # lessonxl's formula at the first cell, where known
    inherited: int = 0       # cells that differ because they read (through other cells) one of `cells`


@dataclass
class Diagnosis:
    """The findings of one workbook, roots first; `inherited`: the differing cells that are in none."""

    findings: list[Finding] = field(default_factory=list)
    inherited: int = 0
    inherited_cells: set = field(default_factory=set)          # (sheet, row, col)
    #: (sheet, row, col) of each cell of a finding -> its value, torch's, what lessonxl's formula gives
    #: there from the sheet's values, and that formula (None where unknown); see `_Details`
    details: dict = field(default_factory=dict)


class _Details(dict):
    """`Diagnosis.details`, each cell's computed when first asked: the report asks for a finding's first
    cell only, `--annotate` for every cell (an exercise's empty block is 1,200 of them)."""

    def __init__(self, places: set, detail: Callable[[tuple], tuple]):
        super().__init__()
        self._places, self._detail = places, detail

    def __missing__(self, place: tuple) -> tuple:
        if place not in self._places:
            raise KeyError(place)
        found = self[place] = self._detail(place)
        return found


# --- the file's formulas and defined names ------------------------------------------------------------

#: A cell holding a formula: its attributes, the formula's attributes and its text (a cell's <f> comes
#: first among its children, as the schema orders them).
_FORMULA_CELL = re.compile(r'<(?:\w+:)?c\b[^>]*?\br="([A-Za-z]{1,3})([0-9]+)"[^>]*(?<!/)>\s*'
                           r'<(?:\w+:)?f\b([^>]*?)(?:/>|>([^<]*)</(?:\w+:)?f>)')
_ATTRIBUTE = re.compile(r'\b(t|ref|si)="([^"]*)"')


class Written(NamedTuple):
    """A formula as a cell of the file holds it: its text ("=..."), whether it is an array formula, and
    for a cell of a multi-cell array formula its place in the array."""

    text: str
    array_at: tuple[int, int] = (0, 0)
    array: bool = False


def read_formulas(path: Path, parts: Mapping[str, str], sheets: Iterable[str]) -> dict[str, dict]:
    """The formulas of the sheets `sheets` of the workbook at `path` (`parts`: worksheet part -> sheet),
    by sheet and (row, col): shared formulas filled as the file says, each cell of an array formula
    with its place."""
    wanted = set(sheets)
    out: dict[str, dict] = {}
    with zipfile.ZipFile(path) as archive:
        for part, sheet in parts.items():
            if sheet in wanted:
                try:
                    xml = archive.read(part).decode("utf-8")
                except (KeyError, UnicodeDecodeError):
                    continue
                out[sheet] = _formulas_of(xml)
    return out


def _formulas_of(xml: str) -> dict[tuple[int, int], Written]:
    formulas: dict[tuple[int, int], Written] = {}
    shared: dict[str, tuple[str, int, int]] = {}
    pending: list[tuple[int, int, str]] = []
    for found in _FORMULA_CELL.finditer(xml):
        row, col = int(found.group(2)), column_number(found.group(1))
        attributes = dict(_ATTRIBUTE.findall(found.group(3))) if found.group(3) else {}
        text = found.group(4) or ""
        if "&" in text:
            text = html.unescape(text)
        kind = attributes.get("t", "normal")
        if kind == "shared":
            if text:
                shared[attributes.get("si", "")] = (text, row, col)
                formulas[row, col] = Written("=" + text)
            else:
                pending.append((row, col, attributes.get("si", "")))
        elif kind == "array" and text:
            bounds = attributes.get("ref", "")
            (r0, _, c0, _), (r1, _, c1, _) = corners(bounds) if bounds else ((row, 0, col, 0),) * 2
            for r in range(r0, r1 + 1):
                for c in range(c0, c1 + 1):
                    formulas[r, c] = Written("=" + text, (r - r0, c - c0), True)
        elif text and kind != "dataTable":
            formulas[row, col] = Written("=" + text)
    for row, col, index in pending:
        if index in shared:
            text, r0, c0 = shared[index]
            try:
                formulas[row, col] = Written("=" + shifted(text, row - r0, col - c0))
            except Unsupported:
                pass
    return formulas


_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def file_names(path: Path) -> Names:
    """How the file's formulas resolve a defined name: a name scoped to the formula's sheet (or to the
    sheet written before it, `Sheet!name`) first, then the workbook-wide one. Names of several ranges,
    or of none, resolve to nothing. The same object for files with the same xl/workbook.xml (a class's
    copies of one exercise), so that `reader_of` is shared."""
    with zipfile.ZipFile(path) as archive:
        return _names_of(archive.read("xl/workbook.xml"))


@functools.lru_cache(maxsize=8)
def _names_of(workbook_xml: bytes) -> Names:
    root = ET.fromstring(workbook_xml)
    sheets = [sheet.get("name") for sheet in root.iter(f"{_MAIN}sheet")]
    scoped: dict[tuple[str | None, str], Area] = {}
    for element in root.iter(f"{_MAIN}definedName"):
        name, local = element.get("name", ""), element.get("localSheetId")
        try:
            scope = sheets[int(local)] if local is not None else None
            found = destinations(element.text or "")
        except (ValueError, TypeError, IndexError, KeyError):
            continue
        if len(found) != 1:
            continue
        sheet, reference = found[0]
        try:
            rect = ref_rect(Token("ref", reference.replace("$", "")), sheet)
        except (AttributeError, ValueError):
            continue
        scoped[scope, name.lower()] = rect
    return _resolver(scoped)


def _resolver(scoped: Mapping[tuple[str | None, str], Area]) -> Names:
    def names(sheet: str, prefix: str | None, name: str) -> Area | None:
        key = name.lower()
        if prefix is not None:
            return scoped.get((prefix, key))
        return scoped.get((sheet, key)) or scoped.get((None, key))
    return names


# --- lessonxl's own formulas ------------------------------------------------------------------------

@dataclass
class Layout:
    """lessonxl's formula for each cell of a workbook laid out from given inputs, and its names."""

    formulas: dict[str, dict[tuple[int, int], str]]
    names: Names


def lessonxl_layout(lesson, values: Mapping[str, object], file_areas: Mapping[str, object]) -> Layout | None:
    """lessonxl's formulas for a workbook of `values` (its inputs and torch's results, by key), laid out
    as `lessonxl generate` lays it out; None where the file's defined names (`file_areas`, by key, as
    `reader.outline` reads them) are not where that layout puts them (a file of another release or
    size, or one whose rows were moved): its cells are then not lessonxl's cells."""
    try:
        from .sheets import Book
        from .values import defined_name

        book = Book(io.BytesIO(), dict(values), lesson.inputs, lesson.params)
        # Only the formulas are kept: no cell is stored for a file, no column is sized (half the time).
        book.workbook.add_worksheet = lambda *args, **kwargs: _Recorder()
        make = book.sheet

        def sheet(*args, **kwargs):
            made = make(*args, **kwargs)
            made._fit = _ignore
            return made
        book.sheet = sheet
        lesson.layout(book)
    except Exception:  # a lesson that cannot lay these values out: no formulas to offer, no verdict changed
        return None
    formulas: dict[str, dict[tuple[int, int], str]] = {}
    scoped: dict[tuple[str | None, str], Area] = {}
    for sheet in book.sheets:
        for block in sheet.blocks.values():
            area = lesson.area_of(file_areas, block.key)
            rect = Area(sheet.name, block.top + 1, block.left + 1, block.bottom + 1, block.right + 1)
            if area != rect:
                return None
            scoped[None, defined_name(block.key).lower()] = rect
        formulas[sheet.name] = sheet.ws.formulas
    return Layout(formulas, _resolver(scoped))


def _ignore(*args, **kwargs) -> None:
    return None


class _Recorder:
    """A worksheet that keeps the formulas written into it, by 1-based (row, col), and nothing else."""

    def __init__(self):
        self.formulas: dict[tuple[int, int], str] = {}

    def write_formula(self, row: int, col: int, formula: str, *args, **kwargs) -> None:
        self.formulas[row + 1, col + 1] = "=" + formula.removeprefix("=")

    def __getattr__(self, name: str):
        return _ignore


# --- the diagnosis ------------------------------------------------------------------------------------

class _Differing:
    """The differing cells of each sheet, as a grid for quick questions about rectangles."""

    def __init__(self, cells: Iterable[tuple[str, int, int]]):
        by_sheet: dict[str, list[tuple[int, int]]] = {}
        for sheet, row, col in cells:
            by_sheet.setdefault(sheet, []).append((row, col))
        self.grids = {}
        for sheet, places in by_sheet.items():
            rows, cols = np.array(places).T
            grid = self.grids[sheet] = np.zeros((rows.max() + 1, cols.max() + 1), dtype=bool)
            grid[rows, cols] = True

    def within(self, rect: Area) -> list[tuple[str, int, int]]:
        grid = self.grids.get(rect.sheet)
        if grid is None or rect.min_row >= grid.shape[0] or rect.min_col >= grid.shape[1]:
            return []
        if rect.min_row == rect.max_row and rect.min_col == rect.max_col:
            return [(rect.sheet, rect.min_row, rect.min_col)] if grid[rect.min_row, rect.min_col] else []
        part = grid[rect.min_row:rect.max_row + 1, rect.min_col:rect.max_col + 1]
        return [(rect.sheet, rect.min_row + int(r), rect.min_col + int(c)) for r, c in np.argwhere(part)]


def _same(a, b, atol: float, rtol: float) -> bool:
    """Whether two evaluated values are the same within the tolerance (numbers), or equal (the rest)."""
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    if number(a) and number(b):
        a, b = float(a), float(b)
        return a == b or abs(a - b) <= atol + rtol * max(abs(a), abs(b))
    if isinstance(a, str) and isinstance(b, str) and not (is_error(a) or is_error(b)):
        return a.casefold() == b.casefold()
    return a == b or (a is None and b == 0) or (b is None and a == 0)


#: torch's truth for one verified cell: (value, operand scale or None, computed from an inf or a nan)
TruthAt = Callable[[str, int, int], "tuple[float, float | None, bool] | None"]

_UPSTREAM_SEARCHES = 50     # differing cells whose cause is looked for above the differing ones
_UPSTREAM_CELLS = 20_000    # cells each such search may visit


def diagnose(checks: list[Check], cells: Mapping[str, Mapping], truth_at: TruthAt,
             quantity_at: Callable[[str, int, int], str], formulas_of: Callable[[str], Mapping[tuple[int, int], Written]],
             names: Names, layout: Layout | None, atol: float, rtol: float, sheet_order: list[str]) -> Diagnosis:
    """The findings of a workbook whose `checks` (LibreOffice's recalculation against torch) failed.

    `cells`: the recalculated workbook's values, by sheet and (row, col); `truth_at`, `quantity_at`:
    torch's truth and the quantity (its key) of a verified cell, None and "" for any other cell;
    `formulas_of`: a sheet's formulas as the file holds them (`read_formulas`); `names`: the file's
    defined names (`file_names`); `layout`: lessonxl's own formulas (`lessonxl_layout`), or None.

    A differing formula cell is a mistake when its formula, given torch's value in every verified cell it
    reads, does not give torch's value (the comparison rule of `compare`): the formula itself is wrong,
    whatever it reads. That holds below another mistake, and when an error value read from above hides
    the difference. (Where the evaluator cannot compute a formula, a root whose formula is not the one
    its neighbours give torch's values with is a mistake.) The same wrong formula filled down or across
    is one finding. A differing cell that reads no differing cell and whose formula is right reads cells
    that differ within the tolerance (a cancellation grows it): it inherits from the mistake above it,
    or, when none is found there, it is a finding of its own kind (OWN for lessonxl's formula, ENGINE for
    another).
    """
    return _Diagnoser(checks, cells, truth_at, quantity_at, formulas_of, names, layout, atol, rtol,
                      sheet_order).run()


@functools.lru_cache(maxsize=8)
def reader_of(names: Names) -> Reader:
    """One `Reader` for every workbook whose names resolve alike (`file_names`, a kept `Layout`): a formula
    filled down the same column of a class's copies of one exercise is read once, not once a file."""
    return Reader(names)


class _Diagnoser:
    def __init__(self, checks, cells, truth_at, quantity_at, formulas_of, names, layout, atol, rtol, sheet_order):
        self.checks, self.cells, self.truth_at, self.quantity_at = checks, cells, truth_at, quantity_at
        self.formulas_of, self.names, self.layout = formulas_of, names, layout
        self.atol, self.rtol, self.sheet_order = atol, rtol, sheet_order
        self.reading = reader_of(names)
        self.theirs = reader_of(layout.names) if layout else None
        self._formulas: dict[str, Mapping] = {}

    # values

    def value(self, sheet: str, row: int, col: int):
        return self.cells.get(sheet, {}).get((row, col))

    def torch_world(self, sheet: str, row: int, col: int):
        """A cell as torch has it: a verified cell holds torch's value (an error value where torch's is
        inf or nan), any other cell what the sheet holds (inputs, labels)."""
        truth = self.truth_at(sheet, row, col)
        if truth is None:
            return self.value(sheet, row, col)
        return truth[0] if isinstance(truth[0], str) or np.isfinite(truth[0]) else "#NUM!"

    def agrees(self, place, value) -> bool:
        truth = self.truth_at(*place)
        if truth is None:
            return True
        return agrees(value, truth[0], self.atol, self.rtol, truth[1], truth[2])

    def written(self, place) -> Written | None:
        formulas = self._formulas.get(place[0])
        if formulas is None:
            formulas = self._formulas[place[0]] = self.formulas_of(place[0])
        return formulas.get(place[1:])

    def lessonxl_text(self, place) -> str | None:
        return self.layout.formulas.get(place[0], {}).get(place[1:]) if self.layout else None

    def is_lessonxls(self, place, form: str) -> bool:
        """Whether the cell holds lessonxl's own formula (the same text, or the same canonical form)."""
        theirs = self.lessonxl_text(place)
        if theirs is None:
            return False
        if theirs == self.written(place).text:
            return True
        try:
            return self.theirs.read(theirs, *place)[1] == form
        except Unsupported:
            return False

    def expected(self, place):
        """lessonxl's formula at `place` on the sheet's own values (None: none, or not evaluable)."""
        text = self.lessonxl_text(place)
        if text is None:
            return None
        try:
            return evaluate(text, *place, self.value, self.layout.names)
        except Unsupported:
            return None

    def wrong(self, place) -> bool | None:
        """Whether the cell's formula, on torch's values, misses torch's value (None: not evaluable)."""
        written = self.written(place)
        try:
            result = evaluate(written.text, *place, self.torch_world, self.names, written.array_at,
                                 written.array)
        except Unsupported:
            return None
        return not self.agrees(place, result)

    def works_elsewhere(self, place, form: str) -> bool:
        """Whether the same formula, filled down or across, gives torch's values in other cells of the
        column or row (then it is not what is wrong here)."""
        sheet, row, col = place
        for line in (("col", col), ("row", row)):
            key = (sheet, *line)
            if key not in self.forms:
                found = set()
                for (r, c), text in self.formulas_of(sheet).items():
                    if (c if line[0] == "col" else r) == line[1] and (sheet, r, c) not in self.differ:
                        try:
                            found.add(self.reading.read(text.text, sheet, r, c)[1])
                        except Unsupported:
                            pass
                self.forms[key] = found
            if form in self.forms[key]:
                return True
        return False

    # the steps

    def run(self) -> Diagnosis:
        differ, typed = set(), set()
        for check in self.checks:
            differ.update(map(place_of, check.mismatches))
            typed.update(map(place_of, check.typed))
        typed &= differ
        if not differ:
            return Diagnosis()
        self.differ, self.forms = differ, {}
        # A typed value equal to torch's is a finding (a hard-coded answer), but what reads it reads the
        # right number: it passes nothing on.
        grid = _Differing(place for place in differ if place not in typed or not self.agrees(place, self.value(*place)))
        reads, form, unreadable = {}, {}, set()
        for place in differ - typed:
            written = self.written(place)
            try:
                if written is None:
                    raise Unsupported("no formula")
                rects, form[place] = self.reading.read(written.text, *place)
            except Unsupported:
                unreadable.add(place)
                reads[place] = []
                continue
            found = {other for rect in rects for other in grid.within(rect)}
            found.discard(place)
            reads[place] = sorted(found)
        for place in typed:
            reads[place] = []
        roots = {place for place, read in reads.items() if not read} - typed

        # 1. The differing cells whose own formula is wrong.
        mistakes, lessonxls = set(), set()
        for place in sorted(differ - typed - unreadable):
            if self.is_lessonxls(place, form[place]):
                lessonxls.add(place)
                continue
            verdict = self.wrong(place)
            if verdict or (verdict is None and place in roots and not self.works_elsewhere(place, form[place])):
                mistakes.add(place)
        mistakes |= unreadable & roots
        wrong_forms = {(place[0], form[place]) for place in mistakes if place in form}
        mistakes |= {place for place in differ - typed - unreadable - lessonxls
                     if (place[0], form[place]) in wrong_forms}

        # 2. Each differing cell's cause: the findings it reads, through differing cells or (for a
        # cell that reads none) through cells that differ within the tolerance.
        dependents: dict[tuple, list[tuple]] = {}
        for place, read in reads.items():
            for other in read:
                dependents.setdefault(other, []).append(place)
        found = mistakes | typed
        own = set()
        for number, place in enumerate(sorted(roots - found)):
            cause = self.upstream(place, found) if found and number < _UPSTREAM_SEARCHES else None
            if cause is not None:
                dependents.setdefault(cause, []).append(place)
            else:
                own.add(place)

        # 3. Findings: one per wrong formula (filled), per quantity's typed values, per formula of
        # lessonxl's that still differs.
        groups: dict[tuple, list[tuple]] = {}
        for place in mistakes:
            groups.setdefault((FORMULA, place[0], form.get(place, str(place))), []).append(place)
        for place in typed:
            groups.setdefault((TYPED, place[0], self.quantity_at(*place)), []).append(place)
        for place in own:
            kind = OWN if place in lessonxls else ENGINE
            groups.setdefault((kind, place[0], form.get(place, str(place))), []).append(place)
        findings = []
        in_findings = found | own
        order = {sheet: index for index, sheet in enumerate(self.sheet_order)}
        causes = _causes([places for places in groups.values()], dependents, differ) if len(groups) > 1 else \
            dict.fromkeys(differ, 1)  # one finding: everything that differs comes from it
        for number, ((kind, sheet, _), places) in enumerate(groups.items()):
            places.sort(key=lambda p: (p[1], p[2]))
            first = places[0]
            written = self.written(first) if kind != TYPED else None
            findings.append(Finding(
                kind, sheet, self.quantity_at(*first), _where(sheet, places), [address(*p) for p in places],
                address(*first), written.text if written else "", self.value(*first),
                (self.truth_at(*first) or (None,))[0], self.expected(first), self.lessonxl_text(first)))
        counts = [0] * len(findings)
        for place, mask in causes.items():
            if mask and place not in in_findings:
                while mask:
                    low = mask & -mask
                    counts[low.bit_length() - 1] += 1
                    mask ^= low
        for finding, count in zip(findings, counts):
            finding.inherited = count
        findings.sort(key=lambda f: ({FORMULA: 0, TYPED: 1, ENGINE: 2, OWN: 3}[f.kind], order.get(f.sheet, len(order)),
                                     place_of(f.first)[1:]))
        inherited = differ - in_findings
        details = _Details(in_findings, lambda place: (self.value(*place), (self.truth_at(*place) or (None,))[0],
                                                       self.expected(place), self.lessonxl_text(place)))
        return Diagnosis(findings, len(inherited), inherited, details)

    def upstream(self, start: tuple, found: set) -> tuple | None:
        """A finding that `start` reads through cells of any value (a difference within the tolerance,
        grown by a cancellation), breadth first; None when none is within `_UPSTREAM_CELLS` cells."""
        seen, queue = {start}, deque([start])
        while queue and len(seen) < _UPSTREAM_CELLS:
            place = queue.popleft()
            written = self.written(place)
            if written is None:
                continue
            try:
                rects = self.reading.read(written.text, *place)[0]
            except Unsupported:
                continue
            for rect in rects:
                for other in self.formula_cells(rect):
                    if other in found:
                        return other
                    if other not in seen:
                        seen.add(other)
                        queue.append(other)
        return None

    def formula_cells(self, rect: Area) -> list[tuple]:
        formulas = self.formulas_of(rect.sheet)
        if (rect.max_row - rect.min_row + 1) * (rect.max_col - rect.min_col + 1) > len(formulas):
            return [(rect.sheet, r, c) for r, c in formulas if rect.min_row <= r <= rect.max_row and rect.min_col <= c <= rect.max_col]
        return [(rect.sheet, r, c) for r in range(rect.min_row, rect.max_row + 1) for c in range(rect.min_col, rect.max_col + 1)
                if (r, c) in formulas]


def _causes(groups: list[list[tuple]], dependents: Mapping[tuple, list[tuple]], cells: set) -> dict[tuple, int]:
    """For each cell, the groups it reads through any chain of `dependents`, as bits (group i: bit i):
    one pass over the cells in an order that puts every cell after those it reads."""
    masks = dict.fromkeys(cells, 0)
    for number, places in enumerate(groups):
        for place in places:
            masks[place] = masks.get(place, 0) | 1 << number
    waiting = dict.fromkeys(masks, 0)
    for place, readers in dependents.items():
        for other in readers:
            waiting[other] = waiting.get(other, 0) + 1
    ready = deque(place for place, count in waiting.items() if count == 0)
    while ready:
        place = ready.popleft()
        mask = masks.get(place, 0)
        for other in dependents.get(place, ()):
            masks[other] = masks.get(other, 0) | mask
            waiting[other] -= 1
            if waiting[other] == 0:
                ready.append(other)
    return masks


def place_of(where: str) -> tuple[str, int, int]:
    """(sheet, row, col) of a cell's address `sheet!K40`."""
    sheet, _, cell = where.rpartition("!")
    return (sheet, *row_col(cell))


def _where(sheet: str, places: list[tuple]) -> str:
    """The cells of a finding as a spreadsheet names them: a range when they fill one, else a list."""
    rows = [p[1] for p in places]
    cols = [p[2] for p in places]
    r0, r1, c0, c1 = min(rows), max(rows), min(cols), max(cols)
    if len(places) == 1:
        return address(sheet, r0, c0)
    if (r1 - r0 + 1) * (c1 - c0 + 1) == len(places):
        return f"{address(sheet, r0, c0)}:{address(sheet, r1, c1).rpartition('!')[2]}"
    shown = [address(*p) for p in places[:3]]
    return ", ".join(shown) + (f" and {len(places) - 3} more" if len(places) > 3 else "")
