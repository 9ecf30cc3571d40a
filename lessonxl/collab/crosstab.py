"""collab_filter's crosstab sheets (dotprod, bias, bias_yrange): every cell of the ratings crosstab
predicted from latent factors, and the labels the other sheets give the crosstab's users and movies."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..lesson import SheetSpec
from .models import EmbeddingDot, Recipe, Y_RANGE, all_pairs, model_from_sheet, sheet_weights, train

if TYPE_CHECKING:  # the file writer: needed to generate, not to verify
    from ..sheets import Block, Sheet

RATINGS_CAPTION = "ratings (blank = not rated)"
#: The share of the rated cells held out of training (fastai's valid_pct; the lesson's was 0.1 of 100,000
#: ratings: a crosstab of 190 holds so few that a fifth is held out, 38 on the default workbook).
VALID_SHARE = 0.2
#: How torch trains the crosstab's models: the lesson's recipe (fastai's collab_learner, wd 0.1, batches
#: of 64, one cycle) at lr 1e-2 instead of 5e-3, for 5 epochs or CROSSTAB_STEPS optimizer steps, whichever
#: is more (`crosstab_recipe`): the default crosstab's ~150 training ratings make 3 batches an epoch where
#: the lesson's 90,000 made 1,400, so it takes 100 epochs. Measured on the built-in data (seeds 0-4, 15 x 15,
#: a fifth held out): held-out RMSE of bias_yrange 0.72 on average against 1.06 for the training mean; the
#: lesson's own 5 epochs at 5e-3 leave every prediction near the sigmoid's middle.
CROSSTAB_STEPS = 300


def crosstab_recipe(n_train: int) -> Recipe:
    """The recipe for a crosstab of `n_train` training ratings (see CROSSTAB_STEPS)."""
    batches = math.ceil(n_train / Recipe.bs)
    return Recipe(epochs=max(Recipe.epochs, math.ceil(CROSSTAB_STEPS / batches)), lr=1e-2)


def id_labels(ids: np.ndarray) -> list[str]:
    """Ids as row or column labels: 7 for 7.0."""
    return [f"{v:g}" for v in np.asarray(ids, dtype=np.float64).ravel()]


def factor_labels(factors: int) -> list[str]:
    return [f"factor {i + 1}" for i in range(factors)]


def crosstab_labels(sheet: Sheet) -> tuple[list[str], list[str]]:
    """The crosstab's user ids and movie ids (inputs of `dotprod`), as row and column labels."""
    return tuple(id_labels(sheet.block_on(DOTPROD.name, name).values) for name in ("user_ids", "movie_ids"))


def labelled_ratings(sheet: Sheet, top: int, left: int) -> Block:
    """The sheet's ratings crosstab at (top, left), labelled by the ids that `dotprod` holds."""
    user_labels, movie_labels = crosstab_labels(sheet)
    return sheet.block("ratings", top, left, headers=movie_labels, row_labels=user_labels, caption=RATINGS_CAPTION)


# ---------------------------------------------------------------- the crosstab sheets

@dataclass(frozen=True)
class CrosstabModel(SheetSpec):
    """A sheet that predicts every cell of the ratings crosstab from latent factors: the dot product
    (`dotprod`), plus a user and a movie bias (`bias`), squashed into y_lo..y_hi by a sigmoid
    (`bias_yrange`, the lesson's model). The ratings, the weights torch trained the lesson's way (as Solver
    did in the original), a prediction for every cell and the RMSE over the rated cells.

    With `held_out` (every release from 0.5.0), some rated cells are held out of training, marked 1 in the
    input `valid`: the RMSE over the cells trained on (`train_rmse`) and over the held-out ones
    (`valid_rmse`), and the baseline to beat, each held-out rating predicted by the mean training rating
    (`train_mean`, `mean_rmse`). Files of earlier releases have none of these (`CollabFilter.specs_before`).
    """

    name: str
    title: str
    subtitle: str
    teaches: str
    bias: bool = False
    y_range: bool = False
    holds_ids: bool = False  # the crosstab's user ids, movie ids and titles are this sheet's inputs
    held_out: bool = True    # a validation split of the rated cells, and the RMSEs it gives

    @property
    def weights(self) -> tuple[str, ...]:
        return ("user_factors", "movie_factors") + (("user_bias", "movie_bias") if self.bias else ())

    @property
    def inputs(self) -> tuple[str, ...]:
        return (("ratings", *(("valid",) if self.held_out else ()), *self.weights)
                + (("y_lo", "y_hi") if self.y_range else ())
                + (("user_ids", "movie_ids", "movie_titles") if self.holds_ids else ()))

    @property
    def params(self) -> frozenset[str]:
        return frozenset(self.weights)

    @property
    def blank_inputs(self) -> frozenset[str]:
        """Unrated cells are blank, and so are the cells of `valid` not held out."""
        return frozenset({"ratings", "valid"} if self.held_out else {"ratings"})

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
        if self.held_out:
            out |= held_out_rmse(ratings, torch.nan_to_num(values["valid"]), predictions)
        return out

    def layout(self, sheet: Sheet) -> None:
        """y_lo and y_hi, the ratings, the movie weights below them, the user weights to the left of
        the predictions (and of the dot product, on the bias sheets) below those; the RMSE on top."""
        factors = sheet.value("user_factors").shape[1]
        factor_names = factor_labels(factors)
        left = factors + 3  # the matrices' first column: the user factors, their bias and labels before it
        if self.y_range:
            y_lo = sheet.labelled("y_lo", 9, 1, "y_lo")
            y_hi = sheet.labelled("y_hi", 10, 1, "y_hi")
        ratings = self._ratings(sheet, 12, left)
        if self.held_out:
            valid = held_out_mask(sheet, ratings)
        user_labels, movie_labels = crosstab_labels(sheet)
        movies = sheet.down(ratings.bottom + 4, left)
        movie_factors = movies.block("movie_factors", row_labels=factor_names,
                                     caption="movie factors (trained by torch the lesson's way, as Solver did "
                                             "in the original)")
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
        sheet.labelled("rmse", 3, 1, "RMSE", result=not self.held_out,
                       formula=f'=SQRT(SUMPRODUCT(({r}<>"")*({r}-{p})^2)/COUNT({r}))')
        sheet.text(3, 2, "over the rated cells only: blanks are masked explicitly, so every spreadsheet "
                         "engine computes the same number")
        if self.held_out:
            held_out_blocks(sheet, ratings, valid, predictions, 4)

    def _ratings(self, sheet: Sheet, top: int, left: int) -> Block:
        """The ratings crosstab; on the sheet that holds them, the titles, movie ids and user ids as
        its labels (inputs, like the ratings), elsewhere those ids as headers."""
        if not self.holds_ids:
            return labelled_ratings(sheet, top, left)
        sheet.block("movie_titles", top - 2, left, caption=RATINGS_CAPTION)
        sheet.block("movie_ids", top - 1, left)
        sheet.block("user_ids", top, left - 1)
        return sheet.block("ratings", top, left)

    def defaults(self, ratings: np.ndarray, valid: np.ndarray, factors: int, seed: int) -> dict[str, np.ndarray]:
        """The ratings, the held-out cells `valid` and the weights torch trains on the others the lesson's way
        (`crosstab_recipe`: the Solver's job), to 6 decimals: the same file on any machine, whatever its
        last-bit rounding during training; y_lo and y_hi."""
        y_range = Y_RANGE if self.y_range else None
        n_train = int((~np.isnan(ratings) & np.isnan(valid)).sum())
        model, _ = train(torch.tensor(ratings), factors, seed, self.bias, y_range, crosstab_recipe(n_train),
                         torch.tensor(valid))
        weights = {self.key(name): np.round(w.numpy(), 6) for name, w in sheet_weights(model).items()}
        out = {self.key("ratings"): ratings, self.key("valid"): valid, **weights}
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


# ---------------------------------------------------------------- held-out ratings

def held_out_rmse(ratings: torch.Tensor, valid: torch.Tensor, predictions: torch.Tensor) -> dict[str, torch.Tensor]:
    """The RMSE over the rated cells trained on (valid 0) and over those held out (valid 1), the mean
    training rating and the RMSE of predicting every held-out rating by it. A `valid` cell other than 0
    or 1 weighs its cell as the formulas do: (1 - valid) in training, valid held out."""
    rated = (~torch.isnan(ratings)).to(ratings.dtype)
    known = torch.nan_to_num(ratings)
    train, held = rated * (1 - valid), rated * valid
    squared = rated * (predictions - known) ** 2

    def weighted(weight, value):
        return ((weight * value).sum() / weight.sum()).reshape(1, 1)

    mean = weighted(train, known)
    return {"train_rmse": weighted(train, squared).sqrt(), "valid_rmse": weighted(held, squared).sqrt(),
            "train_mean": mean, "mean_rmse": weighted(held, (known - mean) ** 2).sqrt()}


def held_out_mask(sheet: Sheet, ratings: Block) -> Block:
    """The input `valid` right of the ratings (1 = held out of training, blank = trained on: every formula
    takes a blank for 0), and the held-out ratings marked in the crosstab (a conditional format: edit the
    mask, the marks follow)."""
    _, movie_labels = crosstab_labels(sheet)
    valid = sheet.block("valid", ratings.top, ratings.right + 2, headers=movie_labels, num_format="0",
                        caption="valid: 1 = held out of training (orange in the ratings), blank or 0 = trained on")
    marked = sheet.book.workbook.add_format({"bg_color": "#F8CBAD", "font_color": "#833C0B", "bold": True})
    sheet.ws.conditional_format(ratings.top, ratings.left, ratings.bottom, ratings.right, {
        "type": "formula", "criteria": f'=AND({ratings.cell()}<>"",{valid.cell()}=1)', "format": marked})
    return valid


def held_out_blocks(sheet: Sheet, ratings: Block, valid: Block, predictions: Block, row: int) -> None:
    """train_rmse, valid_rmse, train_mean and mean_rmse in column 1 from `row` down, each explained right of it."""
    r, v, p = ratings.ref, valid.ref, predictions.ref
    train, held = f'({r}<>"")*(1-{v})', f'({r}<>"")*{v}'
    rows = (
        ("train_rmse", "train RMSE", False, f"=SQRT(SUMPRODUCT({train}*({r}-{p})^2)/SUMPRODUCT({train}))",
         "over the rated cells trained on (valid blank or 0)"),
        ("valid_rmse", "valid RMSE", True, f"=SQRT(SUMPRODUCT({held}*({r}-{p})^2)/SUMPRODUCT({held}))",
         "over the held-out cells (valid = 1): ratings training never saw"),
        ("train_mean", "train mean", False, f"=SUMPRODUCT({train}*{r})/SUMPRODUCT({train})",
         "the mean rating of the cells trained on"),
        ("mean_rmse", "mean RMSE", True, None,
         "each held-out rating predicted by the train mean: the baseline valid RMSE must beat"),
    )
    for k, (name, label, result, formula, text) in enumerate(rows):
        if formula is None:
            mean = sheet.blocks["train_mean"].ref
            formula = f"=SQRT(SUMPRODUCT({held}*({r}-{mean})^2)/SUMPRODUCT({held}))"
        sheet.labelled(name, row + k, 1, label, result=result, formula=formula, widen=True)
        sheet.text(row + k, 2, text)
