"""collab_filter.xlsx: its sheets in order, its default inputs (the ratings, and the weights torch trains
on them) and its notes."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import torch

from ..errors import LessonxlError
from ..lesson import Lesson, SheetValues
from ..movielens import (load_movies, load_ratings, synthetic_movies, synthetic_ratings, titles_and_genres,
                         top_crosstab)
from .crosstab import BIAS, BIAS_YRANGE, CROSSTAB_MODELS, DOTPROD, VALID_SHARE
from .interpret import INTERPRET, interpret_note
from .models import held_out_cells
from .pairs import LOOKUP_PAIRS, ONE_HOT_PAIRS, OneHotCap, pairs_note
from .top_movies import DEFAULT_TOP, TOP_MOVIES, top_count, top_movies_note
from .training import GD, GD_STEPS
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
    #: Files written before 0.5.0: no held-out cells, no weight decay on gd_steps, plain power iteration.
    specs_before = {"0.5.0": tuple(
        replace(spec, held_out=False) if spec in (*CROSSTAB_MODELS, GD)
        else replace(spec, squaring=False) if spec is INTERPRET else spec for spec in specs)}

    #: top_movies: in a workbook made from a ratings file (`--ratings`), after interpret.
    optional_specs = (TOP_MOVIES,)

    def with_sheets(self, present) -> CollabFilter:
        """The lesson with top_movies after interpret, for a file that has that sheet."""
        if TOP_MOVIES.name not in present or TOP_MOVIES in self.specs:
            return self
        view = copy.copy(self)
        at = self.specs.index(INTERPRET) + 1
        view.specs = (*self.specs[:at], TOP_MOVIES, *self.specs[at:])
        return view

    def make(self, seed: int, device: torch.device, **options):
        """The workbook (`Lesson.make`); made from a ratings file, with top_movies, whose model torch trains
        on `device`."""
        lesson = self.with_sheets({TOP_MOVIES.name}) if options.get("ratings") else self
        return super(CollabFilter, lesson).make(seed, device, fit_device=device, **options)

    def default_inputs(self, seed: int, ratings=None, users: int = 15, movies: int = 15,
                       factors: int = 5, top: int | None = None, fit_device=None) -> dict[str, np.ndarray]:
        for flag, value, least in (("users", users, 2), ("movies", movies, 2), ("factors", factors, 1)):
            if not isinstance(value, int) or value < least:
                raise LessonxlError(f"--{flag} {value}: give a whole number of at least {least}")
        if users * movies > MAX_CROSSTAB_CELLS:
            raise LessonxlError(f"--users {users} --movies {movies}: a crosstab of {users * movies:,} cells is more "
                                f"than the {MAX_CROSSTAB_CELLS:,} (200 x 200) a workbook is made for (200 x 200 "
                                "already makes 2.6 million formula cells, 32 MB, minutes in a spreadsheet); ask for "
                                "fewer users or movies")
        if factors > MAX_FACTORS:
            raise LessonxlError(f"--factors {factors}: a workbook is made for at most {MAX_FACTORS} factors "
                                "(fastai's default for collab_learner)")
        if top is not None and not ratings:
            raise LessonxlError(f"--top {top}: ranks the movies of a ratings file; give one with --ratings FILE")
        top = top_count(DEFAULT_TOP if top is None else top)
        if ratings:
            table, source = load_ratings(ratings), str(ratings)
            movie_table = load_movies(ratings)
        else:
            n_movies = max(200, 14 * movies)
            table = synthetic_ratings(seed, max(100, 7 * users), n_movies)
            movie_table, source = synthetic_movies(seed, n_movies), "the built-in data"
        user_ids, movie_ids, grid = top_crosstab(table, users, movies, source)
        titles, genres = titles_and_genres(movie_table, movie_ids)
        valid = held_out_cells(grid, VALID_SHARE, seed)
        out = {key: value for spec in CROSSTAB_MODELS
               for key, value in spec.defaults(grid, valid, factors, seed).items()}
        out |= {DOTPROD.key("user_ids"): user_ids.reshape(-1, 1),
                DOTPROD.key("movie_ids"): movie_ids.reshape(1, -1),
                DOTPROD.key("movie_titles"): np.array(titles, dtype=object).reshape(1, -1),
                INTERPRET.key("genre"): np.array(genres, dtype=object).reshape(-1, 1),
                INTERPRET.key("start"): np.ones((factors, 1))}
        for spec in (ONE_HOT_PAIRS, LOOKUP_PAIRS):
            out |= spec.defaults(user_ids, movie_ids, grid)
        if TOP_MOVIES in self.specs:
            out |= TOP_MOVIES.defaults(table, movie_table, top, seed, fit_device or "cpu")
        return out | GD.defaults(grid, valid, factors, seed) | WORDS.defaults(seed)

    def notes(self, values) -> tuple[str, ...]:
        """NOTES with the figures measured on this workbook's data: the held-out RMSEs after the paragraph
        on the bias sheets, weight decay's effect on gd_steps in its paragraph, the paragraph on `interpret`
        before word_emb's; the one on the pair sheets saying so when movielens_1hot shows only some pairs."""
        cap = OneHotCap.in_values(values)
        intro, dotprod, pairs, bias, gd, words, try_ = NOTES
        top_movies = (top_movies_note(values),) if TOP_MOVIES in self.specs else ()
        return (intro, dotprod, pairs if not cap.capped else pairs_note(cap), bias + " " + held_out_note(values),
                gd + " " + decay_note(values), interpret_note(values), *top_movies, words, try_)

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
    "were trained by torch the lesson's way, replacing the original's Excel Solver: fastai's collab_learner "
    "(every weight drawn from N(0, 0.01), Adam with weight decay 0.1, batches of 64) and fit_one_cycle (the "
    "learning rate up, then down). Some rated cells were held out of training, as the lesson holds out a "
    "validation set: 1 in valid, orange in the crosstab. train RMSE is over the cells trained on; valid "
    "RMSE over the held-out ones, ratings the model never saw; mean RMSE predicts each held-out rating by "
    "the mean training rating (train mean): the baseline a model must beat.",
    "movielens_1hot and movielens_emb: an embedding is a one-hot row times a weight matrix, which "
    "just picks out one row, so a lookup (INDEX) gives the same numbers with no big matrix of zeros. "
    "Both sheets reach dotprod's RMSE exactly; torch: F.one_hot(i) @ W and nn.Embedding.",
    "bias: a user bias and a movie bias on top of the dot product (some movies everyone likes). "
    "bias_yrange squashes the prediction into y_lo..y_hi with a sigmoid, as the lesson's "
    "model does; the range is a little wider than 0.5..5 so a 5 is reachable.",
    "gd_steps: training inside the workbook, with no Solver and no macros. Each step computes the "
    "error (prediction - rating, 0 where not rated), the gradients of the mean squared error over the cells "
    "trained on (for the user factors 2/n (error x training weight) x movie factors^T, each cell a SUMPRODUCT "
    "of an error row, a training-weight row and a factor row) and the new weights = weights - lr x (gradient "
    "+ wd x weights): wd is weight decay, torch.optim.SGD's weight_decay (the same as adding wd/2 x the sum "
    "of the squared weights to the loss). The chart shows the RMSE falling on the cells trained on and on "
    "the held-out ones. torch does the same steps with autograd and torch.optim.SGD.",
    "word_emb: the same lookup for words: a word's id is its row in the vocabulary, its vector that "
    "row of the embedding matrix.",
    "Try: change a factor, a rating (or blank one out), the learning rate or y_hi (the names gd_steps_lr "
    "and bias_yrange_y_hi: a sheet's names begin with the sheet's), save, then run "
    "`lessonxl verify collab_filter.xlsx`: torch recomputes everything from your numbers and compares "
    "every formula cell. Raise gd_steps_lr (lr on gd_steps) until the RMSE blows up.",
)


def held_out_note(values) -> str:
    """The held-out RMSEs of the three crosstab sheets against the mean's, measured on this workbook."""
    def figure(sheet: str, name: str) -> str:
        return f"{float(np.asarray(values[f'{sheet}!{name}']).ravel()[0]):.2f}"
    sheets = ", ".join(f"{spec.name} {figure(spec.name, 'valid_rmse')}" for spec in CROSSTAB_MODELS)
    return (f"On the held-out cells here the valid RMSE is {sheets}, against {figure(DOTPROD.name, 'mean_rmse')} "
            "for the mean (mean RMSE).")


def decay_note(values) -> str:
    """gd_steps' "Try" on weight decay, with the RMSEs after the last step at wd 0 and 0.1, measured here."""
    inputs = {key: torch.as_tensor(np.asarray(values[key], dtype=np.float64)) for key in
              (GD.key(name) for name in GD.inputs)}
    ends = []
    for wd in (0.0, 0.1):
        inputs[GD.key("wd")] = torch.tensor([[wd]], dtype=torch.float64)
        out = GD.compute(SheetValues(inputs, GD.name))
        ends.append((out["rmse"][-1, 0].item(), out["valid_rmse"][-1, 0].item()))
    (train_0, valid_0), (train_1, valid_1) = ends
    mean = float(np.asarray(values[DOTPROD.key("train_mean")]).ravel()[0])
    why = (f"weight decay restrains a model that overfits; here it only holds the weights back, the biases above "
           f"all, which must carry the mean rating ({mean:.2f})" if valid_1 > valid_0
           else "the decay keeps the weights from fitting the noise of the cells trained on")
    return (f"Try wd = 0.1 (gd_steps_wd) against 0: every step also pulls each weight towards 0. Here, after "
            f"step {GD_STEPS}, the RMSE on the cells trained on goes from {train_0:.2f} to {train_1:.2f} and on "
            f"the held-out cells from {valid_0:.2f} to {valid_1:.2f}: {why}.")


