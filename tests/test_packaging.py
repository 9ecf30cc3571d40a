"""What a Python user gets from the packages: the licence in the wheel and the sdist, and an sdist whose
own tests are there and collect (conftest, helpers, fixtures, the committed workbooks, the notebook).

Built with setuptools' PEP 517 hooks in this environment (`python -m build --no-isolation` does the
same), so nothing is downloaded."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def build(hook: str, folder: Path) -> Path:
    """The sdist or wheel that setuptools builds from the repository into `folder`."""
    code = f"from setuptools import build_meta; print(build_meta.{hook}({str(folder)!r}))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder / done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    return build("build_sdist", tmp_path_factory.mktemp("sdist"))


def test_the_wheel_carries_the_licence_and_says_which(tmp_path):
    wheel = build("build_wheel", tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names), names
    assert "License-Expression: Apache-2.0" in metadata and "Classifier: Intended Audience :: Education" in metadata
    assert "lessonxl/unobridge.py" in names  # the bridge LibreOffice's Python runs
    assert "lessonxl/collab/lesson.py" in names  # a subpackage: pyproject's packages must list it


def test_the_sdist_holds_what_its_tests_need(sdist):
    with tarfile.open(sdist) as archive:
        names = {name.partition("/")[2] for name in archive.getnames()}
    needed = {"LICENSE", "README.md", "tests/conftest.py", "tests/libreoffice.py", "tests/live_edit.py",
              "docs/lessonxl_in_a_notebook.ipynb", "scripts/setup.sh"}
    needed |= {str(path.relative_to(REPO)) for folder in ("workbooks", "tests/fixtures")
               for path in (REPO / folder).glob("*.xlsx")}
    needed |= {str(path.relative_to(REPO)) for path in (REPO / "tests").glob("test_*.py")}
    assert needed <= names, sorted(needed - names)


def test_the_sdists_tests_are_collected(sdist, tmp_path):
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    [root] = tmp_path.iterdir()
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
                          cwd=root, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " tests collected" in done.stdout.splitlines()[-1] and "error" not in done.stdout.splitlines()[-1]
