"""When two generated workbooks are the same workbook: identical in everything a reader sees, and with
cached formula results equal to rounding; and whether a file is still as lessonxl wrote it.

torch's float64 exp, log and pow, and MKL's matrix products, round differently in the last bit on
different instruction sets (`ATEN_CPU_CAPABILITY`, MKL's own dispatch) and on CUDA, so the cached
result of a formula generated on one machine may differ from another machine's in its last digits.
Everything else in a workbook is compared byte for byte: formulas, defined names, inputs (numbers
and labels), strings, styles, layout, charts and document properties. Only two kinds of numbers are
compared with a tolerance:

- the cached result of a formula cell (a cell with `<f>`; lessonxl writes no array formula);
- the cached points of a chart series (`<c:numCache>`), which copy cells of the sheet.

The bound is |a - b| <= ROUNDING_TOL * (1 + max(|a|, |b|)): the tolerance `lessonxl verify` applies
between a sheet and torch (1e-9 absolute plus 1e-9 relative), since two cached values that are each
torch's result on different hardware must agree as well as a sheet agrees with torch. Measured across
CPU paths (`ATEN_CPU_CAPABILITY` x `MKL_ENABLE_INSTRUCTIONS`, tests/test_sameness.py), the cached values
differ by at most 2.3e-11 relative (an Adam residual near convergence, where prediction - y cancels)
and 1.2e-13 absolute: a margin of 40x. A real change in a formula, an input or the data is a change
in the compared bytes, or moves results by far more.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import zipfile
from pathlib import Path


ROUNDING_TOL = 1e-9
#: What `Lesson.write` does with a workbook's file.
WROTE, UP_TO_DATE, KEPT = "wrote", "up to date", "kept"
DIFFERENCES_SHOWN = 5

_CELL = re.compile(rb'<c r="([A-Z]+[0-9]+)"([^>]*?)(?:/>|>(.*?)</c>)', re.S)
_VALUE = re.compile(rb"<v>([^<]*)</v>")
_NUM_CACHE = re.compile(rb"<c:numCache>.*?</c:numCache>", re.S)
_CHART_POINT = re.compile(rb"<c:v>([^<]*)</c:v>")
_PLACEHOLDER = b"\x00"
_STAMP = b"written by lessonxl; sha256 of its parts: "


def differences(old: bytes, new: bytes, shown: int = DIFFERENCES_SHOWN) -> list[str]:
    """What differs between two .xlsx files beyond rounding, in words; empty when they are the same.

    At most `shown` numeric differences are listed (the first found), each with its part and both values.
    """
    if old == new:
        return []
    try:
        before, after = _parts(old), _parts(new)
    except zipfile.BadZipFile:
        return ["one of the files is not an .xlsx workbook"]
    found = []
    if before.keys() != after.keys():
        found.append("the parts differ: " + ", ".join(sorted(before.keys() ^ after.keys())))
    for name in sorted(before.keys() & after.keys()):
        found += _part_differences(name, before[name], after[name])
        if len(found) >= shown:
            break
    return found[:shown]


def same_workbook(old: bytes, new: bytes) -> bool:
    """Whether two .xlsx files hold the same workbook, their cached formula results equal to rounding."""
    return not differences(old, new, shown=1)


def same_file(path: Path, new: bytes) -> bool:
    """Whether the file at `path` exists and holds the same workbook as `new`."""
    try:
        return same_workbook(path.read_bytes(), new)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return False


def stamp(data: bytes) -> bytes:
    """The .xlsx file `data` with a digest of its parts in the zip comment: the mark of a file as
    lessonxl wrote it. Any application that saves the file again writes a new archive without it."""
    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.comment = _STAMP + _digest(archive)
    return buffer.getvalue()


def as_written(path: Path) -> bool:
    """Whether the file at `path` is still exactly as lessonxl wrote it (its stamp matches its parts)."""
    try:
        with zipfile.ZipFile(path) as archive:  # (the digest only when the comment is a stamp: 25 ms)
            return archive.comment.startswith(_STAMP) and archive.comment == _STAMP + _digest(archive)
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False


def _digest(archive: zipfile.ZipFile) -> bytes:
    digest = hashlib.sha256()
    for name in sorted(archive.namelist()):
        digest.update(name.encode() + b"\0" + archive.read(name) + b"\0")
    return digest.hexdigest().encode()


def _parts(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _part_differences(name: str, old: bytes, new: bytes) -> list[str]:
    if old == new:
        return []
    if name.startswith("xl/worksheets/") and name.endswith(".xml"):
        split = _split_worksheet
    elif name.startswith("xl/charts/") and name.endswith(".xml"):
        split = _split_chart
    else:
        return [f"{name} differs"]
    (old_shape, old_numbers), (new_shape, new_numbers) = split(old), split(new)
    if old_shape != new_shape or len(old_numbers) != len(new_numbers):
        return [f"{name} differs beyond cached values (a formula, an input, a label, a style or the layout)"]
    return [f"{name} {where}: {a!r} vs {b!r}" for (where, a), (_, b) in zip(old_numbers, new_numbers)
            if not _equal_to_rounding(a, b)]


def _equal_to_rounding(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= ROUNDING_TOL * (1 + max(abs(a), abs(b)))


def _split_worksheet(xml: bytes) -> tuple[bytes, list[tuple[str, float]]]:
    """The sheet with every cached formula result replaced by a placeholder, and those results."""
    numbers: list[tuple[str, float]] = []

    def cell(match: re.Match) -> bytes:
        ref, attributes, body = match.group(1), match.group(2), match.group(3)
        cached = body is not None and b" t=" not in attributes and b"<f" in body
        value = _VALUE.search(body) if cached else None
        if value is None:
            return match.group(0)
        numbers.append((ref.decode(), float(value.group(1))))
        start, end = match.span(3)
        body = body[:value.start(1)] + _PLACEHOLDER + body[value.end(1):]
        return match.group(0)[:start - match.start()] + body + match.group(0)[end - match.start():]

    return _CELL.sub(cell, xml), numbers


def _split_chart(xml: bytes) -> tuple[bytes, list[tuple[str, float]]]:
    """The chart with every cached series point replaced by a placeholder, and those points."""
    numbers: list[tuple[str, float]] = []

    def cache(match: re.Match) -> bytes:
        def point(p: re.Match) -> bytes:
            numbers.append((f"series point {len(numbers) + 1}", float(p.group(1))))
            return b"<c:v>" + _PLACEHOLDER + b"</c:v>"
        return _CHART_POINT.sub(point, match.group(0))

    return _NUM_CACHE.sub(cache, xml), numbers
