"""collab_filter.xlsx's `interpret` sheet and the movie titles: the bias ranking, the principal
components by repeated squaring (against torch.linalg.eigh and svd, and on real-like data where 150 plain
power-iteration steps fall short), the planted genres, the notes' "Try:" done in the workbook and verified by
LibreOffice, and the MovieLens titles files."""

from __future__ import annotations

import re
import zipfile

import numpy as np
import openpyxl
import pandas as pd
import pytest
import torch

from lessonxl import reader
from lessonxl.collab import (INTERPRETED, SQUARINGS, CollabFilter, fix_sign, genre_shares,
                             principal_components, ranked_count, ranking)
from lessonxl.errors import LessonxlError
from lessonxl.movielens import U_ITEM_GENRES, synthetic_movies, synthetic_ratings, top_crosstab
from lessonxl.pipeline import verify_paths

from conftest import CPU, mutate_formula, set_value

LESSON = CollabFilter()
KEY = "interpret!{}".format


def _centred(defaults) -> np.ndarray:
    """The lesson's model's movie factors, movies down, minus their mean (numpy, not the code under test)."""
    factors = defaults[INTERPRETED.key("movie_factors")].T
    return factors - factors.mean(axis=0)


def _largest_entry_positive(vectors: np.ndarray) -> np.ndarray:
    """Each column flipped so that its entry of largest magnitude is positive."""
    rows = np.abs(vectors).argmax(axis=0)
    return vectors * np.sign(vectors[rows, np.arange(vectors.shape[1])])


# ---------------------------------------------------------------- principal components

def test_repeated_squaring_converges_to_eigh_and_svd_up_to_the_fixed_sign(collab_defaults, collab_results):
    centred = _centred(collab_defaults)
    covariance = centred.T @ centred / (len(centred) - 1)
    np.testing.assert_allclose(collab_results[KEY("covariance")], covariance, atol=1e-14)
    eigenvalues, eigenvectors = torch.linalg.eigh(torch.tensor(covariance))
    eigenvalues, eigenvectors = eigenvalues.flip(0).numpy(), eigenvectors.flip(1).numpy()
    # The error after 2^SQUARINGS steps shrinks like (next variance / this variance)^(2^SQUARINGS): far
    # below 1e-12 here, so the components must agree with eigh to 1e-10 (the constant in front is the start
    # vector's tilt).
    ratios = eigenvalues[1:3] / eigenvalues[:2]
    assert (ratios ** 2 ** SQUARINGS < 1e-12).all(), ratios
    expected = _largest_entry_positive(eigenvectors[:, :2])
    np.testing.assert_allclose(collab_results[KEY("pc_loadings")].T, expected, atol=1e-10)
    np.testing.assert_allclose(collab_results[KEY("pc_variance")].ravel(), eigenvalues[:2], rtol=1e-12)
    np.testing.assert_allclose(collab_results[KEY("variance_share")].ravel(), eigenvalues[:2] / eigenvalues.sum(),
                               rtol=1e-12)
    _, singular, right = torch.linalg.svd(torch.tensor(centred), full_matrices=False)
    np.testing.assert_allclose(collab_results[KEY("pc_loadings")].T, _largest_entry_positive(right.T[:, :2].numpy()),
                               atol=1e-10)
    np.testing.assert_allclose(collab_results[KEY("pc_scores")], centred @ expected, atol=1e-10)
    np.testing.assert_allclose(collab_results[KEY("pc_variance")].ravel(), singular[:2] ** 2 / (len(centred) - 1),
                               rtol=1e-12)


def test_the_squares_are_the_sheets_repeated_squaring(collab_defaults, collab_results):
    """M_j = M_(j-1)^2 / SUMSQ(M_(j-1)) from the covariance, then M_k x start; the second component from
    the covariance deflated by the first: C - variance1 pc1 pc1ᵀ. Each square has trace 1."""
    centred = _centred(collab_defaults)
    matrix = centred.T @ centred / (len(centred) - 1)
    start = collab_defaults[KEY("start")][:, 0]
    for pc in (1, 2):
        square = matrix
        for j in range(1, SQUARINGS + 1):
            square = square @ square / (square ** 2).sum()
            np.testing.assert_allclose(collab_results[KEY(f"pc{pc}_square_{j}")], square, atol=1e-13)
            assert np.trace(square) == pytest.approx(1, abs=1e-12)
        product = square @ start
        np.testing.assert_allclose(collab_results[KEY(f"pc{pc}_product")][:, 0], product, atol=1e-13)
        loading = collab_results[KEY("pc_loadings")][pc - 1]
        np.testing.assert_allclose(np.abs(loading), np.abs(product) / np.linalg.norm(product), atol=1e-15)
        matrix = matrix - (loading @ matrix @ loading) * np.outer(loading, loading)
        if pc == 1:
            np.testing.assert_allclose(collab_results[KEY("deflated")], matrix, atol=1e-14)


def _real_like(factors: int = 40, movies: int = 1000, seed: int = 0) -> np.ndarray:
    """Centred movie factors whose covariance's leading variances lie as close as a 40-factor model's of
    MovieLens do: each 0.93 of the one before (the ratio that left 150 plain steps 2.7e-5 off on real data)."""
    gen = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(factors, factors, generator=gen, dtype=torch.float64))
    spread = 0.93 ** torch.arange(factors, dtype=torch.float64) * 0.05
    scores = torch.randn(movies, factors, generator=gen, dtype=torch.float64) * spread.sqrt()
    factors_ = scores @ basis.T
    return (factors_ - factors_.mean(dim=0)).numpy()


def test_on_real_like_data_squaring_matches_eigh_where_150_steps_do_not():
    centred = _real_like()
    covariance = centred.T @ centred / (len(centred) - 1)
    eigenvalues, eigenvectors = (x.numpy() for x in torch.linalg.eigh(torch.tensor(covariance)))
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    ratios = eigenvalues[1:3] / eigenvalues[:2]
    assert (ratios > 0.85).all(), ratios  # close variances: the hard case
    expected = _largest_entry_positive(eigenvectors[:, :2])
    start = torch.ones(40, 1, dtype=torch.float64)
    squared = principal_components(torch.tensor(centred), start)
    plain = principal_components(torch.tensor(centred), start, squaring=False)
    error = np.abs(squared["pc_loadings"].numpy().T - expected).max()
    assert error < 1e-10, error
    assert np.abs(plain["pc_loadings"].numpy().T - expected).max() > 1e-6  # what 0.4.0's sheet computed
    np.testing.assert_allclose(squared["pc_variance"].numpy().ravel(), eigenvalues[:2], rtol=1e-12)


def test_the_sign_convention_is_robust_on_the_default_data(collab_results):
    """The largest entry and the most negative one are far apart in magnitude: no sign flip from
    rounding, in torch or in any engine."""
    loadings = collab_results[KEY("pc_loadings")]
    assert (loadings.max(axis=1) + loadings.min(axis=1) > 0.05).all()
    flipped = fix_sign(torch.tensor([[0.2], [-0.9], [0.5]], dtype=torch.float64))
    assert flipped[:, 0].tolist() == [-0.2, 0.9, -0.5]
    tie = fix_sign(torch.tensor([[-0.5], [0.5]], dtype=torch.float64))
    assert tie[:, 0].tolist() == [-0.5, 0.5]  # IF(MAX(v) >= -MIN(v), 1, -1) keeps a tie as it is


# ---------------------------------------------------------------- rankings

def test_rankings_list_the_largest_and_smallest_with_their_movies(collab_defaults, collab_results):
    bias = collab_defaults[INTERPRETED.key("movie_bias")].ravel()
    ids = collab_defaults["dotprod!movie_ids"].ravel()
    n = ranked_count(len(bias))
    order = np.argsort(-bias, kind="stable")
    picked = np.concatenate([order[:n], order[::-1][:n]])
    np.testing.assert_array_equal(collab_results[KEY("bias_ranked")].ravel(), bias[picked])
    np.testing.assert_array_equal(collab_results[KEY("bias_ranked_movie")].ravel(), picked + 1)
    np.testing.assert_array_equal(collab_results[KEY("bias_ranked_id")].ravel(), ids[picked])
    for pc in (1, 2):
        scores = collab_results[KEY("pc_scores")][:, pc - 1]
        order = np.argsort(-scores, kind="stable")
        picked = np.concatenate([order[:n], order[::-1][:n]])
        np.testing.assert_array_equal(collab_results[KEY(f"pc{pc}_ranked_movie")].ravel(), picked + 1)


def test_default_data_has_no_near_ties_to_rank(collab_defaults, collab_results):
    for column in (collab_defaults[INTERPRETED.key("movie_bias")].ravel(), *collab_results[KEY("pc_scores")].T):
        assert np.diff(np.sort(column)).min() > 1e-6


def test_ties_rank_like_large_and_match_first_occurrence():
    """LARGE repeats a tied value; MATCH(..., 0) finds its first occurrence both times."""
    values = torch.tensor([[2.0], [7.0], [1.0], [7.0], [1.0]], dtype=torch.float64)
    ids = torch.tensor([[10.0, 20.0, 30.0, 40.0, 50.0]], dtype=torch.float64)
    ranked, position, movie = ranking(values, ids, 2)
    assert ranked.ravel().tolist() == [7.0, 7.0, 1.0, 1.0]
    assert position.ravel().tolist() == [2.0, 2.0, 3.0, 3.0]
    assert movie.ravel().tolist() == [20.0, 20.0, 30.0, 30.0]


def test_rankings_shrink_for_few_movies():
    assert ranked_count(15) == 5 and ranked_count(7) == 3 and ranked_count(2) == 1


# ---------------------------------------------------------------- the planted genres

def test_the_planted_genres_separate_along_the_first_component(collab_defaults, collab_results):
    planted = synthetic_movies(0, 210).set_index("movieId")["genre"]
    genres = [planted[int(i)] for i in collab_defaults["dotprod!movie_ids"].ravel()]
    assert list(collab_defaults[KEY("genre")].ravel()) == genres
    scores = collab_results[KEY("pc_scores")][:, 0]
    order = np.argsort(-scores)
    top, bottom = [genres[i] for i in order[:5]], [genres[i] for i in order[-5:]]
    assert top.count("comedy") == 5 and bottom.count("action") == 5
    action = scores[[g == "action" for g in genres]]
    assert action.max() < scores[[g != "action" for g in genres]].min()  # PC1 splits them cleanly
    assert genre_shares(genres, scores, 5) == "top 5 on PC1: 5 comedy; bottom 5: 5 action"


def test_genre_shares_reads_the_first_listed_genre_and_skips_unknown():
    assert genre_shares(["Action|Sci-Fi", "Drama", "Action"], np.array([3.0, 1.0, 2.0]), 1) == \
        "top 1 on PC1: 1 Action; bottom 1: 1 Drama"
    assert genre_shares(["-", "-"], np.array([1.0, 2.0]), 1) == ""


# ---------------------------------------------------------------- the workbook

@pytest.fixture(scope="module")
def built(generated):
    """collab_filter.xlsx as generated (read only: edits go to copies)."""
    return generated["collab_filter"]


def _area(path, key: str) -> reader.Area:
    return reader.defined_names(openpyxl.load_workbook(path))[key]


def _edit(source, target, key: str, index: int, value: float) -> None:
    """Set cell `index` (row-major) of the defined name `key` to `value`, as a user would."""
    area = _area(source, key)
    row, col = list(area.cells())[index]
    set_value(source, target, area.sheet, reader.address(area.sheet, row, col).split("!")[1], value)


def test_notes_say_what_to_look_at_and_measure_the_genres(built):
    notes = " ".join(str(cell.value) for cell in openpyxl.load_workbook(built)["notes"]["A"] if cell.value)
    assert "interpret:" in notes and f"squaring the covariance {SQUARINGS} times" in notes
    assert "top 5 on PC1: 5 comedy; bottom 5: 5 action" in notes


def test_the_chart_plots_the_movies_on_the_two_components(built):
    scores = _area(built, KEY("pc_scores"))
    with zipfile.ZipFile(built) as archive:
        charts = [archive.read(name).decode() for name in archive.namelist() if name.startswith("xl/charts/")]
    scatter = [xml for xml in charts if "<c:scatterChart>" in xml]
    assert len(scatter) == 1
    refs = re.findall(r"<c:f>([^<]+)</c:f>", scatter[0])
    column = [openpyxl.utils.get_column_letter(scores.min_col + c) for c in (0, 1)]
    for letter in column:
        assert f"interpret!${letter}${scores.min_row}:${letter}${scores.max_row}" in refs


def test_crosstab_and_interpret_label_movies_by_title(built, collab_defaults):
    book = openpyxl.load_workbook(built)
    titles = [str(t) for t in collab_defaults["dotprod!movie_titles"].ravel()]
    area = _area(built, "dotprod!movie_titles")
    row = [book["dotprod"].cell(area.min_row, col).value for col in range(area.min_col, area.max_col + 1)]
    assert row == titles
    ids = _area(built, KEY("movie_id"))
    labels = [book["interpret"].cell(r, ids.min_col - 1).value for r in range(ids.min_row, ids.max_row + 1)]
    assert labels == titles
    assert len(set(titles)) == len(titles) and not any(t.startswith("movie ") for t in titles)


def test_the_notes_try_verifies_and_moves_what_it_says(built, collab_defaults, collab_results, tmp_path):
    """Try: set one movie's bias to 3 (it tops the ranking); set the start vector to 1, 0, 0, ...
    (the product with the last square changes, the components do not). Done in the file, recalculated by
    LibreOffice."""
    bias = collab_defaults[INTERPRETED.key("movie_bias")].ravel()
    movie = int(np.argmin(bias))  # the worst movie, at the bottom of the ranking
    raised = tmp_path / "raised_bias.xlsx"
    _edit(built, raised, INTERPRETED.key("movie_bias"), movie, 3.0)

    factors = len(collab_defaults[KEY("start")])
    restarted = tmp_path / "start.xlsx"
    _edit(built, restarted, KEY("start"), 1, 0.0)
    for index in range(2, factors):
        _edit(restarted, restarted.with_suffix(".tmp.xlsx"), KEY("start"), index, 0.0)
        restarted.with_suffix(".tmp.xlsx").replace(restarted)

    tied = tmp_path / "tied.xlsx"  # two movies with the same bias: MATCH finds the first, as torch
    top_two = np.argsort(-bias)[:2]
    _edit(built, tied, INTERPRETED.key("movie_bias"), int(top_two[1]), 9.0)
    _edit(tied, tied.with_suffix(".tmp.xlsx"), INTERPRETED.key("movie_bias"), int(top_two[0]), 9.0)
    tied.with_suffix(".tmp.xlsx").replace(tied)

    reports = verify_paths([raised, restarted, tied], device="cpu")
    for report in reports:
        assert report.passed and not report.uncovered, [c for c in report.checks if not c.passed]

    edited = {key: np.array(value, copy=True) for key, value in collab_defaults.items()}
    edited[INTERPRETED.key("movie_bias")][0, movie] = 3.0
    after = LESSON.evaluate(edited, CPU)
    assert collab_results[KEY("bias_ranked_movie")][ranked_count(len(bias)), 0] == movie + 1  # bottom 1 before
    assert after[KEY("bias_ranked_movie")][0, 0] == movie + 1
    assert after[KEY("bias_ranked")][0, 0] == 3.0

    edited = {key: np.array(value, copy=True) for key, value in collab_defaults.items()}
    edited[KEY("start")][1:] = 0.0
    after = LESSON.evaluate(edited, CPU)
    assert not np.allclose(after[KEY("pc1_product")], collab_results[KEY("pc1_product")], atol=1e-3)
    np.testing.assert_array_equal(after[KEY(f"pc1_square_{SQUARINGS}")], collab_results[KEY(f"pc1_square_{SQUARINGS}")])
    np.testing.assert_allclose(after[KEY("pc_loadings")], collab_results[KEY("pc_loadings")], atol=1e-10)

    edited = {key: np.array(value, copy=True) for key, value in collab_defaults.items()}
    edited[INTERPRETED.key("movie_bias")][0, top_two] = 9.0
    after = LESSON.evaluate(edited, CPU)
    first = min(top_two) + 1
    assert after[KEY("bias_ranked_movie")][:2, 0].tolist() == [first, first]


@pytest.mark.parametrize("quantity", ["movie_bias", "centred", "covariance", "pc1_square_1", "pc2_square_12",
                                      "pc1_product",
                                      "deflated", "pc_loadings", "pc_variance", "pc_scores", "bias_ranked",
                                      "pc1_ranked_movie", "pc2_ranked_id"])
def test_a_changed_interpret_formula_fails_verify_at_its_cell(built, tmp_path, quantity):
    """Every kind of formula on the sheet: the last cell of each quantity (the top-left one of an
    array formula) + 0.5, its cached value left stale."""
    area = _area(built, KEY(quantity))
    row, col = (area.min_row, area.min_col) if quantity == "covariance" else (area.max_row, area.max_col)
    cell = reader.address(area.sheet, row, col)
    mutant = tmp_path / f"{quantity}.xlsx"
    mutate_formula(built, mutant, area.sheet, cell.split("!")[1])
    [report] = verify_paths([mutant], device="cpu")
    assert report.error is None and not report.passed
    assert cell in {where for check in report.checks for where in check.mismatches}


# ---------------------------------------------------------------- titles from MovieLens files

def _ratings_folder(folder, users=20, movies=20):
    rows = synthetic_ratings(1, users, movies, count=users * movies // 2)
    lines = [f"{u}\t{m}\t{int(max(1, r))}\t881250949" for u, m, r in rows.itertuples(index=False)]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    return rows


def _u_item_line(movie: int, title: str, genres=("Comedy",)) -> str:
    flags = "|".join("1" if g in genres else "0" for g in U_ITEM_GENRES)
    return f"{movie}|{title}|01-Jan-1995||http://us.imdb.com/M/title-exact?x|{flags}"


def test_u_item_beside_u_data_gives_titles_and_genres(tmp_path):
    _ratings_folder(tmp_path)
    lines = [_u_item_line(m, f"Film número {m} (1995)", ("Action", "Sci-Fi") if m % 2 else ("Drama",))
             for m in range(1, 21)]
    (tmp_path / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    inputs = LESSON.default_inputs(0, ratings=tmp_path / "u.data", users=6, movies=8, factors=3)
    ids = inputs["dotprod!movie_ids"].ravel()
    assert list(inputs["dotprod!movie_titles"].ravel()) == [f"Film número {int(m)} (1995)" for m in ids]
    assert list(inputs[KEY("genre")].ravel()) == ["Action|Sci-Fi" if m % 2 else "Drama" for m in ids]
    results = LESSON.evaluate(inputs, CPU)
    assert results[KEY("pc_loadings")].shape == (2, 3) and results[KEY("bias_ranked")].shape == (8, 1)


def test_movies_csv_beside_ratings_csv_gives_titles(tmp_path):
    rows = _ratings_folder(tmp_path)
    rows.assign(timestamp=964982703).to_csv(tmp_path / "ratings.csv", index=False)
    movies = pd.DataFrame({"movieId": range(1, 21),
                           "title": [f"Story, part {m} (2001)" for m in range(1, 21)],
                           "genres": ["Adventure|Animation"] * 20})
    movies.to_csv(tmp_path / "movies.csv", index=False)
    inputs = LESSON.default_inputs(0, ratings=tmp_path / "ratings.csv", users=6, movies=8, factors=3)
    ids = inputs["dotprod!movie_ids"].ravel()
    assert list(inputs["dotprod!movie_titles"].ravel()) == [f"Story, part {int(m)} (2001)" for m in ids]
    assert set(inputs[KEY("genre")].ravel()) == {"Adventure|Animation"}


def test_without_a_titles_file_movies_keep_their_ids(tmp_path):
    _ratings_folder(tmp_path)
    inputs = LESSON.default_inputs(0, ratings=tmp_path / "u.data", users=6, movies=8, factors=3)
    ids = inputs["dotprod!movie_ids"].ravel()
    assert list(inputs["dotprod!movie_titles"].ravel()) == [f"movie {int(m)}" for m in ids]
    assert set(inputs[KEY("genre")].ravel()) == {"-"}


@pytest.mark.parametrize("name, content, message", [
    ("u.item", b"", "not a MovieLens titles file"),
    ("u.item", b"just one column\nand another\n", "not a MovieLens titles file"),
    ("u.item", b"one|Toy Story (1995)|x\n", "not a MovieLens titles file"),
    ("u.item", b"1||01-Jan-1995\n", "not a MovieLens titles file"),
    ("u.item", b"PK\x03\x04\x00\x00binary|\xff\xfe\n", "not a MovieLens titles file"),
    ("movies.csv", b"name,price\napple,3\n", "not a MovieLens titles file"),
    ("movies.csv", b"movieId,title,genres\n1,\xff\xfe bad bytes,Comedy\n", "not a MovieLens titles file"),
    ("u.item", b"1|Only One (1995)|x\n", "no title for movie"),
])
def test_unusable_titles_files_are_one_line_usage_errors(tmp_path, name, content, message):
    rows = _ratings_folder(tmp_path)
    ratings = tmp_path / "u.data"
    if name == "movies.csv":
        ratings = tmp_path / "ratings.csv"
        rows.assign(timestamp=1).to_csv(ratings, index=False)
    (tmp_path / name).write_bytes(content)
    with pytest.raises(LessonxlError, match=message) as error:
        LESSON.default_inputs(0, ratings=ratings, users=6, movies=8, factors=3)
    assert str(tmp_path / name) in str(error.value) and "\n" not in str(error.value)


def test_titles_files_are_read_as_people_have_them(tmp_path):
    """u.item with Windows line ends, blank lines and spaces; movies.csv with a byte-order mark and a quoted
    title holding a comma."""
    _ratings_folder(tmp_path)
    lines = [_u_item_line(m, f"Film {m} (1995)") + (" " if m % 3 else "") for m in range(1, 21)]
    (tmp_path / "u.item").write_bytes(("\r\n\r\n".join(lines) + "\r\n").encode("latin-1"))
    inputs = LESSON.default_inputs(0, ratings=tmp_path / "u.data", users=6, movies=8, factors=3)
    assert list(inputs["dotprod!movie_titles"].ravel()) == [f"Film {int(m)} (1995)"
                                                             for m in inputs["dotprod!movie_ids"].ravel()]
    assert set(inputs[KEY("genre")].ravel()) == {"Comedy"}

    rows = _ratings_folder(tmp_path)
    rows.to_csv(tmp_path / "ratings.csv", index=False)
    text = "movieId,title,genres\r\n" + "".join(f'{m},"Story, part {m} (2001)",Drama\r\n' for m in range(1, 21))
    (tmp_path / "movies.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    inputs = LESSON.default_inputs(0, ratings=tmp_path / "ratings.csv", users=6, movies=8, factors=3)
    assert inputs["dotprod!movie_titles"][0, 0] == f"Story, part {int(inputs['dotprod!movie_ids'][0, 0])} (2001)"


@pytest.mark.parametrize("name, content, line", [
    ("u.item", _u_item_line(1, "One (1995)") + "\n\nx2|Two (1995)|x\n", 'line 3 is not a movie: "x2|Two (1995)|x"'),
    ("u.item", _u_item_line(1, "One (1995)") + "\n2| |x\n", 'line 2 is not a movie: "2| |x"'),
    ("movies.csv", 'movieId,title,genres\n1,"One, The (1995)",Drama\n2.5,Two (1995),Drama\n',
     'line 3 is not a movie: "2.5,Two (1995),Drama"'),
    ("movies.csv", "name,price\napple,3\n", 'line 1 is "name,price"'),
])
def test_a_line_that_is_not_a_movie_is_named(tmp_path, name, content, line):
    rows = _ratings_folder(tmp_path)
    ratings = tmp_path / "u.data"
    if name == "movies.csv":
        ratings = tmp_path / "ratings.csv"
        rows.to_csv(ratings, index=False)
    (tmp_path / name).write_bytes(content.encode("latin-1"))
    with pytest.raises(LessonxlError) as error:
        LESSON.default_inputs(0, ratings=ratings, users=6, movies=8, factors=3)
    assert str(error.value).startswith(f"{tmp_path / name}: not a MovieLens titles file: {line} (expected ")


def test_the_crosstab_titles_follow_the_chosen_movies():
    table = synthetic_ratings(0, 105, 210)
    _, movie_ids, _ = top_crosstab(table, 15, 15)
    inputs = LESSON.default_inputs(0)
    movies = synthetic_movies(0, 210).set_index("movieId")
    assert list(inputs["dotprod!movie_titles"].ravel()) == [movies.at[int(m), "title"] for m in movie_ids]
