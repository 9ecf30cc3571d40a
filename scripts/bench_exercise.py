"""Grade a class: N graddesc exercise submissions, mixed, verified in one run with a gradebook.

    .venv/bin/python scripts/bench_exercise.py [--students 100] [--folder /tmp/class] [--jobs N]

Makes the exercise and the full workbook, then N submissions as students would hand them in (formulas
typed into the empty cells, `tests/exercise_fill.py`): 40% right, 20% with a block left empty, 20% half
done, 20% with Adam's second moment wrong (beta1 for beta2). Then times
`lessonxl verify -q --csv FOLDER/grades.csv --junit FOLDER/grades.xml FOLDER/submissions` and prints the
seconds and the gradebook's verdicts.
"""

from __future__ import annotations

import argparse
import collections
import csv
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from exercise_fill import student  # noqa: E402

BLOCKS = ["momentum!I28:J627", "momentum!K28:L627", "adam!I28:J627", "adam!K28:L627", "adam!M28:N627"]


def wrong_v(sheet: str, cell: str, formula: str) -> str:
    return formula.replace("adam_beta2*", "adam_beta1*") if sheet == "adam" and cell.startswith("K") else formula


KINDS = {  # kind -> (share of the class, how the student fills the exercise)
    "right": (0.4, dict(ranges=BLOCKS)),
    "one_empty": (0.2, dict(ranges=BLOCKS[:3] + BLOCKS[4:])),
    "half_done": (0.2, dict(ranges=BLOCKS, rows=300)),
    "wrong": (0.2, dict(ranges=BLOCKS, change=wrong_v)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/lessonxl-class"))
    parser.add_argument("--jobs", type=int, help="passed to verify as --jobs")
    args = parser.parse_args()
    lessonxl = [sys.executable, "-m", "lessonxl"]
    made = args.folder / "made"
    subprocess.run([*lessonxl, "generate", "--out", made, "graddesc"], check=True, capture_output=True)
    subprocess.run([*lessonxl, "generate", "--exercise", "--out", made, "graddesc"], check=True, capture_output=True)
    submissions = args.folder / "submissions"
    submissions.mkdir(parents=True, exist_ok=True)
    for old in submissions.glob("*.xlsx"):
        old.unlink()
    plan = [kind for kind, (share, _) in KINDS.items() for _ in range(round(share * args.students))]
    for number, kind in enumerate(plan):
        student(made / "graddesc_exercise.xlsx", made / "graddesc.xlsx",
                submissions / f"student{number:03d}_{kind}.xlsx", **KINDS[kind][1])
    command = [*lessonxl, "verify", "-q", "--csv", args.folder / "grades.csv", "--junit", args.folder / "grades.xml",
               *(["--jobs", str(args.jobs)] if args.jobs else []), submissions]
    begun = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - begun
    with open(args.folder / "grades.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    tally = collections.Counter((Path(row["file"]).stem.split("_", 1)[1], row["verdict"], row["blocks_right"])
                                for row in rows)
    print(f"{len(rows)} submissions graded in {seconds:.1f} s (exit {result.returncode}): "
          f"{' '.join(map(str, command))}")
    for (kind, verdict, right), count in sorted(tally.items()):
        print(f"  {kind:<10} {verdict} {right} of 5 blocks right: {count}")


if __name__ == "__main__":
    main()
