"""Grade a class: N graddesc exercise submissions, mixed, verified in one run with a gradebook.

    .venv/bin/python scripts/bench_exercise.py [--students 100] [--folder /tmp/class] [--jobs N] [--engine-only]

Makes the exercise and the full workbook, then N submissions as students would hand them in (formulas
typed into the empty cells, `tests/exercise_fill.py`): 40% right, 20% with a block left empty, 20% half
done, 20% with Adam's second moment wrong (beta1 for beta2). Then times
`lessonxl verify -q --csv FOLDER/grades.csv --junit FOLDER/grades.xml FOLDER/submissions` and prints the
seconds and the gradebook's verdicts.

`--engine-only` times LibreOffice's share alone instead: the same submissions staged as verify stages
them (a copy without saved results), then recalculated and read back by `--jobs` engines (default 2)
through lessonxl's `recalc.Engine`, with no torch, comparison or grading: the floor under verify's time
on this machine, and the CPU seconds LibreOffice spends on one file.
"""

from __future__ import annotations

import argparse
import collections
import csv
import os
import subprocess
import sys
import tempfile
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


def session_cpu(session: int) -> float:
    """CPU seconds used so far by the running processes of `session` (Linux /proc): an engine's LibreOffice
    is soffice's wrapper, oosplash and soffice.bin, none of them waited for by this process, so that
    getrusage's children do not count them."""
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # the fields after the name: state, ppid, pgrp, session, ...
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def engine_only(submissions: list[Path], jobs: int) -> None:
    """Stage `submissions` and recalculate them with `jobs` LibreOffices, files dealt out in turn; print the
    seconds and the CPU seconds of LibreOffice and its bridges."""
    from lessonxl import files
    from lessonxl.recalc import Engine

    with tempfile.TemporaryDirectory(prefix="lessonxl-engine-only-") as tmp:
        folder = Path(tmp)
        begun = time.perf_counter()
        staged = [files.stage(path, folder, index).stripped for index, path in enumerate(submissions)]
        staging = time.perf_counter() - begun
        engines = [Engine(folder / f"engine{slot}", run_folder=folder) for slot in range(jobs)]
        begun = time.perf_counter()
        try:
            tickets = [(engines[k % jobs], engines[k % jobs].submit(path)) for k, path in enumerate(staged)]
            cells = sum(len(row) for engine, ticket in tickets
                        for sheet in engine.result(ticket)["sheets"] for row in sheet["rows"])
            seconds = time.perf_counter() - begun
            # Each engine's LibreOffice and its bridge run in sessions of their own (start_new_session).
            cpu = sum(session_cpu(process.pid) for engine in engines for process in (engine._soffice, engine._bridge))
        finally:
            for engine in engines:
                engine.close()
    print(f"LibreOffice alone, {jobs} engine(s): {len(staged)} submissions loaded, recalculated and read back "
          f"({cells} cells) in {seconds:.1f} s; staging them took {staging:.1f} s; LibreOffice and its bridges "
          f"used {cpu:.1f} CPU s, {cpu / len(staged):.2f} a file (starting included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/lessonxl-class"))
    parser.add_argument("--jobs", type=int, help="passed to verify as --jobs")
    parser.add_argument("--engine-only", action="store_true",
                        help="time LibreOffice alone on the submissions (no torch, no grading)")
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
    if args.engine_only:
        sys.path.insert(0, str(ROOT))
        engine_only(sorted(submissions.glob("*.xlsx")), args.jobs or 2)
        return
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
