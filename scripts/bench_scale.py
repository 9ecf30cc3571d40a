"""Benchmark: how collab_filter scales with the crosstab: users x movies from 15 to 200.

For each size, in its own temporary folder, each command runs as a user runs it (a new process):

- `lessonxl generate --users N --movies N [--factors K] [--ratings FILE] --out DIR collab_filter`;
- the written workbook's formula cells (counted in the sheet XML, streaming: `<f>` elements, an array
  formula counted once per cell of its range) and its file size;
- `lessonxl verify --timeout T FILE` (verify's LibreOffice timeout raised to the benchmark's own, so a big
  workbook is measured rather than cut off at verify's default 120 s), and its exit code;
- LibreOffice's recalculation alone: one headless conversion of the workbook with a fresh profile that
  forces recalculation on load (lessonxl.recalc's, as verify uses), no torch, no comparison.

Wall seconds are the median of `--repeat` runs (generate writes into a fresh folder each time, so no run
finds its workbook "up to date"). Peak memory is the RSS high-water mark from wait4() of the command's
process: Linux's maximum over that process and every descendant it waited for (LibreOffice's soffice.bin
under verify, oosplash's child under soffice), i.e. the largest single process of the tree, not the
sum of processes running at once; the maximum over the repeats is reported. A size `generate` refuses
(exit 2) is reported as "refused: <its message>", a command running past `--timeout` as "timeout".

    .venv/bin/python scripts/bench_scale.py [--sizes 15 50 100 200] [--factors 5] [--ratings u.data]
                                            [--repeat 1] [--timeout 600] [--device cpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lessonxl.recalc import RESTART_CODE, make_profile, soffice_command

LESSONXL = [sys.executable, "-m", "lessonxl"]
KILL_GRACE = 10.0  # seconds between SIGTERM and SIGKILL for a command past its timeout


@dataclass
class Run:
    """One command: wall seconds, peak RSS in bytes, exit code (None: killed at the timeout), last line."""
    seconds: float
    peak_bytes: int
    code: int | None
    message: str = ""

    @property
    def timed_out(self) -> bool:
        return self.code is None


def run(command: list[str], timeout: float, folder: Path, env: dict | None = None) -> Run:
    """Run `command` in its own session; its wall time and the RSS high-water mark that wait4() reports."""
    folder.mkdir(parents=True, exist_ok=True)
    out, err = folder / "stdout.txt", folder / "stderr.txt"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                   start_new_session=True, env=env)
        reaped: list = []

        def reap() -> None:  # wait4, unlike RUSAGE_CHILDREN, gives this one child's own high-water mark
            _, status, usage = os.wait4(process.pid, 0)
            reaped.append((time.perf_counter() - start, status, usage))

        waiter = threading.Thread(target=reap, daemon=True)
        waiter.start()
        waiter.join(timeout)
        timed_out = waiter.is_alive()
        if timed_out:
            _signal_group(process.pid, signal.SIGTERM)  # verify cleans up (and stops its LibreOffice) on TERM
            waiter.join(KILL_GRACE)
            if waiter.is_alive():
                _signal_group(process.pid, signal.SIGKILL)
                waiter.join()
    seconds, status, usage = reaped[0]
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    message = _last_line(err.read_bytes()) or _last_line(out.read_bytes())
    return Run(seconds, usage.ru_maxrss * 1024, None if timed_out else process.returncode, message)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1] if lines else ""


_FORMULA = re.compile(rb"<f(?:>|/>|\s([^>]*)>)")
_ARRAY = re.compile(rb'\bt="array"')
_REF = re.compile(rb'\bref="([A-Z]+)(\d+)(?::([A-Z]+)(\d+))?"')


def formula_cells(path: Path) -> tuple[int, int]:
    """(formula cells, `<f>` elements) of the workbook's sheets, read as a stream (never whole in memory).

    An array formula is one `<f t="array" ref=…>` element over every cell of its range; a shared
    formula's cells each carry their own `<f>`, so only array ranges are expanded.
    """
    cells = elements = 0
    with zipfile.ZipFile(path) as book:
        for name in book.namelist():
            if not (name.startswith("xl/worksheets/") and name.endswith(".xml")):
                continue
            with book.open(name) as part:
                tail = b""
                while True:
                    chunk = part.read(1 << 20)
                    data = tail + chunk
                    # Every tag before the last "<" is complete ("<" inside text or attributes is escaped).
                    cut = max(data.rfind(b"<"), 0) if chunk else len(data)
                    for match in _FORMULA.finditer(data, 0, cut):
                        elements += 1
                        cells += _array_area(match.group(1))
                    tail = data[cut:]
                    if not chunk:
                        break
    return cells, elements


def _array_area(attributes: bytes | None) -> int:
    if not attributes or not _ARRAY.search(attributes):
        return 1
    ref = _REF.search(attributes)
    if not ref or not ref.group(3):
        return 1
    columns = abs(_column(ref.group(3)) - _column(ref.group(1))) + 1
    rows = abs(int(ref.group(4)) - int(ref.group(2))) + 1
    return columns * rows


def _column(letters: bytes) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + letter - ord("A") + 1
    return number


def rated_pairs(path: Path) -> int | None:
    """The number of ratings: the rows of movielens_emb's defined name `rating`, which holds every rated
    pair (movielens_1hot may hold only the first ones); None if it has none."""
    with zipfile.ZipFile(path) as book:
        workbook = book.read("xl/workbook.xml")
    found = re.search(rb'<definedName name="rating"[^>]*>movielens_emb!\$[A-Z]+\$(\d+):\$[A-Z]+\$(\d+)<', workbook)
    return int(found.group(2)) - int(found.group(1)) + 1 if found else None


@dataclass
class Size:
    users: int
    movies: int
    status: str = "ok"  # ok, refused, failed, timeout
    message: str = ""
    ratings: int | None = None
    formula_cells: int | None = None
    formula_elements: int | None = None
    file_bytes: int | None = None
    generate: list[dict] = field(default_factory=list)
    verify: list[dict] = field(default_factory=list)
    verify_cells: int | None = None  # the formula cells verify says it compared
    recalc: list[dict] = field(default_factory=list)

    def seconds(self, what: str) -> float | None:
        runs = [r for r in getattr(self, what) if r["code"] is not None]
        return statistics.median(r["seconds"] for r in runs) if runs else None

    def peak(self, what: str) -> int | None:
        runs = getattr(self, what)
        return max(r["peak_bytes"] for r in runs) if runs else None


def measure(n: int, args, root: Path) -> Size:
    size = Size(n, n)
    folder = root / f"size{n}"
    extra = ["--factors", str(args.factors)]
    if args.ratings:
        extra += ["--ratings", str(args.ratings)]
    device = ["--device", args.device] if args.device else []
    book = None
    for i in range(args.repeat):
        out = folder / f"books{i}"
        result = run([*LESSONXL, "generate", "--users", str(n), "--movies", str(n), *extra, *device,
                      "--out", str(out), "collab_filter"], args.timeout, folder / f"generate{i}")
        size.generate.append(asdict(result))
        if result.code != 0:
            size.status, size.message = _failure(result, args.timeout)
            return size
        book = book or out / "collab_filter.xlsx"
    size.file_bytes = book.stat().st_size
    size.formula_cells, size.formula_elements = formula_cells(book)
    size.ratings = rated_pairs(book)
    for i in range(args.repeat):
        result = run([*LESSONXL, "verify", "--timeout", str(args.timeout), *device, str(book)],
                     args.timeout + KILL_GRACE, folder / f"verify{i}")
        size.verify.append(asdict(result))
        report = (folder / f"verify{i}" / "stdout.txt").read_text(errors="replace")
        verdict = re.search(r"^(?:PASS|FAIL).*$", report, re.MULTILINE)
        if verdict:  # verify's line on the workbook, rather than its closing note
            size.verify[-1]["message"] = verdict.group(0)
        counted = re.search(r"(\d[\d,]*) of (\d[\d,]*) formula cells", report)
        if counted:
            size.verify_cells = int(counted.group(2).replace(",", ""))
        if result.timed_out:
            size.status, size.message = "timeout", f"verify ran past {args.timeout:g} s"
            break
        if b"Traceback (most recent call last)" in (folder / f"verify{i}" / "stderr.txt").read_bytes():
            size.status, size.message = "failed", f"verify crashed: {result.message}"
            break
    for i in range(args.repeat):
        result = recalculate(book, folder / f"recalc{i}", args.timeout)
        size.recalc.append(asdict(result))
        if result.timed_out and size.status == "ok":
            size.status, size.message = "timeout", f"LibreOffice ran past {args.timeout:g} s"
            break
    return size


def recalculate(book: Path, folder: Path, timeout: float) -> Run:
    """One headless conversion with recalculation forced, fresh profile (as verify does); a restart that
    LibreOffice asks for after setting up the profile is counted in its time, as verify pays it too."""
    command = soffice_command([book], folder / "out", make_profile(folder / "profile"))
    scratch = folder / "tmp"  # LibreOffice's own temporary files, gone with the folder even if it is killed
    scratch.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TMPDIR": str(scratch), "TMP": str(scratch), "TEMP": str(scratch)}
    result = run(command, timeout, folder, env)
    if result.code == RESTART_CODE:
        again = run(command, max(timeout - result.seconds, 1), folder, env)
        result = Run(result.seconds + again.seconds, max(result.peak_bytes, again.peak_bytes), again.code,
                     again.message)
    if result.code == 0 and not (folder / "out" / book.name).exists():
        result.code, result.message = -1, f"LibreOffice wrote no file ({result.message})"
    return result


def _failure(result: Run, timeout: float) -> tuple[str, str]:
    if result.timed_out:
        return "timeout", f"generate ran past {timeout:g} s"
    if result.code == 2:
        return "refused", result.message
    return "failed", f"exit {result.code}: {result.message}"


def table(sizes: list[Size], repeat: int) -> str:
    header = ["size", "ratings", "formula cells", "file MB", "generate s", "generate peak MB", "verify s",
              "verify peak MB", "LibreOffice recalc s", "verify s per 10k formula cells"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in sizes:
        label = f"{s.users} × {s.movies}"
        if s.status in ("refused", "failed") or (s.status == "timeout" and s.file_bytes is None):
            row = [label, f"{s.status}: {s.message}"] + ["—"] * (len(header) - 2)
        else:
            verify = s.seconds("verify")
            codes = {r["code"] for r in s.verify}
            verify_text = _num(verify, 1)
            if s.status == "failed":
                verify_text = "crashed (see JSON)"
            elif any(c is None for c in codes):
                verify_text = "timeout"
            elif codes != {0}:
                verify_text += f" (exit {'/'.join(map(str, sorted(codes)))})"
            recalc = s.seconds("recalc")
            recalc_codes = {r["code"] for r in s.recalc}
            recalc_text = "timeout" if None in recalc_codes else _num(recalc, 1)
            if recalc_codes - {0, None}:
                recalc_text += f" (exit {'/'.join(str(c) for c in sorted(recalc_codes - {None}))})"
            per_10k = verify / s.formula_cells * 1e4 if verify is not None and s.formula_cells else None
            row = [label, f"{s.ratings:,}" if s.ratings is not None else "?", f"{s.formula_cells:,}",
                   _num(s.file_bytes / 1e6, 1), _num(s.seconds("generate"), 1), _mb(s.peak("generate")),
                   verify_text, _mb(s.peak("verify")), recalc_text, _num(per_10k, 2)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    runs = "one run" if repeat == 1 else f"median of {repeat} runs"
    lines.append("")
    lines.append(f"Seconds: wall, {runs}. Peak MB: RSS high-water mark of the largest single process of the "
                 "command's tree (wait4), max over runs.")
    return "\n".join(lines)


def _num(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _mb(value: int | None) -> str:
    return "—" if value is None else f"{value / 1e6:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[15, 50, 100, 200],
                        help="users = movies of each workbook (default: 15 50 100 200)")
    parser.add_argument("--factors", type=int, default=5, help="latent factors (default: 5)")
    parser.add_argument("--ratings", type=Path, help="a MovieLens ratings file instead of the built-in data")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command (default: 1)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per command (default: 600)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"),
                        help="passed to generate and verify (default: theirs, auto)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the raw figures here")
    args = parser.parse_args()
    if args.repeat < 1 or args.timeout <= 0 or args.factors < 1:
        parser.error("--repeat and --factors must be at least 1, --timeout positive")
    if args.ratings:
        args.ratings = args.ratings.resolve()
    sizes = []
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        for n in args.sizes:
            with tempfile.TemporaryDirectory(prefix=f"size{n}_", dir=tmp) as folder:
                size = measure(n, args, Path(folder))
            sizes.append(size)
            print(f"{n} × {n}: {size.status}"
                  + (f" ({size.message})" if size.message else "")
                  + "".join(f", {what} {_num(size.seconds(what), 1)} s"
                            for what in ("generate", "verify", "recalc") if getattr(size, what)),
                  file=sys.stderr, flush=True)
    data = "synthetic ratings" if not args.ratings else f"ratings from {args.ratings}"
    print(f"collab_filter, {data}, {args.factors} factors\n")
    print(table(sizes, args.repeat))
    if args.json:
        args.json.write_text(json.dumps({"factors": args.factors, "ratings": str(args.ratings or ""),
                                         "repeat": args.repeat, "timeout": args.timeout,
                                         "device": args.device,
                                         "sizes": [asdict(s) for s in sizes]}, indent=2) + "\n")


if __name__ == "__main__":
    main()
