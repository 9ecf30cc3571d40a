"""regularization: the sheet's arithmetic (as the module writes it) equals torch.nn, autograd, torch.optim."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lessonxl.optim import Rule, decoupled, with_l2
from lessonxl.regularization import GROUPS, NET, NET_PARAMS, WD_EPOCHS, WD_SHEETS, Regularization
from lessonxl.sheets import as_grid

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def lesson():
    return Regularization()


@pytest.fixture(scope="module")
def case(lesson):
    inputs = {k: as_grid(v) for k, v in lesson.default_inputs(0).items()}
    return inputs, lesson.evaluate(inputs, CPU)


def tensor(grid) -> torch.Tensor:
    return torch.as_tensor(np.asarray(grid, dtype=np.float64))


def close(actual, expected, tol: float = 1e-12) -> None:
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=tol, atol=tol)


# l2_vs_wd_sgd, l2_vs_wd_adam ---------------------------------------------------------------------

def torch_online(inputs, sheet: str, rule: type[Rule], l2: bool) -> np.ndarray:
    """[intercept, slope] after each online step with `rule`'s torch.optim twin (its hyperparameters
    from the sheet).

    `l2` adds wd (a² + b²) to every sample's loss and lets autograd differentiate it.
    """
    value = {name: float(inputs[f"{sheet}!{name}"][0, 0])
             for name in ("intercept_start", "slope_start", "wd", *rule.hyper)}
    p = torch.tensor([value["intercept_start"], value["slope_start"]], dtype=torch.float64,
                     requires_grad=True)
    optimizer = rule.torch_optimizer([p], **{name: value[name] for name in rule.hyper})
    xs = np.tile(inputs[f"{sheet}!data_x"].ravel(), WD_EPOCHS)
    ys = np.tile(inputs[f"{sheet}!data_y"].ravel(), WD_EPOCHS)
    trajectory = []
    for x, y in zip(xs, ys):
        loss = (p[1] * x + p[0] - y) ** 2 + (value["wd"] * (p ** 2).sum() if l2 else 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        trajectory.append(p.detach().clone().numpy())
    return np.array(trajectory)


def sheet_trajectory(out, sheet: str, variant: str) -> np.ndarray:
    return np.hstack([out[f"{sheet}!{variant}_intercept"], out[f"{sheet}!{variant}_slope"]])


@pytest.mark.parametrize("sheet", [spec.name for spec in WD_SHEETS])
def test_l2_equals_autograd_l2_and_torch_weight_decay_and_decoupled_equals_its_torch_twin(case, sheet):
    """L2: the plain twin on the loss plus wd (a² + b²), and the twin with weight_decay 2 wd (SGD, Adam);
    decoupled: its twin (SGD with weight_decay 2 wd, AdamW); test_optim pins which twin is which."""
    inputs, out = case
    rule = next(spec.rule for spec in WD_SHEETS if spec.name == sheet)
    close(sheet_trajectory(out, sheet, "l2"), torch_online(inputs, sheet, rule, l2=True))
    close(sheet_trajectory(out, sheet, "l2"), torch_online(inputs, sheet, with_l2(rule), l2=False))
    close(sheet_trajectory(out, sheet, "wd"), torch_online(inputs, sheet, decoupled(rule), l2=False))


def test_l2_and_weight_decay_agree_for_sgd_but_not_for_adam(case):
    _, out = case
    sgd, adam = out["l2_vs_wd_sgd!max_diff"][0, 0], out["l2_vs_wd_adam!max_diff"][0, 0]
    print(f"max |L2 - weight decay|: SGD {sgd:.3e}, Adam vs AdamW {adam:.3e}")
    assert sgd < 1e-13
    assert adam > 0.1
    sgd_l2, sgd_wd = (sheet_trajectory(out, "l2_vs_wd_sgd", v) for v in ("l2", "wd"))
    assert np.abs(sgd_l2 - sgd_wd).max() == sgd


# two_layer_net ------------------------------------------------------------------------------------

def torch_net(inputs) -> tuple[nn.Sequential, torch.Tensor, torch.Tensor]:
    """nn.Sequential(Linear, ReLU, Linear) holding the sheet's parameters (its weights are in x out)."""
    p = {name: tensor(inputs[f"{NET}!{name}"]) for name in NET_PARAMS}
    net = nn.Sequential(nn.Linear(p["weights_1"].shape[0], p["weights_1"].shape[1]), nn.ReLU(),
                        nn.Linear(p["weights_2"].shape[0], p["weights_2"].shape[1])).double()
    with torch.no_grad():
        net[0].weight.copy_(p["weights_1"].T)
        net[0].bias.copy_(p["bias_1"].ravel())
        net[2].weight.copy_(p["weights_2"].T)
        net[2].bias.copy_(p["bias_2"].ravel())
    x = tensor(inputs[f"{NET}!features"])
    target = tensor(inputs[f"{NET}!target"]).ravel().long() - 1
    return net, x, target


def net_params(net: nn.Sequential) -> dict[str, torch.Tensor]:
    """The net's parameters in the sheet's orientation."""
    return {"weights_1": net[0].weight.T, "bias_1": net[0].bias.reshape(1, -1),
            "weights_2": net[2].weight.T, "bias_2": net[2].bias.reshape(1, -1)}


def test_forward_pass_equals_nn_sequential_and_cross_entropy(case):
    inputs, out = case
    net, x, target = torch_net(inputs)
    with torch.no_grad():
        close(out[f"{NET}!relu_1"], net[1](net[0](x)))
        close(out[f"{NET}!logits"], net(x))
        close(out[f"{NET}!probs"], torch.softmax(net(x), dim=1))
        close(out[f"{NET}!loss"], F.cross_entropy(net(x), target, reduction="none").reshape(-1, 1))
        close(out[f"{NET}!mean_loss"][0, 0], F.cross_entropy(net(x), target))


def test_backward_pass_equals_autograd(case):
    inputs, out = case
    net, x, target = torch_net(inputs)
    F.cross_entropy(net(x), target).backward()
    grads = {"weights_1": net[0].weight.grad.T, "bias_1": net[0].bias.grad.reshape(1, -1),
             "weights_2": net[2].weight.grad.T, "bias_2": net[2].bias.grad.reshape(1, -1)}
    for name, grad in grads.items():
        close(out[f"{NET}!grad_{name}"], grad)


def test_sgd_step_with_weight_decay_equals_torch_optim_and_lowers_the_loss(case):
    inputs, out = case
    net, x, target = torch_net(inputs)
    lr, wd = (float(inputs[f"{NET}!{name}"][0, 0]) for name in ("lr", "wd"))
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, weight_decay=wd)
    F.cross_entropy(net(x), target).backward()
    optimizer.step()
    for name, value in net_params(net).items():
        close(out[f"{NET}!new_{name}"], value.detach())
    with torch.no_grad():
        close(out[f"{NET}!new_mean_loss"][0, 0], F.cross_entropy(net(x), target))
    assert out[f"{NET}!new_mean_loss"][0, 0] < out[f"{NET}!mean_loss"][0, 0]


def test_default_net_has_dead_units_and_no_pre_activation_at_the_relu_kink(case):
    _, out = case
    affine = out[f"{NET}!affine_1"]
    assert (affine < 0).any() and (affine > 0).any()
    assert np.abs(affine).min() > 1e-3, "a pre-activation at 0 would make ReLU's gradient engine-dependent"


# smoothed_loss ------------------------------------------------------------------------------------

def test_bias_corrected_ewma_equals_fastai_smoothen_value(case):
    inputs, out = case
    beta = float(inputs["smoothed_loss!beta"][0, 0])
    mov_avg, raw, smoothed = 0.0, [], []
    for n, value in enumerate(inputs["smoothed_loss!raw_loss"].ravel(), start=1):
        mov_avg = beta * mov_avg + (1 - beta) * float(value)  # fastai's SmoothenValue.add_value
        raw.append(mov_avg)
        smoothed.append(mov_avg / (1 - beta ** n))
    close(out["smoothed_loss!ewma"].ravel(), raw)
    close(out["smoothed_loss!smoothed"].ravel(), smoothed)
    close(out["smoothed_loss!smoothed"][0, 0], inputs["smoothed_loss!raw_loss"][0, 0])


def test_loss_series_comes_from_a_seeded_training_run_that_learns(lesson):
    first, again = lesson.default_inputs(0), lesson.default_inputs(0)
    loss = first["smoothed_loss!raw_loss"].ravel()
    np.testing.assert_array_equal(loss, again["smoothed_loss!raw_loss"].ravel())
    assert loss[:10].mean() > loss[-10:].mean() + 0.1
    assert np.abs(np.diff(loss)).mean() > 0.05, "the series should be noisy"


# discriminative_lr --------------------------------------------------------------------------------

def even_mults(start: float, stop: float, n: int) -> np.ndarray:
    """fastai's even_mults: n values from start to stop with equal ratios."""
    step = (stop / start) ** (1 / (n - 1))
    return np.array([start * step ** i for i in range(n)])


def lr_range(lr, n: int) -> np.ndarray:
    """fastai's Learner.lr_range, with the lesson's slice(hi) rule (earlier groups hi/3)."""
    if not isinstance(lr, slice):
        return np.full(n, lr)
    if lr.start:
        return even_mults(lr.start, lr.stop, n)
    return np.array([lr.stop / 3] * (n - 1) + [lr.stop])


def discriminative(lesson, groups: int, lr: float, lo: float, hi: float, frozen: int):
    inputs = {k: as_grid(v) for k, v in lesson.default_inputs(0).items()}
    inputs["discriminative_lr!groups"] = np.array([[f"group {i}"] for i in range(groups)], dtype=object)
    for name, value in (("lr", lr), ("lo", lo), ("hi", hi), ("frozen_groups", frozen)):
        inputs[f"discriminative_lr!{name}"] = np.array([[value]], dtype=float)
    return lesson.evaluate(inputs, CPU)


@pytest.mark.parametrize("groups, lr, lo, hi, frozen", [
    (len(GROUPS), 1e-3, 1e-5, 1e-3, 2), (5, 3e-2, 1e-6, 1e-2, 1), (2, 1e-4, 1e-4, 1e-4, 0)])
def test_group_learning_rates_follow_fastai(lesson, groups, lr, lo, hi, frozen):
    out = discriminative(lesson, groups, lr, lo, hi, frozen)
    close(out["discriminative_lr!lr_number"].ravel(), lr_range(lr, groups), 1e-15)
    close(out["discriminative_lr!lr_slice_hi"].ravel(), lr_range(slice(hi), groups), 1e-15)
    spread = lr_range(slice(lo, hi), groups)
    close(out["discriminative_lr!lr_slice_lo_hi"].ravel(), spread, 1e-14)
    close(out["discriminative_lr!lr_frozen"].ravel(), np.where(np.arange(groups) < frozen, 0, spread), 1e-14)
    assert out["discriminative_lr!n_groups"][0, 0] == groups


def test_three_groups_give_the_lessons_rates(case):
    _, out = case
    close(out["discriminative_lr!lr_slice_lo_hi"].ravel(), [1e-5, 1e-4, 1e-3], 1e-14)
    np.testing.assert_array_equal(out["discriminative_lr!lr_frozen"].ravel()[:-1], 0)


# every sheet ---------------------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu(lesson, case):
    inputs, out = case
    on_cuda = lesson.evaluate(inputs, torch.device("cuda"))
    assert on_cuda.keys() == out.keys()
    for key, value in out.items():
        # 1e-12 of the quantity's largest entry: the GPU rounds pow and matmul differently, and an
        # entry near a zero crossing (an error, x times an error) is small only next to that scale.
        np.testing.assert_allclose(on_cuda[key], value, rtol=0, atol=1e-12 * np.abs(value).max(), err_msg=key)
