"""Online gradient descent on y = a·x + b (graddesc.xlsx): torch arithmetic and sheet layout side by side.

Batch size one: every row of an optimizer sheet reads one (x, y) sample, predicts, takes the analytic
derivatives of the squared error and updates the intercept b and the slope a once. Epochs are unrolled
in formulas (no macros), each continuing where the last ended.

The update rules, their formulas, their torch.optim twins and the learning-rate schedules are in
`optim`. Each sheet is a `SheetSpec`: `Data`, one `OptimizerSheet` per optimizer (a rule plus default
hyperparameters plus a `Schedule`, all sharing one shape) and the `Summary`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import numpy as np
import torch

from .lesson import Cancelling, Lesson, SheetSpec
from .optim import (GRADS, LINE_PARAMS, SYMBOLS, TRUE_INTERCEPT, TRUE_SLOPE, Adam, CosineEpochs, LessonAdam,
                    LessonRMSprop, Momentum, OneCycle, RMSprop, Rule, Schedule, SGD, StepCells, Trajectory,
                    row_formulas, seeded_x, state_columns, state_header, train_online)

if TYPE_CHECKING:  # the file writer: needed to generate, not to verify
    from .sheets import Block, Sheet

EPOCHS = 20


# --- the data sheet --------------------------------------------------------------------------------

class Data(SheetSpec):
    """The samples x (global `data_x`), the true intercept and slope, and y = b + a·x by formula
    (global `data_y`): what every optimizer sheet reads."""

    name = "data"
    title = "The data: y = b + a·x, no noise"
    subtitle = "Fixed, seeded whole numbers x (not RANDBETWEEN): edit them, or the true b and a."
    teaches = "the x values, the true intercept and slope, y by formula"
    inputs = ("data_x", "intercept_truth", "slope_truth")
    global_names = frozenset({"data_x", "data_y"})

    def compute(self, values) -> dict[str, torch.Tensor]:
        truth_b, truth_a = values["intercept_truth"].reshape(()), values["slope_truth"].reshape(())
        return {"data_y": truth_b + truth_a * values["data_x"]}

    def layout(self, sheet: Sheet) -> None:
        truths = sheet.down(3, 1)
        b = truths.block("intercept_truth", row_labels=["true intercept b"])
        a = truths.block("slope_truth", row_labels=["true slope a"])
        samples = [f"sample {i + 1}" for i in range(sheet.value("data_x").shape[0])]
        table = sheet.across(8, 1)
        x = table.block("data_x", global_name=True, headers=["x"], row_labels=samples)
        table.block("data_y", global_name=True, headers=["y = b + a·x"], result=True,
                    formula=lambda r, c: f"={b.ref}+{a.ref}*{x.cell(r)}")


# --- the optimizer sheets --------------------------------------------------------------------------

#: Labels of the scalars every optimizer sheet has; a rule labels its hyperparameters (`Rule.labels`), a
#: schedule the names it adds (`Schedule.labels`, which may also relabel one).
SCALAR_LABELS = {"intercept_start": "intercept b before step 1", "slope_start": "slope a before step 1",
                 "h": "h: finite-difference step"}
# Number formats other than the computed default 0.0000: small learning rates, data, counters.
FORMATS = {**dict.fromkeys(("lr_t", "lr_epoch", "initial_lr", "min_lr", "x", "y"), "General"),
           "step": "0", "epoch": "0"}
HEADERS = {
    "step": "step t", "epoch": "epoch", "x": "x", "y": "y", "lr_t": "lr of the step",
    "beta1": "β1 of the step", "prediction": "prediction a·x + b", "error": "error = prediction − y",
    "de_db": "de/db = 2·error", "de_da": "de/da = x·de/db", "est_de_db": "de/db by finite difference",
    "est_de_da": "de/da by finite difference", "intercept": "new intercept b", "slope": "new slope a",
}
# Where an optimizer sheet's blocks start: the scalars down column B, the RMSE of each epoch beside
# them, the two charts to the right; the step table below them all.
SCALARS_TOP, RMSE_TOP, RMSE_LEFT, CHART_TOP, CHART_LEFTS = 3, 4, 4, 2, (7, 15)


@dataclass(frozen=True)
class OptimizerSheet(SheetSpec):
    """One optimizer sheet: `rule` with its default hyperparameters and `schedule`, trained online on
    the data for EPOCHS epochs. Its inputs and scalars stand at the top left, the RMSE of each epoch
    beside them, charts of b and a to the right, and below, one row per update: the sample, the
    prediction, the derivatives (and with `finite_differences`, their estimates), the rule's state and
    the new b and a."""

    name: str
    rule: type[Rule]
    default_hyper: dict[str, float]    # input hyperparameters -> default (a schedule may add more)
    title: str
    subtitle: str
    schedule: Schedule = field(default_factory=Schedule)
    finite_differences: bool = False
    params = frozenset(f"{param}_start" for param in LINE_PARAMS)

    @property
    def teaches(self) -> str:
        return self.title

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("intercept_start", "slope_start", *self.default_hyper, *self.schedule.inputs,
                *(("h",) if self.finite_differences else ()))

    def defaults(self) -> dict[str, float]:
        return {"intercept_start": 1.0, "slope_start": 1.0, **self.default_hyper, **self.schedule.inputs,
                **({"h": 0.01} if self.finite_differences else {})}

    @property
    def columns(self) -> tuple[str, ...]:
        """The step table's columns, left to right."""
        estimates = ("est_de_db", "est_de_da") if self.finite_differences else ()
        return ("step", "epoch", "x", "y", *self.schedule.columns.values(), "prediction", "error", *GRADS,
                *estimates, *state_columns(self.rule), *LINE_PARAMS)

    def compute(self, values, epochs: int = EPOCHS) -> dict[str, torch.Tensor]:
        data_x, data_y = values["data_x"], values["data_y"]
        given = {name: values[name].reshape(()) for name in self.inputs}
        n = data_x.shape[0]
        steps = n * epochs
        xs, ys = data_x.reshape(-1).repeat(epochs), data_y.reshape(-1).repeat(epochs)
        # A schedule takes cosines: computed on the CPU, so that every device agrees to the last bit.
        cpu = {name: value.cpu() for name, value in given.items()}
        scheduled = {name: value.to(xs.device) for name, value in self.schedule.values(cpu, steps, n).items()}
        hyper = {name: scheduled[self.schedule.columns[name]].reshape(-1) if name in self.schedule.columns
                 else given[name] for name in self.rule.hyper}
        start = torch.stack([given["intercept_start"], given["slope_start"]])
        run = train_online(self.rule, xs, ys, start, **hyper)
        step = torch.arange(steps, device=xs.device)
        columns = {"step": step + 1, "epoch": step // n + 1, "x": xs, "y": ys, "prediction": run.prediction,
                   **run.columns()}
        rmse = torch.sqrt((run.error.reshape(epochs, n) ** 2).sum(dim=1) / n)
        out = {**scheduled, **{name: value.to(xs.dtype).reshape(-1, 1) for name, value in columns.items()},
               "rmse": rmse.reshape(-1, 1)}
        if self.finite_differences:
            out.update(finite_differences(start, run, xs, ys, given["h"]))
        return out

    def layout(self, sheet: Sheet) -> None:
        x_data = sheet.block_on("data", "data_x")
        n = x_data.rows
        epochs = sheet.value("step").shape[0] // n
        # The step table: below the scalars and the RMSE column, a blank row, its caption and its headers between.
        top = max(SCALARS_TOP + len(self.inputs) + len(self.schedule.scalars), RMSE_TOP + epochs) + 3
        # Where each column will be, so that formulas can refer to columns not yet written.
        columns = {name: sheet.area(name, top, c) for c, name in enumerate(self.columns)}
        scalars = self._layout_scalars(sheet, columns)

        def rmse(r: int, c: int) -> str:
            """The root of the mean squared error over the n rows of epoch r + 1."""
            return f"=SQRT(SUMSQ({columns['error'].span(r * n, 0, r * n + n - 1, 0)})/COUNT({x_data.ref}))"

        beside = sheet.across(RMSE_TOP, RMSE_LEFT)
        beside.block("rmse", headers=["RMSE of the epoch"], row_labels=[f"epoch {e + 1}" for e in range(epochs)],
                     result=True, formula=rmse)
        for name in self.schedule.per_epoch:
            refs = {key: block.ref for key, block in scalars.items()}
            scalars[name] = beside.block(name, headers=["lr of the epoch"], num_format="General",
                                         formula=lambda r, _, name=name: self.schedule.epoch_formula(name, r, refs))
        sheet.text(top - 2, 0, "One row per update: each row reads one (x, y) sample, predicts with the b and a "
                   "left by the row above, and updates them.", widen=False)
        rows = [StepCells(r, columns, scalars, self.schedule.columns) for r in range(columns["step"].rows)]
        rule = row_formulas(self.rule)
        for name in self.columns:
            formula = self._column_formula(sheet, name, rule)
            columns[name] = sheet.block(
                name, top, columns[name].left, headers=[self._header(name)], result=name in LINE_PARAMS,
                num_format=FORMATS.get(name), formula=lambda r, c, f=formula: f(rows[r]))
        for (param, symbol), left in zip(SYMBOLS.items(), CHART_LEFTS):
            sheet.line_chart(f"{param} {symbol} after each step", [(f"{param} {symbol}", columns[param])],
                             CHART_TOP, left, y_title=symbol, size=(480, 300))

    def _layout_scalars(self, sheet: Sheet, columns: Mapping[str, Block]) -> dict[str, Block]:
        """The input cells, then the schedule's computed scalars, down column B."""
        labels = {**SCALAR_LABELS, **self.rule.labels, **self.schedule.labels}
        place = sheet.down(SCALARS_TOP, 1)
        scalars = {name: place.block(name, row_labels=[labels[name]]) for name in self.inputs}
        for name, template in self.schedule.scalars.items():
            refs = {key: block.ref for key, block in scalars.items()}
            formula = template.format(step_column=columns["step"].column(0), epoch_column=columns["epoch"].column(0),
                                      **refs)
            scalars[name] = place.block(name, row_labels=[labels[name]], formula=formula,
                                        num_format=FORMATS.get(name))
        return scalars

    def _header(self, name: str) -> str:
        return state_header(self.rule, name) if name in state_columns(self.rule) else HEADERS[name]

    def _column_formula(self, sheet: Sheet, name: str, rule):
        """The formula of one step-table column, as a function of the row's cells (`rule`: the
        rule's `row_formulas`)."""
        x_data, y_data = sheet.block_on("data", "data_x"), sheet.block_on("data", "data_y")
        n = x_data.rows

        def estimate(cells: StepCells, b: str, a: str) -> str:
            """(loss at the shifted parameters − loss) / h."""
            shifted_loss = f"({a}*{cells.cell('x')}+{b}-{cells.cell('y')})^2"
            return f"=({shifted_loss}-{cells.cell('error')}^2)/{cells.scalars['h'].ref}"

        def shifted(cells: StepCells, param: str) -> str:
            return f"({cells.before(param)}+{cells.scalars['h'].ref})"

        common = {
            "step": lambda cells: "=1" if cells.first else f"={cells.above('step')}+1",
            "epoch": lambda cells: f"=INT(({cells.step}-1)/COUNT({x_data.ref}))+1",
            "x": lambda cells: f"={x_data.cell(cells.row % n)}",
            "y": lambda cells: f"={y_data.cell(cells.row % n)}",
            "prediction": lambda cells: f"={cells.before('slope')}*{cells.cell('x')}+{cells.before('intercept')}",
            "error": lambda cells: f"={cells.cell('prediction')}-{cells.cell('y')}",
            "de_db": lambda cells: f"=2*{cells.cell('error')}",
            "de_da": lambda cells: f"={cells.cell('x')}*{cells.cell('de_db')}",
            "est_de_db": lambda cells: estimate(cells, shifted(cells, "intercept"), cells.before("slope")),
            "est_de_da": lambda cells: estimate(cells, cells.before("intercept"), shifted(cells, "slope")),
        }
        if name in common:
            return common[name]
        if name in self.schedule.columns.values():
            return lambda cells: self.schedule.step_formula(name, cells)
        return lambda cells: rule(name, cells)


def finite_differences(start, run: Trajectory, xs, ys, h) -> dict[str, Cancelling]:
    """(loss(b + h) − loss(b)) / h and (loss(a + h) − loss(a)) / h at the parameters each step starts
    from: differences of two losses, exact only relative to the losses (their scale)."""
    before = torch.cat([start.reshape(1, 2), run.params[:-1]])
    b, a = before[:, 0], before[:, 1]
    loss = run.error ** 2
    estimates = {}
    for name, shifted in (("est_de_db", (a * xs + (b + h) - ys) ** 2), ("est_de_da", ((a + h) * xs + b - ys) ** 2)):
        estimates[name] = Cancelling(((shifted - loss) / h).reshape(-1, 1),
                                     ((shifted + loss) / torch.abs(h)).reshape(-1, 1))
    return estimates


def train_torch_optim(spec: OptimizerSheet, data_x: torch.Tensor, data_y: torch.Tensor,
                      given: Mapping[str, float], epochs: int = EPOCHS) -> dict[str, torch.Tensor]:
    """The same online training with autograd and the real torch.optim class and scheduler, from the
    sheet's input values `given`.

    Returns per step (n·epochs x 1): the autograd gradients `de_db` and `de_da`, the learning rate
    `lr_t` (and Adam's `beta1`) the step used, and the parameters after it, `intercept` and `slope`.
    Only for rules that torch.optim has.
    """
    n = data_x.shape[0]
    xs, ys = data_x.reshape(-1).repeat(epochs), data_y.reshape(-1).repeat(epochs)
    b, a = (torch.tensor(given[name], dtype=xs.dtype, device=xs.device, requires_grad=True)
            for name in ("intercept_start", "slope_start"))
    # A hyperparameter that is no input (onecycle's β1) is set by the scheduler: any value will do.
    optimizer = spec.rule.torch_optimizer([b, a], **{name: given.get(name, 0.9) for name in spec.rule.hyper})
    scheduler, every_step = spec.schedule.torch_scheduler(optimizer, given, n * epochs, n)
    group = optimizer.param_groups[0]
    rows = []
    for t, (x, y) in enumerate(zip(xs, ys), start=1):
        optimizer.zero_grad()
        ((a * x + b - y) ** 2).backward()
        used = {"de_db": b.grad.item(), "de_da": a.grad.item(), "lr_t": group["lr"]}
        if "betas" in group:
            used["beta1"] = group["betas"][0]
        optimizer.step()
        rows.append({**used, "intercept": b.item(), "slope": a.item()})
        if scheduler is not None and (every_step or t % n == 0):
            scheduler.step()
    return {name: torch.tensor([[row[name]] for row in rows], dtype=xs.dtype) for name in rows[0]}


ADAM_HYPER = {"lr": 0.3, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8}
OPTIMIZERS = (
    OptimizerSheet("basic", SGD, {"lr": 1e-4},
                   "Plain SGD, batch size one: b ← b − lr·de/db, a ← a − lr·de/da",
                   "Finite differences (loss(p + h) − loss(p)) / h beside the analytic derivatives. "
                   "torch.optim.SGD.", finite_differences=True),
    OptimizerSheet("momentum", Momentum, {"lr": 1e-4, "momentum": 0.9},
                   "SGD with momentum: step along an average of the gradients",
                   "m = momentum·m + (1 − momentum)·g (m = g on step 1); p ← p − lr·m. "
                   "torch.optim.SGD(momentum=β, dampening=β)."),
    OptimizerSheet("rmsprop", RMSprop, {"lr": 0.1, "alpha": 0.9, "eps": 1e-8},
                   "RMSProp: divide each step by the root of an average of squared gradients",
                   "v = alpha·v + (1 − alpha)·g², from 0; p ← p − lr·g / (√v + eps). torch.optim.RMSprop."),
    OptimizerSheet("rmsprop_lesson", LessonRMSprop, {"lr": 0.1, "alpha": 0.9},
                   "The lesson's RMSProp (not torch's): divide by the previous average, no eps",
                   "p ← p − lr·g / √(v before this step), then v = alpha·v + (1 − alpha)·g²; "
                   "v before step 1 is the first g²."),
    OptimizerSheet("adam", Adam, dict(ADAM_HYPER), "Adam: momentum and RMSProp together",
                   "m, v: averages of g and g²; p ← p − lr·m̂ / (√v̂ + eps), m̂ = m / (1 − β1^t), "
                   "v̂ = v / (1 − β2^t). torch.optim.Adam."),
    OptimizerSheet("adam_lesson", LessonAdam, {k: v for k, v in ADAM_HYPER.items() if k != "eps"},
                   "The lesson's Adam (not torch's): no bias correction, no eps",
                   "p ← p − lr·m / √v with the same averages m and v as the adam sheet."),
    OptimizerSheet("adam_annealed", Adam, {**ADAM_HYPER, "lr": 1.0},
                   "Adam with learning-rate annealing: a cosine schedule over the epochs",
                   "lr of epoch e = lr·(1 + cos(π·(e − 1) / epochs)) / 2: "
                   "torch.optim.Adam + CosineAnnealingLR stepped after every epoch.",
                   schedule=CosineEpochs()),
    OptimizerSheet("onecycle", Adam, {"lr": 2.0, "beta2": 0.99, "eps": 1e-8},
                   "Adam with the one-cycle schedule: lr up then down, β1 down then up",
                   "Every step's lr and β1 as torch.optim.lr_scheduler.OneCycleLR computes them "
                   "(cosine phases), then torch.optim.Adam's update.", schedule=OneCycle()),
)


# --- the summary sheet -----------------------------------------------------------------------------

class Summary(SheetSpec):
    """Where each optimizer sheet ends: its last b, a and RMSE, and how far b and a are from the truth."""

    name = "summary"
    title = "Where each optimizer ends after the last epoch"
    subtitle = "Plain SGD crawls: its intercept has hardly moved. Adam gets there; annealed, it stays."
    teaches = "every optimizer's final intercept, slope and last-epoch RMSE"
    headers = {
        "final_intercept": "final intercept b", "final_slope": "final slope a",
        "last_rmse": "RMSE of the last epoch", "intercept_gap": "|b − true b|", "slope_gap": "|a − true a|",
    }

    def __init__(self, optimizers: tuple[OptimizerSheet, ...]):
        self.optimizers = optimizers

    def compute(self, values) -> dict[str, torch.Tensor]:
        def last(name: str) -> torch.Tensor:
            return torch.stack([values.of(spec.name)[name][-1, 0] for spec in self.optimizers]).reshape(-1, 1)

        data = values.of("data")
        b, a = last("intercept"), last("slope")
        return {"final_intercept": b, "final_slope": a, "last_rmse": last("rmse"),
                "intercept_gap": torch.abs(b - data["intercept_truth"].reshape(())),
                "slope_gap": torch.abs(a - data["slope_truth"].reshape(()))}

    def layout(self, sheet: Sheet) -> None:
        top, names = 4, [spec.name for spec in self.optimizers]
        sheet.text(top - 1, 0, "sheet", "header")

        def final(name: str):
            """The last cell of a column, on each optimizer sheet."""
            def formula(r: int, c: int) -> str:
                column = sheet.block_on(names[r], name)
                return f"={column.cell(column.rows - 1)}"
            return formula

        def gap(block: Block, truth: str):
            truth_cell = sheet.block_on("data", truth).cell(0, 0)
            return lambda r, c: f"=ABS({block.cell(r)}-{truth_cell})"

        place, headers = sheet.across(top, 1), self.headers
        b = place.block("final_intercept", headers=[headers["final_intercept"]], row_labels=names, result=True,
                        formula=final("intercept"))
        a = place.block("final_slope", headers=[headers["final_slope"]], result=True, formula=final("slope"))
        place.block("last_rmse", headers=[headers["last_rmse"]], formula=final("rmse"))
        place.block("intercept_gap", headers=[headers["intercept_gap"]], formula=gap(b, "intercept_truth"))
        place.block("slope_gap", headers=[headers["slope_gap"]], formula=gap(a, "slope_truth"))


# --- the lesson ------------------------------------------------------------------------------------

DATA = Data()


class GradDesc(Lesson):
    """graddesc.xlsx: the data, one sheet per optimizer (each an `OptimizerSheet`), and a summary."""

    name = "graddesc"
    title = "Online gradient descent on y = a·x + b: SGD, momentum, RMSProp, Adam, annealing, one-cycle"
    notes_title = "Gradient descent on a line, one sample at a time"
    specs = (DATA, *OPTIMIZERS, Summary(OPTIMIZERS))
    # Google Sheets refuses defined names that begin with true or false: renamed in 0.2.0.
    former_names = {"data!intercept_truth": "data!true_intercept", "data!slope_truth": "data!true_slope"}

    def notes(self, values) -> tuple[str, ...]:
        return NOTES

    def default_inputs(self, seed: int, **options) -> dict[str, np.ndarray]:
        optimizers = {spec.key(name): np.array(value) for spec in self.specs if isinstance(spec, OptimizerSheet)
                      for name, value in spec.defaults().items()}
        return {"data_x": seeded_x(seed), DATA.key("intercept_truth"): np.array(TRUE_INTERCEPT),
                DATA.key("slope_truth"): np.array(TRUE_SLOPE), **optimizers}


NOTES = (
    "The model is a line, prediction = a·x + b, with two parameters: the slope a and the intercept b "
    "(yellow). The data sheet makes y = 30 + 2·x exactly, so a perfect fit exists: a = 2, b = 30.",
    "Batch size one: every row of an optimizer sheet takes one sample (x, y), predicts with the b and a "
    "left by the row above, takes the derivatives of the loss e = (a·x + b − y)², "
    "de/db = 2·(a·x + b − y) and de/da = x·de/db, and updates b and a once. An epoch is one pass "
    "over the data, in order; the next epoch continues where it ended. No macros: every epoch is "
    "written out in formulas.",
    "basic: plain SGD, p ← p − lr·g. Beside the analytic derivatives, finite differences "
    "(loss(p + h) − loss(p)) / h with h = 0.01 show where they come from. With x up to 100, de/da is "
    "large, so lr must be tiny for a to stay stable; then b crawls.",
    "momentum: step along m = β·m + (1 − β)·g, an exponentially weighted moving average (EWMA) of the "
    "gradients. rmsprop: keep v, an EWMA of g², and divide each step by √v, so every parameter moves "
    "about lr per step whatever the size of its gradient. adam: both at once, with bias correction.",
    "adam_annealed: the same Adam with a learning rate that falls over the epochs (cosine). "
    "onecycle: the learning rate rises then falls while Adam's β1 falls then rises, as "
    "torch.optim.lr_scheduler.OneCycleLR does it. Big steps early get b near 30; small steps late let "
    "it settle there. The summary sheet compares where every optimizer ends.",
    "The sheets follow torch.optim exactly (SGD, SGD with momentum and dampening, RMSprop, Adam, "
    "CosineAnnealingLR, OneCycleLR). The lesson's own spreadsheet simplified two rules; those are "
    "kept as labelled extra sheets: rmsprop_lesson divides by the previous average and has no eps; "
    "adam_lesson has no bias correction and no eps.",
    "Try: change lr (or β1, β2, the start values, the data) on any sheet and watch the charts; "
    "each is a defined name that begins with its sheet's (adam_lr, adam_beta1, momentum_intercept_start; "
    "the data are data_x and data_y). Make basic_lr (lr of the basic sheet) 0.001 and watch it blow up. "
    "Then save and run "
    "`lessonxl verify graddesc.xlsx`: torch recomputes every number from your inputs and compares "
    "every formula cell.",
)
