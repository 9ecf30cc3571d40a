"""The `lessonxl` command line: generate, verify, list."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

from . import __version__
from .catalog import CONTENTS, DEFAULT_FOLDER, DEFAULT_TOL
from .errors import LessonxlError
from .recalc import DEFAULT_TIMEOUT


GENERATE_EXAMPLE = """example:
  lessonxl generate                      # every workbook into ./workbooks
  lessonxl generate --out /tmp/wb --seed 7 entropy_example
  lessonxl generate --ratings ml-100k/u.data --users 20 collab_filter
  lessonxl generate --exercise --out class graddesc   # class/graddesc_exercise.xlsx, blocks left to fill

A file that already holds the same workbook is left as it is ("up to date"). A file that has been
edited since lessonxl wrote it is never overwritten without --force.

exit status: 0 every workbook written or up to date, 1 an edited workbook was kept, 2 unusable input
"""
VERIFY_EXAMPLE = """example:
  lessonxl verify workbooks/*.xlsx
  lessonxl verify -v my_edited_copy.xlsx     # every quantity of every sheet
  lessonxl verify --json --tol 1e-6 my_edited_copy.xlsx
  lessonxl verify --watch my_edited_copy.xlsx  # again at every save, until Ctrl-C
  lessonxl verify --annotate marked my_edited_copy.xlsx  # marked/my_edited_copy.xlsx: mistakes in red
  lessonxl verify graddesc_exercise.xlsx     # an exercise: "3 of 5 blocks right; adam!K28:L627 still empty"
  lessonxl verify -q --csv grades.csv --junit grades.xml submissions/   # a class's files, a gradebook

One line per file (PASS, FAIL with where the mistakes are, or ERROR for a file that cannot be
verified), then, for several files, how many passed, failed and were unusable. A single unusable file
is the command's one-line error on stderr.

exit status: 0 every formula cell equals torch (an exercise: every block right), 1 a value differs,
2 unusable input (or a folder with no workbook, a pattern that matched no file); when both happen,
2 (--json says which file is which); --watch: 130 when stopped by Ctrl-C, 143 by SIGTERM
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lessonxl",
        description="The fast.ai lesson's spreadsheets as .xlsx workbooks with live formulas, "
                    "every number checked against PyTorch.")
    parser.add_argument("--version", action="version", version=f"lessonxl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate", help="write the workbooks", epilog=GENERATE_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write the lesson workbooks: inputs from a seed, every formula's cached value "
                    "computed by torch.")
    generate.add_argument("names", nargs="*", metavar="NAME", help="workbooks to write (default: all; "
                          "see `lessonxl list`)")
    generate.add_argument("--out", type=Path, default=DEFAULT_FOLDER, metavar="DIR",
                          help=f"folder to write into (default: {DEFAULT_FOLDER})")
    generate.add_argument("--seed", type=_seed, default=0,
                          help=f"seed of the built-in data, 0 to {MAX_SEED} (default: 0)")
    generate.add_argument("--force", action="store_true",
                          help="overwrite workbooks that were edited since lessonxl wrote them")
    _device_option(generate)
    generate.add_argument("--jobs", type=int, metavar="N",
                          help="workbooks made at once, each in its own process (default: one per idle CPU "
                               "core; 1: one after another, as on macOS and Windows)")
    exercise = generate.add_argument_group("exercises")
    exercise.add_argument("--exercise", action="store_true",
                          help="write NAME_exercise.xlsx instead: chosen formula blocks left empty (orange) for a "
                               "student, listed with what to compute on a first sheet, exercise; `lessonxl "
                               "verify` grades it block by block (default NAMEs: every workbook with exercises)")
    exercise.add_argument("--easy", action="store_true",
                          help="with --exercise: the first row of each block given as an example")
    collab = generate.add_argument_group("collab_filter options")
    collab.add_argument("--ratings", type=Path, metavar="FILE",
                        help="a MovieLens ratings file (u.data or ratings.csv) instead of built-in data")
    collab.add_argument("--users", type=int, metavar="N", help="most active users to keep (default: 15)")
    collab.add_argument("--movies", type=int, metavar="N", help="most rated movies to keep (default: 15)")
    collab.add_argument("--factors", type=int, metavar="N", help="latent factors (default: 5)")
    collab.add_argument("--top", type=int, metavar="N",
                        help="with --ratings: the most-rated movies top_movies ranks, from the lesson's model "
                             "trained on all the ratings (default: 1000)")

    verify = commands.add_parser(
        "verify", help="recalculate workbooks with LibreOffice and compare with torch",
        epilog=VERIFY_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Recalculate each workbook with headless LibreOffice (recalculation forced), "
                    "recompute every quantity with torch from the workbook's own inputs, and compare "
                    "every formula cell. The files given are never modified.")
    verify.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="workbooks to verify, or folders: every .xlsx file in one, sorted")
    _device_option(verify)
    verify.add_argument("--tol", type=_number("--tol", minimum=0.0), default=DEFAULT_TOL,
                        help=f"absolute and relative tolerance (default: {DEFAULT_TOL:g}): a cell passes "
                             "when |sheet - torch| <= tol + tol * |torch|")
    verify.add_argument("--timeout", type=_number("--timeout", minimum=0.0, exclusive=True),
                        default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help=f"stop LibreOffice when starting it or recalculating one workbook takes longer "
                             f"than this (default: {DEFAULT_TIMEOUT:g})")
    shown = verify.add_mutually_exclusive_group()
    shown.add_argument("-v", "--verbose", action="store_true",
                       help="print every quantity of every workbook (default: one line per workbook, then "
                            "what failed)")
    shown.add_argument("--json", action="store_true", help="print the reports as JSON")
    verify.add_argument("-q", "--quiet", action="store_true",
                        help="print only the files that fail or cannot be verified (no PASS lines, notes or "
                             "progress)")
    verify.add_argument("--hint", action="store_true",
                        help="beside each mistake, the formula lessonxl writes in that cell")
    verify.add_argument("--annotate", type=Path, metavar="DIR",
                        help="write into DIR a copy of each workbook that differs, its mistakes filled red "
                             "with a comment (torch's value, what lessonxl's formula gives there) and the "
                             "cells that differ because of them pink; your files stay as they are")
    verify.add_argument("--watch", action="store_true",
                        help="keep running: verify again each time a file is saved, with LibreOffice and "
                             "torch kept warm (one line per check: PASS/FAIL and the seconds); Ctrl-C stops")
    verify.add_argument("--jobs", type=int, metavar="N",
                        help="LibreOffice processes recalculating at once, the files dealt out in turn (default: "
                             "one per idle CPU core, at most one per 4 files)")
    grading = verify.add_argument_group("a class's submissions")
    grading.add_argument("--csv", type=Path, metavar="FILE",
                         help="write a gradebook: one row per file (file, workbook, blocks right and total for an "
                              "exercise, n/a for a workbook, first wrong cell, verdict PASS/FAIL/ERROR, detail)")
    grading.add_argument("--junit", type=Path, metavar="FILE",
                         help="write JUnit XML for CI autograders: a test case per file, each failure carrying "
                              "verify's report of it")

    commands.add_parser("list", help="list the workbooks and what each sheet teaches",
                        description="List the workbooks and their sheets, one line on each.",
                        epilog="example:\n  lessonxl list", formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


MAX_SEED = 2**63 - 1
COLLAB_OPTIONS = ("ratings", "users", "movies", "factors", "top")


def _seed(text: str) -> int:
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text} is out of range: a seed is a whole number from 0 to {MAX_SEED}")
    return seed


def _number(option: str, minimum: float, exclusive: bool = False):
    """An argparse type for a finite number above `minimum` (or at least it)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < minimum or (exclusive and value == minimum):
            raise argparse.ArgumentTypeError(
                f"{text} is out of range: {option} takes a finite number {'above' if exclusive else 'of at least'} "
                f"{minimum:g}")
        return value
    return parse


def _device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where torch computes (default: auto = CUDA when present)")


def _generate(args) -> int:
    from .api import generate_each, kept_message
    from .sameness import KEPT

    options = {key: getattr(args, key) for key in COLLAB_OPTIONS}
    kept = []
    for path, status, notes in generate_each(args.names, args.out, args.seed, args.device, args.force,
                                             args.jobs, args.exercise, args.easy, **options):
        if status == KEPT:
            kept.append(path)
        else:
            print(f"{status} {path}")
        for note in notes:
            print(f"note: {path}: {note}")
    if kept:
        print(f"lessonxl generate: {kept_message(kept)}", file=sys.stderr)
    return 1 if kept else 0


def _verify(args) -> int:
    from .api import verify
    from .report import as_json, format_report, format_summary, run_notes, summary_line

    from .gradebook import expand, write_csv, write_junit

    args.paths, problems = expand(args.paths)
    for problem in problems:
        print(f"lessonxl verify: {problem}", file=sys.stderr)
    if not args.paths:
        return 2
    if args.watch:
        return _watch(args)

    with Progress(enabled=not args.quiet and sys.stderr.isatty()) as progress:
        reports = verify(args.paths, args.device, tol=args.tol, timeout=args.timeout, raise_on_error=False,
                         progress=progress.show, annotate=args.annotate, hint=args.hint, jobs=args.jobs)
    if args.json:
        print(json.dumps(as_json(reports, args.hint), indent=2))
    elif len(reports) == 1 and reports[0].error:  # one unusable file: the command's one-line error
        print(f"lessonxl verify: {reports[0].error}", file=sys.stderr)
    else:
        shown = [report for report in reports if not (args.quiet and report.passed)]
        blocks = [summary_line(report) if report.error else
                  format_report(report, args.hint) if args.verbose else format_summary(report, args.hint)
                  for report in shown]
        if blocks:
            print(("\n\n" if args.verbose else "\n").join(blocks))
        if not args.quiet:  # (-v: each file's report has its own notes)
            notes = [] if args.verbose else run_notes([report for report in reports if not report.error])
            for line in [*notes, *_counts(reports)]:
                print(line)
    if args.json:
        for report in reports:
            if report.error:
                print(f"lessonxl verify: {report.error}", file=sys.stderr)
    if args.csv:
        write_csv(reports, args.csv)
    if args.junit:
        write_junit(reports, args.junit)
    return 2 if problems else reports.exit_code


def _counts(reports) -> list[str]:
    """The last line of a run of several files: how many passed, failed and could not be verified."""
    if len(reports) < 2:
        return []
    tally = reports.tally()
    return [f"{len(reports)} files: {tally['PASS']} passed, {tally['FAIL']} failed, {tally['ERROR']} unusable"]


def _watch(args) -> int:
    """`verify --watch`: every verdict as it comes, until Ctrl-C (130) or SIGTERM (143)."""
    from .api import watch
    from .report import as_json, format_report, format_summary

    def show(reports) -> None:
        for report in reports:
            if args.json:
                print(json.dumps(as_json([report], args.hint)[0]), flush=True)
            elif args.verbose and not report.error:
                print(format_report(report, args.hint), flush=True)
            else:
                print(format_summary(report, args.hint, brief=True), flush=True)

    watch(args.paths, args.device, tol=args.tol, timeout=args.timeout, on_reports=show, annotate=args.annotate,
          hint=args.hint)
    return 0


class Progress:
    """The stage a long run is at, on one rewritten terminal line; shown only after `delay` seconds."""

    def __init__(self, enabled: bool, delay: float = 1.0, stream=sys.stderr):
        self.enabled, self.delay, self.stream = enabled, delay, stream
        self.stage, self.shown = "", False
        self._started = time.monotonic()
        self._done = threading.Event()

    def show(self, stage: str) -> None:
        self.stage = stage

    def __enter__(self) -> "Progress":
        if self.enabled:
            threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        if self._done.wait(self.delay):
            return
        while not self._done.wait(0.1):
            seconds = time.monotonic() - self._started
            self.stream.write(f"\r\033[Klessonxl: {self.stage} ({seconds:.0f} s)")
            self.stream.flush()
            self.shown = True

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _list(args) -> int:
    for name, (title, sheets) in CONTENTS.items():
        print(f"{name}.xlsx: {title}")
        for sheet, what in sheets.items():
            print(f"  {sheet:<18} {what}")
    return 0


def _stop(signum, frame) -> None:
    """SIGTERM or SIGHUP: unwind like Ctrl-C, so that temporary files and LibreOffice go too."""
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    run = {"generate": _generate, "verify": _verify, "list": _list}[args.command]
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _stop)
    try:
        code = run(args)
    except LessonxlError as error:
        print(f"lessonxl {args.command}: {error}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    return code


def console() -> None:
    """The `lessonxl` console script: `main`, then an immediate exit. (`python -m lessonxl` and callers of
    `main` exit as Python does, so that coverage, atexit handlers and the caller's own code still run.)"""
    _exit_now(main())


def _exit_now(code: int) -> None:
    """End the program at once: its files are written, its temporary files, LibreOffice and worker
    processes are gone already, and tearing down torch's modules at interpreter exit takes half a second."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
