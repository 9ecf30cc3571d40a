"""optim: which torch.optim optimizer each rule's twin is, and how the weight-decay wrappers wrap the
formulas, headers and columns, without a workbook."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import lessonxl
from lessonxl.optim import (GRADS, LINE_PARAMS, SGD, Adam, LessonAdam, Momentum, StepCells, decoupled, row_formulas,
                            state_columns, state_header, with_l2)

HYPER = {"lr": 0.5, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "momentum": 0.9, "wd": 0.01}


class Column:
    """A stand-in for a sheet block: cell r of column `name` is `name` + r."""

    def __init__(self, name: str):
        self.name = name
        self.ref = name

    def cell(self, r: int) -> str:
        return f"{self.name}{r}"


def twin(rule, **extra):
    params = [torch.zeros(2, dtype=torch.float64, requires_grad=True)]
    return rule.torch_optimizer(params, **{name: HYPER[name] for name in rule.hyper}, **extra)


@pytest.mark.parametrize("rule, wrap, expected", [
    (SGD, with_l2, torch.optim.SGD), (SGD, decoupled, torch.optim.SGD),
    (Momentum, with_l2, torch.optim.SGD), (Adam, with_l2, torch.optim.Adam),
    (Adam, decoupled, torch.optim.AdamW)])
def test_weight_decay_twins_are_torch_optim_with_weight_decay_2wd(rule, wrap, expected):
    optimizer = twin(wrap(rule))
    assert type(optimizer) is expected
    assert optimizer.defaults["weight_decay"] == 2 * HYPER["wd"]
    assert optimizer.defaults["lr"] == HYPER["lr"]
    assert type(twin(rule)) is type(twin(with_l2(rule))) and twin(rule).defaults["weight_decay"] == 0


@pytest.mark.parametrize("rule", [decoupled(Momentum), with_l2(LessonAdam), decoupled(LessonAdam)])
def test_no_twin_where_torch_optim_has_none(rule):
    """SGD's momentum would carry the decay along; the lesson's Adam is no torch.optim class."""
    assert twin(rule) is None


SCALARS = ("lr", "momentum", "wd", "decay", "intercept_start", "slope_start")


def formulas(rule, r: int = 1) -> dict[str, str]:
    """The rule's columns' formulas in row r of a table whose cells are named column + row."""
    written = (*state_columns(rule), *LINE_PARAMS)
    cells = StepCells(r, {key: Column(key) for key in ("step", *GRADS, *written)},
                      {name: Column(name) for name in SCALARS})
    formula = row_formulas(rule)
    return {column: formula(column, cells) for column in written}


@pytest.mark.parametrize("rule, expected", [
    (SGD, {"intercept": "=intercept0-lr*de_db1", "slope": "=slope0-lr*de_da1"}),
    (with_l2(SGD), {"grad_intercept": "=de_db1+2*wd*intercept0", "grad_slope": "=de_da1+2*wd*slope0",
                    "intercept": "=intercept0-lr*grad_intercept1", "slope": "=slope0-lr*grad_slope1"}),
    (with_l2(Momentum), {"grad_intercept": "=de_db1+2*wd*intercept0", "grad_slope": "=de_da1+2*wd*slope0",
                         "m_intercept": "=momentum*m_intercept0+(1-momentum)*grad_intercept1",
                         "m_slope": "=momentum*m_slope0+(1-momentum)*grad_slope1",
                         "intercept": "=intercept0-lr*m_intercept1", "slope": "=slope0-lr*m_slope1"}),
    (decoupled(SGD), {"intercept": "=intercept0-lr*de_db1-lr*decay*intercept0",
                      "slope": "=slope0-lr*de_da1-lr*decay*slope0"}),
])
def test_weight_decay_wraps_the_formulas(rule, expected):
    assert formulas(rule) == expected


@pytest.mark.parametrize("rule, column, header", [
    (Adam, "m_intercept", "m: EWMA of de/db"), (Adam, "v_slope", "v: EWMA of de/da²"),
    (with_l2(Adam), "grad_slope", "de/da + 2 wd a"), (with_l2(Adam), "v_intercept", "v: EWMA of de/db + 2 wd b²"),
])
def test_state_headers(rule, column, header):
    assert state_header(rule, column) == header


def test_l2_state_columns_put_the_gradient_first():
    assert state_columns(with_l2(Adam)) == ("grad_intercept", "grad_slope", "m_intercept", "m_slope",
                                            "v_intercept", "v_slope")
    assert state_columns(decoupled(Adam)) == state_columns(Adam)


def test_wrapped_steps_add_the_l2_term_or_decay_the_weights():
    p, g = torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([0.5, -0.25], dtype=torch.float64)
    lr, wd = torch.tensor(0.1, dtype=torch.float64), torch.tensor(0.01, dtype=torch.float64)
    new, state = with_l2(SGD).step(p, g, {"grad": torch.zeros(2)}, 1, lr=lr, wd=wd)
    torch.testing.assert_close(state["grad"], g + 2 * wd * p, rtol=0, atol=0)
    torch.testing.assert_close(new, p - lr * (g + 2 * wd * p), rtol=0, atol=0)
    new, _ = decoupled(SGD).step(p, g, {}, 1, lr=lr, wd=wd)
    torch.testing.assert_close(new, p - lr * g - lr * (2 * wd) * p, rtol=0, atol=0)


@pytest.mark.parametrize("lesson, other", [("graddesc", "regularization"), ("regularization", "graddesc")])
def test_no_lesson_imports_another(lesson, other):
    """Both lessons take their rules from optim, neither from the other."""
    tree = ast.parse((Path(lessonxl.__file__).parent / f"{lesson}.py").read_text(encoding="utf-8"))
    names = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    names += [alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
              for alias in node.names]
    imported = {part for name in names for part in name.split(".")}
    assert "optim" in imported and other not in imported
