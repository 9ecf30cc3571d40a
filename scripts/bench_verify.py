"""Benchmark: wall time of `lessonxl generate` and `lessonxl verify` on every workbook, against the floor.

The floor is one bare LibreOffice conversion of the same files (fresh default profile, no forced
recalculation): what any LibreOffice-based check costs at least. Each command runs as a user runs it
(a new process), `--repeat` times; the median is reported. verify and the conversions take turns, round
by round, so that a machine busy with other work slows them alike; the ratio is the median of each
round's verify / floor.

    .venv/bin/python scripts/bench_verify.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lessonxl.recalc import make_profile, soffice_command


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def median_time(make_command, repeat: int) -> float:
    return statistics.median(timed(make_command(i)) for i in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    lessonxl = [sys.executable, "-m", "lessonxl"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        books = folder / "books"
        generate = median_time(lambda i: [*lessonxl, "generate", "--device", "cpu", "--out", str(books)],
                               args.repeat)
        files = sorted(books.glob("*.xlsx"))
        rounds = []
        for i in range(args.repeat):
            rounds.append((
                timed([*lessonxl, "verify", "--device", "cpu", *map(str, files)]),
                timed(soffice_command(files, folder / f"bare{i}", make_profile(folder / f"profile{i}", _EMPTY))),
                timed(soffice_command(files, folder / f"forced{i}", make_profile(folder / f"forced_profile{i}")))))
        verify, bare, forced = (statistics.median(column) for column in zip(*rounds))
        ratio = statistics.median(v / b for v, b, _ in rounds)
    print(f"{len(files)} workbooks ({', '.join(f.name for f in files)}), median of {args.repeat} runs")
    print(f"{'lessonxl generate':<40} {generate:7.2f} s")
    print(f"{'lessonxl verify':<40} {verify:7.2f} s")
    print(f"{'floor: one bare LibreOffice conversion':<40} {bare:7.2f} s")
    print(f"{'  the same, recalculation forced':<40} {forced:7.2f} s")
    print(f"{'verify / floor':<40} {ratio:7.2f} x   (target: within 1.2 x, aiming at 1.0 x)")


_EMPTY = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry"></oor:items>
"""

if __name__ == "__main__":
    main()
