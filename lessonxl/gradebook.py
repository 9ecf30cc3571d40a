"""A class's submissions: the files of a folder, a gradebook (CSV) and a JUnit report of verify's verdicts.

One row (one JUnit test case) per file: exercise files (`exercise`) with their blocks right of all;
ordinary workbooks with "n/a", their verdict being verify's.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

from .errors import LessonxlError
from .report import Report, Reports, format_summary, summary_line, verdict

COLUMNS = ["file", "workbook", "blocks_right", "blocks_total", "first_wrong_cell", "verdict", "detail"]


def expand(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """The files to verify: each path as given, a folder as the .xlsx files in it (sorted, not in its
    subfolders; LibreOffice's and Excel's lock files left out); and why a folder or a pattern the shell
    left as it was (it matched nothing) gives none."""
    files, problems = [], []
    for path in paths:
        if not path.exists() and any(char in str(path) for char in "*?["):
            problems.append(f"{path}: no file matches this pattern")
            continue
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(item for item in path.iterdir() if item.suffix.lower() == ".xlsx" and item.is_file()
                       and not item.name.startswith(("~$", ".~lock")))
        if not found:
            problems.append(f"{path}: a folder with no .xlsx workbook in it")
        files += found
    return files, problems


def first_wrong(report: Report) -> str:
    """The first cell to look at: in an exercise, its first wrong block's mistake (none while the blocks are
    only empty or partly done); in a workbook, the first root of a mistake, else the worst cell of the
    first quantity that differs ("" when none)."""
    if report.grade is not None:
        return report.grade.first_wrong
    if report.findings:
        return report.findings[0].first
    return next((check.worst for check in report.checks if not check.passed), "")


def row(report: Report) -> dict[str, str]:
    """One file's line of the gradebook."""
    grade = report.grade
    if report.error:
        detail = report.error
    elif grade is not None:
        detail = grade.line()
    else:
        detail = summary_line(report).split(": ", 1)[1]
    return {"file": report.path, "workbook": report.workbook,
            "blocks_right": "n/a" if grade is None else str(grade.right),
            "blocks_total": "n/a" if grade is None else str(len(grade.blocks)),
            "first_wrong_cell": "" if report.error else first_wrong(report), "verdict": verdict(report),
            "detail": detail}


def write_csv(reports: Sequence[Report], path: Path) -> None:
    """The gradebook: a header, then one row per file, in the order verified."""
    with _opened(path) as out:
        writer = csv.DictWriter(out, COLUMNS)
        writer.writeheader()
        writer.writerows(row(report) for report in reports)


def junit(reports: Sequence[Report]) -> ET.ElementTree:
    """JUnit XML: one test case per file; a failure carries verify's report of it, an unusable file is an
    error."""
    tally = Reports(reports).tally()
    suite = ET.Element("testsuite", name="lessonxl verify", tests=str(len(reports)),
                       failures=str(tally["FAIL"]), errors=str(tally["ERROR"]),
                       time=f"{sum(r.seconds for r in reports):.3f}")
    for report in reports:
        case = ET.SubElement(suite, "testcase", classname=f"lessonxl.{report.workbook or 'unknown'}",
                             name=report.path, time=f"{report.seconds:.3f}")
        if report.error:
            ET.SubElement(case, "error", message=report.error, type="unusable").text = report.error
        elif not report.passed:
            failure = ET.SubElement(case, "failure", message=row(report)["detail"], type="differs from torch")
            failure.text = format_summary(report)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(reports: Sequence[Report], path: Path) -> None:
    with _opened(path, "wb") as out:
        junit(reports).write(out, encoding="utf-8", xml_declaration=True)


def _opened(path: Path, mode: str = "w"):
    try:
        return open(path, mode, **({"newline": "", "encoding": "utf-8"} if "b" not in mode else {}))
    except OSError as error:
        raise LessonxlError(f"cannot write {path} ({error.strerror or error})") from None
