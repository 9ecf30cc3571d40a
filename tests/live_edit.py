"""A student's LibreOffice, driven through its API: open a workbook as a user does, edit one input, read
what the sheet shows, press Recalculate Hard, read again. Run by a Python that can `import uno`
(tests/test_live_edit.py starts it; of lessonxl it imports only the bridge's helpers).

    python3 live_edit.py SOFFICE < edits.json > results.json

LibreOffice runs with a fresh profile left at its defaults: an .xlsx file's saved results are taken on
load, not recalculated (LibreOffice 7.4: "never recalculate" for Excel 2007 and newer), AutoCalculate is
on. Each edit is made on a freshly opened copy of its file ({"path", "sheet", "row", "col", "value"}: a
number typed in, or null: the cell's content deleted), so no edit sees another's recalculation. Nothing
is read before the edit: reading every cell first hides the fault (what a file shows on opening is read
once per file, from a copy opened apart).

For each edit the result lists the cells that a user would have seen wrong: *stale* cells still show the
value they had before the edit, while Recalculate Hard (calculateAll) gives another beyond `tolerance`;
and it counts the cells that changed with the edit but not to the hard recalculation's value (`drift`:
their worst relative difference), which happens where an edit's effect meets saved results that
differ from LibreOffice's own in the last bits.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import uno
from com.sun.star.connection import NoConnectException

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "lessonxl"))
from unobridge import _column, _property  # noqa: E402  (the bridge's, which imports nothing of lessonxl)

TOLERANCE = 1e-9


def start(soffice, profile):
    pipe = f"lessonxl_live_{os.getpid()}"
    office = subprocess.Popen([soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore",
                               "--nologo", "--nodefault", "--nolockcheck", f"--accept=pipe,name={pipe};urp;"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    deadline = time.monotonic() + 120
    while True:
        try:
            context = resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
            break
        except NoConnectException:
            if time.monotonic() > deadline or office.poll() is not None:
                office.kill()
                raise SystemExit("LibreOffice did not start")
            time.sleep(0.05)
    return office, context.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", context)


def shown(document):
    """What every sheet shows: its used area's values (a number, a text; None for an error or blank)."""
    sheets, out = document.getSheets(), {}
    for index in range(sheets.getCount()):
        sheet = sheets.getByIndex(index)
        cursor = sheet.createCursor()
        cursor.gotoEndOfUsedArea(False)
        end = cursor.getRangeAddress()
        rows = sheet.getCellRangeByPosition(0, 0, end.EndColumn, end.EndRow).getDataArray()
        out[sheet.getName()] = [[None if v == "" else v for v in row] for row in rows]
    return out


def _close(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a == b or abs(a - b) <= TOLERANCE * (1 + abs(b)) or (math.isnan(a) and math.isnan(b))
    return a == b


def compare(before, seen, hard):
    stale, drift, worst = [], 0, 0.0
    for name, rows in hard.items():
        for r, row in enumerate(rows):
            for c, right in enumerate(row):
                shown_value = seen[name][r][c] if r < len(seen[name]) and c < len(seen[name][r]) else None
                if _close(shown_value, right):
                    continue
                old = before[name][r][c] if r < len(before[name]) and c < len(before[name][r]) else None
                if shown_value == old:
                    stale.append([f"{name}!{_column(c)}{r + 1}", shown_value, right])
                else:
                    drift += 1
                    if isinstance(shown_value, float) and isinstance(right, float):
                        worst = max(worst, abs(shown_value - right) / max(abs(right), 1e-300))
    return stale, drift, worst


def main():
    edits = json.load(sys.stdin)
    profile = tempfile.mkdtemp(prefix="lessonxl_live_")
    office, desktop = start(sys.argv[1], profile)
    results, saved = [], {}
    try:
        for edit in edits:
            url = uno.systemPathToFileUrl(os.path.abspath(edit["path"]))
            if url not in saved:  # what the file shows when opened, read from a copy of its own
                document = desktop.loadComponentFromURL(url, "_blank", 0, (_property("Hidden", True),))
                saved[url] = shown(document)
                document.close(True)
            before = saved[url]
            document = desktop.loadComponentFromURL(url, "_blank", 0, (_property("Hidden", True),))
            cell = document.getSheets().getByName(edit["sheet"]).getCellByPosition(edit["col"], edit["row"])
            if edit["value"] is None:
                cell.setString("")
            else:
                cell.setValue(edit["value"])
            seen = shown(document)
            document.calculateAll()
            stale, drift, worst = compare(before, seen, shown(document))
            results.append({"stale": stale, "drift": drift, "worst_drift": worst})
            document.close(True)
    finally:
        try:
            desktop.terminate()
        except Exception:
            pass
        try:
            office.wait(30)
        except subprocess.TimeoutExpired:
            office.kill()
        shutil.rmtree(profile, ignore_errors=True)
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
