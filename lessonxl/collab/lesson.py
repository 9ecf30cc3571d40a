"""collab_filter.xlsx: its sheets in order, its default inputs (the ratings, and the weights torch trains
on them) and its notes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import UsageError
from ..lesson import Lesson
from ..movielens import (load_movies, load_ratings, synthetic_movies, synthetic_ratings, titles_and_genres,
                         top_crosstab)
from .crosstab import BIAS, BIAS_YRANGE, CROSSTAB_MODELS, DOTPROD
from .interpret import INTERPRET, interpret_note
from .pairs import LOOKUP_PAIRS, ONE_HOT_PAIRS, OneHotCap, pairs_note
from .training import GD
from .words import WORDS

#: The largest crosstab (users x movies) and factor count a workbook is made for. The other sheets grow
#: as users x movies and as factors x (users + movies) per model and gd_steps' step: 200 x 200 is the
#: largest size measured (2.58M formula cells, 32 MB; README, "collab_filter at scale"), and 50 factors
#: fastai's default for collab_learner. Beyond them generate refuses, in one line, rather than spend
#: minutes on a file spreadsheets hardly open.
MAX_CROSSTAB_CELLS = 200 * 200
MAX_FACTORS = 50


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
