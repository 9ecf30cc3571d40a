"""`lessonxl verify`: recalculate workbooks with LibreOffice and compare every formula cell with torch.

For each file: copy it (the user's file is never written), read its inputs through the defined names,
let LibreOffice recalculate every formula (one process for all files), compute the same quantities
with torch in float64, and compare cell by cell. Cached values in the file are never read.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from . import reader
from .errors import UsageError
from .recalc import DEFAULT_TIMEOUT, Recalculation

DEFAULT_TOL = 1e-9
MISMATCHES_SHOWN = 5


@dataclass
class Check:
    """One quantity (a defined name) compared cell by cell."""

    sheet: str
    name: str
    cells: int
    max_abs: float
    max_rel: float
    worst: str
    passed: bool
    mismatches: list[str] = field(default_factory=list)
    worst_values: tuple = ()  # (sheet value, torch value) at the worst cell
    non_finite: int = 0    # cells where torch gives inf or nan (the inputs overflow or leave the domain)
    sheet_errors: int = 0  # cells where the sheet holds an error value (#NUM!, #DIV/0!, #VALUE!, ...)


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

    @property
    def ok(self) -> bool:
        return self.error is None and all(check.passed for check in self.checks)


def _cell_error(actual, expected: float) -> tuple[float, bool]:
    """(absolute error, whether it is a mismatch before tolerance) of one recalculated cell."""
    if isinstance(actual, bool):
        actual = float(actual)
    if isinstance(actual, (int, float)):
        if math.isfinite(expected):
            return abs(actual - expected), False
        return math.inf, True  # torch left the domain (inf/nan), the sheet gave a number
    if isinstance(actual, str) and actual.startswith("#"):
        # A spreadsheet error value (#NUM!, #DIV/0!, #VALUE!) agrees with torch's inf or nan only.
        return (0.0, False) if not math.isfinite(expected) else (math.inf, True)
    return math.inf, True  # blank or text where a number belongs


def compare(values: Mapping[tuple[int, int], object], area: reader.Area, name: str, expected: np.ndarray,
            atol: float, rtol: float) -> Check:
    """Compare the recalculated cells of `area` (`values` of its sheet) with torch's `expected` grid."""
    max_abs = max_rel = 0.0
    worst, worst_ratio, worst_values, mismatches = "", -1.0, (), []
    non_finite = sheet_errors = 0
    for row, col in area.cells():
        actual = values.get((row, col))
        want = float(expected[row - area.min_row, col - area.min_col])
        non_finite += not math.isfinite(want)
        sheet_errors += _is_error(actual)
        error, mismatch = _cell_error(actual, want)
        where = reader.address(area.sheet, row, col)
        allowed = atol + rtol * abs(want) if math.isfinite(want) else 0.0
        if mismatch or error > allowed:
            mismatches.append(where)
        if math.isfinite(error):
            max_abs = max(max_abs, error)
            if want != 0:
                max_rel = max(max_rel, error / abs(want))
        ratio = math.inf if mismatch else error / allowed if allowed else 0.0
        if ratio > worst_ratio:
            worst, worst_ratio, worst_values = where, ratio, (actual, want)
    return Check(area.sheet, name, area.shape[0] * area.shape[1], max_abs, max_rel, worst,
                 not mismatches, mismatches, worst_values, non_finite, sheet_errors)


def _is_error(value) -> bool:
    return isinstance(value, str) and value.startswith("#")


class _Job:
    """One file on its way through verification."""

    def __init__(self, path: Path, copy: Path):
        self.path, self.copy = path, copy
        self.report = Report(str(path))

    def prepare(self, device) -> None:
        """Identify the lesson, read the inputs, and compute torch's values."""
        from .registry import by_sheets

        book = reader.Snapshot(self.copy, self.path)
        self.lesson = by_sheets(book.sheetnames)
        if self.lesson is None:
            raise UsageError(f"{self.path}: was not made by lessonxl (it has none of its workbooks' sheets)")
        self.areas = book.names
        inputs = {}
        for key in self.lesson.inputs:
            try:
                inputs[key] = reader.read_input(book, self._area(key), key in self.lesson.text_inputs,
                                                key in self.lesson.blank_inputs)
            except (KeyError, IndexError):  # the name points at a sheet or cell that is not there
                raise UsageError(f"{self.path}: the defined name {key} points outside the workbook") from None
            except UsageError as error:
                message = str(error)
                raise UsageError(message if message.startswith(f"{self.path}:")
                                 else f"{self.path}: {message}") from None
        try:
            self.expected = self.lesson.evaluate(inputs, device)
        except UsageError as error:
            raise UsageError(f"{self.path}: {error}") from None
        except (ValueError, RuntimeError, IndexError, TypeError, ArithmeticError) as error:
            raise UsageError(f"{self.path}: torch cannot compute from this workbook's inputs "
                             f"({type(error).__name__}: {error})") from None
        self.formulas = book.formulas
        self.report.workbook, self.report.device = self.lesson.name, str(device)

    def _area(self, key: str) -> reader.Area:
        if key not in self.areas:
            raise UsageError(f"{self.path}: the defined name {key} is missing")
        return self.areas[key]

    def finish(self, recalculated: Path | None, atol: float, rtol: float, detail: str = "") -> None:
        """Compare the recalculated workbook with torch and list the formula cells left uncovered."""
        if recalculated is None:
            raise UsageError(f"{self.path}: LibreOffice wrote no recalculated copy (it could not open the "
                             "workbook)" + (f": {detail}" if detail else ""))
        book = reader.Snapshot(recalculated, self.path, data_only=True).cells
        covered = set()
        for key, expected in self.expected.items():
            area = self._area(key)
            if area.sheet not in book:
                raise UsageError(f"{self.path}: sheet {area.sheet} is missing after recalculation")
            if area.shape != expected.shape:
                raise UsageError(f"{self.path}: {key} spans {area.shape[0]} x {area.shape[1]} cells, "
                                 f"torch computes {expected.shape[0]} x {expected.shape[1]}")
            self.report.checks.append(compare(book[area.sheet], area, key.rpartition("!")[2], expected,
                                              atol, rtol))
            covered.update((area.sheet, row, col) for row, col in area.cells())
        self.report.formula_cells = len(self.formulas)
        order = {name: i for i, name in enumerate(book)}
        self.report.uncovered = [reader.address(*cell) for cell in
                                 sorted(self.formulas - covered, key=lambda c: (order.get(c[0], 0), c[1:]))]


def verify_paths(paths: Sequence[Path], device: str = "auto", atol: float = DEFAULT_TOL,
                 rtol: float = DEFAULT_TOL, timeout: float = DEFAULT_TIMEOUT) -> list[Report]:
    """Verify each workbook; a report per path, in order. Unusable files get a report with `error`."""
    with tempfile.TemporaryDirectory(prefix="lessonxl-verify-") as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        jobs, reports = [], []
        for index, path in enumerate(map(Path, paths)):
            job = _Job(path, path)
            reports.append(job.report)
            try:
                job.copy = reader.stage(path, folder / "in", index)
                jobs.append(job)
            except UsageError as error:
                job.report.error = str(error)
        engine = Recalculation([job.copy for job in jobs], folder, timeout)
        try:
            # torch is imported while LibreOffice starts: the two overlap on a multi-core machine.
            from .lesson import pick_device

            chosen = pick_device(device)
            ready = [job for job in jobs if _attempt(job, job.prepare, chosen)]
            try:
                # When no file is left to compare, LibreOffice is stopped rather than awaited.
                recalculated = engine.wait() if ready else {}
            except UsageError as error:  # LibreOffice hung or crashed: every file of the run says so
                for job in ready:
                    job.report.error = f"{job.path}: {error}"
                ready = []
        finally:
            engine.kill()
        for job in ready:
            _attempt(job, job.finish, recalculated[job.copy], atol, rtol, engine.detail)
    return reports


def _attempt(job: _Job, step, *args) -> bool:
    """Run one step of a job; a usage error becomes the job's error instead of stopping the run."""
    try:
        step(*args)
        return True
    except UsageError as error:
        job.report.error = str(error)
        return False


def exit_code(reports: Sequence[Report]) -> int:
    """0 when every check passes, 1 when a value differs, 2 when a file was unusable."""
    if any(report.error for report in reports):
        return 2
    return 0 if all(report.ok for report in reports) else 1


def _number(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else repr(value)


def format_report(report: Report) -> str:
    """The human-readable table of one report that has no error."""
    lines = [f"{report.path}: {report.workbook}, recalculated by LibreOffice, torch float64 on {report.device}",
             f"  {'sheet':<18} {'quantity':<22} {'cells':>6} {'max abs err':>12} {'max rel err':>12}"
             f"  {'worst cell':<22} result"]
    for check in report.checks:
        lines.append(f"  {check.sheet:<18} {check.name:<22} {check.cells:>6} {check.max_abs:>12.2e} "
                     f"{check.max_rel:>12.2e}  {check.worst:<22} {'pass' if check.passed else 'FAIL'}")
    for check in report.checks:
        if not check.passed:
            sheet_value, torch_value = check.worst_values
            shown = ", ".join(check.mismatches[:MISMATCHES_SHOWN])
            more = len(check.mismatches) - MISMATCHES_SHOWN
            lines.append(f"  FAIL {check.sheet}!{check.name}: {len(check.mismatches)} of {check.cells} cells "
                         f"differ from torch ({shown}{f' and {more} more' if more > 0 else ''}); worst "
                         f"{check.worst}: sheet {_number(sheet_value)}, torch {_number(torch_value)}")
    non_finite = sum(check.non_finite for check in report.checks)
    sheet_errors = sum(check.sheet_errors for check in report.checks)
    if non_finite or sheet_errors:
        lines.append(f"  note: these inputs overflow or leave the math's domain: torch gives inf or nan in "
                     f"{non_finite} cells, the sheet an error value (#NUM!, #DIV/0!, ...) in {sheet_errors}; "
                     "an error value passes only where torch gives inf or nan"
                     + ("" if sheet_errors <= non_finite else ", so it fails where the error spreads but "
                        "torch's inf arithmetic still gives a number (EXP(-inf) = 0, x / inf = 0)"))
    covered = report.formula_cells - len(report.uncovered)
    lines.append(f"  {len(report.checks)} quantities, {covered} of {report.formula_cells} formula cells "
                 f"checked" + (f"; not covered by any check: {', '.join(report.uncovered[:10])}"
                               + (" ..." if len(report.uncovered) > 10 else "") if report.uncovered else ""))
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
