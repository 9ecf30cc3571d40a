"""Portability and safety lint over every formula of every generated workbook.

Only functions that Excel 2010+, LibreOffice Calc and Google Sheets all compute the same way; nothing
volatile (RAND, RANDBETWEEN, NOW, TODAY, INDIRECT...); no dynamic-array formulas; no external links;
no macros. The linter is tested on known-bad formulas too, so that it can fail.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import openpyxl
import pytest
from openpyxl.worksheet.formula import ArrayFormula

from lessonxl.registry import LESSONS

NAMES = [lesson.name for lesson in LESSONS]

#: SPEC.md's list, and the few more that all three engines share and the workbooks use or may use.
PORTABLE = frozenset("""
    SUM SUMPRODUCT SUMSQ SUMXMY2 SUMX2MY2 SUMX2PY2 MMULT TRANSPOSE INDEX MATCH OFFSET IF EXP LN LOG LOG10
    SQRT POWER COUNT COUNTA COUNTBLANK AVERAGE COS SIN TAN TANH PI MAX MIN ABS ROWS COLUMNS ROW COLUMN INT
    ROUND MOD SIGN AND OR NOT TRUE FALSE ISNUMBER ISBLANK CHOOSE LARGE SMALL
""".split())
VOLATILE = frozenset({"RAND", "RANDBETWEEN", "RANDARRAY", "NOW", "TODAY", "INDIRECT", "INFO", "CELL"})

_STRING = re.compile(r'"(?:[^"]|"")*"')
_FUNCTION = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)\s*\(")
_EXTERNAL = re.compile(r"\[\d+\]|\[[^\]]*\.xls[xmb]?\]|'[^']*\[[^\]]+\][^']*'!")


def lint_formula(formula: str) -> list[str]:
    """Every portability or safety problem of one formula, as readable phrases."""
    problems = []
    code = _STRING.sub('""', formula)
    for name in _FUNCTION.findall(code):
        upper = name.upper()
        if upper.startswith(("_XLFN.", "_XLWS.", "_XLUDF.")):
            problems.append(f"{name}: a function only recent Excel has")
        elif upper in VOLATILE:
            problems.append(f"{name}: volatile (changes on every recalculation)")
        elif upper not in PORTABLE:
            problems.append(f"{name}: not in the set Excel 2010+, LibreOffice and Google Sheets share")
    if _EXTERNAL.search(code):
        problems.append("refers to another workbook (external link)")
    return problems


def formulas(path: Path):
    """(where, formula text) of every formula cell and every defined name."""
    book = openpyxl.load_workbook(path)
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, ArrayFormula):
                    yield f"{sheet.title}!{cell.coordinate}", cell.value.text
                elif cell.data_type == "f":
                    yield f"{sheet.title}!{cell.coordinate}", cell.value
    scopes = [("", book.defined_names)] + [(s.title + "!", s.defined_names) for s in book.worksheets]
    for prefix, names in scopes:
        for name, definition in names.items():
            yield f"name {prefix}{name}", definition.attr_text


@pytest.mark.parametrize("name", NAMES)
def test_every_formula_is_portable_and_safe(generated, name):
    problems, count = [], 0
    for where, formula in formulas(generated[name]):
        count += 1
        problems += [f"{where} {formula}: {problem}" for problem in lint_formula(formula)]
    assert count > 0
    assert not problems, "\n".join(problems[:20])


@pytest.mark.parametrize("name", NAMES)
def test_no_macros_no_external_links_no_dynamic_arrays(generated, name):
    with zipfile.ZipFile(generated[name]) as archive:
        parts = archive.namelist()
        content_types = archive.read("[Content_Types].xml").decode()
        sheets = [archive.read(p).decode() for p in parts if p.startswith("xl/worksheets/")]
        workbook = archive.read("xl/workbook.xml").decode()
    assert not [p for p in parts if "vbaproject" in p.lower() or p.startswith("xl/macrosheets/")]
    assert "macroEnabled" not in content_types
    assert not [p for p in parts if p.startswith("xl/externalLinks/")]
    assert "<externalReferences" not in workbook
    # Excel 365 marks a dynamic-array (spilling) formula with cell metadata: cm="..." on the cell.
    assert not any(re.search(r'<c [^>]*\bcm="', xml) for xml in sheets)
    assert "metadata.xml" not in " ".join(parts)


@pytest.mark.parametrize("formula, problem", [
    ("=RAND()", "volatile"),
    ("=RANDBETWEEN(1,6)*A1", "volatile"),
    ("=NOW()-A1", "volatile"),
    ("=TODAY()", "volatile"),
    ("=SUM(INDIRECT(\"A1:A\"&B1))", "volatile"),
    ("=_xlfn.LET(x,A1,x*2)", "only recent Excel"),
    ("=_xlfn._xlws.FILTER(A1:A9,B1:B9>0)", "only recent Excel"),
    ("=SEQUENCE(10)", "not in the set"),
    ("=XLOOKUP(A1,B1:B9,C1:C9)", "not in the set"),
    ("=GAMMALN(A1)", "not in the set"),
    ("=[1]Sheet1!A1*2", "external link"),
    ("='C:\\data\\[other.xlsx]Sheet1'!A1", "external link"),
    ("=[book.xlsx]data!$B$2", "external link"),
])
def test_the_lint_catches_what_it_must(formula, problem):
    assert any(problem in found for found in lint_formula(formula)), lint_formula(formula)


@pytest.mark.parametrize("formula", [
    "=SUMPRODUCT((ratings<>\"\")*(ratings-preds)^2)/COUNT(ratings)",
    "{=MMULT(user_factors,TRANSPOSE(movie_factors))}",
    "=-IF(B5=1,LN(C5),LN(1-C5))",
    "=MATCH(\"RAND(\",classes,0)",  # a function name inside a string is text, not a call
    "=INDEX(probs,1,MATCH(target,classes,0))",
    "=0.5*(1+COS(PI()*A1/ROWS(steps)))",
])
def test_the_lint_passes_portable_formulas(formula):
    assert lint_formula(formula) == []


@pytest.mark.parametrize("name", NAMES)
def test_no_defined_name_begins_with_true_or_false(generated, name):
    """Google Sheets refuses such names when it imports the file."""
    book = openpyxl.load_workbook(generated[name], read_only=True)
    names = list(book.defined_names) + [n for sheet in book.worksheets for n in sheet.defined_names]
    assert names and not [n for n in names if n.lower().startswith(("true", "false"))]


def test_the_formula_shortcut_still_overrides_xlsxwriter(tmp_path):
    """sheets._PortableWorksheet replaces xlsxwriter's private Worksheet._prepare_formula (its ~30
    regular expressions per formula find nothing in portable formulas and were half of graddesc's
    generation time). A release of xlsxwriter that renames or drops the method would leave the override
    unused: this fails then. The formula must reach the file as written."""
    import zipfile

    import xlsxwriter
    import xlsxwriter.worksheet

    from lessonxl.sheets import _PortableWorksheet

    assert callable(getattr(xlsxwriter.worksheet.Worksheet, "_prepare_formula", None))
    path = tmp_path / "one.xlsx"
    book = xlsxwriter.Workbook(path)
    sheet = book.add_worksheet("s", worksheet_class=_PortableWorksheet)
    calls = []
    original = _PortableWorksheet._prepare_formula
    sheet._prepare_formula = lambda formula, *rest: calls.append(formula) or original(sheet, formula, *rest)
    sheet.write_formula("A1", "=SUMPRODUCT((B1:B3<>\"\")*(B1:B3-C1:C3)^2)", None, 0.0)
    book.close()
    assert calls, "xlsxwriter no longer calls _prepare_formula"
    xml = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml").decode()
    assert "<f>SUMPRODUCT((B1:B3&lt;&gt;\"\")*(B1:B3-C1:C3)^2)</f>" in xml
