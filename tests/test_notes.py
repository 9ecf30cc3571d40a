"""The notes are executable: every "what to try" on every notes sheet, done as the note says.

Each experiment types its edits into the generated workbook, saves it through LibreOffice (which
recalculates, as a user's Calc does), and then checks two things: `verify` passes on the saved file, and
the quantities the note talks about moved in the sheet, as the note says they do. A last test reads
every notes sheet and requires each of its suggestions to be one of these experiments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import openpyxl
import pytest

from lessonxl import reader
from lessonxl.report import format_report

from conftest import cell_of, saved_and_verified, set_cells

Grids = dict[str, np.ndarray]


@dataclass(frozen=True)
class Try:
    """One suggestion of a notes sheet: the words it is quoted by, the edits, and what must happen."""

    workbook: str
    quote: str                                   # words of the note this experiment does
    edits: dict[tuple[str, int, int], object]    # (defined name, row, col) -> content, or f(old value)
    moved: Callable[[Grids, Grids], bool]        # (before, after) -> whether the note's claim holds


def changed(key: str, row: int | None = None) -> Callable[[Grids, Grids], bool]:
    """The quantity `key` (or one row of it) is no longer what it was."""
    def check(before: Grids, after: Grids) -> bool:
        old, new = before[key], after[key]
        if row is not None:
            old, new = old[row], new[row]
        return not np.allclose(old, new, rtol=1e-9, atol=1e-12, equal_nan=True)
    return check


def entropy_positive_label_row(grids: Grids) -> int:
    return int(np.flatnonzero(grids["binary_xent!labels"].ravel() == 1)[0])


TRIES = [
    # entropy_example
    Try("entropy_example", "change a logit and watch every probability in its row move",
        {("softmax!logits", 0, 2): lambda v: v + 1},
        lambda b, a: bool(np.all(b["softmax!probs"][0] != a["softmax!probs"][0]))
        and not changed("softmax!probs", 1)(b, a)),
    Try("entropy_example", "Add 10 to all logits of a row: nothing changes",
        {("softmax!logits", 0, c): (lambda v: v + 10) for c in range(5)},
        lambda b, a: np.allclose(b["softmax!probs"], a["softmax!probs"], rtol=1e-12, atol=1e-15)
        and changed("softmax!exp_logits")(b, a)),
    Try("entropy_example", "Set p close to 0 for a label 1 and watch the loss explode",
        {("binary_xent!predicted", "label 1", 0): 1e-6},
        lambda b, a: a["binary_xent!loss"][entropy_positive_label_row(b), 0] > 13
        > 5 * b["binary_xent!loss"][entropy_positive_label_row(b), 0]),
    Try("entropy_example", "change a target (type another class name), a logit or a label",
        {("multiclass_xent!target", 0, 0): "plane", ("multiclass_xent!logits", 1, 1): lambda v: v - 2,
         ("binary_xent!labels", 0, 0): lambda v: 1 - v},
        lambda b, a: changed("multiclass_xent!loss_lookup", 0)(b, a) and changed("multiclass_xent!probs", 1)(b, a)
        and changed("binary_xent!loss", 0)(b, a)),
    # graddesc
    Try("graddesc", "change lr (or β1, β2, the start values, the data) on any sheet",
        {("adam!lr", 0, 0): 0.1, ("adam!beta1", 0, 0): 0.8, ("adam!beta2", 0, 0): 0.999,
         ("momentum!intercept_start", 0, 0): 5.0, ("data_x", 0, 0): lambda v: v + 1},
        lambda b, a: all(changed(key)(b, a) for key in ("adam!intercept", "momentum!intercept", "basic!slope"))),
    Try("graddesc", "Make basic_lr (lr of the basic sheet) 0.001 and watch it blow up",
        {("basic!lr", 0, 0): 0.001},
        lambda b, a: not np.all(np.isfinite(a["basic!intercept"])) or np.nanmax(np.abs(a["basic!intercept"])) > 1e20),
    # regularization
    Try("regularization", "Try wd = 0 on both sheets (l2_vs_wd_sgd_wd and l2_vs_wd_adam_wd: a sheet's names "
        "begin with the sheet's): the difference vanishes",
        {("l2_vs_wd_adam!wd", 0, 0): 0.0, ("l2_vs_wd_sgd!wd", 0, 0): 0.0},
        lambda b, a: b["l2_vs_wd_adam!max_diff"][0, 0] > 0.1 and a["l2_vs_wd_adam!max_diff"][0, 0] == 0
        and a["l2_vs_wd_sgd!max_diff"][0, 0] == 0),
    Try("regularization", "Try beta = 0.98 (fastai's default; the name smoothed_loss_beta) and watch the "
        "uncorrected EWMA lag far behind",
        {("smoothed_loss!beta", 0, 0): 0.98},
        lambda b, a: a["smoothed_loss!ewma"][9, 0] < 0.25 * a["smoothed_loss!smoothed"][9, 0]
        and changed("smoothed_loss!ewma")(b, a)),
    Try("regularization", "Change lo, hi or the frozen count (discriminative_lr_lo, discriminative_lr_hi, "
        "discriminative_lr_frozen_groups) and verify again",
        {("discriminative_lr!lo", 0, 0): lambda v: v * 10, ("discriminative_lr!hi", 0, 0): lambda v: v * 3,
         ("discriminative_lr!frozen_groups", 0, 0): 1.0},
        lambda b, a: changed("discriminative_lr!lr_slice_lo_hi")(b, a) and changed("discriminative_lr!lr_frozen")(b, a)),
    Try("regularization", "Change lr, wd or a weight (two_layer_net_lr, two_layer_net_wd, "
        "two_layer_net_weights_1) and verify again",
        {("two_layer_net!lr", 0, 0): lambda v: v * 2, ("two_layer_net!wd", 0, 0): 0.1,
         ("two_layer_net!weights_1", 0, 0): lambda v: v + 0.5},
        lambda b, a: changed("two_layer_net!new_mean_loss")(b, a) and changed("two_layer_net!mean_loss")(b, a)),
    # collab_filter
    Try("collab_filter", "change a factor, a rating (or blank one out), the learning rate or y_hi",
        {("dotprod!user_factors", 0, 0): lambda v: v + 0.5, ("dotprod!ratings", "first rating", 0): None,
         ("gd_steps!lr", 0, 0): lambda v: v / 2, ("bias_yrange!y_hi", 0, 0): 6.0},
        lambda b, a: all(changed(key)(b, a) for key in
                         ("dotprod!rmse", "dotprod!predictions", "gd_steps!rmse", "bias_yrange!predictions"))),
    Try("collab_filter", "Try: on bias_yrange, set one movie's bias to 3: it tops the bias ranking here",
        {("bias_yrange!movie_bias", 0, 7): 3.0},
        lambda b, a: a["interpret!bias_ranked"][0, 0] == 3.0 and b["interpret!bias_ranked"][0, 0] < 3.0
        and a["interpret!bias_ranked_id"][0, 0] == a["interpret!movie_id"][7, 0]),
    Try("collab_filter", "Or set the start vector to 1 in its first cell and 0 in the others: the product "
        "with the last square changes, the components do not",
        {("interpret!start", r, 0): float(r == 0) for r in range(5)},
        lambda b, a: changed("interpret!pc1_product")(b, a) and not changed("interpret!pc1_square_12")(b, a)
        and np.allclose(a["interpret!pc_loadings"], b["interpret!pc_loadings"], rtol=1e-9, atol=1e-12)),
    Try("collab_filter", "Try wd = 0.1 (gd_steps_wd) against 0: every step also pulls each weight towards 0",
        {("gd_steps!wd", 0, 0): 0.1},
        lambda b, a: b["gd_steps!wd"][0, 0] == 0 and changed("gd_steps!user_factors_1")(b, a)
        and a["gd_steps!rmse"][-1, 0] > b["gd_steps!rmse"][-1, 0]
        and a["gd_steps!valid_rmse"][-1, 0] > b["gd_steps!valid_rmse"][-1, 0]),
    Try("collab_filter", "Raise gd_steps_lr (lr on gd_steps) until the RMSE blows up",
        {("gd_steps!lr", 0, 0): lambda v: v * 30},
        lambda b, a: not np.all(np.isfinite(a["gd_steps!rmse"])) or a["gd_steps!rmse"][-1, 0] > 10 * b["gd_steps!rmse"][0, 0]),
    # mnist_sgd
    Try("mnist_sgd", "Change digits_shown_image (1 to 500) to draw another training image and its label",
        {("digits!shown_image", 0, 0): 2.0},
        lambda b, a: changed("digits!shown_pixels")(b, a)
        and np.array_equal(a["digits!shown_pixels"].ravel(), a["train_x"][1])),
    Try("mnist_sgd", "Try the notebook's logistic_lr = 0.02: after 20 steps the held-out accuracy has barely "
        "left chance",
        {("logistic!lr", 0, 0): 0.02},
        lambda b, a: b["logistic!valid_accuracy"][-1, 0] >= 0.8 and a["logistic!valid_accuracy"][-1, 0] < 0.3),
    Try("mnist_sgd", "Raise net_adam_lr (Adam's learning rate on net_adam) to 10 and it diverges",
        {("net_adam!lr", 0, 0): 10.0},
        lambda b, a: np.isfinite(b["net_adam!loss"]).all() and np.isnan(a["net_adam!loss"][1:]).all()
        and np.isfinite(a["net_sgd!loss"]).all()),
]


def grids(path, data_only: bool) -> Grids:
    """Every defined name of the workbook as a grid of what its cells hold: numbers as floats (blanks
and error values as nan), labels as they are."""
    book = reader.Snapshot(path, data_only=data_only)
    out = {}
    for key, area in book.names.items():
        grid = np.empty(area.shape, dtype=object)
        for row, col in area.cells():
            value = book.value(area.sheet, row, col)
            grid[row - area.min_row, col - area.min_col] = np.nan if isinstance(value, str) \
                and value.startswith("#") else value
        numeric = all(isinstance(v, (int, float)) or v is None for v in grid.ravel())
        out[key] = np.where(grid == None, np.nan, grid).astype(float) if numeric else grid  # noqa: E711
    return out


def resolve(edit_key, before: Grids) -> tuple[str, int, int]:
    """(name, row, col) of an edit, with the symbolic rows of a few experiments found in the file."""
    key, row, col = edit_key
    if row == "label 1":
        row = entropy_positive_label_row(before)
    elif row == "first rating":
        row, col = (int(i) for i in np.argwhere(~np.isnan(before[key]))[0])
    return key, row, col


@pytest.fixture(scope="module")
def experiments(generated, tmp_path_factory):
    """Every experiment typed in, saved through LibreOffice, then verified, all in one run each."""
    folder = tmp_path_factory.mktemp("notes")
    typed, before = {}, {}
    for i, experiment in enumerate(TRIES):
        source = generated[experiment.workbook]
        if experiment.workbook not in before:
            before[experiment.workbook] = grids(source, data_only=True)
        inputs = grids(source, data_only=False)
        edits = []
        for edit_key, content in experiment.edits.items():
            key, row, col = resolve(edit_key, inputs)
            value = content(inputs[key][row, col]) if callable(content) else content
            edits.append((*cell_of(source, key, row, col), value))
        typed[i] = folder / f"try_{i}_{experiment.workbook}.xlsx"
        set_cells(source, typed[i], edits)
    files, reports = saved_and_verified(typed, folder)
    return before, files, reports


@pytest.mark.parametrize("index", range(len(TRIES)), ids=[f"{t.workbook}: {t.quote}" for t in TRIES])
def test_every_suggestion_of_the_notes_verifies_and_does_what_it_says(experiments, index):
    before, files, reports = experiments
    experiment = TRIES[index]
    report = reports[index]
    assert report.error is None, report.error
    assert report.passed, format_report(report)
    after = grids(files[index], data_only=True)
    assert experiment.moved(before[experiment.workbook], after), experiment.quote


SUGGESTION = re.compile(r"(?:^|(?<=[.:;] ))((?:Try|Change|Set|Add|Raise|Make|Or set|make|change)\b[^.]*)")


def test_every_suggestion_on_every_notes_sheet_is_an_experiment(generated):
    """A notes sheet that suggests something no experiment above does fails here."""
    for name, path in generated.items():
        notes = openpyxl.load_workbook(path, read_only=True)["notes"]
        text = " ".join(str(row[0]) for row in notes.iter_rows(values_only=True) if row and row[0])
        quotes = [t.quote for t in TRIES if t.workbook == name]
        for quote in quotes:
            assert quote in text, f"{name}: the notes no longer say {quote!r}"
        for suggestion in SUGGESTION.findall(text):
            assert any(quote in suggestion or suggestion in quote or suggestion.startswith(quote[:25])
                       for quote in quotes), f"{name}: no experiment does what the notes suggest: {suggestion!r}"
