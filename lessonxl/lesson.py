"""What every lesson module provides: the torch computation and the workbook layout, side by side.

A lesson names its quantities as the workbook does: `sheet!name` for a sheet-scoped defined name,
`name` for a global one. Every value is a 2-D grid in the orientation the sheet shows it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import ClassVar, Mapping

import numpy as np
import torch

from .errors import UsageError
from .sameness import same_file
from .sheets import Book, as_grid


def pick_device(name: str = "auto") -> torch.device:
    """`auto` is CUDA when present, else the CPU; asking for an absent CUDA is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here (use --device cpu or auto)")
    if name not in ("cpu", "cuda"):
        raise UsageError(f"--device {name}: choose auto, cpu or cuda")
    return torch.device(name)


class Lesson:
    """One lesson topic: subclasses set the class attributes and the three methods."""

    name: ClassVar[str]                 # the workbook's file stem
    title: ClassVar[str]                # one line: what the workbook teaches
    sheets: ClassVar[dict[str, str]]    # sheet name -> one line on what it teaches
    inputs: ClassVar[tuple[str, ...]]   # names read from the workbook before torch computes
    params: ClassVar[frozenset[str]] = frozenset()       # inputs that training learns (yellow)
    text_inputs: ClassVar[frozenset[str]] = frozenset()  # inputs holding labels, not numbers
    blank_inputs: ClassVar[frozenset[str]] = frozenset()  # inputs whose blank cells mean "missing"

    @property
    def filename(self) -> str:
        return self.name + ".xlsx"

    def default_inputs(self, seed: int, **options) -> dict[str, np.ndarray]:
        """The built-in, seeded inputs of the generated workbook (`options`: the lesson's own flags)."""
        raise NotImplementedError

    def compute(self, inputs: Mapping[str, object]) -> dict[str, torch.Tensor]:
        """Every formula quantity, from inputs given as float64 tensors (labels stay arrays)."""
        raise NotImplementedError

    def layout(self, book: Book) -> None:
        """Write the sheets: notes first, then each quantity as a block with its formulas."""
        raise NotImplementedError

    def tensors(self, inputs: Mapping[str, np.ndarray], device: torch.device) -> dict[str, object]:
        """The inputs as `compute` takes them: float64 grids on `device`; labels stay arrays."""
        return {key: value if key in self.text_inputs
                else torch.as_tensor(as_grid(np.asarray(value, dtype=np.float64)), device=device)
                for key, value in inputs.items()}

    def evaluate(self, inputs: Mapping[str, np.ndarray], device: torch.device) -> dict[str, np.ndarray]:
        """Run `compute` on `device` in float64 and return every output as a 2-D numpy grid."""
        outputs = self.compute(self.tensors(inputs, device))
        return {key: as_grid(value.detach().cpu().numpy()) for key, value in outputs.items()}

    def build(self, seed: int, device: torch.device, **options) -> bytes:
        """The workbook's bytes for the default inputs: torch results cached in every formula cell."""
        inputs = {key: as_grid(value) for key, value in self.default_inputs(seed, **options).items()}
        values = {**inputs, **self.evaluate(inputs, device)}
        buffer = io.BytesIO()
        book = Book(buffer, values, self.inputs, self.params)
        self.layout(book)
        book.close()
        return buffer.getvalue()

    def write(self, folder: Path, seed: int, device: torch.device, **options) -> tuple[Path, bool]:
        """Write the workbook into `folder`: its path, and whether the file was (re)written.

        A file that already holds the same workbook, its cached results equal to rounding (see
        `sameness`), is kept byte for byte: regenerating on another CPU or on CUDA changes no file.
        """
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.filename
        data = self.build(seed, device, **options)
        if same_file(path, data):
            return path, False
        path.write_bytes(data)
        return path, True
