"""Who saved a workbook last, and whether the values it saved can be that application's own results.

A workbook saved by Excel, LibreOffice or a Google Sheets export carries, beside each formula, the
value that application computed: `verify` compares those with torch too. `docProps/app.xml` names the
application; the file itself tells when its saved values cannot be evidence:

- lessonxl's stamp (see `sameness.stamp`) is intact: the values are torch's own, cached at generation;
- the application does not calculate (openpyxl, or XlsxWriter as earlier lessonxl releases used it:
  `Microsoft Excel` 12.0000 with the request for a full calculation on load still in place);
- the file still asks for a full calculation on load: it was saved without recalculating.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .sameness import as_written

_TAG = r"<{0}>([^<]*)</{0}>"
LESSONXL = "lessonxl"


@dataclass(frozen=True)
class Saver:
    """The application that last saved a file, and whether its saved values can be its own results."""

    name: str              # e.g. "Microsoft Excel 16.0300", "LibreOffice 7.4.7.2"
    evidence: bool         # whether the saved values are that application's own results
    why_not: str = ""      # when they are not: why, in a user's words


def last_saver(path: Path) -> Saver:
    """Who saved the .xlsx file at `path` last (it has passed `files.check_file`)."""
    if as_written(path):
        return Saver(LESSONXL, False, "lessonxl wrote them: they are torch's own results, cached when the "
                                        "workbook was generated, not evidence")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        app = archive.read("docProps/app.xml").decode("utf-8", "replace") if "docProps/app.xml" in names else ""
        workbook = archive.read("xl/workbook.xml").decode("utf-8", "replace")
    application, version = (_tag(app, "Application"), _tag(app, "AppVersion"))
    full_calc_pending = re.search(r'<calcPr[^>]*fullCalcOnLoad="(1|true)"', workbook) is not None
    if "openpyxl" in application.lower():
        return Saver(application, False, f"{application} saved the file last, and openpyxl does not calculate")
    if application == "Microsoft Excel" and version == "12.0000" and full_calc_pending:
        return Saver("XlsxWriter", False, "XlsxWriter wrote the file (an earlier lessonxl, or another program), "
                                          "and XlsxWriter does not calculate")
    name = _display_name(application, version) if application else \
        "an application that does not name itself (the file has no docProps/app.xml)"
    if full_calc_pending:
        return Saver(name, False, f"{name} saved the file without recalculating (it still asks for a full "
                                  "calculation when opened), so its saved values need not be its own")
    return Saver(name, True)


def _tag(xml: str, tag: str) -> str:
    found = re.search(_TAG.format(tag), xml)
    return found.group(1).strip() if found else ""


def _display_name(application: str, version: str) -> str:
    """"LibreOffice/7.4.7.2$Linux_X86_64 ..." -> "LibreOffice 7.4.7.2"; Excel gets its AppVersion."""
    libreoffice = re.match(r"LibreOffice/([0-9.]+)", application)
    if libreoffice:
        return f"LibreOffice {libreoffice.group(1)}"
    return f"{application} {version}".strip() if application.startswith("Microsoft Excel") else application
