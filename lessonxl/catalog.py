"""What the command line knows before it starts any work, without importing torch, numpy or the lessons:
the workbooks by name, their table of contents (`lessonxl list`, `--help`) and the options' defaults.

registry.LESSONS holds the lessons themselves, in this order; tests/test_catalog.py keeps the two the
same and prints the entry to paste here when a lesson's title or sheets change."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .errors import LessonxlError

DEFAULT_FOLDER = Path("workbooks")  # where `generate` writes
DEFAULT_TOL = 1e-9                  # verify's absolute and relative tolerance (the rule: compare.py)

#: workbook name: (title, {sheet: what it teaches}), as `lessonxl list` prints them
CONTENTS = {
    'collab_filter': ('Collaborative filtering: embeddings as one-hot matmuls and lookups, trained without Solver', {
        'notes': 'latent factors, what to look at, what to try',
        'dotprod': 'prediction = user factors . movie factors (MMULT); RMSE over rated cells only',
        'movielens_1hot': 'the rated pairs: one-hot rows times the factor matrices (MMULT)',
        'movielens_emb': 'the same pairs: factors looked up with INDEX (and OFFSET); the same RMSE',
        'bias': 'the dot product plus a user bias and a movie bias',
        'bias_yrange': 'the bias model squashed into a range: lo + (hi - lo) * sigmoid',
        'gd_steps': ("gradient descent unrolled in formulas, with weight decay and held-out ratings, checked "
                     "against autograd and torch.optim.SGD"),
        'interpret': ("movies ranked by learned bias; principal components of the movie factors by power "
                      "iteration (repeated squaring) in formulas"),
        'word_emb': 'a sentence as word ids (MATCH) and as vectors (INDEX): nn.Embedding',
    }),
    'graddesc': ('Online gradient descent on y = a·x + b: SGD, momentum, RMSProp, Adam, annealing, one-cycle', {
        'notes': 'what the workbook shows and what to try',
        'data': 'the x values, the true intercept and slope, y by formula',
        'basic': 'Plain SGD, batch size one: b ← b − lr·de/db, a ← a − lr·de/da',
        'momentum': 'SGD with momentum: step along an average of the gradients',
        'rmsprop': 'RMSProp: divide each step by the root of an average of squared gradients',
        'rmsprop_lesson': "The lesson's RMSProp (not torch's): divide by the previous average, no eps",
        'adam': 'Adam: momentum and RMSProp together',
        'adam_lesson': "The lesson's Adam (not torch's): no bias correction, no eps",
        'adam_annealed': 'Adam with learning-rate annealing: a cosine schedule over the epochs',
        'onecycle': 'Adam with the one-cycle schedule: lr up then down, β1 down then up',
        'summary': "every optimizer's final intercept, slope and last-epoch RMSE",
    }),
    'entropy_example': ('Softmax, binary and multi-class cross-entropy, with LN as torch uses', {
        'notes': 'what the workbook shows and what to try',
        'softmax': 'softmax = exp(z) / sum exp(z), rows sum to 1; sigmoid for a binary problem',
        'binary_xent': 'binary cross-entropy as a formula and as an IF lookup; LOG (base 10) vs LN',
        'multiclass_xent': 'cross-entropy as sum of one-hot x -log p and as an exact MATCH lookup',
    }),
    'regularization': ('Weight decay vs L2, AdamW, smoothed loss, discriminative learning rates, a two-layer net', {
        'notes': 'what the workbook shows and what to try',
        'l2_vs_wd_sgd': 'SGD with L2 in the loss and with weight decay: the same trajectory',
        'l2_vs_wd_adam': 'Adam with L2 in the loss (torch Adam) and with decoupled decay (AdamW): different',
        'smoothed_loss': 'a noisy training loss, its EWMA and the bias-corrected EWMA (/(1 - beta^t))',
        'discriminative_lr': 'learning rate per layer group for lr, slice(hi), slice(lo, hi), frozen groups',
        'two_layer_net': 'affine-ReLU-affine: forward by MMULT, backward as spreadsheet math, one SGD step with wd',
    }),
    'mnist_sgd': ('The MNIST notebook: minibatch SGD with weight decay, logistic regression, a 2-layer net, Adam', {
        'notes': 'what the workbook shows and what to try',
        'digits': 'the images as rows of 64 pixels / 16 and their labels; one drawn as 8 x 8 by INDEX',
        'logistic': 'logistic regression 64 -> 10: minibatch SGD with wd, loss per step, held-out scores',
        'net_sgd': 'the net 64 -> 8 -> 10 with ReLU: backward layer by layer, the same loop',
        'net_adam': "the net trained by Adam (torch.optim.Adam) from net_sgd's starting point",
        'comparison': "every run's last loss, held-out loss and accuracy; SGD beside Adam, charted",
    }),
}
NAMES = tuple(CONTENTS)


def known(name: str) -> str:
    """The workbook `name` names (its stem, or its file name), or a LessonxlError listing them."""
    stem = name.removesuffix(".xlsx")
    if stem not in NAMES:
        raise LessonxlError(f"unknown workbook {name!r}: choose from {', '.join(NAMES)}")
    return stem


def recognise(sheet_names: Iterable[str], shown: str) -> None:
    """Refuse the file `shown` when it has none of the sheets (the notes aside) of any workbook: it was not
    made by lessonxl. Said before LibreOffice starts; `registry.by_sheets` then finds which workbook it is."""
    present = set(sheet_names) - {"notes"}
    if not any(present.intersection(sheets) for _, sheets in CONTENTS.values()):
        examples = [sheet for sheet in CONTENTS[NAMES[0]][1] if sheet != "notes"][:3]
        raise LessonxlError(f"{shown}: was not made by lessonxl (it has none of the sheets of its workbooks, such "
                            f"as {', '.join(examples)})")


def check(names: Iterable[str]) -> None:
    """Refuse the first name that is no workbook's."""
    for name in names:
        known(name)
