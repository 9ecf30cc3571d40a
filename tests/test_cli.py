"""The command line as a user meets it: help, list, generate, verify, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lessonxl.registry import LESSONS


def run(*args, env=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lessonxl", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.parametrize("command", ["generate", "verify", "list"])
def test_help_explains_each_command(command):
    result = run(command, "--help")
    assert result.returncode == 0
    assert "usage: lessonxl " + command in result.stdout
    assert "example:" in result.stdout


def test_list_names_every_workbook_and_sheet():
    result = run("list")
    assert result.returncode == 0
    for lesson in LESSONS:
        assert lesson.filename in result.stdout
        for sheet in lesson.sheets:
            assert sheet in result.stdout


def test_generate_then_verify_passes(tmp_path):
    generated = run("generate", "--out", tmp_path, "entropy_example")
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout.count("\n") == 1
    verified = run("verify", tmp_path / "entropy_example.xlsx", "--device", "cpu")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "PASS" in verified.stdout and "FAIL" not in verified.stdout


def test_verify_json_is_machine_readable(generated):
    import json
    result = run("verify", "--json", "--device", "cpu", generated["entropy_example"])
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
    _one_line_error(run("verify", tmp_path / "nope.xlsx"), "nope.xlsx", "no such file")


def test_unknown_workbook_name_is_a_one_line_error(tmp_path):
    _one_line_error(run("generate", "--out", tmp_path, "nonsense"), "unknown workbook 'nonsense'")


def test_missing_libreoffice_says_how_to_install_it(generated, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "LESSONXL_SOFFICE"}
    env["PATH"] = str(empty)
    _one_line_error(run("verify", generated["entropy_example"], env=env),
                    "apt-get install libreoffice-calc-nogui")
    env["LESSONXL_SOFFICE"] = str(tmp_path / "no-soffice")
    _one_line_error(run("verify", generated["entropy_example"], env=env), "LESSONXL_SOFFICE")


def test_cuda_asked_for_where_absent_is_a_one_line_error(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    _one_line_error(run("generate", "--out", tmp_path, "--device", "cuda"), "no CUDA device")


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
    _one_line_error(run("generate", "--out", tmp_path / "out", "--ratings", path, "collab_filter"),
                    str(path), message)
    assert (path.read_bytes() if path.is_file() else None) == before
    assert not (tmp_path / "out" / "collab_filter.xlsx").exists()
