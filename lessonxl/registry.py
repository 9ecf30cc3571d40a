"""Every workbook lessonxl makes, and how to tell which one a file is."""

from __future__ import annotations

from .entropy import Entropy
from .errors import UsageError
from .lesson import Lesson

LESSONS: tuple[Lesson, ...] = (Entropy(),)


def by_name(name: str) -> Lesson:
    """The lesson whose workbook stem (or file name) is `name`."""
    for lesson in LESSONS:
        if name in (lesson.name, lesson.filename):
            return lesson
    raise UsageError(f"unknown workbook {name!r}: choose from {', '.join(l.name for l in LESSONS)}")


def by_sheets(sheet_names) -> Lesson | None:
    """The lesson whose sheets a file holds (a renamed file is still recognised), or None."""
    present = set(sheet_names)
    for lesson in LESSONS:
        if set(lesson.sheets) <= present:
            return lesson
    return None
