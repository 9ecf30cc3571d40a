"""verify names the mistake, not its echo (SPEC item 9, issue 22).

A broken formula makes every cell that reads it differ from torch too; verify names the cell where the
mistake is (its formula as written, the values that show the difference, what lessonxl's formula gives
there), counts the rest as inherited, groups a formula filled down into one finding, and writes a marked-up
copy on request. The mutated workbooks of this file are verified in one run (one LibreOffice).

Formulas read from a file's XML and the report's words are checked first, without LibreOffice
(formulas read as text and evaluated: tests/test_formulas.py).
"""

from __future__ import annotations

import hashlib
import html as html_module
import json
import random
import re
import zipfile
from pathlib import Path

import openpyxl
import pytest

from lessonxl.diagnose import FORMULA, TYPED, Finding
from lessonxl.references import Token, tokens, written
from lessonxl.report import Report, Reports, as_json, format_report, format_summary
from lessonxl.pipeline import verify_paths

from conftest import NAMES, cell_of, set_cells, sheet_parts

FIXTURES = Path(__file__).with_name("fixtures")


# --- formulas read from a file's XML (no LibreOffice) ---------------------------------------------


def test_formulas_are_read_from_the_xml_shared_and_array_formulas_filled():
    xml = ('<sheetData><row r="2"><c r="B2"><f t="shared" ref="B2:B4" si="0">A2*2</f><v>1</v></c></row>'
           '<row r="3"><c r="B3"><f t="shared" si="0"/><v>2</v></c></row>'
           '<row r="5"><c r="C5"><f t="array" ref="C5:D5">MMULT(A1:B1,A2:B3)</f></c><c r="D5"/></row>'
           '<row r="6"><c r="A6" t="str"><f aca="false">IF(A1&lt;&gt;"",1,0)</f><v>1</v></c></row></sheetData>')
    from lessonxl.diagnose import _formulas_of
    found = {place: (written.text, written.array_at) for place, written in _formulas_of(xml).items()}
    assert found == {(2, 2): ("=A2*2", (0, 0)), (3, 2): ("=A3*2", (0, 0)), (5, 3): ("=MMULT(A1:B1,A2:B3)", (0, 0)),
                     (5, 4): ("=MMULT(A1:B1,A2:B3)", (0, 1)), (6, 1): ('=IF(A1<>"",1,0)', (0, 0))}


# --- the report's words (no LibreOffice) ------------------------------------------------------------

def one_mistake_report() -> Report:
    from lessonxl.compare import Check
    checks = [Check("adam", "v_intercept", 600, 7.1, 0.0085, "adam!K40", False,
                    [f"adam!K{r}" for r in range(40, 628)], (836.9727148928434, 844.1116630842293)),
              Check("adam", "intercept", 600, 1e-4, 2e-5, "adam!M40", False, [f"adam!M{r}" for r in range(40, 628)],
                    (3.14005, 3.14011))]
    finding = Finding(FORMULA, "adam", "adam!v_intercept", "adam!K40", ["adam!K40"], "adam!K40",
                      "=beta2*K39+(1-beta2)*G40", 836.9727148928434, 844.1116630842293, 844.1116630842295,
                      "=adam_beta2*K39+(1-adam_beta2)*G40^2", 1175)
    return Report("x.xlsx", "graddesc", "cpu", checks, formula_cells=64455, findings=[finding], inherited=1175)


def test_a_one_cell_mistake_is_named_in_the_first_lines():
    text = format_summary(one_mistake_report())
    lines = text.splitlines()
    assert len(lines) <= 8
    assert lines[1] == ("  the mistake is at adam!K40 (=beta2*K39+(1-beta2)*G40): sheet 836.973, torch 844.112; "
                        "lessonxl's formula gives 844.112 from the same cells")
    assert lines[2] == ("  1,175 cells after it differ because they depend on it, in 2 quantities "
                        "(adam!v_intercept, adam!intercept)")
    assert "G40^2" not in text  # the answer only with --hint
    assert "=adam_beta2*K39+(1-adam_beta2)*G40^2" in format_summary(one_mistake_report(), hint=True)
    full = format_report(one_mistake_report())
    assert "v_intercept" in full and "FAIL adam!intercept" in full and lines[1] in full


def test_json_and_frames_carry_the_findings():
    report = one_mistake_report()
    [data] = json.loads(json.dumps(as_json([report], hint=False)))
    assert data["inherited"] == 1175 and data["findings"][0]["cells"] == ["adam!K40"]
    assert data["findings"][0]["lessonxl_formula"] is None
    assert as_json([report])[0]["findings"][0]["lessonxl_formula"].endswith("G40^2")
    frame = report.to_frame()
    assert frame[["quantity", "mistakes", "inherited"]].values.tolist() == [
        ["v_intercept", "adam!K40", 587], ["intercept", "", 588]]
    assert Reports([report]).findings_frame()[["where", "cells", "first", "inherited"]].values.tolist() == [
        ["adam!K40", 1, "adam!K40", 1175]]


def test_the_notebook_shows_the_findings_first_and_the_path_once():
    page = Reports([one_mistake_report()])._repr_html_()
    assert page.index("the mistake is at adam!K40") < page.index("<table")
    table = page[page.index("<table"):]
    assert "x.xlsx" not in table and "LibreOffice" not in table
    assert page.count(html_module.escape("x.xlsx")) == 2  # the summary line, the table's caption


# --- workbooks with broken formulas, verified in one run -------------------------------------------

FUNCTIONS = {"SQRT": "ABS", "EXP": "SQRT", "LN": "LOG10", "SUMPRODUCT": "SUM", "SUMSQ": "SUM", "COUNT": "SUM",
             "AVERAGE": "SUM", "MAX": "MIN", "MIN": "MAX", "COS": "SIN", "INT": "ABS", "MMULT": "SUMPRODUCT",
             "SUM": "SUMSQ", "ABS": "SQRT", "INDEX": "OFFSET"}


def _sign(text: str) -> str | None:
    return f"-({text})"


def _row_off(text: str) -> str | None:
    """The first relative cell reference moved one row up (a reference one row off)."""
    out, done = [], False
    for token in tokens(text):
        text_of = written(token)
        if not done and token.kind == "ref" and ":" not in token.text:
            side = re.fullmatch(r"(\$?[A-Z]+)([0-9]+)", token.text)
            if side and int(side.group(2)) > 1:
                text_of = written(Token("ref", f"{side.group(1)}{int(side.group(2)) - 1}", token.sheet))
                done = True
        out.append(text_of)
    return "".join(out) if done else None


def _function(text: str) -> str | None:
    for name, other in FUNCTIONS.items():
        if re.search(rf"\b{name}\(", text):
            return re.sub(rf"\b{name}\(", f"{other}(", text, count=1)
    return None


MUTATIONS = {"sign": _sign, "row": _row_off, "function": _function}


def xml_formulas(path: Path) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(sheet, A1) -> the formula's text as the XML holds it (escaped) and its saved value, for every
    formula cell."""
    found = {}
    with zipfile.ZipFile(path) as archive:
        for sheet, part in sheet_parts(path).items():
            xml = archive.read(part).decode()
            for cell, text, value in re.findall(r'<c r="([A-Z]+[0-9]+)"[^>]*><f(?: aca="false")?>([^<]*)</f>'
                                                r'(?:<v>([^<]*)</v>)?', xml):
                found[sheet, cell] = (text, value or None)
    return found


def formulas_in(path: Path) -> dict[tuple[str, str], str]:
    return {place: text for place, (text, _) in xml_formulas(path).items()}


def edit_formulas(source: Path, target: Path, edits: dict[tuple[str, str], str]) -> None:
    """`source` with each (sheet, cell)'s formula replaced by the given text (XML-escaped), its saved value
    left as it was."""
    parts = sheet_parts(source)
    by_part: dict[str, dict[str, str]] = {}
    for (sheet, cell), text in edits.items():
        by_part.setdefault(parts[sheet], {})[cell] = text
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            data = old.read(item.filename)
            if item.filename in by_part:
                cells = by_part[item.filename]
                data = re.sub(r'(<c r="([A-Z]+[0-9]+)"[^>]*><f(?: aca="false")?>)([^<]*)(</f>)',
                              lambda m: m.group(1) + cells.get(m.group(2), m.group(3)) + m.group(4),
                              data.decode()).encode()
            new.writestr(item, data)


def mutants_of(source: Path, seed: int) -> dict[tuple[str, str], str]:
    """One mutation of each kind in each sheet, each in another formula cell chosen at random among those
    it can change whose saved value is a number other than 0."""
    from xml.sax.saxutils import escape, unescape
    rng = random.Random(seed)
    by_sheet: dict[str, list] = {}
    for (sheet, cell), (text, value) in xml_formulas(source).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if number != 0:
            by_sheet.setdefault(sheet, []).append((cell, text))
    edits = {}
    for sheet, cells in sorted(by_sheet.items()):
        rng.shuffle(cells)
        for mutation in MUTATIONS.values():
            for cell, text in cells:
                changed = mutation(unescape(text))
                if changed is not None and (sheet, cell) not in edits:
                    edits[sheet, cell] = escape(changed)
                    break
    return edits


@pytest.fixture(scope="module")
def diagnosed(generated, tmp_path_factory):
    """Every case's workbook, verified in one run with --annotate: case -> (path, mutated cells, report)."""
    folder = tmp_path_factory.mktemp("diagnose")
    cases: dict[str, tuple[Path, set[str]]] = {}

    def case(name: str, source: Path, edits: dict) -> None:
        path = folder / f"{name}.xlsx"
        edit_formulas(source, path, edits)
        cases[name] = (path, {f"{sheet}!{cell}" for sheet, cell in edits})

    for number, name in enumerate(NAMES):
        case(f"{name}_mutants", generated[name], mutants_of(generated[name], seed=number))
    graddesc = generated["graddesc"]
    formulas = formulas_in(graddesc)
    k = {cell: text for (sheet, cell), text in formulas.items() if sheet == "adam" and cell[0] == "K"}
    square_dropped = {("adam", "K40"): k["K40"].replace("G40^2", "G40")}
    case("one_cell", graddesc, square_dropped)
    case("fill_down", graddesc, {("adam", f"K{row}"): k[f"K{row}"].replace(f"G{row}^2", f"G{row}")
                                 for row in range(29, 628)})
    case("two", graddesc, {**square_dropped, ("momentum", "I50"): _row_off(formulas["momentum", "I50"])})
    # A hard-coded answer (its exact value) beside a mistake, and below it an equivalent formula written
    # differently, which is no mistake.
    typed = folder / "typed_source.xlsx"
    set_cells(graddesc, typed, [("adam", "M100", float(xml_formulas(graddesc)["adam", "M100"][1]))])
    case("typed", typed, {**square_dropped, ("adam", "K45"): "(1-adam_beta2)*G45*G45+K44*adam_beta2"})
    # Inside the cancelling columns of a blown-up basic (lr 0.001), and inside softmax's overflowing row.
    blown = folder / "blown_source.xlsx"
    set_cells(graddesc, blown, [(*cell_of(graddesc, "basic!lr"), 0.001)])
    de_db, de_da = cell_of(graddesc, "basic!est_de_db", 0)[1], cell_of(graddesc, "basic!est_de_da", 3)[1]
    case("cancelling", blown, {("basic", de_db): _sign(formulas["basic", de_db]),
                               ("basic", de_da): _sign(formulas["basic", de_da])})
    entropy = generated["entropy_example"]
    overflowing = folder / "overflow_source.xlsx"
    set_cells(entropy, overflowing, [(*cell_of(entropy, "softmax!logits"), 1000.0)])
    exp_cell = cell_of(entropy, "softmax!exp_logits", 0, 1)[1]
    case("overflow", overflowing, {("softmax", exp_cell): _sign(formulas_in(entropy)["softmax", exp_cell])})
    # A file of release 0.1.0 (sheet-scoped names): the same mistake. One of 0.2.0 saved by LibreOffice.
    old = FIXTURES / "graddesc_0.1.0.xlsx"
    old_k40 = formulas_in(old)["adam", "K40"]
    case("release_0_1_0", old, {("adam", "K40"): old_k40.replace("G40^2", "G40")})
    saved = FIXTURES / "regularization_0.2.0_edited.xlsx"
    case("libreoffice_saved", saved, {("l2_vs_wd_adam", "R17"): _sign(formulas_in(saved)["l2_vs_wd_adam", "R17"])})

    marked = folder / "marked"
    paths = [path for path, _ in cases.values()]
    digests = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}
    reports = verify_paths(paths, device="cpu", annotate=marked)
    assert {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in paths} == digests
    return {name: (path, mutated, report) for (name, (path, mutated)), report in zip(cases.items(), reports)}


def finding_cells(report) -> set[str]:
    return {cell for finding in report.findings for cell in finding.cells}


@pytest.mark.parametrize("name", NAMES)
def test_a_broken_formula_in_every_sheet_is_named_at_its_root(diagnosed, name):
    """A sign, a reference one row off and a wrong function in each sheet of the workbook, all at once.
    Each that changes its cell is a finding; nothing else is (every other differing cell inherits)."""
    path, mutated, report = diagnosed[f"{name}_mutants"]
    assert report.error is None, report.error
    differing = {cell for check in report.checks for cell in check.mismatches}
    changed = mutated & differing
    assert len(changed) >= 2 * len(mutated) // 3, (mutated, differing)
    assert [f for f in report.findings if f.kind != FORMULA] == []
    assert finding_cells(report) == changed, format_summary(report)
    assert report.inherited == len(differing - changed)


def test_a_one_cell_mistake_reads_in_three_lines(diagnosed):
    path, _, report = diagnosed["one_cell"]
    lines = format_summary(report).splitlines()
    assert len(lines) <= 8 and report.exit_code == 1
    assert lines[1] == ("  the mistake is at adam!K40 (=adam_beta2*K39+(1-adam_beta2)*G40): sheet 836.973, "
                        "torch 844.112; lessonxl's formula gives 844.112 from the same cells")
    assert lines[2].startswith("  5,895 cells after it differ because they depend on it, in 16 quantities")
    [finding] = report.findings
    assert finding.inherited == report.inherited == 5895


def test_a_fill_down_mistake_is_one_finding(diagnosed):
    _, _, report = diagnosed["fill_down"]
    [finding] = report.findings
    assert finding.where == "adam!K29:K627" and len(finding.cells) == 599
    frame = report.to_frame()
    assert frame.query("sheet == 'adam' and quantity == 'v_intercept'")["mistakes"].tolist() == ["adam!K29:K627"]
    assert format_summary(report).splitlines()[1].startswith(
        "  the mistake is the same formula in adam!K29:K627 (599 cells), first adam!K29 (=adam_beta2*K28+")


def test_two_mistakes_are_two_findings(diagnosed):
    _, _, report = diagnosed["two"]
    assert [f.where for f in report.findings] == ["momentum!I50", "adam!K40"]
    assert "10,537 cells after them differ because they depend on them" in format_summary(report)


def test_a_hard_coded_answer_comes_before_the_inherited_and_an_equivalent_formula_is_no_mistake(diagnosed):
    _, _, report = diagnosed["typed"]
    assert [(f.kind, f.where) for f in report.findings] == [(FORMULA, "adam!K40"), (TYPED, "adam!M100")]
    assert "adam!K45" in {cell for check in report.checks for cell in check.mismatches}  # it inherits
    lines = format_summary(report).splitlines()
    assert lines[2] == ("  adam!M100 holds a typed value where the workbook has a formula: a hard-coded answer "
                        "is not a computed one")
    assert "depend on" in lines[3]


@pytest.mark.parametrize("name", ["cancelling", "overflow", "release_0_1_0", "libreoffice_saved"])
def test_mistakes_in_cancelling_columns_overflowing_rows_and_old_files_are_found(diagnosed, name):
    _, mutated, report = diagnosed[name]
    assert finding_cells(report) == mutated, format_summary(report)
    assert all(f.kind == FORMULA for f in report.findings)


# --- the marked-up copy -----------------------------------------------------------------------------

def test_the_marked_up_copy_keeps_formulas_values_and_charts(diagnosed):
    """Every part of the file is in the copy unchanged (charts and drawings byte for byte), but for the
    cells' style numbers, the comments each sheet with a mistake gains, and the parts that list them."""
    path, _, report = diagnosed["one_cell"]
    copy = Path(report.annotated)
    assert copy.name == path.name and copy.parent.name == "marked"
    styled = re.compile(r'\ss="\d+"|<legacyDrawing [^>]*/>')
    listing = ("xl/styles.xml", "[Content_Types].xml", "xl/worksheets/_rels/sheet7.xml.rels")
    with zipfile.ZipFile(path) as mine, zipfile.ZipFile(copy) as marked:
        assert set(marked.namelist()) - set(mine.namelist()) == {
            "xl/comments1.xml", "xl/drawings/vmlDrawing1.vml"}
        assert any(name.startswith("xl/charts/") for name in mine.namelist())
        for name in mine.namelist():
            if name.startswith("xl/worksheets/sheet"):
                assert styled.sub("", mine.read(name).decode()) == styled.sub("", marked.read(name).decode()), name
            elif name not in listing:
                assert mine.read(name) == marked.read(name), name
        comments = marked.read("xl/comments1.xml").decode()
        assert comments.count("<comment ") == 1 and 'ref="K40"' in comments
        assert "torch: 844.112" in comments and "lessonxl's formula, from the cells this one reads: 844.112" in comments
        assert "<x:Visible/>" in marked.read("xl/drawings/vmlDrawing1.vml").decode()  # open where it is


def test_the_marked_up_cells_are_red_and_pink_with_a_comment(diagnosed):
    path, _, report = diagnosed["entropy_example_mutants"]
    book, mine = openpyxl.load_workbook(report.annotated), openpyxl.load_workbook(path)

    def cell(where: str):
        sheet, at = where.split("!")
        return book[sheet][at]

    roots = finding_cells(report)
    inherited = {c for check in report.checks for c in check.mismatches} - roots
    assert roots and inherited
    for where in roots:
        assert cell(where).fill.fgColor.rgb == "FFFF6B6B", where
        assert cell(where).comment.text.startswith("lessonxl verify: the mistake"), where
    for where in inherited:
        assert cell(where).fill.fgColor.rgb == "FFFFD6D6" and cell(where).comment is None, where
    for sheet in mine.sheetnames:
        assert [[c.value for c in row] for row in mine[sheet].iter_rows()] == \
               [[c.value for c in row] for row in book[sheet].iter_rows()]


def test_the_marked_up_copy_opens_in_libreoffice_and_says_the_same(diagnosed, tmp_path):
    """Verifying the copy (LibreOffice loads it) finds the same mistake."""
    _, _, report = diagnosed["overflow"]
    [again] = verify_paths([Path(report.annotated)], device="cpu")
    assert [f.where for f in again.findings] == [f.where for f in report.findings]


@pytest.mark.parametrize("name", ["regularization_mutants", "libreoffice_saved"])
def test_the_marked_up_copy_is_valid_ooxml(diagnosed, name):
    """As valid as the file it copies (regularization has charts; LibreOffice's file lacks a theme, which
    the validator notes in both)."""
    from openxml_audit import FileFormat, OpenXmlValidator
    path, _, report = diagnosed[name]
    validator = OpenXmlValidator(file_format=FileFormat.OFFICE_2010, max_errors=0)
    assert [str(e) for e in validator.validate(report.annotated).errors] == \
           [str(e).replace(str(path), report.annotated) for e in validator.validate(path).errors]


def test_annotate_never_replaces_another_file_and_removes_its_own_stale_copy(generated, tmp_path):
    from lessonxl.annotate import MARK, check_target
    from lessonxl.errors import LessonxlError
    mine = tmp_path / "entropy_example.xlsx"
    mine.write_bytes(b"my own notes")
    [report] = verify_paths([generated["entropy_example"]], device="cpu", annotate=tmp_path)
    assert "is not a copy lessonxl marked up" in report.error and mine.read_bytes() == b"my own notes"
    with pytest.raises(LessonxlError, match="is the file being verified"):
        check_target(mine, mine)
    # A copy marked up before the file was put right goes when the file passes.
    with zipfile.ZipFile(mine, "w") as stale:
        stale.writestr("x", "marked before")
        stale.comment = MARK
    [report] = verify_paths([generated["entropy_example"]], device="cpu", annotate=tmp_path)
    assert report.passed and report.annotated is None and not mine.exists()

