"""Exercises: workbooks with chosen formula blocks left empty for a student, and their grade.

`lessonxl generate --exercise` writes NAME_exercise.xlsx: the lesson's workbook with the blocks of
`BLOCKS` left empty, styled "to do" (`sheets.TODO`), each with what to compute in a comment on its first
empty cell, and a first sheet, `exercise`, that lists them (the sheet that makes the file an exercise).
`lessonxl verify` grades such a file block by block (`grade`): empty, partly done, right, or wrong at the
root cell that `diagnose` finds. Values are compared, not formulas: any formula that computes torch's
values is right; a typed number is not (a hard-coded answer is not a computed one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from . import reader
from .values import as_grid, defined_name

SHEET = "exercise"  # the sheet every exercise file has, first
EMPTY, PARTLY, RIGHT, WRONG = "empty", "partly done", "right", "wrong"
TABLE_TOP = 6  # the row (1-based) of the exercise sheet's first block; its columns: block, cells, given rows, task


@dataclass(frozen=True)
class Block:
    """Quantities a student computes, side by side (their keys, `sheet!name`), and what to compute."""

    keys: tuple[str, ...]
    task: str

    @property
    def label(self) -> str:
        """The block's defined names, as the exercise sheet lists them."""
        return ", ".join(map(defined_name, self.keys))


#: The exercise blocks of each workbook, in the order of its sheets.
BLOCKS: dict[str, tuple[Block, ...]] = {
    "graddesc": (
        Block(("momentum!m_intercept", "momentum!m_slope"),
              "the momentum steps, one per gradient (momentum_de_db, momentum_de_da): "
              "momentum_momentum * the step above + (1 - momentum_momentum) * the gradient; "
              "on the first row the step is the gradient itself"),
        Block(("momentum!intercept", "momentum!slope"),
              "the parameters after each update: the value above - momentum_lr * this row's step "
              "(on the first row, momentum_intercept_start and momentum_slope_start)"),
        Block(("adam!m_intercept", "adam!m_slope"),
              "Adam's first moment: adam_beta1 * the value above + (1 - adam_beta1) * the gradient "
              "(adam_de_db, adam_de_da); the value above the first row is 0"),
        Block(("adam!v_intercept", "adam!v_slope"),
              "Adam's second moment: adam_beta2 * the value above + (1 - adam_beta2) * the gradient squared; "
              "the value above the first row is 0"),
        Block(("adam!intercept", "adam!slope"),
              "the parameters after each Adam update: the value above - adam_lr * m_hat / (SQRT(v_hat) + "
              "adam_eps), with m_hat = m / (1 - adam_beta1^t), v_hat = v / (1 - adam_beta2^t), t the step in "
              "column A (on the first row, start from adam_intercept_start and adam_slope_start)"),
    ),
    "entropy_example": (
        Block(("softmax!probs",), "softmax: each exp (softmax_exp_logits) divided by its row's sum "
                                  "(softmax_sum_exp)"),
        Block(("binary_xent!loss",), "binary cross-entropy of each row: -(label * LN(p) + (1 - label) * "
                                     "LN(1 - p)), label binary_xent_labels, p binary_xent_predicted"),
        Block(("multiclass_xent!loss_lookup",), "the loss of each row: minus the log-probability "
                                                "(multiclass_xent_log_probs) at the target's index "
                                                "(multiclass_xent_target_index), e.g. with INDEX"),
    ),
    "collab_filter": (
        Block(("dotprod!predictions",), "each prediction: the dot product of the user's factors "
                                        "(a row of dotprod_user_factors) and the movie's (a column of "
                                        "dotprod_movie_factors), e.g. with MMULT or SUMPRODUCT"),
        Block(("dotprod!rmse",), "the RMSE of dotprod_predictions against dotprod_ratings over the rated "
                                 "cells only (a blank rating is unrated: mask with (dotprod_ratings<>\"\") "
                                 "and divide by COUNT(dotprod_ratings))"),
    ),
    "mnist_sgd": (
        Block(("logistic!grad_logits_1",), "d loss / d logits for step 1: (the probability - 1 where the "
                                           "column is the image's label, else - 0) / logistic_batch_size"),
        Block(("logistic!grad_w_1",), "d loss / d W for step 1: for each weight, SUMPRODUCT of the batch's "
                                      "pixel column (sheet digits) and the column of logistic_grad_logits_1, "
                                      "+ 2 * logistic_wd * the weight"),
        Block(("logistic!grad_b_1",), "d loss / d b for step 1: the SUM of each column of "
                                      "logistic_grad_logits_1 + 2 * logistic_wd * the bias"),
    ),
}


@dataclass(frozen=True)
class Exercise:
    """The exercise version of one workbook: its `blocks` left empty but for their first `given` rows."""

    lesson: str
    blocks: tuple[Block, ...]
    given: int = 0

    @property
    def filename(self) -> str:
        """graddesc -> graddesc_exercise.xlsx."""
        return f"{self.lesson}_exercise.xlsx"

    def todo(self, values: Mapping[str, object]) -> dict[str, int]:
        """Each block's key -> the rows kept as an example (none in a block of one row)."""
        return {key: self.given if as_grid(values[key]).shape[0] > self.given else 0
                for block in self.blocks for key in block.keys}

    def write(self, book, layout: Callable) -> None:
        """Write the workbook into `book` (`sheets.Book`) with `layout`, the exercise sheet first."""
        sheet = book.sheet(SHEET, f"Exercise: complete the orange cells of {len(self.blocks)} blocks",
                           "Write one formula per orange cell (fill down or across). Check your work with "
                           f"lessonxl verify {self.filename} (or verify --watch: a new grade at each save).")
        book.todo = self.todo(book.values)
        layout(book)
        self._describe(book, sheet)
        sheet.ws.activate()

    def _describe(self, book, sheet) -> None:
        """The exercise sheet's table of blocks, and each block's task on its first empty cell."""
        from .sheets import TODO

        sheet.ws.write_string(3, 0, "to do: a cell for you to fill with a formula", book.style(TODO))
        for col, (header, width) in enumerate((("block (defined names)", 40), ("cells", 24),
                                               ("rows given", 11), ("what to compute", 100))):
            sheet.ws.write_string(TABLE_TOP - 2, col, header, book.style("header"))
            sheet.ws.set_column(col, col, width)
        for row, block in enumerate(self.blocks, TABLE_TOP - 1):
            parts = [book.sheet_named(key.rpartition("!")[0]).blocks[key.rpartition("!")[2]] for key in block.keys]
            given = book.todo[block.keys[0]]
            note = book.style("note")  # wrapped, at the top of the row
            sheet.ws.write_string(row, 0, block.label, note)
            sheet.ws.write_string(row, 1, _area_span([reader.Area(part.sheet.name, part.top + 1, part.left + 1,
                                                                   part.bottom + 1, part.right + 1)
                                                      for part in parts]), note)
            sheet.ws.write_number(row, 2, given, note)
            sheet.ws.write_string(row, 3, block.task, note)
            sheet.ws.set_row(row, 15 * (1 + len(block.task) // 95))  # the task's lines, wrapped
            first = parts[0]
            if given < first.rows:
                first.sheet.ws.write_comment(first.top + given, first.left, f"To do: {block.task}",
                                             {"x_scale": 3, "y_scale": 2})


def exercise_for(lesson_name: str, easy: bool = False) -> Exercise:
    """The exercise of a workbook (`easy`: the first row of each block given)."""
    from .errors import LessonxlError

    if lesson_name not in BLOCKS:
        raise LessonxlError(f"--exercise: {lesson_name} has no exercise (those that do: {', '.join(BLOCKS)})")
    return Exercise(lesson_name, BLOCKS[lesson_name], 1 if easy else 0)


# --- grading ---------------------------------------------------------------------------------------


@dataclass
class BlockGrade:
    """One block of a student's file: where it is, how much is filled in, and its status."""

    label: str
    where: str                  # adam!I28:J627
    status: str                 # EMPTY, PARTLY, RIGHT or WRONG
    filled: int                 # cells the student filled (formulas or typed values), given rows left out
    cells: int                  # cells for the student to fill
    mistake: str = ""           # WRONG, PARTLY: the first cell of the block's first mistake (`diagnose`'s
    #                             root; in a block partly done, one of the cells filled in)


@dataclass
class Grade:
    """An exercise file's grade: each block, and the mistakes outside every block (a given formula
    that the student changed)."""

    blocks: list[BlockGrade] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    @property
    def right(self) -> int:
        return sum(block.status == RIGHT for block in self.blocks)

    @property
    def filled_in(self) -> bool:
        """Whether every block is filled in (right or wrong)."""
        return all(block.status in (RIGHT, WRONG) for block in self.blocks)

    @property
    def passed(self) -> bool:
        return self.right == len(self.blocks) and not self.outside

    @property
    def first_wrong(self) -> str:
        """The first cell to look at: the first wrong block's mistake, else the first mistake outside."""
        return next((block.mistake for block in self.blocks if block.mistake), None) or \
            next(iter(self.outside), "")

    def line(self) -> str:
        """"3 of 5 blocks right; adam!M28:N627 still empty; ..." (every block not right, in order)."""
        parts = [f"{self.right} of {len(self.blocks)} blocks right"]
        for block in self.blocks:
            if block.status == EMPTY:
                parts.append(f"{block.where} still empty")
            elif block.status == PARTLY:
                parts.append(f"{block.where} partly done ({block.filled:,} of {block.cells:,} cells)"
                             f"{f', wrong at {block.mistake}' if block.mistake else ''}")
            elif block.status == WRONG:
                parts.append(f"{block.where} wrong{f' at {block.mistake}' if block.mistake else ''}")
        if self.outside:
            parts.append(f"and a given formula changed at {', '.join(self.outside[:3])}")
        return "; ".join(parts)


def is_exercise(sheetnames: Sequence[str], lesson_name: str) -> bool:
    """Whether a file of this lesson with these sheets is an exercise (it has the exercise sheet)."""
    return SHEET in sheetnames and lesson_name in BLOCKS


def grade(lesson, recalculated: reader.Recalculated, checks: Sequence, findings: Sequence | None) -> Grade:
    """Grade each block of `lesson`'s exercise in a recalculated file from its checks (`compare.Check`) and
    the roots of its mistakes (`diagnose.Finding`; None where the diagnosis failed) as verify found them.

    A block filled in is right when its cells equal torch, or when none of them is a root of a mistake:
    in a recurrence such as online training, a wrong cell elsewhere changes every later value, and a block
    whose own formulas are right then differs only because it reads it. A block partly done is wrong at
    the first root among the cells filled in, if any (the empty ones differ, but are not wrong yet)."""
    passed = {(check.sheet, check.name): check.passed for check in checks}
    given = _given(recalculated)
    result, in_blocks = Grade(), set()
    for block in BLOCKS[lesson.name]:
        areas = [lesson.area_of(recalculated.names, key) for key in block.keys]
        cells = {reader.address(area.sheet, *cell) for area in areas for cell in area.cells()}
        in_blocks |= cells
        rows = given.get(block.label, 0)
        own = [(area.sheet, r, c) for area in areas for r, c in area.cells() if r - area.min_row >= rows]
        filled = sum(_filled(recalculated, *cell) for cell in own)
        equal = all(passed.get((area.sheet, key.rpartition("!")[2]), False) for area, key in zip(areas, block.keys))
        roots = [finding.first for finding in findings or () if cells.intersection(finding.cells)]
        right = equal or (findings is not None and not roots)
        status = EMPTY if not filled else PARTLY if filled < len(own) else RIGHT if right else WRONG
        if status == PARTLY:
            at = {reader.address(*cell): cell for cell in own}
            roots = [root for root in roots if root in at and _filled(recalculated, *at[root])]
        mistake = roots[0] if status in (WRONG, PARTLY) and roots else ""
        result.blocks.append(BlockGrade(block.label, _area_span(areas), status, filled, len(own), mistake))
    result.outside = [finding.first for finding in findings or () if not in_blocks.intersection(finding.cells)]
    return result


def has_empty_cells(lesson, recalculated: reader.Recalculated) -> bool:
    """Whether the file is an exercise with a cell of a block still empty."""
    if not is_exercise(recalculated.sheetnames, lesson.name):
        return False
    areas = [lesson.area_of(recalculated.names, key) for block in BLOCKS[lesson.name] for key in block.keys]
    return not all(_filled(recalculated, area.sheet, *cell) for area in areas for cell in area.cells())


def _filled(recalculated: reader.Recalculated, sheet: str, row: int, col: int) -> bool:
    return (row, col) in recalculated.formulas_by_sheet.get(sheet, ()) or \
        recalculated.value(sheet, row, col) not in (None, "")


def _given(recalculated: reader.Recalculated) -> dict[str, int]:
    """The rows given in each block, as the exercise sheet's table says (by the block's label)."""
    cells = recalculated.cells.get(SHEET, {})
    given, row = {}, TABLE_TOP
    while isinstance(cells.get((row, 1)), str):
        count = cells.get((row, 3))
        given[cells[row, 1]] = int(count) if isinstance(count, (int, float)) and count >= 0 else 0
        row += 1
    return given


def _area_span(areas: Sequence[reader.Area]) -> str:
    """The range that blocks side by side cover, as a student reads it: adam!I28:J627."""
    top, left = min(a.min_row for a in areas), min(a.min_col for a in areas)
    bottom, right = max(a.max_row for a in areas), max(a.max_col for a in areas)
    start, end = reader.address(areas[0].sheet, top, left), reader.address(areas[0].sheet, bottom, right)
    return start if start == end else f"{start}:{end.rpartition('!')[2]}"
