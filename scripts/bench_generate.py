"""Benchmark: `lessonxl generate` on each device, whole and by phase.

Whole: `python -m lessonxl generate --device D --out TMP` as a user runs it (a new process, imports
included), `--repeat` times, median; once with the workbooks made at once by worker processes, one per
core (the default), and once with `--jobs 1` (one after another, in one process). By phase, in one process after a warm-up build: for each
workbook, the default inputs (seeded data, training), torch's computation of every formula quantity
on the device (synchronised), and writing the file (layout, xlsxwriter, packaging); plus the first
CUDA call (context creation), which a fresh process pays once.

    .venv/bin/python scripts/bench_generate.py [--devices cpu cuda] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import time

from lessonxl.workers import cores


def whole(device: str, repeat: int, jobs: list[str]) -> float:
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "lessonxl", "generate", "--device", device, "--out", out, *jobs],
                           check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def phases(device_name: str) -> dict[str, dict[str, float]]:
    """Seconds per workbook and phase, in this process (torch imported and warm)."""
    import torch

    from lessonxl.lesson import pick_device
    from lessonxl.registry import LESSONS
    from lessonxl.sheets import Book
    from lessonxl.values import as_grid

    device = pick_device(device_name)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    table = {}
    for lesson in LESSONS:
        lesson.build(0, device)  # warm-up: first calls of every kernel
        start = time.perf_counter()
        inputs = {key: as_grid(value) for key, value in lesson.default_inputs(0).items()}
        defaults = time.perf_counter()
        values = {**inputs, **lesson.evaluate(inputs, device)}
        sync()
        computed = time.perf_counter()
        book = Book(io.BytesIO(), values, lesson.inputs, lesson.params)
        lesson.layout(book)
        book.close()
        written = time.perf_counter()
        table[lesson.name] = {"default inputs": defaults - start, "torch compute": computed - defaults,
                              "write file": written - computed}
    return table


def first_cuda_call() -> float:
    """Seconds of a fresh process's first CUDA call (context creation), measured in a subprocess."""
    code = ("import time, torch; s = time.perf_counter(); torch.zeros(1, device='cuda'); "
            "torch.cuda.synchronize(); print(time.perf_counter() - s)")
    return float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=["cpu"], choices=["cpu", "cuda"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for device in args.devices:
        print(f"## {device}: lessonxl generate (all workbooks, new process, median of {args.repeat}): "
              f"{whole(device, args.repeat, []):.2f} s ({cores()} cores, one worker each); "
              f"--jobs 1: {whole(device, args.repeat, ['--jobs', '1']):.2f} s")
        if device == "cuda":
            print(f"first CUDA call in a fresh process: {first_cuda_call():.2f} s")
        table = phases(device)
        names = list(next(iter(table.values())))
        print("| workbook | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        for lesson, row in table.items():
            print(f"| {lesson} | " + " | ".join(f"{row[name]:.3f} s" for name in names) + " |")
        totals = [sum(row[name] for row in table.values()) for name in names]
        print("| all | " + " | ".join(f"{total:.3f} s" for total in totals) + " |\n")


if __name__ == "__main__":
    main()
