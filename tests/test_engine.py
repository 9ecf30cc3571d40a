"""The recalculation engine (`recalc.Engine`): LibreOffice kept running and read back through its API.

What it reads back must be what LibreOffice computes, in the form verify has always used (what a
LibreOffice-saved .xlsx file holds, read by openpyxl): numbers, texts, and error cells as the error value
an .xlsx file stores (#NUM!, #DIV/0!, ...). And it must fail as LibreOffice fails, in one line: hung,
crashed, a bridge that cannot start.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import openpyxl
import pytest

from lessonxl import files, reader, recalc
from lessonxl.errors import LessonxlError
from lessonxl.recalc import Engine, EngineFailure

from conftest import run_cli, set_value
from libreoffice import Recalculation
from test_hostile import _alive, fake_soffice

ERRORS = ["=1/0", "=LN(-1)", "=SQRT(-1)", '="a"+1', "=NA()", "=EXP(1000)", "=1E300*1E300", "=FACT(200)",
          "=#REF!", "=NOSUCHFUNCTION(1)", "=MATCH(99,B1:B3,0)", "=INDEX(B1:B3,5)", "=ACOS(2)", "=LN(0)",
          "=A1", "=SUM(A1:A4)"]
OTHERS = ['=""', '="x"', "=1/3", "=2^0.5", "=-0", "=10^15+1", "=B1*1E-300"]


def staged(path: Path, folder: Path, index: int = 0) -> files.Staged:
    (folder / "in").mkdir(parents=True, exist_ok=True)
    return files.stage(path, folder / "in", index)


def both_ways(paths: list[Path], folder: Path) -> list[tuple[reader.Recalculated, reader.Snapshot, reader.Snapshot]]:
    """Each workbook recalculated by the engine, by the conversion path (soffice --convert-to, read by
    openpyxl), and as openpyxl reads its formulas."""
    copies = [staged(path, folder, i) for i, path in enumerate(paths)]
    converted = Recalculation([copy.stripped for copy in copies], folder / "converted").wait()
    results = []
    with Engine(folder / "engine") as engine:
        for path, copy in zip(paths, copies):
            outline = reader.outline(copy.stripped, path)
            _, whole = engine.recalculate(copy.stripped)
            results.append((reader.Recalculated(outline, whole, copy.logical),
                            reader.Snapshot(converted[copy.stripped], path, data_only=True),
                            reader.Snapshot(copy.stripped, path)))
    return results


def same(engine_value, converted_value) -> bool:
    """Equal, but for the digits the conversion path rounds away (LibreOffice writes 15 significant
    digits into an .xlsx file; the engine reads the double itself)."""
    if isinstance(engine_value, (int, float)) and isinstance(converted_value, (int, float)):
        return math.isclose(engine_value, converted_value, rel_tol=1e-14, abs_tol=1e-300)
    return engine_value == converted_value


def test_values_and_error_values_equal_the_conversion_paths(tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "it's"  # a quote in the sheet's name: the error values are read through formulas naming it
    for row, formula in enumerate(ERRORS + OTHERS, 1):
        sheet.cell(row, 1).value = formula
        sheet.cell(row, 2).value = row
    path = tmp_path / "errors.xlsx"
    book.save(path)
    [(computed, converted, formulas)] = both_ways([path], tmp_path)
    values = computed.cells["it's"]
    for row, formula in enumerate(ERRORS + OTHERS, 1):
        assert same(values.get((row, 1)), converted.value("it's", row, 1)), (formula, values.get((row, 1)))
    shown = {formula: values.get((row, 1)) for row, formula in enumerate(ERRORS, 1)}
    assert shown == {"=1/0": "#DIV/0!", "=LN(-1)": "#VALUE!", "=SQRT(-1)": "#VALUE!", '="a"+1': "#VALUE!",
                     "=NA()": "#N/A", "=EXP(1000)": "#NUM!", "=1E300*1E300": "#NUM!", "=FACT(200)": "#VALUE!",
                     "=#REF!": "#REF!", "=NOSUCHFUNCTION(1)": "#NAME?", "=MATCH(99,B1:B3,0)": "#N/A",
                     "=INDEX(B1:B3,5)": "#VALUE!", "=ACOS(2)": "#NUM!", "=LN(0)": "#VALUE!", "=A1": "#DIV/0!",
                     "=SUM(A1:A4)": "#DIV/0!"}
    assert computed.formulas == formulas.formulas


def test_a_blown_up_workbook_reads_back_as_converted(generated, tmp_path):
    """graddesc with lr = 1e300: thousands of #NUM! cells, every one as the conversion path has it."""
    from test_hostile import defined_cell
    source = generated["graddesc"]
    path = tmp_path / "huge_lr.xlsx"
    set_value(source, path, "basic", defined_cell(source, "basic", "lr"), 1e300)
    [(computed, converted, formulas)] = both_ways([path], tmp_path)
    assert computed.formulas == formulas.formulas
    assert computed.sheetnames == formulas.sheetnames and computed.names == formulas.names
    errors = 0
    for sheet, cells in converted.cells.items():
        for cell, value in cells.items():
            assert same(computed.cells[sheet].get(cell), value), (sheet, cell, value)
            errors += isinstance(value, str) and value.startswith("#")
    assert errors > 1000


def test_every_workbook_reads_back_as_converted(generated, tmp_path):
    for computed, converted, formulas in both_ways(list(generated.values()), tmp_path):
        assert computed.formulas == formulas.formulas
        for sheet, cells in converted.cells.items():
            assert all(same(computed.cells[sheet].get(cell), value) for cell, value in cells.items()), sheet


def test_a_workbook_libreoffice_cannot_open_is_its_own_error(generated, tmp_path):
    with Engine(tmp_path) as engine:
        with pytest.raises(LessonxlError, match="LibreOffice could not open the workbook") as refused:
            engine.recalculate(tmp_path / "nowhere.xlsx")
        assert not isinstance(refused.value, EngineFailure)
        copy = staged(generated["entropy_example"], tmp_path)
        _, whole = engine.recalculate(copy.stripped)  # the engine goes on
        assert any(sheet["name"] == "softmax" for sheet in whole["sheets"])


def test_the_engine_leaves_no_process_and_no_socket(generated, tmp_path):
    copy = staged(generated["entropy_example"], tmp_path)
    engine = Engine(tmp_path / "run")
    engine.recalculate(copy.stripped)
    processes = [engine._soffice.pid, engine._bridge.pid]
    assert engine.pipes[1].is_socket(), "LibreOffice listens on the pipe --accept names"
    engine.close()
    assert not any(pipe.exists() for pipe in engine.pipes)
    assert not any(map(_alive, processes))
    found = subprocess.run(["pgrep", "-f", str(tmp_path / "run")], capture_output=True, text=True)
    assert found.stdout == ""


def test_a_hung_libreoffice_is_stopped_after_the_timeout(generated, tmp_path, monkeypatch):
    monkeypatch.setenv("LESSONXL_SOFFICE", str(fake_soffice(tmp_path, "sleep 300")))
    copy = staged(generated["entropy_example"], tmp_path)
    engine = Engine(tmp_path / "run", timeout=2)
    with pytest.raises(EngineFailure, match="LibreOffice did not start within 2 s"):
        engine.recalculate(copy.stripped)
    assert engine.failed and engine._soffice.poll() is not None and engine._bridge.poll() is not None
    engine.close()


def _one_line(result, *needles):
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def fake_bridge(folder: Path, body: str) -> Path:
    """A stand-in for the bridge's Python: it passes the engine's `import uno` probe, then runs `body`."""
    return fake_soffice(folder, '[ "$1" = "-c" ] && exit 0\n' + body)


def test_a_python_without_the_bridge_says_how_to_install_it_once_before_libreoffice_starts(generated, tmp_path):
    """A Python that cannot import uno (this venv's own): one line for the whole run, how to install
    python3-uno, and LibreOffice (a script leaving a mark) never started."""
    mark = tmp_path / "started"
    env = {**os.environ, "LESSONXL_UNO_PYTHON": sys.executable,
           "LESSONXL_SOFFICE": str(fake_soffice(tmp_path, f"touch '{mark}'\nsleep 30"))}
    _one_line(run_cli("verify", "--device", "cpu", generated["entropy_example"], generated["graddesc"], env=env),
              f"{sys.executable} cannot import uno", "apt-get install python3-uno", "LESSONXL_UNO_PYTHON")
    assert not mark.exists()
    env = {**os.environ, "LESSONXL_UNO_PYTHON": "/no/such/python"}
    _one_line(run_cli("verify", "--device", "cpu", generated["entropy_example"], env=env),
              "LESSONXL_UNO_PYTHON=/no/such/python is not an executable", "python3-uno")


def test_a_crashed_bridge_is_one_line(generated, tmp_path):
    bridge = fake_bridge(tmp_path, "echo 'bridge: something went wrong' >&2\nexit 3")
    env = {**os.environ, "LESSONXL_UNO_PYTHON": str(bridge)}
    _one_line(run_cli("verify", "--device", "cpu", generated["entropy_example"], env=env),
              "LibreOffice's bridge", "stopped: bridge: something went wrong")


def test_a_bridge_that_writes_no_json_fails_at_once_saying_what_it_read(generated, tmp_path):
    """A line that is not the bridge's JSON (a library printing to stdout) ends the run at once, quoting
    the line, instead of waiting out --timeout for a reply that never comes."""
    bridge = fake_bridge(tmp_path, "echo 'Warning: something printed this'\nsleep 300")
    env = {**os.environ, "LESSONXL_UNO_PYTHON": str(bridge)}
    result = run_cli("verify", "--device", "cpu", "--timeout", "100", generated["entropy_example"], env=env)
    _one_line(result, "wrote a line that is not its JSON: 'Warning: something printed this'")


def _processes_started_in(folder: Path) -> list[int]:
    """The processes whose command line names `folder` (LibreOffice with its profile there)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if str(folder).encode() in Path(f"/proc/{pid}/cmdline").read_bytes() and _alive(int(pid)):
                found.append(int(pid))
        except OSError:
            pass
    return found


def _until(condition, seconds: float):
    deadline = time.monotonic() + seconds
    while not (result := condition()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return result


def test_kill_9_of_verify_leaves_no_libreoffice_no_socket_and_no_folder(generated, tmp_path):
    """verify killed with -9 (no handler runs): its bridge sees its input end, ends LibreOffice and
    removes the sockets and the run's temporary folder."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    verify = subprocess.Popen([sys.executable, "-m", "lessonxl", "verify", "--device", "cpu", str(generated["graddesc"])],
                              env={**os.environ, "TMPDIR": str(tmp)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        assert _until(lambda: _processes_started_in(tmp), 60), "LibreOffice did not start"
        [run] = list(tmp.iterdir())
        sockets = [recalc.ipc_pipe(run / "engine0" / "profile"), *Path("/tmp").glob(f"OSL_PIPE_{os.getuid()}_lessonxl_{verify.pid}_*")]
        assert _until(lambda: all(socket.is_socket() for socket in sockets), 60), sockets
    finally:
        verify.kill()
        verify.wait()
    assert _until(lambda: not _processes_started_in(tmp) and not list(tmp.iterdir()), 30), \
        (_processes_started_in(tmp), list(tmp.rglob("*"))[:5])
    assert not [socket for socket in sockets if socket.exists()]


def test_a_configured_soffice_that_is_no_executable_is_named_without_asking_to_set_it(generated, tmp_path):
    env = {**os.environ, "LESSONXL_SOFFICE": "/nope/soffice"}
    result = run_cli("verify", "--device", "cpu", generated["entropy_example"], env=env)
    _one_line(result, "LESSONXL_SOFFICE=/nope/soffice is not an executable: point it at LibreOffice's soffice, "
                      "or unset it")
    assert "or set LESSONXL_SOFFICE" not in result.stderr


def test_the_engine_gets_a_copy_without_saved_results_and_verify_reads_the_saved_one(generated, tmp_path):
    """The engine recalculates from nothing saved (`files.strip_cached_values`); everything else stays,
    charts included: without them, LibreOffice 7.4's recalculation on load gave 0 at graddesc's basic!E30
    where #NUM! belongs with lr = 1e300 (`test_a_blown_up_workbook_reads_back_as_converted`). The copy
    verify reads saved values from is the file itself."""
    copy = staged(generated["graddesc"], tmp_path)
    with zipfile.ZipFile(copy.saved) as saved, zipfile.ZipFile(copy.stripped) as stripped:
        assert saved.namelist() == stripped.namelist()
        sheets = [part for part in saved.namelist() if part.startswith("xl/worksheets/sheet")]
        before, after = (b"".join(book.read(part) for part in sheets) for book in (saved, stripped))
    assert b"</f><v>" in before and b"</f><v>" not in after
    assert before.count(b"<drawing ") == after.count(b"<drawing ") > 0
    assert before.count(b"<f>") == after.count(b"<f>") > 60_000
    assert generated["graddesc"].read_bytes() == copy.saved.read_bytes()
