"""What verify says: the verdict on each file (`Report`, `Reports`), and its words — the summary line,
the failing quantities, what the saving application computed, the full table, JSON, a DataFrame.

Nothing here judges a cell (that is `compare`) or runs anything (that is `verify`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

from . import reader
from .compare import Check
from .diagnose import Finding
from .exercise import Grade
from .saved import LESSONXL
from .values import is_error

MISMATCHES_SHOWN = 5
MISTAKES_SHOWN = 5  # findings named by the default report; -v and --json have them all


@dataclass
class SavedValues:
    """The values that the application that last saved the file computed, compared with torch."""

    application: str       # "Microsoft Excel 16.0300", "LibreOffice 7.4.7.2", "lessonxl", ...
    evidence: bool         # whether they can be that application's own results (else not compared)
    why_not: str = ""
    checks: list[Check] = field(default_factory=list)
    missing: int = 0       # cells of verified quantities that hold no saved value

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


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
    seconds: float = 0.0  # this file's share of the run: its LibreOffice conversion and its own work
    saved: SavedValues | None = None  # what the application that saved the file computed
    findings: list[Finding] = field(default_factory=list)  # where the mistakes are (`diagnose`), roots first
    inherited: int = 0  # cells that differ only because a cell they read differs
    annotated: str | None = None  # the marked-up copy written (`verify --annotate`)
    grade: Grade | None = None  # an exercise file's grade, block by block (`exercise.grade`)

    @property
    def passed(self) -> bool:
        return self.error is None and all(check.passed for check in self.checks) and \
            (self.saved is None or self.saved.passed)


    @property
    def exit_code(self) -> int:
        """As `lessonxl verify` exits for this file alone: 0 pass, 1 a value differs, 2 unusable."""
        return exit_code([self])

    def to_frame(self):
        """One row per sheet and quantity (cells, max abs/rel error, worst cell, result), as a pandas
        DataFrame: first as verify's LibreOffice recalculated them, then as the application that saved
        the file computed them (`computed_by`); an unusable file is one row whose result is "error"."""
        import pandas as pd

        if self.error:
            rows = [{"computed_by": "", "sheet": "", "quantity": "", "cells": 0, "max_abs_err": math.nan,
                     "max_rel_err": math.nan, "worst_cell": "", "result": "error", "detail": self.error,
                     "mistakes": "", "inherited": None}]
        else:
            saved = self.saved.checks if self.saved else []
            rows = [_row(check, RECALCULATED, self.findings) for check in self.checks]
            rows += [_row(check, self.saved.application) for check in saved]
        frame = pd.DataFrame(rows, columns=FRAME_COLUMNS[1:])
        frame.insert(0, "workbook", self.path)
        return frame

    def findings_frame(self):
        """One row per finding (`diagnose`): its kind, where (a range for a formula filled down), how many
        cells, the first and its formula, the sheet's and torch's values there, what lessonxl's formula
        gives there, and how many cells differ because of it."""
        import pandas as pd

        return pd.DataFrame(_finding_rows(self), columns=FINDING_COLUMNS)

    def _repr_html_(self) -> str:
        return Reports([self])._repr_html_()

    def __repr__(self) -> str:
        """One line, as `lessonxl verify` prints it; the detail is in `to_frame()` and `findings_frame()`."""
        return f"<Report {summary_line(self)}>"


FRAME_COLUMNS = ["workbook", "computed_by", "sheet", "quantity", "cells", "max_abs_err", "max_rel_err",
                 "worst_cell", "result", "detail", "mistakes", "inherited"]
RECALCULATED = "LibreOffice (verify's recalculation)"


def _row(check: Check, computed_by: str, findings: list[Finding] | None = None) -> dict:
    """One quantity's row; with `findings` (LibreOffice's recalculation), where its mistakes are (each
    finding with a cell in it, as the report names it: adam!K29:K627) and how many of its cells differ
    only through them."""
    row = {"computed_by": computed_by, "sheet": check.sheet, "quantity": check.name, "cells": check.cells,
           "max_abs_err": check.max_abs, "max_rel_err": check.max_rel, "worst_cell": check.worst,
           "result": "pass" if check.passed else "FAIL", "detail": _failure(check) if not check.passed else "",
           "mistakes": "", "inherited": None}
    if findings is not None:
        differ = set(check.mismatches)
        mine = [finding for finding in findings if differ.intersection(finding.cells)]
        row["mistakes"] = "; ".join(finding.where for finding in mine)
        row["inherited"] = len(differ - {cell for finding in mine for cell in finding.cells})
    return row


FINDING_COLUMNS = ["workbook", "kind", "where", "cells", "first", "formula", "sheet_value", "torch_value",
                   "expected", "inherited"]


def _finding_rows(report: Report) -> list[dict]:
    return [{"workbook": report.path, "kind": finding.kind, "where": finding.where, "cells": len(finding.cells),
             "first": finding.first, "formula": finding.formula, "sheet_value": finding.sheet_value,
             "torch_value": finding.torch_value, "expected": finding.expected, "inherited": finding.inherited}
            for finding in report.findings]


def _finding_cells(report: Report) -> set[str]:
    return {cell for finding in report.findings for cell in finding.cells}


class Reports(list):
    """The reports of one verify run, in the order of the paths given."""

    @property
    def passed(self) -> bool:
        return all(report.passed for report in self)

    @property
    def exit_code(self) -> int:
        return exit_code(self)

    def tally(self) -> dict[str, int]:
        """How many files passed, failed and could not be verified: {"PASS": n, "FAIL": n, "ERROR": n}."""
        verdicts = [verdict(report) for report in self]
        return {kind: verdicts.count(kind) for kind in ("PASS", "FAIL", "ERROR")}

    def __repr__(self) -> str:
        """The counts, and the first file that did not pass (its line as `lessonxl verify` prints it)."""
        tally = self.tally()
        counts = (f"<Reports: {len(self)} files, {tally['PASS']} passed, {tally['FAIL']} failed, "
                  f"{tally['ERROR']} unusable")
        first = next((report for report in self if not report.passed), None)
        return f"{counts}; first: {summary_line(first)}>" if first else f"{counts}>"

    def to_frame(self):
        """Every report's rows in one pandas DataFrame (see `Report.to_frame`)."""
        import pandas as pd

        frames = [report.to_frame() for report in self]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FRAME_COLUMNS)

    def findings_frame(self):
        """Every report's findings in one pandas DataFrame (see `Report.findings_frame`)."""
        import pandas as pd

        return pd.DataFrame([row for report in self for row in _finding_rows(report)], columns=FINDING_COLUMNS)

    def _repr_html_(self) -> str:
        """For a notebook: one line per workbook with its findings below it, then each failing
        workbook's differing quantities, those holding a mistake first, in a table per workbook and per
        application that computed them (the path and the engine said once, above the table)."""
        import html

        items = []
        for report in self:
            findings = "".join(f"<li>{html.escape(line.strip())}</li>" for line in finding_lines(report))
            items.append(f"<li>{html.escape(summary_line(report))}{f'<ul>{findings}</ul>' if findings else ''}</li>")
        tables = []
        for report in self:
            frame = report.to_frame()
            for computed_by, rows in frame[frame["result"] == "FAIL"].groupby("computed_by", sort=False):
                rows = rows.assign(_first=rows["mistakes"] == "").sort_values("_first", kind="stable")
                columns = ["sheet", "quantity", "cells", "max_abs_err", "max_rel_err", "worst_cell", "mistakes",
                           "inherited", "detail"]
                if computed_by != RECALCULATED:
                    columns.remove("mistakes")
                    columns.remove("inherited")
                engine = "LibreOffice recalculated them" if computed_by == RECALCULATED else \
                    f"{computed_by} computed them"
                tables.append(f"<p>{html.escape(report.path)}: the quantities that differ from torch, as "
                              f"{html.escape(engine)}</p>" +
                              rows[columns].to_html(index=False, float_format=lambda v: f"{v:.2e}", na_rep=""))
        table = "".join(tables) or "<p>every quantity equals torch</p>"
        return f"<ul>{''.join(items)}</ul>{table}"


def verdict(report: Report) -> str:
    """PASS, FAIL or ERROR (a file that could not be verified)."""
    return "ERROR" if report.error else "PASS" if report.passed else "FAIL"


def exit_code(reports: Sequence[Report]) -> int:
    """0 when every check passes, 1 when a value differs, 2 when a file was unusable."""
    if any(report.error for report in reports):
        return 2
    return 0 if all(report.passed for report in reports) else 1


def _shown(value, digits: int = 6) -> str:
    """A sheet's or torch's value in a report line, a number to `digits` significant digits."""
    if isinstance(value, float) and not isinstance(value, bool):
        return f"{value:.{digits}g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if is_error(value):
        return value
    return reader.describe(value)


def _pair(sheet_value, torch_value) -> tuple[str, str]:
    """Both values with at least 6 significant digits, and more until the two read differently (up to
    17: then they differ in the last bit)."""
    for digits in range(6, 18):
        shown = _shown(sheet_value, digits), _shown(torch_value, digits)
        if shown[0] != shown[1]:
            break
    return shown


def _listed(cells: list[str]) -> str:
    more = len(cells) - MISMATCHES_SHOWN
    return ", ".join(cells[:MISMATCHES_SHOWN]) + (f" and {more} more" if more > 0 else "")


def _failure(check: Check) -> str:
    """Why a quantity failed, in one line without its sheet and name."""
    parts = []
    if check.typed:
        parts.append(f"{_listed(check.typed)} {'holds a typed value' if len(check.typed) == 1 else 'hold typed values'}"
                     " where the workbook has a formula: a hard-coded answer is not a computed one")
    differ = [cell for cell in check.mismatches if cell not in check.typed]
    if differ:
        sheet_value, torch_value = _pair(*check.worst_values)
        parts.append(f"{len(differ)} of {check.cells} cells differ from torch ({_listed(differ)}); worst "
                     f"{check.worst}: sheet {sheet_value}, torch {torch_value}")
    return "; ".join(parts)


def finding_lines(report: Report, hint: bool = False, every: bool = False) -> list[str]:
    """Where the mistakes are (`diagnose`), roots first, each with its formula as the file writes it and
    the values that show the difference; then the cells that differ only because they read one. Up to
    `MISTAKES_SHOWN` findings unless `every`; `hint`: lessonxl's own formula beside each."""
    findings = report.findings
    if not findings:
        return []
    shown = findings if every else findings[:MISTAKES_SHOWN]
    lines = [f"  {_finding(finding, len(findings) == 1, hint)}" for finding in shown]
    if len(shown) < len(findings):
        lines.append(f"  and {len(findings) - len(shown)} more (-v names them all)")
    if report.inherited:
        found = _finding_cells(report)
        quantities = [f"{check.sheet}!{check.name}" for check in report.checks
                      if any(cell not in found for cell in check.mismatches)]
        them = "it" if len(findings) == 1 and len(findings[0].cells) == 1 else "them"
        within = f", in {quantities[0]}" if len(quantities) == 1 else \
            f", in {len(quantities)} quantities ({_listed_quantities(quantities)})"
        lines.append(f"  {report.inherited:,} {'cell' if report.inherited == 1 else 'cells'} after {them} "
                     f"{'differs' if report.inherited == 1 else 'differ'} because "
                     f"{'it depends' if report.inherited == 1 else 'they depend'} on {them}{within}")
    return lines


def _annotated(report: Report) -> list[str]:
    if not report.annotated:
        return []
    return [f"  marked up: {report.annotated} (mistakes red, with a comment; the cells that differ because of "
            "them pink)"]


def _listed_quantities(quantities: list[str]) -> str:
    if len(quantities) <= 3:
        return ", ".join(quantities)
    return f"{', '.join(quantities[:2])}, ... {quantities[-1]}"


def _finding(finding: Finding, alone: bool, hint: bool) -> str:
    """One finding in one line."""
    from .diagnose import ENGINE, OWN, TYPED

    count = len(finding.cells)
    shows, should = _pair(finding.sheet_value, finding.torch_value)
    values = f"sheet {shows}, torch {should}"
    if finding.expected is not None and finding.kind != TYPED:
        gives = _pair(finding.sheet_value, finding.expected)[1]
        formula = f"lessonxl's formula {finding.lessonxl_formula}" if hint and finding.lessonxl_formula else \
            "lessonxl's formula"
        values += f"; {formula} gives {gives} from the same cells"
    elif hint and finding.lessonxl_formula:
        values += f"; lessonxl's formula there is {finding.lessonxl_formula}"
    if finding.kind == TYPED:
        verb = "holds a typed value" if count == 1 else f"hold typed values ({count} cells)"
        right = _pair(finding.sheet_value, finding.torch_value)
        return (f"{finding.where} {verb} where the workbook has a formula: a hard-coded answer is not a "
                f"computed one{'' if right[0] == right[1] else f' ({finding.first}: {values})'}")
    if finding.kind == ENGINE:
        return (f"{finding.where}{f' ({count} cells)' if count > 1 else ''} "
                f"differ{'s' if count == 1 else ''} from torch though {'it reads' if count == 1 else 'they read'} "
                f"only cells that equal torch and, as lessonxl computes it, the formula ({finding.formula}) gives "
                f"torch's value from them: LibreOffice computes it otherwise ({values})")
    if finding.kind == OWN:
        if count == 1:
            return (f"{finding.where} differs from torch though its formula is lessonxl's own "
                    f"({finding.formula}) and it reads only cells that equal torch: {values}")
        return (f"{finding.where} ({count} cells) differ from torch though their formula is lessonxl's own "
                f"(first {finding.first}: {finding.formula}) and they read only cells that equal torch: {values}")
    article = "the" if alone else "a"
    if count == 1:
        return f"{article} mistake is at {finding.where} ({finding.formula}): {values}"
    return (f"{article} mistake is the same formula in {finding.where} ({count} cells), first "
            f"{finding.first} ({finding.formula}): {values}")


def cell_comment(finding: Finding, sheet_value, torch_value, expected, lessonxl_formula: str | None,
                 hint: bool = False) -> str:
    """The comment on one cell of a finding in a marked-up copy (`verify --annotate`)."""
    from .diagnose import ENGINE, OWN, TYPED

    shows, should = _pair(sheet_value, torch_value)
    if finding.kind == TYPED:
        head = "a typed value where the workbook has a formula: a hard-coded answer is not a computed one"
    elif finding.kind == OWN:
        head = "differs from torch, though its formula is lessonxl's own and it reads only cells that equal torch"
    elif finding.kind == ENGINE:
        head = ("differs from torch, though it reads only cells that equal torch and its formula, as lessonxl "
                "computes it, gives torch's value from them")
    elif len(finding.cells) > 1:
        head = f"the mistake: the same formula in {finding.where} ({len(finding.cells)} cells) differs from torch"
    else:
        head = "the mistake: this formula differs from torch, and every cell it reads equals torch"
    lines = [f"lessonxl verify: {head}", f"this sheet: {shows}", f"torch: {should}"]
    if expected is not None and finding.kind != TYPED:
        lines.append(f"lessonxl's formula, from the cells this one reads: {_pair(sheet_value, expected)[1]}")
    if hint and lessonxl_formula:
        lines.append(f"lessonxl writes here: {lessonxl_formula}")
    return "\n".join(lines)


def _notes(report: Report) -> list[str]:
    lines = []
    non_finite = sum(check.non_finite for check in report.checks)
    sheet_errors = sum(check.sheet_errors for check in report.checks)
    if sheet_errors and not non_finite and report.findings:
        lines.append(f"note: the sheet holds an error value (#NUM!, #DIV/0!, ...) in {sheet_errors:,} cells where "
                     "torch computes a number")
    elif non_finite or sheet_errors:
        lines.append(f"note: these inputs overflow or leave the math's domain: torch gives inf or nan in "
                     f"{non_finite} cells, the sheet an error value (#NUM!, #DIV/0!, ...) in {sheet_errors}; "
                     "an error value passes where torch's value is inf or nan or was computed from one")
    if report.uncovered:
        lines.append(f"note: {len(report.uncovered)} formula cells are not covered by any check: "
                     f"{', '.join(report.uncovered[:10])}{' ...' if len(report.uncovered) > 10 else ''}")
    return lines


def summary_line(report: Report) -> str:
    """One line on one file: PASS/FAIL, the formula cells checked, the worst relative error, the time. A
    file that fails only on the values its application saved says so (never that every cell equals torch)."""
    if report.error:
        return f"ERROR {report.error}"
    if report.grade is not None:
        return (f"{'PASS' if report.passed else 'FAIL'} {report.path}: {report.workbook} exercise, "
                f"{report.grade.line()}, {report.seconds:.1f} s")
    checked = report.formula_cells - len(report.uncovered)
    differ = len({cell for check in report.checks for cell in check.mismatches})
    worst = max((check.max_rel for check in report.checks), default=0.0)
    if differ:
        verdict = f"{differ:,} of {checked:,} formula cells differ from torch"
    elif _only_saved_values_differ(report):
        verdict = (f"{_saved_differ(report.saved):,} of the values {report.saved.application} saved differ from "
                   f"torch; recalculated, {checked:,} of {report.formula_cells:,} formula cells equal it")
    else:
        verdict = f"{checked:,} of {report.formula_cells:,} formula cells equal torch"
    return (f"{'PASS' if report.passed else 'FAIL'} {report.path}: {report.workbook}, {verdict} "
            f"(worst relative error {worst:.1e}), {report.seconds:.1f} s")


def _saved_differ(saved: SavedValues) -> int:
    return len({cell for check in saved.checks for cell in check.mismatches})


def _only_saved_values_differ(report: Report) -> bool:
    """The file's own recalculation agrees with torch, the values its application saved do not: cells
    that application had not recalculated when it saved (stale)."""
    return (report.error is None and report.saved is not None and not report.saved.passed
            and all(check.passed for check in report.checks))


#: How to make each application recalculate every formula before saving.
_RECALCULATE_ALL = {
    "LibreOffice": "press Ctrl+Shift+F9 (Data > Calculate > Recalculate Hard)",
    "Microsoft Excel": "press Ctrl+Alt+F9 (every formula of every open workbook)",
}


def saved_lines(report: Report) -> list[str]:
    """What the application that saved the file computed: one line, then each failing quantity. Where
    only those saved values differ, they are stale: said plainly, with what to press. (For LibreOffice
    it is certain, verify's own engine having agreed; another application may also compute differently.)"""
    saved = report.saved
    if saved is None:
        return []
    if not saved.evidence:
        return [f"saved values not compared: {saved.why_not}"]
    cells = sum(check.cells for check in saved.checks)
    differ = _saved_differ(saved)
    missing = f"; {saved.missing:,} formula cells hold no saved value" if saved.missing else ""
    failing = [check for check in saved.checks if not check.passed]
    how = next((how for app, how in _RECALCULATE_ALL.items() if saved.application.startswith(app)),
               "recalculate every formula in it")
    if _only_saved_values_differ(report):
        worst = max(failing, key=lambda check: len(check.mismatches))
        shows, should = _pair(*worst.worst_values)
        stale = (f"{differ:,} {'cell' if differ == 1 else 'cells'} it had not recalculated ({worst.worst} "
                 f"shows {shows}, torch {should}){missing}: {how}, then save again")
        if saved.application.startswith("LibreOffice"):
            return [f"{saved.application} saved {stale}"]
        hint = f"  if {saved.application} saved {stale}"
    else:
        hint = None
    worst_error = max((check.max_rel for check in saved.checks), default=0.0)
    verdict = f"{cells - differ:,} of {cells:,} formula cells equal torch" if saved.passed else \
        f"{differ:,} of {cells:,} formula cells differ from torch"
    lines = [f"computed by {saved.application}: {verdict} (worst relative error {worst_error:.1e}){missing}"]
    lines += [f"  {check.sheet}!{check.name}: {_failure(check)}" for check in failing]
    return lines + ([hint] if hint else [])


def format_summary(report: Report, hint: bool = False, brief: bool = False) -> str:
    """The default report of one file: its summary line, then where the mistakes are (or, where none is
    found, each failing quantity), what the saving application computed, then notes. `brief` (verify
    --watch, once per save): no notes, and the saving application's values only where they differ."""
    lines = [summary_line(report)]
    if report.grade is not None:  # an exercise: the mistakes of its wrong blocks, and outside them
        named = {block.mistake for block in report.grade.blocks} | set(report.grade.outside)
        lines += [f"  {_finding(finding, False, hint)}" for finding in report.findings if finding.first in named]
    else:
        lines += finding_lines(report, hint) or [f"  {check.sheet}!{check.name}: {_failure(check)}"
                                                 for check in report.checks if not check.passed]
    lines += _annotated(report)
    if brief:
        saved = saved_lines(report) if report.saved is not None and not report.saved.passed else []
        return "\n".join(lines + [f"  {line}" for line in saved])
    saved = saved_lines(report) if not written_by_lessonxl(report) else []  # said once, in `run_notes`
    # An exercise not yet filled in has error values (#DIV/0!) downstream of its empty cells: no note on them.
    notes = _notes(report) if report.grade is None or report.grade.filled_in else []
    lines += [f"  {line}" for line in saved + notes]
    return "\n".join(lines)


def written_by_lessonxl(report: Report) -> bool:
    return report.saved is not None and report.saved.application == LESSONXL


def run_notes(reports: Sequence[Report]) -> list[str]:
    """What the default report says once for the whole run."""
    ours = sum(written_by_lessonxl(report) for report in reports)
    if not ours:
        return []
    return [f"note: lessonxl wrote {'this file' if ours == 1 else f'{ours} of these files'} as generated: "
            f"{'its' if ours == 1 else 'their'} saved values are torch's own results, not evidence; the verdict "
            "above is LibreOffice's recalculation"]


def format_report(report: Report, hint: bool = False) -> str:
    """The full table of one report that has no error (`lessonxl verify --verbose`)."""
    lines = [f"{report.path}: {report.workbook}, recalculated by LibreOffice, torch float64 on {report.device}",
             f"  {'sheet':<18} {'quantity':<22} {'cells':>6} {'max abs err':>12} {'max rel err':>12}"
             f"  {'worst cell':<22} result"]
    for check in report.checks:
        lines.append(f"  {check.sheet:<18} {check.name:<22} {check.cells:>6} {check.max_abs:>12.2e} "
                     f"{check.max_rel:>12.2e}  {check.worst:<22} {'pass' if check.passed else 'FAIL'}")
    lines += finding_lines(report, hint, every=True) + _annotated(report)
    lines += [f"  FAIL {check.sheet}!{check.name}: {_failure(check)}" for check in report.checks if not check.passed]
    lines += [f"  {line}" for line in saved_lines(report) + _notes(report)]
    covered = report.formula_cells - len(report.uncovered)
    lines.append(f"  {len(report.checks)} quantities, {covered} of {report.formula_cells} formula cells checked")
    lines.append(f"  {'PASS' if report.passed else 'FAIL'}")
    return "\n".join(lines)


def as_json(reports: Sequence[Report], hint: bool = True) -> list[dict]:
    """Reports as JSON-ready dicts (non-finite numbers become null); without `hint`, each finding's
    `lessonxl_formula` (the answer) is null."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        return reader.describe(value)  # a cell's value JSON has no type for (a date): as a user says it
    out = [clean({**asdict(report), "ok": report.passed}) for report in reports]
    if not hint:
        for data in out:
            for finding in data["findings"]:
                finding["lessonxl_formula"] = None
    return out
