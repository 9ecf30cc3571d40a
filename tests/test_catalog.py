"""The command line's catalog (what `list`, `--help` and name checks know without torch) against the
lessons themselves, and the command line's start-up: which heavy modules a quick command imports, and
how `main` ends when called as a function."""

from __future__ import annotations

import subprocess
import sys

from lessonxl import catalog
from lessonxl.registry import LESSONS

HEAVY = ("torch", "numpy", "openpyxl", "pandas", "xlsxwriter")


def entry(lesson) -> str:
    """The catalog line to paste for `lesson`, printed when the two disagree."""
    return f"{lesson.name!r}: ({lesson.title!r}, {dict(lesson.sheets)!r}),"


def test_the_catalog_is_the_registered_lessons_table_of_contents():
    assert catalog.NAMES == tuple(lesson.name for lesson in LESSONS)
    for lesson in LESSONS:
        title, sheets = catalog.CONTENTS[lesson.name]
        assert (title, sheets) == (lesson.title, dict(lesson.sheets)), (
            f"lessonxl/catalog.py CONTENTS is out of date; its entry for {lesson.name} is:\n{entry(lesson)}")


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def imported_by(argv: list[str]) -> set[str]:
    """The heavy modules loaded when the command line runs `argv` (a SystemExit from --help included)."""
    code = (f"import sys\nfrom lessonxl.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))")
    done = run(code)
    assert done.returncode == 0, done.stderr
    return set(eval(done.stdout.strip().splitlines()[-1]))


def test_list_and_help_import_neither_torch_nor_numpy_nor_openpyxl():
    for argv in (["list"], ["--help"], ["verify", "--help"], ["generate", "--help"], ["--version"]):
        assert imported_by(argv) == set(), argv


def test_list_prints_every_workbook_and_sheet():
    done = subprocess.run([sys.executable, "-m", "lessonxl", "list"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for lesson in LESSONS:
        assert f"{lesson.filename}: {lesson.title}" in done.stdout
        for sheet, what in lesson.sheets.items():
            assert f"  {sheet:<18} {what}" in done.stdout


def test_import_lessonxl_is_quick_and_its_api_loads_on_first_use():
    done = run("import sys, lessonxl\nbefore = 'lessonxl.api' in sys.modules\nlessonxl.read\n"
               "print(before, 'lessonxl.api' in sys.modules, callable(lessonxl.verify), callable(lessonxl.watch))")
    assert done.stdout.split() == ["False", "True", "True", "True"], done.stderr


def test_main_called_as_a_function_returns_and_python_exits_normally():
    done = run("import atexit\nfrom lessonxl.cli import main\natexit.register(print, 'atexit ran')\n"
               "print('main returned', main(['list']))")
    assert done.returncode == 0
    assert "main returned 0" in done.stdout and done.stdout.rstrip().endswith("atexit ran")
    module = subprocess.run([sys.executable, "-c", "import atexit, runpy; atexit.register(print, 'atexit ran'); "
                             "runpy.run_module('lessonxl', run_name='__main__')", "list"],
                            capture_output=True, text=True, timeout=120)
    assert module.returncode == 0 and module.stdout.rstrip().endswith("atexit ran")
