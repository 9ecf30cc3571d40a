"""What every lesson module provides: the torch computation and the workbook layout, side by side.

A lesson keys its quantities `sheet!name` for a name of one sheet, `name` for a global one (the
workbook's defined names are `sheet_name` and `name`: see `values`). Every value is a 2-D grid in the
orientation the sheet shows it.
"""

from __future__ import annotations

import contextlib
import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Mapping, NamedTuple

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from .errors import LessonxlError
from .sameness import KEPT, UP_TO_DATE, WROTE, as_written, same_file, stamp
from .values import as_grid, key as value_key, key_of, resolve


def pick_device(name: str = "auto") -> torch.device:
    """`auto` is CUDA when present, else the CPU; asking for an absent CUDA is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise LessonxlError("--device cuda: no CUDA device is available here (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise LessonxlError(f"--device {name}: choose auto, cpu or cuda")
    return torch.device(name)


@contextlib.contextmanager
def one_cpu_thread(device: torch.device = torch.device("cpu")):
    """torch on one CPU thread meanwhile (on another device, as it is). A lesson's steps are many small
    products that OpenMP threads take longer to share out than one thread takes to do, the more so with
    LibreOffice recalculating on the other core: a 20 x 64 by 64 x 10 product, 5 ms on two threads against
    0.013 ms on one; the full-data collab fit of 100,000 ratings, 205 s against 14 s (2 busy cores)."""
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class Cancelling:
    """A quantity that subtracts nearly equal numbers (a finite difference, the gap between two
    trajectories): exact only relative to the size of its operands, `scale`, and snapped to 0 by
    spreadsheet engines when the operands agree in (almost) every digit. `compute` returns it in
    place of a plain tensor; verify then bounds the cell's error by `scale`, not by its value."""

    value: torch.Tensor
    scale: torch.Tensor


class _SpreadsheetErrors(TorchFunctionMode):
    """torch arithmetic with a spreadsheet's errors: a result that overflows (+-inf) becomes nan,
    which then spreads through everything computed from it, as #NUM! does in a sheet (in plain
    torch, x / inf = 0 and exp(-inf) = 0 hide where an overflow went)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            return torch.where(torch.isinf(out), torch.nan, out)
        return out


def exact_match(labels, table, what: str) -> list[int]:
    """0-based position of each label in `table`, as MATCH(label, table, 0) finds it: the first
    entry equal to it, text compared ignoring case (as MATCH and = do in every spreadsheet)."""
    names = [str(entry).casefold() for entry in np.asarray(table).ravel()]
    positions = []
    for label in np.asarray(labels).ravel():
        key = str(label).casefold()
        if key not in names:
            raise LessonxlError(f"{what} \"{label}\" is not one of {', '.join(map(str, np.asarray(table).ravel()))}")
        positions.append(names.index(key))
    return positions


class SheetValues:
    """A sheet's view of the values: `values[name]` is its own name, else the workbook's global name
    (see `values.resolve`); `of(sheet)` reads another sheet's names (inputs, or the outputs of sheets
    computed before)."""

    def __init__(self, values: Mapping[str, object], sheet: str):
        self._values, self.sheet = values, sheet

    def __getitem__(self, name: str):
        return resolve(self._values, self.sheet, name)

    def of(self, sheet: str) -> "SheetValues":
        return SheetValues(self._values, sheet)


class SheetSpec:
    """One sheet of a workbook: the quantities it shows, computed by torch in `compute` and written
    as formulas in `layout`, side by side. Names are the sheet's own defined names (`logits`), or
    global names listed in `global_names`; a lesson is assembled from its sheets' specs."""

    name: str                               # the sheet's name
    title: str                              # row 0 of the sheet
    subtitle: str = ""                      # row 1: one line of explanation
    teaches: str = ""                       # one line for `lessonxl list`
    inputs: tuple[str, ...] = ()            # names read from the workbook before torch computes
    params: frozenset[str] = frozenset()    # inputs that training learns (yellow)
    text_inputs: frozenset[str] = frozenset()   # inputs holding labels, not numbers
    blank_inputs: frozenset[str] = frozenset()  # inputs whose blank cells mean "missing"
    global_names: frozenset[str] = frozenset()  # names defined for the whole workbook

    def key(self, name: str) -> str:
        """The lesson-wide key of this sheet's name `name` (see `values.key`)."""
        return value_key(None if name in self.global_names else self.name, name)

    def compute(self, values: SheetValues) -> dict[str, torch.Tensor]:
        """This sheet's formula quantities, by name, from the inputs (float64 tensors; labels stay
        arrays) and the outputs of the sheets before it."""
        return {}

    def layout(self, sheet) -> None:
        """Write the sheet's blocks and their formulas (`sheet`: a `sheets.Sheet`, titled)."""
        raise NotImplementedError


class Lesson:
    """One lesson topic: a workbook made of a notes sheet and the sheets of `specs`, in order.

    Subclasses set the class attributes and `default_inputs`. The sheet list, the inputs and their
    kinds, `compute` and `layout` follow from the specs.
    """

    name: ClassVar[str]                 # the workbook's file stem
    title: ClassVar[str]                # one line: what the workbook teaches
    specs: ClassVar[tuple[SheetSpec, ...]]  # the sheets after `notes`, in order
    notes_title: ClassVar[str]          # the notes sheet's title
    notes_teaches: ClassVar[str] = "what the workbook shows and what to try"
    #: Defined names a release renamed: the key now -> the key earlier releases wrote (their files
    #: still verify: the names are the workbook's public interface).
    former_names: ClassVar[dict[str, str]] = {}
    #: The sheets as the files of earlier releases have them, where a release changed what a sheet
    #: computes: a release -> the specs of files written before it (`registry.Earlier` takes the entry of
    #: the first release at or after the one a file predates).
    specs_before: ClassVar[dict[str, tuple[SheetSpec, ...]]] = {}
    #: How to get a workbook of another size (said when an edited workbook's inputs outgrow its formulas).
    resize_hint: ClassVar[str] = "keep the workbook's size and type your numbers into the cells it has"
    #: Sheets only some of the lesson's files have (collab_filter's top_movies, made from a ratings file):
    #: their names are read back as the lesson's (`key_of`), and `with_sheets` adds them where a file has them.
    optional_specs: ClassVar[tuple[SheetSpec, ...]] = ()

    @property
    def filename(self) -> str:
        return self.name + ".xlsx"

    @property
    def sheets(self) -> dict[str, str]:
        """Sheet name -> one line on what it teaches."""
        return {"notes": self.notes_teaches, **{spec.name: spec.teaches for spec in self.specs}}

    def _keys(self, kind: str) -> list[str]:
        return [spec.key(name) for spec in self.specs for name in getattr(spec, kind)]

    @property
    def inputs(self) -> tuple[str, ...]:
        """The keys read from the workbook before torch computes."""
        return tuple(dict.fromkeys(self._keys("inputs")))

    @property
    def params(self) -> frozenset[str]:
        return frozenset(self._keys("params"))

    @property
    def text_inputs(self) -> frozenset[str]:
        return frozenset(self._keys("text_inputs"))

    @property
    def blank_inputs(self) -> frozenset[str]:
        return frozenset(self._keys("blank_inputs"))

    def notes(self, values: Mapping[str, np.ndarray]) -> tuple[str, ...]:
        """The paragraphs of the notes sheet, for the workbook's values."""
        raise NotImplementedError

    @functools.cached_property
    def _naming(self) -> tuple[tuple[str, ...], frozenset[str]]:
        """The sheets, longest name first, and the global names: what `key_of` matches against."""
        every = (*self.specs, *self.optional_specs)
        names = dict.fromkeys([*self.sheets, *(spec.name for spec in self.optional_specs)])
        sheets = tuple(sorted(names, key=len, reverse=True))
        return sheets, frozenset(name for spec in every for name in spec.global_names)

    def with_sheets(self, present) -> "Lesson":
        """The lesson as a file with the sheets `present` has it: with those of `optional_specs` it holds."""
        return self

    def key_of(self, name: str) -> str:
        """The key of the workbook's global defined name `name` (adam_lesson_lr -> adam_lesson!lr; a global
        name such as data_x as it is): `values.key_of` over this lesson's sheets and global names."""
        return key_of(name, *self._naming)

    def area_of(self, names: Mapping[str, object], key: str):
        """`names[key]`, or, in a file an earlier release wrote, the entry of the name `key` had then;
        None when neither is there."""
        if key in names:
            return names[key]
        return names.get(self.former_names.get(key, ""))

    def default_inputs(self, seed: int, **options) -> dict[str, np.ndarray]:
        """The built-in, seeded inputs of the generated workbook (`options`: the lesson's own flags)."""
        raise NotImplementedError

    def compute(self, inputs: Mapping[str, object]) -> dict[str, object]:
        """Every formula quantity, by key, from inputs given as float64 tensors (labels stay
        arrays): each sheet's `compute` in turn, seeing the outputs of the sheets before it."""
        values, out = dict(inputs), {}
        for spec in self.specs:
            for name, value in spec.compute(SheetValues(values, spec.name)).items():
                out[spec.key(name)] = values[spec.key(name)] = value
        return out

    def layout(self, book) -> None:
        """Write the sheets: notes first, then each spec's sheet."""
        book.notes(self.notes_title, self.notes(book.values))
        for spec in self.specs:
            spec.layout(book.sheet(spec.name, spec.title, spec.subtitle))

    def tensors(self, inputs: Mapping[str, np.ndarray], device: torch.device) -> dict[str, object]:
        """The inputs as `compute` takes them: float64 grids on `device`; labels stay arrays."""
        return {key: value if key in self.text_inputs
                else torch.as_tensor(as_grid(np.asarray(value, dtype=np.float64)), device=device)
                for key, value in inputs.items()}

    def evaluate(self, inputs: Mapping[str, np.ndarray], device: torch.device) -> dict[str, np.ndarray]:
        """Run `compute` on `device` in float64 and return every output as a 2-D numpy grid."""
        return self.expected(inputs, device)[0]

    def expected(self, inputs: Mapping[str, np.ndarray], device: torch.device,
                 spreadsheet_errors: bool = False) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Every output as a 2-D numpy grid, and the operand scale of each `Cancelling` output.

        With `spreadsheet_errors`, an overflow spreads as a sheet's error value does (see
        `_SpreadsheetErrors`): nan marks every cell computed from an inf or a nan.
        """
        mode = _SpreadsheetErrors() if spreadsheet_errors else contextlib.nullcontext()
        with mode:
            outputs = self.compute(self.tensors(inputs, device))
        values, scales = {}, {}
        for key, value in outputs.items():
            if isinstance(value, Cancelling):
                scales[key] = _grid(value.scale)
                value = value.value
            values[key] = _grid(value)
        return values, scales

    def generate_notes(self, inputs: Mapping[str, np.ndarray]) -> tuple[str, ...]:
        """What `lessonxl generate` tells the user about the workbook of these inputs, one line each,
        besides writing it (e.g. that a sheet was cut to a size a spreadsheet opens)."""
        return ()

    def build(self, seed: int, device: torch.device, **options) -> bytes:
        """The workbook's bytes for the default inputs: torch results cached in every formula cell,
        stamped as lessonxl's (see `sameness.stamp`)."""
        return self.make(seed, device, **options).data

    def make(self, seed: int, device: torch.device, exercise=None, **options) -> Made:
        """The workbook's bytes (as `build`) and what `lessonxl generate` tells the user about it;
        with `exercise` (an `exercise.Exercise`), the exercise version of it."""
        inputs = self._default_grids(seed, **options)
        return Made(self._workbook(inputs, device, exercise), self.generate_notes(inputs))

    def _default_grids(self, seed: int, **options) -> dict[str, np.ndarray]:
        inputs = {key: as_grid(value) for key, value in self.default_inputs(seed, **options).items()}
        if set(inputs) != set(self.inputs):
            raise ValueError(f"{self.name}: default inputs {sorted(set(inputs) ^ set(self.inputs))} "
                             "are not the inputs its sheets declare (or the other way round)")
        return inputs

    def _workbook(self, inputs: dict[str, np.ndarray], device: torch.device, exercise=None) -> bytes:
        values = {**inputs, **self.evaluate(inputs, device)}
        from .sheets import Book  # the file writer: needed to generate, not to verify

        buffer = io.BytesIO()
        book = Book(buffer, values, self.inputs, self.params)
        if exercise is None:
            self.layout(book)
        else:
            exercise.write(book, self.layout)
        book.close()
        return stamp(buffer.getvalue())

    def write(self, folder: Path, seed: int, device: torch.device, force: bool = False,
              **options) -> Written:
        """Make the workbook (`make`) and `save` it into `folder`."""
        return self.save(folder, self.make(seed, device, **options), force)

    def save(self, folder: Path, made: Made, force: bool = False, filename: str | None = None) -> Written:
        """Save a workbook `make` made into `folder`: its path, WROTE, UP_TO_DATE or KEPT, and its notes.

        A file there that already holds the same workbook, its cached results equal to rounding (see
        `sameness`), is left as it is (UP_TO_DATE): regenerating on another CPU or on CUDA changes no
        file. A file that is not as lessonxl wrote it (edited since, or someone else's) is never
        overwritten without `force` (KEPT). The file is replaced at once, never left half written.
        """
        filename = filename or self.filename
        path, (data, notes) = folder / filename, made
        if path.exists() and not path.is_dir():
            if same_file(path, data):
                return Written(path, UP_TO_DATE, notes)
            if not force and not as_written(path):
                return Written(path, KEPT, notes)
        partial = folder / f".{filename}.part"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(data)
            partial.replace(path)
        except OSError as error:
            raise LessonxlError(f"cannot write {path} ({error.strerror or error})") from None
        finally:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
        return Written(path, WROTE, notes)


class Made(NamedTuple):
    """A workbook `Lesson.make` made, not yet saved: its bytes and what to tell the user about it."""

    data: bytes
    notes: tuple[str, ...] = ()


class Written(NamedTuple):
    """What `Lesson.save` did: the file's path, WROTE, UP_TO_DATE or KEPT, and what to tell the user."""

    path: Path
    status: str
    notes: tuple[str, ...] = ()


def _grid(value: torch.Tensor | np.ndarray) -> np.ndarray:
    """A computed quantity as a 2-D numpy grid (labels, looked up by a formula, come as object arrays)."""
    if isinstance(value, np.ndarray):
        return as_grid(value)
    return as_grid(value.detach().cpu().numpy())
