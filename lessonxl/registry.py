"""Every workbook lessonxl makes, how to tell which one a file is, and what earlier releases wrote."""

from __future__ import annotations

import copy
import functools
from typing import Mapping

import torch

from .catalog import known, recognise
from .collab import SQUARINGS, CollabFilter
from .entropy import Entropy
from .errors import LessonxlError
from .graddesc import GradDesc
from .lesson import Lesson, SheetValues
from .mnist import MnistSgd
from .regularization import Regularization
from .values import defined_name

# In the order of the lesson: embeddings, optimizers, cross-entropy, regularization, then the MNIST notebook.
LESSONS: tuple[Lesson, ...] = (CollabFilter(), GradDesc(), Entropy(), Regularization(), MnistSgd())

#: What each workbook gained after release 0.1.0, with the release that first wrote it: a sheet (by its
#: name), or a defined name on a sheet that earlier releases already had (by its key, `sheet!name`). A
#: file written before that release lacks them and is verified on what it has (see `by_sheets`). Add
#: an entry here when you add a sheet, or an input or a verified quantity to an existing sheet.
#: (Release 0.3.0 = commit fa05ff8; 0.2.0's collab_filter.xlsx, 6263b60, has neither of these.)
#: 0.5.0: held-out ratings on the crosstab sheets and gd_steps, weight decay on gd_steps, and the principal
#: components by repeated squaring (its sheets as 0.4.0 wrote them: `CollabFilter.specs_before`).
ADDED: dict[str, dict[str, str]] = {
    "collab_filter": {
        "interpret": "0.3.0", "dotprod!movie_titles": "0.3.0",
        **{f"{sheet}!{name}": "0.5.0" for sheet in ("dotprod", "bias", "bias_yrange")
           for name in ("valid", "train_rmse", "valid_rmse", "train_mean", "mean_rmse")},
        **{f"gd_steps!{name}": "0.5.0" for name in ("valid", "wd", "train_mask", "n_train", "n_valid", "valid_rmse")},
        **{f"interpret!pc{pc}_{name}": "0.5.0" for pc in (1, 2)
           for name in (*(f"square_{j}" for j in range(1, SQUARINGS + 1)), "product")},
    },
}


def by_name(name: str) -> Lesson:
    """The lesson whose workbook stem (or file name) is `name`."""
    stem = known(name)
    return next(lesson for lesson in LESSONS if lesson.name == stem)


def _version(release: str) -> tuple[int, ...]:
    return tuple(int(part) for part in release.split("."))


@functools.cache
def releases(lesson: Lesson) -> tuple[Lesson, ...]:
    """The lesson as each release wrote it, newest first: the lesson itself, then `Earlier` views, one per
    release in `ADDED` (written before it)."""
    added = ADDED.get(lesson.name, {})
    return (lesson, *(Earlier(lesson, since) for since in sorted(set(added.values()), key=_version, reverse=True)))


def by_sheets(sheet_names, shown: str, names: Mapping[str, object] | None = None) -> Lesson:
    """The lesson whose sheets the file `shown` holds (a renamed file is still recognised), as the
    release that wrote the file made it.

    `names` are the file's defined names by key (`reader.Outline.names`). A file that lacks exactly what
    releases since one in `ADDED` added (its sheets, and with `names` given, its names) was written before
    it: the lesson comes as an `Earlier` view, verified on the sheets the file has. A file that holds
    most of a lesson's sheets but lacks one its release had (renamed or deleted) is refused naming that
    sheet; the `notes` sheet may go.
    """
    present = set(sheet_names)

    def lesson_sheets(lesson: Lesson) -> list[str]:
        return [sheet for sheet in lesson.sheets if sheet != "notes"]

    recognise(present, shown)
    closest = max(LESSONS, key=lambda lesson: len(present.intersection(lesson_sheets(lesson))))

    def has(item: str) -> bool:
        if "!" not in item:
            return item in present
        return closest.area_of(names, item) is not None or defined_name(item) in names

    # What the file lacks of what releases added (without `names`, of their sheets alone), and the
    # oldest release that never had all of that: the one that wrote the file. A current file with a
    # sheet deleted still has the names its release added on other sheets, so it is the current one's.
    recorded = [item for item in ADDED.get(closest.name, {}) if names is not None or "!" not in item]
    lacking = {item for item in recorded if not has(item)}
    release = next(view for view in reversed(releases(closest))
                   if {item for item in getattr(view, "absent", ()) if item in recorded} <= lacking)
    missing = [sheet for sheet in lesson_sheets(release) if sheet not in present]
    if not missing:
        return release.with_sheets(present)
    extra = sorted(present - set(release.sheets))
    sheet = missing[0]
    same_but_case = [name for name in extra if name.casefold() == sheet.casefold()]
    if same_but_case:
        guess = f"; it is called {same_but_case[0]} here (sheet names are case-sensitive to lessonxl)"
    elif len(extra) == 1 and len(missing) == 1:
        guess = f"; was it renamed to {extra[0]}?"
    else:
        guess = ""
    raise LessonxlError(f"{shown}: has no sheet {sheet}, which every {closest.filename} has{guess}"
                        f"{'' if guess.endswith('?') else '.'} "
                        f"Rename it back to {sheet} (the sheets of {release.filename}"
                        f"{release.written if isinstance(release, Earlier) else ''}: {', '.join(release.sheets)})")


class Earlier:
    """A lesson as the releases before `since` wrote it: without what `ADDED` says `since` and later
    releases added. It is the lesson (an instance of the lesson's own class) with fewer sheets: its inputs
    are those the file has; torch computes only the quantities the file has (an absent input a present
    sheet reads takes its default, an absent sheet's quantity a present sheet reads is computed); and
    nothing absent is required or compared.

    Construct as `Earlier(lesson, since)`: the result is a copy of `lesson` whose class is a subclass of
    both."""

    def __new__(cls, lesson: Lesson, since: str):
        absent = frozenset(item for item, release in ADDED.get(lesson.name, {}).items()
                           if _version(release) >= _version(since))
        view = copy.copy(lesson)
        view.__dict__.pop("_naming", None)  # cached from the whole lesson's sheets
        view.__class__ = type(f"{type(lesson).__name__}Before{since.replace('.', '_')}", (cls, type(lesson)), {})
        view.whole, view.since, view.absent = lesson, since, absent
        view.specs = tuple(spec for spec in _specs_before(lesson, since) if spec.name not in absent)
        return view

    def __init__(self, lesson: Lesson, since: str):
        pass  # all done in __new__ (the lesson's own __init__ is not run again)

    @property
    def written(self) -> str:
        """How the file was written, in a user's words."""
        return f" as lessonxl wrote it before {self.since}"

    @property
    def note(self) -> str:
        """What verify may say about such a file: "written by lessonxl before 0.3.0: verified on the 7
        sheets it has (interpret came in 0.3.0)"."""
        added = ADDED.get(self.name, {})
        later = ", ".join(f"{item} came in {added[item]}" for item in added if item in self.absent and "!" not in item)
        return (f"written by lessonxl before {self.since}: verified on the {len(self.specs)} sheets it has"
                f"{f' ({later})' if later else ''}")

    def lacks(self, key: str) -> bool:
        """Whether the value `key` is one the files of this release do not have."""
        sheet = key.rpartition("!")[0]
        return key in self.absent or sheet in self.absent or any(
            key in spec.global_names for spec in self.whole.specs if spec.name in self.absent)

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(key for key in super().inputs if key not in self.absent)

    def default_inputs(self, seed: int, **options):
        inputs = set(self.inputs)
        return {key: value for key, value in super().default_inputs(seed, **options).items() if key in inputs}

    def compute(self, inputs: Mapping[str, object]) -> dict[str, object]:
        """The quantities of the sheets the file has, from its inputs: `Lesson.compute` over the present
        sheets, reading what the file lacks from `_Lacking`."""
        values, out = _Lacking(inputs, self), {}
        for spec in self.specs:
            for name, value in spec.compute(SheetValues(values, spec.name)).items():
                key = spec.key(name)
                values[key] = value
                if key not in self.absent:
                    out[key] = value
        return out


def _specs_before(lesson: Lesson, since: str) -> tuple:
    """The lesson's sheets as files written before `since` have them: `Lesson.specs_before` of the first
    release at or after `since` that changed a sheet (files before `since` are before it too), else its
    sheets as they are."""
    later = [release for release in lesson.specs_before if _version(release) >= _version(since)]
    return lesson.specs_before[min(later, key=_version)] if later else lesson.specs


class _Lacking(dict):
    """The values the present sheets of an `Earlier` lesson read, and, made when first read, what the file
    lacks: an input at its default (the generated workbook's, seed 0), an absent sheet's quantities
    computed from these values."""

    def __init__(self, values: Mapping[str, object], view: Earlier):
        super().__init__(values)
        self.view, self.defaults = view, None

    def __contains__(self, key) -> bool:
        return super().__contains__(key) or self.view.lacks(key)

    def __missing__(self, key: str):
        view = self.view
        if not view.lacks(key):
            raise KeyError(key)
        if key in view.whole.inputs:
            if self.defaults is None:
                device = next((v.device for v in self.values() if isinstance(v, torch.Tensor)), torch.device("cpu"))
                lacking = {k: v for k, v in view.whole.default_inputs(0).items() if view.lacks(k)}
                self.defaults = view.whole.tensors(lacking, device)
            self[key] = self.defaults[key]
            return self[key]
        owner = next((spec for spec in view.whole.specs if spec.name in view.absent
                      and (key.rpartition("!")[0] == spec.name or key in spec.global_names)), None)
        if owner is None:  # a quantity of a present sheet that its release lacked, read before computed
            raise KeyError(key)
        for name, value in owner.compute(SheetValues(self, owner.name)).items():
            self[owner.key(name)] = value
        return self[key]
