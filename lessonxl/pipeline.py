"""`lessonxl verify`: recalculate workbooks with LibreOffice and compare every formula cell with torch.

For each file: copy it (the user's file is never written) without its cached values, let LibreOffice
recalculate every formula (one process for all files, driven through its API: `recalc.Engine`), read the
inputs through the defined names from what LibreOffice loaded, compute the same quantities with torch in
float64, and compare cell by cell. The file's cached values are read only to report, apart, what the
application that saved it computed.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from . import catalog, exercise, files, reader
from .catalog import DEFAULT_TOL
from .compare import Check, Truth, compare
from .errors import LessonxlError
from .recalc import DEFAULT_TIMEOUT, Engine, EngineFailure
from .report import Report, Reports, SavedValues
from .saved import last_saver
from .values import as_grid, name_of


class _Job:
    """One file on its way through verification: staged (a stripped copy), outlined (its lesson and input
    areas), submitted to LibreOffice (`ticket`), given torch's truth from the inputs LibreOffice loaded,
    then compared with the recalculated workbook. Each step fills what it found in; `report` collects
    the verdict."""

    def __init__(self, path: Path):
        self.path = path
        self.report = Report(str(path))
        self.staged: files.Staged | None = None      # the stripped copy and what the saved file holds
        self.outline: reader.Outline | None = None   # its sheets and defined names
        self.lesson = None                           # the lesson its sheets name
        self.areas: list[tuple] = []                 # the input areas LibreOffice reads first
        self.engine: Engine | None = None            # the LibreOffice recalculating it
        self.ticket: int | None = None               # the engine's number for this file
        self.loaded: reader.Recalculated | None = None        # the input areas, as LibreOffice loaded them
        self.recalculated: reader.Recalculated | None = None  # the whole workbook, recalculated
        self.device = None
        self.inputs: dict[str, np.ndarray] | None = None
        self.truths: dict[str, Truth] = {}
        self.diagnosis = None                        # where the mistakes are, when a value differs

    def _refuse(self, message: str) -> LessonxlError:
        return LessonxlError(message if message.startswith(f"{self.path}:") else f"{self.path}: {message}")

    def recognise(self) -> None:
        """Refuse, before LibreOffice starts, a file whose sheets are no lessonxl workbook's."""
        catalog.recognise(reader.sheet_names(self.staged.stripped, self.path), str(self.path))

    def identify(self) -> None:
        """The lesson the file's sheets name, and the input areas (from 0) LibreOffice reads first."""
        from .registry import by_sheets

        self.outline = reader.outline(self.staged.stripped, self.path)
        self.lesson = by_sheets(self.outline.sheetnames, str(self.path), self.outline.names)
        self.report.workbook = self.lesson.name
        areas = [self.lesson.area_of(self.outline.names, key) for key in self.lesson.inputs]
        self.areas = [(a.sheet, a.min_row - 1, a.min_col - 1, a.max_row - 1, a.max_col - 1) for a in areas if a]

    def truth(self, early: dict, device) -> None:
        """torch's truth for every quantity, from the inputs as LibreOffice loaded them (`Engine.inputs`;
        formula inputs with the values it computed)."""
        self.loaded = reader.Recalculated(self.outline, early, self.staged.logical)
        self.device = device
        self.report.device = str(device)
        try:
            self.inputs = reader.read_inputs(self.lesson, self.loaded, self.loaded)
        except LessonxlError as error:
            raise self._refuse(str(error)) from None
        values, scales = self._torch()
        self.truths = {key: Truth(value, scales.get(key)) for key, value in values.items()}

    def _spread(self) -> None:
        """Mark where torch's values came from an inf or a nan, as a sheet's error values spread."""
        spread, _ = self._torch(spreadsheet_errors=True)
        self.truths = {key: replace(truth, spread=np.isnan(spread[key])) for key, truth in self.truths.items()}

    def _known(self, *more) -> tuple:
        """What a result computed from this file's inputs alone depends on: the lesson as the file has it,
        the device, the inputs' exact bytes (and `more`)."""
        return (type(self.lesson).__name__, self.lesson.name, tuple(spec.name for spec in self.lesson.specs),
                str(self.device), _fingerprint(self.inputs), *more)

    def _torch(self, spreadsheet_errors: bool = False):
        known = self._known(spreadsheet_errors)
        if known in _TRUTHS:  # the same inputs again: a class's copies of one exercise, a save under --watch
            values, scales = _TRUTHS[known]
            return {key: value.copy() for key, value in values.items()}, dict(scales)
        try:
            values, scales = self.lesson.expected(self.inputs, self.device, spreadsheet_errors)
        except LessonxlError as error:
            raise self._refuse(str(error)) from None
        except (ValueError, RuntimeError, IndexError, TypeError, ArithmeticError) as error:
            raise self._refuse(f"torch cannot compute from this workbook's inputs "
                               f"({type(error).__name__}: {error})") from None
        _TRUTHS.keep(known, (values, scales))
        return {key: value.copy() for key, value in values.items()}, dict(scales)

    def _area(self, key: str) -> reader.Area:
        area = self.lesson.area_of(self.outline.names, key)
        if area is None:
            raise self._refuse(f"the defined name {key} is missing")
        return area

    def finish(self, reply: dict, atol: float, rtol: float) -> None:
        """Compare the recalculated workbook (the engine's `reply`) with torch and list the formula cells
        left uncovered."""
        self.recalculated = computed = reader.Recalculated(self.outline, reply, self.staged.logical)
        saver = last_saver(self.staged.saved)
        saved = reader.Snapshot(self.staged.saved, self.path, data_only=True).cells if saver.evidence else None
        checks, saved_checks = self._compare(computed.cells, atol, rtol, saved)
        if any(check.sheet_errors > check.non_finite for check in [*checks, *saved_checks]) and \
                not exercise.has_empty_cells(self.lesson, computed):
            # Error values where torch has numbers: find where torch's values came from an overflow (not
            # in an exercise not yet filled in: its error values come from its empty cells).
            self._spread()
            checks, saved_checks = self._compare(computed.cells, atol, rtol, saved)
        self.report.checks = checks
        if not all(check.passed for check in checks):
            try:
                self._diagnose(checks, atol, rtol)
            except Exception:  # noqa: BLE001 (a fault in the diagnosis must not cost the verdict: the
                # report then lists the differing quantities, as before there was one)
                self.diagnosis, self.report.findings, self.report.inherited = None, [], 0
        if exercise.is_exercise(self.outline.sheetnames, self.lesson.name):
            diagnosed = self.diagnosis is not None or all(check.passed for check in checks)
            self.report.grade = exercise.grade(self.lesson, computed, checks,
                                               self.report.findings if diagnosed else None)
        self.report.saved = SavedValues(saver.name, saver.evidence, saver.why_not, saved_checks,
                                        self._missing(saved) if saved is not None else 0)
        covered = self._covered()
        formulas = computed.formulas_by_sheet
        self.report.formula_cells = sum(map(len, formulas.values()))
        self.report.uncovered = [reader.address(sheet, *cell) for sheet in computed.cells
                                 for cell in sorted(formulas.get(sheet, set()) - covered.get(sheet, set()))]

    def _covered(self) -> dict[str, set[tuple[int, int]]]:
        """The cells of every verified quantity and input, by sheet."""
        known = (type(self.lesson).__name__, self.lesson.name, tuple(self.truths), tuple(self.lesson.inputs),
                 tuple(sorted(self.outline.names.items())))
        if known not in _COVERED:  # the same for a class's copies of one exercise
            covered: dict[str, set] = {}
            for key in [*self.truths, *self.lesson.inputs]:
                area = self._area(key)
                covered.setdefault(area.sheet, set()).update(area.cells())
            _COVERED.keep(known, covered)
        return _COVERED[known]

    def _diagnose(self, checks: list[Check], atol: float, rtol: float) -> None:
        """Where the mistakes are (`diagnose`): the differing cells whose own formula is wrong, not those
        that only read a wrong cell; each with lessonxl's formula evaluated on the sheet's own values."""
        from . import diagnose

        areas: dict[str, list[tuple[reader.Area, str]]] = {}
        for key in self.truths:
            area = self._area(key)
            areas.setdefault(area.sheet, []).append((area, key))
        index: dict[str, dict[tuple[int, int], tuple[str, int, int]]] = {}

        def owner(sheet: str, row: int, col: int) -> tuple[str, int, int] | None:
            """The key of the verified quantity a cell belongs to, and the cell's place in it."""
            if sheet not in index:
                index[sheet] = {(r, c): (key, r - area.min_row, c - area.min_col)
                                for area, key in areas.get(sheet, ()) for r, c in area.cells()}
            return index[sheet].get((row, col))

        def truth_at(sheet: str, row: int, col: int):
            found = owner(sheet, row, col)
            if found is None:
                return None
            key, r, c = found
            truth = self.truths[key]
            value = truth.value[r, c]
            return (value if isinstance(value, str) else float(value),  # a label (a title) is text
                    None if truth.scale is None else float(truth.scale[r, c]),
                    bool(truth.spread is not None and truth.spread[r, c]))

        def quantity_at(sheet: str, row: int, col: int) -> str:
            found = owner(sheet, row, col)
            return found[0] if found else ""

        read: dict[str, dict] = {}

        def formulas_of(sheet: str) -> dict:
            if sheet not in read:
                read.update(diagnose.read_formulas(self.staged.stripped, self.outline.parts, [sheet]))
                read.setdefault(sheet, {})
            return read[sheet]

        names = diagnose.file_names(self.staged.stripped)
        values = {**self.inputs, **{key: truth.value for key, truth in self.truths.items()}}
        known = self._known(tuple(sorted(self.outline.names.items())))
        if known not in _LAYOUTS:  # 1.3 s for graddesc: laid out once for a class's copies of one exercise
            _LAYOUTS.keep(known, diagnose.lessonxl_layout(self.lesson, values, self.outline.names))
        layout = _LAYOUTS[known]
        self.diagnosis = diagnose.diagnose(checks, self.recalculated.cells, truth_at, quantity_at, formulas_of,
                                           names, layout, atol, rtol, self.outline.sheetnames)
        self.report.findings = self.diagnosis.findings
        self.report.inherited = self.diagnosis.inherited

    def annotate(self, folder: Path, hint: bool) -> None:
        """Write the marked-up copy into `folder` (`annotate`): the mistakes red with a comment, the
        cells that differ because of them pink. A file that passes gets none (an earlier copy of it is
        removed)."""
        from . import annotate
        from .diagnose import place_of
        from .report import MISTAKES_SHOWN, cell_comment

        target = folder / self.path.name
        if self.diagnosis is None or not self.diagnosis.findings:
            if target.exists() and self.report.error is None:
                annotate.check_target(self.path, target)  # never another file of that name
                target.unlink()
            return
        marks, comments = {}, {}
        for place in self.diagnosis.inherited_cells:
            marks[place] = annotate.PINK
        for finding in self.diagnosis.findings:
            for where in finding.cells:
                place = place_of(where)
                marks[place] = annotate.RED
                comments[place] = cell_comment(finding, *self.diagnosis.details[place], hint)
        # The first cell of each finding (as many as the report names) shows its comment open.
        shown = {place_of(finding.first) for finding in self.diagnosis.findings[:MISTAKES_SHOWN]}
        annotate.write(self.staged.saved, target, self.outline.parts, marks, comments, shown)
        self.report.annotated = str(target)

    def _missing(self, saved: Mapping[str, Mapping]) -> int:
        return sum(saved.get(area.sheet, {}).get(cell) is None
                   for area in map(self._area, self.truths) for cell in area.cells())

    def _compare(self, cells: Mapping[str, Mapping], atol: float, rtol: float,
                 saved: Mapping[str, Mapping] | None) -> tuple[list[Check], list[Check]]:
        """Every quantity compared with torch: as LibreOffice recalculated it, and (where `saved` is
        given) as the application that saved the file computed it, in the cells that hold a value."""
        formulas = self.recalculated.formulas_by_sheet
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
        """Why a quantity's cells no longer fit what torch computes from the inputs, in a user's words:
        the inputs that hold torch's new length where the sheet's formulas have another."""
        was = {new: old for new, old in zip(computed, area.shape) if new != old}
        grown = []
        for name, value in self.inputs.items():
            shape = np.shape(as_grid(value))
            made_for = tuple(was.get(length, length) for length in shape)
            if made_for != shape:
                grown.append(f"{name_of(name)} holds {_cells(shape)} where the workbook was made for "
                             f"{_cells(made_for)}")
        return (f"{'; '.join(grown) + ', so ' if grown else ''}torch computes {key} as {_cells(computed)}, "
                f"but the sheet has formulas for {_cells(area.shape)}. A workbook's size is fixed when lessonxl "
                f"generates it (cells added to an input range get no formulas): remove the added cells, or "
                f"{self.lesson.resize_hint}")


class _Recent(dict):
    """The last few results computed in this process for a file (from its inputs: `_Job._known`; from its
    defined names): 100 submissions of one exercise share them, and torch's 0.7 s for a graddesc workbook
    is a third of its verification (its layout for the diagnosis, 1.3 s more for a file with a mistake)."""

    KEPT = 4

    def keep(self, key: tuple, value) -> None:
        self[key] = value
        while len(self) > self.KEPT:
            self.pop(next(iter(self)))  # the oldest


_TRUTHS, _LAYOUTS, _COVERED = _Recent(), _Recent(), _Recent()


def _fingerprint(inputs: Mapping[str, object]) -> tuple:
    """The inputs, exactly: each one's name, type, shape and bytes (labels as their text)."""
    def exact(grid: np.ndarray):
        return repr(grid.tolist()) if grid.dtype == object else grid.tobytes()
    return tuple((key, str(grid.dtype), grid.shape, exact(grid))
                 for key, grid in sorted((key, np.asarray(value)) for key, value in inputs.items()))


def _cells(shape: tuple[int, int]) -> str:
    return f"{shape[0]} x {shape[1]} cells"


def verify_paths(paths: Sequence[Path], device: str = "auto", atol: float = DEFAULT_TOL,
                 rtol: float = DEFAULT_TOL, timeout: float = DEFAULT_TIMEOUT,
                 progress: Callable[[str], None] = lambda stage: None, annotate: Path | None = None,
                 hint: bool = False, jobs: int = 1) -> Reports:
    """Verify each workbook; a report per path, in order. Unusable files get a report with `error`.

    `progress` is told each stage as it starts ("recalculating ...", "comparing x.xlsx ...", ...).
    `annotate`: a folder for a marked-up copy of each file that differs (`_Job.annotate`; `hint`: with
    lessonxl's formula in each mistake's comment). `jobs`: LibreOffice processes recalculating at once,
    the files dealt out in turn (at most one per file).
    """
    with tempfile.TemporaryDirectory(prefix="lessonxl-verify-") as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        engines: list[Engine | None] = [None] * max(1, min(jobs, len(paths)))

        def started(number: int) -> Engine:
            slot = number % len(engines)
            if engines[slot] is None:
                engines[slot] = Engine(folder / f"engine{slot}", timeout, run_folder=folder)
                if slot == 0:
                    progress(f"recalculating {len(paths)} workbook{'s' * (len(paths) != 1)} with LibreOffice")
            return engines[slot]

        try:
            return verify_in(started, paths, folder / "in", device, atol, rtol, progress, annotate, hint)
        finally:
            for engine in engines:
                if engine is not None:
                    engine.close()


def verify_in(engine: Callable[[int], Engine], paths: Sequence[Path], folder: Path, device: str = "auto",
              atol: float = DEFAULT_TOL, rtol: float = DEFAULT_TOL,
              progress: Callable[[str], None] = lambda stage: None, annotate: Path | None = None,
              hint: bool = False) -> Reports:
    """Verify each workbook in the LibreOffice that `engine(n)` gives for the n-th file it recalculates
    (asked when that file needs it: it may start one then, or give one already running), staging copies
    into `folder`; a report per path, in order. `verify_paths` and `verify --watch` are this with their
    own LibreOffice."""
    paths = [Path(path) for path in paths]
    if annotate is not None:
        _check_annotate(annotate, paths)
    reports, jobs = Reports(), []
    for index, path in enumerate(paths):
        job = _Job(path)
        reports.append(job.report)
        # LibreOffice starts with the first file that needs it (while the lessons and torch are
        # imported), and recalculates each file as soon as it is staged.
        if _attempt(job, _copy, job, folder, index, annotate) and _attempt(job, job.recognise):
            job.engine = engine(len(jobs))
            if _attempt(job, job.identify):
                job.ticket = job.engine.submit(job.staged.stripped, job.areas)
                jobs.append(job)
    _run(jobs, device, atol, rtol, progress, annotate, hint)
    return reports


def _check_annotate(folder: Path, paths: Sequence[Path]) -> None:
    """--annotate DIR: a folder (made when missing), and one copy per file name."""
    if folder.exists() and not folder.is_dir():
        raise LessonxlError(f"--annotate {folder}: is a file, not a folder")
    seen: dict[str, Path] = {}
    for path in paths:
        if path.name in seen and seen[path.name] != path:
            raise LessonxlError(f"--annotate: {seen[path.name]} and {path} have the same name, and so would their "
                                "marked-up copies; verify them one at a time")
        seen[path.name] = path


def _copy(job: _Job, folder: Path, index: int, annotate: Path | None = None) -> None:
    if annotate is not None:
        from .annotate import check_target

        check_target(job.path, annotate / job.path.name)
    job.staged = files.stage(job.path, folder, index)


def _run(jobs: Sequence[_Job], device: str, atol: float, rtol: float, progress: Callable[[str], None],
         annotate: Path | None = None, hint: bool = False) -> None:
    """Take each submitted job's recalculated workbook from its engine, compare it with torch and annotate
    it (into `annotate`, where given); then keep only its report (40 graddesc files, each recalculated
    workbook kept to the end, held 1.1 GB; 100 now peak at 0.45 GB)."""
    if not jobs:
        return
    progress(f"recalculating {len(jobs)} workbook{'s' * (len(jobs) != 1)} with LibreOffice")
    # torch is imported while LibreOffice starts and loads: the two overlap on a multi-core machine.
    from .lesson import pick_device

    chosen = pick_device(device)
    for number, job in enumerate(jobs):
        if job.report.error:  # its LibreOffice failed on a file before it
            continue
        counted = f" ({number + 1} of {len(jobs)})" if len(jobs) > 1 else ""
        try:
            # torch computes from the inputs while LibreOffice recalculates the whole workbook and reads
            # it back (and goes on to the next file).
            early = _timed(job, job.engine.inputs, job.ticket)
            progress(f"computing {job.path.name} with torch{counted}")
            truth = _attempt(job, job.truth, early, chosen)
            reply = _timed(job, job.engine.result, job.ticket)
        except EngineFailure as error:  # LibreOffice hung or crashed: every file it had not done says so
            for rest in jobs[number:]:
                if rest.engine is job.engine:
                    rest.report.error = f"{rest.path}: {error}"
            continue
        except LessonxlError as error:
            job.report.error = job.report.error or str(job._refuse(str(error)))
            continue
        if truth:
            progress(f"comparing {job.path.name}{counted}")
            if _attempt(job, job.finish, reply, atol, rtol) and annotate is not None:
                _attempt(job, job.annotate, annotate, hint)
        job.loaded = job.recalculated = job.diagnosis = None


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
    except LessonxlError as error:
        job.report.error = str(error)
        return False
    finally:
        job.report.seconds += time.perf_counter() - begun
