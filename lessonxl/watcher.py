"""`lessonxl verify --watch`: verify workbooks, then verify each again every time it is saved.

LibreOffice (one `recalc.Engine`) and torch stay loaded between checks, so a re-check costs what the
workbook itself costs: copying it, LibreOffice loading and recalculating it, torch, the comparison. Files
are polled (modification time and size; no new dependency). A save is checked once it is finished: the
file must stay the same for a moment and be a complete zip archive, and a file that changes while it is
being checked is checked again, so a half-written file never gets a verdict.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Callable, Sequence

from .catalog import DEFAULT_TOL
from .report import Reports
from .pipeline import verify_in
from .recalc import DEFAULT_TIMEOUT, Engine

POLL = 0.05      # seconds between looks at the files
SETTLE = 0.05    # a file unchanged for this long (and a complete zip: its directory is written last) is saved
PATIENCE = 2.0   # a file that stays incomplete this long is checked anyway (and refused, in one line)


def _signature(path: Path):
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


def _complete(path: Path) -> bool:
    """Whether the file is a whole zip archive (its central directory, written last, is there)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False


class Watcher:
    """Verifies workbooks with one warm LibreOffice and a warm torch; `check` verifies files now."""

    def __init__(self, folder: Path, device: str = "auto", tol: float = DEFAULT_TOL,
                 timeout: float = DEFAULT_TIMEOUT, annotate: Path | None = None, hint: bool = False):
        self.folder, self.device, self.tol, self.timeout = folder, device, tol, timeout
        self.annotate, self.hint = annotate, hint  # a marked-up copy of each file that differs (verify --annotate)
        self.engine: Engine | None = None
        self._count = 0

    def check(self, paths: Sequence[Path]) -> Reports:
        """Verify `paths` as `lessonxl verify` does, in this watcher's LibreOffice (started again when it
        has gone: a LibreOffice that died while idle costs one retry, not a verdict)."""
        for attempt in (1, 2):
            reports, failed = self._check(paths)
            if not failed or attempt == 2:
                return reports
        return reports

    def _check(self, paths: Sequence[Path]) -> tuple[Reports, bool]:
        work = self.folder / f"check{self._count}"
        self._count += 1
        work.mkdir(parents=True)
        began = time.perf_counter()
        try:
            reports = verify_in(self._engine, paths, work, self.device, self.tol, self.tol,
                                annotate=self.annotate, hint=self.hint)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        failed = self.engine is not None and self.engine.failed
        if failed:
            self.close()
        if len(paths) == 1:
            reports[0].seconds = time.perf_counter() - began
        return reports, failed

    def _engine(self, number: int = 0) -> Engine:
        """The warm LibreOffice (for every file: `number` is the file's place), started on first need."""
        if self.engine is None:
            self.engine = Engine(self.folder / f"engine{self._count}", self.timeout, run_folder=self.folder)
        return self.engine

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def watch(paths: Sequence[Path], device: str = "auto", tol: float = DEFAULT_TOL,
          timeout: float = DEFAULT_TIMEOUT, on_reports: Callable[[Reports], None] = lambda r: None,
          until: Callable[[], bool] = lambda: False, poll: float = POLL, annotate: Path | None = None,
          hint: bool = False) -> None:
    """Verify `paths`, then each again every time it is saved; each verdict goes to `on_reports` (the
    first call has all files, then one per re-check). Runs until `until()` is true or it is interrupted
    (Ctrl-C: KeyboardInterrupt); LibreOffice and every temporary file go with it. `annotate`: a folder
    where each check writes the file's marked-up copy (`verify --annotate`)."""
    paths = [Path(p) for p in paths]
    with tempfile.TemporaryDirectory(prefix="lessonxl-watch-") as tmp:
        watcher = Watcher(Path(tmp), device, tol, timeout, annotate, hint)
        try:
            seen = {path: _signature(path) for path in paths}
            on_reports(watcher.check(paths))
            pending: dict[Path, tuple] = {}  # a file changing: its signature and since when
            while not until():
                time.sleep(poll)
                for path in paths:
                    signature = _signature(path)
                    if signature == seen[path]:
                        pending.pop(path, None)
                        continue
                    now = time.monotonic()
                    if path not in pending or pending[path][0] != signature:
                        pending[path] = (signature, now)
                        continue
                    waited = now - pending[path][1]
                    if waited < SETTLE or (waited < PATIENCE and not (signature and _complete(path))):
                        continue
                    reports = watcher.check([path])
                    if _signature(path) != signature:
                        continue  # saved again while it was checked: that save gets the verdict
                    seen[path] = signature
                    pending.pop(path, None)
                    on_reports(reports)
        finally:
            watcher.close()
