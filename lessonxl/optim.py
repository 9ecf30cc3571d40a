"""Optimizer update rules, learning-rate schedules and the online regression they train, for every lesson.

The problem: fit y = a·x + b to seeded data one (x, y) sample at a time (batch size one), so every
update is one row of a sheet. Each update rule is one `Rule` class holding everything about it, under
one docstring that states its math: the update in torch exactly as a sheet writes it (`step`), the
same update as cell formulas (`formulas`), and the `torch.optim` optimizer it must equal
(`torch_optimizer`). `with_l2` and `decoupled` wrap a rule in weight decay, all three at once. A
`Schedule` sets lr (and β1) per step likewise: in torch, in cells, and as its torch.optim.lr_scheduler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, ClassVar, Mapping

import numpy as np
import torch

if TYPE_CHECKING:
    from .sheets import Block

N_SAMPLES = 30
TRUE_SLOPE, TRUE_INTERCEPT = 2.0, 30.0
LINE_PARAMS = ("intercept", "slope")  # the line's parameters, the order of every parameter vector: p = [b, a]
GRADS = ("de_db", "de_da")
SYMBOLS = dict(zip(LINE_PARAMS, ("b", "a")))


def seeded_x(seed: int) -> np.ndarray:
    """The fixed data: N_SAMPLES seeded whole numbers from 1 to 100, as a column."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(1, 101, (N_SAMPLES, 1), generator=gen).double().numpy()


def power(base: torch.Tensor, t: int) -> torch.Tensor:
    """base^t, raised on the CPU: CUDA's pow may differ in the last bit, and this problem's
    cancellations (prediction − y) would magnify that far beyond 1e-12."""
    return (base.cpu() ** t).to(base.device)


# --- the cells a rule's formulas read ---------------------------------------------------------------

@dataclass(frozen=True)
class StepCells:
    """The cells the formulas of one step-table row read, for one parameter (`intercept` or `slope`):
    the rule's p (`param_before`), g (`grad`) and t (`step`), its state before and after the row."""

    row: int                       # the row of the step table, from 0
    columns: Mapping[str, Block]   # the step table's columns, by key
    scalars: Mapping[str, Block]   # the sheet's single cells: hyperparameters, start values, computed ones
    per_step: Mapping[str, str] = field(default_factory=dict)  # hyperparameter -> the column setting it per step
    param: str = "intercept"
    grad_columns: tuple[str, str] = GRADS  # the columns the rule steps along, for b and for a

    @property
    def first(self) -> bool:
        """Whether this is the table's first row (its "row above" is the start values)."""
        return self.row == 0

    def cell(self, column: str) -> str:
        """This row's cell of a column."""
        return self.columns[column].cell(self.row)

    def above(self, column: str) -> str:
        """The cell of a column in the row above."""
        return self.columns[column].cell(self.row - 1)

    def hyper(self, name: str) -> str:
        """A hyperparameter: its scalar, or this row's cell where a schedule sets it per step."""
        return self.cell(self.per_step[name]) if name in self.per_step else self.scalars[name].ref

    @property
    def grad(self) -> str:
        """g: this row's gradient of the parameter."""
        return self.cell(self.grad_columns[LINE_PARAMS.index(self.param)])

    @property
    def step(self) -> str:
        """t: this row's step number, from 1."""
        return self.cell("step")

    def before(self, param: str) -> str:
        """A parameter's value before this row's update."""
        return self.scalars[f"{param}_start"].ref if self.first else self.above(param)

    @property
    def param_before(self) -> str:
        """p: the parameter's value before this row's update."""
        return self.before(self.param)

    def state(self, name: str) -> str:
        """The parameter's state `name` after this row's update."""
        return self.cell(f"{name}_{self.param}")

    def state_before(self, name: str, initial: str = "0") -> str:
        """The parameter's state `name` before this row's update (`initial` before the first)."""
        return initial if self.first else self.above(f"{name}_{self.param}")


# --- the update rules -------------------------------------------------------------------------------

class Rule:
    """An update rule, elementwise on a parameter tensor p with gradient g at step t (from 1)."""

    hyper: ClassVar[tuple[str, ...]] = ("lr",)
    labels: ClassVar[dict[str, str]] = {"lr": "learning rate lr"}  # hyperparameter -> its label on a sheet
    state: ClassVar[tuple[str, ...]] = ()   # per-parameter quantities a step leaves, each a column
    headers: ClassVar[dict[str, str]] = {}  # state -> column header; {g}: the gradient's, {p}: the parameter's

    def __init_subclass__(cls, **kwargs):
        """A rule names every hyperparameter it takes for the sheet: refused at once where one is missing."""
        super().__init_subclass__(**kwargs)
        unlabelled = [name for name in cls.hyper if name not in cls.labels]
        if unlabelled:
            raise TypeError(f"{cls.__name__}: no label for the hyperparameter {', '.join(unlabelled)}: "
                            f"add it to {cls.__name__}.labels (how a sheet shows it)")

    @staticmethod
    def step(p, g, state: dict, t: int, **hyper) -> tuple[torch.Tensor, dict]:
        """The new p and state."""
        raise NotImplementedError

    @staticmethod
    def formulas(cells: StepCells) -> dict[str, str]:
        """Each state's formula and the new parameter's (key `new`), as the sheet writes them."""
        raise NotImplementedError

    @staticmethod
    def torch_optimizer(params, **hyper) -> torch.optim.Optimizer | None:
        """The torch.optim optimizer the rule equals, or None for the lesson's own variants. With
        `weight_decay` λ it steps along g + λ·p (L2)."""
        return None

    @staticmethod
    def torch_decoupled(params, **hyper) -> torch.optim.Optimizer | None:
        """The torch.optim optimizer that equals the rule followed by p ← p − lr·λ·p, λ its
        `weight_decay` (decoupled weight decay), or None where torch.optim has none."""
        return None


class SGD(Rule):
    """p ← p − lr·g: torch.optim.SGD."""

    @staticmethod
    def step(p, g, state, t, *, lr):
        return p - lr * g, state

    @staticmethod
    def formulas(cells):
        return {"new": f"={cells.param_before}-{cells.hyper('lr')}*{cells.grad}"}

    @staticmethod
    def torch_optimizer(params, *, lr, weight_decay=0.0):
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)

    # p − lr·(g + λ·p) = (p − lr·g) − lr·λ·p: for SGD, decoupled weight decay is L2.
    torch_decoupled = torch_optimizer


class Momentum(Rule):
    """m ← g on the first step, then momentum·m + (1 − momentum)·g; p ← p − lr·m.

    torch.optim.SGD(momentum=β, dampening=β): the lesson's "0.9 of the last step plus 0.1 of the
    gradient".
    """

    hyper = ("lr", "momentum")
    labels = {**Rule.labels, "momentum": "momentum β (and dampening)"}
    state = ("m",)
    headers = {"m": "m: EWMA of {g}"}

    @staticmethod
    def step(p, g, state, t, *, lr, momentum):
        m = g if t == 1 else momentum * state["m"] + (1 - momentum) * g
        return p - lr * m, {"m": m}

    @staticmethod
    def formulas(cells):
        beta = cells.hyper("momentum")
        m = f"={cells.grad}" if cells.first else f"={beta}*{cells.state_before('m')}+(1-{beta})*{cells.grad}"
        return {"m": m, "new": f"={cells.param_before}-{cells.hyper('lr')}*{cells.state('m')}"}

    @staticmethod
    def torch_optimizer(params, *, lr, momentum, weight_decay=0.0):
        return torch.optim.SGD(params, lr=lr, momentum=momentum, dampening=momentum, weight_decay=weight_decay)


class RMSprop(Rule):
    """v ← alpha·v + (1 − alpha)·g², from 0; p ← p − lr·g / (√v + eps): torch.optim.RMSprop."""

    hyper = ("lr", "alpha", "eps")
    labels = {**Rule.labels, "alpha": "alpha: decay of v", "eps": "eps"}
    state = ("v",)
    headers = {"v": "v: EWMA of {g}²"}

    @staticmethod
    def step(p, g, state, t, *, lr, alpha, eps):
        v = alpha * state["v"] + (1 - alpha) * g ** 2
        return p - lr * g / (torch.sqrt(v) + eps), {"v": v}

    @staticmethod
    def formulas(cells):
        alpha = cells.hyper("alpha")
        return {
            "v": f"={alpha}*{cells.state_before('v')}+(1-{alpha})*{cells.grad}^2",
            "new": f"={cells.param_before}-{cells.hyper('lr')}*{cells.grad}/(SQRT({cells.state('v')})+{cells.hyper('eps')})",
        }

    @staticmethod
    def torch_optimizer(params, *, lr, alpha, eps, weight_decay=0.0):
        return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay)


class LessonRMSprop(Rule):
    """The lesson's RMSProp: p ← p − lr·g / √(previous v), then v ← alpha·v + (1 − alpha)·g².

    It divides by the average *before* this step's gradient enters it, and has no eps; before the
    first step the average is taken as the first g² (so the first step is lr·sign(g)).
    """

    hyper = ("lr", "alpha")
    labels = RMSprop.labels
    state = ("v",)
    headers = {"v": "v: EWMA of {g}²"}

    @staticmethod
    def step(p, g, state, t, *, lr, alpha):
        previous = g ** 2 if t == 1 else state["v"]
        v = alpha * previous + (1 - alpha) * g ** 2
        return p - lr * g / torch.sqrt(previous), {"v": v}

    @staticmethod
    def formulas(cells):
        previous = cells.state_before("v", initial=f"{cells.grad}^2")
        alpha = cells.hyper("alpha")
        return {
            "v": f"={alpha}*{previous}+(1-{alpha})*{cells.grad}^2",
            "new": f"={cells.param_before}-{cells.hyper('lr')}*{cells.grad}/SQRT({previous})",
        }


def _adam_averages(g, state, beta1, beta2) -> dict[str, torch.Tensor]:
    """Adam's m and v, from 0: m ← β1·m + (1 − β1)·g; v ← β2·v + (1 − β2)·g²."""
    return {"m": beta1 * state["m"] + (1 - beta1) * g, "v": beta2 * state["v"] + (1 - beta2) * g ** 2}


def _adam_average_formulas(cells: StepCells) -> dict[str, str]:
    """`_adam_averages` as formulas."""
    b1, b2 = cells.hyper("beta1"), cells.hyper("beta2")
    return {"m": f"={b1}*{cells.state_before('m')}+(1-{b1})*{cells.grad}",
            "v": f"={b2}*{cells.state_before('v')}+(1-{b2})*{cells.grad}^2"}


class Adam(Rule):
    """m ← β1·m + (1 − β1)·g; v ← β2·v + (1 − β2)·g², both from 0;
    p ← p − lr·m̂ / (√v̂ + eps) with m̂ = m / (1 − β1^t), v̂ = v / (1 − β2^t): torch.optim.Adam."""

    hyper = ("lr", "beta1", "beta2", "eps")
    labels = {**Rule.labels, "beta1": "beta1: decay of m", "beta2": "beta2: decay of v", "eps": "eps"}
    state = ("m", "v")
    headers = {"m": "m: EWMA of {g}", "v": "v: EWMA of {g}²"}

    @staticmethod
    def step(p, g, state, t, *, lr, beta1, beta2, eps):
        state = _adam_averages(g, state, beta1, beta2)
        m_hat, v_hat = state["m"] / (1 - power(beta1, t)), state["v"] / (1 - power(beta2, t))
        return p - lr * m_hat / (torch.sqrt(v_hat) + eps), state

    @staticmethod
    def formulas(cells):
        b1, b2 = cells.hyper("beta1"), cells.hyper("beta2")
        m_hat = f"({cells.state('m')}/(1-{b1}^{cells.step}))"
        v_hat = f"{cells.state('v')}/(1-{b2}^{cells.step})"
        return {**_adam_average_formulas(cells),
                "new": f"={cells.param_before}-{cells.hyper('lr')}*{m_hat}/(SQRT({v_hat})+{cells.hyper('eps')})"}

    @staticmethod
    def torch_optimizer(params, *, lr, beta1, beta2, eps, weight_decay=0.0):
        return torch.optim.Adam(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)

    @staticmethod
    def torch_decoupled(params, *, lr, beta1, beta2, eps, weight_decay):
        return torch.optim.AdamW(params, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)


class LessonAdam(Rule):
    """The lesson's Adam: the same averages, but p ← p − lr·m / √v: no bias correction, no eps."""

    hyper = ("lr", "beta1", "beta2")
    labels = Adam.labels
    state = ("m", "v")
    headers = Adam.headers

    @staticmethod
    def step(p, g, state, t, *, lr, beta1, beta2):
        state = _adam_averages(g, state, beta1, beta2)
        return p - lr * state["m"] / torch.sqrt(state["v"]), state

    @staticmethod
    def formulas(cells):
        return {**_adam_average_formulas(cells),
                "new": f"={cells.param_before}-{cells.hyper('lr')}*{cells.state('m')}/SQRT({cells.state('v')})"}


# --- weight decay: rules around rules ---------------------------------------------------------------

L2_GRADIENT = "{g} + 2 wd {p}"


WEIGHT_DECAY = "weight decay wd"


def with_l2(rule: type[Rule]) -> type[Rule]:
    """`rule` on the loss plus wd·(a² + b²): it steps along g + 2·wd·p, kept as the state `grad` (a
    column per parameter). torch.optim's weight_decay is 2·wd."""

    class L2(rule):
        hyper = (*rule.hyper, "wd")
        labels = {**rule.labels, "wd": WEIGHT_DECAY}
        state = ("grad", *rule.state)
        headers = {"grad": L2_GRADIENT,
                   **{name: text.replace("{g}", L2_GRADIENT) for name, text in rule.headers.items()}}

        @staticmethod
        def step(p, g, state, t, *, wd, **hyper):
            grad = g + 2 * wd * p
            new, state = rule.step(p, grad, state, t, **hyper)
            return new, {**state, "grad": grad}

        @staticmethod
        def formulas(cells):
            along = replace(cells, grad_columns=tuple(f"grad_{param}" for param in LINE_PARAMS))
            return {"grad": f"={cells.grad}+2*{cells.hyper('wd')}*{cells.param_before}", **rule.formulas(along)}

        @staticmethod
        def torch_optimizer(params, *, wd, **hyper):
            return rule.torch_optimizer(params, weight_decay=2 * wd, **hyper)

    return L2


def decoupled(rule: type[Rule]) -> type[Rule]:
    """`rule` on the plain loss, then p ← p − lr·(2·wd)·p: decoupled weight decay (AdamW for Adam).
    Its formulas read the sheet's scalar `decay`, 2·wd (torch's weight_decay)."""

    class Decoupled(rule):
        hyper = (*rule.hyper, "wd")
        labels = {**rule.labels, "wd": WEIGHT_DECAY}

        @staticmethod
        def step(p, g, state, t, *, wd, lr, **hyper):
            new, state = rule.step(p, g, state, t, lr=lr, **hyper)
            return new - lr * (2 * wd) * p, state

        @staticmethod
        def formulas(cells):
            formulas = rule.formulas(cells)
            shrink = f"-{cells.hyper('lr')}*{cells.scalars['decay'].ref}*{cells.param_before}"
            return {**formulas, "new": formulas["new"] + shrink}

        @staticmethod
        def torch_optimizer(params, *, wd, **hyper):
            return rule.torch_decoupled(params, weight_decay=2 * wd, **hyper)

    return Decoupled


# --- a rule's columns -------------------------------------------------------------------------------

def state_columns(rule: type[Rule]) -> tuple[str, ...]:
    """The step-table columns of the rule's state: each state per parameter (`m_intercept`, ...)."""
    return tuple(f"{state}_{param}" for state in rule.state for param in LINE_PARAMS)


def row_formulas(rule: type[Rule]):
    """The formula of a state column or a parameter column (the new value) in the row of a step table's
    `StepCells`, as a function (column, cells) -> formula for one table: a row's columns all come from
    one call of `rule.formulas` per parameter, made once (graddesc writes 22,800 such cells)."""
    made: dict[tuple[int, str], dict[str, str]] = {}

    def formula(column: str, cells: StepCells) -> str:
        state, param = ("new", column) if column in LINE_PARAMS else column.rsplit("_", 1)
        if (cells.row, param) not in made:
            made[cells.row, param] = rule.formulas(replace(cells, param=param))
        return made[cells.row, param][state]

    return formula


def state_header(rule: type[Rule], column: str) -> str:
    """A state column's header, with its parameter's gradient (de/db, de/da) and symbol."""
    state, param = column.rsplit("_", 1)
    symbol = SYMBOLS[param]
    return rule.headers[state].format(g=f"de/d{symbol}", p=symbol)


# --- online training --------------------------------------------------------------------------------

@dataclass
class Trajectory:
    """Online training, one entry per update: everything a row of an optimizer sheet shows."""

    prediction: torch.Tensor                  # (T,)
    error: torch.Tensor                       # (T,)
    grad: torch.Tensor                        # (T, 2): de/db, de/da
    state: dict[str, torch.Tensor]            # name -> (T, 2)
    params: torch.Tensor                      # (T, 2): intercept, slope after each update

    def columns(self) -> dict[str, torch.Tensor]:
        """Every step column but the prediction, (T,) each, keyed as the sheets key them."""
        return {"error": self.error, **{name: self.grad[:, j] for j, name in enumerate(GRADS)},
                **{f"{state}_{param}": value[:, j] for state, value in self.state.items()
                   for j, param in enumerate(LINE_PARAMS)},
                **{param: self.params[:, j] for j, param in enumerate(LINE_PARAMS)}}


def train_online(rule: type[Rule], xs: torch.Tensor, ys: torch.Tensor, start: torch.Tensor,
                 **hyper) -> Trajectory:
    """Fit y = a·x + b one (x, y) sample at a time, in order, with `rule`.

    `start` is [intercept, slope]; a hyperparameter is a scalar, or a tensor with one value per step.
    The loss of a sample is (a·x + b − y)², so de/db = 2·error and de/da = x·de/db.
    """
    p = start
    state = {name: torch.zeros_like(start) for name in rule.state}
    rows: dict[str, list] = {"prediction": [], "error": [], "grad": [], "params": []}
    states: dict[str, list] = {name: [] for name in rule.state}
    for t in range(1, len(xs) + 1):
        x, y = xs[t - 1], ys[t - 1]
        prediction = p[1] * x + p[0]
        error = prediction - y
        de_db = 2 * error
        grad = torch.stack([de_db, x * de_db])
        now = {name: value if value.ndim == 0 else value[t - 1] for name, value in hyper.items()}
        p, state = rule.step(p, grad, state, t, **now)
        for key, value in (("prediction", prediction), ("error", error), ("grad", grad), ("params", p)):
            rows[key].append(value)
        for name in rule.state:
            states[name].append(state[name])
    return Trajectory(**{key: torch.stack(values) for key, values in rows.items()},
                      state={name: torch.stack(values) for name, values in states.items()})


# --- learning-rate schedules -----------------------------------------------------------------------

class Schedule:
    """A constant learning rate; subclasses change lr (and β1) over the steps, in cells."""

    inputs: ClassVar[dict[str, float]] = {}      # extra input cells -> default
    scalars: ClassVar[dict[str, str]] = {}       # computed scalar -> formula template over names
    per_epoch: ClassVar[tuple[str, ...]] = ()    # per-epoch columns beside the RMSE
    columns: ClassVar[dict[str, str]] = {}       # hyperparameter -> the per-step column that sets it
    labels: ClassVar[dict[str, str]] = {}        # labels of the inputs and scalars it adds, or of a
                                                 # hyperparameter it redefines

    def values(self, given: Mapping[str, torch.Tensor], steps: int, n: int) -> dict[str, torch.Tensor]:
        """Every block the schedule adds: scalars 1 x 1, per-epoch and per-step columns k x 1, from the
        sheet's input values `given` (0-d: the hyperparameters and the schedule's inputs)."""
        return {}

    def epoch_formula(self, name: str, e: int, refs: Mapping[str, str]) -> str:
        raise NotImplementedError

    def step_formula(self, column: str, cells: StepCells) -> str:
        raise NotImplementedError

    def torch_scheduler(self, optimizer, given: Mapping[str, float], steps: int, n: int):
        """The torch.optim.lr_scheduler it equals, and whether it steps after every update (else
        after every epoch)."""
        return None, False


def cosine(start: str, end: str, pct: str) -> str:
    """Cosine annealing from `start` to `end` as pct goes from 0 to 1, as torch writes it."""
    return f"{end}+({start}-{end})/2*(COS(PI()*{pct})+1)"


def cosine_t(start, end, pct):
    """`cosine` in torch."""
    return end + (start - end) / 2 * (torch.cos(math.pi * pct) + 1)


class CosineEpochs(Schedule):
    """One learning rate per epoch, lr·(1 + cos(π·(epoch − 1) / epochs)) / 2:
    torch's CosineAnnealingLR(T_max=epochs), stepped after every epoch."""

    scalars = {"epochs": "=MAX({epoch_column})"}
    labels = {"epochs": "epochs"}
    per_epoch = ("lr_epoch",)
    columns = {"lr": "lr_t"}

    def values(self, given, steps, n):
        epochs = steps // n
        e = torch.arange(epochs, dtype=given["lr"].dtype, device=given["lr"].device).reshape(-1, 1)
        lr_epoch = given["lr"] * (1 + torch.cos(math.pi * e / epochs)) / 2
        return {"epochs": torch.full_like(lr_epoch[:1], epochs), "lr_epoch": lr_epoch,
                "lr_t": lr_epoch.repeat_interleave(n, dim=0)}

    def epoch_formula(self, name, e, refs):
        return f"={refs['lr']}*(1+COS(PI()*{e}/{refs['epochs']}))/2"

    def step_formula(self, column, cells):
        return f"=INDEX({cells.scalars['lr_epoch'].ref},{cells.cell('epoch')})"

    def torch_scheduler(self, optimizer, given, steps, n):
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps // n), False


class OneCycle(Schedule):
    """torch's OneCycleLR (cosine, two phases), stepped after every update: over the first pct_start
    of the steps lr rises from lr / div_factor to lr while Adam's β1 falls from max_momentum to
    base_momentum; then lr falls to lr / div_factor / final_div_factor and β1 climbs back."""

    inputs = {"pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e4,
              "base_momentum": 0.85, "max_momentum": 0.95}
    scalars = {"total_steps": "=ROWS({step_column})", "initial_lr": "={lr}/{div_factor}",
               "min_lr": "={initial_lr}/{final_div_factor}", "warmup_end": "={pct_start}*{total_steps}-1"}
    columns = {"lr": "lr_t", "beta1": "beta1"}
    labels = {"lr": "lr: the peak learning rate (max_lr)", "pct_start": "pct_start: warm-up share",
              "div_factor": "div_factor: lr / first lr", "final_div_factor": "final_div_factor: first lr / last lr",
              "base_momentum": "base_momentum: lowest β1", "max_momentum": "max_momentum: highest β1",
              "total_steps": "total steps", "initial_lr": "first lr", "min_lr": "last lr",
              "warmup_end": "warm-up ends at t ="}

    def values(self, given, steps, n):
        initial = given["lr"] / given["div_factor"]
        low, high = given["base_momentum"], given["max_momentum"]
        computed = {"total_steps": torch.full_like(initial, steps), "initial_lr": initial,
                    "min_lr": initial / given["final_div_factor"], "warmup_end": given["pct_start"] * steps - 1}
        end = computed["warmup_end"]
        t = torch.arange(steps, dtype=initial.dtype, device=initial.device).reshape(-1, 1)
        warm, cool = t / end, (t - end) / (steps - 1 - end)

        def phased(up, down):
            return torch.where(t <= end, cosine_t(*up, warm), cosine_t(*down, cool))

        return {**{name: value.reshape(1, 1) for name, value in computed.items()},
                "lr_t": phased((initial, given["lr"]), (given["lr"], computed["min_lr"])),
                "beta1": phased((high, low), (low, high))}

    def step_formula(self, column, cells):
        ref = {name: block.ref for name, block in cells.scalars.items()}
        end = ref["warmup_end"]
        t = f"({cells.step}-1)"
        warm, cool = f"{t}/{end}", f"({t}-{end})/({ref['total_steps']}-1-{end})"
        up, down = {
            "lr_t": ((ref["initial_lr"], ref["lr"]), (ref["lr"], ref["min_lr"])),
            "beta1": ((ref["max_momentum"], ref["base_momentum"]), (ref["base_momentum"], ref["max_momentum"])),
        }[column]
        return f"=IF({t}<={end},{cosine(*up, warm)},{cosine(*down, cool)})"

    def torch_scheduler(self, optimizer, given, steps, n):
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=given["lr"], total_steps=steps, pct_start=given["pct_start"], anneal_strategy="cos",
            cycle_momentum=True, base_momentum=given["base_momentum"], max_momentum=given["max_momentum"],
            div_factor=given["div_factor"], final_div_factor=given["final_div_factor"], three_phase=False)
        return scheduler, True
