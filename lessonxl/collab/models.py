"""collab_filter's torch models and their training: embeddings looked up or as one-hot matmuls, the
dot-product model with and without biases and a sigmoid range (fastai's EmbeddingDotBias), and the Solver's
replacement: the lesson's recipe (`Recipe`: fastai's collab_learner and fit_one_cycle, in plain torch) on the
ratings not held out. Movie weights are movies x factors here, as nn.Embedding keeps them; the sheets show
them factors x movies (`model_from_sheet`, `sheet_weights` turn them round)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import optim
from ..errors import LessonxlError

Y_RANGE = (0.0, 5.5)


def lookup(embedding: nn.Embedding, index: torch.Tensor, one_hot: bool = False) -> torch.Tensor:
    """Rows `index` of the embedding's weight: looked up, or as one-hot rows times the weight."""
    if one_hot:
        return F.one_hot(index, embedding.num_embeddings).to(embedding.weight.dtype) @ embedding.weight
    return embedding(index)


def sigmoid_range(x: torch.Tensor, lo, hi) -> torch.Tensor:
    """lo + (hi - lo) * sigmoid(x): any x lands inside (lo, hi)."""
    return lo + (hi - lo) * torch.sigmoid(x)


def _trainable(weight: torch.Tensor) -> nn.Embedding:
    return nn.Embedding.from_pretrained(weight.detach().clone(), freeze=False)


class EmbeddingDot(nn.Module):
    """prediction = user factors . movie factors; weights users x factors and movies x factors."""

    def __init__(self, user_factors: torch.Tensor, movie_factors: torch.Tensor):
        super().__init__()
        self.user_factors, self.movie_factors = _trainable(user_factors), _trainable(movie_factors)

    def activations(self, users, movies, one_hot: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        return lookup(self.user_factors, users, one_hot), lookup(self.movie_factors, movies, one_hot)

    def dot(self, users, movies, one_hot: bool = False) -> torch.Tensor:
        user, movie = self.activations(users, movies, one_hot)
        return (user * movie).sum(dim=1)

    def forward(self, users, movies, one_hot: bool = False) -> torch.Tensor:
        return self.dot(users, movies, one_hot)


class EmbeddingDotBias(EmbeddingDot):
    """The dot product plus a user bias and a movie bias, squashed into `y_range` when given."""

    def __init__(self, user_factors, movie_factors, user_bias, movie_bias, y_range=None):
        super().__init__(user_factors, movie_factors)
        self.user_bias = _trainable(user_bias.reshape(-1, 1))
        self.movie_bias = _trainable(movie_bias.reshape(-1, 1))
        self.y_range = y_range

    def forward(self, users, movies, one_hot: bool = False) -> torch.Tensor:
        x = (self.dot(users, movies, one_hot) + lookup(self.user_bias, users, one_hot)[:, 0]
             + lookup(self.movie_bias, movies, one_hot)[:, 0])
        return x if self.y_range is None else sigmoid_range(x, *self.y_range)


def all_pairs(n_users: int, n_movies: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (user, movie) index pair, row by row of the crosstab."""
    users, movies = torch.meshgrid(torch.arange(n_users, device=device),
                                   torch.arange(n_movies, device=device), indexing="ij")
    return users.flatten(), movies.flatten()


def rated_pairs(ratings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """User index, movie index and rating of every rated (non-NaN) cell, row by row."""
    users, movies = torch.nonzero(~torch.isnan(ratings), as_tuple=True)
    return users, movies, ratings[users, movies]



def initial_weights(seed: int, n_users: int, n_movies: int, factors: int) -> dict[str, torch.Tensor]:
    """Seeded starting weights: factors ~ U(0, 1) like the lesson's RAND(), biases 0."""
    gen = torch.Generator().manual_seed(seed)
    return {
        "user_factors": torch.rand(n_users, factors, generator=gen, dtype=torch.float64),
        "movie_factors": torch.rand(n_movies, factors, generator=gen, dtype=torch.float64),
        "user_bias": torch.zeros(n_users, dtype=torch.float64),
        "movie_bias": torch.zeros(n_movies, dtype=torch.float64),
    }


@dataclass(frozen=True)
class Recipe:
    """How the lesson trains its collab model, in plain torch: fastai's `collab_learner(dls, n_factors,
    y_range=(0, 5.5), wd=0.1)` then `learn.fit_one_cycle(epochs, lr_max)`. Embeddings (biases too) start
    N(0, 0.01), truncated at 2 standard deviations as fastai's `trunc_normal_` does; the loss is the mean
    squared error of a shuffled minibatch; the optimizer Adam with decoupled weight decay
    (`torch.optim.AdamW`, fastai's default `Adam(betas=(0.9, 0.99), eps=1e-5)` with `true_wd`), every
    weight decayed, biases included; the schedule one cycle per batch (`torch.optim.lr_scheduler.
    OneCycleLR`: lr up from lr / div to lr over the first pct_start of the steps, then down to lr /
    div_final, cosine both ways, β1 down from 0.95 to 0.85 and back), as fastai's `fit_one_cycle`."""

    epochs: int = 5
    lr: float = 5e-3
    wd: float = 0.1
    bs: int = 64
    pct_start: float = 0.25
    div: float = 25.0
    div_final: float = 1e5
    moms: tuple[float, float] = (0.95, 0.85)
    beta2: float = 0.99
    eps: float = 1e-5
    std: float = 0.01

    def steps(self, n: int) -> int:
        """The optimizer steps of training on `n` ratings: every batch of every epoch (the last batch of
        an epoch may be short)."""
        return self.epochs * math.ceil(n / self.bs)


#: fit_one_cycle(5, 5e-3) with wd=0.1: the lesson's own run on MovieLens 100k.
LESSON_RECIPE = Recipe()


def lesson_weights(seed: int, n_users: int, n_movies: int, factors: int, std: float = 0.01
                   ) -> dict[str, torch.Tensor]:
    """Seeded starting weights as fastai draws them: N(0, std) truncated at 2 std (`trunc_normal_`:
    normal, fmod 2, times std), user factors, movie factors, user bias, movie bias in that order."""
    gen = torch.Generator().manual_seed(seed)

    def draw(*shape) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64).fmod(2) * std
    return {"user_factors": draw(n_users, factors), "movie_factors": draw(n_movies, factors),
            "user_bias": draw(n_users), "movie_bias": draw(n_movies)}


def one_cycle(recipe: Recipe, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The learning rate and β1 of each of `steps` optimizer steps: OneCycleLR's (`optim.OneCycle`, which
    graddesc's onecycle sheet writes in cells), peak lr `recipe.lr`."""
    given = {name: torch.tensor(value, dtype=torch.float64) for name, value in {
        "lr": recipe.lr, "pct_start": recipe.pct_start, "div_factor": recipe.div,
        "final_div_factor": recipe.div_final / recipe.div, "base_momentum": recipe.moms[1],
        "max_momentum": recipe.moms[0]}.items()}
    schedule = optim.OneCycle().values(given, steps, 1)
    return schedule["lr_t"][:, 0], schedule["beta1"][:, 0]


def fit_one_cycle(model: nn.Module, users, movies, ratings, recipe: Recipe = LESSON_RECIPE, seed: int = 0,
                  torch_optim: bool = False) -> torch.Tensor:
    """Train `model` in place on the pairs (users[i], movies[i]) -> ratings[i] by `recipe`, each epoch in
    minibatches shuffled by a generator seeded with `seed`; the mean training loss of each epoch.

    The update is torch.optim.AdamW's, stepped by OneCycleLR (tests/test_collab.py holds them equal): written
    out (`_written_adamw`), or with `torch_optim` torch.optim's own, fused (`_torch_adamw`: a few times faster
    per step, for the seconds that importing torch.optim's machinery costs once; the full-data fit)."""
    steps = recipe.steps(len(ratings))
    update = (_torch_adamw if torch_optim else _written_adamw)(model, recipe, steps)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(recipe.epochs):
        order, total = torch.randperm(len(ratings), generator=gen), 0.0
        for batch in order.split(recipe.bs):
            loss = F.mse_loss(model(users[batch], movies[batch]), ratings[batch])
            update(loss)
            total += loss.item() * len(batch)
        losses.append(total / len(ratings))
    return torch.tensor(losses, dtype=torch.float64)


def _written_adamw(model: nn.Module, recipe: Recipe, steps: int):
    """The update of each step, written out: Adam's step (`optim.Adam`, with this step's lr and β1 from
    `one_cycle`) minus lr x wd x the weight. No torch.optim, whose first optimizer imports torch._dynamo:
    seconds at every generate."""
    params = list(model.parameters())
    lrs, beta1s = one_cycle(recipe, steps)
    beta2, eps = (torch.tensor(value, dtype=torch.float64) for value in (recipe.beta2, recipe.eps))
    # Adam works weight by weight: one step on all the weights laid end to end is the same step
    flat = torch.cat([param.detach().reshape(-1) for param in params])
    state = {"m": torch.zeros_like(flat), "v": torch.zeros_like(flat)}
    sizes = [param.numel() for param in params]
    t = 0

    def update(loss: torch.Tensor) -> None:
        nonlocal flat, state, t
        grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])
        lr, beta1 = lrs[t], beta1s[t]
        t += 1
        new, state = optim.Adam.step(flat, grad, state, t, lr=lr, beta1=beta1, beta2=beta2, eps=eps)
        flat = new - lr * recipe.wd * flat
        with torch.no_grad():
            for param, value in zip(params, flat.split(sizes)):
                param.copy_(value.reshape(param.shape))
    return update


def _torch_adamw(model: nn.Module, recipe: Recipe, steps: int):
    """The update of each step by torch.optim.AdamW (fused) and OneCycleLR, with the recipe's settings."""
    adamw = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(recipe.moms[0], recipe.beta2),
                              eps=recipe.eps, weight_decay=recipe.wd, fused=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        adamw, max_lr=recipe.lr, total_steps=steps, pct_start=recipe.pct_start, div_factor=recipe.div,
        final_div_factor=recipe.div_final / recipe.div, base_momentum=recipe.moms[1], max_momentum=recipe.moms[0])

    def update(loss: torch.Tensor) -> None:
        adamw.zero_grad()
        loss.backward()
        adamw.step()
        schedule.step()
    return update


def new_model(n_users: int, n_movies: int, factors: int, seed: int, bias: bool = True, y_range=None,
              std: float = 0.01) -> EmbeddingDot:
    """An untrained model, its weights drawn as fastai draws them (`lesson_weights`)."""
    weights = lesson_weights(seed, n_users, n_movies, factors, std)
    if not bias:
        return EmbeddingDot(weights["user_factors"], weights["movie_factors"])
    return EmbeddingDotBias(**weights, y_range=y_range)


def train(ratings: torch.Tensor, factors: int, seed: int, bias: bool = True, y_range=None,
          recipe: Recipe = LESSON_RECIPE, held_out: torch.Tensor | None = None) -> tuple[EmbeddingDot, torch.Tensor]:
    """A seeded model trained the lesson's way on a crosstab's rated cells, those `held_out` (nonzero; blank,
    NaN, is 0) left out: the model and its training loss per epoch."""
    train_cells = ~torch.isnan(ratings)
    if held_out is not None:
        train_cells &= torch.nan_to_num(held_out) == 0
    users, movies = torch.nonzero(train_cells, as_tuple=True)
    model = new_model(*ratings.shape, factors, seed, bias, y_range, recipe.std)
    return model, fit_one_cycle(model, users, movies, ratings[users, movies], recipe, seed)


def held_out_cells(ratings: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A seeded validation split of the crosstab's rated cells: 1 where a rated cell is held out (round(share
    x rated) of them, drawn without replacement), NaN (a blank cell: trained on) elsewhere."""
    rated = np.flatnonzero(~np.isnan(ratings))
    gen = torch.Generator().manual_seed(seed)
    picked = rated[torch.randperm(len(rated), generator=gen)[:round(share * len(rated))].numpy()]
    mask = np.full(ratings.shape, np.nan)
    mask.flat[np.sort(picked)] = 1.0
    return mask


def model_from_sheet(user_factors, movie_factors, user_bias=None, movie_bias=None,
                     y_range=None) -> EmbeddingDot:
    """A model from weights as the sheet shows them (movie weights across the top)."""
    if user_bias is None:
        return EmbeddingDot(user_factors, movie_factors.T)
    return EmbeddingDotBias(user_factors, movie_factors.T, user_bias, movie_bias.T, y_range)


def sheet_weights(model: EmbeddingDot, grad: bool = False) -> dict[str, torch.Tensor]:
    """Each embedding's weight (or gradient) as the sheet shows it: users down, movies across."""
    out = {}
    for name, embedding in model.named_children():
        tensor = (embedding.weight.grad if grad else embedding.weight).detach().clone()
        out[name] = tensor.T if name.startswith("movie") else tensor
    return out


def match_ids(ids: torch.Tensor, table: torch.Tensor, what: str) -> torch.Tensor:
    """0-based position of each id in the crosstab's ids `table`: the first exact match, as
    MATCH(id, ids, 0) finds it."""
    hits = ids.reshape(-1, 1) == table.reshape(1, -1)
    missing = ~hits.any(dim=1)
    if missing.any():
        raise LessonxlError(f"{what} {ids.reshape(-1)[missing][0].item():g} is not in the crosstab")
    return hits.double().argmax(dim=1)
