"""Ratings for collab_filter.xlsx: a seeded MovieLens look-alike, a MovieLens file loader, the crosstab.

A ratings table has the columns userId, movieId, rating (and, from a file, timestamp). The workbook
shows the crosstab of the most active users and the most-rated movies, as the lesson's pivot table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .errors import UsageError

COLUMNS = ["userId", "movieId", "rating", "timestamp"]
HALF_STEPS = (0.5, 5.0)


def synthetic_ratings(seed: int, users: int = 100, movies: int = 200, count: int | None = None,
                      factors: int = 5, noise: float = 0.4) -> pd.DataFrame:
    """`count` ratings (default: a tenth of all pairs) from planted factors and biases plus noise,
    in half steps from 0.5 to 5.

    Who rated what is drawn without replacement with heavy-tailed user activity and movie
    popularity (Gumbel top-k), so that the most active users and most-rated movies form a dense
    crosstab with some gaps, as in MovieLens.
    """
    count = users * movies // 10 if count is None else count
    if count > users * movies:
        raise ValueError(f"{count} ratings do not fit {users} users x {movies} movies")
    gen = torch.Generator().manual_seed(seed)
    activity = torch.rand(users, generator=gen, dtype=torch.float64).pow(3)
    popularity = torch.rand(movies, generator=gen, dtype=torch.float64).pow(3)
    weight = torch.log(activity[:, None] * popularity[None, :] + 1e-6).flatten()
    gumbel = -torch.log(-torch.log(torch.rand(weight.shape, generator=gen, dtype=torch.float64)))
    pairs = torch.topk(weight + gumbel, count).indices.sort().values
    user, movie = pairs // movies, pairs % movies

    user_factors = torch.randn(users, factors, generator=gen, dtype=torch.float64) / factors ** 0.5
    movie_factors = torch.randn(movies, factors, generator=gen, dtype=torch.float64) / factors ** 0.5
    user_bias = 0.4 * torch.randn(users, generator=gen, dtype=torch.float64)
    movie_bias = 0.5 * torch.randn(movies, generator=gen, dtype=torch.float64)
    score = (3.5 + user_bias[user] + movie_bias[movie] + (user_factors[user] * movie_factors[movie]).sum(1)
             + noise * torch.randn(count, generator=gen, dtype=torch.float64))
    rating = (score * 2).round().div(2).clamp(*HALF_STEPS)
    return pd.DataFrame({"userId": user.numpy() + 1, "movieId": movie.numpy() + 1,
                         "rating": rating.numpy()})


def load_ratings(path: str | Path) -> pd.DataFrame:
    """A MovieLens ratings file: the 100k `u.data` (tab-separated, no header) or `ratings.csv`."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a ratings file")
    if not path.is_file():
        raise UsageError(f"{path}: no such ratings file")
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            first = handle.readline().strip()
    except OSError as error:
        raise UsageError(f"{path}: cannot read it ({error.strerror})") from None
    if not first:
        raise UsageError(f"{path}: the ratings file is empty")
    try:
        if "\t" in first:
            table = pd.read_csv(path, sep="\t", header=None)
            table = table.set_axis(COLUMNS[:table.shape[1]], axis=1) if table.shape[1] in (3, 4) else None
        elif [name.strip() for name in first.split(",")[:3]] == COLUMNS[:3]:
            table = pd.read_csv(path)
        else:
            table = None
        if table is not None:
            table = table[COLUMNS[:3]].apply(pd.to_numeric, errors="raise").dropna()
    except (ValueError, pd.errors.ParserError):
        table = None
    if table is None:
        raise UsageError(f"{path}: not a MovieLens ratings file (expected the 100k u.data format: "
                         "user, item, rating, timestamp separated by tabs; or ratings.csv with a "
                         "userId,movieId,rating header)")
    if table.empty:
        raise UsageError(f"{path}: the ratings file holds no ratings")
    return table


def crosstab(table: pd.DataFrame, users: int, movies: int,
             source: str = "the built-in data") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """User ids, movie ids and the users x movies ratings of the most active users and most-rated
    movies (ties: the smaller id first), both in id order; NaN where unrated."""
    top_users = _most_frequent(table["userId"], users, "users", source)
    top_movies = _most_frequent(table["movieId"], movies, "movies", source)
    chosen = table[table["userId"].isin(top_users) & table["movieId"].isin(top_movies)]
    grid = chosen.pivot_table(index="userId", columns="movieId", values="rating", aggfunc="mean")
    grid = grid.reindex(index=top_users, columns=top_movies)
    return top_users.astype(np.float64), top_movies.astype(np.float64), grid.to_numpy(np.float64, copy=True)


def _most_frequent(ids: pd.Series, wanted: int, what: str, source: str) -> np.ndarray:
    counts = ids.value_counts()
    if len(counts) < wanted:
        raise UsageError(f"{source}: {len(counts)} {what} have ratings, {wanted} are needed "
                         f"(ask for fewer with --{what})")
    ranked = counts.rename("count").rename_axis("id").reset_index().sort_values(
        ["count", "id"], ascending=[False, True])
    return np.sort(ranked["id"].to_numpy()[:wanted])
