"""entropy_example: the sheet's arithmetic (as the module writes it) equals torch's own functions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lessonxl.entropy import CLASSES, Entropy, binary_losses, softmax_parts
from lessonxl.errors import LessonxlError

from conftest import CPU, default_grids, tensor


@pytest.fixture(scope="module")
def case():
    lesson = Entropy()
    inputs = default_grids(lesson)
    return inputs, lesson.evaluate(inputs, CPU)


def test_softmax_equals_torch_softmax_and_rows_sum_to_one():
    logits = torch.randn(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _, _, probs = softmax_parts(logits)
    torch.testing.assert_close(probs, torch.softmax(logits, dim=1), rtol=0, atol=1e-15)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(7, dtype=torch.float64))


def test_sheet_softmax_and_sigmoid_equal_torch(case):
    inputs, out = case
    logits, z = tensor(inputs["softmax!logits"]), tensor(inputs["softmax!binary_logit"])
    np.testing.assert_allclose(out["softmax!probs"], torch.softmax(logits, dim=1), rtol=1e-14)
    np.testing.assert_allclose(out["softmax!sigmoid"], torch.sigmoid(z), rtol=1e-14)
    pair = torch.cat([z, torch.zeros_like(z)], dim=1)
    np.testing.assert_allclose(out["softmax!softmax_z_0"], torch.softmax(pair, dim=1)[:, :1], rtol=1e-14)


def test_binary_cross_entropy_both_forms_equal_torch(case):
    inputs, out = case
    y, p = tensor(inputs["binary_xent!labels"]), tensor(inputs["binary_xent!predicted"])
    expected = F.binary_cross_entropy(p, y, reduction="none")
    np.testing.assert_allclose(out["binary_xent!loss"], expected, rtol=1e-14)
    np.testing.assert_allclose(out["binary_xent!loss_if"], expected, rtol=1e-14)
    np.testing.assert_allclose(out["binary_xent!mean_loss"][0, 0], F.binary_cross_entropy(p, y), rtol=1e-14)
    np.testing.assert_allclose(out["binary_xent!loss_log10"], expected / np.log(10), rtol=1e-14)


def test_binary_forms_agree_for_random_labels():
    gen = torch.Generator().manual_seed(3)
    y = torch.randint(2, (50, 1), generator=gen).double()
    p = torch.rand(50, 1, generator=gen, dtype=torch.float64).clamp(0.01, 0.99)
    formula, picked = binary_losses(y, p)
    torch.testing.assert_close(formula, picked, rtol=1e-15, atol=0)


def test_multiclass_cross_entropy_equals_log_softmax_nll_and_cross_entropy(case):
    inputs, out = case
    logits = tensor(inputs["multiclass_xent!logits"])
    target = torch.tensor([CLASSES.index(t) for t in np.asarray(inputs["multiclass_xent!target"]).ravel()])
    np.testing.assert_allclose(out["multiclass_xent!log_probs"], F.log_softmax(logits, dim=1), rtol=1e-13)
    np.testing.assert_allclose(out["multiclass_xent!one_hot"], F.one_hot(target, len(CLASSES)))
    per_example = F.cross_entropy(logits, target, reduction="none").reshape(-1, 1)
    np.testing.assert_allclose(out["multiclass_xent!loss_one_hot"], per_example, rtol=1e-13)
    np.testing.assert_allclose(out["multiclass_xent!loss_lookup"], per_example, rtol=1e-13)
    mean = F.cross_entropy(logits, target)
    np.testing.assert_allclose(out["multiclass_xent!mean_loss_lookup"][0, 0], mean, rtol=1e-13)
    np.testing.assert_allclose(out["multiclass_xent!mean_loss_one_hot"][0, 0],
                               F.nll_loss(F.log_softmax(logits, dim=1), target), rtol=1e-13)


def test_target_index_counts_from_one_like_match(case):
    inputs, out = case
    names = list(np.asarray(inputs["multiclass_xent!classes"]).ravel())
    expected = [names.index(t) + 1 for t in np.asarray(inputs["multiclass_xent!target"]).ravel()]
    assert out["multiclass_xent!target_index"].ravel().tolist() == expected


def test_an_unknown_target_label_is_a_usage_error(case):
    inputs, _ = case
    inputs = {**inputs, "multiclass_xent!target": np.array([["cat"]] * 7 + [["horse"]], dtype=object)}
    with pytest.raises(LessonxlError, match='multiclass_xent: the target "horse" is not one of cat, dog'):
        Entropy().evaluate(inputs, CPU)


def test_same_seed_same_inputs_other_seed_other_inputs():
    first, again, other = (Entropy().default_inputs(s) for s in (0, 0, 1))
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(first["softmax!logits"], other["softmax!logits"])
