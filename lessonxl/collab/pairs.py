"""collab_filter's rated-pairs sheets: the crosstab's rated cells one a row, each pair's factors picked by
one-hot matmul (movielens_1hot) or looked up (movielens_emb), and the cap on the one-hot sheet's size."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..lesson import SheetSpec
from ..values import as_grid
from .crosstab import DOTPROD, crosstab_labels, factor_labels
from .models import EmbeddingDot, match_ids, rated_pairs

if TYPE_CHECKING:  # the file writer: needed to generate, not to verify
    from ..sheets import Block, Cursor, Sheet

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
            sheet.block_on(DOTPROD.name, name) for name in ("user_ids", "movie_ids", "user_factors", "movie_factors"))
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
        user_labels, movie_labels = crosstab_labels(place.sheet)
        factor_names = factor_labels(user_factors.cols)
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
        factor_names = factor_labels(user_factors.cols)
        user = place.block("user_embedding", gap=1, headers=factor_names, caption="user factors: INDEX",
                           formula=lambda r, c: f"=INDEX({user_factors.ref},{user_index.cell(r)},{c + 1})")
        movie = place.block("movie_embedding", gap=1, headers=factor_names, caption="movie factors: INDEX",
                            formula=lambda r, c: f"=INDEX({movie_factors.ref},{c + 1},{movie_index.cell(r)})")
        return user, movie

    def more_blocks(self, place, index, factors):
        """The lesson's OFFSET form of the same lookups."""
        (user_index, movie_index), (user_factors, movie_factors) = index, factors
        factor_names = factor_labels(user_factors.cols)
        place.block("user_embedding_offset", gap=1, headers=factor_names,
                    caption="the lesson's OFFSET form: the same user factors",
                    formula=lambda r, c: f"=OFFSET({user_factors.ref},{user_index.cell(r)}-1,{c},1,1)")
        place.block("movie_embedding_offset", gap=1, headers=factor_names, caption="and the same movie factors",
                    formula=lambda r, c: f"=OFFSET({movie_factors.ref},{c},{movie_index.cell(r)}-1,1,1)")


ONE_HOT_PAIRS, LOOKUP_PAIRS = OneHotPairs(), LookupPairs()


def pairs_note(cap: OneHotCap) -> str:
    """NOTES' paragraph on the pair sheets when movielens_1hot shows only `cap.shown` of the pairs."""
    return (
        "movielens_1hot and movielens_emb: an embedding is a one-hot row times a weight matrix, which "
        "just picks out one row, so a lookup (INDEX) gives the same numbers with no big matrix of zeros. "
        f"movielens_emb holds all {cap.rated:,} rated pairs and reaches dotprod's RMSE exactly; movielens_1hot "
        f"shows the first {cap.shown:,} (one-hot rows of all of them would be {cap.cells:,} cells, more than a "
        f"spreadsheet opens in reasonable time), so its RMSE is over those {cap.shown:,} pairs only. torch: "
        "F.one_hot(i) @ W and nn.Embedding.")
