"""Render the README's picture of a marked-up copy (`lessonxl verify --annotate`).

graddesc is generated afresh (seed 0), adam!K40 is broken as in issue 22 (the square of de/db dropped:
=adam_beta2*K39+(1-adam_beta2)*G40), verify writes the marked-up copy, LibreOffice exports it to PDF and
`pdftoppm` (poppler-utils) cuts the step table around the mistake, its comment open:
docs/pictures/graddesc-annotated.png.

    .venv/bin/python scripts/render_annotated.py [--out docs/pictures] [--dpi 72]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import zipfile
from pathlib import Path

import torch

from lessonxl.registry import by_name
from lessonxl.pipeline import verify_paths
from render_pictures import page_png, require_pdftoppm, to_pdf  # beside this script

# The step table's header row to row 20 of the adam sheet at 72 dpi, the comment of K40 included:
# x, y, width, height.
CROP = (0, 392, 1880, 300)
ADAM_PAGE = 7


def broken(source: Path, target: Path) -> None:
    """graddesc with adam!K40's square dropped (the sheet is the 7th part and page: notes, data, basic, ...)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            data = old.read(item.filename)
            if item.filename == "xl/worksheets/sheet7.xml":
                data, count = re.subn(rb'(<c r="K40"[^>]*><f>[^<]*)G40\^2(</f>)', rb"\1G40\2", data)
                assert count == 1, "adam!K40 is not where it was"
            new.writestr(item, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/pictures"))
    parser.add_argument("--dpi", type=int, default=72)
    args = parser.parse_args()
    require_pdftoppm("render_annotated")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lessonxl-render-") as tmp:
        work = Path(tmp)
        source = by_name("graddesc").write(work / "generated", 0, torch.device("cpu"))[0]
        path = work / "graddesc.xlsx"
        broken(source, path)
        [report] = verify_paths([path], device="cpu", annotate=work / "marked")
        assert report.annotated, report.error or "verify found nothing to mark"
        pdf = to_pdf(Path(report.annotated), work)
        box = tuple(round(pixels * args.dpi / 72) for pixels in CROP)
        picture = page_png(pdf, ADAM_PAGE, args.out / "graddesc-annotated", args.dpi, box)
        print(f"wrote {picture}")


if __name__ == "__main__":
    main()
