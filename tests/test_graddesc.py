"""graddesc.xlsx: the sheet arithmetic equals torch.optim step by step, and the lesson's claims hold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lessonxl import graddesc as gd
from lessonxl.lesson import Cancelling
from lessonxl.optim import LINE_PARAMS, Adam, LessonAdam, Rule
from lessonxl.registry import by_name

LESSON = by_name("graddesc")
# The optimizer sheets as the lesson registers them: a sheet added there is tested here with no list to
# update (against torch.optim where its rule has a twin, else against its own reference below).
SPECS = {spec.name: spec for spec in LESSON.specs if isinstance(spec, gd.OptimizerSheet)}
TORCH_OPTIM = tuple(name for name, spec in SPECS.items() if spec.rule.torch_optimizer is not Rule.torch_optimizer)
LESSON_RULES = tuple(name for name in SPECS if name not in TORCH_OPTIM)
ADAM_FAMILY = tuple(name for name, spec in SPECS.items() if issubclass(spec.rule, (Adam, LessonAdam)))
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def inputs() -> dict[str, torch.Tensor]:
    return LESSON.tensors(LESSON.default_inputs(0), CPU)


@pytest.fixture(scope="module")
def values(inputs) -> dict[str, torch.Tensor]:
    """Every quantity as a tensor (a Cancelling one by its value)."""
    return {key: value.value if isinstance(value, Cancelling) else value
            for key, value in LESSON.compute(inputs).items()}


def given(inputs, sheet: str) -> dict[str, float]:
    """The input values of the optimizer sheet `sheet`, as floats."""
    return {name: inputs[f"{sheet}!{name}"].item() for name in SPECS[sheet].inputs}


def before_each_step(values, inputs, sheet: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The intercept and slope each step starts from (n·epochs x 1)."""
    b = torch.cat([inputs[f"{sheet}!intercept_start"], values[f"{sheet}!intercept"][:-1]])
    a = torch.cat([inputs[f"{sheet}!slope_start"], values[f"{sheet}!slope"][:-1]])
    return b, a


def test_registered_with_the_sheets_and_names_of_the_issue():
    assert isinstance(by_name("graddesc"), gd.GradDesc) and isinstance(by_name("graddesc.xlsx"), gd.GradDesc)
    assert {"basic", "momentum", "rmsprop", "adam", "adam_annealed", "onecycle"} <= set(TORCH_OPTIM)
    assert {"rmsprop_lesson", "adam_lesson"} <= set(LESSON_RULES)
    assert {"notes", "data", "summary", *SPECS} == set(LESSON.sheets)
    required = {"basic": (), "momentum": ("momentum",), "rmsprop": ("alpha", "eps"),
                "adam": ("beta1", "beta2", "eps"), "adam_annealed": ("beta1", "beta2", "eps"),
                "onecycle": ("beta2", "eps")}
    for sheet, names in required.items():
        assert {"lr", "slope_start", "intercept_start", *names} <= set(SPECS[sheet].inputs)
    assert "beta1" in SPECS["onecycle"].columns  # β1 changes every step there: a column
    assert {"data_x", "data!intercept_truth", "data!slope_truth"} <= set(LESSON.inputs)


def test_data_and_shapes(inputs, values):
    x = inputs["data_x"]
    assert x.shape[0] >= 29 and torch.all((x >= 1) & (x <= 100)) and torch.equal(x, x.round())
    assert torch.equal(values["data_y"], 30 + 2 * x)
    n, steps = x.shape[0], x.shape[0] * gd.EPOCHS
    assert values["basic!epoch"][-1, 0] >= 10  # the sheet counts ten epochs or more
    for spec in SPECS.values():
        for column in spec.columns:
            assert values[f"{spec.name}!{column}"].shape == (steps, 1), column
        assert values[f"{spec.name}!rmse"].shape == (gd.EPOCHS, 1)
        assert torch.equal(values[f"{spec.name}!x"], x.repeat(gd.EPOCHS, 1))
        assert torch.equal(values[f"{spec.name}!epoch"][::n, 0], torch.arange(1.0, gd.EPOCHS + 1, dtype=x.dtype))
    assert all(value.ndim == 2 for value in values.values())


@pytest.mark.parametrize("sheet", TORCH_OPTIM)
def test_sheet_arithmetic_equals_torch_optim_at_every_step(inputs, values, sheet):
    reference = gd.train_torch_optim(SPECS[sheet], inputs["data_x"], values["data_y"], given(inputs, sheet))
    for name in ("intercept", "slope"):
        torch.testing.assert_close(values[f"{sheet}!{name}"], reference[name], rtol=0, atol=1e-12)
    if SPECS[sheet].schedule.columns:  # the schedule's cells are the scheduler's values
        for name in SPECS[sheet].schedule.columns.values():
            torch.testing.assert_close(values[f"{sheet}!{name}"], reference[name], rtol=1e-12, atol=0)


def test_the_lessons_simplified_rules_differ_from_torch_optim(inputs, values):
    """Hence their own sheets: the same hyperparameters give visibly different trajectories."""
    for lesson_sheet, torch_sheet in (("rmsprop_lesson", "rmsprop"), ("adam_lesson", "adam")):
        sheet_inputs = {**given(inputs, lesson_sheet), "eps": 1e-8}
        reference = gd.train_torch_optim(SPECS[torch_sheet], inputs["data_x"], values["data_y"], sheet_inputs)
        assert (values[f"{lesson_sheet}!intercept"] - reference["intercept"]).abs().max() > 1e-3


def lesson_rule_by_autograd(sheet: str, inputs, values) -> torch.Tensor:
    """The lesson's RMSProp or Adam, written independently: autograd, in-place updates, a Python loop."""
    sheet_inputs = given(inputs, sheet)
    params = [torch.tensor(sheet_inputs[f"{p}_start"], dtype=torch.float64, requires_grad=True) for p in LINE_PARAMS]
    first, second = [torch.zeros((), dtype=torch.float64) for _ in params], [None for _ in params]
    xs = inputs["data_x"].reshape(-1).repeat(gd.EPOCHS)
    ys = values["data_y"].reshape(-1).repeat(gd.EPOCHS)
    after = []
    for x, y in zip(xs, ys):
        b, a = params
        loss = (a * x + b - y) ** 2
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(params, grads)):
                if sheet == "rmsprop_lesson":
                    previous = g * g if second[i] is None else second[i]
                    p -= sheet_inputs["lr"] * g / previous.sqrt()
                    second[i] = sheet_inputs["alpha"] * previous + (1 - sheet_inputs["alpha"]) * g * g
                else:
                    first[i] = sheet_inputs["beta1"] * first[i] + (1 - sheet_inputs["beta1"]) * g
                    previous = torch.zeros((), dtype=torch.float64) if second[i] is None else second[i]
                    second[i] = sheet_inputs["beta2"] * previous + (1 - sheet_inputs["beta2"]) * g * g
                    p -= sheet_inputs["lr"] * first[i] / second[i].sqrt()
        after.append([p.item() for p in params])
    return torch.tensor(after, dtype=torch.float64)


@pytest.mark.parametrize("sheet", LESSON_RULES)
def test_lesson_rules_equal_an_independent_torch_implementation(inputs, values, sheet):
    reference = lesson_rule_by_autograd(sheet, inputs, values)
    sheet_values = torch.cat([values[f"{sheet}!intercept"], values[f"{sheet}!slope"]], dim=1)
    torch.testing.assert_close(sheet_values, reference, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sheet", list(SPECS))
def test_autograd_gradient_equals_the_analytic_columns(inputs, values, sheet):
    b, a = (p.clone().requires_grad_() for p in before_each_step(values, inputs, sheet))
    x, y = values[f"{sheet}!x"], values[f"{sheet}!y"]
    ((a * x + b - y) ** 2).sum().backward()
    torch.testing.assert_close(b.grad, values[f"{sheet}!de_db"], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a.grad, values[f"{sheet}!de_da"], rtol=1e-12, atol=1e-12)


def test_finite_differences_are_torch_estimates_of_the_derivatives(inputs, values):
    """For e = (a·x + b − y)², (e(b + h) − e(b)) / h = de/db + h and (e(a + h) − e(a)) / h = de/da + x²·h."""
    h = inputs["basic!h"].item()
    b, a = before_each_step(values, inputs, "basic")
    x, y = values["basic!x"], values["basic!y"]

    def loss(b, a):
        return torch.nn.functional.mse_loss(a * x + b, y, reduction="none")

    torch.testing.assert_close(values["basic!est_de_db"], (loss(b + h, a) - loss(b, a)) / h, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(values["basic!est_de_da"], (loss(b, a + h) - loss(b, a)) / h, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(values["basic!est_de_db"] - values["basic!de_db"],
                               torch.full_like(x, h), rtol=0, atol=1e-7)
    torch.testing.assert_close(values["basic!est_de_da"] - values["basic!de_da"], x ** 2 * h, rtol=1e-6, atol=1e-6)


def test_rmse_and_summary_read_the_step_columns(inputs, values):
    n = inputs["data_x"].shape[0]
    for i, spec in enumerate(SPECS.values()):
        error = values[f"{spec.name}!error"].reshape(gd.EPOCHS, n)
        torch.testing.assert_close(values[f"{spec.name}!rmse"][:, 0], error.pow(2).mean(dim=1).sqrt())
        assert values["summary!final_intercept"][i, 0] == values[f"{spec.name}!intercept"][-1, 0]
        assert values["summary!final_slope"][i, 0] == values[f"{spec.name}!slope"][-1, 0]
        assert values["summary!last_rmse"][i, 0] == values[f"{spec.name}!rmse"][-1, 0]


def test_adam_gets_there_while_plain_sgd_crawls(values):
    final = {spec.name: (values[f"{spec.name}!intercept"][-1, 0].item(), values[f"{spec.name}!slope"][-1, 0].item())
             for spec in SPECS.values()}
    best = min(ADAM_FAMILY, key=lambda name: abs(final[name][0] - 30))
    assert abs(final[best][0] - 30) < 1 and abs(final[best][1] - 2) < 0.05, final
    assert abs(final["adam_annealed"][0] - 30) < 1 and abs(final["adam_annealed"][1] - 2) < 0.05, final
    assert abs(final["basic"][0] - 30) > 20, final  # b has hardly left its start of 1


def test_compute_derives_everything_from_the_edited_inputs(inputs, values):
    edited = dict(inputs)
    edited["basic!lr"] = torch.zeros_like(inputs["basic!lr"])
    edited["adam!intercept_start"] = inputs["adam!intercept_start"] + 5
    edited["data_x"] = inputs["data_x"].flip(0)
    out = LESSON.compute(edited)
    assert torch.all(out["basic!intercept"] == inputs["basic!intercept_start"])
    assert out["adam!prediction"][0, 0] == inputs["adam!slope_start"] * edited["data_x"][0, 0] + 6
    assert torch.equal(out["momentum!x"][: len(edited["data_x"])], edited["data_x"])
    assert not torch.equal(out["onecycle!slope"], values["onecycle!slope"])


def test_schedules(inputs, values):
    lr = values["adam_annealed!lr_epoch"][:, 0]
    assert lr[0] == inputs["adam_annealed!lr"] and torch.all(lr[1:] < lr[:-1])
    peak = values["onecycle!lr_t"].argmax().item()
    steps = values["onecycle!lr_t"].shape[0]
    assert values["onecycle!lr_t"][peak, 0] == pytest.approx(inputs["onecycle!lr"].item())
    assert peak == pytest.approx(0.3 * steps, abs=1)
    assert values["onecycle!beta1"][peak, 0] == pytest.approx(inputs["onecycle!base_momentum"].item())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu(inputs, values):
    cuda = LESSON.evaluate({k: v.numpy() for k, v in inputs.items()}, torch.device("cuda"))
    for key, value in values.items():
        np.testing.assert_allclose(cuda[key], value.numpy(), rtol=1e-12, atol=1e-12, err_msg=key)


def test_a_rule_without_a_label_for_a_hyperparameter_is_refused_when_defined():
    """Adding an optimizer sheet: its rule names each hyperparameter for the sheet (no KeyError when the
    workbook is generated)."""
    with pytest.raises(TypeError, match="Adagrad: no label for the hyperparameter lr_decay: add it to "
                                        "Adagrad.labels"):
        type("Adagrad", (Rule,), {"hyper": ("lr", "lr_decay")})
