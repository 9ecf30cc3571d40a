"""`lessonxl verify`: recalculate workbooks with LibreOffice and compare every formula cell with torch.

For each file: copy it (the user's file is never written) without its cached values, let LibreOffice
recalculate every formula (one process for all files, driven through its API: `recalc.Engine`), read the
inputs through the defined names from what LibreOffice loaded, compute the same quantities with torch in
float64, and compare cell by cell. The file's cached values are read only to report, apart, what the
application that saved it computed.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Container, Mapping, Sequence

import numpy as np

from . import files, reader
from .errors import UsageError
from .recalc import DEFAULT_TIMEOUT, Engine, EngineFailure
from .saved import LESSONXL, last_saver
from .values import name_of

DEFAULT_TOL = 1e-9
MISMATCHES_SHOWN = 5


@dataclass
class Check:
    """One quantity (a defined name) compared cell by cell."""

    sheet: str
    name: str
    cells: int
    max_abs: float
    max_rel: float  # relative to each cell's value, or to its operands' size where it cancels
    worst: str
    passed: bool
    mismatches: list[str] = field(default_factory=list)
    worst_values: tuple = ()  # (sheet value, torch value) at the worst cell
    non_finite: int = 0    # cells where torch gives inf or nan (the inputs overflow or leave the domain)
    sheet_errors: int = 0  # cells where the sheet holds an error value (#NUM!, #DIV/0!, #VALUE!, ...)
    typed: list[str] = field(default_factory=list)  # cells holding a typed value where a formula belongs


@dataclass
class SavedValues:
    """The values that the application that last saved the file computed, compared with torch."""

    application: str       # "Microsoft Excel 16.0300", "LibreOffice 7.4.7.2", "lessonxl", ...
    evidence: bool         # whether they can be that application's own results (else not compared)
    why_not: str = ""
    checks: list[Check] = field(default_factory=list)
    missing: int = 0       # cells of verified quantities that hold no saved value

    @property
    def ok(self) -> bool:
        return all(check.passed for check in self.checks)


@dataclass
class Report:
    """The verdict on one file."""

    path: str
    workbook: str = ""
    device: str = ""
    checks: list[Check] = field(default_factory=list)
    formula_cells: int = 0
    uncovered: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0  # this file's share of the run: its LibreOffice conversion and its own work
    saved: SavedValues | None = None  # what the application that saved the file computed

    @property
    def ok(self) -> bool:
        return self.error is None and all(check.passed for check in self.checks) and \
            (self.saved is None or self.saved.ok)

    passed = ok

    @property
    def exit_code(self) -> int:
        """As `lessonxl verify` exits for this file alone: 0 pass, 1 a value differs, 2 unusable."""
        return exit_code([self])

    def to_frame(self):
        """One row per sheet and quantity (cells, max abs/rel error, worst cell, result), as a pandas
        DataFrame: first as verify's LibreOffice recalculated them, then as the application that saved
        the file computed them (`computed_by`); an unusable file is one row whose result is "error"."""
        import pandas as pd

        if self.error:
            rows = [{"computed_by": "", "sheet": "", "quantity": "", "cells": 0, "max_abs_err": math.nan,
                     "max_rel_err": math.nan, "worst_cell": "", "result": "error", "detail": self.error}]
        else:
            saved = self.saved.checks if self.saved else []
            rows = [_row(check, RECALCULATED) for check in self.checks]
            rows += [_row(check, self.saved.application) for check in saved]
        frame = pd.DataFrame(rows, columns=FRAME_COLUMNS[1:])
        frame.insert(0, "workbook", self.path)
        return frame

    def _repr_html_(self) -> str:
        return Reports([self])._repr_html_()


FRAME_COLUMNS = ["workbook", "computed_by", "sheet", "quantity", "cells", "max_abs_err", "max_rel_err",
                 "worst_cell", "result", "detail"]
RECALCULATED = "LibreOffice (verify's recalculation)"


def _row(check: Check, computed_by: str) -> dict:
    return {"computed_by": computed_by, "sheet": check.sheet, "quantity": check.name, "cells": check.cells,
            "max_abs_err": check.max_abs, "max_rel_err": check.max_rel, "worst_cell": check.worst,
            "result": "pass" if check.passed else "FAIL", "detail": _failure(check) if not check.passed else ""}


class Reports(list):
    """The reports of one verify run, in the order of the paths given."""

    @property
    def passed(self) -> bool:
        return all(report.passed for report in self)

    @property
    def exit_code(self) -> int:
        return exit_code(self)

    def to_frame(self):
        """Every report's rows in one pandas DataFrame (see `Report.to_frame`)."""
        import pandas as pd

        frames = [report.to_frame() for report in self]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FRAME_COLUMNS)

    def _repr_html_(self) -> str:
        """A compact table for a notebook: one line per workbook, then the failing quantities first."""
        import html

        head = "".join(f"<li>{html.escape(line)}</li>" for report in self for line in [summary_line(report)])
        frame = self.to_frame()
        failing = frame[frame["result"] != "pass"]
        rows = failing if len(failing) else frame.head(0)
        table = rows.to_html(index=False, float_format=lambda v: f"{v:.2e}", na_rep="") if len(rows) else \
            "<p>every quantity equals torch</p>"
        return f"<ul>{head}</ul>{table}"


@dataclass(frozen=True)
class Truth:
    """What torch says the cells of one quantity must hold."""

    value: np.ndarray                 # torch's float64 result
    scale: np.ndarray | None = None   # the operands' size, where the cells subtract nearly equal numbers
    spread: np.ndarray | None = None  # True where torch's value was computed from an inf or a nan

    def size(self, index: tuple[int, int]) -> float:
        """What a cell's error is relative to: its value, or its operands' size where it cancels
        (spreadsheet engines even snap such a result to 0)."""
        size = abs(float(self.value[index]))
        return max(size, abs(float(self.scale[index]))) if self.scale is not None else size

    def error_ok(self, index: tuple[int, int]) -> bool:
        """Whether a spreadsheet error value is right here: torch's value is inf or nan, or was
        computed from one (an error spreads through every dependent cell; x / inf = 0 does not)."""
        return not math.isfinite(float(self.value[index])) or (self.spread is not None and self.spread[index])


def _cell_error(actual, want: float, bound: float, error_ok: bool) -> tuple[float, bool]:
    """(absolute error, whether the cell differs from torch) of one recalculated cell."""
    if isinstance(actual, bool):
        actual = float(actual)
    if _is_error(actual):
        return (0.0, False) if error_ok else (math.inf, True)
    if isinstance(actual, (int, float)):
        if not math.isfinite(want):
            return math.inf, True  # torch left the domain (inf/nan), the sheet gave a number
        error = abs(actual - want)
        return error, error > bound
    return math.inf, True  # blank or text where a number belongs


def compare(values: Mapping[tuple[int, int], object], area: reader.Area, name: str, truth: Truth,
            atol: float, rtol: float, formulas: Container[tuple[int, int]] | None = None,
            only: Container[tuple[int, int]] | None = None) -> Check:
    """Compare the recalculated cells of `area` (`values` of its sheet) with torch's `truth`.

    Where `formulas` is given, a cell of the area outside it holds a typed value where the workbook
    has a formula: it fails, even when the value is right. Where `only` is given, the other cells are
    left out.
    """
    # Every cell at once, with numpy: the same rules as `_cell_error`, cell by cell.
    positions = [cell for cell in area.cells() if only is None or cell in only]
    if not positions:
        return Check(area.sheet, name, 0, 0.0, 0.0, "", True)
    actual = [values.get(cell) for cell in positions]
    flat = [(row - area.min_row) * area.shape[1] + (col - area.min_col) for row, col in positions]
    want = np.asarray(truth.value, dtype=np.float64).reshape(-1)[flat]
    number = np.array([isinstance(v, (int, float)) for v in actual])
    error_value = np.array([_is_error(v) for v in actual])
    got = np.array([float(v) if n else 0.0 for v, n in zip(actual, number)])
    size = np.abs(want)
    if truth.scale is not None:
        scale = np.abs(np.asarray(truth.scale, dtype=np.float64).reshape(-1)[flat])
        size = np.where(np.isnan(size), size, np.fmax(size, scale))  # as max(size, scale) does
    finite = np.isfinite(want)
    error_ok = ~finite
    if truth.spread is not None:
        error_ok |= np.asarray(truth.spread, dtype=bool).reshape(-1)[flat]
    with np.errstate(invalid="ignore", over="ignore"):
        bound = np.where(finite, atol + rtol * size, 0.0)
        error = np.where(number & finite, np.abs(got - np.where(finite, want, 0.0)), np.inf)
        error[error_value] = np.where(error_ok[error_value], 0.0, np.inf)
        mismatch = np.where(error_value, ~error_ok, ~(number & finite) | (error > bound))
        typed_mask = np.zeros(len(positions), dtype=bool) if formulas is None else \
            np.array([cell not in formulas for cell in positions])
        mismatch |= typed_mask
        measured = np.isfinite(error)
        max_abs = float(error[measured].max()) if measured.any() else 0.0
        relative = measured & (size != 0) & np.isfinite(size)
        max_rel = float((error[relative] / size[relative]).max()) if relative.any() else 0.0
        ratio = np.where(mismatch, np.inf, np.divide(error, bound, out=np.zeros_like(error), where=bound != 0))
    at = int(np.argmax(ratio))

    def where(k: int) -> str:
        return reader.address(area.sheet, *positions[k])

    mismatches = [where(k) for k in np.flatnonzero(mismatch)]
    typed = [where(k) for k in np.flatnonzero(typed_mask)]
    return Check(area.sheet, name, len(positions), max_abs, max_rel, where(at), not mismatches, mismatches,
                 (actual[at], float(want[at])), int((~finite).sum()), int(error_value.sum()), typed)


def _is_error(value) -> bool:
    return isinstance(value, str) and value.startswith("#")


class _Job:
    """One file on its way through verification: staged, outlined, recalculated, compared."""

    def __init__(self, path: Path):
        self.path, self.staged, self.ticket = path, None, None
        self.report = Report(str(path))
        self.inputs: dict[str, np.ndarray] | None = None

    def _refuse(self, message: str) -> UsageError:
        return UsageError(message if message.startswith(f"{self.path}:") else f"{self.path}: {message}")

    def outline(self) -> list[tuple]:
        """Identify the lesson from the file's sheets; the input areas (from 0) LibreOffice must type."""
        from .registry import by_sheets

        self.outline_ = reader.outline(self.staged.stripped, self.path)
        self.lesson = by_sheets(self.outline_.sheetnames, str(self.path))
        self.report.workbook = self.lesson.name
        areas = [self.lesson.find(self.outline_.names, key) for key in self.lesson.inputs]
        return [(a.sheet, a.min_row - 1, a.min_col - 1, a.max_row - 1, a.max_col - 1) for a in areas if a]

    def _read_inputs(self, computed: reader.Recalculated) -> dict[str, np.ndarray]:
        try:
            return reader.read_inputs(self.lesson, self.book, computed)
        except UsageError as error:
            raise self._refuse(str(error)) from None

    def _compute(self, computed: reader.Recalculated) -> None:
        """torch's truth for every quantity, from the workbook's inputs as LibreOffice loaded them
        (formula inputs with the values it computed)."""
        self.inputs = self._read_inputs(computed)
        values, scales = self._torch()
        self.truths = {key: Truth(value, scales.get(key)) for key, value in values.items()}

    def _spread(self) -> None:
        """Mark where torch's values came from an inf or a nan, as a sheet's error values spread."""
        spread, _ = self._torch(spreadsheet_errors=True)
        self.truths = {key: replace(truth, spread=np.isnan(spread[key])) for key, truth in self.truths.items()}

    def _torch(self, spreadsheet_errors: bool = False):
        try:
            return self.lesson.expected(self.inputs, self.device, spreadsheet_errors)
        except UsageError as error:
            raise self._refuse(str(error)) from None
        except (ValueError, RuntimeError, IndexError, TypeError, ArithmeticError) as error:
            raise self._refuse(f"torch cannot compute from this workbook's inputs "
                               f"({type(error).__name__}: {error})") from None

    def _area(self, key: str) -> reader.Area:
        area = self.lesson.find(self.book.names, key)
        if area is None:
            raise self._refuse(f"the defined name {key} is missing")
        return area

    def truth(self, early: dict, device) -> None:
        """torch's values, from the inputs as LibreOffice loaded them (`Engine.inputs`)."""
        self.book = reader.Recalculated(self.outline_, early, self.staged.logical)
        self.device = device
        self.report.device = str(device)
        self._compute(self.book)

    def finish(self, reply: dict, atol: float, rtol: float) -> None:
        """Compare the recalculated workbook (the engine's `reply`) with torch and list the formula cells
        left uncovered."""
        self.book = computed = reader.Recalculated(self.outline_, reply, self.staged.logical)
        saver = last_saver(self.staged.saved)
        saved = reader.Snapshot(self.staged.saved, self.path, data_only=True).cells if saver.evidence else None
        checks, saved_checks = self._compare(computed.cells, atol, rtol, saved)
        if any(check.sheet_errors > check.non_finite for check in [*checks, *saved_checks]):
            # Error values where torch has numbers: find where torch's values came from an overflow.
            self._spread()
            checks, saved_checks = self._compare(computed.cells, atol, rtol, saved)
        self.report.checks = checks
        self.report.saved = SavedValues(saver.name, saver.evidence, saver.why_not, saved_checks,
                                        self._missing(saved) if saved is not None else 0)
        covered: dict[str, set] = {}
        for key in [*self.truths, *self.lesson.inputs]:
            area = self._area(key)
            covered.setdefault(area.sheet, set()).update(area.cells())
        formulas = self._formulas_by_sheet()
        self.report.formula_cells = sum(map(len, formulas.values()))
        self.report.uncovered = [reader.address(sheet, *cell) for sheet in computed.cells
                                 for cell in sorted(formulas.get(sheet, set()) - covered.get(sheet, set()))]

    def _formulas_by_sheet(self) -> dict[str, set]:
        by_sheet = getattr(self.book, "formulas_by_sheet", None)
        if by_sheet is None:
            by_sheet = {}
            for sheet, row, col in self.book.formulas:
                by_sheet.setdefault(sheet, set()).add((row, col))
        return by_sheet

    def _missing(self, saved: Mapping[str, Mapping]) -> int:
        return sum(saved.get(area.sheet, {}).get(cell) is None
                   for area in map(self._area, self.truths) for cell in area.cells())

    def _compare(self, cells: Mapping[str, Mapping], atol: float, rtol: float,
                 saved: Mapping[str, Mapping] | None) -> tuple[list[Check], list[Check]]:
        """Every quantity compared with torch: as LibreOffice recalculated it, and (where `saved` is
        given) as the application that saved the file computed it, in the cells that hold a value."""
        formulas = self._formulas_by_sheet()
        checks, saved_checks = [], []
        for key, truth in self.truths.items():
            area = self._area(key)
            if area.sheet not in cells:
                raise self._refuse(f"sheet {area.sheet} is missing after recalculation")
            if area.shape != truth.value.shape:
                raise self._refuse(self._shape_message(key, area, truth.value.shape))
            name = name_of(key)
            checks.append(compare(cells[area.sheet], area, name, truth, atol, rtol, formulas.get(area.sheet, set())))
            if saved is not None:
                values = saved.get(area.sheet, {})
                present = {cell for cell in area.cells() if values.get(cell) is not None}
                if present:
                    saved_checks.append(compare(values, area, name, truth, atol, rtol, only=present))
        return checks, saved_checks

    def _shape_message(self, key: str, area: reader.Area, computed: tuple[int, int]) -> str:
        """Why a quantity's cells no longer fit what torch computes from the inputs, in a user's words."""
        made_for = {name: _shape(value) for name, value in self.lesson.default_inputs(0).items()}
        grown = [f"{name.rpartition('!')[2]} holds {_cells(value.shape)} where the workbook was made for "
                 f"{_cells(made_for[name])}" for name, value in self.inputs.items()
                 if name in made_for and value.shape != made_for[name]]
        return (f"{'; '.join(grown) + ', so ' if grown else ''}torch computes {key} as {_cells(computed)}, "
                f"but the sheet has formulas for {_cells(area.shape)}. A workbook's size is fixed when lessonxl "
                f"generates it (cells added to an input range get no formulas): remove the added cells, or "
                f"{self.lesson.resize_hint}")


def _shape(value) -> tuple[int, int]:
    grid = np.asarray(value)
    return (1, 1) if grid.ndim == 0 else (grid.shape[0], 1) if grid.ndim == 1 else grid.shape


def _cells(shape: tuple[int, int]) -> str:
    return f"{shape[0]} x {shape[1]} cells"


def verify_paths(paths: Sequence[Path], device: str = "auto", atol: float = DEFAULT_TOL,
                 rtol: float = DEFAULT_TOL, timeout: float = DEFAULT_TIMEOUT,
                 progress: Callable[[str], None] = lambda stage: None) -> Reports:
    """Verify each workbook; a report per path, in order. Unusable files get a report with `error`.

    `progress` is told each stage as it starts ("recalculating ...", "comparing x.xlsx ...", ...).
    """
    with tempfile.TemporaryDirectory(prefix="lessonxl-verify-") as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        engine = None

        def started() -> Engine:
            nonlocal engine
            if engine is None:
                engine = Engine(folder, timeout)
                progress(f"recalculating {len(paths)} workbook{'s' * (len(paths) != 1)} with LibreOffice")
            return engine

        try:
            return verify_in(started, paths, folder / "in", device, atol, rtol, progress)
        finally:
            if engine is not None:
                engine.close()


def verify_in(engine: Callable[[], Engine], paths: Sequence[Path], folder: Path, device: str = "auto",
              atol: float = DEFAULT_TOL, rtol: float = DEFAULT_TOL,
              progress: Callable[[str], None] = lambda stage: None) -> Reports:
    """Verify each workbook in the LibreOffice that `engine()` gives (asked when the first file needs it:
    it may start one then, or give one already running), staging copies into `folder`; a report per
    path, in order. `verify_paths` and `verify --watch` are this with their own LibreOffice."""
    reports, jobs, running = Reports(), [], None
    for index, path in enumerate(map(Path, paths)):
        job = _Job(path)
        reports.append(job.report)
        # LibreOffice starts with the first file that needs it (while the lessons and torch are
        # imported), and recalculates each file as soon as it is staged.
        if _attempt(job, _copy, job, folder, index):
            running = engine()
            if _attempt(job, _outline, job):
                job.ticket = running.submit(job.staged.stripped, job.areas)
                jobs.append(job)
    _run(jobs, running, device, atol, rtol, progress)
    return reports


def _copy(job: _Job, folder: Path, index: int) -> None:
    job.staged = files.stage(job.path, folder, index)


def _outline(job: _Job) -> None:
    job.areas = job.outline()


def _run(jobs: Sequence[_Job], engine: Engine | None, device: str, atol: float, rtol: float,
         progress: Callable[[str], None]) -> None:
    """Take each submitted job's recalculated workbook from `engine` and compare it with torch."""
    if not jobs:
        return
    progress(f"recalculating {len(jobs)} workbook{'s' * (len(jobs) != 1)} with LibreOffice")
    # torch is imported while LibreOffice starts and loads: the two overlap on a multi-core machine.
    from .lesson import pick_device

    chosen = pick_device(device)
    for number, job in enumerate(jobs):
        try:
            # torch computes from the inputs while LibreOffice recalculates the whole workbook and reads
            # it back (and goes on to the next file).
            early = _timed(job, engine.inputs, job.ticket)
            progress(f"computing {job.path.name} with torch")
            truth = _attempt(job, job.truth, early, chosen)
            reply = _timed(job, engine.result, job.ticket)
        except EngineFailure as error:  # LibreOffice hung or crashed: every file not done says so
            for rest in jobs[number:]:
                rest.report.error = f"{rest.path}: {error}"
            return
        except UsageError as error:
            job.report.error = job.report.error or str(job._refuse(str(error)))
            continue
        if truth:
            progress(f"comparing {job.path.name}")
            _attempt(job, job.finish, reply, atol, rtol)


def _timed(job: _Job, step, *args):
    begun = time.perf_counter()
    try:
        return step(*args)
    finally:
        job.report.seconds += time.perf_counter() - begun


def _attempt(job: _Job, step, *args) -> bool:
    """Run one step of a job, timed; a usage error becomes the job's error instead of stopping the run."""
    begun = time.perf_counter()
    try:
        step(*args)
        return True
    except UsageError as error:
        job.report.error = str(error)
        return False
    finally:
        job.report.seconds += time.perf_counter() - begun


def exit_code(reports: Sequence[Report]) -> int:
    """0 when every check passes, 1 when a value differs, 2 when a file was unusable."""
    if any(report.error for report in reports):
        return 2
    return 0 if all(report.ok for report in reports) else 1


def _shown(value) -> str:
    """A sheet's or torch's value in a report line."""
    if isinstance(value, float) and not isinstance(value, bool):
        return f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if _is_error(value):
        return value
    return reader.describe(value)


def _listed(cells: list[str]) -> str:
    more = len(cells) - MISMATCHES_SHOWN
    return ", ".join(cells[:MISMATCHES_SHOWN]) + (f" and {more} more" if more > 0 else "")


def _failure(check: Check) -> str:
    """Why a quantity failed, in one line without its sheet and name."""
    parts = []
    if check.typed:
        parts.append(f"{_listed(check.typed)} {'holds a typed value' if len(check.typed) == 1 else 'hold typed values'}"
                     " where the workbook has a formula: a hard-coded answer is not a computed one")
    differ = [cell for cell in check.mismatches if cell not in check.typed]
    if differ:
        sheet_value, torch_value = check.worst_values
        parts.append(f"{len(differ)} of {check.cells} cells differ from torch ({_listed(differ)}); worst "
                     f"{check.worst}: sheet {_shown(sheet_value)}, torch {_shown(torch_value)}")
    return "; ".join(parts)


def _notes(report: Report) -> list[str]:
    lines = []
    non_finite = sum(check.non_finite for check in report.checks)
    sheet_errors = sum(check.sheet_errors for check in report.checks)
    if non_finite or sheet_errors:
        lines.append(f"note: these inputs overflow or leave the math's domain: torch gives inf or nan in "
                     f"{non_finite} cells, the sheet an error value (#NUM!, #DIV/0!, ...) in {sheet_errors}; "
                     "an error value passes where torch's value is inf or nan or was computed from one")
    if report.uncovered:
        lines.append(f"note: {len(report.uncovered)} formula cells are not covered by any check: "
                     f"{', '.join(report.uncovered[:10])}{' ...' if len(report.uncovered) > 10 else ''}")
    return lines


def summary_line(report: Report) -> str:
    """One line on one file: PASS/FAIL, the formula cells checked, the worst relative error, the time."""
    if report.error:
        return f"ERROR {report.error}"
    checked = report.formula_cells - len(report.uncovered)
    differ = len({cell for check in report.checks for cell in check.mismatches})
    worst = max((check.max_rel for check in report.checks), default=0.0)
    verdict = (f"{differ:,} of {checked:,} formula cells differ from torch" if differ else
               f"{checked:,} of {report.formula_cells:,} formula cells equal torch")
    return (f"{'PASS' if report.ok else 'FAIL'} {report.path}: {report.workbook}, {verdict} "
            f"(worst relative error {worst:.1e}), {report.seconds:.1f} s")


def saved_lines(report: Report) -> list[str]:
    """What the application that saved the file computed: one line, then each failing quantity."""
    saved = report.saved
    if saved is None:
        return []
    if not saved.evidence:
        return [f"saved values not compared: {saved.why_not}"]
    cells = sum(check.cells for check in saved.checks)
    differ = len({cell for check in saved.checks for cell in check.mismatches})
    worst = max((check.max_rel for check in saved.checks), default=0.0)
    verdict = f"{cells - differ:,} of {cells:,} formula cells equal torch" if saved.ok else \
        f"{differ:,} of {cells:,} formula cells differ from torch"
    missing = f"; {saved.missing:,} formula cells hold no saved value" if saved.missing else ""
    lines = [f"computed by {saved.application}: {verdict} (worst relative error {worst:.1e}){missing}"]
    return lines + [f"  {check.sheet}!{check.name}: {_failure(check)}" for check in saved.checks if not check.passed]


def format_summary(report: Report) -> str:
    """The default report of one file: its summary line, then each failing quantity, what the saving
    application computed, then notes."""
    lines = [summary_line(report)]
    lines += [f"  {check.sheet}!{check.name}: {_failure(check)}" for check in report.checks if not check.passed]
    saved = saved_lines(report) if not written_by_lessonxl(report) else []  # said once, in `run_notes`
    lines += [f"  {line}" for line in saved + _notes(report)]
    return "\n".join(lines)


def written_by_lessonxl(report: Report) -> bool:
    return report.saved is not None and report.saved.application == LESSONXL


def run_notes(reports: Sequence[Report]) -> list[str]:
    """What the default report says once for the whole run."""
    ours = sum(written_by_lessonxl(report) for report in reports)
    if not ours:
        return []
    return [f"note: lessonxl wrote {'this file' if ours == 1 else f'{ours} of these files'} as generated: "
            f"{'its' if ours == 1 else 'their'} saved values are torch's own results, not evidence; the verdict "
            "above is LibreOffice's recalculation"]


def format_report(report: Report) -> str:
    """The full table of one report that has no error (`lessonxl verify --verbose`)."""
    lines = [f"{report.path}: {report.workbook}, recalculated by LibreOffice, torch float64 on {report.device}",
             f"  {'sheet':<18} {'quantity':<22} {'cells':>6} {'max abs err':>12} {'max rel err':>12}"
             f"  {'worst cell':<22} result"]
    for check in report.checks:
        lines.append(f"  {check.sheet:<18} {check.name:<22} {check.cells:>6} {check.max_abs:>12.2e} "
                     f"{check.max_rel:>12.2e}  {check.worst:<22} {'pass' if check.passed else 'FAIL'}")
    lines += [f"  FAIL {check.sheet}!{check.name}: {_failure(check)}" for check in report.checks if not check.passed]
    lines += [f"  {line}" for line in saved_lines(report) + _notes(report)]
    covered = report.formula_cells - len(report.uncovered)
    lines.append(f"  {len(report.checks)} quantities, {covered} of {report.formula_cells} formula cells checked")
    lines.append(f"  {'PASS' if report.ok else 'FAIL'}")
    return "\n".join(lines)


def as_json(reports: Sequence[Report]) -> list[dict]:
    """Reports as JSON-ready dicts (non-finite numbers become null)."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value
    return [clean({**asdict(report), "ok": report.ok}) for report in reports]
