"""Make tests/fixtures/<workbook>_<release>_edited.xlsx: each workbook as a release wrote it, one input
edited and the file saved through LibreOffice, as a user does (tests/test_releases.py verifies them).

A release's workbook is the one committed at the commit that set its version in pyproject.toml (0.1.0
1e430b6, 0.2.0 6263b60, 0.3.0 fa05ff8, 0.4.0 0497f3c), taken from git history. Identical bytes make one
fixture, named for the first release that wrote them (`RELEASES` in tests/test_releases.py says which
release each fixture serves). At 1e430b6 only entropy_example.xlsx was committed; the other three
workbooks of 0.1.0's last commit (48fadc5) are byte-identical to 0.2.0's. entropy_example.xlsx of 0.2.0 to
0.4.0 (4ea3a00d) differs from 0.1.0's only by lessonxl's stamp in the zip comment, which LibreOffice does
not keep: edited and saved, the two are byte-identical (measured), so one fixture serves both.

Each source's git blob id is checked, one number is typed into the input cell (its XML rewritten, the cell
keeping its style; the formulas' cached values left stale), and LibreOffice opens and saves the file
(`Recalculation`: headless, recalculating on load, as the tests' `resave_with_libreoffice`).

    .venv/bin/python scripts/make_release_fixtures.py      # from the repository root; about 30 s
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from openpyxl.utils import get_column_letter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lessonxl import reader  # noqa: E402

try:  # the tests' LibreOffice conversion (tests/libreoffice.py; lessonxl.recalc held it up to 0.4.0)
    sys.path.insert(0, str(ROOT / "tests"))
    from libreoffice import Recalculation  # noqa: E402
except ImportError:
    from lessonxl.recalc import Recalculation  # noqa: E402

# fixture release, commit, workbook, git blob of the workbook there, edited input (key, row, col from 0), value
FIXTURES = [
    ("0.1.0", "1e430b6", "entropy_example", "ed3e322e173507d96504e2930c75fa6f6e86890a", "softmax!logits", 0, 0, 1.5),
    ("0.2.0", "6263b60", "collab_filter", "0a07a11b248184ed371a8bf4588bdef82ea7dfc7", "gd_steps!lr", 0, 0, 0.5),
    ("0.3.0", "fa05ff8", "collab_filter", "7ab61d000c3e12b7f132833d98992bdd28406e3e", "gd_steps!lr", 0, 0, 0.5),
    ("0.2.0", "6263b60", "graddesc", "f191d39e032358d61dde6f919a5485c775f3953b", "adam!lr", 0, 0, 0.1),
    ("0.3.0", "fa05ff8", "graddesc", "5f6695ddd4e297b98bdbc596204a105b50cabe8e", "adam!lr", 0, 0, 0.1),
    ("0.2.0", "6263b60", "regularization", "e52d668dc25f8ea8675835c0ea787418f9dc8717", "l2_vs_wd_adam!wd", 0, 0, 0.1),
]


def type_number(path: Path, sheet: str, cell: str, value: float) -> None:
    """`value` typed into `cell` of `sheet`, in place: the number in the cell's <v> replaced."""
    parts = reader.outline(path).parts
    part = next(part for part, title in parts.items() if title == sheet)
    edited = path.with_suffix(".edit")
    with zipfile.ZipFile(path) as old, zipfile.ZipFile(edited, "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            data = old.read(item.filename)
            if item.filename == part:
                pattern = re.compile(rf'(<c r="{cell}"[^>]*>)<v>[^<]*</v>')
                xml, count = pattern.subn(lambda m: f"{m.group(1)}<v>{value!r}</v>", data.decode(), count=1)
                assert count == 1, f"{sheet}!{cell} holds no number"
                data = xml.encode()
            new.writestr(item, data)
    edited.replace(path)


def main() -> None:
    out = ROOT / "tests" / "fixtures"
    with tempfile.TemporaryDirectory(prefix="release-fixtures-") as tmp:
        folder = Path(tmp)
        sources = []
        for release, commit, workbook, blob, key, row, col, value in FIXTURES:
            found = subprocess.run(["git", "rev-parse", f"{commit}:workbooks/{workbook}.xlsx"], cwd=ROOT,
                                   capture_output=True, text=True, check=True).stdout.strip()
            assert found == blob, f"{commit}:workbooks/{workbook}.xlsx is {found}, not {blob}"
            source = folder / f"{workbook}_{release}_edited.xlsx"
            source.write_bytes(subprocess.run(["git", "cat-file", "blob", blob], cwd=ROOT, capture_output=True,
                                              check=True).stdout)
            area = reader.outline(source).names[key]
            cell = f"{get_column_letter(area.min_col + col)}{area.min_row + row}"
            type_number(source, area.sheet, cell, value)
            sources.append(source)
            print(f"{source.name}: {key} ({area.sheet}!{cell}) = {value}")
        saved = Recalculation(sources, folder / "saved").wait()
        for source, copy in saved.items():
            assert copy is not None, f"LibreOffice did not save {source.name}"
            shutil.copyfile(copy, out / source.name)
            print(f"{out / source.name}: {copy.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
