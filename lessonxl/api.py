"""lessonxl from Python, in a notebook or a script: generate workbooks, verify them, read them back.

The command line (`lessonxl generate`, `lessonxl verify`) is a thin layer over these functions. Every
problem with a file or an option raises `LessonxlError`, whose message is the command line's one line.

>>> import lessonxl
>>> paths = lessonxl.generate(["entropy_example"], out="wb")           # doctest: +SKIP
>>> reports = lessonxl.verify(paths)                                    # doctest: +SKIP
>>> reports.passed, reports.to_frame().head()                           # doctest: +SKIP
>>> book = lessonxl.read("wb/entropy_example.xlsx")                     # doctest: +SKIP
>>> book.frame("softmax!probs")                                         # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from . import catalog, files, reader, workers
from .catalog import DEFAULT_FOLDER, DEFAULT_TOL
from .errors import LessonxlError
from .recalc import DEFAULT_TIMEOUT, Engine
from .sameness import KEPT
from .values import defined_name, name_of
from .report import Reports
from .pipeline import verify_paths
from .watcher import watch as watch_files  # imported here: `lessonxl.watch` stays the function below

if TYPE_CHECKING:
    from .lesson import Written



def generate(names: Sequence[str] = (), out: str | Path = DEFAULT_FOLDER, seed: int = 0,
             device: str = "auto", force: bool = False, jobs: int | None = None, exercise: bool = False,
             easy: bool = False, **collab_options) -> list[Path]:
    """Write lesson workbooks (default: all) into `out`; the paths written or already up to date.

    `exercise`: their exercise versions instead, NAME_exercise.xlsx, with the blocks of `exercise.BLOCKS`
    left empty for a student (default: every workbook that has some); `easy`: the first row of each given.

    `collab_options` (`ratings`, `users`, `movies`, `factors`, `top`) build collab_filter from a MovieLens
    file (`top`: the most-rated movies its sheet top_movies ranks, from the lesson's model trained on all of it). A file that holds the same workbook is left as it is; a file edited since lessonxl wrote
    it is kept, and LessonxlError says so after the others are written, unless `force`. `jobs`
    workbooks are made at once, each in a worker process (default: one per idle CPU core,
    `workers.default_jobs`); 1 makes them one after another in this process, as on macOS and Windows.

    >>> lessonxl.generate(["graddesc"], out="my_workbooks", seed=7)     # doctest: +SKIP
    [PosixPath('my_workbooks/graddesc.xlsx')]
    """
    paths, kept = [], []
    for written in generate_each(names, out, seed, device, force, jobs, exercise, easy, **collab_options):
        (kept if written.status == KEPT else paths).append(written.path)
    if kept:
        raise LessonxlError(kept_message(kept))
    return paths


def _check_jobs(jobs: int | None) -> None:
    """Refuse a `jobs` (processes at once) that is not None nor a whole number of at least 1."""
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise LessonxlError(f"--jobs {jobs}: give a whole number of at least 1")


def generate_each(names: Sequence[str], out: str | Path, seed: int, device: str, force: bool,
                  jobs: int | None = None, exercise: bool = False, easy: bool = False,
                  **collab_options) -> Iterator[Written]:
    """Write each workbook (or its exercise version: see `generate`), yielding in the order asked its path,
    what was done (wrote, up to date or kept) and what to tell the user about it (`Lesson.generate_notes`)."""
    _check_jobs(jobs)
    catalog.check(names)  # before any work starts
    jobs = jobs or workers.default_jobs()
    if easy and not exercise:
        raise LessonxlError("--easy applies to exercises: add --exercise")
    level = ("easy" if easy else "plain") if exercise else None
    server = workers.Server() if jobs > 1 and len(names) != 1 and workers.available() and not exercise else None
    try:
        yield from _generate_each(names, Path(out), seed, device, force, jobs, server, collab_options, level)
    finally:
        if server:
            server.stop()


def _generate_each(names, out: Path, seed, device, force, jobs, server, collab_options,
                   exercise_level: str | None = None) -> Iterator[Written]:
    """`generate_each`'s work; `exercise_level` (None, "plain" or "easy"): the exercise versions, made here."""
    from .exercise import BLOCKS, exercise_for
    from .lesson import pick_device
    from .registry import LESSONS, by_name

    lessons = [by_name(name) for name in names] if names else \
        [lesson for lesson in LESSONS if exercise_level is None or lesson.name in BLOCKS]
    exercises = {lesson.name: exercise_for(lesson.name, exercise_level == "easy")
                 for lesson in lessons if exercise_level}  # refused here, before any work, when one has none
    options = {key: value for key, value in collab_options.items() if value is not None}
    if options and not any(lesson.name == "collab_filter" for lesson in lessons):
        raise LessonxlError(f"--{', --'.join(options)} appl{'ies' if len(options) == 1 else 'y'} to "
                            "collab_filter only, which is not among the workbooks asked for")
    if out.exists() and not out.is_dir():
        raise LessonxlError(f"--out {out}: is a file, not a folder")
    chosen = pick_device(device)
    tasks = [(lesson, options if lesson.name == "collab_filter" else {}) for lesson in lessons]
    if server:  # started only for two workbooks or more (all of them when none is named)
        made = server.make_all([(lesson.name, own) for lesson, own in tasks], seed, chosen.type,
                               min(jobs, len(tasks)))
    else:
        made = (lesson.make(seed, chosen, exercise=exercises.get(lesson.name), **own) for lesson, own in tasks)
    for (lesson, _), workbook in zip(tasks, made):
        yield lesson.save(out, workbook, force, exercises[lesson.name].filename if exercises else None)


def kept_message(paths: Sequence[Path]) -> str:
    """Why generate left files as they were (the command line's line)."""
    it, was = ("it", "it was") if len(paths) == 1 else ("them", "they were")
    return (f"kept {', '.join(map(str, paths))}: {was} edited since lessonxl wrote {it} (or lessonxl did not "
            f"write {it}); --force overwrites {it}, --out writes elsewhere")


def verify(paths: str | Path | Sequence[str | Path], device: str = "auto", tol: float = DEFAULT_TOL,
           timeout: float = DEFAULT_TIMEOUT, raise_on_error: bool = True,
           progress: Callable[[str], None] = lambda stage: None, annotate: str | Path | None = None,
           hint: bool = False, jobs: int | None = None) -> Reports:
    """Recalculate each workbook with LibreOffice and compare every formula cell with torch.

    Returns `Reports` (a list of `Report`, one per path) with `.passed`, `.exit_code`, `.to_frame()`;
    in a notebook they show as a table, failures first; a report's `findings` say where the mistakes
    are; an exercise file's (`generate --exercise`) has `.grade`, block by block. `annotate`: a folder for a
    marked-up copy of each file that differs (mistakes red, with a
    comment; `hint`: with lessonxl's own formula). A file that cannot be verified (not a
    workbook, a missing sheet, text where a number belongs) raises LessonxlError, unless
    `raise_on_error` is False: then its report carries `.error`. `jobs`: LibreOffice processes
    recalculating at once (default: `workers.verify_jobs`).

    >>> reports = lessonxl.verify("workbooks/graddesc.xlsx")            # doctest: +SKIP
    >>> reports.passed, reports.exit_code                               # doctest: +SKIP
    (True, 0)
    """
    _check_jobs(jobs)
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    reports = verify_paths([Path(p) for p in paths], device, atol=tol, rtol=tol, timeout=timeout,
                           progress=progress, annotate=None if annotate is None else Path(annotate), hint=hint,
                           jobs=workers.verify_jobs(len(paths)) if jobs is None else jobs)
    errors = [report.error for report in reports if report.error]
    if errors and raise_on_error:
        raise LessonxlError("; ".join(errors))
    return reports


def watch(paths: str | Path | Sequence[str | Path], device: str = "auto", tol: float = DEFAULT_TOL,
          timeout: float = DEFAULT_TIMEOUT, on_reports: Callable[[Reports], None] | None = None,
          until: Callable[[], bool] = lambda: False, annotate: str | Path | None = None,
          hint: bool = False) -> None:
    """Verify each workbook, then each again every time it is saved, with LibreOffice and torch kept
    warm (`lessonxl verify --watch`). Each verdict goes to `on_reports` (a `Reports`: all files first,
    then the file just saved; default: print each one's summary line). Runs until `until()` is true or it
    is interrupted (Ctrl-C; in a notebook, the stop button); LibreOffice and its files go with it.

    >>> lessonxl.watch("my_workbooks/graddesc.xlsx")                    # doctest: +SKIP
    PASS my_workbooks/graddesc.xlsx: graddesc, 64,455 of 64,455 formula cells equal torch (...), 2.1 s
    """
    from .report import summary_line

    def show(reports: Reports) -> None:
        for report in reports:
            print(summary_line(report), flush=True)

    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    watch_files([Path(p) for p in paths], device, tol, timeout, on_reports or show, until,
                annotate=None if annotate is None else Path(annotate), hint=hint)


@dataclass(frozen=True, repr=False)
class Workbook:
    """A workbook read back: its inputs as the file holds them, and every other defined name as
    LibreOffice recalculated it from those inputs (error values as nan)."""

    path: Path
    lesson: str
    inputs: dict[str, np.ndarray]
    values: dict[str, np.ndarray]

    def __repr__(self) -> str:
        """Two lines: what was read, and how to get at it (the arrays themselves would run to megabytes)."""
        cells = sum(np.size(grid) for grid in (*self.inputs.values(), *self.values.values()))
        return (f"<lessonxl.Workbook {str(self.path)!r}: {self.lesson}, {len(self.inputs)} inputs and "
                f"{len(self.values)} computed names, {cells:,} cells>\n"
                f"  .names, .grid(name), .tensor(name), .frame(name); e.g. name {self.names[0]!r}")

    @property
    def names(self) -> list[str]:
        return sorted({*self.inputs, *self.values})

    def grid(self, name: str) -> np.ndarray:
        """A defined name's cells as a 2-D array; `name` is `sheet!name` (or the workbook's own spelling of
        it, `sheet_name`), or just `name` when only one sheet has it."""
        key = self._key(name)
        return self.inputs[key] if key in self.inputs else self.values[key]

    def tensor(self, name: str, device: str = "cpu"):
        """A numeric defined name as a float64 torch tensor."""
        import torch

        return torch.as_tensor(np.asarray(self.grid(name), dtype=np.float64), device=device)

    def frame(self, name: str):
        """A defined name as a pandas DataFrame (rows and columns as the sheet lays them out)."""
        import pandas as pd

        return pd.DataFrame(self.grid(name))

    def _key(self, name: str) -> str:
        known = self.names
        if name in known:
            return name
        matches = [key for key in known if name_of(key) == name] or [
            key for key in known if defined_name(key) == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise LessonxlError(f"{self.path}: several sheets have {name}: say which, e.g. {matches[0]}")
        raise LessonxlError(f"{self.path}: has no defined name {name} (it has {', '.join(known[:8])}, ...)")


def read(path: str | Path, timeout: float = DEFAULT_TIMEOUT) -> Workbook:
    """Read a lesson workbook back, recalculated by LibreOffice: e.g. the trained embeddings of a
    workbook you edited.

    >>> book = lessonxl.read("workbooks/collab_filter.xlsx")            # doctest: +SKIP
    >>> book.tensor("gd_steps!user_factors_12").shape                    # doctest: +SKIP
    torch.Size([15, 5])
    """
    from .registry import by_sheets

    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="lessonxl-read-") as tmp:
        folder = Path(tmp)
        (folder / "in").mkdir()
        staged = files.stage(path, folder / "in", 0)
        copy = staged.stripped
        outline = reader.outline(copy, path)
        lesson = by_sheets(outline.sheetnames, str(path), outline.names)
        areas = [lesson.area_of(outline.names, key) for key in lesson.inputs]
        asked = [(a.sheet, a.min_row - 1, a.min_col - 1, a.max_row - 1, a.max_col - 1) for a in areas if a]
        with Engine(folder, timeout) as engine:
            try:
                early, whole = engine.recalculate(copy, asked)
            except LessonxlError as error:
                raise LessonxlError(f"{path}: {error}") from None
        loaded = reader.Recalculated(outline, early, staged.logical)
        computed = reader.Recalculated(outline, whole, staged.logical)
        try:
            inputs = reader.read_inputs(lesson, loaded, loaded)
        except LessonxlError as error:
            raise LessonxlError(f"{path}: {error}") from None
        former = {old: new for new, old in lesson.former_names.items()}
        values = {former.get(key, key): _recalculated(computed, area) for key, area in outline.names.items()
                  if former.get(key, key) not in inputs}
    return Workbook(path, lesson.name, inputs, values)


def _recalculated(computed: reader.Recalculated, area: reader.Area) -> np.ndarray:
    """A range's recalculated cells: floats (error values and blanks as nan), or labels where any."""
    cells = [[computed.value(area.sheet, row, col) for col in range(area.min_col, area.max_col + 1)]
             for row in range(area.min_row, area.max_row + 1)]
    numeric = all(isinstance(v, (int, float)) or v is None or str(v).startswith("#") for r in cells for v in r)
    if not numeric:
        return np.array(cells, dtype=object)
    return np.array([[np.nan if not isinstance(v, (int, float)) else float(v) for v in r] for r in cells])
