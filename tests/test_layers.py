"""The package's four layers, kept by its imports: each module imports only modules of its own layer or of
the layers below it, and a lesson topic never imports another (they share the optimizer rules of
optim.py and the MovieLens reader, nothing else). A new module must be given a layer here.

The layers (the README's "Where things are" lists what each module holds):
  front      what a user calls: the command line, the Python API, --watch, the generate workers
  checking   verify's pipeline: reading a file back, comparing with torch, diagnosing and reporting
  lessons    one module (or package) per lesson topic: torch's computation and the sheet's layout side by side
  workbook   the shared layer below them all: cells, names and styles, the lesson base, files, the engine
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lessonxl"

LAYERS = {
    "front": {"__init__", "__main__", "cli", "api", "watcher", "workers"},
    "checking": {"pipeline", "compare", "reader", "report", "gradebook", "saved", "diagnose", "annotate", "exercise",
                 "evaluator", "functions", "references", "files"},
    "lessons": {"registry", "collab", "entropy", "graddesc", "mnist", "regularization", "optim", "movielens"},
    "workbook": {"lesson", "sheets", "values", "sameness", "recalc", "unobridge", "errors", "catalog"},
}
ORDER = ["front", "checking", "lessons", "workbook"]  # top to bottom
TOPICS = {"collab", "entropy", "graddesc", "mnist", "regularization"}  # lesson topics: never import each other
SHARED_BY_TOPICS = {"optim", "movielens"}


def module_of(path: Path, package: Path = PACKAGE) -> str:
    """The top-level module a file belongs to: collab for lessonxl/collab/models.py."""
    return path.relative_to(package).parts[0].removesuffix(".py")


def imported(path: Path, package: Path = PACKAGE) -> set[str]:
    """The top-level lessonxl modules the file imports (relative or absolute, anywhere in the file)."""
    tree = ast.parse(path.read_text())
    inside = path.relative_to(package).parts[:-1]  # ("collab",) for a module of the collab package
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = list(inside[:len(inside) - node.level + 1]) + (node.module.split(".") if node.module else [])
            found.update([parts[0]] if parts else [alias.name for alias in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lessonxl."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("lessonxl."))
    return found - {"__version__"}


def layer_of(module: str) -> str:
    return next(layer for layer, modules in LAYERS.items() if module in modules)


def upward_imports(package: Path = PACKAGE) -> list[str]:
    """Every import of a module from a layer above the importer's."""
    upward = []
    for path in sorted(package.rglob("*.py")):
        module = module_of(path, package)
        for other in sorted(imported(path, package) - {module}):
            if ORDER.index(layer_of(other)) < ORDER.index(layer_of(module)):
                upward.append(f"{path.relative_to(package.parent)} ({layer_of(module)}) imports {other} "
                              f"({layer_of(other)})")
    return upward


def test_every_module_has_a_layer():
    modules = {module_of(path) for path in PACKAGE.rglob("*.py")}
    placed = set().union(*LAYERS.values())
    assert modules - placed == set(), "give these modules a layer in tests/test_layers.py"
    assert placed - modules == set(), "these modules are gone: remove them from tests/test_layers.py"


def test_imports_go_only_to_the_same_layer_or_below():
    assert upward_imports() == []


def test_the_rule_catches_an_upward_import(tmp_path):
    """The check can fail: a workbook-layer module that imports the pipeline and the reports, and a
    collab module that imports the registry, are caught."""
    package = tmp_path / "lessonxl"
    (package / "collab").mkdir(parents=True)
    (package / "values.py").write_text("import numpy\nfrom .pipeline import verify_paths\nfrom . import report\n")
    (package / "collab" / "models.py").write_text("from ..registry import LESSONS\nfrom ..sheets import Block\n")
    assert imported(package / "values.py", package) == {"pipeline", "report"}
    assert upward_imports(package) == ["lessonxl/values.py (workbook) imports pipeline (checking)",
                                       "lessonxl/values.py (workbook) imports report (checking)"]
    assert imported(package / "collab" / "models.py", package) == {"registry", "sheets"}


def test_a_lesson_topic_imports_no_other_topic():
    crossing = [f"{path.relative_to(PACKAGE.parent)} imports {other}"
                for path in sorted(PACKAGE.rglob("*.py")) if module_of(path) in TOPICS
                for other in imported(path) & (TOPICS | {"registry"}) - {module_of(path)}]
    assert crossing == []
    assert all(imported(PACKAGE / f"{shared}.py") & TOPICS == set() for shared in SHARED_BY_TOPICS)
