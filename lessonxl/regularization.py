"""Regularisation and training tricks (regularization.xlsx): torch arithmetic and sheet layout side by side.

Weight decay versus L2 regularisation (equal for SGD, different for Adam: hence AdamW), the smoothed
loss of a training run (EWMA with bias correction), discriminative learning rates, and one training
step of an affine-ReLU-affine net with its backward pass written out as spreadsheet math.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from . import optim
from .lesson import Cancelling, Lesson, SheetSpec
from .optim import (LINE_PARAMS, Rule, StepCells, decoupled, row_formulas, state_columns, state_header,
                    train_online, with_l2)

if TYPE_CHECKING:  # the file writer: needed to generate, not to verify
    from .sheets import Block, Cursor, Sheet

# l2_vs_wd_*: optim's online regression, a few epochs, with L2 in the loss and with weight decay.
WD_EPOCHS, START = 3, {"intercept_start": 1.0, "slope_start": 1.0}
VARIANTS = {"l2": "L2: loss + wd (a² + b²), so the gradient gains 2 wd p",
            "wd": "weight decay: the plain step, then p - lr (2 wd) p"}
WRAPPERS = {"l2": with_l2, "wd": decoupled}

# two_layer_net: a batch of examples through affine -> ReLU -> affine -> softmax.
N_EXAMPLES, N_FEATURES, N_HIDDEN, N_CLASSES = 6, 4, 3, 3
NET_PARAMS = ("weights_1", "bias_1", "weights_2", "bias_2")

# smoothed_loss: the per-batch loss of a short training run of that net.
N_LOSS_STEPS, TRAIN_LR, TRAIN_SIZE = 100, 0.1, 300

# discriminative_lr: the layer groups of a fastai cnn_learner (the sheet's rows fix their number).
GROUPS = ("body: early layers", "body: later layers", "head")

HIDDEN = [f"h{j + 1}" for j in range(N_HIDDEN)]
CLASSES = [f"class {j + 1}" for j in range(N_CLASSES)]


def one_hot(target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """One-hot rows of 1-based class numbers (a column), as IF(target = class, 1, 0) writes them."""
    classes = torch.arange(1, n_classes + 1, device=target.device, dtype=target.dtype)
    return (target == classes).to(target.dtype)


def forward(x, weights_1, bias_1, weights_2, bias_2, target) -> dict[str, torch.Tensor]:
    """The forward pass as the sheet writes it: matmul, + bias, ReLU, matmul, + bias, softmax, -ln p."""
    matmul_1 = x @ weights_1
    affine_1 = matmul_1 + bias_1
    relu_1 = torch.clamp_min(affine_1, 0)
    matmul_2 = relu_1 @ weights_2
    logits = matmul_2 + bias_2
    exp = torch.exp(logits)
    total = exp.sum(dim=1, keepdim=True)
    probs = exp / total
    hot = one_hot(target, logits.shape[1])
    loss = -torch.log((probs * hot).sum(dim=1, keepdim=True))
    return {"matmul_1": matmul_1, "affine_1": affine_1, "relu_1": relu_1, "matmul_2": matmul_2,
            "logits": logits, "exp_logits": exp, "sum_exp": total, "probs": probs, "one_hot": hot,
            "loss": loss, "mean_loss": loss.mean().reshape(1, 1)}


def backward(x, weights_2, fwd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Gradients of the mean cross-entropy, layer by layer, as the sheet writes them."""
    grad_logits = (fwd["probs"] - fwd["one_hot"]) / x.shape[0]
    grad_relu_1 = grad_logits @ weights_2.T
    grad_affine_1 = torch.where(fwd["affine_1"] > 0, grad_relu_1, torch.zeros_like(grad_relu_1))
    return {"grad_logits": grad_logits,
            "grad_weights_2": fwd["relu_1"].T @ grad_logits,
            "grad_bias_2": grad_logits.sum(dim=0, keepdim=True),
            "grad_relu_1": grad_relu_1,
            "grad_affine_1": grad_affine_1,
            "grad_weights_1": x.T @ grad_affine_1,
            "grad_bias_1": grad_affine_1.sum(dim=0, keepdim=True)}


def sgd_step(param, grad, lr, wd):
    """torch.optim.SGD with weight_decay: p - lr * (grad + wd * p)."""
    return param - lr * (grad + wd * param)


def train_step(x, target, params: dict, lr, wd) -> tuple[dict, dict, dict]:
    """Forward, backward and one SGD step: (forward values, gradients, updated parameters)."""
    fwd = forward(x, *(params[name] for name in NET_PARAMS), target)
    grads = backward(x, params["weights_2"], fwd)
    new = {name: sgd_step(params[name], grads["grad_" + name], lr, wd) for name in NET_PARAMS}
    return fwd, grads, new


def init_params(gen: torch.Generator) -> dict[str, torch.Tensor]:
    """nn.Linear's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), rounded to 2 places."""
    shapes = {"weights_1": (N_FEATURES, N_HIDDEN), "bias_1": (1, N_HIDDEN),
              "weights_2": (N_HIDDEN, N_CLASSES), "bias_2": (1, N_CLASSES)}
    fan_in = {"weights_1": N_FEATURES, "bias_1": N_FEATURES, "weights_2": N_HIDDEN, "bias_2": N_HIDDEN}
    return {name: torch.round((2 * torch.rand(shape, generator=gen, dtype=torch.float64) - 1)
                              / fan_in[name] ** 0.5, decimals=2)
            for name, shape in shapes.items()}


def blobs(gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n examples of N_CLASSES Gaussian blobs in N_FEATURES dimensions, rounded to 2 places."""
    centres = 1.5 * torch.randn(N_CLASSES, N_FEATURES, generator=gen, dtype=torch.float64)
    target = torch.randint(N_CLASSES, (n,), generator=gen)
    x = centres[target] + torch.randn(n, N_FEATURES, generator=gen, dtype=torch.float64)
    return torch.round(x, decimals=2), (target + 1).double().reshape(-1, 1)


def training_losses(gen: torch.Generator, steps: int = N_LOSS_STEPS) -> torch.Tensor:
    """The per-batch loss of a seeded run: the two-layer net, batches of N_EXAMPLES, plain SGD."""
    x, target = blobs(gen, TRAIN_SIZE)
    params = init_params(gen)
    losses = []
    for _ in range(steps):
        batch = torch.randperm(TRAIN_SIZE, generator=gen)[:N_EXAMPLES]
        fwd, _, params = train_step(x[batch], target[batch], params, TRAIN_LR, 0.0)
        losses.append(fwd["mean_loss"].item())
    return torch.tensor(losses, dtype=torch.float64).reshape(-1, 1)


def ewma(series: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """avg_t = beta avg_(t-1) + (1 - beta) x_t from avg_0 = 0; 1 - beta^t; and avg_t / (1 - beta^t)."""
    avg, rows = torch.zeros_like(beta), []
    for t in range(series.shape[0]):
        avg = beta * avg + (1 - beta) * series[t:t + 1]
        rows.append(avg)
    averages = torch.cat(rows)
    steps = torch.arange(1, series.shape[0] + 1, device=series.device, dtype=series.dtype).reshape(-1, 1)
    correction = 1 - beta ** steps
    return averages, correction, averages / correction


def group_lrs(n_groups: int, lr, lo, hi, frozen_groups) -> dict[str, torch.Tensor]:
    """fastai's learning rate per layer group for a number, slice(hi) and slice(lo, hi), and frozen."""
    index = torch.arange(n_groups, device=hi.device, dtype=hi.dtype).reshape(-1, 1)
    ratio = (hi / lo) ** (1 / (n_groups - 1))
    spread = lo * ratio ** index
    last = index == n_groups - 1
    return {"n_groups": torch.full_like(hi, n_groups),
            "ratio": ratio,
            "lr_number": lr.expand(n_groups, 1),
            "lr_slice_hi": torch.where(last, hi, hi / 3),
            "lr_slice_lo_hi": spread,
            "lr_frozen": torch.where(index + 1 <= frozen_groups, torch.zeros_like(spread), spread)}


def regression_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The online regression problem (graddesc's too): seeded x and y = intercept + slope x, as columns."""
    x = optim.seeded_x(seed)
    return x, optim.TRUE_INTERCEPT + optim.TRUE_SLOPE * x


# --- l2_vs_wd_sgd, l2_vs_wd_adam -----------------------------------------------------------------

def trajectory_gaps(out: dict[str, torch.Tensor]) -> dict[str, Cancelling]:
    """|L2 - weight decay| per step and parameter, and its maximum: gaps between two trajectories that
    may agree to rounding, so each is exact only relative to the parameters themselves."""
    gaps = {f"{param}_diff": Cancelling(torch.abs(out[f"l2_{param}"] - out[f"wd_{param}"]),
                                        torch.abs(out[f"l2_{param}"]) + torch.abs(out[f"wd_{param}"]))
            for param in LINE_PARAMS}
    gaps["max_diff"] = Cancelling(
        torch.maximum(*(gap.value.max() for gap in gaps.values())).reshape(1, 1),
        torch.maximum(*(gap.scale.max() for gap in gaps.values())).reshape(1, 1))
    return gaps


def variant_headers(rule: type[Rule]) -> dict[str, str]:
    """Column key -> header of one trajectory's table, in order."""
    states = {column: state_header(rule, column) for column in state_columns(rule)}
    return {"error": "error a x + b - y", "de_db": "de/db", "de_da": "de/da", **states,
            "intercept": "intercept b", "slope": "slope a"}


class L2VsWd(SheetSpec):
    """optim's online regression trained twice for WD_EPOCHS epochs with `rule`: with L2 in the loss
    (`with_l2`) and with decoupled weight decay (`decoupled`), side by side, and how far apart they end.
    Its scalars stand at the top left; below, the data, the step table (step, x, y) and each variant's
    columns: error, gradients, the rule's state (with L2, first the gradient it steps along), b and a."""

    #: Labels of the scalars; a hyperparameter of the rule is its own label.
    labels = {"wd": "wd (L2: loss + wd (a² + b²))",
              "intercept_start": "intercept b at the start", "slope_start": "slope a at the start"}

    def __init__(self, name: str, rule: type[Rule], defaults: dict[str, float], title: str, teaches: str):
        self.name, self.rule, self.defaults, self.title, self.teaches = name, rule, defaults, title, teaches
        self.subtitle = ("Online regression y = a x + b on the data, batch size one, "
                         f"{WD_EPOCHS} epochs. L2 adds wd (a² + b²) to each sample's loss; weight decay "
                         "shrinks the weights by lr (2 wd) p after each step.")
        self.inputs = ("data_x", "data_y", *rule.hyper, "wd", *START)

    def compute(self, values) -> dict[str, torch.Tensor]:
        """Both trajectories over WD_EPOCHS passes of (x, y), every column as the sheet shows it."""
        x, y = values["data_x"], values["data_y"]
        start = torch.cat([values[f"{param}_start"].reshape(1) for param in LINE_PARAMS])
        hyper = {name: values[name].reshape(()) for name in (*self.rule.hyper, "wd")}
        xs, ys = x.ravel().repeat(WD_EPOCHS), y.ravel().repeat(WD_EPOCHS)
        out = {"step": torch.arange(1, len(xs) + 1, dtype=x.dtype, device=x.device),
               "step_x": xs, "step_y": ys, "decay": 2 * hyper["wd"]}
        for variant, wrap in WRAPPERS.items():
            run = train_online(wrap(self.rule), xs, ys, start, **hyper)
            out.update({f"{variant}_{name}": value for name, value in run.columns().items()})
        out = {name: value.reshape(-1, 1) if value.ndim == 1 else value.reshape(1, 1) for name, value in out.items()}
        return {**out, **trajectory_gaps(out)}

    def layout(self, sheet: Sheet) -> None:
        scalars = {}
        for row, key in enumerate(("lr", "wd", *self.rule.hyper[1:], *START), start=3):
            scalars[key] = sheet.labelled(key, row, 1, self.labels.get(key, key), widen=True)
        scalars["decay"] = sheet.labelled("decay", row + 1, 1, "torch weight_decay = 2 wd", widen=True,
                                          formula=f"=2*{scalars['wd'].ref}")
        # The table: a blank row below the scalars, then two for its captions and its headers.
        table = sheet.across(scalars["decay"].bottom + 5, 0)
        data_x = table.block("data_x", headers=["x"], caption="data")
        data_y = table.block("data_y", headers=["y"])
        step = sheet.area("step", table.top, table.skip(1))
        table.block("step", headers=["step t"], num_format="0", formula=lambda r, c: (
            "=1" if r == 0 else f"={step.cell(r - 1)}+1"))
        x, y = (table.block(f"step_{key}", headers=[key], num_format="General",
                            formula=lambda r, c, d=data: f"={d.cell(r % d.rows)}")
                for key, data in (("x", data_x), ("y", data_y)))
        tables = {variant: self._variant_table(sheet, table, variant, caption, step, x, y, scalars)
                  for variant, caption in VARIANTS.items()}
        left = table.skip(1)
        diffs = {param: table.block(f"{param}_diff", headers=[f"|{param} L2 - wd|"], num_format="0.00E+00",
                                    formula=lambda r, c, p=param: (
                                        f"=ABS({tables['l2'][p].cell(r)}-{tables['wd'][p].cell(r)})"))
                 for param in LINE_PARAMS}
        sheet.text(table.top - 2, left, "how far apart the two trajectories are", "label")
        sheet.labelled("max_diff", 3, 4, "max difference", widen=True, result=True, num_format="0.00E+00",
                       formula=f"=MAX({diffs['intercept'].ref},{diffs['slope'].ref})")
        sheet.line_chart("intercept b after each step", [(VARIANTS[v].split(":")[0], tables[v]["intercept"])
                                                           for v in VARIANTS], 3, left + 3, y_title="b")

    def _variant_table(self, sheet: Sheet, table: Cursor, variant: str, caption: str, step: Block, x: Block,
                       y: Block, scalars: dict[str, Block]) -> dict[str, Block]:
        """One trajectory's columns, after a blank column: the rule wrapped in L2 or decoupled weight decay."""
        rule = WRAPPERS[variant](self.rule)
        headers = variant_headers(rule)
        top, left = table.top, table.skip(1)
        own = {key: sheet.area(f"{variant}_{key}", top, left + i) for i, key in enumerate(headers)}
        rows = [StepCells(r, {**own, "step": step}, scalars) for r in range(step.rows)]
        formula = row_formulas(rule)
        formulas = {
            "error": lambda r, c: f"={rows[r].before('slope')}*{x.cell(r)}+{rows[r].before('intercept')}-{y.cell(r)}",
            "de_db": lambda r, c: f"=2*{own['error'].cell(r)}",
            "de_da": lambda r, c: f"={x.cell(r)}*{own['de_db'].cell(r)}",
            **{key: lambda r, c, k=key: formula(k, rows[r])
               for key in (*state_columns(rule), *LINE_PARAMS)},
        }
        sheet.text(top - 2, left, caption, "label")
        return {key: table.block(f"{variant}_{key}", headers=[text], formula=formulas[key], result=key in LINE_PARAMS)
                for key, text in headers.items()}


# --- smoothed_loss ---------------------------------------------------------------------------------

class SmoothedLoss(SheetSpec):
    """The per-batch loss of a training run, its EWMA from 0 and the bias-corrected EWMA, with a chart."""

    name = "smoothed_loss"
    title = "Smoothed loss: an exponentially weighted moving average, bias-corrected"
    subtitle = ("avg_t = beta avg_(t-1) + (1 - beta) loss_t from avg_0 = 0; "
                "dividing by 1 - beta^t removes the pull towards 0 at the start.")
    teaches = "a noisy training loss, its EWMA and the bias-corrected EWMA (/(1 - beta^t))"
    inputs = ("raw_loss", "beta")

    def compute(self, values) -> dict[str, torch.Tensor]:
        averages, correction, smoothed = ewma(values["raw_loss"], values["beta"])
        return {"ewma": averages, "correction": correction, "smoothed": smoothed}

    def layout(self, sheet: Sheet) -> None:
        beta = sheet.labelled("beta", 3, 1, "beta").ref
        top = 7
        steps = range(1, sheet.value("raw_loss").shape[0] + 1)
        sheet.text(top - 1, 0, "step", "header")
        table = sheet.across(top, 1)
        loss = table.block("raw_loss", headers=["loss"], row_labels=[str(t) for t in steps],
                           caption="per-batch loss of a training run")
        avg = sheet.area("ewma", top, table.left)
        table.block("ewma", headers=["EWMA"], formula=lambda r, c: (
            f"=(1-{beta})*{loss.cell(r)}" if r == 0
            else f"={beta}*{avg.cell(r - 1)}+(1-{beta})*{loss.cell(r)}"))
        correction = table.block("correction", headers=["1 - beta^t"], formula=lambda r, c: f"=1-{beta}^{r + 1}")
        smoothed = table.block("smoothed", headers=["EWMA / (1 - beta^t)"], result=True,
                               formula=lambda r, c: f"={avg.cell(r)}/{correction.cell(r)}")
        sheet.line_chart("Loss per batch, its EWMA, and the bias-corrected EWMA",
                         [("loss", loss), ("EWMA", avg), ("bias-corrected", smoothed)], 3, table.left + 1,
                         y_title="loss")


# --- discriminative_lr -----------------------------------------------------------------------------

class DiscriminativeLr(SheetSpec):
    """The learning rate of each layer group (one row each) for fit(lr), fit(slice(hi)),
    fit(slice(lo, hi)) and after freeze_to, from the scalars lr, lo, hi and the frozen count."""

    name = "discriminative_lr"
    title = "Discriminative learning rates: one per layer group"
    subtitle = ("fastai's fit(lr) for a number, slice(hi) and slice(lo, hi); frozen groups "
                "(learn.freeze_to) get no updates, i.e. a learning rate of 0.")
    teaches = "learning rate per layer group for lr, slice(hi), slice(lo, hi), frozen groups"
    inputs = ("groups", "lr", "lo", "hi", "frozen_groups")
    text_inputs = frozenset({"groups"})
    labels = {"lr": "lr (a number)", "lo": "lo (slice start)", "hi": "hi (slice stop)",
              "frozen_groups": "frozen groups (freeze_to)"}

    def compute(self, values) -> dict[str, torch.Tensor]:
        lr, lo, hi, frozen = (values[name] for name in self.labels)
        return group_lrs(len(values["groups"]), lr, lo, hi, frozen)

    def layout(self, sheet: Sheet) -> None:
        sci = "0.00E+00"
        for row, (name, label) in enumerate(self.labels.items(), start=3):
            sheet.labelled(name, row, 1, label, widen=True, num_format="0" if name == "frozen_groups" else sci)
        lr, lo, hi, frozen = (sheet.blocks[name].ref for name in self.labels)
        # The table: a blank row below the scalars, then two for its captions and its headers.
        table = sheet.across(row + 5, 0)
        groups = table.block("groups", headers=["layer group"])
        n = sheet.labelled("n_groups", 3, 4, "groups n (the table's rows)", widen=True,
                           formula=f"=ROWS({groups.ref})", num_format="0").ref
        ratio = sheet.labelled("ratio", 4, 4, "ratio (hi/lo)^(1/(n-1))", widen=True,
                               formula=f"=({hi}/{lo})^(1/({n}-1))").ref
        table.block("lr_number", headers=["fit(lr)"], num_format=sci, formula=lambda r, c: f"={lr}")
        table.block("lr_slice_hi", headers=["fit(slice(hi)): hi/3, last hi"], num_format=sci,
                    formula=lambda r, c: f"={hi}" if r == groups.rows - 1 else f"={hi}/3")
        spread = table.block("lr_slice_lo_hi", headers=["fit(slice(lo, hi)): lo ratio^i"],
                             num_format=sci, result=True, formula=lambda r, c: f"={lo}*{ratio}^{r}")
        table.block("lr_frozen", headers=["slice(lo, hi) after freeze_to"], num_format=sci,
                    formula=lambda r, c: f"=IF({r + 1}<={frozen},0,{spread.cell(r)})")


# --- two_layer_net ---------------------------------------------------------------------------------

def lowest(blocks) -> int:
    """The last row any of `blocks` takes."""
    return max(block.bottom for block in blocks)


def band_top(above: int, blank_rows: int = 0) -> int:
    """The top row of a band of blocks below the row `above`, after `blank_rows` empty rows and three
    for its head: a section title, the blocks' captions and their headers."""
    return above + blank_rows + 4


class TwoLayerNet(SheetSpec):
    """A batch through affine -> ReLU -> affine -> softmax -> cross-entropy, its backward pass layer by
    layer, one SGD step with weight decay, and the forward pass again with the new parameters. Each
    part is a band of blocks, left to right."""

    name = "two_layer_net"
    title = ("A two-layer net: affine, ReLU, affine; softmax and cross-entropy; "
             "backward pass and one SGD step with weight decay")
    subtitle = ("Each row is an example. Forward by MMULT, backward written out layer by layer: "
                "torch autograd and torch.optim.SGD(weight_decay=wd) give the same numbers.")
    teaches = "affine-ReLU-affine: forward by MMULT, backward as spreadsheet math, one SGD step with wd"
    inputs = ("features", "target", *NET_PARAMS, "lr", "wd")
    params = frozenset(NET_PARAMS)

    def compute(self, values) -> dict[str, torch.Tensor]:
        x, target = values["features"], values["target"]
        params = {name: values[name] for name in NET_PARAMS}
        fwd, grads, new = train_step(x, target, params, values["lr"], values["wd"])
        after = forward(x, *(new[name] for name in NET_PARAMS), target)
        return {**fwd, **grads, **{"new_" + k: v for k, v in {**new, **after}.items()}}

    def layout(self, sheet: Sheet) -> None:
        lr = sheet.labelled("lr", 3, 1, "lr").ref
        wd = sheet.labelled("wd", 4, 1, "wd").ref
        params = self._params(sheet, 8, "parameters (nn.Linear weight transposed: in x out)")
        batch = sheet.across(band_top(lowest(params.values()), blank_rows=1), 0)
        examples = [f"example {i + 1}" for i in range(N_EXAMPLES)]
        x = batch.block("features", gap=1, row_labels=examples, caption="input batch x",
                        headers=[f"x{j + 1}" for j in range(N_FEATURES)])
        target = batch.block("target", gap=1, headers=["class"])
        fwd = self._forward(sheet, batch, "", x, target, params)
        top = band_top(fwd["mean_loss"].bottom)
        sheet.text(top - 3, 0, "backward: gradients of the mean loss", "section")
        grads = self._backward(sheet, top, x, params, fwd)

        def update(name: str):
            p, g = params[name], grads[name]
            return lambda r, c: f"={p.cell(r, c)}-{lr}*({g.cell(r, c)}+{wd}*{p.cell(r, c)})"

        new = self._params(sheet, band_top(lowest(grads.values())), "after one step: p - lr (grad + wd p)", update)
        top = band_top(lowest(new.values()), blank_rows=1)
        sheet.text(top - 3, 0, "forward again with the new parameters", "section")
        self._forward(sheet, sheet.across(top, target.right + 1), "new_", x, target, new)

    @staticmethod
    def _params(sheet: Sheet, top: int, caption: str, formula=None) -> dict[str, Block]:
        """The four parameter blocks side by side: inputs, or (with `formula(name)`) new_ computed ones."""
        place, blocks = sheet.across(top, 0), {}
        prefix = "" if formula is None else "new_"
        for name in NET_PARAMS:
            blocks[name] = place.block(prefix + name, gap=1, headers=HIDDEN if name.endswith("1") else CLASSES,
                                       caption=name, formula=None if formula is None else formula(name),
                                       result=formula is not None)
        sheet.text(top - 3, 0, caption, "section")
        return blocks

    @staticmethod
    def _forward(sheet: Sheet, place: Cursor, prefix: str, x: Block, target: Block,
                 params: dict[str, Block]) -> dict[str, Block]:
        """matmul, + bias, ReLU, matmul, + bias, softmax and -ln p of the target, left to right from
        `place`, and the mean loss below."""
        w1, b1, w2, b2 = (params[name] for name in NET_PARAMS)
        blocks = {}

        def add(name, caption, headers, **options) -> Block:
            blocks[name] = place.block(prefix + name, gap=1, caption=caption, headers=headers, **options)
            return blocks[name]

        mm1 = add("matmul_1", "x W1 (MMULT)", HIDDEN, formula=x.matmul(w1))
        aff1 = add("affine_1", "+ b1", HIDDEN,
                   formula=lambda r, c: f"={mm1.cell(r, c)}+{b1.cell(0, c, True)}")
        relu = add("relu_1", "ReLU: MAX(0, .)", HIDDEN, formula=lambda r, c: f"=MAX(0,{aff1.cell(r, c)})")
        mm2 = add("matmul_2", "relu W2 (MMULT)", CLASSES, formula=relu.matmul(w2))
        logits = add("logits", "+ b2 = logits", CLASSES,
                     formula=lambda r, c: f"={mm2.cell(r, c)}+{b2.cell(0, c, True)}")
        exp = add("exp_logits", "exp", CLASSES, formula=lambda r, c: f"=EXP({logits.cell(r, c)})")
        total = add("sum_exp", "", ["sum"], formula=lambda r, c: f"=SUM({exp.row(r)})")
        probs = add("probs", "softmax", CLASSES, formula=lambda r, c: f"={exp.cell(r, c)}/{total.cell(r)}")
        add("one_hot", "target one-hot", CLASSES,
            formula=lambda r, c: f"=IF({target.cell(r)}={c + 1},1,0)")
        loss = add("loss", "-ln p(target)", ["loss"],
                   formula=lambda r, c: f"=-LN(INDEX({probs.row(r)},1,{target.cell(r)}))")
        blocks["mean_loss"] = sheet.labelled(prefix + "mean_loss", loss.bottom + 2, loss.left, "mean", result=True,
                                             formula=f"=AVERAGE({loss.ref})")
        return blocks

    @staticmethod
    def _backward(sheet: Sheet, top: int, x: Block, params: dict[str, Block],
                  fwd: dict[str, Block]) -> dict[str, Block]:
        """Gradients from the loss back to each parameter: one block per quantity, left to right, keyed
        by the quantity (`logits`, ..., `weights_1`, ...)."""
        w2 = params["weights_2"]
        probs, hot, aff1, relu = (fwd[name] for name in ("probs", "one_hot", "affine_1", "relu_1"))
        n = f"ROWS({x.ref})"
        place = sheet.across(top, 0)
        g_logits = place.block("grad_logits", gap=1, caption="d loss / d logits = (p - one-hot) / n",
                               headers=CLASSES,
                               formula=lambda r, c: f"=({probs.cell(r, c)}-{hot.cell(r, c)})/{n}")
        g_relu = place.block("grad_relu_1", gap=1, caption="d / d relu = grad W2^T", headers=HIDDEN,
                             formula=g_logits.matmul(w2, transpose_other=True))
        g_aff = place.block("grad_affine_1", gap=1, caption="d / d affine_1: 0 where <= 0", headers=HIDDEN,
                            formula=lambda r, c: f"=IF({aff1.cell(r, c)}>0,{g_relu.cell(r, c)},0)")
        grads = {"logits": g_logits, "relu_1": g_relu, "affine_1": g_aff}
        for name, source, grad in (("weights_1", x, g_aff), ("bias_1", None, g_aff),
                                   ("weights_2", relu, g_logits), ("bias_2", None, g_logits)):
            how = ({"formula": lambda r, c, g=grad: f"=SUM({g.column(c)})"} if source is None
                   else {"formula": source.matmul(grad, transpose=True)})
            grads[name] = place.block("grad_" + name, gap=1, caption=f"d / d {name}",
                                      headers=HIDDEN if name.endswith("1") else CLASSES, **how)
        return grads


# --- the lesson ------------------------------------------------------------------------------------

WD_SHEETS = (
    L2VsWd("l2_vs_wd_sgd", optim.SGD, {"lr": 1e-4, "wd": 0.01},
           "L2 regularisation vs weight decay with plain SGD: the same thing",
           "SGD with L2 in the loss and with weight decay: the same trajectory"),
    L2VsWd("l2_vs_wd_adam", optim.Adam, {"lr": 0.5, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "wd": 0.01},
           "L2 regularisation (torch Adam weight_decay) vs decoupled weight decay (AdamW): not the same",
           "Adam with L2 in the loss (torch Adam) and with decoupled decay (AdamW): different"),
)
SMOOTHED, DISCRIMINATIVE, NET_SHEET = SmoothedLoss(), DiscriminativeLr(), TwoLayerNet()
NET = NET_SHEET.name


class Regularization(Lesson):
    """regularization.xlsx: L2 vs weight decay for SGD and Adam (one `L2VsWd` spec each), the smoothed
    loss, discriminative learning rates and one training step of a two-layer net."""

    name = "regularization"
    title = "Weight decay vs L2, AdamW, smoothed loss, discriminative learning rates, a two-layer net"
    notes_title = "Regularisation and training tricks"
    specs = (*WD_SHEETS, SMOOTHED, DISCRIMINATIVE, NET_SHEET)

    def notes(self, values) -> tuple[str, ...]:
        return NOTES

    def default_inputs(self, seed: int, **options) -> dict[str, np.ndarray]:
        gen = torch.Generator().manual_seed(seed)
        features, target = blobs(gen, N_EXAMPLES)
        params = init_params(gen)
        x, y = regression_data(seed)
        wd_sheets = {}
        for spec in WD_SHEETS:
            scalars = {**spec.defaults, **START}
            wd_sheets.update({spec.key(name): np.array([[value]]) for name, value in scalars.items()})
            wd_sheets.update({spec.key("data_x"): x, spec.key("data_y"): y})
        given = {
            SMOOTHED: {"raw_loss": np.round(training_losses(gen).numpy(), 4), "beta": np.array([[0.9]])},
            DISCRIMINATIVE: {"groups": np.array([[g] for g in GROUPS], dtype=object), "lr": np.array([[1e-3]]),
                             "lo": np.array([[1e-5]]), "hi": np.array([[1e-3]]),
                             "frozen_groups": np.array([[len(GROUPS) - 1]], dtype=float)},
            NET_SHEET: {"features": features.numpy(), "target": target.numpy(),
                        **{name: value.numpy() for name, value in params.items()},
                        "lr": np.array([[0.5]]), "wd": np.array([[0.01]])},
        }
        return {**wd_sheets, **{spec.key(name): value for spec, values in given.items()
                                for name, value in values.items()}}


NOTES = (
    "l2_vs_wd_sgd: online regression y = a x + b (the graddesc problem), trained twice. L2 regularisation "
    "adds wd (a² + b²) to every sample's loss, so each gradient gains 2 wd p. Weight decay takes the plain "
    "step and then shrinks every weight by lr (2 wd) p: the factor 2 is why torch's weight_decay equals "
    "2 wd here. For SGD the two are the same update, so the trajectories agree to rounding "
    "(max difference about 1e-15, the green cell at the top).",
    "l2_vs_wd_adam: the same with Adam. torch's Adam(weight_decay) adds the term to the gradient, where "
    "Adam's division by the root of the squared-gradient average scales it away for large gradients; "
    "AdamW (decoupled weight decay) shrinks the weights directly. The trajectories now differ by "
    "a clearly visible amount (max difference in the green cell, and the chart). Try wd = 0 on both "
    "sheets (l2_vs_wd_sgd_wd and l2_vs_wd_adam_wd: a sheet's names begin with the sheet's): the "
    "difference vanishes.",
    "smoothed_loss: the loss of every batch of a training run is noisy. fastai plots an exponentially "
    "weighted moving average: avg = beta avg + (1 - beta) loss. Starting from 0, the average is too "
    "small at first; dividing by 1 - beta^t corrects that (Adam does the same with its moments). "
    "Try beta = 0.98 (fastai's default; the name smoothed_loss_beta) and watch the uncorrected EWMA lag "
    "far behind.",
    "discriminative_lr: fit(lr) gives every layer group the same learning rate; fit(slice(hi)) gives "
    "the last group hi and the earlier ones hi/3; fit(slice(lo, hi)) spreads lo..hi multiplicatively "
    "(equal ratios) over the groups, so three groups give 1e-5, 1e-4, 1e-3. Frozen groups are not "
    "updated: a learning rate of 0. Change lo, hi or the frozen count (discriminative_lr_lo, "
    "discriminative_lr_hi, discriminative_lr_frozen_groups) and verify again. The number of "
    "groups is the number of rows of the table.",
    "two_layer_net: the affine-ReLU-affine sandwich. Forward: MMULT, + bias, MAX(0, .), MMULT, + bias, "
    "softmax, -ln p of the target. Backward: (p - one-hot) / n, then through each layer by matrix "
    "products (each cell a SUMPRODUCT of two rows or two columns), where the ReLU passes gradients "
    "only where its input was positive. One SGD step with "
    "weight decay p - lr (grad + wd p), exactly torch.optim.SGD(weight_decay=wd); the loss after the "
    "step is lower. Change lr, wd or a weight (two_layer_net_lr, two_layer_net_wd, "
    "two_layer_net_weights_1) and verify again.",
)
