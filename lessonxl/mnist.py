"""The lesson's MNIST notebook (lesson5-sgd-mnist) as a workbook (mnist_sgd.xlsx): torch arithmetic and
sheet layout side by side.

The notebook's `update()`: a minibatch through the model, cross-entropy plus wd·Σw² over every parameter,
the gradients, p ← p − lr·grad. Here on 8x8 handwritten digits (the UCI set scikit-learn bundles as
load_digits; a subset ships in lessonxl/data, see its README), pixels / 16 as the notebook scales them:
logistic regression 64 → 10, a two-layer net 64 → h → 10 with ReLU, and that net again with Adam. Every
step is a band of rows: the minibatch forward (each logit the MMULT of an image's row and a weight
column), softmax, −ln p, the gradients layer by layer (SUMPRODUCTs over the batch), the update (optim's
rules, the cells graddesc's use), and at intervals the held-out loss and accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Mapping

import numpy as np
import torch

from . import optim
from .lesson import Cancelling, Lesson, SheetSpec, one_cpu_thread
from .optim import Rule

if TYPE_CHECKING:  # the file writer: needed to generate, not to verify
    from .sheets import Block, Sheet

N_TRAIN, N_VALID, BATCH = 500, 100, 25
STEPS = N_TRAIN // BATCH                      # one pass over the training images
EVALS = tuple(range(0, STEPS + 1, 5))         # the held-out set is scored after these steps
HIDDEN, PIXELS, CLASSES = 8, 64, 10
DATA = ("train_x", "train_y", "valid_x", "valid_y")  # the digits sheet's global names
LOGISTIC, NET = ("w", "b"), ("w1", "b1", "w2", "b2")
DIGITS = [str(d) for d in range(CLASSES)]
PIXEL_NAMES = [f"r{r + 1}c{c + 1}" for r in range(8) for c in range(8)]
UNITS = [f"h{j + 1}" for j in range(HIDDEN)]
ATTRIBUTION = ("Digits: a subset of the UCI \"Optical Recognition of Handwritten Digits\" data set "
               "(E. Alpaydin, C. Kaynak, 1998; doi:10.24432/C50P49), as scikit-learn's load_digits "
               "bundles it; licence CC BY 4.0. Pixels 0..16 divided by 16.")


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The shipped images (n x 64, pixels 0..16) and their labels (n), from lessonxl/data/digits.csv."""
    text = resources.files("lessonxl").joinpath("data/digits.csv").read_text(encoding="ascii")
    table = np.loadtxt(text.splitlines()[1:], delimiter=",", dtype=np.int64)
    return table[:, 2:], table[:, 1]


def init_params(gen: torch.Generator, shapes: Mapping[str, tuple[int, int]]) -> dict[str, torch.Tensor]:
    """nn.Linear's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), rounded to 2 places;
    weights in x out, biases 1 x out (fan_in: the rows of the layer's weights)."""
    out = {}
    for name, shape in shapes.items():
        fan_in = shape[0] if name.startswith("w") else out["w" + name[1:]].shape[0]
        out[name] = torch.round((2 * torch.rand(shape, generator=gen, dtype=torch.float64) - 1) / fan_in ** 0.5,
                                decimals=2)
    return out


def shapes(names: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    if names == LOGISTIC:
        return {"w": (PIXELS, CLASSES), "b": (1, CLASSES)}
    return {"w1": (PIXELS, HIDDEN), "b1": (1, HIDDEN), "w2": (HIDDEN, CLASSES), "b2": (1, CLASSES)}


# --- the sheets' arithmetic, in torch ------------------------------------------------------------------

def one_hot(y: torch.Tensor) -> torch.Tensor:
    """IF(y = class, 1, 0) for a column of labels 0..9."""
    return (y == torch.arange(CLASSES, device=y.device, dtype=y.dtype)).to(y.dtype)


def picked(grid: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """INDEX(row, 1, y + 1): each row's entry at its label (a label that is no class's: nan, an error)."""
    index = torch.floor(y)
    inside = (index >= 0) & (index < CLASSES)
    entry = grid.gather(1, torch.where(inside, index, torch.zeros_like(index)).long())
    return torch.where(inside, entry, torch.full_like(entry, torch.nan))


def logits_of(x: torch.Tensor, params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """x W + b, or ReLU(x W1 + b1) W2 + b2 (the hidden activations as `hidden`)."""
    if "w" in params:
        return {"logits": x @ params["w"] + params["b"]}
    hidden = torch.clamp_min(x @ params["w1"] + params["b1"], 0)
    return {"hidden": hidden, "logits": hidden @ params["w2"] + params["b2"]}


def forward(x, y, params) -> dict[str, torch.Tensor]:
    """A minibatch through the model: logits, exp, their sum, softmax, −ln p of the label."""
    out = logits_of(x, params)
    exp = torch.exp(out["logits"])
    total = exp.sum(dim=1, keepdim=True)
    probs = exp / total
    return {**out, "exp": exp, "sum_exp": total, "probs": probs, "nll": -torch.log(picked(probs, y))}


def backward(x, y, params, fwd, wd) -> dict[str, torch.Tensor]:
    """The gradients of mean cross-entropy + wd·Σp² as the sheet writes them: (p − one-hot) / n, back
    through each layer (ReLU passes where its output is positive), + 2·wd·p for every parameter."""
    g = (fwd["probs"] - one_hot(y)) / x.shape[0]
    out = {"grad_logits": g}
    if "w" in params:
        inner = {"w": x.T @ g, "b": g.sum(dim=0, keepdim=True)}
    else:
        hidden = fwd["hidden"]
        # 0 * hidden, not 0: a spreadsheet error in a hidden cell spreads to its gradient, as IF does
        out["grad_hidden"] = torch.where(hidden > 0, g @ params["w2"].T, 0 * hidden)
        inner = {"w2": hidden.T @ g, "b2": g.sum(dim=0, keepdim=True),
                 "w1": x.T @ out["grad_hidden"], "b1": out["grad_hidden"].sum(dim=0, keepdim=True)}
    return {**out, **{f"grad_{name}": inner[name] + 2 * wd * params[name] for name in params}}


def score(x, y, params) -> dict[str, torch.Tensor]:
    """The held-out set: logits, exp, sum, −ln(exp of the label / sum), and 1 where the largest logit is
    the label's (MATCH(MAX(row), row, 0); an error anywhere in the row spreads, as MAX's does)."""
    out = logits_of(x, params)
    exp = torch.exp(out["logits"])
    total = exp.sum(dim=1, keepdim=True)
    right = (out["logits"].argmax(dim=1, keepdim=True) == y).to(y.dtype)
    broken = torch.isnan(out["logits"]).any(dim=1, keepdim=True)
    return {**out, "exp": exp, "sum_exp": total, "nll": -torch.log(picked(exp, y) / total),
            "correct": torch.where(broken, torch.nan, right)}


def operand_sizes(x, params, values) -> dict[str, torch.Tensor]:
    """How large the terms are that the sums of `values` (a forward pass's, or a held-out scoring's)
    add: a logit or a hidden unit near 0 is exact only relative to them (|x| |W| + |b|)."""
    if "w" in params:
        return {"logits": x.abs() @ params["w"].abs() + params["b"].abs()}
    return {"hidden": x.abs() @ params["w1"].abs() + params["b1"].abs(),
            "logits": values["hidden"].abs() @ params["w2"].abs() + params["b2"].abs()}


def cancelling(values, sizes) -> dict[str, object]:
    """`values`, those of `sizes` as `Cancelling`."""
    return {name: Cancelling(value, sizes[name]) if name in sizes else value for name, value in values.items()}


def train(rule: type[Rule], params: dict[str, torch.Tensor], x, y, vx, vy, hyper, wd) -> dict[str, torch.Tensor]:
    """STEPS minibatch steps of `rule` from `params`, every quantity of the sheet by its block's name."""
    out = {"batch_size": torch.full_like(wd, BATCH).reshape(1, 1)}
    state = {name: {s: torch.zeros_like(p) for s in rule.state} for name, p in params.items()}
    cross_entropy, loss, valid_loss, valid_accuracy = [], [], [], []

    def evaluate(step: int) -> None:
        scored = score(vx, vy, params)
        shown = cancelling(scored, operand_sizes(vx, params, scored))
        out.update({f"valid_{name}_{step}": value for name, value in shown.items()})
        valid_loss.append(scored["nll"].mean())
        valid_accuracy.append(scored["correct"].mean())

    evaluate(0)
    for step in range(1, STEPS + 1):
        batch = slice((step - 1) * BATCH, step * BATCH)
        fwd = forward(x[batch], y[batch], params)
        grads = backward(x[batch], y[batch], params, fwd, wd)
        cross_entropy.append(fwd["nll"].mean())
        loss.append(cross_entropy[-1] + wd * sum((p ** 2).sum() for p in params.values()))
        new = {}
        for name, p in params.items():
            new[name], state[name] = rule.step(p, grads[f"grad_{name}"], state[name], step, **hyper)
            out.update({f"{s}_{name}_{step}": value for s, value in state[name].items()})
        sizes = {**operand_sizes(x[batch], params, fwd),
                 "grad_logits": (fwd["probs"] + one_hot(y[batch])) / BATCH}  # p - 1 near p = 1
        params = new
        shown = cancelling({**fwd, **grads}, sizes)
        out.update({f"{name}_{step}": value for name, value in {**shown, **params}.items()})
        if step in EVALS:
            evaluate(step)
    columns = {"cross_entropy": cross_entropy, "loss": loss, "valid_loss": valid_loss,
               "valid_accuracy": valid_accuracy}
    return {**out, **{name: torch.stack(values).reshape(-1, 1) for name, values in columns.items()}}




# --- the cells an update rule's formulas read ---------------------------------------------------------

@dataclass(frozen=True)
class ParamCells:
    """Cell (r, c) of one parameter at step t, as optim's rule formulas read it (the matrix counterpart
    of optim.StepCells): p before the step, its gradient, the rule's state now and before."""

    r: int
    c: int
    t: int
    before: Block
    gradient: Block
    states: Mapping[str, Block]
    previous: Mapping[str, Block] | None   # the states after the step before (None on the first)
    hypers: Mapping[str, str]

    @property
    def first(self) -> bool:
        return self.previous is None

    @property
    def param_before(self) -> str:
        return self.before.cell(self.r, self.c)

    @property
    def grad(self) -> str:
        return self.gradient.cell(self.r, self.c)

    @property
    def step(self) -> str:
        return str(self.t)

    def hyper(self, name: str) -> str:
        return self.hypers[name]

    def state(self, name: str) -> str:
        return self.states[name].cell(self.r, self.c)

    def state_before(self, name: str, initial: str = "0") -> str:
        return initial if self.previous is None else self.previous[name].cell(self.r, self.c)


def rows_of(block: Block, start: int, count: int) -> Block:
    """Rows start .. start + count − 1 of `block` (a minibatch of the training images), for references."""
    return type(block)(block.sheet, block.name, block.top + start, block.left, count, block.cols,
                       block.global_name, block.reader)


def last_cell(block: Block) -> str:
    return block.cell(block.rows - 1, 0)


class Row:
    """Blocks left to right from column B, a column apart, under a band's title row: the first with the
    rows' labels; each named `name_of(name)`, kept by `name`."""

    def __init__(self, sheet: Sheet, top: int, title: str, labels: list[str], name_of):
        sheet.text(top, 0, title, "section")
        self.place = sheet.across(top + 3, 1)  # below the title, a caption row and a header row
        self.labels, self.name_of, self.blocks = labels, name_of, {}

    def add(self, name: str, caption: str | None, headers: list[str], formula, **options) -> Block:
        first = not self.blocks
        self.blocks[name] = self.place.block(self.name_of(name), gap=0 if first else 1, caption=caption,
                                             headers=headers, formula=formula,
                                             row_labels=self.labels if first else None, **options)
        return self.blocks[name]

    @property
    def bottom(self) -> int:
        return max(block.bottom for block in self.blocks.values())


def forward_blocks(row: Row, x: Block, params: Mapping[str, Block]) -> tuple[Block, Block, Block]:
    """The logits of a block of images (x W + b, or ReLU(x W1 + b1) W2 + b2: each cell one MMULT of a
    row and a column), their exp and its row sums."""
    if "w" in params:
        product = x.matmul(params["w"])
        logits = row.add("logits", "logits = x W + b", DIGITS, lambda r, c: f"{product(r, c)}+{params['b'].cell(0, c)}")
    else:
        # INDEX(MMULT(...), 1, 1): the product as a number. LibreOffice 7.4's MAX(0, MMULT(...) + b) skips
        # an error inside MMULT's 1 x 1 result and gives 0, where Excel (and torch) give the error.
        first = x.matmul(params["w1"])
        hidden = row.add("hidden", "hidden = ReLU(x W1 + b1)", UNITS,
                         lambda r, c: f"=MAX(0,INDEX({first(r, c)[1:]},1,1)+{params['b1'].cell(0, c)})")
        second = hidden.matmul(params["w2"])
        logits = row.add("logits", "logits = hidden W2 + b2", DIGITS,
                         lambda r, c: f"{second(r, c)}+{params['b2'].cell(0, c)}")
    exp = row.add("exp", "exp", DIGITS, lambda r, c: f"=EXP({logits.cell(r, c)})")
    total = row.add("sum_exp", None, ["sum"], lambda r, c: f"=SUM({exp.row(r)})")
    return logits, exp, total


# --- the sheets ---------------------------------------------------------------------------------------

class Digits(SheetSpec):
    """The training and held-out images (pixels / 16, one row each) and their labels; one image shown as
    8 x 8 pixels by INDEX, shaded by a colour scale."""

    name = "digits"
    title = "Handwritten digits, 8 x 8 pixels: the training images and the held-out images"
    subtitle = ATTRIBUTION
    teaches = "the images as rows of 64 pixels / 16 and their labels; one drawn as 8 x 8 by INDEX"
    inputs = (*DATA, "shown_image")
    global_names = frozenset(DATA)

    def compute(self, values) -> dict[str, torch.Tensor]:
        x, y, shown = values["train_x"], values["train_y"], values["shown_image"].reshape(())
        row = int(torch.floor(shown).item()) - 1 if torch.isfinite(shown) else -1
        if not 0 <= row < x.shape[0]:  # INDEX past the table: an error in every cell
            nan = torch.full((1, 1), torch.nan, dtype=x.dtype, device=x.device)
            return {"shown_pixels": nan.expand(8, 8).clone(), "shown_label": nan}
        return {"shown_pixels": x[row].reshape(8, 8), "shown_label": y[row].reshape(1, 1)}

    def layout(self, sheet: Sheet) -> None:
        n = sheet.value("train_y").shape[0]
        shown = sheet.labelled("shown_image", 3, 1, f"image shown (1 to {n})", widen=True, num_format="0").ref
        top = 7  # the image's 8 rows, then the tables
        for prefix, caption, at in (
                ("train", f"training images: minibatch k is images {BATCH}k - {BATCH - 1} to {BATCH}k", top + 13),
                ("valid", "held-out images: scored, never trained on", None)):
            place = sheet.across(at or sheet.blocks["train_x"].bottom + 5, 1)
            count = sheet.value(f"{prefix}_y").shape[0]
            place.block(f"{prefix}_x", headers=PIXEL_NAMES, caption=caption, global_name=True,
                        row_labels=[f"{prefix} {i + 1}" for i in range(count)], num_format="0.####")
            place.block(f"{prefix}_y", gap=1, headers=["label"], global_name=True, num_format="0")
        train, labels = sheet.blocks["train_x"].ref, sheet.blocks["train_y"].ref
        sheet.labelled("shown_label", 4, 1, "its label", widen=True, result=True, num_format="0",
                       formula=f"=INDEX({labels},{shown})")
        pixels = sheet.block("shown_pixels", top, 1, row_labels=[f"r{r + 1}" for r in range(8)],
                             headers=[f"c{c + 1}" for c in range(8)], caption="the image, pixel by pixel",
                             num_format="0.00", formula=lambda r, c: f"=INDEX({train},{shown},{8 * r + c + 1})")
        sheet.ws.conditional_format(pixels.top, pixels.left, pixels.bottom, pixels.right, {
            "type": "2_color_scale", "min_type": "num", "min_value": 0, "min_color": "#FFFFFF",
            "max_type": "num", "max_value": 1, "max_color": "#1F1F1F"})


class Training(SheetSpec):
    """One training run: a model (logistic regression, or the two-layer net) and an update rule of optim.
    The loss per step and the held-out scores on top, with a chart; below, the starting parameters, then
    a band of rows per step (the minibatch's forward and backward pass, then the gradients, the rule's
    states and the new parameters side by side) and the held-out set scored at EVALS. `start`: the sheet
    whose starting parameters it takes (None: its own, inputs)."""

    def __init__(self, name: str, names: tuple[str, ...], rule: type[Rule], title: str, teaches: str,
                 start: str | None = None):
        self.name, self.names, self.rule, self.title, self.teaches = name, names, rule, title, teaches
        self.start, self.hyper = start, (*rule.hyper, "wd")
        self.inputs = (*DATA, *self.hyper, *(() if start else names))
        self.params = frozenset(() if start else names)
        self.global_names = frozenset(DATA)
        model = "logistic regression 64 -> 10" if names == LOGISTIC else f"a net 64 -> {HIDDEN} -> 10 with ReLU"
        self.subtitle = (f"{model}; {STEPS} minibatches of {BATCH} images; loss = mean cross-entropy + wd x (the "
                         f"sum of every parameter squared); {rule.__name__}: {rule.__doc__.splitlines()[0]}")

    def compute(self, values) -> dict[str, torch.Tensor]:
        source = values.of(self.start) if self.start else values
        hyper = {name: values[name].reshape(()) for name in self.rule.hyper}
        with one_cpu_thread():
            out = train(self.rule, {name: source[name] for name in self.names}, values["train_x"],
                        values["train_y"], values["valid_x"], values["valid_y"], hyper, values["wd"].reshape(()))
        # From another sheet's start, the held-out scores before the first step are that sheet's.
        return {name: value for name, value in out.items()
                if not (self.start and name.startswith("valid_") and name.endswith("_0"))}

    def layout(self, sheet: Sheet) -> None:
        labels = {**self.rule.labels, "wd": "weight decay wd"}
        hypers = {name: sheet.labelled(name, 3 + i, 1, labels[name], widen=True, num_format="General").ref
                  for i, name in enumerate(self.hyper)}
        train, train_y = sheet.block_on("digits", "train_x"), sheet.block_on("digits", "train_y")
        n = sheet.labelled("batch_size", 3 + len(self.hyper), 1, "images per minibatch", widen=True,
                           num_format="0", formula=f"=ROWS({rows_of(train_y, 0, BATCH).column(0)})").ref
        top = 3 + len(self.hyper) + 5
        tables = {name: sheet.area(name, top, col) for name, col in
                  (("cross_entropy", 1), ("loss", 2), ("valid_loss", 4), ("valid_accuracy", 5))}
        top = tables["loss"].bottom + 3
        if self.start:
            params = {name: sheet.block_on(self.start, name) for name in self.names}
            sheet.text(top, 0, f"start: the starting parameters of {self.start} (names {self.start}_w1 ...), and "
                               "its held-out scores before the first step", "section")
            scored, top = {0: None}, top + 2
        else:
            sheet.text(top, 0, "start: the parameters (nn.Linear's initialisation, rounded to 2 places)", "section")
            params = self._params(sheet, top + 3, "", "", lambda name: None)
            scored = {0: self._score(sheet, max(b.bottom for b in params.values()) + 3, 0, params)}
            top = scored[0]["correct"].bottom + 3
        steps, states = [], None
        for step in range(1, STEPS + 1):
            band = self._step(sheet, top, step, params, states, rows_of(train, (step - 1) * BATCH, BATCH),
                              rows_of(train_y, (step - 1) * BATCH, BATCH), n, hypers)
            steps.append(band)
            params = {name: band[name] for name in self.names}
            states = {name: {s: band[f"{s}_{name}"] for s in self.rule.state} for name in self.names}
            top = max(block.bottom for block in band.values()) + 3
            if step in EVALS:
                scored[step] = self._score(sheet, top, step, params)
                top = scored[step]["correct"].bottom + 3
        self._tables(sheet, tables, steps, list(scored.values()), hypers["wd"])

    def _params(self, sheet: Sheet, top: int, prefix: str, suffix: str, formula=None, left: int = 1,
                result: bool = False) -> dict[str, Block]:
        """The parameters (or their gradients, states, new values) down from `top`, each weight matrix
        above its bias: inputs where `formula(name)` is None; with no `formula`, only where they will be."""
        place, blocks = sheet.down(top, left), {}
        for name in self.names:
            weights = name.startswith("w")
            gap = 3 if weights and name != self.names[0] else 0  # a blank row, a caption and the headers
            if formula is None:
                blocks[name] = place.area(f"{prefix}{name}{suffix}", gap)
                continue
            rows = PIXEL_NAMES if name in ("w", "w1") else UNITS if weights else ["bias"]
            blocks[name] = place.block(f"{prefix}{name}{suffix}", gap=gap, row_labels=rows, result=result,
                                       headers=(UNITS if name == "w1" else DIGITS) if weights else None,
                                       caption=f"{prefix}{name}" if weights else None, formula=formula(name))
        return blocks

    def _step(self, sheet: Sheet, top: int, step: int, params: dict[str, Block], states, x: Block, y: Block,
              n: str, hypers: dict[str, str]) -> dict[str, Block]:
        """One minibatch: forward and backward along the top rows; below, the gradients, the rule's states
        and the new parameters side by side. The blocks by their names without the step."""
        first = (step - 1) * BATCH + 1
        row = Row(sheet, top, f"step {step}: the minibatch of training images {first} to {first + BATCH - 1}",
                  [f"train {first + i}" for i in range(BATCH)], lambda name: f"{name}_{step}")
        _, exp, total = forward_blocks(row, x, params)
        probs = row.add("probs", "softmax p", DIGITS, lambda r, c: f"={exp.cell(r, c)}/{total.cell(r)}")
        row.add("nll", "-ln p(label)", ["loss"], lambda r, c: f"=-LN(INDEX({probs.row(r)},1,{y.cell(r)}+1))")
        g = row.add("grad_logits", "d loss / d logits = (p - one-hot) / n", DIGITS,
                    lambda r, c: f"=({probs.cell(r, c)}-IF({y.cell(r)}={c},1,0))/{n}")
        if "w" in params:
            back = {"w": (x, g), "b": (None, g)}
        else:
            hidden, through = row.blocks["hidden"], g.matmul(params["w2"], transpose_other=True)
            gh = row.add("grad_hidden", "d / d hidden = g W2^T where ReLU passed, else 0", UNITS,
                         lambda r, c: f"=IF({hidden.cell(r, c)}>0,{through(r, c)[1:]},0)")
            back = {"w1": (x, gh), "b1": (None, gh), "w2": (hidden, g), "b2": (None, g)}
        decay = f"+2*{hypers['wd']}*"

        def gradient(name: str):
            """d / d p of the mean loss: a product over the batch (a sum, for a bias), + 2 wd p."""
            source, grad = back[name]
            if source is None:
                product = lambda r, c: f"=SUM({grad.column(c)})"  # noqa: E731
            else:
                product = source.matmul(grad, transpose=True)
            return lambda r, c: f"{product(r, c)}{decay}{params[name].cell(r, c)}"

        top, width = row.bottom + 4, max(CLASSES, HIDDEN) + 2
        grads = self._params(sheet, top, "grad_", f"_{step}", gradient)
        kinds = (*self.rule.state, "new")
        prefix = {kind: "" if kind == "new" else f"{kind}_" for kind in kinds}
        where = {kind: self._params(sheet, top, prefix[kind], f"_{step}", left=1 + width * (i + 1))
                 for i, kind in enumerate(kinds)}
        made: dict[tuple[str, int, int], dict[str, str]] = {}

        def rule_formula(name: str, kind: str):
            """optim's formulas for cell (r, c) of the parameter `name`, made once for all its kinds."""
            def formula(r: int, c: int) -> str:
                if (name, r, c) not in made:
                    made[name, r, c] = self.rule.formulas(ParamCells(
                        r, c, step, params[name], grads[name], {s: where[s][name] for s in self.rule.state},
                        None if states is None else states[name], hypers))
                return made[name, r, c][kind]
            return formula

        blocks = {**row.blocks, **{f"grad_{name}": block for name, block in grads.items()}}
        for i, kind in enumerate(kinds):
            written = self._params(sheet, top, prefix[kind], f"_{step}", lambda name, k=kind: rule_formula(name, k),
                                   1 + width * (i + 1), result=kind == "new")
            blocks.update({f"{prefix[kind]}{name}": block for name, block in written.items()})
        return blocks

    def _score(self, sheet: Sheet, top: int, step: int, params: dict[str, Block]) -> dict[str, Block]:
        """The held-out images through the model after `step` steps: each one's loss, and 1 where its
        largest logit is its label's."""
        x, y = sheet.block_on("digits", "valid_x"), sheet.block_on("digits", "valid_y")
        row = Row(sheet, top, f"the held-out images after step {step}", [f"valid {i + 1}" for i in range(y.rows)],
                  lambda name: f"valid_{name}_{step}")
        logits, exp, total = forward_blocks(row, x, params)
        row.add("nll", "-ln(exp of the label / sum)", ["loss"],
                lambda r, c: f"=-LN(INDEX({exp.row(r)},1,{y.cell(r)}+1)/{total.cell(r)})")
        row.add("correct", "largest logit the label's?", ["right"], num_format="0",
                formula=lambda r, c: f"=IF(MATCH(MAX({logits.row(r)}),{logits.row(r)},0)-1={y.cell(r)},1,0)")
        return row.blocks

    def _tables(self, sheet: Sheet, tables: dict[str, Block], steps: list[dict[str, Block]],
                scored: list[dict[str, Block] | None], wd: str) -> None:
        """The loss per step (the notebook's update() returns cross-entropy + wd Σp²) and the held-out
        loss and accuracy at EVALS, with a chart."""
        ce, vl = tables["cross_entropy"], tables["valid_loss"]
        sheet.text(ce.top - 1, 0, "step", "header")
        sheet.block("cross_entropy", ce.top, ce.left, headers=["cross-entropy"], caption="loss per minibatch",
                    row_labels=[str(s) for s in range(1, STEPS + 1)],
                    formula=lambda r, c: f"=AVERAGE({steps[r]['nll'].ref})")
        start = {name: sheet.block_on(self.start, name) if self.start else sheet.blocks[name] for name in self.names}

        def loss(r: int, c: int) -> str:
            before = steps[r - 1] if r else start
            return f"={ce.cell(r)}+{wd}*({'+'.join(f'SUMSQ({before[name].ref})' for name in self.names)})"

        loss_block = sheet.block("loss", ce.top, ce.left + 1, headers=["+ wd x sum of p²"], result=True, formula=loss)

        def held_out(name: str, scores: str):
            """The mean of a scoring's column; before the first step, the start sheet's own."""
            return lambda r, c: (f"={sheet.block_on(self.start, name).cell(0)}" if scored[r] is None
                                 else f"=AVERAGE({scored[r][scores].ref})")

        sheet.block("valid_loss", vl.top, vl.left, headers=["held-out loss"], caption="held-out images", result=True,
                    row_labels=[f"after step {s}" for s in EVALS], formula=held_out("valid_loss", "nll"))
        sheet.block("valid_accuracy", vl.top, vl.left + 1, headers=["accuracy"], result=True,
                    formula=held_out("valid_accuracy", "correct"))
        sheet.line_chart("loss per minibatch", [("cross-entropy + wd x sum of p²", loss_block)], 3, vl.left + 3,
                         y_title="loss")


class Comparison(SheetSpec):
    """The runs side by side: their last loss and held-out scores; their losses and accuracies charted."""

    name = "comparison"
    title = "Logistic regression, the net with SGD, the net with Adam: side by side"
    subtitle = "The last row of each run's tables; the charts read every row."
    teaches = "every run's last loss, held-out loss and accuracy; SGD beside Adam, charted"

    def __init__(self, runs: Mapping[str, str]):
        self.runs = runs  # sheet -> label

    def compute(self, values) -> dict[str, torch.Tensor]:
        return {f"final_{name}": torch.stack([values.of(sheet)[name][-1, 0] for sheet in self.runs]).reshape(-1, 1)
                for name in ("loss", "valid_loss", "valid_accuracy")}

    def layout(self, sheet: Sheet) -> None:
        place, sheets = sheet.across(5, 1), list(self.runs)
        for name, header in (("loss", "last minibatch loss"), ("valid_loss", f"held-out loss after step {STEPS}"),
                             ("valid_accuracy", f"held-out accuracy after step {STEPS}")):
            place.block(f"final_{name}", gap=0 if name == "loss" else 1, headers=[header], result=True,
                        row_labels=list(self.runs.values()) if name == "loss" else None,
                        formula=lambda r, c, n=name: f"={last_cell(sheet.block_on(sheets[r], n))}")
        losses = [(label, sheet.block_on(run, "loss")) for run, label in self.runs.items()]
        sheet.line_chart("loss per minibatch", losses, 10, 1, y_title="loss")
        sheet.line_chart(f"held-out accuracy after steps {', '.join(map(str, EVALS))}",
                         [(label, sheet.block_on(run, "valid_accuracy")) for run, label in self.runs.items()],
                         27, 1, x_title="scored", y_title="accuracy")


# --- the lesson ---------------------------------------------------------------------------------------

DIGITS_SHEET = Digits()
LOGISTIC_SHEET = Training("logistic", LOGISTIC, optim.SGD,
                          "Logistic regression: one linear layer, the notebook's update() with weight decay",
                          "logistic regression 64 -> 10: minibatch SGD with wd, loss per step, held-out scores")
NET_SGD = Training("net_sgd", NET, optim.SGD, "A two-layer net: linear, ReLU, linear, the same update()",
                   f"the net 64 -> {HIDDEN} -> 10 with ReLU: backward layer by layer, the same loop")
NET_ADAM = Training("net_adam", NET, optim.Adam, "The same net with Adam instead of SGD",
                    "the net trained by Adam (torch.optim.Adam) from net_sgd's starting point", start="net_sgd")
RUNS = {"logistic": "logistic regression, SGD", "net_sgd": "two-layer net, SGD", "net_adam": "two-layer net, Adam"}
COMPARISON = Comparison(RUNS)
HYPER = {"logistic": {"lr": 0.5, "wd": 1e-5}, "net_sgd": {"lr": 0.5, "wd": 1e-5},
         "net_adam": {"lr": 0.05, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "wd": 1e-5}}


class MnistSgd(Lesson):
    """mnist_sgd.xlsx: the digits, logistic regression and the two-layer net trained by minibatch SGD with
    weight decay, the net again with Adam, and the three side by side."""

    name = "mnist_sgd"
    title = "The MNIST notebook: minibatch SGD with weight decay, logistic regression, a 2-layer net, Adam"
    notes_title = "Minibatch SGD on handwritten digits (the lesson's MNIST notebook)"
    specs = (DIGITS_SHEET, LOGISTIC_SHEET, NET_SGD, NET_ADAM, COMPARISON)

    def notes(self, values) -> tuple[str, ...]:
        """The notes, with the default workbook's figures (the held-out accuracy of each run)."""
        accuracy = {run: values[f"{run}!valid_accuracy"] for run in RUNS}
        return notes(*(f"{float(accuracy[run][-1, 0]):.0%}" for run in RUNS),
                     f"{float(accuracy['logistic'][0, 0]):.0%}")

    def default_inputs(self, seed: int, **options) -> dict[str, np.ndarray]:
        pixels, labels = load_digits()
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(labels), generator=gen).numpy()
        out = {"digits!shown_image": np.array([[1.0]])}
        for prefix, rows in (("train", order[:N_TRAIN]), ("valid", order[N_TRAIN:N_TRAIN + N_VALID])):
            out[f"{prefix}_x"] = pixels[rows] / 16
            out[f"{prefix}_y"] = labels[rows].reshape(-1, 1).astype(np.float64)
        for spec in (LOGISTIC_SHEET, NET_SGD):
            out.update({spec.key(name): value.numpy() for name, value in init_params(gen, shapes(spec.names)).items()})
        for sheet, hyper in HYPER.items():
            out.update({f"{sheet}!{name}": np.array([[value]]) for name, value in hyper.items()})
        return out


def notes(logistic: str, net_sgd: str, net_adam: str, chance: str) -> tuple[str, ...]:
    return (
        "The lesson's MNIST notebook (lesson5-sgd-mnist), unrolled in formulas. The notebook trains on 28 x 28 "
        f"MNIST images; here they are 8 x 8 handwritten digits, 64 pixels of 0 to 16, divided by 16 so that they "
        f"lie in 0..1 as the notebook's do: {N_TRAIN} to train on, in {STEPS} minibatches of {BATCH}, and "
        f"{N_VALID} held out, never trained on. Every step is a band of rows, and lessonxl verify recomputes every "
        "cell with torch (nn.Linear, F.cross_entropy, torch.optim.SGD with weight_decay and torch.optim.Adam give "
        "the same numbers).",
        "digits: each image is a row of 64 pixels (r1c1 is row 1, column 1 of the picture); the 8 x 8 block at the "
        "top draws one of them by INDEX. Change digits_shown_image (1 to 500) to draw another training image and "
        "its label.",
        "logistic: logistic regression, one linear layer (the notebook's Mnist_Logistic). logits = x W + b, each "
        "cell the MMULT of an image's row and a column of W; softmax; -ln p of the label; the gradient "
        "(p - one-hot) / n, carried back to W by SUMPRODUCTs over the minibatch. The notebook's update() adds "
        "wd x (the sum of every parameter squared) to the loss, so every gradient gains 2 wd p, and then takes "
        "p - lr x gradient: exactly torch.optim.SGD(lr, weight_decay=2 wd). The loss per minibatch falls (the "
        f"chart), and the held-out accuracy goes from {chance} to {logistic} after {STEPS} steps "
        "(logistic_valid_accuracy, green).",
        "The learning rate here is 0.5; the notebook's 2e-2 suits its 50,000 images and many more steps. "
        "Try the notebook's logistic_lr = 0.02: after 20 steps the held-out accuracy has barely left chance.",
        f"net_sgd: the notebook's Mnist_NN, 64 -> {HIDDEN} -> 10 (the notebook has 50 hidden units; {HIDDEN} keep "
        "the workbook small). hidden = ReLU(x W1 + b1), logits = hidden W2 + b2. Backward, the gradient reaches "
        "the hidden layer as g W2^T and passes the ReLU only where it let the signal through; the same update() "
        f"and the same loop: {net_sgd} held-out accuracy after {STEPS} steps.",
        "net_adam: the same net from net_sgd's starting point, updated by Adam (torch.optim.Adam, weight_decay = "
        "2 wd): an average m of the gradients and v of their squares per parameter, bias-corrected; a step of "
        f"lr m / (sqrt v + eps) moves each weight by about lr whatever its gradient's size. {net_adam} held-out "
        f"accuracy after {STEPS} steps, against SGD's {net_sgd}: the comparison sheet charts the three runs.",
        "Raise net_adam_lr (Adam's learning rate on net_adam) to 10 and it diverges: the first step moves every "
        "weight by about 10, the next logits overflow EXP, and every cell after them shows #NUM! where torch "
        "gives inf and nan (lessonxl verify still passes: an error value agrees with torch's inf or nan). "
        "From 0.3 to 3 nothing overflows, but the first steps throw the net far off: the loss jumps, and the "
        "held-out accuracy stays at chance.",
        "comparison: the last loss and the held-out loss and accuracy of the three runs side by side, and their "
        "curves charted.",
        ATTRIBUTION + " The subset ships with lessonxl (lessonxl/data/README.md).",
    )
