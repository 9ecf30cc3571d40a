"""Collaborative filtering (collab_filter.xlsx): torch models and sheet layout side by side.

Embeddings as one-hot matmuls and as lookups, the dot-product model with and without biases and
with a sigmoid range, training in torch instead of Excel's Solver, and gradient descent unrolled
in formulas. Movie factors are shown factors x movies, across the top of the crosstab, as in the
lesson; torch keeps them movies x factors, as nn.Embedding does.

The torch models and their training come first; then each sheet is a `SheetSpec` whose `compute`
(torch) and `layout` (formulas) of the same quantities stand side by side.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import optim
from .errors import UsageError
from .lesson import Lesson, SheetSpec, exact_match
from .movielens import (load_movies, load_ratings, synthetic_movies, synthetic_ratings, titles_and_genres,
                        top_crosstab)
from .values import as_grid

if TYPE_CHECKING:  # the file writer: needed to generate, not to verify
    from .sheets import Block, Cursor, Sheet

Y_RANGE = (0.0, 5.5)
GD_STEPS, GD_LR = 12, 1.0
SOLVER_STEPS, SOLVER_LR = 500, 0.05
VOCAB = ("the", "a", "cat", "dog", "sat", "ran", "on", "mat", "rug", "fast")
SENTENCE = ("the", "cat", "sat", "on", "the", "mat")
WORD_DIMS = 4
POWER_STEPS = 150  # power-iteration steps per component (see test_interpret for why enough)
RANKED = 5        # movies shown at each end of a ranking
#: The most cells the one-hot sheet (movielens_1hot) may hold: its pairs x (users + movies), which for
#: all rated pairs grows as the cube of the crosstab's side. Measured on a busy 2-core machine, headless
#: LibreOffice opens and recalculates dotprod and the one-hot sheet alone in 5.6-6.2 s at 353k cells
#: (60 x 60), 6.3-7.5 s at 563k (70 x 70), then 30-53 s at 1.62M (100 x 100). Above the cap the sheet
#: shows the first pairs whose one-hot rows fit (`OneHotCap`) and says so; movielens_emb keeps them
#: all. The built-in data shows every pair up to about 65 x 65 users x movies. With the sheet capped
#: nothing else needs refusing at the sizes asked for: the whole workbook (built-in data, 5 factors)
#: is 1.07M formula cells, 10 MB at 100 x 100 (generate 49 s, verify 17 s, 0.75 GB) and 2.58M
#: cells, 32 MB at 200 x 200 (generate 88 s, verify 54 s, 1.8 GB), gd_steps (26 x users x movies)
#: and movielens_emb (26 x pairs) the largest sheets.
MAX_ONE_HOT_CELLS = 500_000
#: The largest crosstab (users x movies) and factor count a workbook is made for. The other sheets grow
#: as users x movies and as factors x (users + movies) per model and gd_steps' step: 200 x 200 is the
#: largest size measured (2.58M formula cells, 32 MB; README, "collab_filter at scale"), and 50 factors
#: fastai's default for collab_learner. Beyond them generate refuses, in one line, rather than spend
#: minutes on a file spreadsheets hardly open.
MAX_CROSSTAB_CELLS = 200 * 200
MAX_FACTORS = 50
RATINGS_CAPTION = "ratings (blank = not rated)"


# ---------------------------------------------------------------- torch: models and training

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


def power_iteration(matrix: torch.Tensor, start: torch.Tensor, steps: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """`steps` power-iteration steps from the column `start`, as the sheet unrolls them: each step's
    product w = matrix x v and its normalised v = w / |w|, one column per step."""
    products, vectors = [], []
    v = start[:, 0]
    for _ in range(steps):
        w = v @ matrix  # the sheet's SUMPRODUCT(matrix column r, v): matrix is symmetric
        v = w / w.square().sum().sqrt()
        products.append(w)
        vectors.append(v)
    return torch.stack(products, 1), torch.stack(vectors, 1)


def fix_sign(v: torch.Tensor) -> torch.Tensor:
    """The vector or its negative, whichever has its largest-magnitude entry positive (on a tie
    between +x and -x, the vector as it is): IF(MAX(v) >= -MIN(v), 1, -1) * v."""
    return v * torch.where(v.max() >= -v.min(), 1.0, -1.0).to(v.dtype)


def ranking(values: torch.Tensor, movie_ids: torch.Tensor, n: int) -> tuple[torch.Tensor, ...]:
    """The n largest then the n smallest of a column (LARGE, SMALL), the 1-based position of each
    one's first occurrence (MATCH type 0) and that movie's id (INDEX): three columns of 2n."""
    column = values[:, 0]
    ordered = column.sort(descending=True).values
    picked = torch.cat([ordered[:n], ordered.flip(0)[:n]])
    hits = picked[:, None] == column[None, :]
    found = hits.any(dim=1)
    first = hits.to(column.dtype).argmax(dim=1)
    nan = torch.full_like(picked, torch.nan)
    position = torch.where(found, (first + 1).to(column.dtype), nan)
    ids = torch.where(found, movie_ids.reshape(-1)[first], nan)
    return picked.reshape(-1, 1), position.reshape(-1, 1), ids.reshape(-1, 1)


def principal_components(centred: torch.Tensor, start: torch.Tensor, steps: int = POWER_STEPS
                         ) -> dict[str, torch.Tensor]:
    """The first two principal components of the rows of `centred`, as the sheet computes them:
    covariance, power iteration, sign fixed, variance (Rayleigh quotient), deflation, again. The
    components are the rows of `pc_loadings`."""
    covariance = centred.T @ centred / (centred.shape[0] - 1)
    out = {"covariance": covariance}
    matrix, loadings, variances = covariance, [], []
    for pc in (1, 2):
        if pc == 2:
            matrix = covariance - variances[0] * loadings[0].T @ loadings[0]
            out["deflated"] = matrix
        out[f"pc{pc}_products"], out[f"pc{pc}_steps"] = power_iteration(matrix, start, steps)
        loadings.append(fix_sign(out[f"pc{pc}_steps"][:, -1:]).T)
        variances.append(loadings[-1] @ matrix @ loadings[-1].T)
    out["pc_loadings"] = torch.cat(loadings, dim=0)
    out["pc_variance"] = torch.cat(variances, dim=0)
    out["variance_share"] = out["pc_variance"] / (centred.square().sum() / (centred.shape[0] - 1))
    out["pc_scores"] = centred @ out["pc_loadings"].T
    return out


def ranked_count(movies: int) -> int:
    """How many movies each ranking shows at the top and at the bottom."""
    return min(RANKED, movies // 2)


# ---------------------------------------------------------------- the sheets: layout helpers

def _id_labels(ids: np.ndarray) -> list[str]:
    """Ids as row or column labels: 7 for 7.0."""
    return [f"{v:g}" for v in np.asarray(ids, dtype=np.float64).ravel()]


def _factor_names(factors: int) -> list[str]:
    return [f"factor {i + 1}" for i in range(factors)]


def _crosstab_labels(sheet: Sheet) -> tuple[list[str], list[str]]:
    """The crosstab's user ids and movie ids (inputs of `dotprod`), as row and column labels."""
    return tuple(_id_labels(sheet.find(DOTPROD.name, name).values) for name in ("user_ids", "movie_ids"))


def _labelled_ratings(sheet: Sheet, top: int, left: int) -> Block:
    """The sheet's ratings crosstab at (top, left), labelled by the ids that `dotprod` holds."""
    user_labels, movie_labels = _crosstab_labels(sheet)
    return sheet.block("ratings", top, left, headers=movie_labels, row_labels=user_labels, caption=RATINGS_CAPTION)


# ---------------------------------------------------------------- the crosstab sheets

@dataclass(frozen=True)
class CrosstabModel(SheetSpec):
    """A sheet that predicts every cell of the ratings crosstab from latent factors: the dot product
    (`dotprod`), plus a user and a movie bias (`bias`), squashed into y_lo..y_hi by a sigmoid
    (`bias_yrange`, the lesson's model). The ratings, the weights torch trained (as Solver did), a
    prediction for every cell and the RMSE over the rated cells."""

    name: str
    title: str
    subtitle: str
    teaches: str
    bias: bool = False
    y_range: bool = False
    holds_ids: bool = False  # the crosstab's user ids, movie ids and titles are this sheet's inputs
    blank_inputs = frozenset({"ratings"})

    @property
    def weights(self) -> tuple[str, ...]:
        return ("user_factors", "movie_factors") + (("user_bias", "movie_bias") if self.bias else ())

    @property
    def inputs(self) -> tuple[str, ...]:
        return (("ratings", *self.weights) + (("y_lo", "y_hi") if self.y_range else ())
                + (("user_ids", "movie_ids", "movie_titles") if self.holds_ids else ()))

    @property
    def params(self) -> frozenset[str]:
        return frozenset(self.weights)

    @property
    def text_inputs(self) -> frozenset[str]:
        return frozenset({"movie_titles"} if self.holds_ids else ())

    def model(self, values) -> EmbeddingDot:
        """The sheet's weights in a torch model."""
        y_range = (values["y_lo"][0, 0], values["y_hi"][0, 0]) if self.y_range else None
        return model_from_sheet(*(values[name] for name in self.weights), y_range=y_range)

    def compute(self, values) -> dict[str, torch.Tensor]:
        ratings = values["ratings"]
        model = self.model(values)
        pairs = all_pairs(*ratings.shape, ratings.device)
        rated = ~torch.isnan(ratings)
        with torch.no_grad():
            predictions = model(*pairs).reshape(ratings.shape)
            out = {"predictions": predictions,
                   "rmse": ((predictions - ratings)[rated] ** 2).mean().sqrt().reshape(1, 1)}
            if self.bias:
                out["dot"] = model.dot(*pairs).reshape(ratings.shape)
        return out

    def layout(self, sheet: Sheet) -> None:
        """y_lo and y_hi, the ratings, the movie weights below them, the user weights to the left of
        the predictions (and of the dot product, on the bias sheets) below those; the RMSE on top."""
        factors = sheet.value("user_factors").shape[1]
        factor_names = _factor_names(factors)
        left = factors + 3  # the matrices' first column: the user factors, their bias and labels before it
        if self.y_range:
            y_lo = sheet.labelled("y_lo", 4, 1, "y_lo")
            y_hi = sheet.labelled("y_hi", 5, 1, "y_hi")
        ratings = self._ratings(sheet, 9, left)
        user_labels, movie_labels = _crosstab_labels(sheet)
        movies = sheet.down(ratings.bottom + 4, left)
        movie_factors = movies.block("movie_factors", row_labels=factor_names,
                                     caption="movie factors (trained by torch, as Solver did)")
        # the user row starts below the movie bias (on the bias sheets), a blank row, a caption and headers
        users = sheet.across(movie_factors.bottom + 5, 1)
        user_factors = users.block("user_factors", headers=factor_names, row_labels=user_labels,
                                   caption="user factors")
        product = user_factors.matmul(movie_factors)
        if self.bias:
            movie_bias = movies.block("movie_bias", row_labels=["bias"])
            user_bias = users.block("user_bias", headers=["bias"])
            dot = users.block("dot", gap=1, formula=product, headers=movie_labels,
                              row_labels=user_labels,
                              caption="dot product of the factors (MMULT)")

            def prediction(r: int, c: int) -> str:
                x = f"{dot.cell(r, c)}+{user_bias.cell(r)}+{movie_bias.cell(0, c)}"
                return f"={y_lo.ref}+({y_hi.ref}-{y_lo.ref})/(1+EXP(-({x})))" if self.y_range else f"={x}"

            caption = "prediction = " + ("y_lo + (y_hi - y_lo) * sigmoid(dot + biases)" if self.y_range
                                         else "dot + user bias + movie bias")
            predictions = sheet.block("predictions", dot.bottom + 4, dot.left, formula=prediction,
                                      headers=movie_labels, row_labels=user_labels, caption=caption)
        else:
            predictions = users.block("predictions", gap=2, formula=product,
                                      headers=movie_labels,
                                      row_labels=user_labels, caption="prediction = dot product (MMULT)")
        r, p = ratings.ref, predictions.ref
        sheet.labelled("rmse", 3, 1, "RMSE", result=True,
                       formula=f'=SQRT(SUMPRODUCT(({r}<>"")*({r}-{p})^2)/COUNT({r}))')
        sheet.text(3, 2, "over the rated cells only: blanks are masked explicitly, so every spreadsheet "
                         "engine computes the same number")

    def _ratings(self, sheet: Sheet, top: int, left: int) -> Block:
        """The ratings crosstab; on the sheet that holds them, the titles, movie ids and user ids as
        its labels (inputs, like the ratings), elsewhere those ids as headers."""
        if not self.holds_ids:
            return _labelled_ratings(sheet, top, left)
        sheet.block("movie_titles", top - 2, left, caption=RATINGS_CAPTION)
        sheet.block("movie_ids", top - 1, left)
        sheet.block("user_ids", top, left - 1)
        return sheet.block("ratings", top, left)

    def defaults(self, ratings: np.ndarray, factors: int, seed: int) -> dict[str, np.ndarray]:
        """The ratings and the weights torch trains on them (the Solver's job), to 6 decimals:
        the same file on any machine, whatever its last-bit rounding during training; y_lo and y_hi."""
        y_range = Y_RANGE if self.y_range else None
        model, _ = train(torch.tensor(ratings), factors, seed, self.bias, y_range)
        weights = {self.key(name): np.round(w.numpy(), 6) for name, w in sheet_weights(model).items()}
        out = {self.key("ratings"): ratings, **weights}
        if self.y_range:
            out |= {self.key("y_lo"): np.array([[Y_RANGE[0]]]), self.key("y_hi"): np.array([[Y_RANGE[1]]])}
        return out


DOTPROD = CrosstabModel(
    "dotprod", "Collaborative filtering as a dot product",
    "prediction = user factors . movie factors, for every cell (MMULT); RMSE over the rated cells only "
    "(blank = not rated).",
    "prediction = user factors . movie factors (MMULT); RMSE over rated cells only", holds_ids=True)
BIAS = CrosstabModel(
    "bias", "Dot product plus biases",
    "prediction = user factors . movie factors + user bias + movie bias: some users rate everything high, "
    "some movies everyone likes.",
    "the dot product plus a user bias and a movie bias", bias=True)
BIAS_YRANGE = CrosstabModel(
    "bias_yrange", "Dot product plus biases, squashed into a range",
    "prediction = y_lo + (y_hi - y_lo) * sigmoid(dot + biases), as the lesson's model: the range is a "
    "little wider than the ratings so that 5 is reachable.",
    "the bias model squashed into a range: lo + (hi - lo) * sigmoid", bias=True, y_range=True)
CROSSTAB_MODELS = (DOTPROD, BIAS, BIAS_YRANGE)
INTERPRETED = BIAS_YRANGE  # the model `interpret` reads: the lesson's, with biases and y_range


# ---------------------------------------------------------------- the rated pairs sheets

@dataclass(frozen=True)
class OneHotCap:
    """How many of the crosstab's rated pairs the one-hot sheet shows: all `rated` of them, or, when
    their one-hot rows (`columns` = users + movies cells each) would hold more than MAX_ONE_HOT_CELLS
    cells, the first `shown` whose rows fit. movielens_emb always holds all of them."""

    shown: int
    rated: int
    columns: int

    @classmethod
    def of(cls, ratings: np.ndarray) -> OneHotCap:
        """The cap for the crosstab `ratings` (NaN = not rated), as generate applies it."""
        (users, movies), rated = ratings.shape, int((~np.isnan(ratings)).sum())
        return cls(min(rated, max(1, MAX_ONE_HOT_CELLS // (users + movies))), rated, users + movies)

    @classmethod
    def in_values(cls, values: Mapping[str, object]) -> OneHotCap:
        """The cap a workbook's values show: the pairs on movielens_1hot, the rated cells of dotprod."""
        ratings = as_grid(np.asarray(values[DOTPROD.key("ratings")], dtype=np.float64))
        shown = as_grid(np.asarray(values[ONE_HOT_PAIRS.key("rating")])).shape[0]
        return cls(shown, int((~np.isnan(ratings)).sum()), sum(ratings.shape))

    @property
    def capped(self) -> bool:
        return self.shown < self.rated

    @property
    def cells(self) -> int:
        """The one-hot cells of all the rated pairs."""
        return self.rated * self.columns

    def sheet_line(self) -> str:
        """The line under movielens_1hot's title when it is capped."""
        return (f"the first {self.shown:,} of {self.rated:,} rated pairs: one-hot rows of all {self.rated:,} "
                f"would be {self.cells:,} cells, more than the {MAX_ONE_HOT_CELLS:,} a spreadsheet opens in "
                f"reasonable time; {LOOKUP_PAIRS.name} holds them all")

    def note(self) -> str:
        """generate's line about it (see CollabFilter.generate_notes)."""
        return (f"{ONE_HOT_PAIRS.name} shows the first {self.shown:,} of {self.rated:,} rated pairs (one-hot rows "
                f"of all would be {self.cells:,} cells, more than the cap of {MAX_ONE_HOT_CELLS:,}); "
                f"{LOOKUP_PAIRS.name} holds them all")


class RatedPairs(SheetSpec):
    """The crosstab's rated pairs, one a row, with `dotprod`'s factors: each pair's user and movie
    found by exact MATCH, their factors (by one-hot matmul or by lookup: the subclasses), the
    prediction, its squared error and the RMSE, which equals dotprod's."""

    inputs = ("user_id", "movie_id", "rating")
    one_hot = False  # whether torch picks the factors by F.one_hot(i) @ W (else nn.Embedding's lookup)

    def compute(self, values) -> dict[str, torch.Tensor]:
        dotprod = values.of(DOTPROD.name)
        users = match_ids(values["user_id"], dotprod["user_ids"], f"{self.name}: user id")
        movies = match_ids(values["movie_id"], dotprod["movie_ids"], f"{self.name}: movie id")
        model = DOTPROD.model(dotprod)
        with torch.no_grad():
            user, movie = model.activations(users, movies, self.one_hot)
            prediction = model(users, movies, self.one_hot).reshape(-1, 1)
        sq_error = (prediction - values["rating"]) ** 2
        out = {"user_index": (users + 1).reshape(-1, 1), "movie_index": (movies + 1).reshape(-1, 1),
               "prediction": prediction, "sq_error": sq_error, "rmse": sq_error.mean().sqrt().reshape(1, 1),
               **self.factor_values(model, (users, movies), (user, movie))}
        return {name: value.to(prediction.dtype) for name, value in out.items()}

    def layout(self, sheet: Sheet) -> None:
        user_ids, movie_ids, user_factors, movie_factors = (
            sheet.find(DOTPROD.name, name) for name in ("user_ids", "movie_ids", "user_factors", "movie_factors"))
        place = sheet.across(7, 1)
        user_id = place.block("user_id", headers=["user id"], caption="the rated pairs")
        movie_id = place.block("movie_id", headers=["movie id"])
        rating = place.block("rating", headers=["rating"])
        user_index = place.block("user_index", gap=1, headers=["user index"], caption="exact MATCH",
                                 formula=lambda r, c: f"=MATCH({user_id.cell(r)},{user_ids.ref},0)")
        movie_index = place.block("movie_index", headers=["movie index"],
                                  formula=lambda r, c: f"=MATCH({movie_id.cell(r)},{movie_ids.ref},0)")
        index, factors = (user_index, movie_index), (user_factors, movie_factors)
        user, movie = self.factor_blocks(place, index, factors)
        prediction = place.block("prediction", gap=1, headers=["prediction"], caption="dot product",
                                 formula=lambda r, c: f"=SUMPRODUCT({user.row(r)},{movie.row(r)})")
        sq_error = place.block("sq_error", headers=["squared error"],
                               formula=lambda r, c: f"=({prediction.cell(r)}-{rating.cell(r)})^2")
        self.more_blocks(place, index, factors)
        sheet.labelled("rmse", 3, 1, "RMSE", result=True, formula=f"=SQRT(AVERAGE({sq_error.ref}))")
        sheet.text(3, 2, self.rmse_text(sheet))

    def rmse_text(self, sheet: Sheet) -> str:
        """What the RMSE is, right of it."""
        return "equal to dotprod's RMSE: the same factors, the same rated cells"

    def factor_values(self, model: EmbeddingDot, index, factors) -> dict[str, torch.Tensor]:
        """The quantities that pick each pair's factors, from the 0-based (users, movies) `index` and
        the picked (user, movie) `factors`."""
        raise NotImplementedError

    def factor_blocks(self, place: Cursor, index: tuple[Block, Block], factors: tuple[Block, Block]
                      ) -> tuple[Block, Block]:
        """The same as formulas, from the 1-based (user, movie) `index` blocks and dotprod's (user,
        movie) factor blocks: the blocks of the picked user and movie factors."""
        raise NotImplementedError

    def more_blocks(self, place: Cursor, index: tuple[Block, Block], factors: tuple[Block, Block]) -> None:
        """Blocks to the right of the squared error (none here)."""

    def defaults(self, user_ids: np.ndarray, movie_ids: np.ndarray, ratings: np.ndarray) -> dict[str, np.ndarray]:
        """The rated pairs of the crosstab, one per row."""
        users, movies, values = rated_pairs(torch.tensor(ratings))
        pairs = {"user_id": user_ids[users.numpy()], "movie_id": movie_ids[movies.numpy()],
                 "rating": values.numpy()}
        return {self.key(name): value.reshape(-1, 1) for name, value in pairs.items()}


class OneHotPairs(RatedPairs):
    """`movielens_1hot`: each pair's user and movie as one-hot rows, times dotprod's factor matrices
    (MMULT); torch: F.one_hot(i) @ W. The sheet holds rated pairs x (users + movies) one-hot cells."""

    name = "movielens_1hot"
    title = "Embedding as a one-hot matrix multiplication"
    subtitle = ("Each rated pair's user and movie as one-hot rows; one-hot x factor matrix (MMULT) selects "
                "one row of dotprod's factors.")
    teaches = "the rated pairs: one-hot rows times the factor matrices (MMULT)"
    one_hot = True

    def defaults(self, user_ids, movie_ids, ratings):
        """The first pairs of the crosstab's rated pairs whose one-hot rows fit (all up to the cap)."""
        shown = OneHotCap.of(ratings).shown
        return {key: value[:shown] for key, value in super().defaults(user_ids, movie_ids, ratings).items()}

    def layout(self, sheet: Sheet) -> None:
        """The pairs' sheet, and when it shows only some of the rated pairs a line saying so under its title."""
        super().layout(sheet)
        cap = OneHotCap.in_values(sheet.book.values)
        if cap.capped:
            sheet.text(2, 0, cap.sheet_line(), "section")

    def rmse_text(self, sheet):
        cap = OneHotCap.in_values(sheet.book.values)
        if not cap.capped:
            return super().rmse_text(sheet)
        return (f"over these {cap.shown:,} pairs only, so not dotprod's RMSE, which is over all {cap.rated:,} "
                f"rated cells ({LOOKUP_PAIRS.name}'s equals it)")

    def factor_values(self, model, index, factors):
        (users, movies), (user, movie) = index, factors
        return {"user_onehot": F.one_hot(users, model.user_factors.num_embeddings),
                "movie_onehot": F.one_hot(movies, model.movie_factors.num_embeddings),
                "user_activations": user, "movie_activations": movie}

    def factor_blocks(self, place, index, factors):
        (user_index, movie_index), (user_factors, movie_factors) = index, factors
        user_labels, movie_labels = _crosstab_labels(place.sheet)
        factor_names = _factor_names(user_factors.cols)
        user_onehot = place.block("user_onehot", gap=1, headers=user_labels, caption="one-hot of the user",
                                  formula=lambda r, c: f"=IF({user_index.cell(r)}={c + 1},1,0)")
        movie_onehot = place.block("movie_onehot", gap=1, headers=movie_labels, caption="one-hot of the movie",
                                   formula=lambda r, c: f"=IF({movie_index.cell(r)}={c + 1},1,0)")
        user = place.block("user_activations", gap=1, headers=factor_names,
                           formula=user_onehot.matmul(user_factors),
                           caption="one-hot x user factors (MMULT)")
        movie = place.block("movie_activations", gap=1, headers=factor_names,
                            formula=movie_onehot.matmul(movie_factors, transpose_other=True),
                            caption="one-hot x movie factors (MMULT)")
        return user, movie


class LookupPairs(RatedPairs):
    """`movielens_emb`: the same pairs, their factors looked up with INDEX, and with the lesson's OFFSET:
    the same activations, predictions and RMSE as the one-hot sheet; torch: nn.Embedding."""

    name = "movielens_emb"
    title = "Embedding as an array lookup"
    subtitle = ("The same pairs, the factors looked up with INDEX (and the lesson's OFFSET): the same "
                "activations, predictions and RMSE, without the big matrix of zeros.")
    teaches = "the same pairs: factors looked up with INDEX (and OFFSET); the same RMSE"

    def layout(self, sheet: Sheet) -> None:
        """The pairs' sheet, and when movielens_1hot shows only some of them a line under the title
        saying that this one holds them all."""
        super().layout(sheet)
        cap = OneHotCap.in_values(sheet.book.values)
        if cap.capped:
            sheet.text(2, 0, f"all {cap.rated:,} rated pairs ({ONE_HOT_PAIRS.name} shows the first {cap.shown:,})",
                       "section")

    def factor_values(self, model, index, factors):
        user, movie = factors
        return {"user_embedding": user, "movie_embedding": movie,
                "user_embedding_offset": user, "movie_embedding_offset": movie}

    def factor_blocks(self, place, index, factors):
        (user_index, movie_index), (user_factors, movie_factors) = index, factors
        factor_names = _factor_names(user_factors.cols)
        user = place.block("user_embedding", gap=1, headers=factor_names, caption="user factors: INDEX",
                           formula=lambda r, c: f"=INDEX({user_factors.ref},{user_index.cell(r)},{c + 1})")
        movie = place.block("movie_embedding", gap=1, headers=factor_names, caption="movie factors: INDEX",
                            formula=lambda r, c: f"=INDEX({movie_factors.ref},{c + 1},{movie_index.cell(r)})")
        return user, movie

    def more_blocks(self, place, index, factors):
        """The lesson's OFFSET form of the same lookups."""
        (user_index, movie_index), (user_factors, movie_factors) = index, factors
        factor_names = _factor_names(user_factors.cols)
        place.block("user_embedding_offset", gap=1, headers=factor_names,
                    caption="the lesson's OFFSET form: the same user factors",
                    formula=lambda r, c: f"=OFFSET({user_factors.ref},{user_index.cell(r)}-1,{c},1,1)")
        place.block("movie_embedding_offset", gap=1, headers=factor_names, caption="and the same movie factors",
                    formula=lambda r, c: f"=OFFSET({movie_factors.ref},{c},{movie_index.cell(r)}-1,1,1)")


ONE_HOT_PAIRS, LOOKUP_PAIRS = OneHotPairs(), LookupPairs()


# ---------------------------------------------------------------- gradient descent in the workbook

class GdSteps(SheetSpec):
    """`gd_steps`: full-batch gradient descent on the bias model, unrolled in formulas. One band of
    rows per step: its weights (the inputs at step 0, else the last step's weights - lr x their
    gradients), the masked error and the gradients of the MSE; the RMSE per step and its chart on
    top. torch takes the same steps with autograd and torch.optim.SGD."""

    name = "gd_steps"
    title = "Training in the workbook: gradient descent, unrolled"
    subtitle = (f"{GD_STEPS} full-batch steps on the bias model; the gradients of the mean squared error "
                "written as spreadsheet math; torch: autograd and torch.optim.SGD.")
    teaches = "gradient descent unrolled in formulas, checked against autograd and torch.optim.SGD"
    weights = ("user_factors", "movie_factors", "user_bias", "movie_bias")
    inputs = ("ratings", "lr", *weights)
    params = frozenset(weights)
    blank_inputs = frozenset({"ratings"})

    def compute(self, values) -> dict[str, torch.Tensor]:
        ratings = values["ratings"]
        model = model_from_sheet(*(values[name] for name in self.weights))
        params, lr = list(model.parameters()), values["lr"].reshape(())
        users, movies = all_pairs(*ratings.shape, ratings.device)
        rated = ~torch.isnan(ratings)
        out = {"n_rated": rated.sum().to(ratings.dtype).reshape(1, 1)}
        rmse = []
        for step in range(GD_STEPS + 1):
            if step:
                out |= {f"{name}_{step}": w for name, w in sheet_weights(model).items()}
            predictions = model(users, movies).reshape(ratings.shape)
            error = torch.where(rated, predictions - ratings, torch.zeros_like(ratings))
            loss = F.mse_loss(predictions[rated], ratings[rated])
            out[f"dot_{step}"] = model.dot(users, movies).detach().reshape(ratings.shape)
            out[f"error_{step}"] = error.detach()
            rmse.append(loss.detach().sqrt())
            if step < GD_STEPS:
                for param in params:
                    param.grad = None
                loss.backward()
                out |= {f"grad_{name}_{step}": g for name, g in sheet_weights(model, grad=True).items()}
                with torch.no_grad():
                    for param in params:
                        param.copy_(optim.SGD.step(param, param.grad, {}, step + 1, lr=lr)[0])
        out["rmse"] = torch.stack(rmse).reshape(-1, 1)
        return out

    def layout(self, sheet: Sheet) -> None:
        """lr, the number of rated cells and the RMSE per step on top, the chart beside them; below
        them the ratings, then one band of rows per step."""
        left = sheet.value("user_factors").shape[1] + 3  # as on the crosstab sheets
        lr = sheet.labelled("lr", 3, 1, "lr")
        rmse = sheet.area("rmse", 8, 1)
        chart_bottom = 20  # the chart's rows: 3 to 19
        ratings = _labelled_ratings(sheet, max(rmse.bottom + 1, chart_bottom) + 3, left)
        n_rated = sheet.labelled("n_rated", 4, 1, "rated cells", num_format="0", formula=f"=COUNT({ratings.ref})")
        top = ratings.bottom + 3
        previous, errors = None, []
        for step in range(GD_STEPS + 1):
            weights, error, grads = self._band(sheet, step, top, previous, ratings, lr, n_rated)
            errors.append(error)
            previous = weights, grads
            top = weights["user_factors"].bottom + 3
        rmse = sheet.block("rmse", rmse.top, rmse.left, headers=["RMSE"], result=True,
                           row_labels=[str(step) for step in range(GD_STEPS + 1)], caption="RMSE after each step",
                           formula=lambda r, c: f"=SQRT(SUMSQ({errors[r].ref})/{n_rated.ref})")
        sheet.text(rmse.top - 1, 0, "step", "header")
        sheet.line_chart("RMSE per gradient-descent step", [("RMSE", rmse)], 3, left, y_title="RMSE")

    def _band(self, sheet: Sheet, step: int, top: int, previous: tuple[dict, dict] | None, ratings: Block,
              lr: Block, n_rated: Block) -> tuple[dict[str, Block], Block, dict[str, Block] | None]:
        """One step's rows: its weights (inputs at step 0, else the last step's weights - lr x their
        gradients, from `previous`), the masked error and, before the last step, the gradients.
        Returns (weight blocks, error block, gradient blocks or None)."""
        user_labels, movie_labels = _crosstab_labels(sheet)
        factor_names = _factor_names(sheet.value("user_factors").shape[1])
        suffix = f"_{step}" if step else ""
        sheet.text(top, 0, f"step {step}: " + ("the starting weights (edit them)" if not step
                                                else f"weights = step {step - 1}'s weights - lr x gradient"),
                   "title")

        def weight(place: Cursor, name: str, **decoration) -> Block:
            if previous is None:
                return place.block(name, **decoration)
            old, grad = previous[0][name], previous[1][name]
            return place.block(name + suffix, **decoration,
                               formula=lambda r, c: f"={old.cell(r, c)}-{lr.ref}*{grad.cell(r, c)}")

        movies = sheet.down(top + 3, ratings.left)  # below the step's title and a caption
        weights = {"movie_factors": weight(movies, "movie_factors", row_labels=factor_names,
                                           caption="movie factors"),
                   "movie_bias": weight(movies, "movie_bias", row_labels=["bias"])}
        users = sheet.across(movies.skip(2), 1)  # below a caption and the headers
        weights["user_factors"] = weight(users, "user_factors", headers=factor_names, row_labels=user_labels,
                                         caption="user factors")
        weights["user_bias"] = weight(users, "user_bias", headers=["bias"])
        dot = users.block(f"dot_{step}", gap=1, headers=movie_labels, row_labels=user_labels,
                          formula=weights["user_factors"].matmul(weights["movie_factors"]))
        sheet.text(dot.top - 2, dot.left, "dot product (MMULT)")
        error = users.block(
            f"error_{step}", gap=1, headers=movie_labels,
            formula=lambda r, c: f'=IF({ratings.cell(r, c)}="",0,{dot.cell(r, c)}'
                                 f'+{weights["user_bias"].cell(r)}+{weights["movie_bias"].cell(0, c)}'
                                 f'-{ratings.cell(r, c)})')
        sheet.text(error.top - 2, error.left, "error = prediction - rating (0 where not rated)")
        if step == GD_STEPS:
            return weights, error, None
        two_over_n = f"2/{n_rated.ref}"
        movie_grads = sheet.down(weights["movie_factors"].top, error.left)
        grads = {
            "movie_factors": movie_grads.block(
                f"grad_movie_factors_{step}", caption="gradients of the MSE",
                formula=weights["user_factors"].matmul(error, transpose=True, scale=two_over_n)),
            "movie_bias": movie_grads.block(f"grad_movie_bias_{step}",
                                            formula=lambda r, c: f"={two_over_n}*SUM({error.column(c)})"),
            "user_factors": users.block(
                f"grad_user_factors_{step}", gap=1, headers=factor_names,
                caption="gradients: 2/n error x movie factors^T (SUMPRODUCT of an error row and a factor row)",
                formula=error.matmul(weights["movie_factors"], transpose_other=True, scale=two_over_n)),
            "user_bias": users.block(f"grad_user_bias_{step}", headers=["bias"],
                                     formula=lambda r, c: f"={two_over_n}*SUM({error.row(r)})"),
        }
        return weights, error, grads

    def defaults(self, ratings: np.ndarray, factors: int, seed: int) -> dict[str, np.ndarray]:
        """gd_steps starts where the torch training starts (to 2 decimals), with lr = GD_LR."""
        start = EmbeddingDotBias(**initial_weights(seed, *ratings.shape, factors))
        return {self.key("ratings"): ratings, self.key("lr"): np.array([[GD_LR]]),
                **{self.key(name): np.round(w.numpy(), 2) for name, w in sheet_weights(start).items()}}


GD = GdSteps()


# ---------------------------------------------------------------- interpreting the embeddings

class Interpret(SheetSpec):
    """`interpret`: what the lesson's model (bias_yrange) learned. Its movies ranked by learned bias,
    and the first two principal components of its movie factors, worked out in formulas: centred
    factors, covariance (MMULT), power iteration, the sign fixed, deflation; each movie's scores on
    the components, their rankings and a chart."""

    name = "interpret"
    title = "Interpreting the embeddings: bias ranking and principal components"
    subtitle = (f"The lesson's model ({INTERPRETED.name}): movies ranked by learned bias, and the first two "
                f"principal components of the movie factors, by {POWER_STEPS} power-iteration steps each, in "
                "formulas.")
    teaches = ("movies ranked by learned bias; principal components of the movie factors by power iteration "
               "in formulas")
    inputs = ("genre", "start")
    text_inputs = frozenset({"genre"})

    def compute(self, values) -> dict[str, torch.Tensor]:
        model = values.of(INTERPRETED.name)
        factors, bias = model["movie_factors"].T, model["movie_bias"].T
        movie_ids = values.of(DOTPROD.name)["movie_ids"]
        mean = factors.mean(dim=0, keepdim=True)
        centred = factors - mean
        out = {"movie_id": movie_ids.T, "movie_bias": bias, "factor_mean": mean, "centred": centred,
               **principal_components(centred, values["start"])}
        n = ranked_count(len(bias))
        for what, column in (("bias", bias), ("pc1", out["pc_scores"][:, :1]), ("pc2", out["pc_scores"][:, 1:])):
            for suffix, value in zip(("", "_movie", "_id"), ranking(column, movie_ids, n)):
                out[f"{what}_ranked{suffix}"] = value
        return out

    def layout(self, sheet: Sheet) -> None:
        """The movies with their bias and component scores, the chart and the rankings on top; below,
        the components worked out: centred factors, covariance, power iteration, sign, deflation."""
        movie_ids = sheet.find(DOTPROD.name, "movie_ids")
        model_bias = sheet.find(INTERPRETED.name, "movie_bias")
        titles = [str(t) for t in sheet.find(DOTPROD.name, "movie_titles").values.ravel()]
        movies = sheet.across(7, 1)
        movie_id = movies.block("movie_id", headers=["movie id"], row_labels=titles, num_format="0",
                                caption="the movies: id, genre, learned bias and scores on the two components",
                                formula=lambda r, c: f"=INDEX({movie_ids.ref},1,{r + 1})")
        movies.block("genre", headers=["genre"])
        bias = movies.block("movie_bias", headers=["bias"],
                            formula=lambda r, c: f"=INDEX({model_bias.ref},1,{r + 1})")
        scores = movies.area("pc_scores")
        n = ranked_count(len(titles))
        rank_labels = [f"top {k + 1}" for k in range(n)] + [f"bottom {k + 1}" for k in range(n)]
        rankings = sheet.across(movie_id.bottom + 5, 1)
        for name, column in (("bias", bias.ref), ("PC1", scores.column(0)), ("PC2", scores.column(1))):
            ranked = _ranking_blocks(rankings, name, column, movie_ids, n, rank_labels)
        sheet.text(ranked.top - 2, 1, "ranked by bias, PC1 and PC2: LARGE / SMALL, the movie's row above by "
                                      "exact MATCH, its id by INDEX")
        centred, loadings = _component_blocks(sheet, sheet.find(INTERPRETED.name, "movie_factors"), titles,
                                              ranked.bottom + 6)
        sheet.block("pc_scores", scores.top, scores.left, headers=["PC1", "PC2"], result=True,
                    formula=lambda r, c: f"=SUMPRODUCT({centred.row(r)},{loadings.row(c)})")
        sheet.scatter_chart("The movies on the first two components", scores, scores, 3, 7, x_col=0, y_col=1,
                            x_title="PC1", y_title="PC2", point_labels=titles)


def _ranking_blocks(place: Cursor, what: str, column: str, movie_ids: Block, n: int, row_labels: list[str]) -> Block:
    """The n largest then the n smallest values of `column` (`<what>_ranked`, lower case), each one's
    position by exact MATCH (`<what>_ranked_movie`) and its movie id by INDEX (`<what>_ranked_id`),
    then a blank column. Returns the ranked values' block."""
    header, what = what, what.lower()
    ranked = place.block(
        f"{what}_ranked", headers=[header], row_labels=row_labels, result=True,
        formula=lambda r, c: f"=LARGE({column},{r + 1})" if r < n else f"=SMALL({column},{r - n + 1})")
    position = place.block(f"{what}_ranked_movie", headers=["movie #"], num_format="0",
                           formula=lambda r, c: f"=MATCH({ranked.cell(r)},{column},0)")
    place.block(f"{what}_ranked_id", headers=["movie id"], num_format="0",
                formula=lambda r, c: f"=INDEX({movie_ids.ref},1,{position.cell(r)})")
    place.skip(1)
    return ranked


def _component_blocks(sheet: Sheet, movie_factors: Block, titles: list[str], top: int) -> tuple[Block, Block]:
    """The factors' mean, the centred factors, their covariance, the start vector, both power
    iterations, the deflated covariance, the components and their variances. Returns the centred
    factors and the components (`pc_loadings`)."""
    factor_names = _factor_names(movie_factors.rows)
    mean = sheet.block("factor_mean", top, 1, headers=factor_names, row_labels=["mean"],
                       caption=f"principal components of {movie_factors.sheet.name}'s movie factors: each "
                               "factor's mean over the movies",
                       formula=lambda r, c: f"=AVERAGE({movie_factors.row(c)})")
    place = sheet.across(mean.bottom + 4, 1)
    centred = place.block(
        "centred", headers=factor_names, row_labels=titles, caption="the factors minus their mean",
        formula=lambda r, c: f"=INDEX({movie_factors.ref},{c + 1},{r + 1})-{mean.cell(0, c)}")
    covariance = place.block(
        "covariance", gap=2, headers=factor_names, row_labels=factor_names,
        caption="covariance = centred^T x centred / (movies - 1): SUMPRODUCT of two columns",
        formula=centred.matmul(centred, transpose=True, scale=f"1/(ROWS({centred.ref})-1)"))
    start = place.block("start", gap=2, headers=["start"], row_labels=factor_names, caption="start vector (edit it)")
    loadings = place.area("pc_loadings", gap=2)
    variance = place.area("pc_variance", gap=1)
    deflated = sheet.block(
        "deflated", covariance.bottom + 5, covariance.left, headers=factor_names, row_labels=factor_names,
        caption="deflated = covariance - variance of PC1 x PC1 x PC1 transposed",
        formula=lambda r, c: f"={covariance.cell(r, c)}-{variance.cell(0)}*{loadings.cell(0, r)}"
                             f"*{loadings.cell(0, c)}")
    steps_top = max(centred.bottom + 1, deflated.bottom) + 5
    matrices, last = (covariance, deflated), []
    for pc, matrix in enumerate(matrices, start=1):
        steps = _power_blocks(sheet, pc, matrix, start, steps_top, factor_names)
        last.append(steps.column(POWER_STEPS - 1))
        steps_top = steps.bottom + 5
    loadings = sheet.block(
        "pc_loadings", loadings.top, loadings.left, headers=factor_names, row_labels=["PC1", "PC2"],
        caption="the components: each one's last step, its sign fixed",
        formula=lambda r, c: f"=INDEX({last[r]},{c + 1})*IF(MAX({last[r]})>=-MIN({last[r]}),1,-1)")
    variance = sheet.block(
        "pc_variance", variance.top, variance.left, headers=["variance"],
        formula=lambda r, c: f"=SUMPRODUCT({loadings.row(r)},MMULT({loadings.row(r)},{matrices[r].ref}))")
    place.block("variance_share", headers=["share"], result=True,
                formula=lambda r, c: f"={variance.cell(r)}/(SUMSQ({centred.ref})/(ROWS({centred.ref})-1))")
    return centred, loadings


def _power_blocks(sheet: Sheet, pc: int, matrix: Block, start: Block, top: int, factor_names) -> Block:
    """One component's power iteration, a column per step: w = matrix x v, then v = w / |w|.
    Returns the block of the normalised vectors."""
    steps = [f"step {j + 1}" for j in range(POWER_STEPS)]
    place = sheet.down(top, 1)
    products = place.area(f"pc{pc}_products")
    vectors = place.area(f"pc{pc}_steps", gap=4)  # below a blank row, a caption and the headers
    previous = [start.column(0)] + [vectors.column(j) for j in range(POWER_STEPS - 1)]
    what = "covariance" if pc == 1 else "deflated covariance"
    products = sheet.block(
        products.name, products.top, products.left, headers=steps, row_labels=factor_names,
        caption=f"PC{pc}: power iteration on the {what}; w = {what} x v, one column per step "
                "(SUMPRODUCT of a column of the symmetric matrix and the last v)",
        formula=lambda r, c: f"=SUMPRODUCT({matrix.column(r)},{previous[c]})")
    return sheet.block(vectors.name, vectors.top, vectors.left, headers=steps, row_labels=factor_names,
                       caption="v = w / SQRT(SUMSQ(w)): the normalised step",
                       formula=lambda r, c: f"={products.cell(r, c)}/SQRT(SUMSQ({products.column(c)}))")


INTERPRET = Interpret()


# ---------------------------------------------------------------- word embeddings

class WordEmb(SheetSpec):
    """`word_emb`: the same lookup for words. A word's id is its row in the vocabulary (exact MATCH),
    its vector that row of the embedding matrix (INDEX); torch: nn.Embedding."""

    name = "word_emb"
    title = "Word embeddings: the same lookup for words"
    subtitle = ("A word's id is its row in the vocabulary (exact MATCH); its vector is that row of the "
                "embedding matrix (INDEX), as nn.Embedding returns.")
    teaches = "a sentence as word ids (MATCH) and as vectors (INDEX): nn.Embedding"
    inputs = ("vocab", "embedding", "sentence")
    params = frozenset({"embedding"})
    text_inputs = frozenset({"vocab", "sentence"})

    def compute(self, values) -> dict[str, torch.Tensor]:
        embedding = values["embedding"]
        ids = torch.tensor(exact_match(values["sentence"], values["vocab"], "word_emb: the word"),
                           device=embedding.device)
        with torch.no_grad():
            vectors = nn.Embedding.from_pretrained(embedding)(ids)
        return {"word_id": (ids + 1).to(embedding.dtype).reshape(-1, 1), "word_vectors": vectors}

    def layout(self, sheet: Sheet) -> None:
        dims = [f"dim {i + 1}" for i in range(sheet.value("embedding").shape[1])]
        place = sheet.across(5, 1)
        vocab = place.block("vocab", headers=["word"], caption="the vocabulary")
        embedding = place.block("embedding", headers=dims, caption="its embedding matrix")
        sentence = place.block("sentence", gap=2, headers=["sentence"], caption="a sentence, one word a row")
        word_id = place.block("word_id", headers=["word id"],
                              formula=lambda r, c: f"=MATCH({sentence.cell(r)},{vocab.ref},0)")
        place.block("word_vectors", gap=1, headers=dims, result=True,
                    caption="its vector: INDEX(embedding, word id, dim)",
                    formula=lambda r, c: f"=INDEX({embedding.ref},{word_id.cell(r)},{c + 1})")

    def defaults(self, seed: int) -> dict[str, np.ndarray]:
        gen = torch.Generator().manual_seed(seed)
        embedding = torch.randn(len(VOCAB), WORD_DIMS, generator=gen, dtype=torch.float64)
        return {self.key("vocab"): np.array(VOCAB, dtype=object).reshape(-1, 1),
                self.key("embedding"): np.round(embedding.numpy(), 2),
                self.key("sentence"): np.array(SENTENCE, dtype=object).reshape(-1, 1)}


WORDS = WordEmb()


# ---------------------------------------------------------------- the lesson

class CollabFilter(Lesson):
    """collab_filter.xlsx: the crosstab's dot-product models (dotprod, bias, bias_yrange), the
    embedding as one-hot matmul and as lookup (movielens_1hot, movielens_emb), gradient descent in
    formulas (gd_steps), the learned biases and components read (interpret), and words (word_emb)."""

    name = "collab_filter"
    title = "Collaborative filtering: embeddings as one-hot matmuls and lookups, trained without Solver"
    notes_title = "Collaborative filtering"
    notes_teaches = "latent factors, what to look at, what to try"
    resize_hint = ("generate one of the size you need: lessonxl generate --users N --movies N "
                   "[--ratings FILE] collab_filter")
    specs = (DOTPROD, ONE_HOT_PAIRS, LOOKUP_PAIRS, BIAS, BIAS_YRANGE, GD, INTERPRET, WORDS)

    def default_inputs(self, seed: int, ratings=None, users: int = 15, movies: int = 15,
                       factors: int = 5) -> dict[str, np.ndarray]:
        for flag, value, least in (("users", users, 2), ("movies", movies, 2), ("factors", factors, 1)):
            if not isinstance(value, int) or value < least:
                raise UsageError(f"--{flag} {value}: give a whole number of at least {least}")
        if users * movies > MAX_CROSSTAB_CELLS:
            raise UsageError(f"--users {users} --movies {movies}: a crosstab of {users * movies:,} cells is more than "
                             f"the {MAX_CROSSTAB_CELLS:,} (200 x 200) a workbook is made for (200 x 200 already "
                             "makes 2.6 million formula cells, 32 MB, minutes in a spreadsheet); ask for fewer "
                             "users or movies")
        if factors > MAX_FACTORS:
            raise UsageError(f"--factors {factors}: a workbook is made for at most {MAX_FACTORS} factors "
                             "(fastai's default for collab_learner)")
        if ratings:
            table, source = load_ratings(ratings), str(ratings)
            movie_table = load_movies(ratings)
        else:
            n_movies = max(200, 14 * movies)
            table = synthetic_ratings(seed, max(100, 7 * users), n_movies)
            movie_table, source = synthetic_movies(seed, n_movies), "the built-in data"
        user_ids, movie_ids, grid = top_crosstab(table, users, movies, source)
        titles, genres = titles_and_genres(movie_table, movie_ids)
        out = {key: value for spec in CROSSTAB_MODELS for key, value in spec.defaults(grid, factors, seed).items()}
        out |= {DOTPROD.key("user_ids"): user_ids.reshape(-1, 1),
                DOTPROD.key("movie_ids"): movie_ids.reshape(1, -1),
                DOTPROD.key("movie_titles"): np.array(titles, dtype=object).reshape(1, -1),
                INTERPRET.key("genre"): np.array(genres, dtype=object).reshape(-1, 1),
                INTERPRET.key("start"): np.ones((factors, 1))}
        for spec in (ONE_HOT_PAIRS, LOOKUP_PAIRS):
            out |= spec.defaults(user_ids, movie_ids, grid)
        return out | GD.defaults(grid, factors, seed) | WORDS.defaults(seed)

    def notes(self, values) -> tuple[str, ...]:
        """NOTES with the paragraph on `interpret` before word_emb's, and the one on the pair sheets
        saying so when movielens_1hot shows only some of the pairs."""
        cap = OneHotCap.in_values(values)
        notes = NOTES if not cap.capped else NOTES[:2] + (pairs_note(cap),) + NOTES[3:]
        return notes[:-2] + (interpret_note(values),) + notes[-2:]

    def generate_notes(self, inputs: Mapping[str, object]) -> tuple[str, ...]:
        """What `lessonxl generate` should tell the user about the workbook of these inputs, besides
        writing it, one line each: that movielens_1hot shows only some of the pairs, when it does."""
        cap = OneHotCap.in_values(inputs)
        return (cap.note(),) if cap.capped else ()


NOTES = (
    "Collaborative filtering guesses how much a user will like a movie from everybody's ratings. Each "
    "user and each movie gets a short vector of numbers, its latent factors; the prediction is their "
    "dot product. Nobody says what a factor means: training finds whatever explains the ratings (a "
    "factor may end up measuring 'action' in a movie and the taste for it in a user).",
    "dotprod: the ratings crosstab of the most active users and the most-rated movies (blank = not "
    "rated), the factors, a prediction for every cell and the RMSE over the rated cells. The factors "
    "were trained by torch (Adam, full batch, seeded), replacing the original's Excel Solver.",
    "movielens_1hot and movielens_emb: an embedding is a one-hot row times a weight matrix, which "
    "just picks out one row, so a lookup (INDEX) gives the same numbers with no big matrix of zeros. "
    "Both sheets reach dotprod's RMSE exactly; torch: F.one_hot(i) @ W and nn.Embedding.",
    "bias: a user bias and a movie bias on top of the dot product (some movies everyone likes); the "
    "RMSE drops. bias_yrange squashes the prediction into y_lo..y_hi with a sigmoid, as the lesson's "
    "model does; the range is a little wider than 0.5..5 so a 5 is reachable.",
    "gd_steps: training inside the workbook, with no Solver and no macros. Each step computes the "
    "error (prediction - rating, 0 where not rated), the gradients of the mean squared error (for the "
    "user factors 2/n error x movie factors^T, each cell a SUMPRODUCT of an error row and a factor row) "
    "and the new weights = weights - lr x "
    "gradient. The chart shows the RMSE falling. torch does the same steps with autograd and "
    "torch.optim.SGD.",
    "word_emb: the same lookup for words: a word's id is its row in the vocabulary, its vector that "
    "row of the embedding matrix.",
    "Try: change a factor, a rating (or blank one out), the learning rate or y_hi (the names gd_steps_lr "
    "and bias_yrange_y_hi: a sheet's names begin with the sheet's), save, then run "
    "`lessonxl verify collab_filter.xlsx`: torch recomputes everything from your numbers and compares "
    "every formula cell. Raise gd_steps_lr (lr on gd_steps) until the RMSE blows up.",
)

def pairs_note(cap: OneHotCap) -> str:
    """NOTES' paragraph on the pair sheets when movielens_1hot shows only `cap.shown` of the pairs."""
    return (
        "movielens_1hot and movielens_emb: an embedding is a one-hot row times a weight matrix, which "
        "just picks out one row, so a lookup (INDEX) gives the same numbers with no big matrix of zeros. "
        f"movielens_emb holds all {cap.rated:,} rated pairs and reaches dotprod's RMSE exactly; movielens_1hot "
        f"shows the first {cap.shown:,} (one-hot rows of all of them would be {cap.cells:,} cells, more than a "
        f"spreadsheet opens in reasonable time), so its RMSE is over those {cap.shown:,} pairs only. torch: "
        "F.one_hot(i) @ W and nn.Embedding.")


def interpret_note(values) -> str:
    """What `interpret` shows, with the convergence and genre figures measured on this data."""
    variances = torch.linalg.eigvalsh(torch.as_tensor(values[INTERPRET.key("covariance")])).flip(0)
    ratios = [(variances[i + 1] / variances[i]).item() for i in range(min(2, len(variances) - 1))]
    shrink = " and ".join(f"{ratio:.2f}^{POWER_STEPS} = {ratio ** POWER_STEPS:.0e}" for ratio in ratios)
    shrink = f", {shrink} here" if shrink else ""
    genres = genre_shares(values[INTERPRET.key("genre")].ravel(),
                          np.asarray(values[INTERPRET.key("pc_scores")])[:, 0],
                          ranked_count(len(values[INTERPRET.key("movie_bias")])))
    return (
        "interpret: what the model learned, read as the lesson reads it. The movie bias ranks the movies the "
        "model thinks good or bad whoever watches them (the top and bottom five by LARGE and SMALL, each "
        "one's row by exact MATCH, its id by INDEX). The factors have no names, but their principal "
        "components can be named: the sheet centres the movie factors, builds their covariance with MMULT, "
        f"and finds the first component by {POWER_STEPS} steps of power iteration (multiply by the "
        "covariance, divide by the length), the second the same way after taking the first out (deflation); "
        "each component's sign makes its largest entry positive. That many steps are enough: the error "
        f"shrinks like the ratio of the next variance to this one per step{shrink} (the tests check "
        "the components against torch.linalg.eigh and svd). "
        + (f"Genres at the two ends of the first component ({genres}). " if genres else "")
        + "The chart puts every movie on the two components. Try: on bias_yrange, set one movie's bias to 3: "
        "it tops the bias ranking here. Or set the start vector to 1 in its first cell and 0 in the others: "
        "every step changes, the components do not."
    )


def genre_shares(genres, scores: np.ndarray, n: int) -> str:
    """How the (first-listed) genres of the n movies at each end of `scores` split, e.g. 'top 5 on PC1:
    5 action; bottom 5: 3 comedy, 2 romance'; empty when the genres are unknown."""
    first = [str(genre).split("|")[0] for genre in genres]
    if set(first) <= {"-"}:
        return ""
    order = np.argsort(-np.asarray(scores), kind="stable")

    def split(rows) -> str:
        counts = Counter(first[i] for i in rows)
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return ", ".join(f"{count} {genre}" for genre, count in ordered)
    return f"top {n} on PC1: {split(order[:n])}; bottom {n}: {split(order[len(order) - n:])}"
