"""`lessonxl verify --watch`: a watcher started as a user starts it, files saved under it.

Each save gets one verdict line (PASS/FAIL/ERROR, like verify's summary line, with the seconds); a file
caught half-written gets none until it is whole; Ctrl-C and SIGTERM end it as verify ends (130, 143)
with no LibreOffice, temporary file or socket left behind.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import formula_cells_xml, mutate_formula, run_cli, set_value
from test_hostile import defined_cell


class Watcher:
    """`python -m lessonxl verify --watch --device cpu PATHS` with TMPDIR of its own; its stdout lines."""

    def __init__(self, paths: list[Path], scratch: Path):
        self.scratch = scratch
        scratch.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lessonxl", "verify", "--watch", "--device", "cpu", *map(str, paths)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(scratch)})
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stdout], daemon=True).start()

    def next_line(self, timeout: float = 120) -> str:
        try:
            return self.lines.get(timeout=timeout).rstrip("\n")
        except queue.Empty:
            raise AssertionError("the watcher said nothing") from None

    def verdict(self, path: Path, timeout: float = 120) -> str:
        """The next PASS/FAIL/ERROR line on `path` (lines in between, a failure's details, are skipped)."""
        while True:
            line = self.next_line(timeout)
            if re.match(rf"(PASS|FAIL|ERROR) {re.escape(str(path))}:", line):
                return line

    def quiet(self, seconds: float) -> list[str]:
        """Every line said within `seconds`."""
        said, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                said.append(self.lines.get(timeout=left))
            except queue.Empty:
                pass
        return said

    def stop(self, signum: int) -> tuple[int, str]:
        self.process.send_signal(signum)
        _, err = self.process.communicate(timeout=60)
        return self.process.returncode, err


def save(source: Path, path: Path) -> None:
    """Save `source` as `path` as spreadsheet applications do: a new file moved into place."""
    partial = path.with_name(path.name + ".saving")
    shutil.copyfile(source, partial)
    os.replace(partial, path)


def nothing_left(watcher: Watcher) -> None:
    assert sorted(p.name for p in watcher.scratch.iterdir() if p.name != "torchinductor_root") == []
    assert not list(Path("/tmp").glob(f"OSL_PIPE_{os.getuid()}_lessonxl_{watcher.process.pid}_*"))
    soffice = subprocess.run(["pgrep", "-f", str(watcher.scratch)], capture_output=True, text=True)
    assert soffice.stdout == "", "LibreOffice outlived the watcher"


def test_a_watcher_verifies_each_save_and_stops_cleanly_on_ctrl_c(generated, tmp_path):
    source = generated["entropy_example"]
    path = tmp_path / "mine.xlsx"
    shutil.copyfile(source, path)
    watcher = Watcher([path], tmp_path / "tmp")
    try:
        first = watcher.verdict(path)
        assert first.startswith(f"PASS {path}: entropy_example, 249 of 249 formula cells equal torch"), first
        assert re.search(r", \d+\.\d s$", first)

        # An input changed and saved: verified again with the new input.
        edited = tmp_path / "edited.xlsx"
        cell = defined_cell(source, "softmax", "logits")
        set_value(source, edited, "softmax", cell, 7.5)
        save(edited, path)
        assert watcher.verdict(path).startswith(f"PASS {path}: entropy_example, 249 of 249")

        # A wrong formula saved: FAIL, the cell named on the next line (the mistake), then what it feeds.
        wrong = tmp_path / "wrong.xlsx"
        sheet, cell = next((s, c) for s, c in formula_cells_xml(source) if s == "softmax")
        mutate_formula(source, wrong, sheet, cell)
        save(wrong, path)
        line = watcher.verdict(path)
        assert line.startswith(f"FAIL {path}: entropy_example, "), line
        details = watcher.quiet(0.5)  # as verify prints them
        assert details[0].startswith(f"  the mistake is at softmax!{cell} ("), details
        assert all(line.startswith("  ") for line in details), details

        # Half a file (a save caught mid-way) gets no verdict; the whole file, once there, does.
        data = source.read_bytes()
        with path.open("wb") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            assert watcher.quiet(1.0) == []
            handle.write(data[len(data) // 2:])
        assert watcher.verdict(path).startswith(f"PASS {path}: ")
    finally:
        code, err = watcher.stop(signal.SIGINT)
    assert code == 130, err
    assert "Traceback" not in err
    nothing_left(watcher)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_watcher_ends_on_sigterm_and_sighup_leaving_nothing(generated, tmp_path, signum):
    path = tmp_path / "mine.xlsx"
    shutil.copyfile(generated["entropy_example"], path)
    watcher = Watcher([path], tmp_path / "tmp")
    assert watcher.verdict(path).startswith("PASS")
    code, err = watcher.stop(signum)
    assert code == 128 + signum, err
    assert "Traceback" not in err and err == ""
    nothing_left(watcher)


def test_a_file_saved_broken_is_one_error_line_and_the_watch_goes_on(generated, tmp_path):
    path = tmp_path / "mine.xlsx"
    shutil.copyfile(generated["entropy_example"], path)
    watcher = Watcher([path], tmp_path / "tmp")
    try:
        assert watcher.verdict(path).startswith("PASS")
        path.write_text("not a workbook\n")
        assert watcher.verdict(path) == f"ERROR {path}: is a text file, not an .xlsx workbook"
        save(generated["entropy_example"], path)
        assert watcher.verdict(path).startswith("PASS")
    finally:
        code, _ = watcher.stop(signal.SIGINT)
    assert code == 130


def test_watch_is_in_the_help():
    result = run_cli("verify", "--help")
    assert "--watch" in result.stdout and "saved" in result.stdout
