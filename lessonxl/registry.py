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


def by_sheets(sheet_names, shown: str) -> Lesson:
    """The lesson whose sheets the file `shown` holds (a renamed file is still recognised).

    A file that holds most of a lesson's sheets but lacks one (renamed or deleted) is refused naming
    that sheet; the `notes` sheet may go.
    """
    present = set(sheet_names)

    def lesson_sheets(lesson: Lesson) -> list[str]:
        return [sheet for sheet in lesson.sheets if sheet != "notes"]

    closest = max(LESSONS, key=lambda lesson: len(present.intersection(lesson_sheets(lesson))))
    missing = [sheet for sheet in lesson_sheets(closest) if sheet not in present]
    if not missing:
        return closest
    if len(missing) == len(lesson_sheets(closest)):
        raise UsageError(f"{shown}: was not made by lessonxl (it has none of the sheets of its workbooks, "
                         f"such as {', '.join(lesson_sheets(LESSONS[0])[:3])})")
    extra = sorted(present - set(closest.sheets))
    sheet = missing[0]
    same_but_case = [name for name in extra if name.casefold() == sheet.casefold()]
    if same_but_case:
        guess = f"; it is called {same_but_case[0]} here (sheet names are case-sensitive to lessonxl)"
    elif len(extra) == 1 and len(missing) == 1:
        guess = f"; was it renamed to {extra[0]}?"
    else:
        guess = ""
    raise UsageError(f"{shown}: has no sheet {sheet}, which every {closest.filename} has{guess}"
                     f"{'' if guess.endswith('?') else '.'} "
                     f"Rename it back to {sheet} (the sheets of {closest.filename}: {', '.join(closest.sheets)})")
