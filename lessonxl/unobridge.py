"""The bridge between lessonxl and a running LibreOffice: run by a Python that can `import uno`.

LibreOffice's Python binding (`uno`) is built for one Python: the system python3 on Debian
(package python3-uno), the `program/python` LibreOffice bundles on macOS and Windows. lessonxl's own
Python (a venv, often another build) cannot import it, so `recalc.Engine` runs this file with that
Python and talks to it in line-delimited JSON over stdin and stdout:

    python3 unobridge.py PIPE_NAME PROFILE_URL RUN_FOLDER SOCKET...
    <- {"ready": true}                          once connected to `soffice --accept=pipe,name=PIPE_NAME;urp;`
    -> {"op": "load", "id": 1, "path": "/abs/x.xlsx", "areas": [[sheet, r0, c0, r1, c1], ...]}
    <- {"id": 1, "inputs": [...]}              the `areas` once loaded (torch can start on them)
    <- {"id": 1, "sheets": [...]}              every sheet, once recalculated in full
       (or {"id": 1, "error": "..."} instead of either)
    -> {"op": "close", "id": 1}                 (no reply)
    -> {"op": "quit"}                           LibreOffice is told to terminate; the bridge exits

If its input ends without "quit", lessonxl has died (kill -9): the bridge ends LibreOffice (asked to
terminate, then every process started with PROFILE_URL killed), removes the SOCKETs and RUN_FOLDER
(the run's temporary files), and exits, so that nothing of the run outlives it.

A loaded workbook is recalculated in full (calculateAll) and comes back sheet by sheet: its used area's
values (numbers, texts, null for a blank or an error), where its formula cells are, each error cell with
the error value an .xlsx file stores for it (#NUM!, #DIV/0!, ...); and, for each of the `areas` asked
for (rows and columns from 0), the cells whose number format makes their number a date, a time or a
logical value (TRUE/FALSE). This file imports nothing of lessonxl: it runs outside lessonxl's Python.

Each call through the bridge costs a round trip to LibreOffice, so everything is asked for in bulk: a
sheet's values in one call, its formula and error cells as ranges, the error codes of all its error cells
by one block of ERRORTYPE formulas on a scratch sheet (the document is never saved).
"""

import json
import os
import shutil
import signal
import sys
import threading
import time

import uno
from com.sun.star.beans import PropertyValue
from com.sun.star.connection import NoConnectException

# LibreOffice's error codes (FormulaError) as an .xlsx file stores them: the mapping LibreOffice's own
# .xlsx export uses (sc/source/filter/excel/xltools.cxx, XclTools::GetXclErrorCode); what it does not
# name is #N/A there too.
XLSX_ERRORS = {
    501: "#VALUE!",   # illegal character
    502: "#VALUE!",   # invalid argument (LN(0), SQRT(-1): Err:502 in Calc)
    503: "#NUM!",     # illegal floating-point operation (overflow)
    504: "#VALUE!",   # parameter list error
    519: "#VALUE!",   # no value (text where a number belongs)
    521: "#NULL!",    # no result (empty intersection)
    523: "#NUM!",     # no convergence
    524: "#REF!",     # invalid reference
    525: "#NAME?",    # invalid name
    532: "#DIV/0!",   # division by zero
    32767: "#N/A",    # not available
}
ERROR_BLOCK_WIDTH = 256  # the columns of the scratch block of ERRORTYPE formulas
# com.sun.star.util.NumberFormat: the types whose typed numbers a reader shows as something else.
_DATE, _TIME, _LOGICAL = 2, 4, 1024
_FORMULA, _DATETIME = 16, 2  # com.sun.star.sheet.CellFlags
_ERROR = 4     # com.sun.star.sheet.FormulaResult.ERROR


def _property(name, value):
    prop = PropertyValue()
    prop.Name, prop.Value = name, value
    return prop


def _kind(number_format, formats, cache):
    """"date", "time", "datetime" or "logical" for number formats that make a number one, else None."""
    if number_format not in cache:
        try:
            kind = formats.getByKey(number_format).Type
        except Exception:
            kind = 0
        cache[number_format] = ("logical" if kind & _LOGICAL else "datetime" if kind & _DATE and kind & _TIME
                                else "date" if kind & _DATE else "time" if kind & _TIME else None)
    return cache[number_format]


class Bridge:
    def __init__(self, desktop, send):
        self.desktop, self.send = desktop, send
        self.documents = {}

    def load(self, request):
        url = uno.systemPathToFileUrl(os.path.abspath(request["path"]))
        # Not read-only: the error codes are read through formulas on a scratch sheet (the document is
        # a throw-away copy and is never saved).
        options = (_property("Hidden", True),
                   _property("MacroExecutionMode", 0),  # NEVER_EXECUTE
                   _property("UpdateDocMode", 0),       # NO_UPDATE: links are never followed
                   _property("FilterName", "Calc MS Excel 2007 XML"))
        try:
            document = self.desktop.loadComponentFromURL(url, "_blank", 0, options)
        except Exception as error:  # IllegalArgumentException, IOException, ...
            return {"error": f"LibreOffice could not open the workbook ({_message(error)})"}
        if document is None or not hasattr(document, "getSheets"):
            if document is not None:
                document.close(True)
            return {"error": "LibreOffice could not open the workbook"}
        self.documents[request["id"]] = document
        sheets = document.getSheets()
        self.send({"id": request["id"], "inputs": self._inputs(document, request.get("areas", ()))})
        document.calculateAll()
        replies = [self._sheet(sheets.getByIndex(index)) for index in range(sheets.getCount())]
        self._error_values(document, replies)
        return {"sheets": replies}

    def _inputs(self, document, areas):
        """Each input area (recalculated on load: the profile says so): its values, formula cells, error
        values and the cells whose number format makes them dates, times or logical values. Read per
        sheet, in three calls over the box that holds the sheet's areas (values; what was typed: a
        formula starts with "="; the cells holding dates or times); only formula cells (whose result may
        be TRUE/FALSE or a date) and error cells are asked about one by one: inputs seldom hold them."""
        sheets, formats, cache = document.getSheets(), document.getNumberFormats(), {}
        boxes = {}
        for name, r0, c0, r1, c1 in areas:
            if sheets.hasByName(name):
                top, left, bottom, right = boxes.get(name, (r0, c0, r1, c1))
                boxes[name] = (min(top, r0), min(left, c0), max(bottom, r1), max(right, c1))
        read = {}
        for name, (top, left, bottom, right) in boxes.items():
            sheet = sheets.getByName(name)
            box = sheet.getCellRangeByPosition(left, top, right, bottom)
            dates = {(row, col) for r in box.queryContentCells(_DATETIME).getRangeAddresses()
                     for row in range(r.StartRow, r.EndRow + 1) for col in range(r.StartColumn, r.EndColumn + 1)}
            read[name] = (sheet, top, left, box.getDataArray(), box.getFormulaArray(), dates)
        blocks = []
        for name, r0, c0, r1, c1 in areas:
            if name not in read:
                blocks.append(None)
                continue
            sheet, top, left, values, typed, dates = read[name]
            rows, formulas, errors, kinds = [], [], [], []
            for row in range(r0, r1 + 1):
                rows.append([])
                for col in range(c0, c1 + 1):
                    value, text = values[row - top][col - left], typed[row - top][col - left]
                    rows[-1].append(None if value == "" else value)
                    formula = text.startswith(("=", "{="))
                    if formula:
                        formulas.append([row, col, row, col])
                    if value is None:  # an error value (getDataArray has none to give)
                        code = sheet.getCellByPosition(col, row).getError()
                        errors.append([row, col, XLSX_ERRORS.get(code, "#N/A")])
                    elif isinstance(value, float) and formula:  # its result's format: the formula's
                        cell = sheet.getCellByPosition(col, row)
                        kind = _kind(cell.NumberFormat, formats, cache)
                        if kind:
                            kinds.append([row, col, row, col, kind])
                    elif isinstance(value, float) and (row, col) in dates:
                        kinds.append([row, col, row, col, "date"])
            blocks.append({"name": name, "origin": [r0, c0], "rows": rows, "formulas": formulas,
                           "errors": errors, "kinds": kinds})
        return blocks

    def _sheet(self, sheet):
        cursor = sheet.createCursor()
        cursor.gotoEndOfUsedArea(False)
        end = cursor.getRangeAddress()
        area = sheet.getCellRangeByPosition(0, 0, end.EndColumn, end.EndRow)
        rows = [[None if value == "" else value for value in row] for row in area.getDataArray()]
        return {"name": sheet.getName(), "rows": rows,
                "formulas": [_box(r) for r in area.queryContentCells(_FORMULA).getRangeAddresses()],
                "errors": [_box(r) for r in area.queryFormulaCells(_ERROR).getRangeAddresses()]}

    def _error_values(self, document, replies):
        """Replace each sheet's error ranges by [row, col, error value] per cell: ERRORTYPE of each error
        cell, computed on a scratch sheet in one block (ERROR_BLOCK_WIDTH formulas a row)."""
        if not any(reply["errors"] for reply in replies):
            return
        sheets = document.getSheets()
        scratch = "lessonxl_errors"
        while sheets.hasByName(scratch):
            scratch += "_"
        sheets.insertNewByName(scratch, sheets.getCount())
        block = sheets.getByName(scratch)
        for reply in replies:
            boxes, reply["errors"] = reply["errors"], []
            if not boxes:
                continue
            # One ERRORTYPE per error cell, packed WIDTH to a row (the bounding box of a sheet's error
            # ranges may be mostly cells without an error: a tall sheet with errors here and there).
            cells = [(row, col) for r0, c0, r1, c1 in boxes
                     for row in range(r0, r1 + 1) for col in range(c0, c1 + 1)]
            width = min(len(cells), ERROR_BLOCK_WIDTH)
            height = -(-len(cells) // width)
            quoted = "$'" + reply["name"].replace("'", "''") + "'."
            formulas = [f"=ERRORTYPE({quoted}{_column(col)}{row + 1})" for row, col in cells]
            formulas += [""] * (width * height - len(cells))
            target = block.getCellRangeByPosition(0, 0, width - 1, height - 1)
            target.setFormulaArray(tuple(tuple(formulas[r * width:(r + 1) * width]) for r in range(height)))
            codes = target.getDataArray()
            for k, (row, col) in enumerate(cells):
                code = codes[k // width][k % width]
                value = XLSX_ERRORS.get(int(code), "#N/A") if isinstance(code, float) else "#N/A"
                reply["errors"].append([row, col, value])
            target.clearContents(1023)  # everything: the next sheet's block starts afresh
        sheets.removeByName(scratch)

    def alive(self):
        """Whether LibreOffice still answers."""
        try:
            self.desktop.getComponents()
            return True
        except Exception:
            return False

    def close(self, request):
        document = self.documents.pop(request["id"], None)
        if document is not None:
            try:
                document.close(True)
            except Exception:  # closed already, or LibreOffice is going: nothing left to close
                pass


def _column(index):
    """A 0-based column index as its letters (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _box(address):
    return [address.StartRow, address.StartColumn, address.EndRow, address.EndColumn]


def _message(error):
    text = getattr(error, "Message", "") or str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def connect(pipe, gone):
    """The desktop of the LibreOffice listening on `pipe`, retried until it listens (the caller stops
    this process when LibreOffice never does; if the caller dies first, `gone()` is called)."""
    parent = os.getppid()
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    while True:
        try:
            context = resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
            break
        except NoConnectException:
            if os.getppid() != parent:  # the caller has died: this process was handed to another parent
                gone()
            time.sleep(0.02)
    return context.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", context)


def orphaned(desktop, profile_url, run_folder, sockets):
    """lessonxl has gone without a word: end LibreOffice (asked, where connected: `desktop`) and remove
    everything of the run; then exit."""
    if desktop is not None:
        asked = threading.Thread(target=desktop.terminate, daemon=True)
        asked.start()
        asked.join(5)
    marker = ("-env:UserInstallation=" + profile_url).encode()
    for pid in filter(str.isdigit, os.listdir("/proc") if os.path.isdir("/proc") else ()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if marker in cmdline.read().split(b"\0"):
                    os.kill(int(pid), signal.SIGKILL)
        except OSError:  # gone meanwhile, or not ours to read
            pass
    time.sleep(0.2)  # the kills land; LibreOffice's own temporary files are in the run's folder
    for socket in sockets:
        try:
            os.unlink(socket)
        except OSError:
            pass
    shutil.rmtree(run_folder, ignore_errors=True)
    os._exit(0)


def main():
    # Replies go to the original stdout; anything else that prints (LibreOffice's libraries) goes to
    # stderr, so that the channel carries JSON only.
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    def send(message):
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    pipe, profile_url, run_folder, *sockets = sys.argv[1:]
    bridge = Bridge(connect(pipe, lambda: orphaned(None, profile_url, run_folder, sockets)), send)
    try:
        serve(bridge, send)
    except (BrokenPipeError, OSError):  # the caller has gone while a reply was on its way
        pass
    orphaned(bridge.desktop, profile_url, run_folder, sockets)


def serve(bridge, send):
    """Answer requests until told to quit (LibreOffice is told to terminate and the bridge exits) or
    until the input ends (then return)."""
    send({"ready": True})
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "quit":
            try:
                bridge.desktop.terminate()
            except Exception:  # LibreOffice went away while terminating: the same end
                pass
            os._exit(0)
        if op == "close":
            bridge.close(request)
            continue
        try:
            reply = getattr(bridge, op)(request)
        except Exception as error:
            # This file's failure, unless LibreOffice itself is gone (then every file after it fails too).
            reply = {"error": f"LibreOffice failed while recalculating ({_message(error)})",
                     "lost": not bridge.alive()}
            if not reply["lost"]:
                bridge.close(request)
        send({"id": request.get("id"), **reply})


if __name__ == "__main__":
    main()
