"""Collaborative filtering (collab_filter.xlsx): torch models and sheet layout side by side.

Embeddings as one-hot matmuls and as lookups, the dot-product model with and without biases and
with a sigmoid range, training in torch instead of Excel's Solver, and gradient descent unrolled
in formulas. Movie factors are shown factors x movies, across the top of the crosstab, as in the
lesson; torch keeps them movies x factors, as nn.Embedding does.

One module per family of sheets, each a `SheetSpec` whose `compute` (torch) and `layout` (formulas)
of the same quantities stand side by side:

- `models`: the torch models and their training, the lesson's recipe (the Solver's replacement);
- `crosstab`: dotprod, bias and bias_yrange (`CrosstabModel`), the held-out ratings and the crosstab's labels;
- `pairs`: movielens_1hot and movielens_emb (`RatedPairs`: `OneHotPairs`, `LookupPairs`; `OneHotCap`);
- `training`: gd_steps, gradient descent unrolled in formulas (`GdSteps`);
- `interpret`: the bias ranking and the principal components by repeated squaring (`Interpret`);
- `top_movies`: with a ratings file, the lesson's model trained on all of it and its most-rated movies
  ranked by bias and by three components (`TopMovies`, a sheet only such workbooks have);
- `words`: word_emb (`WordEmb`);
- `lesson`: the workbook (`CollabFilter`): its sheets in order, default inputs and notes.
"""

from .crosstab import (BIAS, BIAS_YRANGE, CROSSTAB_MODELS, CROSSTAB_STEPS, DOTPROD, INTERPRETED, VALID_SHARE,
                       CrosstabModel, crosstab_recipe, held_out_rmse)
from .interpret import (INTERPRET, POWER_STEPS, RANKED, SQUARINGS, Interpret, fix_sign, genre_shares,
                        power_iteration, principal_components, ranked_count, ranking, repeated_squaring)
from .lesson import MAX_CROSSTAB_CELLS, MAX_FACTORS, NOTES, CollabFilter
from .models import (LESSON_RECIPE, Y_RANGE, EmbeddingDot, EmbeddingDotBias, Recipe, all_pairs, fit_one_cycle,
                     held_out_cells, initial_weights, lesson_weights, lookup, match_ids, model_from_sheet,
                     new_model, rated_pairs, sheet_weights, sigmoid_range, train)
from .pairs import LOOKUP_PAIRS, MAX_ONE_HOT_CELLS, ONE_HOT_PAIRS, LookupPairs, OneHotCap, OneHotPairs, RatedPairs
from .training import GD, GD_LR, GD_STEPS, GD_WD, GdSteps
from .words import WORDS, WordEmb

__all__ = [
    "BIAS", "BIAS_YRANGE", "CROSSTAB_MODELS", "CROSSTAB_STEPS", "DOTPROD", "INTERPRETED", "VALID_SHARE",
    "CrosstabModel", "crosstab_recipe", "held_out_rmse", "INTERPRET", "POWER_STEPS", "RANKED", "SQUARINGS", "Interpret",
    "fix_sign", "genre_shares", "power_iteration", "principal_components", "ranked_count", "ranking",
    "repeated_squaring", "MAX_CROSSTAB_CELLS", "MAX_FACTORS", "NOTES", "CollabFilter", "LESSON_RECIPE",
    "Y_RANGE", "EmbeddingDot", "EmbeddingDotBias", "Recipe", "all_pairs", "fit_one_cycle", "held_out_cells",
    "initial_weights", "lesson_weights", "lookup", "match_ids", "model_from_sheet", "new_model",
    "rated_pairs", "sheet_weights", "sigmoid_range", "train", "LOOKUP_PAIRS", "MAX_ONE_HOT_CELLS",
    "ONE_HOT_PAIRS", "LookupPairs", "OneHotCap", "OneHotPairs", "RatedPairs", "GD", "GD_LR", "GD_STEPS",
    "GD_WD", "GdSteps", "WORDS", "WordEmb",
]
