"""Hostile and broken input, and LibreOffice misbehaving: `verify` answers each with exit 2 and one line.

Every case checks the whole contract: exit status 2, exactly one line on stderr that names the file and
the problem, no traceback, nothing on stdout, and the input file byte-identical afterwards. Files that
are refused before LibreOffice is needed are run with a fake `soffice` that records being started, so
the tests also show that LibreOffice never sees them (a zip bomb is never inflated, a macro never runs).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from lessonxl import cli, files, recalc
from lessonxl.pipeline import verify_paths

from conftest import rewrite_part, run_cli, set_value, sheet_parts

FAKE_SOFFICE_MARK = "fake soffice was started"


def digest(path: Path):
    """The file's SHA-256, or what it is when it is not a regular file."""
    if not path.exists():
        return "absent"
    if path.is_dir():
        return "folder"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fake_soffice(folder: Path, body: str) -> Path:
    """An executable shell script standing in for LibreOffice."""
    script = folder / "fake-soffice"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture
def no_libreoffice(tmp_path, monkeypatch) -> Path:
    """LESSONXL_SOFFICE points at a script that only leaves a mark; the mark's path is returned."""
    mark = tmp_path / "soffice-started"
    monkeypatch.setenv("LESSONXL_SOFFICE", str(fake_soffice(tmp_path, f"echo '{FAKE_SOFFICE_MARK}' > '{mark}'")))
    return mark


def one_line_refusal(capsys, path: Path, *needles: str) -> str:
    """Run `lessonxl verify PATH` in-process; assert the contract for an unusable file; the line."""
    before = digest(path)
    code = cli.main(["verify", "--device", "cpu", str(path)])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith(f"lessonxl verify: {path}: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    assert digest(path) == before, "verify changed the file it was given"
    return err.strip()


# ---------------------------------------------------------------------------------------------
# Files that are no workbook at all


def _truncated(generated, tmp_path) -> Path:
    path = tmp_path / "truncated.xlsx"
    data = generated["entropy_example"].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _not_lessonxl(generated, tmp_path) -> Path:
    import openpyxl
    path = tmp_path / "budget.xlsx"
    book = openpyxl.Workbook()
    book.active.title = "budget"
    book.active["A1"], book.active["A2"], book.active["A3"] = 1.5, 2.5, "=A1+A2"
    book.save(path)
    return path


def _text(name: str, content: bytes):
    def make(generated, tmp_path) -> Path:
        path = tmp_path / name
        path.write_bytes(content)
        return path
    return make


def _folder(generated, tmp_path) -> Path:
    path = tmp_path / "folder.xlsx"
    path.mkdir()
    return path


def _ods(generated, tmp_path) -> Path:
    path = tmp_path / "sheet.ods"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", "<office:document-content/>")
    return path


NOT_WORKBOOKS = {
    "nonexistent": (lambda generated, tmp_path: tmp_path / "nope.xlsx", "no such file"),
    "folder": (_folder, "a folder with no .xlsx workbook in it"),  # a folder's workbooks are verified
    "empty": (_text("empty.xlsx", b""), "the file is empty"),
    "text named .xlsx": (_text("notes.xlsx", b"my notes on the lesson\nsoftmax is exp / sum\n"),
                         "is a text file, not an .xlsx workbook"),
    "csv": (_text("ratings.csv", b"userId,movieId,rating\n1,31,2.5\n1,1029,3.0\n"),
            "is a CSV text file, not an .xlsx workbook"),
    "csv named .xlsx": (_text("ratings.xlsx", b"userId;movieId;rating\n1;31;2.5\n"),
                        "is a CSV text file, not an .xlsx workbook"),
    "binary": (_text("noise.xlsx", bytes(range(256)) * 4), "is not an .xlsx workbook (not a zip archive)"),
    "truncated": (_truncated, "is a damaged or truncated .xlsx workbook (its zip archive is incomplete)"),
    "ods": (_ods, "is an OpenDocument file (.ods)"),
    "not made by lessonxl": (_not_lessonxl, "was not made by lessonxl"),
}


@pytest.mark.parametrize("case", NOT_WORKBOOKS)
def test_a_file_that_is_no_lessonxl_workbook_is_refused_in_one_line(generated, tmp_path, capsys, case,
                                                                    no_libreoffice):
    make, needle = NOT_WORKBOOKS[case]
    path = make(generated, tmp_path)
    one_line_refusal(capsys, path, needle)
    assert not no_libreoffice.exists(), "refused only after LibreOffice started"


def test_refusals_through_the_real_command_line_one_line_per_file(generated, tmp_path):
    """All the unusable files at once, as a user's shell runs it: an ERROR line each, in order, then the
    count; a folder without workbooks is said once on stderr (it names no file); exit 2."""
    cases = {case: make(generated, tmp_path) for case, (make, _) in NOT_WORKBOOKS.items()}
    before = {case: digest(path) for case, path in cases.items()}
    result = run_cli("verify", "--device", "cpu", *cases.values())
    assert result.returncode == 2
    assert result.stderr == f"lessonxl verify: {cases['folder']}: a folder with no .xlsx workbook in it\n"
    files = {case: path for case, path in cases.items() if case != "folder"}
    *lines, counts = result.stdout.splitlines()
    assert len(lines) == len(files), result.stdout
    for line, (case, path) in zip(lines, files.items()):
        assert line.startswith(f"ERROR {path}: ") and NOT_WORKBOOKS[case][1] in line, line
    assert counts == f"{len(files)} files: 0 passed, 0 failed, {len(files)} unusable"
    assert {case: digest(path) for case, path in cases.items()} == before


def test_a_good_file_beside_a_broken_one_is_still_verified(generated, tmp_path):
    """The broken file is a line among the others, in the order given, and counted; exit 2 wins over 0."""
    broken = _truncated(generated, tmp_path)
    result = run_cli("verify", "--device", "cpu", broken, generated["entropy_example"])
    assert result.returncode == 2 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"ERROR {broken}: is a damaged or truncated .xlsx workbook")
    assert lines[1].startswith(f"PASS {generated['entropy_example']}: ")
    assert lines[-1] == "2 files: 1 passed, 0 failed, 1 unusable"


# ---------------------------------------------------------------------------------------------
# Zip bombs, encryption, macros, external links: refused before LibreOffice or openpyxl inflate them


def test_a_zip_bomb_is_refused_before_inflating(tmp_path, capsys, no_libreoffice):
    """300 MB of zeros in a 300 KB file: the declared sizes alone refuse it."""
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as member:
            zeros = bytes(1 << 20)
            for _ in range(300):
                member.write(zeros)
    assert path.stat().st_size < 2 << 20
    start = time.perf_counter()
    one_line_refusal(capsys, path, "would inflate to 300 MB", "times their compressed size, more than the 100",
                     "refused without inflating")
    assert time.perf_counter() - start < 5
    assert not no_libreoffice.exists(), "LibreOffice was given the zip bomb"


def test_a_workbook_larger_than_any_lessonxl_makes_is_refused(tmp_path, capsys, no_libreoffice, monkeypatch):
    """Parts that compress as a workbook does (a few times), inflating past the size limit (made 1 MB here)."""
    monkeypatch.setattr(files, "MAX_UNCOMPRESSED_BYTES", 1 << 20)
    path = tmp_path / "huge.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", "".join(random.Random(0).choices("01", k=2 << 20)))
    one_line_refusal(capsys, path, "would inflate to 2 MB, more than the 1 MB", "refused without inflating")
    assert not no_libreoffice.exists()


def _patch_sizes(path: Path, member: str, declared: int) -> None:
    """Make the central directory and local header of `member` declare `declared` bytes."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_len = int.from_bytes(data[central + 28:central + 30], "little")
        if data[central + 46:central + 46 + name_len] == name:
            data[central + 24:central + 28] = declared.to_bytes(4, "little")
            local = int.from_bytes(data[central + 42:central + 46], "little")
            data[local + 22:local + 26] = declared.to_bytes(4, "little")
            path.write_bytes(bytes(data))
            return
        central = data.find(b"PK\x01\x02", central + 4)
    raise AssertionError(f"{member} not in {path}")


def test_a_zip_bomb_lying_about_its_sizes_is_stopped_at_the_declared_size(generated, tmp_path, capsys,
                                                                          no_libreoffice):
    """A part that declares 1 kB but holds 50 MB of zeros: inflation stops past the declared size."""
    path = tmp_path / "liar.xlsx"
    shutil.copyfile(generated["entropy_example"], path)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/media/padding.bin", bytes(50 << 20))
    _patch_sizes(path, "xl/media/padding.bin", 1000)
    one_line_refusal(capsys, path, "xl/media/padding.bin inflates beyond the size it declares")
    assert not no_libreoffice.exists()


def test_a_damaged_part_is_caught_by_its_checksum(generated, tmp_path, capsys, no_libreoffice):
    path = tmp_path / "flipped.xlsx"
    with zipfile.ZipFile(generated["entropy_example"]) as old, zipfile.ZipFile(path, "w") as new:
        for item in old.infolist():  # stored, so that a flipped byte stays a valid zip
            new.writestr(item.filename, old.read(item.filename), zipfile.ZIP_STORED)
    data = bytearray(path.read_bytes())
    spot = data.find(b"<sheetData>")
    data[spot + 1] ^= 0x20
    path.write_bytes(bytes(data))
    one_line_refusal(capsys, path, "damaged", "fails its checksum")


def _ole(*stream_names: str) -> bytes:
    """A synthetic OLE compound file: the signature, a header sector, and a directory sector naming
    `stream_names` in UTF-16, as an encrypted .xlsx (EncryptionInfo, EncryptedPackage) holds them.
    Not a complete compound file: lessonxl only needs to tell it apart, and never parses further."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16) + b"\x3e\x00\x03\x00\xfe\xff\x09\x00"
    header = header.ljust(512, b"\0")
    directory = b"".join(("Root Entry", *stream_names)[i].encode("utf-16-le").ljust(64, b"\0")
                         + bytes(64) for i in range(len(stream_names) + 1))
    return header + directory.ljust(512 * ((len(directory) + 511) // 512), b"\0")


def test_a_password_protected_workbook_is_refused(tmp_path, capsys, no_libreoffice):
    """Encrypted .xlsx files are OLE containers; this one is synthetic (see `_ole`)."""
    path = tmp_path / "protected.xlsx"
    path.write_bytes(_ole("\x06DataSpaces", "EncryptionInfo", "EncryptedPackage"))
    one_line_refusal(capsys, path, "is password-protected", "remove the password")
    old = tmp_path / "old.xls"
    old.write_bytes(_ole("Workbook", "\x05SummaryInformation"))
    one_line_refusal(capsys, old, "Excel 97-2003 (.xls)")
    assert not no_libreoffice.exists()


def test_a_workbook_with_encrypted_zip_parts_is_refused(generated, tmp_path, capsys, no_libreoffice):
    path = tmp_path / "zipcrypto.xlsx"
    shutil.copyfile(generated["entropy_example"], path)
    data = bytearray(path.read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central + 8] |= 0x1  # the "encrypted" flag of the first part
    path.write_bytes(bytes(data))
    one_line_refusal(capsys, path, "is password-protected (encrypted zip parts)")


def _with_part(generated, tmp_path, name: str, part: str, content: bytes) -> Path:
    path = tmp_path / name
    shutil.copyfile(generated["entropy_example"], path)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(part, content)
    return path


@pytest.mark.parametrize("part", ["xl/vbaProject.bin", "xl/macrosheets/sheet1.xml"])
def test_a_workbook_with_macros_is_refused_and_nothing_runs(generated, tmp_path, capsys, no_libreoffice,
                                                           part):
    """A VBA project or an Excel 4 macro sheet: refused before LibreOffice (or anything) opens it."""
    path = _with_part(generated, tmp_path, "macros.xlsm", part, _ole("VBA", "PROJECT", "dir"))
    one_line_refusal(capsys, path, "carries macros", part, "never runs macros")
    assert not no_libreoffice.exists(), "LibreOffice was started on a workbook with macros"


def test_libreoffice_runs_with_macros_disabled_and_links_never_updated(tmp_path):
    """Defence in depth: even a file that got past the checks meets a profile that runs no macro."""
    import xml.etree.ElementTree as ET
    profile = recalc.make_profile(tmp_path / "profile")
    tree = ET.parse(profile / "user" / "registrymodifications.xcu")
    settings = {(item.get("{http://openoffice.org/2001/registry}path"), prop.get(
        "{http://openoffice.org/2001/registry}name")): prop.findtext("value")
                for item in tree.getroot() for prop in item}
    scripting = "/org.openoffice.Office.Common/Security/Scripting"
    assert settings[(scripting, "DisableMacrosExecution")] == "true"
    assert settings[(scripting, "MacroSecurityLevel")] == "3"
    assert settings[("/org.openoffice.Office.Calc/Content/Update", "Link")] == "1"
    assert settings[("/org.openoffice.Office.Calc/Formula/Load", "OOXMLRecalcMode")] == "0"


def test_a_workbook_with_external_links_is_refused(generated, tmp_path, capsys, no_libreoffice):
    path = _with_part(generated, tmp_path, "linked.xlsx", "xl/externalLinks/externalLink1.xml",
                      b"<externalLink/>")
    one_line_refusal(capsys, path, "links to other workbooks")
    assert not no_libreoffice.exists()


# ---------------------------------------------------------------------------------------------
# Inputs that hold something other than a number


def defined_cell(path: Path, sheet: str, name: str) -> str:
    """The top-left cell (e.g. B6) of the sheet's name `sheet!name`: the defined name sheet_name in the file."""
    with zipfile.ZipFile(path) as archive:
        xml = archive.read("xl/workbook.xml").decode()
    found = re.search(rf'<definedName name="{sheet}_{name}">{sheet}!\$([A-Z]+)\$(\d+)', xml)
    assert found, f"{sheet}!{name} is not defined in {path.name}"
    return found.group(1) + found.group(2)


def set_cell_xml(source: Path, target: Path, sheet: str, cell: str, text: str | None) -> None:
    """Replace the number in `cell` by the string `text`, or (None) leave the cell blank."""
    def edit(xml: str) -> str:
        pattern = re.compile(rf'<c r="{cell}"( s="\d+")?[^>]*><v>[^<]*</v></c>')
        assert pattern.search(xml), f"{sheet}!{cell} holds no number"
        replacement = (lambda m: f'<c r="{cell}"{m.group(1) or ""}/>') if text is None else \
            (lambda m: f'<c r="{cell}"{m.group(1) or ""} t="inlineStr"><is><t>{text}</t></is></c>')
        return pattern.sub(replacement, xml, count=1)
    rewrite_part(source, target, sheet_parts(source)[sheet], edit)


@pytest.mark.parametrize("content, needle", [("twelve", 'holds the text "twelve"; a number belongs there'),
                                             (None, "is empty; a number belongs there")])
def test_an_input_cell_without_a_number_is_named(generated, tmp_path, capsys, content, needle):
    cell = defined_cell(generated["entropy_example"], "softmax", "logits")
    path = tmp_path / "edited.xlsx"
    set_cell_xml(generated["entropy_example"], path, "softmax", cell, content)
    line = one_line_refusal(capsys, path, f"input cell softmax!{cell}", needle)
    assert line.count(str(path)) == 1


# ---------------------------------------------------------------------------------------------
# Overflow and out-of-domain inputs: compared (torch inf/nan vs sheet error values), never a crash


def test_ln_of_a_negative_number_is_compared_not_a_crash(generated, tmp_path):
    cell = defined_cell(generated["entropy_example"], "binary_xent", "predicted")
    path = tmp_path / "negative_p.xlsx"
    set_value(generated["entropy_example"], path, "binary_xent", cell, -0.5)
    result = run_cli("verify", "--device", "cpu", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert "note: these inputs overflow or leave the math's domain" in result.stdout
    assert re.search(r"torch gives inf or nan in [1-9]\d* cells", result.stdout)


def test_a_huge_learning_rate_overflows_and_is_compared_not_a_crash(generated, tmp_path):
    """lr = 1e300: the weights overflow to inf then nan in torch and to #NUM! in the sheet."""
    cell = defined_cell(generated["graddesc"], "basic", "lr")
    path = tmp_path / "huge_lr.xlsx"
    set_value(generated["graddesc"], path, "basic", cell, 1e300)
    result = run_cli("verify", "--json", "--device", "cpu", path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert result.stderr == ""
    [report] = json.loads(result.stdout)
    overflowed = [c for c in report["checks"] if c["sheet"] == "basic" and c["non_finite"]]
    assert overflowed, "lr = 1e300 should overflow the basic sheet"
    assert all(c["sheet_errors"] == c["non_finite"] and c["passed"] for c in overflowed)


# ---------------------------------------------------------------------------------------------
# LibreOffice failing: hung, crashed, silent; and several runs at once


def test_a_hung_libreoffice_is_killed_after_the_timeout(generated, tmp_path):
    pids = tmp_path / "pids"
    script = fake_soffice(tmp_path, f"sleep 300 &\necho $$ $! > '{pids}'\nwait")
    path = generated["entropy_example"]
    start = time.perf_counter()
    result = run_cli("verify", "--device", "cpu", "--timeout", "3", path,
                     env={**os.environ, "LESSONXL_SOFFICE": str(script)})
    elapsed = time.perf_counter() - start
    assert result.returncode == 2
    assert result.stderr == (f"lessonxl verify: {path}: LibreOffice did not start within 3 s "
                             "and was stopped (a larger --timeout may help)\n")
    assert elapsed < 60
    for pid in map(int, pids.read_text().split()):  # the script and the child it started are gone
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid), f"process {pid} of the hung LibreOffice survived"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead; only its parent has not looked yet
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return True


CRASHES = {
    "exits non-zero": ("echo 'soffice.bin: fatal error, cannot load the Calc filter' >&2\nexit 77",
                       "LibreOffice failed (exit code 77) while recalculating: soffice.bin: fatal error, "
                       "cannot load the Calc filter"),
    "killed by a signal": ("kill -SEGV $$", "LibreOffice crashed (SIGSEGV) while recalculating"),
    "exits at once": ("echo 'Error: source file could not be loaded'\nexit 0",
                      "LibreOffice exited before it could recalculate: Error: source file could not be loaded"),
}


@pytest.mark.parametrize("case", CRASHES)
def test_a_crashed_libreoffice_is_reported_in_one_line(generated, tmp_path, capsys, monkeypatch, case):
    body, message = CRASHES[case]
    monkeypatch.setenv("LESSONXL_SOFFICE", str(fake_soffice(tmp_path, body)))
    line = one_line_refusal(capsys, generated["entropy_example"])
    assert line == f"lessonxl verify: {generated['entropy_example']}: {message}"


def test_a_libreoffice_that_asks_to_be_restarted_is_started_again(generated, tmp_path, capsys, monkeypatch):
    """soffice may exit with 81 after setting up a new profile; the second start does the work."""
    first = tmp_path / "started-once"
    body = f"if [ -e {first} ]; then exec {shutil.which('soffice')} \"$@\"; fi\ntouch {first}\nexit 81"
    monkeypatch.setenv("LESSONXL_SOFFICE", str(fake_soffice(tmp_path, body)))
    [report] = verify_paths([generated["entropy_example"]], device="cpu")
    assert first.exists() and report.passed


def test_three_verify_runs_at_once_on_the_same_file_all_pass(generated):
    path = generated["entropy_example"]
    before = digest(path)
    command = [sys.executable, "-m", "lessonxl", "verify", "--device", "cpu", str(path)]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(3)]
    results = [(run.wait(timeout=300), *run.communicate()) for run in runs]
    for code, out, err in results:
        assert code == 0, out + err
        assert out.startswith(f"PASS {path}: entropy_example, 249 of 249 formula cells equal torch") and err == ""
    assert digest(path) == before
