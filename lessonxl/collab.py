"""Collaborative filtering (collab_filter.xlsx): torch models and sheet layout side by side.

Embeddings as one-hot matmuls and as lookups, the dot-product model with and without biases and
with a sigmoid range, training in torch instead of Excel's Solver, and gradient descent unrolled
in formulas. Movie factors are shown factors x movies, across the top of the crosstab, as in the
lesson; torch keeps them movies x factors, as nn.Embedding does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from xlsxwriter.utility import quote_sheetname, xl_rowcol_to_cell

from .errors import UsageError
from .lesson import Lesson, exact_match
from .movielens import crosstab, load_movies, load_ratings, movie_labels, synthetic_movies, synthetic_ratings
from .sheets import Block, Book, Sheet

Y_RANGE = (0.0, 5.5)
GD_STEPS, GD_LR = 12, 1.0
SOLVER_STEPS, SOLVER_LR = 500, 0.05
VOCAB = ("the", "a", "cat", "dog", "sat", "ran", "on", "mat", "rug", "fast")
SENTENCE = ("the", "cat", "sat", "on", "the", "mat")
WORD_DIMS = 4
POWER_STEPS = 150  # power-iteration steps per component (see test_interpret for why enough)
RANKED = 5        # movies shown at each end of a ranking
INTERPRET = "interpret!{}"


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


def masked_rmse(ratings: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    """RMSE over the rated cells only, as a 1 x 1 grid."""
    rated = ~torch.isnan(ratings)
    return ((predictions - ratings)[rated] ** 2).mean().sqrt().reshape(1, 1)


def initial_weights(seed: int, n_users: int, n_movies: int, factors: int) -> dict[str, torch.Tensor]:
    """Seeded starting weights: factors ~ U(0, 1) like the lesson's RAND(), biases 0."""
    gen = torch.Generator().manual_seed(seed)
    return {
        "user_factors": torch.rand(n_users, factors, generator=gen, dtype=torch.float64),
        "movie_factors": torch.rand(n_movies, factors, generator=gen, dtype=torch.float64),
        "user_bias": torch.zeros(n_users, dtype=torch.float64),
        "movie_bias": torch.zeros(n_movies, dtype=torch.float64),
    }


def fit(model: nn.Module, users, movies, ratings, steps: int = SOLVER_STEPS, lr: float = SOLVER_LR,
        optimizer=torch.optim.Adam) -> torch.Tensor:
    """Train in place on all pairs at once (what Solver did): MSE; returns the loss before each step."""
    opt = optimizer(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = F.mse_loss(model(users, movies), ratings)
        opt.zero_grad()
        loss.backward()
        opt.step()
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


def match(values: torch.Tensor, table: torch.Tensor, what: str) -> torch.Tensor:
    """0-based position of each value in `table` (first exact match, as MATCH(..., 0))."""
    hits = values.reshape(-1, 1) == table.reshape(1, -1)
    missing = ~hits.any(dim=1)
    if missing.any():
        raise UsageError(f"{what} {values.reshape(-1)[missing][0].item():g} is not in the crosstab")
    return hits.double().argmax(dim=1)


# ---------------------------------------------------------------- the sheets' quantities

@dataclass(frozen=True)
class Crosstab:
    """A ratings crosstab sheet: dot product, optionally with biases and a sigmoid range."""
    sheet: str
    bias: bool = False
    y_range: bool = False

    def key(self, name: str) -> str:
        return f"{self.sheet}!{name}"

    @property
    def weights(self) -> tuple[str, ...]:
        names = ("user_factors", "movie_factors") + (("user_bias", "movie_bias") if self.bias else ())
        return tuple(self.key(n) for n in names)

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.key("ratings"), *self.weights) + (
            (self.key("y_lo"), self.key("y_hi")) if self.y_range else ())

    def model(self, inputs) -> EmbeddingDot:
        """The sheet's weights in a torch model."""
        y_range = (inputs[self.key("y_lo")][0, 0], inputs[self.key("y_hi")][0, 0]) if self.y_range else None
        return model_from_sheet(*(inputs[key] for key in self.weights), y_range=y_range)

    def compute(self, inputs) -> dict[str, torch.Tensor]:
        ratings = inputs[self.key("ratings")]
        model = self.model(inputs)
        pairs = all_pairs(*ratings.shape, ratings.device)
        with torch.no_grad():
            predictions = model(*pairs).reshape(ratings.shape)
            out = {self.key("predictions"): predictions,
                   self.key("rmse"): masked_rmse(ratings, predictions)}
            if self.bias:
                out[self.key("dot")] = model.dot(*pairs).reshape(ratings.shape)
        return out

    def defaults(self, ratings: np.ndarray, factors: int, seed: int) -> dict[str, np.ndarray]:
        """The ratings and the weights torch trains on them (the Solver's job), to 6 decimals:
        the same file on any machine, whatever its last-bit rounding during training."""
        y_range = Y_RANGE if self.y_range else None
        model, _ = train(torch.tensor(ratings), factors, seed, self.bias, y_range)
        weights = {self.key(name): np.round(w.numpy(), 6) for name, w in sheet_weights(model).items()}
        out = {self.key("ratings"): ratings, **weights}
        if self.y_range:
            out |= {self.key("y_lo"): np.array([[Y_RANGE[0]]]), self.key("y_hi"): np.array([[Y_RANGE[1]]])}
        return out


CROSSTABS = (Crosstab("dotprod"), Crosstab("bias", bias=True),
             Crosstab("bias_yrange", bias=True, y_range=True))
DOTPROD = CROSSTABS[0]
PAIR_SHEETS = ("movielens_1hot", "movielens_emb")
PAIR_INPUTS = ("user_id", "movie_id", "rating")
GD_WEIGHTS = ("user_factors", "movie_factors", "user_bias", "movie_bias")
INTERPRETED = CROSSTABS[2]  # the lesson's model: biases and y_range


def pair_quantities(inputs, sheet: str) -> dict[str, torch.Tensor]:
    """One rated pair per row, its factors from `dotprod`: by one-hot matmul or by lookup."""
    one_hot = sheet == "movielens_1hot"
    users = match(inputs[f"{sheet}!user_id"], inputs[DOTPROD.key("user_ids")], f"{sheet}: user id")
    movies = match(inputs[f"{sheet}!movie_id"], inputs[DOTPROD.key("movie_ids")], f"{sheet}: movie id")
    model = DOTPROD.model(inputs)
    with torch.no_grad():
        user, movie = model.activations(users, movies, one_hot)
        prediction = model(users, movies, one_hot).reshape(-1, 1)
    sq_error = (prediction - inputs[f"{sheet}!rating"]) ** 2
    out = {"user_index": (users + 1).reshape(-1, 1), "movie_index": (movies + 1).reshape(-1, 1),
           "prediction": prediction, "sq_error": sq_error, "rmse": sq_error.mean().sqrt().reshape(1, 1)}
    if one_hot:
        out |= {"user_onehot": F.one_hot(users, model.user_factors.num_embeddings),
                "movie_onehot": F.one_hot(movies, model.movie_factors.num_embeddings),
                "user_activations": user, "movie_activations": movie}
    else:
        out |= {"user_embedding": user, "movie_embedding": movie,
                "user_embedding_offset": user, "movie_embedding_offset": movie}
    return {f"{sheet}!{name}": value.to(prediction.dtype) for name, value in out.items()}


def gd_quantities(inputs) -> dict[str, torch.Tensor]:
    """Full-batch gradient descent on the bias model: autograd and torch.optim.SGD, step by step."""
    key = "gd_steps!{}".format
    ratings = inputs[key("ratings")]
    model = model_from_sheet(*(inputs[key(name)] for name in GD_WEIGHTS))
    opt = torch.optim.SGD(model.parameters(), lr=float(inputs[key("lr")]))
    users, movies = all_pairs(*ratings.shape, ratings.device)
    rated = ~torch.isnan(ratings)
    out = {key("n_rated"): rated.sum().to(ratings.dtype).reshape(1, 1)}
    rmse = []
    for step in range(GD_STEPS + 1):
        if step:
            out |= {key(f"{name}_{step}"): w for name, w in sheet_weights(model).items()}
        predictions = model(users, movies).reshape(ratings.shape)
        error = torch.where(rated, predictions - ratings, torch.zeros_like(ratings))
        loss = F.mse_loss(predictions[rated], ratings[rated])
        out[key(f"dot_{step}")] = model.dot(users, movies).detach().reshape(ratings.shape)
        out[key(f"error_{step}")] = error.detach()
        rmse.append(loss.detach().sqrt())
        if step < GD_STEPS:
            opt.zero_grad()
            loss.backward()
            out |= {key(f"grad_{name}_{step}"): g for name, g in sheet_weights(model, grad=True).items()}
            opt.step()
    out[key("rmse")] = torch.stack(rmse).reshape(-1, 1)
    return out


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


def interpret_quantities(inputs) -> dict[str, torch.Tensor]:
    """The lesson's model's movies ranked by bias, and the principal components of their factors."""
    factors = inputs[INTERPRETED.key("movie_factors")].T
    bias = inputs[INTERPRETED.key("movie_bias")].T
    movie_ids = inputs[DOTPROD.key("movie_ids")]
    mean = factors.mean(dim=0, keepdim=True)
    centred = factors - mean
    out = {"movie_id": movie_ids.T, "movie_bias": bias, "factor_mean": mean, "centred": centred,
           **principal_components(centred, inputs[INTERPRET.format("start")])}
    n = ranked_count(len(bias))
    for what, column in (("bias", bias), ("pc1", out["pc_scores"][:, :1]), ("pc2", out["pc_scores"][:, 1:])):
        for suffix, value in zip(("", "_movie", "_id"), ranking(column, movie_ids, n)):
            out[f"{what}_ranked{suffix}"] = value
    return {INTERPRET.format(name): value for name, value in out.items()}


def ranked_count(movies: int) -> int:
    """How many movies each ranking shows at the top and at the bottom."""
    return min(RANKED, movies // 2)


def word_quantities(inputs) -> dict[str, torch.Tensor]:
    """Each word of the sentence: its id by exact match and its vector from nn.Embedding."""
    embedding = inputs["word_emb!embedding"]
    ids = torch.tensor(exact_match(inputs["word_emb!sentence"], inputs["word_emb!vocab"], "word_emb: the word"),
                       device=embedding.device)
    with torch.no_grad():
        vectors = nn.Embedding.from_pretrained(embedding)(ids)
    return {"word_emb!word_id": (ids + 1).to(embedding.dtype).reshape(-1, 1),
            "word_emb!word_vectors": vectors}


# ---------------------------------------------------------------- the lesson

def _pair_defaults(user_ids: np.ndarray, movie_ids: np.ndarray, grid: np.ndarray) -> dict[str, np.ndarray]:
    """The rated pairs of the crosstab, one per row, for both pair sheets."""
    users, movies, values = rated_pairs(torch.tensor(grid))
    pairs = {"user_id": user_ids[users.numpy()], "movie_id": movie_ids[movies.numpy()],
             "rating": values.numpy()}
    return {f"{sheet}!{name}": value.reshape(-1, 1)
            for sheet in PAIR_SHEETS for name, value in pairs.items()}


def _gd_defaults(grid: np.ndarray, factors: int, seed: int) -> dict[str, np.ndarray]:
    """gd_steps starts where the torch training starts (to 2 decimals), with lr = GD_LR."""
    start = EmbeddingDotBias(**initial_weights(seed, *grid.shape, factors))
    return {"gd_steps!ratings": grid, "gd_steps!lr": np.array([[GD_LR]]),
            **{f"gd_steps!{name}": np.round(w.numpy(), 2) for name, w in sheet_weights(start).items()}}


def _word_defaults(seed: int) -> dict[str, np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    embedding = torch.randn(len(VOCAB), WORD_DIMS, generator=gen, dtype=torch.float64)
    return {"word_emb!vocab": np.array(VOCAB, dtype=object).reshape(-1, 1),
            "word_emb!embedding": np.round(embedding.numpy(), 2),
            "word_emb!sentence": np.array(SENTENCE, dtype=object).reshape(-1, 1)}


def _ids(values: np.ndarray) -> list[str]:
    return [f"{v:g}" for v in np.asarray(values, dtype=np.float64).ravel()]


def _factor_names(factors: int) -> list[str]:
    return [f"factor {i + 1}" for i in range(factors)]


class CollabFilter(Lesson):
    name = "collab_filter"
    resize_hint = ("generate one of the size you need: lessonxl generate --users N --movies N "
                   "[--ratings FILE] collab_filter")
    title = "Collaborative filtering: embeddings as one-hot matmuls and lookups, trained without Solver"
    sheets = {
        "notes": "latent factors, what to look at, what to try",
        "dotprod": "prediction = user factors . movie factors (MMULT); RMSE over rated cells only",
        "movielens_1hot": "the rated pairs: one-hot rows times the factor matrices (MMULT)",
        "movielens_emb": "the same pairs: factors looked up with INDEX (and OFFSET); the same RMSE",
        "bias": "the dot product plus a user bias and a movie bias",
        "bias_yrange": "the bias model squashed into a range: lo + (hi - lo) * sigmoid",
        "gd_steps": "gradient descent unrolled in formulas, checked against autograd and torch.optim.SGD",
        "interpret": "movies ranked by learned bias; principal components of the movie factors by power "
                     "iteration in formulas",
        "word_emb": "a sentence as word ids (MATCH) and as vectors (INDEX): nn.Embedding",
    }
    inputs = (
        *(key for table in CROSSTABS for key in table.inputs),
        DOTPROD.key("user_ids"), DOTPROD.key("movie_ids"), DOTPROD.key("movie_titles"),
        INTERPRET.format("genre"), INTERPRET.format("start"),
        *(f"{sheet}!{name}" for sheet in PAIR_SHEETS for name in PAIR_INPUTS),
        "gd_steps!ratings", "gd_steps!lr", *(f"gd_steps!{name}" for name in GD_WEIGHTS),
        "word_emb!vocab", "word_emb!embedding", "word_emb!sentence",
    )
    params = frozenset(
        [key for table in CROSSTABS for key in table.weights]
        + [f"gd_steps!{name}" for name in GD_WEIGHTS] + ["word_emb!embedding"])
    text_inputs = frozenset({"word_emb!vocab", "word_emb!sentence", DOTPROD.key("movie_titles"),
                             INTERPRET.format("genre")})
    blank_inputs = frozenset({*(table.key("ratings") for table in CROSSTABS), "gd_steps!ratings"})

    def default_inputs(self, seed: int, ratings=None, users: int = 15, movies: int = 15,
                       factors: int = 5) -> dict[str, np.ndarray]:
        for flag, value, least in (("users", users, 2), ("movies", movies, 2), ("factors", factors, 1)):
            if not isinstance(value, int) or value < least:
                raise UsageError(f"--{flag} {value}: give a whole number of at least {least}")
        if ratings:
            table, source = load_ratings(ratings), str(ratings)
            movie_table = load_movies(ratings)
        else:
            n_movies = max(200, 14 * movies)
            table = synthetic_ratings(seed, max(100, 7 * users), n_movies)
            movie_table, source = synthetic_movies(seed, n_movies), "the built-in data"
        user_ids, movie_ids, grid = crosstab(table, users, movies, source)
        titles, genres = movie_labels(movie_table, movie_ids)
        out = {key: value for crosstab_sheet in CROSSTABS
               for key, value in crosstab_sheet.defaults(grid, factors, seed).items()}
        out |= {DOTPROD.key("user_ids"): user_ids.reshape(-1, 1),
                DOTPROD.key("movie_ids"): movie_ids.reshape(1, -1),
                DOTPROD.key("movie_titles"): np.array(titles, dtype=object).reshape(1, -1),
                INTERPRET.format("genre"): np.array(genres, dtype=object).reshape(-1, 1),
                INTERPRET.format("start"): np.ones((factors, 1))}
        return out | _pair_defaults(user_ids, movie_ids, grid) | _gd_defaults(grid, factors, seed) \
            | _word_defaults(seed)

    def compute(self, inputs) -> dict[str, torch.Tensor]:
        out = {key: value for table in CROSSTABS for key, value in table.compute(inputs).items()}
        for sheet in PAIR_SHEETS:
            out |= pair_quantities(inputs, sheet)
        return out | gd_quantities(inputs) | interpret_quantities(inputs) | word_quantities(inputs)

    def layout(self, book: Book) -> None:
        book.notes("Collaborative filtering", notes(book.values))
        layout_crosstab(book, DOTPROD)
        for sheet in PAIR_SHEETS:
            layout_pairs(book, sheet)
        for table in CROSSTABS[1:]:
            layout_crosstab(book, table)
        layout_gd(book)
        layout_interpret(book)
        layout_words(book)


# ---------------------------------------------------------------- the sheets' layout

def _blocks(reader: Sheet, sheet: str) -> dict:
    """The blocks of a sheet already written, as the formulas of `reader` refer to them."""
    return {name: block.seen_from(reader) for name, block in reader.book.sheet_named(sheet).blocks.items()}


def _labels(book: Book) -> tuple[list[str], list[str]]:
    """The crosstab's user ids and movie ids, as row and column labels."""
    return _ids(book.values[DOTPROD.key("user_ids")]), _ids(book.values[DOTPROD.key("movie_ids")])


def _ratings_block(sheet: Sheet, top: int, left: int, caption: str):
    """The ratings crosstab, labelled by the ids (which `dotprod` holds as named inputs)."""
    user_labels, movie_labels = _labels(sheet.book)
    if sheet.name != DOTPROD.sheet:
        return sheet.block("ratings", top, left, headers=movie_labels, row_labels=user_labels,
                           caption=caption)
    sheet.block("movie_titles", top - 2, left, caption=caption)
    sheet.block("movie_ids", top - 1, left)
    sheet.block("user_ids", top, left - 1)
    return sheet.block("ratings", top, left)


CROSSTAB_TEXT = {
    "dotprod": ("Collaborative filtering as a dot product",
                "prediction = user factors . movie factors, for every cell (MMULT); "
                "RMSE over the rated cells only (blank = not rated)."),
    "bias": ("Dot product plus biases",
             "prediction = user factors . movie factors + user bias + movie bias: some users rate "
             "everything high, some movies everyone likes."),
    "bias_yrange": ("Dot product plus biases, squashed into a range",
                    "prediction = y_lo + (y_hi - y_lo) * sigmoid(dot + biases), as the lesson's model: "
                    "the range is a little wider than the ratings so that 5 is reachable."),
}


def layout_crosstab(book: Book, table: Crosstab) -> None:
    """Ratings on top, movie weights above the predictions, user weights to their left."""
    sheet = book.sheet(table.sheet, *CROSSTAB_TEXT[table.sheet])
    user_labels, movie_labels = _labels(book)
    n_users = len(user_labels)
    factors = book.values[table.key("user_factors")].shape[1]
    left = factors + 3  # the matrices' first column: user factors, user bias and labels before it
    if table.y_range:
        for row, name in ((4, "y_lo"), (5, "y_hi")):
            sheet.text(row, 0, name, "header")
            sheet.block(name, row, 1)
    top = 9
    ratings = _ratings_block(sheet, top, left, "ratings (blank = not rated)")
    weights_top = top + n_users + 3
    movie_factors = sheet.block("movie_factors", weights_top, left, row_labels=_factor_names(factors),
                                caption="movie factors (trained by torch, as Solver did)")
    top = weights_top + factors + 4
    user_factors = sheet.block("user_factors", top, 1, headers=_factor_names(factors),
                               row_labels=user_labels, caption="user factors")
    product = f"MMULT({user_factors.ref},{movie_factors.ref})"
    if table.bias:
        movie_bias = sheet.block("movie_bias", weights_top + factors, left, row_labels=["bias"])
        user_bias = sheet.block("user_bias", top, factors + 1, headers=["bias"])
        dot = sheet.block("dot", top, left, array=product, headers=movie_labels, row_labels=user_labels,
                          caption="dot product of the factors (MMULT)")

        def prediction(r: int, c: int) -> str:
            x = f"{dot.cell(r, c)}+{user_bias.cell(r)}+{movie_bias.cell(0, c)}"
            return f"=y_lo+(y_hi-y_lo)/(1+EXP(-({x})))" if table.y_range else f"={x}"

        caption = "prediction = " + ("y_lo + (y_hi - y_lo) * sigmoid(dot + biases)" if table.y_range
                                     else "dot + user bias + movie bias")
        predictions = sheet.block("predictions", dot.bottom + 4, left, formula=prediction,
                                  headers=movie_labels, row_labels=user_labels, caption=caption)
    else:
        predictions = sheet.block("predictions", top, left, array=product, headers=movie_labels,
                                  row_labels=user_labels, caption="prediction = dot product (MMULT)")
    sheet.text(3, 0, "RMSE", "header")
    r, p = ratings.ref, predictions.ref
    sheet.block("rmse", 3, 1, result=True, formula=f'=SQRT(SUMPRODUCT(({r}<>"")*({r}-{p})^2)/COUNT({r}))')
    sheet.text(3, 2, "over the rated cells only: blanks are masked explicitly, so every spreadsheet "
                     "engine computes the same number")


PAIR_TEXT = {
    "movielens_1hot": ("Embedding as a one-hot matrix multiplication",
                       "Each rated pair's user and movie as one-hot rows; one-hot x factor matrix "
                       "(MMULT) selects one row of dotprod's factors."),
    "movielens_emb": ("Embedding as an array lookup",
                      "The same pairs, the factors looked up with INDEX (and the lesson's OFFSET): the "
                      "same activations, predictions and RMSE, without the big matrix of zeros."),
}


def layout_pairs(book: Book, name: str) -> None:
    """The rated pairs one per row, their factors from `dotprod` by one-hot matmul or by lookup."""
    sheet = book.sheet(name, *PAIR_TEXT[name])
    dotprod = _blocks(sheet, DOTPROD.sheet)
    user_factors, movie_factors = dotprod["user_factors"], dotprod["movie_factors"]
    user_labels, movie_labels = _labels(book)
    factor_names = _factor_names(user_factors.cols)
    top = 7
    user_id = sheet.block("user_id", top, 1, headers=["user id"], caption="the rated pairs")
    movie_id = sheet.block("movie_id", top, 2, headers=["movie id"])
    rating = sheet.block("rating", top, 3, headers=["rating"])
    user_ids, movie_ids = dotprod["user_ids"].ref, dotprod["movie_ids"].ref
    user_index = sheet.block("user_index", top, 5, headers=["user index"], caption="exact MATCH",
                             formula=lambda r, c: f"=MATCH({user_id.cell(r)},{user_ids},0)")
    movie_index = sheet.block("movie_index", top, 6, headers=["movie index"],
                              formula=lambda r, c: f"=MATCH({movie_id.cell(r)},{movie_ids},0)")
    if name == "movielens_1hot":
        user_onehot = sheet.block("user_onehot", top, 8, headers=user_labels, caption="one-hot of the user",
                                  formula=lambda r, c: f"=IF({user_index.cell(r)}={c + 1},1,0)")
        movie_onehot = sheet.block("movie_onehot", top, user_onehot.right + 2, headers=movie_labels,
                                   caption="one-hot of the movie",
                                   formula=lambda r, c: f"=IF({movie_index.cell(r)}={c + 1},1,0)")
        user = sheet.block("user_activations", top, movie_onehot.right + 2, headers=factor_names,
                           array=f"MMULT({user_onehot.ref},{user_factors.ref})",
                           caption="one-hot x user factors (MMULT)")
        movie = sheet.block("movie_activations", top, user.right + 2, headers=factor_names,
                            array=f"MMULT({movie_onehot.ref},TRANSPOSE({movie_factors.ref}))",
                            caption="one-hot x movie factors (MMULT)")
    else:
        user = sheet.block("user_embedding", top, 8, headers=factor_names, caption="user factors: INDEX",
                           formula=lambda r, c: f"=INDEX({user_factors.ref},{user_index.cell(r)},{c + 1})")
        movie = sheet.block("movie_embedding", top, user.right + 2, headers=factor_names,
                            caption="movie factors: INDEX",
                            formula=lambda r, c: f"=INDEX({movie_factors.ref},{c + 1},"
                                                 f"{movie_index.cell(r)})")
    prediction = sheet.block("prediction", top, movie.right + 2, headers=["prediction"],
                             caption="dot product",
                             formula=lambda r, c: f"=SUMPRODUCT({user.row(r)},{movie.row(r)})")
    sq_error = sheet.block("sq_error", top, prediction.right + 1, headers=["squared error"],
                           formula=lambda r, c: f"=({prediction.cell(r)}-{rating.cell(r)})^2")
    if name == "movielens_emb":
        offset = sheet.block("user_embedding_offset", top, sq_error.right + 2, headers=factor_names,
                             caption="the lesson's OFFSET form: the same user factors",
                             formula=lambda r, c: f"=OFFSET({user_factors.ref},"
                                                  f"{user_index.cell(r)}-1,{c},1,1)")
        sheet.block("movie_embedding_offset", top, offset.right + 2, headers=factor_names,
                    caption="and the same movie factors",
                    formula=lambda r, c: f"=OFFSET({movie_factors.ref},{c},{movie_index.cell(r)}-1,1,1)")
    sheet.text(3, 0, "RMSE", "header")
    sheet.block("rmse", 3, 1, result=True, formula=f"=SQRT(AVERAGE({sq_error.ref}))")
    sheet.text(3, 2, "equal to dotprod's RMSE: the same factors, the same rated cells")


def layout_gd(book: Book) -> None:
    """Rates and RMSE per step on top, the ratings, then one band of rows per step."""
    sheet = book.sheet("gd_steps", "Training in the workbook: gradient descent, unrolled",
                       f"{GD_STEPS} full-batch steps on the bias model; the gradients of the mean squared "
                       "error written as spreadsheet math; torch: autograd and torch.optim.SGD.")
    user_labels, movie_labels = _labels(book)
    n_users, factors = book.values["gd_steps!user_factors"].shape
    factor_names = _factor_names(factors)
    left = factors + 3
    sheet.text(3, 0, "lr", "header")
    lr = sheet.block("lr", 3, 1)
    sheet.text(4, 0, "rated cells", "header")
    rmse_top = 8
    ratings_top = max(rmse_top + GD_STEPS + 1, 20) + 3
    ratings = _ratings_block(sheet, ratings_top, left, "ratings (blank = not rated)")
    n_rated = sheet.block("n_rated", 4, 1, num_format="0", formula=f"=COUNT({ratings.ref})")
    top = ratings.bottom + 3
    previous, errors = None, []
    for step in range(GD_STEPS + 1):
        weights, error, grads = _gd_band(sheet, step, top, previous, ratings, lr, n_rated,
                                         factor_names, user_labels, movie_labels)
        errors.append(error)
        previous = weights, grads
        top += factors + n_users + 8
    rmse = sheet.block("rmse", rmse_top, 1, headers=["RMSE"], result=True,
                       row_labels=[str(step) for step in range(GD_STEPS + 1)],
                       caption="RMSE after each step",
                       formula=lambda r, c: f"=SQRT(SUMSQ({errors[r].ref})/{n_rated.ref})")
    sheet.text(rmse_top - 1, 0, "step", "header")
    sheet.line_chart("RMSE per gradient-descent step", [("RMSE", rmse)], 3, left, y_title="RMSE")


def _gd_band(sheet: Sheet, step: int, top: int, previous: tuple[dict, dict] | None, ratings, lr,
             n_rated, factor_names, user_labels, movie_labels):
    """One step's rows: its weights (inputs at step 0, else the last step's weights - lr x their
    gradients, from `previous`), the masked error and, before the last step, the gradients.
    Returns (weight blocks, error block, gradient blocks or None)."""
    factors = len(factor_names)
    left, suffix = factors + 3, f"_{step}" if step else ""
    sheet.text(top, 0, f"step {step}: " + ("the starting weights (edit them)" if not step
                                            else f"weights = step {step - 1}'s weights - lr x gradient"),
               "title")

    def weight(name: str, row: int, col: int, **decoration):
        if previous is None:
            return sheet.block(name, row, col, **decoration)
        old, grad = previous[0][name], previous[1][name]
        return sheet.block(name + suffix, row, col, **decoration,
                           formula=lambda r, c: f"={old.cell(r, c)}-{lr.ref}*{grad.cell(r, c)}")

    movie_top, user_top = top + 3, top + factors + 6
    error_left = left + len(movie_labels) + 1
    grad_left = error_left + len(movie_labels) + 1
    weights = {
        "movie_factors": weight("movie_factors", movie_top, left, row_labels=factor_names,
                                caption="movie factors"),
        "movie_bias": weight("movie_bias", movie_top + factors, left, row_labels=["bias"]),
        "user_factors": weight("user_factors", user_top, 1, headers=factor_names, row_labels=user_labels,
                               caption="user factors"),
        "user_bias": weight("user_bias", user_top, factors + 1, headers=["bias"]),
    }
    dot = sheet.block(f"dot_{step}", user_top, left, headers=movie_labels, row_labels=user_labels,
                      array=f"MMULT({weights['user_factors'].ref},{weights['movie_factors'].ref})")
    sheet.text(user_top - 2, left, "dot product (MMULT)")
    error = sheet.block(
        f"error_{step}", user_top, error_left, headers=movie_labels,
        formula=lambda r, c: f'=IF({ratings.cell(r, c)}="",0,{dot.cell(r, c)}'
                             f'+{weights["user_bias"].cell(r)}+{weights["movie_bias"].cell(0, c)}'
                             f'-{ratings.cell(r, c)})')
    sheet.text(user_top - 2, error_left, "error = prediction - rating (0 where not rated)")
    if step == GD_STEPS:
        return weights, error, None
    two_over_n = f"2/{n_rated.ref}"
    grads = {
        "movie_factors": sheet.block(
            f"grad_movie_factors_{step}", movie_top, error_left, caption="gradients of the MSE",
            array=f"{two_over_n}*MMULT(TRANSPOSE({weights['user_factors'].ref}),{error.ref})"),
        "movie_bias": sheet.block(f"grad_movie_bias_{step}", movie_top + factors, error_left,
                                  formula=lambda r, c: f"={two_over_n}*SUM({error.column(c)})"),
        "user_factors": sheet.block(
            f"grad_user_factors_{step}", user_top, grad_left, headers=factor_names,
            caption="gradients: 2/n MMULT(error, TRANSPOSE(movie factors))",
            array=f"{two_over_n}*MMULT({error.ref},TRANSPOSE({weights['movie_factors'].ref}))"),
        "user_bias": sheet.block(f"grad_user_bias_{step}", user_top, grad_left + factors, headers=["bias"],
                                 formula=lambda r, c: f"={two_over_n}*SUM({error.row(r)})"),
    }
    return weights, error, grads


def layout_words(book: Book) -> None:
    sheet = book.sheet("word_emb", "Word embeddings: the same lookup for words",
                       "A word's id is its row in the vocabulary (exact MATCH); its vector is that row of "
                       "the embedding matrix (INDEX), as nn.Embedding returns.")
    top = 5
    dims = [f"dim {i + 1}" for i in range(book.values["word_emb!embedding"].shape[1])]
    vocab = sheet.block("vocab", top, 1, headers=["word"], caption="the vocabulary")
    embedding = sheet.block("embedding", top, 2, headers=dims, caption="its embedding matrix")
    sentence = sheet.block("sentence", top, embedding.right + 3, headers=["sentence"],
                           caption="a sentence, one word a row")
    word_id = sheet.block("word_id", top, sentence.right + 1, headers=["word id"],
                          formula=lambda r, c: f"=MATCH({sentence.cell(r)},{vocab.ref},0)")
    sheet.block("word_vectors", top, word_id.right + 2, headers=dims, result=True,
                caption="its vector: INDEX(embedding, word id, dim)",
                formula=lambda r, c: f"=INDEX({embedding.ref},{word_id.cell(r)},{c + 1})")


def layout_interpret(book: Book) -> None:
    """The movies with their bias and component scores, the chart and the rankings on top; below, the
    components worked out: centred factors, covariance, power iteration, sign, deflation."""
    sheet = book.sheet(
        "interpret", "Interpreting the embeddings: bias ranking and principal components",
        f"The lesson's model ({INTERPRETED.sheet}): movies ranked by learned bias, and the first two "
        f"principal components of the movie factors, by {POWER_STEPS} power-iteration steps each, in "
        "formulas.")
    source, dotprod = _blocks(sheet, INTERPRETED.sheet), _blocks(sheet, DOTPROD.sheet)
    titles = [str(t) for t in book.values[DOTPROD.key("movie_titles")].ravel()]
    top = 7
    sheet.block("movie_id", top, 1, headers=["movie id"], row_labels=titles, num_format="0",
                caption="the movies: id, genre, learned bias and scores on the two components",
                formula=lambda r, c: f"=INDEX({dotprod['movie_ids'].ref},1,{r + 1})")
    sheet.block("genre", top, 2, headers=["genre"])
    bias = sheet.block("movie_bias", top, 3, headers=["bias"],
                       formula=lambda r, c: f"=INDEX({source['movie_bias'].ref},1,{r + 1})")
    scores = sheet.area("pc_scores", top, 4)
    n = ranked_count(len(titles))
    rank_top = top + len(titles) + 4
    rank_labels = [f"top {k + 1}" for k in range(n)] + [f"bottom {k + 1}" for k in range(n)]
    for i, (name, column) in enumerate((("bias", bias.ref), ("PC1", scores.column(0)),
                                        ("PC2", scores.column(1)))):
        _ranking_blocks(sheet, name, rank_top, 1 + 4 * i, column, dotprod["movie_ids"], n, rank_labels)
    sheet.text(rank_top - 2, 1, "ranked by bias, PC1 and PC2: LARGE / SMALL, the movie's row above by exact "
                                "MATCH, its id by INDEX")
    centred, loadings = _component_blocks(sheet, source["movie_factors"], titles, rank_top + 2 * n + 5)
    sheet.block("pc_scores", top, scores.left, headers=["PC1", "PC2"], result=True,
                formula=lambda r, c: f"=SUMPRODUCT({centred.row(r)},{loadings.row(c)})")
    labels = [quote_sheetname(sheet.name) + "!" + xl_rowcol_to_cell(top + r, 0, True, True)
              for r in range(len(titles))]
    sheet.scatter_chart("The movies on the first two components", scores, scores, 3, 7, x_col=0, y_col=1,
                        x_title="PC1", y_title="PC2", point_labels=labels)


def _component_blocks(sheet: Sheet, movie_factors: Block, titles: list[str], top: int) -> tuple[Block, Block]:
    """The factors' mean, the centred factors, their covariance, the start vector, both power
    iterations, the deflated covariance, the components and their variances. Returns the centred
    factors and the components (`pc_loadings`)."""
    factors = movie_factors.rows
    factor_names = _factor_names(factors)
    mean = sheet.block("factor_mean", top, 1, headers=factor_names, row_labels=["mean"],
                       caption=f"principal components of {movie_factors.sheet.name}'s movie factors: each "
                               "factor's mean over the movies",
                       formula=lambda r, c: f"=AVERAGE({movie_factors.row(c)})")
    top += 4
    centred = sheet.block(
        "centred", top, 1, headers=factor_names, row_labels=titles, caption="the factors minus their mean",
        formula=lambda r, c: f"=INDEX({movie_factors.ref},{c + 1},{r + 1})-{mean.cell(0, c)}")
    matrix_left = factors + 3
    covariance = sheet.block(
        "covariance", top, matrix_left, headers=factor_names, row_labels=factor_names,
        caption="covariance = MMULT(TRANSPOSE(centred), centred) / (movies - 1)",
        array=f"MMULT(TRANSPOSE({centred.ref}),{centred.ref})/(ROWS({centred.ref})-1)")
    start = sheet.block("start", top, 2 * factors + 5, headers=["start"], row_labels=factor_names,
                        caption="start vector (edit it)")
    loadings = sheet.area("pc_loadings", top, 2 * factors + 8)
    variance = sheet.area("pc_variance", top, loadings.right + 2)
    deflated = sheet.block(
        "deflated", top + factors + 4, matrix_left, headers=factor_names, row_labels=factor_names,
        caption="deflated = covariance - variance of PC1 x PC1 x PC1 transposed",
        formula=lambda r, c: f"={covariance.cell(r, c)}-{variance.cell(0)}*{loadings.cell(0, r)}"
                             f"*{loadings.cell(0, c)}")
    steps_top = max(top + len(titles), deflated.bottom) + 5
    matrices = (covariance, deflated)
    last = [_power_blocks(sheet, pc, matrices[pc - 1], start, steps_top + (pc - 1) * 2 * (factors + 4),
                          factor_names).column(POWER_STEPS - 1) for pc in (1, 2)]
    loadings = sheet.block(
        "pc_loadings", top, loadings.left, headers=factor_names, row_labels=["PC1", "PC2"],
        caption="the components: each one's last step, its sign fixed",
        formula=lambda r, c: f"=INDEX({last[r]},{c + 1})*IF(MAX({last[r]})>=-MIN({last[r]}),1,-1)")
    variance = sheet.block(
        "pc_variance", top, variance.left, headers=["variance"],
        formula=lambda r, c: f"=SUMPRODUCT({loadings.row(r)},MMULT({loadings.row(r)},{matrices[r].ref}))")
    sheet.block("variance_share", top, variance.right + 1, headers=["share"], result=True,
                formula=lambda r, c: f"={variance.cell(r)}/(SUMSQ({centred.ref})/(ROWS({centred.ref})-1))")
    return centred, loadings


def _ranking_blocks(sheet: Sheet, what: str, top: int, left: int, column: str, movie_ids: Block, n: int,
                    row_labels: list[str]) -> None:
    """The n largest then the n smallest values of `column` (`<what>_ranked`, lower case), each one's
    position by exact MATCH (`<what>_ranked_movie`) and its movie id by INDEX (`<what>_ranked_id`)."""
    header, what = what, what.lower()
    ranked = sheet.block(
        f"{what}_ranked", top, left, headers=[header], row_labels=row_labels, result=True,
        formula=lambda r, c: f"=LARGE({column},{r + 1})" if r < n else f"=SMALL({column},{r - n + 1})")
    position = sheet.block(f"{what}_ranked_movie", top, left + 1, headers=["movie #"], num_format="0",
                           formula=lambda r, c: f"=MATCH({ranked.cell(r)},{column},0)")
    sheet.block(f"{what}_ranked_id", top, left + 2, headers=["movie id"], num_format="0",
                formula=lambda r, c: f"=INDEX({movie_ids.ref},1,{position.cell(r)})")


def _power_blocks(sheet: Sheet, pc: int, matrix: Block, start: Block, top: int, factor_names) -> Block:
    """One component's power iteration, a column per step: w = matrix x v, then v = w / |w|.
    Returns the block of the normalised vectors."""
    steps = [f"step {j + 1}" for j in range(POWER_STEPS)]
    vectors = sheet.area(f"pc{pc}_steps", top + len(factor_names) + 4, 1)
    previous = [start.column(0)] + [vectors.column(j) for j in range(POWER_STEPS - 1)]
    what = "covariance" if pc == 1 else "deflated covariance"
    products = sheet.block(
        f"pc{pc}_products", top, 1, headers=steps, row_labels=factor_names,
        caption=f"PC{pc}: power iteration on the {what}; w = {what} x v, one column per step "
                "(SUMPRODUCT of a column of the symmetric matrix and the last v)",
        formula=lambda r, c: f"=SUMPRODUCT({matrix.column(r)},{previous[c]})")
    return sheet.block(f"pc{pc}_steps", vectors.top, 1, headers=steps, row_labels=factor_names,
                       caption="v = w / SQRT(SUMSQ(w)): the normalised step",
                       formula=lambda r, c: f"={products.cell(r, c)}/SQRT(SUMSQ({products.column(c)}))")


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
    "user factors 2/n MMULT(error, TRANSPOSE(movie factors))) and the new weights = weights - lr x "
    "gradient. The chart shows the RMSE falling. torch does the same steps with autograd and "
    "torch.optim.SGD.",
    "word_emb: the same lookup for words: a word's id is its row in the vocabulary, its vector that "
    "row of the embedding matrix.",
    "Try: change a factor, a rating (or blank one out), the learning rate or y_hi, save, then run "
    "`lessonxl verify collab_filter.xlsx`: torch recomputes everything from your numbers and compares "
    "every formula cell. Raise lr on gd_steps until the RMSE blows up.",
)


def notes(values) -> tuple[str, ...]:
    """The notes sheet's paragraphs: NOTES with the paragraph on `interpret` before word_emb's."""
    return NOTES[:-2] + (interpret_note(values),) + NOTES[-2:]


def interpret_note(values) -> str:
    """What `interpret` shows, with the convergence and genre figures measured on this data."""
    variances = torch.linalg.eigvalsh(torch.as_tensor(values[INTERPRET.format("covariance")])).flip(0)
    ratios = [(variances[i + 1] / variances[i]).item() for i in range(min(2, len(variances) - 1))]
    shrink = " and ".join(f"{ratio:.2f}^{POWER_STEPS} = {ratio ** POWER_STEPS:.0e}" for ratio in ratios)
    shrink = f", {shrink} here" if shrink else ""
    genres = genre_shares(values[INTERPRET.format("genre")].ravel(),
                          np.asarray(values[INTERPRET.format("pc_scores")])[:, 0],
                          ranked_count(len(values[INTERPRET.format("movie_bias")])))
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
