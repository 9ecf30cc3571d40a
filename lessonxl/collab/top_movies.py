"""collab_filter's top_movies (only in a workbook made from a ratings file, `--ratings`): the lesson's model
trained by torch on *all* the ratings, the lesson's way, and what it learned about the most-rated movies:
their bias ranked, and three principal components of their factors by repeated squaring, in formulas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from ..errors import LessonxlError
from ..lesson import SheetSpec, one_cpu_thread
from ..movielens import titles_and_genres
from .crosstab import factor_labels
from .interpret import SQUARINGS, component_blocks, principal_components, ranking
from .models import LESSON_RECIPE, Y_RANGE, fit_one_cycle, new_model

if TYPE_CHECKING:  # the file writer: needed to generate, not to verify
    from ..sheets import Block, Cursor, Sheet

#: The lesson's model on all of MovieLens: collab_learner(n_factors=40), fit_one_cycle(5, 5e-3), wd 0.1.
LESSON_FACTORS = 40
#: The movies shown, most-rated first (the lesson ranks the 1,000 most-rated: `--top N`).
DEFAULT_TOP = 1000
COMPONENTS = 3   # principal components worked out, as the lesson's `movie_pca` keeps 3
LISTED = 15      # titles at each end of a ranking (the lesson prints 15)
RANKED = ("bias", *(f"pc{k + 1}" for k in range(COMPONENTS)))  # the columns ranked: the bias, each component


def listed_count(movies: int) -> int:
    """How many titles each end of a ranking shows."""
    return min(LISTED, movies // 2)


def fit_all_ratings(table: pd.DataFrame, factors: int, seed: int, device: torch.device | str = "cpu"
                    ) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """The lesson's model (biases, y_range (0, 5.5)) trained on every rating of `table` by the lesson's recipe
    (`LESSON_RECIPE`: 5 epochs of fit_one_cycle at 5e-3, wd 0.1; torch.optim's fused AdamW) on `device`: the
    movie ids in index order, and each movie's factors (movies x factors) and bias (a column), on the CPU."""
    user_index, user_ids = pd.factorize(table["userId"], sort=True)
    movie_index, movie_ids = pd.factorize(table["movieId"], sort=True)
    model = new_model(len(user_ids), len(movie_ids), factors, seed, y_range=Y_RANGE).to(device)
    pairs = [torch.as_tensor(np.array(column), device=device)
             for column in (user_index, movie_index, table["rating"].to_numpy(np.float64))]
    with one_cpu_thread(torch.device(device)):
        fit_one_cycle(model, *pairs, LESSON_RECIPE, seed, torch_optim=True)
    return (np.asarray(movie_ids, dtype=np.float64), model.movie_factors.weight.detach().cpu(),
            model.movie_bias.weight.detach().cpu())




def most_rated(table: pd.DataFrame, top: int) -> pd.DataFrame:
    """The `top` most-rated movies (all of them when fewer; ties: the smaller id first), most-rated first:
    movieId, n_ratings and mean_rating."""
    stats = table.groupby("movieId")["rating"].agg(n_ratings="count", mean_rating="mean").reset_index()
    return stats.sort_values(["n_ratings", "movieId"], ascending=[False, True]).head(top).reset_index(drop=True)


@dataclass(frozen=True)
class TopMovies(SheetSpec):
    """`top_movies`: the most-rated movies with their title, number of ratings, mean rating and learned bias
    side by side, their factors (trained weights: inputs, so the workbook verifies on any device), and in
    formulas the bias ranking (`bias_lowest`, `bias_highest`: titles) and COMPONENTS principal components of
    the factors by repeated squaring, with each component's titles at both ends."""

    name = "top_movies"
    title = "The lesson's model on all the ratings: the most-rated movies"
    subtitle = ("Trained by torch on every rating of the file the lesson's way (40 factors, fit_one_cycle(5, "
                "5e-3), wd 0.1, y_range 0 to 5.5); the titles ranked by learned bias and by three principal "
                f"components of the factors (the covariance squared {SQUARINGS} times), all in formulas.")
    teaches = ("with --ratings: the lesson's model on all the ratings; the most-rated movies ranked by bias "
               "and by three principal components")
    inputs = ("title", "movie_id", "n_ratings", "mean_rating", "movie_bias", "movie_factors", "start")
    params = frozenset({"movie_bias", "movie_factors"})
    text_inputs = frozenset({"title"})
    global_names = frozenset({"bias_lowest", "bias_highest"})

    def compute(self, values) -> dict[str, object]:
        factors, titles = values["movie_factors"], np.asarray(values["title"]).ravel()
        mean = factors.mean(dim=0, keepdim=True)
        centred = factors - mean
        out = {"factor_mean": mean, "centred": centred,
               **principal_components(centred, values["start"], components=COMPONENTS)}
        columns = [values["movie_bias"], *(out["pc_scores"][:, k:k + 1] for k in range(COMPONENTS))]
        for what, column in zip(RANKED, columns):
            out |= _titles_at_the_ends(what, column, titles, listed_count(len(titles)))
        return out

    def layout(self, sheet: Sheet) -> None:
        """The rankings on top; below, the movies (title, id, ratings, mean, bias, factors, scores), then
        the components worked out under them."""
        titles = [str(t) for t in sheet.value("title").ravel()]
        n = listed_count(len(titles))
        sheet.text(3, 1, "ranked: LARGE / SMALL of the bias (or scores), the movie's row by exact MATCH, its "
                         "title by INDEX")
        rankings = sheet.across(6, 1)
        movies = sheet.across(6 + n + 5, 1)
        title = movies.block("title", headers=["title"], caption="the most-rated movies, most-rated first: the "
                                                                  "data, then the trained bias and factors")
        movies.block("movie_id", headers=["movie id"], num_format="0")
        movies.block("n_ratings", headers=["ratings"], num_format="0")
        movies.block("mean_rating", headers=["mean rating"])
        bias = movies.block("movie_bias", headers=["bias"])
        factors = movies.block("movie_factors", headers=factor_labels(sheet.value("movie_factors").shape[1]))
        scores = movies.area("pc_scores", gap=1)
        columns = [bias.ref, *(scores.column(k) for k in range(COMPONENTS))]
        for what, column in zip(RANKED, columns):
            for end in ("lowest", "highest"):
                _ranking_blocks(rankings, what, end, column, title, n, first=what == RANKED[0] and end == "lowest")
        centred, loadings = component_blocks(sheet, factors, titles, title.bottom + 5, COMPONENTS, movies_down=True)
        sheet.block("pc_scores", scores.top, scores.left, headers=[f"PC{k + 1}" for k in range(COMPONENTS)],
                    result=True, formula=lambda r, c: f"=SUMPRODUCT({centred.row(r)},{loadings.row(c)})")

    def defaults(self, table: pd.DataFrame, movies: pd.DataFrame | None, top: int, seed: int,
                 device: torch.device | str = "cpu") -> dict[str, np.ndarray]:
        """The `top` most-rated movies of the ratings `table`, their titles (from `movies`, else their ids),
        and the bias and factors torch learns from all the ratings (to 6 decimals, as the crosstab's weights)."""
        shown = most_rated(table, top)
        column = {name: np.array(shown[name], dtype=np.float64).reshape(-1, 1)
                  for name in ("movieId", "n_ratings", "mean_rating")}
        ids, factors, bias = fit_all_ratings(table, LESSON_FACTORS, seed, device)
        rows = np.searchsorted(ids, column["movieId"][:, 0])
        titles, _ = titles_and_genres(movies, column["movieId"][:, 0])
        return {self.key("title"): np.array(titles, dtype=object).reshape(-1, 1),
                self.key("movie_id"): column["movieId"],
                self.key("n_ratings"): column["n_ratings"],
                self.key("mean_rating"): column["mean_rating"],
                self.key("movie_bias"): np.round(bias.numpy()[rows], 6),
                self.key("movie_factors"): np.round(factors.numpy()[rows], 6),
                self.key("start"): np.ones((LESSON_FACTORS, 1))}


def _titles_at_the_ends(what: str, column: torch.Tensor, titles: np.ndarray, n: int) -> dict[str, object]:
    """The n lowest values of `column` (SMALL) and the n highest (LARGE), each one's row (MATCH) and title
    (INDEX): `lowest_<what>`, `lowest_<what>_row`, `<what>_lowest` and the same for highest."""
    picked, position, _ = ranking(column, torch.arange(len(column), device=column.device), n)
    out = {}
    for end, part in (("highest", slice(0, n)), ("lowest", slice(n, 2 * n))):
        rows = position[part]
        out |= {f"{end}_{what}": picked[part], f"{end}_{what}_row": rows,
                f"{what}_{end}": np.array([[titles[int(row) - 1]] for row in rows[:, 0].tolist()], dtype=object)}
    return out


def _ranking_blocks(place: Cursor, what: str, end: str, column: str, titles: Block, n: int, first: bool) -> None:
    """One end of a ranking: the values (SMALL or LARGE of `column`), each one's row (exact MATCH) and its
    title (INDEX of `titles`: `bias_lowest` and `bias_highest` are the workbook's own names), then a blank
    column. `first`: the ranks 1..n labelled to its left."""
    pick = "SMALL" if end == "lowest" else "LARGE"
    values = place.block(f"{end}_{what}", headers=[f"{end} {what if what == 'bias' else what.upper()}"],
                         row_labels=[str(k + 1) for k in range(n)] if first else None,
                         formula=lambda r, c: f"={pick}({column},{r + 1})")
    rows = place.block(f"{end}_{what}_row", headers=["row"], num_format="0",
                       formula=lambda r, c: f"=MATCH({values.cell(r)},{column},0)")
    place.block(f"{what}_{end}", headers=["title"], result=True, global_name=what == "bias",
                formula=lambda r, c: f"=INDEX({titles.ref},{rows.cell(r)})")
    place.skip(1)


TOP_MOVIES = TopMovies()


def top_count(top) -> int:
    """`--top N` checked: a whole number of at least 10 (two ends of a ranking, three components)."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 10:
        raise LessonxlError(f"--top {top}: give a whole number of at least 10")
    return top


def top_movies_note(values) -> str:
    """What top_movies shows, with the titles at both ends of the bias ranking of this workbook."""
    def titles(name: str) -> str:
        return "; ".join(str(t) for t in np.asarray(values[name]).ravel()[:3])
    shown = len(np.asarray(values[TOP_MOVIES.key("title")]).ravel())
    return (f"top_movies: the lesson's model trained by torch on all the ratings of the file, its {shown:,} most-rated "
            "movies with their learned bias beside their mean rating: the bias says what the model thinks of a "
            "movie whoever watches it, the mean rating also who happened to watch. Lowest bias (bias_lowest): "
            f"{titles('bias_lowest')}. Highest (bias_highest): {titles('bias_highest')}. Below, three principal "
            "components of their factors, worked out as on interpret, with the titles at both ends of each. The "
            "factors and biases are inputs (trained weights): edit one and verify.")
