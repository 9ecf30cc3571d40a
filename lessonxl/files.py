"""A user's file, made safe to read: checked before anything reads it, and copied so that nothing ever
writes to it.

A file that is not a plausible, safe .xlsx workbook is refused with one line naming it, before anything
is inflated (zip bombs), run (macros) or followed (external links).
"""

from __future__ import annotations

import re
import shutil
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LessonxlError

#: A workbook whose parts inflate beyond this (or a file larger than this) is refused before anything
#: is decompressed: lessonxl's largest, collab_filter at 200 x 200 users x movies, inflates to 216 MB.
MAX_UNCOMPRESSED_BYTES = 1024 * 1024 * 1024
#: So is one whose parts inflate more than MAX_RATIO times their compressed size, beyond BOMB_FLOOR bytes:
#: a workbook's XML inflates 4 to 7 times (lessonxl's, measured; a part at most 12 times), a zip bomb a
#: thousand times.
MAX_RATIO, BOMB_FLOOR = 100, 16 * 1024 * 1024
#: More parts than this is no workbook lessonxl wrote (ours have a few dozen).
MAX_MEMBERS = 10_000
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# An encrypted (password-protected) .xlsx is an OLE compound file holding these streams.
_ENCRYPTED_STREAMS = ("EncryptedPackage".encode("utf-16-le"), "EncryptionInfo".encode("utf-16-le"))
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_CHUNK, _OUT_CHUNK = 1 << 16, 1 << 20



def check_file(path: Path, shown_as: Path | None = None) -> None:
    """Refuse, with one line naming the file, anything that is not a plausible, safe .xlsx workbook.

    Nothing is written and nothing is inflated beyond the sizes the archive declares, which are
    capped first: a zip bomb is refused before it is decompressed. Macros and external links are
    refused too: a workbook lessonxl made has neither, and LibreOffice must never run or follow them.
    """
    shown = shown_as if shown_as is not None else path
    _check_path(path, shown)
    head = _read_head(path, shown)
    if head.startswith(_OLE_SIGNATURE):
        if _is_encrypted_ole(path):
            raise LessonxlError(f"{shown}: is password-protected; open it, remove the password and save it "
                                "as an unprotected .xlsx workbook")
        raise LessonxlError(f"{shown}: is an Excel 97-2003 (.xls) file or another OLE document, not .xlsx; "
                            "save it as an .xlsx workbook")
    if not head.startswith(_ZIP_SIGNATURES):
        raise LessonxlError(f"{shown}: {_not_a_zip(head)}")
    if not zipfile.is_zipfile(path):
        raise LessonxlError(f"{shown}: is a damaged or truncated .xlsx workbook (its zip archive is incomplete)")
    try:
        with zipfile.ZipFile(path) as archive:
            _check_archive(archive, shown)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
            NotImplementedError, RuntimeError, struct.error) as error:
        raise LessonxlError(f"{shown}: is a damaged or truncated .xlsx workbook ({error})") from None


def _check_path(path: Path, shown: Path) -> None:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise LessonxlError(f"{shown}: no such file") from None
    except OSError as error:
        raise LessonxlError(f"{shown}: cannot be read ({error.strerror or error})") from None
    if stat.S_ISDIR(info.st_mode):
        raise LessonxlError(f"{shown}: is a folder, not a workbook")
    if not stat.S_ISREG(info.st_mode):
        raise LessonxlError(f"{shown}: is not a regular file (a device, pipe or socket), not a workbook")
    if info.st_size == 0:
        raise LessonxlError(f"{shown}: the file is empty")
    if info.st_size > MAX_UNCOMPRESSED_BYTES:
        raise LessonxlError(f"{shown}: is {info.st_size / 2**20:.0f} MB, more than the "
                            f"{MAX_UNCOMPRESSED_BYTES // 2**20} MB a lesson workbook can be; refused")


def _read_head(path: Path, shown: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(4096)
    except OSError as error:
        raise LessonxlError(f"{shown}: cannot be read ({error.strerror or error})") from None


def _is_encrypted_ole(path: Path) -> bool:
    """Whether an OLE compound file holds the streams of an encrypted Office document."""
    with path.open("rb") as handle:
        data = handle.read(MAX_UNCOMPRESSED_BYTES)
    return any(name in data for name in _ENCRYPTED_STREAMS)


def _not_a_zip(head: bytes) -> str:
    """Why a file that is not a zip archive is no workbook, as precisely as its first bytes tell."""
    if head.startswith(b"PK"):
        return "is a damaged or truncated .xlsx workbook (its zip archive is incomplete)"
    if b"\0" in head:
        return "is not an .xlsx workbook (not a zip archive)"
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    lines = [line for line in text.splitlines() if line.strip()][:5]
    if text.lstrip().startswith("<"):
        return "is an XML or HTML text file, not an .xlsx workbook"
    for separator in (",", ";", "\t"):
        if lines and all(separator in line for line in lines):
            return "is a CSV text file, not an .xlsx workbook"
    return "is a text file, not an .xlsx workbook"


def _check_archive(archive: zipfile.ZipFile, shown: Path) -> None:
    members = archive.infolist()
    names = {member.filename for member in members}
    if len(members) > MAX_MEMBERS:
        raise LessonxlError(f"{shown}: its zip archive has {len(members)} parts, too many for a workbook; refused")
    if len(names) != len(members):
        raise LessonxlError(f"{shown}: is a damaged .xlsx workbook (its zip archive repeats a part name)")
    inflated = sum(member.file_size for member in members)
    ratio = inflated / max(1, sum(member.compress_size for member in members))
    if inflated > MAX_UNCOMPRESSED_BYTES or (inflated > BOMB_FLOOR and ratio > MAX_RATIO):
        why = (f"more than the {MAX_UNCOMPRESSED_BYTES // 2**20:,} MB" if inflated > MAX_UNCOMPRESSED_BYTES
               else f"{ratio:,.0f} times their compressed size, more than the {MAX_RATIO}")
        raise LessonxlError(f"{shown}: its parts would inflate to {inflated / 2**20:,.0f} MB, {why} a lesson "
                            "workbook can (a zip bomb?); refused without inflating")
    if "mimetype" in names and archive.read("mimetype").startswith(b"application/vnd.oasis"):
        raise LessonxlError(f"{shown}: is an OpenDocument file (.ods), not .xlsx; save it as an .xlsx workbook")
    if not {"xl/workbook.xml", "[Content_Types].xml"} <= names:
        raise LessonxlError(f"{shown}: is a zip archive but not an .xlsx workbook")
    if any(member.flag_bits & 0x1 for member in members):
        raise LessonxlError(f"{shown}: is password-protected (encrypted zip parts); save it as an "
                            "unprotected .xlsx workbook")
    macros = sorted(name for name in names if name.lower().endswith("vbaproject.bin")
                    or name.lower().startswith("xl/macrosheets/"))
    if macros:
        raise LessonxlError(f"{shown}: carries macros ({macros[0]}); lessonxl never runs macros: save it as "
                            "a macro-free .xlsx workbook")
    if any(name.lower().startswith("xl/externallinks/") for name in names):
        raise LessonxlError(f"{shown}: links to other workbooks (external links); lessonxl does not follow "
                            "them: remove the links and save it again")
    for member in members:
        _check_member(archive, member, shown)


def _check_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, shown: Path) -> None:
    """Inflate one part, never past the size it declares, and check its CRC."""
    if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise LessonxlError(f"{shown}: is not an .xlsx workbook Excel writes (part {member.filename} uses "
                            f"compression method {member.compress_type})")
    handle = archive.fp
    handle.seek(member.header_offset)
    header = handle.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"part {member.filename} has no local header")
    fields = _LOCAL_HEADER.unpack(header)
    handle.seek(fields[9] + fields[10], 1)  # the name and the extra field
    left, produced, crc, pending = member.compress_size, 0, 0, b""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS) if member.compress_type == zipfile.ZIP_DEFLATED else None
    while True:
        if not pending and left:
            pending = handle.read(min(_CHUNK, left))
            if not pending:
                raise zipfile.BadZipFile(f"part {member.filename} is cut short")
            left -= len(pending)
        if inflater is None:
            data, pending = pending, b""
        else:
            # Never ask for more than one byte past the declared size: a lying size is caught early.
            data = inflater.decompress(pending, min(_OUT_CHUNK, member.file_size - produced + 1))
            pending = inflater.unconsumed_tail
        produced += len(data)
        if produced > member.file_size:
            raise LessonxlError(f"{shown}: part {member.filename} inflates beyond the size it declares "
                                "(a zip bomb or a damaged file); refused")
        crc = zlib.crc32(data, crc)
        if (inflater is not None and inflater.eof) or not (data or pending or left):
            break
    if produced != member.file_size or (inflater is not None and not inflater.eof):
        raise zipfile.BadZipFile(f"part {member.filename} is incomplete")
    if crc != member.CRC:
        raise zipfile.BadZipFile(f"part {member.filename} fails its checksum")


@dataclass(frozen=True)
class Staged:
    """A user's workbook, copied and checked: `saved` as the file holds it (its saved values included),
    `stripped` without any formula's saved value (what the recalculation engine gets); `logical`: the
    cells holding a typed TRUE or FALSE, by worksheet part (LibreOffice loads them as =TRUE() formulas)."""

    saved: Path
    stripped: Path
    logical: dict = field(default_factory=dict)


def stage(path: Path, folder: Path, index: int) -> Staged:
    """Checked copies of `path` in `folder`, so that nothing ever writes to the user's file.

    The copy is what is checked (and what LibreOffice and openpyxl read): a file that changes after
    the check cannot slip past it.
    """
    _check_path(path, path)
    name = f"{index:03d}_{_safe_stem(path)}.xlsx"
    (folder / "saved").mkdir(exist_ok=True)
    staged = Staged(folder / "saved" / name, folder / name)
    try:
        shutil.copyfile(path, staged.saved)
    except OSError as error:
        raise LessonxlError(f"{path}: cannot be read ({error.strerror or error})") from None
    try:
        check_file(staged.saved, shown_as=path)
        logical = strip_cached_values(staged.saved, staged.stripped)
    except LessonxlError:
        staged.saved.unlink(missing_ok=True)
        raise
    return Staged(staged.saved, staged.stripped, logical)


# A formula's cached result: the <v> right after its <f>...</f> or <f .../>. Written to start with the
# literal <v> (found fast) and removed without a template (which keeps re.sub in C): 4x faster than a
# pattern that starts with the formula.
_CACHED_RESULT = re.compile(rb"<v>(?:(?<=</f><v>)|(?<=/><v>))[^<]*</v>")
_LOGICAL_CONSTANT = re.compile(rb'<c r="([A-Z]+[0-9]+)"(?=[^>]*\bt="b")[^>]*>\s*<v>')


def strip_cached_values(path: Path, target: Path) -> dict[str, list[str]]:
    """Write `path` to `target` without any formula's cached result; the cells holding a typed TRUE or
    FALSE (no formula), by worksheet part.

    LibreOffice then has nothing to fall back on: measured with 7.4, a file whose inputs were edited
    without Excel (stale cached results) and whose math overflows came back with a 0 where a
    recalculated #NUM! belonged; the same file without cached results recalculates correctly.
    """
    logical = {}
    # Stored, not compressed: LibreOffice reads the copy at once, and nothing is inflated twice.
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as new:
        for item in old.infolist():
            data = old.read(item.filename)
            if item.filename.startswith("xl/worksheets/") and item.filename.endswith(".xml"):
                data = _CACHED_RESULT.sub(b"", data)
                if b't="b"' in data:
                    logical[item.filename] = [ref.decode() for ref in _LOGICAL_CONSTANT.findall(data)]
            new.writestr(item, data, compress_type=zipfile.ZIP_STORED)
    return logical


def _safe_stem(path: Path) -> str:
    """The file's stem with only characters that no shell, URL or LibreOffice option trips over."""
    stem = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "_" for ch in path.stem)
    return stem[:60] or "workbook"
