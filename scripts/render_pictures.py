"""Render each workbook's sheets to PNG with headless LibreOffice, for the README.

Each workbook is recalculated and exported to PDF by LibreOffice with one page per sheet
(`SinglePageSheets`), then `pdftoppm` (poppler-utils) turns the pages into PNGs at --dpi, keeping the
top-left --width x --height pixels of each sheet (a legible corner rather than a shrunken whole):
docs/pictures/<workbook>-<sheet>.png. The notes sheets are skipped (text only).

    .venv/bin/python scripts/render_pictures.py [--out docs/pictures] [--dpi 80] [--width 1200] [--height 700]
        [--sheets SHEET ...] [WORKBOOK.xlsx ...]

The README's pictures:

    .venv/bin/python scripts/render_pictures.py --sheets bias gd_steps adam summary softmax \
        multiclass_xent l2_vs_wd_adam two_layer_net

Without workbooks, it renders every registered lesson generated afresh (seed 0).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import openpyxl

from lessonxl.recalc import make_profile, soffice_command

PDF_FILTER = 'pdf:calc_pdf_Export:{"SinglePageSheets":{"type":"boolean","value":"true"}}'
SKIPPED = {"notes"}


def render(workbook: Path, out: Path, width: int, height: int, dpi: int, work: Path,
           wanted: set[str] | None = None) -> list[Path]:
    """The top-left corner of each sheet of `workbook` (but the notes, or only those `wanted`) as PNGs."""
    sheets = openpyxl.load_workbook(workbook, read_only=True).sheetnames
    pdf = to_pdf(workbook, work)
    return [page_png(pdf, page, out / f"{workbook.stem}-{sheet}", dpi, (0, 0, width, height))
            for page, sheet in enumerate(sheets, start=1)
            if sheet not in SKIPPED and (not wanted or sheet in wanted)]


def to_pdf(workbook: Path, work: Path) -> Path:
    """`workbook` recalculated and exported by LibreOffice to a PDF of one page per sheet, under `work`."""
    pdf_dir = work / workbook.stem
    command = soffice_command([workbook], pdf_dir, make_profile(work / f"profile-{workbook.stem}"),
                              target=PDF_FILTER)
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return pdf_dir / (workbook.stem + ".pdf")


def page_png(pdf: Path, page: int, stem: Path, dpi: int, box: tuple[int, int, int, int]) -> Path:
    """Page `page` of `pdf` at `dpi`, cut to `box` (x, y, width, height in pixels), as `stem`.png."""
    x, y, width, height = box
    subprocess.run(["pdftoppm", "-png", "-singlefile", "-f", str(page), "-l", str(page), "-r", str(dpi),
                    "-x", str(x), "-y", str(y), "-W", str(width), "-H", str(height), str(pdf), str(stem)],
                   check=True)
    return stem.with_suffix(".png")


def require_pdftoppm(script: str) -> None:
    """Exit with a word on how to install pdftoppm where it is missing."""
    if not shutil.which("pdftoppm"):
        sys.exit(f"{script}: pdftoppm is needed (apt-get install poppler-utils)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workbooks", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/pictures"))
    parser.add_argument("--width", type=int, default=1200,
                        help="most pixels kept from the left of a sheet (wide sheets are cut)")
    parser.add_argument("--dpi", type=int, default=80, help="resolution of the rendering (default: 80)")
    parser.add_argument("--height", type=int, default=700,
                        help="most pixels kept from the top of a sheet (long sheets are cut)")
    parser.add_argument("--sheets", nargs="+", metavar="SHEET",
                        help="render only these sheets (default: every sheet but notes)")
    args = parser.parse_args()
    require_pdftoppm("render_pictures")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lessonxl-render-") as tmp:
        work = Path(tmp)
        workbooks = [path.resolve() for path in args.workbooks]
        if not workbooks:
            import torch

            from lessonxl.registry import LESSONS
            workbooks = [lesson.write(work / "workbooks", 0, torch.device("cpu"))[0] for lesson in LESSONS]
        for workbook in workbooks:
            for picture in render(workbook, args.out, args.width, args.height, args.dpi, work,
                                  set(args.sheets or ())):
                print(f"wrote {picture} ({picture.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
