"""Every workbook lessonxl makes, and how to tell which one a file is."""

from __future__ import annotations

from .collab import CollabFilter
from .entropy import Entropy
from .errors import UsageError
from .graddesc import GradDesc
from .lesson import Lesson
from .regularization import Regularization

# In the order of the lesson: embeddings, optimizers, cross-entropy, then regularization.
LESSONS: tuple[Lesson, ...] = (CollabFilter(), GradDesc(), Entropy(), Regularization())


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
