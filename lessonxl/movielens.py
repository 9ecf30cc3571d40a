"""Ratings for collab_filter.xlsx: a seeded MovieLens look-alike, a MovieLens file loader, the crosstab.

A ratings table has the columns userId, movieId, rating (and, from a file, timestamp). The workbook
shows the crosstab of the most active users and the most-rated movies, as the lesson's pivot table.
A movies table has the columns movieId, title, genre: the built-in movies have made-up titles and a
planted genre that drives the ratings; a MovieLens folder has them beside the ratings (`u.item`,
`movies.csv`).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .errors import LessonxlError

RATINGS_COLUMNS = ["userId", "movieId", "rating", "timestamp"]
RATING_RANGE = (0.5, 5.0)
TASTE_SPREAD, MOVIE_NOISE = 0.8, 0.1  # spread of users' tastes, and of a movie's factors about its genre's

#: The built-in genres: each has a direction in taste space (action and romance opposite ways on the
#: first, comedy on the second) and the two halves of its made-up titles.
GENRES = {
    "action": ((1.0, 0.0), ("Iron", "Steel", "Laser", "Rogue", "Atomic", "Thunder", "Crimson", "Venom",
                            "Titan", "Bullet"),
               ("Storm", "Fist", "Strike", "Protocol", "Siege", "Fury", "Run", "Force", "Zone", "Vendetta")),
    "romance": ((-1.0, 0.0), ("Summer", "Moonlight", "Autumn", "Paris", "Tender", "Secret", "Golden",
                              "Silent", "Sweet", "Endless"),
                ("Hearts", "Letters", "Promise", "Kiss", "Waltz", "Vows", "Roses", "Serenade", "Embrace",
                 "Longing")),
    "comedy": ((0.0, 1.0), ("Crazy", "Dizzy", "Goofy", "Wacky", "Silly", "Nutty", "Cheeky", "Clumsy",
                            "Loony", "Zany"),
               ("Uncles", "Roommates", "Neighbours", "Weekend", "Wedding", "Vacation", "Plumbers", "Office",
                "Cousins", "Camp")),
}
#: The genre flags of ml-100k's u.item, in its column order (after id, title, dates and URL).
U_ITEM_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
                 "Sci-Fi", "Thriller", "War", "Western")


def synthetic_movies(seed: int, movies: int = 200) -> pd.DataFrame:
    """Seeded movies: a genre each (uniformly drawn) and a made-up title that says it (a sequel
    number once a genre's titles run out)."""
    rng = np.random.default_rng([seed, 14])
    names = list(GENRES)
    genres = [names[g] for g in rng.integers(len(names), size=movies)]
    orders = {name: rng.permutation(len(first) * len(second)) for name, (_, first, second) in GENRES.items()}
    made = dict.fromkeys(GENRES, 0)
    titles = []
    for genre in genres:
        titles.append(_made_up_title(genre, orders[genre], made[genre]))
        made[genre] += 1
    return pd.DataFrame({"movieId": np.arange(1, movies + 1), "title": titles, "genre": genres})


def _made_up_title(genre: str, order: np.ndarray, count: int) -> str:
    _, first, second = GENRES[genre]
    pick, sequel = order[count % len(order)], count // len(order)
    title = f"{first[pick // len(second)]} {second[pick % len(second)]}"
    return title + (f" {sequel + 1}" if sequel else "")


def synthetic_ratings(seed: int, users: int = 100, movies: int = 200, count: int | None = None,
                      factors: int = 5, noise: float = 0.4) -> pd.DataFrame:
    """`count` ratings (default: a tenth of all pairs) from planted factors and biases plus noise,
    in half steps from 0.5 to 5. Each movie's factors are its genre's taste direction
    (`synthetic_movies`) plus a little noise, so the learned factors can find the genres again.

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

    user_factors = TASTE_SPREAD * torch.randn(users, factors, generator=gen, dtype=torch.float64)
    movie_factors = genre_factors(synthetic_movies(seed, movies)["genre"], factors) \
        + MOVIE_NOISE * torch.randn(movies, factors, generator=gen, dtype=torch.float64)
    user_bias = 0.4 * torch.randn(users, generator=gen, dtype=torch.float64)
    movie_bias = 0.5 * torch.randn(movies, generator=gen, dtype=torch.float64)
    score = (3.5 + user_bias[user] + movie_bias[movie] + (user_factors[user] * movie_factors[movie]).sum(1)
             + noise * torch.randn(count, generator=gen, dtype=torch.float64))
    rating = (score * 2).round().div(2).clamp(*RATING_RANGE)
    return pd.DataFrame({"userId": user.numpy() + 1, "movieId": movie.numpy() + 1,
                         "rating": rating.numpy()})


def genre_factors(genres, factors: int) -> torch.Tensor:
    """Each genre's taste direction, as a movies x factors matrix (zero beyond the second factor)."""
    directions = torch.zeros(len(genres), max(factors, 2), dtype=torch.float64)
    for row, genre in enumerate(genres):
        directions[row, :2] = torch.tensor(GENRES[genre][0], dtype=torch.float64)
    return directions[:, :factors]


U_DATA = "user, item, rating and timestamp separated by tabs, as ml-100k's u.data"
RATINGS_CSV = "userId,movieId,rating[,timestamp] under a userId,movieId,rating header, as ratings.csv"


def load_ratings(path: str | Path) -> pd.DataFrame:
    """A MovieLens ratings file: the 100k `u.data` (tab-separated, no header) or `ratings.csv`, as people
    have them: a byte-order mark (Excel's "CSV UTF-8"), Windows line ends, blank lines, spaces or a tab at
    the end of a line are all read; a line that is not a rating is refused naming its number and content."""
    path = Path(path)
    if path.is_dir():
        raise LessonxlError(f"{path}: is a folder, not a ratings file")
    if not path.is_file():
        raise LessonxlError(f"{path}: no such ratings file")
    first = _first_line(path)
    if first is None:
        raise LessonxlError(f"{path}: the ratings file is empty")
    number, line = first
    fields = [field.strip() for field in line.split(",")]
    if fields[:3] == RATINGS_COLUMNS[:3]:
        kind, options = RATINGS_CSV, {"index_col": False, "skipinitialspace": True}
    elif len(line.split()) in (3, 4) and _numbers(line.split()[:3]):
        kind, options = U_DATA, {"sep": r"\s+", "header": None, "names": RATINGS_COLUMNS, "index_col": False}
    else:
        raise LessonxlError(f"{path}: not a MovieLens ratings file: line {number} is {_shown(line)} (expected "
                            f"{U_DATA}; or {RATINGS_CSV})")
    try:  # pandas reads the usual files fast; a file it stumbles on is read line by line
        table = pd.read_csv(path, encoding="utf-8-sig", encoding_errors="replace", **options)
        table = table.rename(columns=lambda name: str(name).strip())[RATINGS_COLUMNS[:3]]
        table = table.apply(lambda column: column if pd.api.types.is_numeric_dtype(column)
                            else pd.to_numeric(column.str.strip(), errors="coerce"))
        if table.isna().any(axis=None):
            raise ValueError("a field is not a number")
    except (ValueError, KeyError, pd.errors.ParserError):
        table = _read_lines(path, kind)
    if table.empty:
        raise LessonxlError(f"{path}: the ratings file holds no ratings")
    return table


def _lines(path: Path, encoding: str = "utf-8-sig"):
    """(number, text) of each line, counted from 1 as an editor counts them: any line end, a byte-order
    mark dropped, bytes the encoding lacks replaced."""
    try:
        with path.open(encoding=encoding, errors="replace", newline=None) as handle:
            yield from enumerate((line.rstrip("\n") for line in handle), start=1)
    except OSError as error:
        raise LessonxlError(f"{path}: cannot read it ({error.strerror})") from None


def _first_line(path: Path) -> tuple[int, str] | None:
    """The first line that is not blank, or None."""
    return next(((number, line) for number, line in _lines(path) if line.strip()), None)


def _numbers(fields) -> bool:
    try:
        return all(np.isfinite(float(field)) for field in fields)
    except ValueError:
        return False


def _read_lines(path: Path, kind: str) -> pd.DataFrame:
    """A ratings file of `kind` read line by line, as `load_ratings` reads it; the first line that is not a
    rating refused, naming its number and content."""
    csv = kind == RATINGS_CSV
    header, rows = None, []
    for number, line in _lines(path):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")] if csv else line.split()
        if csv and header is None:
            header = fields
            continue
        if csv and len(fields) == len(header) + 1 and not fields[-1]:
            fields = fields[:-1]  # a comma at the end of the line
        if not (len(fields) == len(header) if csv else len(fields) in (3, 4)) or not _numbers(fields[:3]):
            raise LessonxlError(f"{path}: line {number} is not a rating: {_shown(line)} (expected {kind})")
        rows.append([float(field) for field in fields[:3]])
    return pd.DataFrame(rows, columns=RATINGS_COLUMNS[:3])


def _shown(line: str, most: int = 60) -> str:
    """A line of a file as a message quotes it: a tab as \\t, another control character as \\xNN, cut at
    `most` characters."""
    text = "".join(c if c.isprintable() else "\\t" if c == "\t" else f"\\x{ord(c):02x}"
                   for c in line.strip("\r\n"))
    return '"' + (text if len(text) <= most else text[:most] + "...") + '"'


def load_movies(ratings: str | Path) -> pd.DataFrame | None:
    """The titles and genres beside a MovieLens ratings file: ml-100k's `u.item` (pipe-separated,
    latin-1) or the later releases' `movies.csv`; None when neither is there (movies keep their ids)."""
    ratings = Path(ratings)
    names = ("movies.csv", "u.item") if ratings.suffix.lower() == ".csv" else ("u.item", "movies.csv")
    path = next((ratings.parent / name for name in names if (ratings.parent / name).exists()), None)
    if path is None:
        return None
    try:
        table = _read_u_item(path) if path.name == "u.item" else _read_movies_csv(path)
    except OSError as error:
        raise LessonxlError(f"{path}: cannot read it ({error.strerror or error})") from None
    except (ValueError, KeyError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        table = None
    if table is None or table.empty:
        expected = ("movie id | title | release date | ... separated by |" if path.name == "u.item"
                    else "a movieId,title,genres header")
        bad = _bad_title_line(path)
        raise LessonxlError(f"{path}: not a MovieLens titles file{f': {bad}' if bad else ''} (expected {expected})")
    table.attrs["source"] = str(path)
    return table


def _bad_title_line(path: Path) -> str:
    """'line N is "..."': the first line of a titles file that is not a movie (no whole-number id, or no
    title; in movies.csv, the header when it lacks movieId or title); empty when none is."""
    u_item = path.name == "u.item"
    lines = _lines(path, "latin-1" if u_item else "utf-8-sig")
    rows = ((number, line, line.split("|")) for number, line in lines) if u_item else _csv_rows(lines)
    header = None
    for number, line, fields in rows:
        fields = [field.strip() for field in fields]
        if not any(fields):
            continue
        if not u_item and header is None:
            header = fields
            if not {"movieId", "title"} <= set(header):
                return f"line {number} is {_shown(line)}"
            continue
        named = dict(zip(("movieId", "title"), fields)) if u_item else dict(zip(header, fields))
        movie, title = named.get("movieId", ""), named.get("title", "")
        if not title or not _numbers([movie]) or float(movie) % 1:
            return f"line {number} is not a movie: {_shown(line)}"
    return ""


def _csv_rows(lines):
    """(number, text, fields) of each line of a CSV file (a quoted field may hold commas)."""
    for number, line in lines:
        yield number, line, next(csv.reader([line]), [])


def _read_u_item(path: Path) -> pd.DataFrame | None:
    raw = pd.read_csv(path, sep="|", header=None, encoding="latin-1", dtype=str, keep_default_na=False)
    if raw.shape[1] < 2:
        return None
    genres = ["-"] * len(raw)
    if raw.shape[1] >= 5 + len(U_ITEM_GENRES):
        flags = raw.iloc[:, 5:5 + len(U_ITEM_GENRES)].apply(lambda column: column.str.strip() == "1")
        genres = ["|".join(np.array(U_ITEM_GENRES)[row]) or "-" for row in flags.to_numpy()]
    return _movies(raw.iloc[:, 0], raw.iloc[:, 1], genres)


def _read_movies_csv(path: Path) -> pd.DataFrame | None:
    raw = pd.read_csv(path, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    if not {"movieId", "title"} <= set(raw.columns):
        return None
    return _movies(raw["movieId"], raw["title"], raw["genres"] if "genres" in raw else ["-"] * len(raw))


def _movies(ids, titles, genres) -> pd.DataFrame:
    """A movies table; ids must be whole numbers and titles not blank (ValueError otherwise)."""
    ids = pd.to_numeric(pd.Series(ids).str.strip(), errors="raise")
    titles = pd.Series(titles).str.strip()
    if (ids % 1 != 0).any() or (titles == "").any():
        raise ValueError("not a titles table")
    return pd.DataFrame({"movieId": ids.to_numpy(np.float64), "title": titles.to_numpy(),
                         "genre": [str(g).strip() or "-" for g in genres]})


def titles_and_genres(movies: pd.DataFrame | None, movie_ids: np.ndarray) -> tuple[list[str], list[str]]:
    """The title and genre of each movie id (`movie <id>` and `-` without a movies table)."""
    if movies is None:
        return [f"movie {i:g}" for i in movie_ids], ["-"] * len(movie_ids)
    by_id = movies.drop_duplicates("movieId").set_index("movieId")
    by_id.index = by_id.index.astype(np.float64)
    missing = [i for i in movie_ids if i not in by_id.index]
    if missing:
        raise LessonxlError(f"{movies.attrs.get('source', 'the titles file')}: no title for movie "
                            f"{missing[0]:g}, which the ratings rate")
    return [str(by_id.at[i, "title"]) for i in movie_ids], [str(by_id.at[i, "genre"]) for i in movie_ids]


def top_crosstab(table: pd.DataFrame, users: int, movies: int,
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
        raise LessonxlError(f"{source}: {len(counts)} {what} have ratings, {wanted} are needed "
                            f"(ask for fewer with --{what})")
    ranked = counts.rename("count").rename_axis("id").reset_index().sort_values(
        ["count", "id"], ascending=[False, True])
    return np.sort(ranked["id"].to_numpy()[:wanted])
