"""A workbook is up to date when it is the same workbook, on any CPU and on CUDA.

torch's float64 exp/log/pow and MKL's kernels round differently in the last bit on other instruction
sets, so `generate` on another machine gives other bytes for the same workbook. `sameness` calls two
files the same when everything a reader sees is identical and cached formula results agree to
rounding; these tests check that it still tells every real change, that the committed workbooks are
the same workbook whichever CPU path (or CUDA) generates them, and that `generate` then keeps them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lessonxl.registry import LESSONS
from lessonxl.sameness import ROUNDING_TOL, UP_TO_DATE, WROTE, as_written, differences, same_workbook, stamp

from conftest import SEED, mutate_formula, rewrite_part, sheet_parts

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "workbooks"
NAMES = [lesson.name for lesson in LESSONS]

# Each of torch's CPU paths, paired with one of MKL's so that both kinds of dispatch vary: MKL's
# choice made the committed files differ on a CPU without AVX-512, torch's own changes collab_filter.
CPU_PATHS = {
    "default": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
}
# The path torch picks here by itself is the best this CPU runs. A path above it is not run: torch 2.13
# takes ATEN_CPU_CAPABILITY=avx512 on a CPU without AVX-512 (an AMD EPYC here) and dies of SIGILL.
NATIVE = torch.backends.cpu.get_cpu_capability().lower()
RUNNABLE = list(CPU_PATHS)[:list(CPU_PATHS).index(NATIVE) + 1] if NATIVE in CPU_PATHS else list(CPU_PATHS)


# --- what counts as the same workbook (no LibreOffice) ---------------------------------------------

def edited(source: Path, tmp_path: Path, part: str, edit) -> bytes:
    target = tmp_path / f"edited_{len(list(tmp_path.iterdir()))}.xlsx"
    rewrite_part(source, target, part, edit)
    return target.read_bytes()


def nudge_number(xml: str, pattern: str, factor: float) -> str:
    """Multiply the first number matched by `pattern` (its group 1) by `factor`."""
    match = re.search(pattern, xml)
    assert match, pattern
    value = float(match.group(1)) * factor
    return xml[:match.start(1)] + repr(value) + xml[match.end(1):]


FORMULA_RESULT = r'<c r="[A-Z]+[0-9]+"[^>]*><f>[^<]*</f><v>([-0-9.eE]+)</v>'
INPUT_NUMBER = r'<c r="[A-Z]+[0-9]+" s="[0-9]+"><v>([-0-9.eE]+)</v>'
CHART_POINT = r'<c:pt idx="[0-9]+"><c:v>([-0-9.eE]+)</c:v>'
LAST_BIT = 1 + 2.0 ** -52


@pytest.fixture(scope="module")
def collab(generated) -> Path:
    """collab_filter: formula cells, inputs and a chart."""
    return generated["collab_filter"]


@pytest.mark.parametrize("sheet, pattern", [
    ("dotprod", FORMULA_RESULT),
    ("gd_steps", FORMULA_RESULT),
])
def test_a_cached_result_off_in_its_last_bits_is_the_same_workbook(collab, tmp_path, sheet, pattern):
    part = sheet_parts(collab)[sheet]
    changed = edited(collab, tmp_path, part, lambda xml: nudge_number(xml, pattern, LAST_BIT ** 4))
    assert changed != collab.read_bytes()
    assert differences(collab.read_bytes(), changed) == []


def test_a_chart_point_off_in_its_last_bits_is_the_same_workbook(collab, tmp_path):
    changed = edited(collab, tmp_path, "xl/charts/chart1.xml",
                     lambda xml: nudge_number(xml, CHART_POINT, LAST_BIT ** 4))
    assert changed != collab.read_bytes() and same_workbook(collab.read_bytes(), changed)


@pytest.mark.parametrize("sheet, pattern", [
    ("dotprod", FORMULA_RESULT),
    ("gd_steps", FORMULA_RESULT),
])
def test_a_cached_result_beyond_rounding_is_a_change_named_by_cell(collab, tmp_path, sheet, pattern):
    part = sheet_parts(collab)[sheet]
    changed = edited(collab, tmp_path, part, lambda xml: nudge_number(xml, pattern, 1 + 100 * ROUNDING_TOL))
    found = differences(collab.read_bytes(), changed)
    assert len(found) == 1 and found[0].startswith(part), found


def test_a_chart_point_beyond_rounding_is_a_change(collab, tmp_path):
    changed = edited(collab, tmp_path, "xl/charts/chart1.xml",
                     lambda xml: nudge_number(xml, CHART_POINT, 1 + 100 * ROUNDING_TOL))
    found = differences(collab.read_bytes(), changed)
    assert len(found) == 1 and found[0].startswith("xl/charts/chart1.xml series point"), found
    assert not same_workbook(collab.read_bytes(), changed)


EXACT_EDITS = {
    # An input is compared exactly: its last bit matters, as a user's typed number does.
    "an input's last bit": ("dotprod", lambda xml: nudge_number(xml, INPUT_NUMBER, LAST_BIT)),
    "a formula": ("dotprod", lambda xml: re.sub(r"<f>([^<]*)</f>", r"<f>(\1)+0</f>", xml, count=1)),
    "a style": ("dotprod", lambda xml: re.sub(r'(<c r="B4" s=")[0-9]+', r"\g<1>1", xml, count=1)),
    "a column width": ("dotprod", lambda xml: re.sub(r'width="[0-9.]+"', 'width="30"', xml, count=1)),
    "a cell moved": ("dotprod", lambda xml: xml.replace('<c r="B4"', '<c r="B5"', 1)),
    "a cached error value": ("gd_steps", lambda xml: re.sub(
        FORMULA_RESULT, lambda m: m.group(0).replace(f"<v>{m.group(1)}</v>", "<v>#NUM!</v>")
        .replace("<c r=", '<c t="e" r=', 1), xml, count=1)),
    "a label": ("xl/sharedStrings.xml", lambda xml: xml.replace("<t>", "<t>x", 1)),
    "a defined name": ("xl/workbook.xml", lambda xml: xml.replace("user_factors", "user_factorz", 1)),
    "a chart's title": ("xl/charts/chart1.xml", lambda xml: xml.replace("RMSE per", "RMSE by", 1)),
    "a document property": ("docProps/core.xml", lambda xml: xml.replace("lessonxl", "someone", 1)),
}


@pytest.mark.parametrize("what", EXACT_EDITS)
def test_everything_but_cached_results_is_compared_exactly(collab, tmp_path, what):
    where, edit = EXACT_EDITS[what]
    part = sheet_parts(collab).get(where, where)
    changed = edited(collab, tmp_path, part, edit)
    assert changed != collab.read_bytes(), f"the edit of {what} changed nothing"
    found = differences(collab.read_bytes(), changed)
    assert found and found[0].startswith(part), (what, found)


def test_a_damaged_file_is_never_the_same(collab):
    assert differences(collab.read_bytes(), b"not a zip") == ["one of the files is not an .xlsx workbook"]


# --- the committed workbooks, generated on every CPU path and on CUDA -------------------------------

def test_committed_workbooks_are_the_generated_ones(generated):
    for name in NAMES:
        committed = COMMITTED / f"{name}.xlsx"
        assert committed.exists(), f"run `lessonxl generate` and commit {committed.name}"
        found = differences(committed.read_bytes(), generated[name].read_bytes())
        assert not found, f"workbooks/{committed.name} is stale ({'; '.join(found)}): " \
                          "run `lessonxl generate` and commit it"


@pytest.fixture(scope="module")
def generated_on_each_cpu_path(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """The README's main job, `lessonxl generate`, run under each CPU path (two at a time) over a
    folder that holds copies of the committed workbooks."""
    runs = {}
    for path_name, env in CPU_PATHS.items():
        if path_name not in RUNNABLE:
            continue
        folder = tmp_path_factory.mktemp(f"cpu_{path_name}")
        for name in NAMES:
            shutil.copyfile(COMMITTED / f"{name}.xlsx", folder / f"{name}.xlsx")
        script = ("import sys, torch; from lessonxl.cli import main; "
                  "print('capability', torch.backends.cpu.get_cpu_capability()); sys.exit(main(sys.argv[1:]))")
        command = [sys.executable, "-c", script, "generate", "--device", "cpu", "--seed", str(SEED),
                   "--out", str(folder)]
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        runs[path_name] = (process, folder)
    done = {}
    for path_name, (process, folder) in runs.items():
        stdout, stderr = process.communicate()
        done[path_name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), folder
    return done


@pytest.mark.parametrize("cpu_path", CPU_PATHS)
def test_generate_on_every_cpu_path_keeps_the_committed_workbooks(generated_on_each_cpu_path, cpu_path):
    if cpu_path not in RUNNABLE:
        pytest.skip(f"this CPU cannot run torch's {cpu_path} path (its best is {NATIVE})")
    result, folder = generated_on_each_cpu_path[cpu_path]
    assert result.returncode == 0, result.stderr
    capability = re.search(r"capability (\S+)", result.stdout).group(1)
    if capability.lower() != cpu_path:
        pytest.skip(f"this CPU cannot run torch's {cpu_path} path (it ran {capability})")
    for name in NAMES:
        committed, kept = (COMMITTED / f"{name}.xlsx").read_bytes(), (folder / f"{name}.xlsx").read_bytes()
        assert kept == committed, f"{cpu_path}: generate rewrote {name}.xlsx: {differences(committed, kept)}"
        assert f"up to date {folder / name}.xlsx" in result.stdout


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_workbooks_generated_on_cuda_are_the_committed_ones(name):
    lesson = next(lesson for lesson in LESSONS if lesson.name == name)
    on_cuda = lesson.build(SEED, torch.device("cuda"))
    found = differences((COMMITTED / lesson.filename).read_bytes(), on_cuda)
    assert not found, found


def test_generate_rewrites_a_workbook_that_really_changed(generated, tmp_path):
    """A file lessonxl wrote (stamped) that differs from what the code writes now is replaced; then it is
    up to date. (A file edited since lessonxl wrote it is kept: tests/test_truth.py.)"""
    lesson = next(lesson for lesson in LESSONS if lesson.name == "entropy_example")
    stale = tmp_path / lesson.filename
    mutate_formula(generated["entropy_example"], stale, "softmax", "K6")
    stale.write_bytes(stamp(stale.read_bytes()))  # as an earlier lessonxl, whose formula differed, wrote it
    assert as_written(stale)
    path, status, _ = lesson.write(tmp_path, SEED, torch.device("cpu"))
    assert path == stale and status == WROTE
    assert stale.read_bytes() == generated["entropy_example"].read_bytes()
    path, status, _ = lesson.write(tmp_path, SEED, torch.device("cpu"))
    assert status == UP_TO_DATE and stale.read_bytes() == generated["entropy_example"].read_bytes()


def test_the_stamp_marks_a_file_as_lessonxl_wrote_it(generated, tmp_path):
    assert as_written(generated["entropy_example"])
    resaved = tmp_path / "resaved.xlsx"
    rewrite_part(generated["entropy_example"], resaved, "docProps/app.xml", lambda xml: xml)
    assert same_workbook(resaved.read_bytes(), generated["entropy_example"].read_bytes())
    assert not as_written(resaved), "an archive written again, even with the same parts, is no longer lessonxl's"
    assert not as_written(tmp_path / "absent.xlsx")
