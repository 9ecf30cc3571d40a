"""Google Sheets-safe defined names, by construction: Sheets' named ranges are workbook-wide and it has
no `Sheet!name` syntax, so no defined name of a workbook is scoped to a sheet (no localSheetId), every
name is unique, and no formula (cell or chart) writes `Sheet!name`: a sheet's prefix is followed by a
cell or a range only. A sheet-scoped block of the lessons (`adam!lr`) is the global name `adam_lr`.

The lint reads the file's XML itself (not openpyxl's model of it), so that it sees what Sheets imports.
Run as a script, it counts what it finds: `python tests/test_names.py workbooks/*.xlsx`.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from lessonxl import reader
from lessonxl.registry import LESSONS, by_name
from lessonxl.values import defined_name, key_of

NAMES = [lesson.name for lesson in LESSONS]

_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_CHART = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"
_STRING = re.compile(r'"(?:[^"]|"")*"')
# A sheet's prefix (quoted or not) and what follows its "!".
_QUALIFIED = re.compile(r"('(?:[^']|'')+'|[A-Za-z_\\][\w.]*)!([\w$.:]*)")
_CELL = r"\$?[A-Za-z]{1,3}\$?[0-9]{1,7}"
_RANGE = re.compile(rf"{_CELL}(?::{_CELL})?|\$?[A-Za-z]{{1,3}}:\$?[A-Za-z]{{1,3}}|\$?[0-9]{{1,7}}:\$?[0-9]{{1,7}}")
# A bare name: not a sheet's prefix, not a function, not after "!" or inside a quoted sheet name.
_TOKEN = re.compile(r"(?<![\w.!$'])([A-Za-z_\\][\w.]*)(?![\w.(!'])")


def defined_names_xml(path: Path) -> list[dict]:
    """Every <definedName> of xl/workbook.xml: name, localSheetId (or None) and its text."""
    with zipfile.ZipFile(path) as archive:
        root = ET.fromstring(archive.read("xl/workbook.xml"))
    return [{"name": e.get("name"), "local": e.get("localSheetId"), "text": e.text or ""}
            for e in root.iter(f"{_MAIN}definedName")]


def formulas_xml(path: Path):
    """(where, formula, cells) of every formula of the file: each <f> of a worksheet (`cells`: how many
    cells it fills, an array's whole range) and each <c:f> of a chart (cells 0)."""
    parts = reader.outline(path).parts
    with zipfile.ZipFile(path) as archive:
        for part in archive.namelist():
            if part in parts:
                root = ET.fromstring(archive.read(part))
                for cell in root.iter(f"{_MAIN}c"):
                    f = cell.find(f"{_MAIN}f")
                    if f is not None and f.text:
                        cells = 1
                        if f.get("t") == "array" and ":" in f.get("ref", ""):
                            area = reader._single_area(None, "x", f"'{parts[part]}'!{f.get('ref')}")[1]
                            cells = area.shape[0] * area.shape[1]
                        yield f"{parts[part]}!{cell.get('r')}", f.text, cells
            elif part.startswith("xl/charts/") and part.endswith(".xml"):
                root = ET.fromstring(archive.read(part))
                for f in root.iter(f"{_CHART}f"):
                    yield f"{part} {f.text}", f.text or "", 0


def sheet_names_written(formula: str) -> list[str]:
    """Every `Sheet!name` of a formula: a sheet's prefix followed by something that is not a cell or a
    range (a defined name, scoped to that sheet)."""
    code = _STRING.sub('""', formula)
    return [m.group(0) for m in _QUALIFIED.finditer(code) if not _RANGE.fullmatch(m.group(2))]


def scoped_names_used(formula: str, scoped: set[str]) -> list[str]:
    """The bare names of a formula that are sheet-scoped names of the workbook (case-insensitive)."""
    code = _QUALIFIED.sub("", _STRING.sub('""', formula))
    return [t for t in _TOKEN.findall(code) if t.lower() in scoped]


def problems(path: Path) -> tuple[list[str], int]:
    """What Google Sheets could not import as it is, and the formula cells that depend on it."""
    names = defined_names_xml(path)
    found = [f"defined name {n['name']} is scoped to sheet {n['local']}" for n in names
             if n["local"] is not None and not n["name"].startswith("_xlnm.")]
    seen: dict[str, int] = {}
    for n in names:
        seen[n["name"].lower()] = seen.get(n["name"].lower(), 0) + 1
    found += [f"defined name {name} is defined {count} times" for name, count in seen.items() if count > 1]
    scoped = {n["name"].lower() for n in names if n["local"] is not None}
    cells = 0
    for where, formula, count in formulas_xml(path):
        bad = sheet_names_written(formula) + scoped_names_used(formula, scoped)
        if bad:
            cells += count
            found.append(f"{where} ={formula}: {', '.join(bad)}")
    return found, cells


@pytest.mark.parametrize("name", NAMES)
def test_no_sheet_scoped_name_and_no_sheet_bang_name(generated, name):
    found, cells = problems(generated[name])
    assert not found, f"{cells} formula cells; " + "\n".join(found[:20])


@pytest.mark.parametrize("name", NAMES)
def test_the_files_names_read_back_as_the_lessons_keys(generated, name):
    """Each global name of the file is the key of a lesson's value (`sheet!name`, or a global name), and
    every input and every computed quantity of the lesson is there."""
    lesson = by_name(name)
    outline = reader.outline(generated[name])
    file_names = {n["name"] for n in defined_names_xml(generated[name])}
    assert set(outline.names) == {lesson.key_of(n) for n in file_names}
    assert {defined_name(key) for key in outline.names} == file_names
    assert set(lesson.inputs) <= set(outline.names)


def test_the_lint_fails_on_a_workbook_of_an_earlier_release():
    """The lint can fail: graddesc up to 0.4.0 had `lr` on 8 sheets, scoped to each (the fixture is
    0.1.0's; 24,659 of its formulas read a sheet-scoped name). Such a file still verifies (test_saved)."""
    found, cells = problems(Path(__file__).parent / "fixtures" / "graddesc_0.1.0.xlsx")
    assert cells == 24_659
    assert "defined name lr is scoped to sheet 2" in found


@pytest.mark.parametrize("formula, bad", [
    ("=adam!lr*2", ["adam!lr"]),
    ("='adam lesson'!lr+1", ["'adam lesson'!lr"]),
    ("=SUM(dotprod!user_factors)", ["dotprod!user_factors"]),
    ("=MMULT(bias!user_bias,TRANSPOSE(dotprod!movie_factors))", ["bias!user_bias", "dotprod!movie_factors"]),
])
def test_the_lint_finds_sheet_bang_name(formula, bad):
    assert sheet_names_written(formula) == bad


@pytest.mark.parametrize("formula", [
    "=adam!B6*2", "='adam lesson'!$B$6+1", "=SUM(dotprod!$C$5:$Q$19)", "=SUM(data!A:A)", "=SUM(data!1:3)",
    '=MATCH("adam!lr",classes,0)', "=adam_lr*dotprod_user_factors", "=INDEX(data!B9:B38,1)",
])
def test_the_lint_passes_cells_ranges_and_global_names(formula):
    assert sheet_names_written(formula) == []


def test_scoped_names_used_sees_bare_names_only():
    scoped = {"lr", "slope"}
    assert scoped_names_used("=intercept-lr*de_db", scoped) == ["lr"]
    assert scoped_names_used("=adam_lr*2+SLOPE(data_y,data_x)", scoped) == []  # SLOPE( is a function
    assert scoped_names_used('="lr"&adam!lr', scoped) == []


def test_key_of_parses_by_the_lessons_sheets():
    """Sheet names hold underscores (adam_lesson): a name is matched against the sheets, the longest
    first, and the lesson's global names stay as they are."""
    sheets = ["notes", "data", "adam", "adam_lesson", "adam_annealed"]
    globals_ = {"data_x", "data_y"}
    assert key_of("adam_lesson_lr", sheets, globals_) == "adam_lesson!lr"
    assert key_of("adam_lr", sheets, globals_) == "adam!lr"
    assert key_of("adam_lesson", sheets, globals_) == "adam!lesson"
    assert key_of("data_x", sheets, globals_) == "data_x"
    assert key_of("data_intercept_truth", sheets, globals_) == "data!intercept_truth"
    assert key_of("other", sheets, globals_) == "other"
    assert defined_name("adam_lesson!lr") == "adam_lesson_lr" and defined_name("data_x") == "data_x"


def main(paths: list[str]) -> int:
    total = 0
    for path in paths:
        found, cells = problems(Path(path))
        total += cells
        print(f"{path}: {cells:,} formula cells depend on a sheet-scoped name or write Sheet!name; "
              f"{sum('scoped to sheet' in f for f in found)} sheet-scoped names")
    print(f"total {total:,}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
