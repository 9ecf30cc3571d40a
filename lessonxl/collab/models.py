"""collab_filter's torch models and their training: embeddings looked up or as one-hot matmuls, the
dot-product model with and without biases and a sigmoid range, and the Solver's replacement (Adam on
every rated cell). Movie weights are movies x factors here, as nn.Embedding keeps them; the sheets
show them factors x movies (`model_from_sheet`, `sheet_weights` turn them round)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import optim
from ..errors import UsageError

Y_RANGE = (0.0, 5.5)
SOLVER_STEPS, SOLVER_LR = 500, 0.05


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


def fit(model: nn.Module, users, movies, ratings, steps: int = SOLVER_STEPS, lr: float = SOLVER_LR) -> torch.Tensor:
    """Train in place on all pairs at once (what Solver did): MSE, gradients by autograd, and the update
    of `optim.Adam` (torch.optim.Adam's twin, with its default betas and eps); the loss before each step."""
    params = list(model.parameters())
    hyper = {name: torch.tensor(value, dtype=torch.float64)
             for name, value in {"lr": lr, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}.items()}
    states = [{"m": torch.zeros_like(p), "v": torch.zeros_like(p)} for p in params]
    losses = []
    for t in range(1, steps + 1):
        loss = F.mse_loss(model(users, movies), ratings)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for i, (param, grad) in enumerate(zip(params, grads)):
                new, states[i] = optim.Adam.step(param, grad, states[i], t, **hyper)
                param.copy_(new)
        losses.append(loss.detach())
    return torch.stack(losses)


def train(ratings: torch.Tensor, factors: int, seed: int, bias: bool = True, y_range=None,
          **options) -> tuple[EmbeddingDot, torch.Tensor]:
    """A seeded model fitted to a crosstab's rated cells: the model and its loss per step."""
    weights = initial_weights(seed, *ratings.shape, factors)
    model = (EmbeddingDotBias(**weights, y_range=y_range) if bias
             else EmbeddingDot(weights["user_factors"], weights["movie_factors"]))
    return model, fit(model, *rated_pairs(ratings), **options)


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
        raise UsageError(f"{what} {ids.reshape(-1)[missing][0].item():g} is not in the crosstab")
    return hits.double().argmax(dim=1)
