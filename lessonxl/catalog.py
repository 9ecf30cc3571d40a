"""The workbooks lessonxl makes, by name, known without importing torch or the lessons: what a command
needs to refuse a name before it starts any work (registry.LESSONS holds the lessons in this order; a
test keeps the two the same)."""

from __future__ import annotations

from typing import Iterable

from .errors import UsageError

NAMES = ("collab_filter", "graddesc", "entropy_example", "regularization", "mnist_sgd")


def known(name: str) -> str:
    """The workbook `name` names (its stem, or its file name), or a UsageError listing them."""
    stem = name.removesuffix(".xlsx")
    if stem not in NAMES:
        raise UsageError(f"unknown workbook {name!r}: choose from {', '.join(NAMES)}")
    return stem


def check(names: Iterable[str]) -> None:
    """Refuse the first name that is no workbook's."""
    for name in names:
        known(name)
