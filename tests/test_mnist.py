"""mnist_sgd: the sheets' arithmetic (as lessonxl/mnist.py writes it) equals torch's own modules and
optimizers, step by step; the workbook verifies through LibreOffice, and so does Adam diverging."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lessonxl.mnist import (BATCH, EVALS, N_TRAIN, N_VALID, NET, RUNS, STEPS, MnistSgd, load_digits)
from lessonxl.report import format_report
from lessonxl.pipeline import verify_paths

from conftest import cell_of, set_cells

CPU = torch.device("cpu")
SHEETS = {"logistic": ("w", "b"), "net_sgd": NET, "net_adam": NET}


@pytest.fixture(scope="module")
def lesson():
    return MnistSgd()


@pytest.fixture(scope="module")
def case(lesson):
    inputs = lesson._default_grids(0)
    return inputs, lesson.evaluate(inputs, CPU)


def tensor(grid) -> torch.Tensor:
    return torch.as_tensor(np.asarray(grid, dtype=np.float64))


def close(actual, expected, tol: float = 1e-12) -> None:
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
                               rtol=tol, atol=tol)


def start(inputs, sheet: str) -> dict[str, torch.Tensor]:
    """The sheet's starting parameters (net_adam starts from net_sgd's)."""
    source = "net_sgd" if sheet == "net_adam" else sheet
    return {name: tensor(inputs[f"{source}!{name}"]) for name in SHEETS[sheet]}


def model_of(params: dict[str, torch.Tensor], sheet: str) -> nn.Module:
    """nn.Linear (logistic) or nn.Sequential(Linear, ReLU, Linear) holding the sheet's parameters (the
    sheet's weights are in x out: nn.Linear's weight transposed)."""
    names = SHEETS[sheet]
    layers = [nn.Linear(64, 10)] if sheet == "logistic" else [
        nn.Linear(64, params["w1"].shape[1]), nn.ReLU(), nn.Linear(params["w1"].shape[1], 10)]
    model = nn.Sequential(*layers).double()
    with torch.no_grad():
        for linear, (w, b) in zip((model[0], model[-1]), zip(names[::2], names[1::2])):
            linear.weight.copy_(params[w].T)
            linear.bias.copy_(params[b].ravel())
    return model


def as_sheet(model: nn.Module, sheet: str, grad: bool = False) -> dict[str, torch.Tensor]:
    """The model's parameters (or their gradients) in the sheet's orientation, by the sheet's names."""
    names = SHEETS[sheet]
    out = {}
    for linear, (w, b) in zip((model[0], model[-1]), zip(names[::2], names[1::2])):
        weight, bias = (linear.weight.grad, linear.bias.grad) if grad else (linear.weight, linear.bias)
        out[w], out[b] = weight.detach().T, bias.detach().reshape(1, -1)
    return out


def data(inputs):
    x, y = tensor(inputs["train_x"]), tensor(inputs["train_y"]).ravel().long()
    return x, y, tensor(inputs["valid_x"]), tensor(inputs["valid_y"]).ravel().long()


def hyper(inputs, sheet: str) -> dict[str, float]:
    return {name: float(value[0, 0]) for key, value in inputs.items()
            for s, _, name in [key.partition("!")] if s == sheet and value.shape == (1, 1)
            and name in ("lr", "wd", "beta1", "beta2", "eps")}


def optimizer_of(model, sheet: str, h: dict[str, float]) -> torch.optim.Optimizer:
    """The sheet's rule as torch.optim has it: weight_decay = 2 wd, the gradient of wd x sum of p²."""
    if sheet == "net_adam":
        return torch.optim.Adam(model.parameters(), lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"],
                                weight_decay=2 * h["wd"])
    return torch.optim.SGD(model.parameters(), lr=h["lr"], weight_decay=2 * h["wd"])


# the data ------------------------------------------------------------------------------------------

def test_the_shipped_digits_are_600_uci_images_and_the_workbook_splits_them_500_and_100(lesson):
    pixels, labels = load_digits()
    assert pixels.shape == (600, 64) and labels.shape == (600,)
    assert pixels.min() == 0 and pixels.max() == 16 and set(labels) == set(range(10))
    assert np.bincount(labels).min() >= 45  # every digit is there, roughly as often as the others
    inputs = lesson.default_inputs(0)
    assert inputs["train_x"].shape == (N_TRAIN, 64) and inputs["valid_x"].shape == (N_VALID, 64)
    images = np.vstack([inputs["train_x"], inputs["valid_x"]]) * 16
    assert np.array_equal(images, np.round(images))  # pixels / 16: exact in binary
    rows = {tuple(row) for row in pixels.tolist()}
    assert {tuple(row) for row in images.astype(int).tolist()} == rows  # all 600, none twice
    other = lesson.default_inputs(1)
    assert not np.array_equal(other["train_x"], inputs["train_x"])  # the seed shuffles the split


def test_the_wheel_carries_the_digits_and_their_licence_note(tmp_path):
    import subprocess
    import sys
    code = f"from setuptools import build_meta; print(build_meta.build_wheel({str(tmp_path)!r}))"
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = tmp_path / done.stdout.strip().splitlines()[-1]
    names = zipfile.ZipFile(wheel).namelist()
    assert {"lessonxl/data/digits.csv", "lessonxl/data/README.md", "lessonxl/mnist.py"} <= set(names)


# the torch twins, step by step ---------------------------------------------------------------------

@pytest.mark.parametrize("sheet", list(SHEETS))
def test_every_step_equals_nn_linear_cross_entropy_and_torch_optim(case, sheet):
    """Forward by nn.Linear, loss by F.cross_entropy, gradients by autograd, the update by torch.optim.SGD
    (weight_decay = 2 wd) or torch.optim.Adam (the same, with Adam's m and v): every step of the sheet."""
    inputs, out = case
    model = model_of(start(inputs, sheet), sheet)
    h = hyper(inputs, sheet)
    optimizer = optimizer_of(model, sheet, h)
    x, y, _, _ = data(inputs)
    for step in range(1, STEPS + 1):
        xb, yb = x[(step - 1) * BATCH:step * BATCH], y[(step - 1) * BATCH:step * BATCH]
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        close(out[f"{sheet}!logits_{step}"], logits.detach())
        close(out[f"{sheet}!probs_{step}"], torch.softmax(logits, dim=1).detach())
        close(out[f"{sheet}!nll_{step}"], F.cross_entropy(logits, yb, reduction="none").detach().reshape(-1, 1))
        close(out[f"{sheet}!cross_entropy"][step - 1, 0], loss.item())
        penalty = sum((p ** 2).sum() for p in model.parameters()).item()
        close(out[f"{sheet}!loss"][step - 1, 0], loss.item() + h["wd"] * penalty)
        optimizer.zero_grad()
        loss.backward()
        for name, grad in as_sheet(model, sheet, grad=True).items():  # + 2 wd p: what weight_decay adds
            close(out[f"{sheet}!grad_{name}_{step}"], grad + 2 * h["wd"] * as_sheet(model, sheet)[name])
        optimizer.step()
        for name, value in as_sheet(model, sheet).items():
            close(out[f"{sheet}!{name}_{step}"], value)
        if sheet == "net_adam":
            for linear, (w, b) in zip((model[0], model[-1]), (("w1", "b1"), ("w2", "b2"))):
                state = optimizer.state[linear.weight]
                close(out[f"{sheet}!m_{w}_{step}"], state["exp_avg"].T)
                close(out[f"{sheet}!v_{w}_{step}"], state["exp_avg_sq"].T)
                close(out[f"{sheet}!m_{b}_{step}"], optimizer.state[linear.bias]["exp_avg"].reshape(1, -1))


@pytest.mark.parametrize("sheet", ["logistic", "net_sgd"])
def test_the_notebooks_update_with_wd_in_the_loss_is_the_same(case, sheet):
    """The notebook's own update(): loss = cross-entropy + wd x (the sum of every parameter squared),
    backward, p -= lr x p.grad, with no torch.optim: the same trajectory."""
    inputs, out = case
    model = model_of(start(inputs, sheet), sheet)
    h = hyper(inputs, sheet)
    x, y, _, _ = data(inputs)
    for step in range(1, STEPS + 1):
        xb, yb = x[(step - 1) * BATCH:step * BATCH], y[(step - 1) * BATCH:step * BATCH]
        w2 = sum((p ** 2).sum() for p in model.parameters())
        loss = F.cross_entropy(model(xb), yb) + w2 * h["wd"]
        loss.backward()
        close(out[f"{sheet}!loss"][step - 1, 0], loss.item())
        with torch.no_grad():
            for p in model.parameters():
                p.sub_(h["lr"] * p.grad)
                p.grad.zero_()
    for name, value in as_sheet(model, sheet).items():
        close(out[f"{sheet}!{name}_{STEPS}"], value)


@pytest.mark.parametrize("sheet", list(SHEETS))
def test_held_out_loss_and_accuracy_are_cross_entropy_and_the_share_of_right_argmaxes(case, sheet):
    inputs, out = case
    _, _, vx, vy = data(inputs)
    for row, step in enumerate(EVALS):
        params = start(inputs, sheet) if step == 0 else {
            name: tensor(out[f"{sheet}!{name}_{step}"]) for name in SHEETS[sheet]}
        model = model_of(params, sheet)
        with torch.no_grad():
            logits = model(vx)
        close(out[f"{sheet}!valid_loss"][row, 0], F.cross_entropy(logits, vy).item())
        close(out[f"{sheet}!valid_accuracy"][row, 0], (logits.argmax(dim=1) == vy).double().mean().item(), 1e-15)


def test_the_default_workbook_learns_as_the_notes_say(case):
    """Logistic regression ends at 80 % held-out accuracy or more; every loss falls; from one start, Adam
    takes the net further than SGD in the same steps."""
    _, out = case
    accuracy = {sheet: out[f"{sheet}!valid_accuracy"][:, 0] for sheet in RUNS}
    print({sheet: list(values) for sheet, values in accuracy.items()})
    assert accuracy["logistic"][-1] >= 0.8
    assert all(values[0] < 0.2 for values in accuracy.values())  # chance before the first step
    for sheet in RUNS:
        loss = out[f"{sheet}!loss"][:, 0]
        assert loss[-5:].mean() < loss[:5].mean() - 0.3, sheet
    assert accuracy["net_adam"][-1] > accuracy["net_sgd"][-1] + 0.1
    assert out["net_adam!valid_loss"][-1, 0] < out["net_sgd!valid_loss"][-1, 0]
    np.testing.assert_array_equal(out["comparison!final_valid_accuracy"][:, 0], [a[-1] for a in accuracy.values()])


def test_adam_diverges_at_lr_10_into_nan_as_the_sheet_shows_errors(lesson, case):
    inputs, _ = case
    edited = {key: value.copy() for key, value in inputs.items()}
    edited["net_adam!lr"][0, 0] = 10.0
    out, _ = lesson.expected(edited, CPU, spreadsheet_errors=True)
    assert np.isfinite(out["net_adam!loss"][0, 0]) and np.isnan(out["net_adam!loss"][1:, 0]).all()
    assert np.isfinite(out["net_adam!w1_1"]).all()  # the first step moves far, the second overflows EXP
    assert np.isnan(out["net_adam!exp_2"]).any()
    last = out[f"net_adam!w1_{STEPS}"]
    # a hidden unit the ReLU shut for every image passes no gradient (IF(hidden > 0, ..., 0)): its weights
    # stay numbers, in the sheet as in torch
    assert np.isnan(last).any() and np.isfinite(last).any()
    assert np.isfinite(out["net_sgd!loss"]).all()  # the other sheets keep their numbers


# the workbook --------------------------------------------------------------------------------------

def formula_count(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return sum(len(re.findall(rb"<f>", archive.read(name))) for name in archive.namelist()
                   if name.startswith("xl/worksheets/sheet"))


@pytest.fixture(scope="module")
def verified(generated, tmp_path_factory):
    """The generated workbook and a copy with Adam's lr typed up to 10, verified in one run."""
    path = generated["mnist_sgd"]
    diverged = tmp_path_factory.mktemp("mnist") / "diverged.xlsx"
    set_cells(path, diverged, [(*cell_of(path, "net_adam!lr"), 10.0)])
    return path, dict(zip(("generated", "diverged"), verify_paths([path, diverged], device="cpu")))


def test_the_workbook_verifies_every_formula_cell_within_the_size_budget(verified):
    path, reports = verified
    report = reports["generated"]
    assert report.error is None and report.passed, format_report(report)
    assert report.uncovered == []
    cells = formula_count(path)
    print(f"mnist_sgd: {cells:,} formula cells, {path.stat().st_size / 1e6:.1f} MB, verified in {report.seconds:.1f} s")
    assert report.formula_cells == cells <= 300_000
    assert {check.sheet for check in report.checks} == {"digits", *RUNS, "comparison"}


def test_adam_diverging_in_the_workbook_shows_errors_that_agree_with_torch(verified):
    _, reports = verified
    report = reports["diverged"]
    assert report.error is None and report.passed, format_report(report)
    errors = {check.name: check.sheet_errors for check in report.checks if check.sheet == "net_adam"}
    assert errors["loss"] == STEPS - 1 and errors[f"w1_{STEPS}"] > 0
    final = {check.name: check.sheet_errors for check in report.checks if check.sheet == "comparison"}
    assert final == {"final_loss": 1, "final_valid_loss": 1, "final_valid_accuracy": 1}  # net_adam's row
    assert not any(check.sheet_errors for check in report.checks if check.sheet not in ("net_adam", "comparison"))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu(lesson, case):
    inputs, out = case
    on_cuda = lesson.evaluate(inputs, torch.device("cuda"))
    for key, value in out.items():
        np.testing.assert_allclose(on_cuda[key], value, rtol=1e-9, atol=1e-12, err_msg=key)
