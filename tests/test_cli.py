"""The command line as a user meets it: help, list, generate, verify, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lessonxl.registry import LESSONS

from conftest import run_cli


@pytest.mark.parametrize("command", ["generate", "verify", "list"])
def test_help_explains_each_command(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert "usage: lessonxl " + command in result.stdout
    assert "example:" in result.stdout


def test_list_names_every_workbook_and_sheet():
    result = run_cli("list")
    assert result.returncode == 0
    for lesson in LESSONS:
        assert lesson.filename in result.stdout
        for sheet in lesson.sheets:
            assert sheet in result.stdout


def test_generate_then_verify_passes(tmp_path):
    generated = run_cli("generate", "--out", tmp_path, "entropy_example")
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.count("\n") == 1
    verified = run_cli("verify", tmp_path / "entropy_example.xlsx", "--device", "cpu")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "PASS" in verified.stdout and "FAIL" not in verified.stdout


def test_version():
    import lessonxl
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout == f"lessonxl {lessonxl.__version__}\n"


def test_verify_prints_a_line_per_workbook_and_the_table_with_verbose(generated):
    import re
    paths = [generated["entropy_example"], generated["regularization"]]
    short = run_cli("verify", "--device", "cpu", *paths)
    assert short.returncode == 0, short.stderr
    *lines, note, counts = short.stdout.splitlines()
    assert len(lines) == 2, short.stdout
    assert note.startswith("note: lessonxl wrote 2 of these files as generated: their saved values are torch's own")
    assert counts == "2 files: 2 passed, 0 failed, 0 unusable"
    for line, path in zip(lines, paths):
        assert re.fullmatch(rf"PASS {re.escape(str(path))}: \w+, ([\d,]+) of \1 formula cells equal torch "
                            rf"\(worst relative error \d\.\de[-+]\d+\), \d+\.\d s", line), line
    full = run_cli("verify", "-v", "--device", "cpu", generated["entropy_example"])
    assert full.returncode == 0
    assert "softmax            probs" in full.stdout and full.stdout.rstrip().endswith("PASS")


def test_progress_shows_on_a_terminal_only(generated):
    """Progress goes to stderr when it is a terminal and the run lasts over a second; never when piped
    or with --quiet."""
    import pty
    outputs = {}
    for quiet in ((), ("--quiet",)):
        master, slave = pty.openpty()
        process = subprocess.Popen([sys.executable, "-m", "lessonxl", "verify", *quiet, "--device", "cpu",
                                    str(generated["graddesc"])], stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=300)
        os.close(master)
        outputs[quiet] = b"".join(chunks).decode()
        assert process.returncode == 0
    assert "recalculating 1 workbook with LibreOffice" in outputs[()]
    assert outputs[("--quiet",)] == ""
    piped = run_cli("verify", "--device", "cpu", generated["graddesc"])
    assert piped.stderr == ""


def test_verify_json_is_machine_readable(generated):
    import json
    result = run_cli("verify", "--json", "--device", "cpu", generated["entropy_example"])
    assert result.returncode == 0
    [report] = json.loads(result.stdout)
    assert report["ok"] and report["uncovered"] == [] and report["checks"]


def _one_line_error(result, *needles):
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr


def test_missing_file_is_a_one_line_error(tmp_path):
    _one_line_error(run_cli("verify", tmp_path / "nope.xlsx"), "nope.xlsx", "no such file")


def test_unknown_workbook_name_is_a_one_line_error(tmp_path):
    _one_line_error(run_cli("generate", "--out", tmp_path, "nonsense"), "unknown workbook 'nonsense'")


def test_missing_libreoffice_says_how_to_install_it(generated, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "LESSONXL_SOFFICE"}
    env["PATH"] = str(empty)
    _one_line_error(run_cli("verify", generated["entropy_example"], env=env),
                    "apt-get install libreoffice-calc-nogui")
    env["LESSONXL_SOFFICE"] = str(tmp_path / "no-soffice")
    _one_line_error(run_cli("verify", generated["entropy_example"], env=env), "LESSONXL_SOFFICE")


def test_cuda_asked_for_where_absent_is_a_one_line_error(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    _one_line_error(run_cli("generate", "--out", tmp_path, "--device", "cuda"), "no CUDA device")


RATINGS_CASES = {
    "missing": (None, "no such ratings file"),
    "folder": ("folder", "is a folder, not a ratings file"),
    "empty": (b"", "the ratings file is empty"),
    "a workbook": ("workbook", "not a MovieLens ratings file"),
    "binary noise": (bytes(range(256)) * 64, "not a MovieLens ratings file"),
    "too few users": (b"1\t1\t4\t0\n2\t1\t3\t0\n", "users have ratings, 15 are needed"),
}


@pytest.mark.parametrize("case", RATINGS_CASES)
def test_unusable_ratings_files_are_one_line_errors_and_left_untouched(generated, tmp_path, case):
    content, message = RATINGS_CASES[case]
    path = tmp_path / "ratings.data"
    if content == "folder":
        path.mkdir()
    elif content == "workbook":
        path.write_bytes(generated["entropy_example"].read_bytes())
    elif content is not None:
        path.write_bytes(content)
    before = path.read_bytes() if path.is_file() else None
    _one_line_error(run_cli("generate", "--out", tmp_path / "out", "--ratings", path, "collab_filter"),
                    str(path), message)
    assert (path.read_bytes() if path.is_file() else None) == before
    assert not (tmp_path / "out" / "collab_filter.xlsx").exists()


def test_quiet_prints_only_the_files_that_fail_and_progress_counts_them(generated, tmp_path):
    from conftest import mutate_formula

    from lessonxl.api import verify
    mutant = tmp_path / "mutant.xlsx"
    mutate_formula(generated["entropy_example"], mutant, "softmax", "K6")
    result = run_cli("verify", "-q", "--device", "cpu", generated["entropy_example"], mutant)
    assert result.returncode == 1 and result.stderr == ""
    assert result.stdout.startswith(f"FAIL {mutant}: entropy_example, 7 of "), result.stdout
    assert "softmax!K6" in result.stdout
    assert "PASS" not in result.stdout and "note: lessonxl wrote" not in result.stdout \
        and "files:" not in result.stdout
    stages = []
    verify([generated["entropy_example"], mutant], device="cpu", progress=stages.append)
    assert "computing entropy_example.xlsx with torch (1 of 2)" in stages
    assert "comparing mutant.xlsx (2 of 2)" in stages
