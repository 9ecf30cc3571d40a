"""collab_filter's top_movies (`generate --ratings FILE`): the lesson's model trained on all the ratings of a
synthetic MovieLens file with planted movie biases (never MovieLens itself: its licence forbids redistribution).
The bias ranking must name the planted titles, the principal components must equal torch.linalg.eigh, and
every formula cell, the titles included, must verify through LibreOffice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lessonxl.collab import CollabFilter, fix_sign
from lessonxl.collab.top_movies import COMPONENTS, LESSON_FACTORS, LISTED, TOP_MOVIES, most_rated
from lessonxl.compare import Truth, compare
from lessonxl.errors import LessonxlError
from lessonxl.movielens import U_ITEM_GENRES, synthetic_movies, synthetic_ratings
from lessonxl import reader

from conftest import CPU, cell_of, run_cli, set_cells
from test_portability import formulas, lint_formula

LESSON = CollabFilter()
PLANTED = 5  # movies planted at each end of the bias ranking
TOP = 100


def write_planted(folder: Path, users: int = 200, movies: int = 300, count: int = 10_000, csv: bool = False,
                  titles: bool = True) -> tuple[set[str], set[str]]:
    """A MovieLens look-alike in `folder` (u.data and u.item, or ratings.csv and movies.csv; `titles`: with
    the titles file) whose ratings of PLANTED popular movies are pushed 3 stars down, and of PLANTED others 3
    up (clipped to 1..5): whatever the rest learns, they must end the bias ranking. Returns the titles planted
    at the bottom and at the top (`movie <id>` without a titles file)."""
    table = synthetic_ratings(7, users, movies, count=count)
    named = synthetic_movies(7, movies)
    popular = table["movieId"].value_counts().index[:4 * PLANTED]
    worst, best = popular[:2 * PLANTED:2], popular[1:2 * PLANTED:2]
    for planted, shift in ((worst, -3), (best, 3)):
        rows = table["movieId"].isin(planted)
        table.loc[rows, "rating"] = table.loc[rows, "rating"] + shift
    table["rating"] = table["rating"].round().clip(1, 5).astype(int)
    folder.mkdir(parents=True, exist_ok=True)
    if csv:
        table.to_csv(folder / "ratings.csv", index=False)
        if titles:
            named.rename(columns={"genre": "genres"}).to_csv(folder / "movies.csv", index=False)
    else:
        lines = (f"{user}\t{movie}\t{rating}\t881250949\n" for user, movie, rating in table.itertuples(index=False))
        (folder / "u.data").write_text("".join(lines))
        if titles:
            (folder / "u.item").write_text("".join(f"{i}|{title} (1995)|01-Jan-1995||http://x|{_flags(genre)}\n"
                                                   for i, title, genre in named.itertuples(index=False)),
                                           encoding="latin-1")
    by_id = dict(zip(named["movieId"], named["title"]))
    title = (lambda i: by_id[i] + ("" if csv else " (1995)")) if titles else (lambda i: f"movie {i}")
    return {title(i) for i in worst}, {title(i) for i in best}


def _flags(genre: str) -> str:
    """u.item's genre flags: 1 for the genre's column, 0 for the others."""
    return "|".join("1" if name.lower() == genre else "0" for name in U_ITEM_GENRES)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A u.data/u.item workbook of the TOP most-rated movies: (planted worst, planted best, path, values)."""
    folder = tmp_path_factory.mktemp("planted")
    worst, best = write_planted(folder / "ml")
    lesson = LESSON.with_sheets({TOP_MOVIES.name})
    inputs = lesson._default_grids(0, ratings=folder / "ml" / "u.data", top=TOP)
    path = folder / "collab_filter.xlsx"
    path.write_bytes(lesson._workbook(inputs, CPU))
    return worst, best, path, {**inputs, **lesson.evaluate(inputs, CPU)}


def ends(values, name: str) -> list[str]:
    return [str(title) for title in np.asarray(values[name]).ravel()]


def test_the_bias_ranking_names_the_planted_titles(planted):
    worst, best, _, values = planted
    assert set(ends(values, "bias_lowest")[:PLANTED]) == worst
    assert set(ends(values, "bias_highest")[:PLANTED]) == best
    assert len(ends(values, "bias_lowest")) == LISTED


def test_the_movies_are_the_most_rated_with_their_mean_and_count(planted):
    _, _, _, values = planted
    counts = values["top_movies!n_ratings"][:, 0]
    assert len(counts) == TOP and values["top_movies!movie_factors"].shape == (TOP, LESSON_FACTORS)
    assert np.all(np.diff(counts) <= 0)
    table = pd.DataFrame({"movieId": [3, 1, 1, 2, 2, 3], "rating": [1, 4, 5, 2, 3, 5]})
    shown = most_rated(table, 2)
    assert shown["movieId"].tolist() == [1, 2] and shown["mean_rating"].tolist() == [4.5, 2.5]


def test_the_components_are_torch_linalg_eigh(planted):
    _, _, _, values = planted
    factors = torch.as_tensor(values["top_movies!movie_factors"])
    covariance = torch.cov(factors.T)
    torch.testing.assert_close(torch.as_tensor(values["top_movies!covariance"]), covariance, rtol=1e-12, atol=1e-15)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    loadings = torch.as_tensor(values["top_movies!pc_loadings"])
    for k in range(COMPONENTS):
        expected = fix_sign(eigenvectors[:, -1 - k])
        assert (loadings[k] - expected).abs().max() < 1e-10
        assert values["top_movies!pc_variance"][k, 0] == pytest.approx(eigenvalues[-1 - k].item(), rel=1e-10)
    scores = (factors - factors.mean(dim=0)) @ loadings.T
    torch.testing.assert_close(torch.as_tensor(values["top_movies!pc_scores"]), scores, rtol=1e-10, atol=1e-13)
    top_pc1 = ends(values, "top_movies!pc1_highest")[0]
    assert top_pc1 == ends(values, "top_movies!title")[int(scores[:, 0].argmax())]


def test_every_formula_cell_verifies_and_a_wrong_title_is_named(planted, tmp_path):
    from lessonxl.pipeline import verify_paths

    worst, _, path, values = planted
    typed, wrong = tmp_path / "typed.xlsx", tmp_path / "wrong.xlsx"
    sheet, lowest = cell_of(path, "bias_lowest")
    set_cells(path, typed, [(sheet, lowest, ends(values, "bias_lowest")[0])])  # right, but typed
    _, highest = cell_of(path, "bias_highest", 1)
    set_cells(path, wrong, [(sheet, highest, f"=INDEX(top_movies_title,{TOP})")])
    good, hard_coded, mistaken = verify_paths([path, typed, wrong], device="cpu")
    assert good.error is None and all(check.passed for check in good.checks), good
    assert not good.uncovered
    checked = {check.name: check for check in good.checks}
    assert checked["bias_lowest"].cells == LISTED and checked["bias_highest"].cells == LISTED
    assert good.formula_cells > TOP * LESSON_FACTORS
    failed = {check.name: check for check in hard_coded.checks if not check.passed}
    assert list(failed) == ["bias_lowest"] and failed["bias_lowest"].typed == [f"{sheet}!{lowest}"]
    failed = {check.name: check for check in mistaken.checks if not check.passed}
    assert list(failed) == ["bias_highest"] and failed["bias_highest"].mismatches == [f"{sheet}!{highest}"]
    # the diagnosis names the wrong title's cell as the mistake, with what lessonxl's formula gives there
    [finding] = mistaken.findings
    assert finding.first == f"{sheet}!{highest}" and finding.expected == finding.torch_value


def test_formulas_are_portable(planted):
    """test_portability's lint (its one list of portable functions) over every formula and name of the file."""
    problems = [f"{where} {formula}: {problem}" for where, formula in formulas(planted[2])
                for problem in lint_formula(formula)]
    assert not problems, "\n".join(problems[:20])


@pytest.mark.parametrize("titles", [True, False])
def test_ratings_csv_with_or_without_movies_csv(tmp_path, titles):
    worst, best = write_planted(tmp_path, users=80, movies=120, count=3000, csv=True, titles=titles)
    lesson = LESSON.with_sheets({TOP_MOVIES.name})
    inputs = lesson.default_inputs(0, ratings=tmp_path / "ratings.csv", top=30)
    values = {**inputs, **lesson.evaluate(inputs, CPU)}
    assert set(ends(values, "bias_lowest")[:PLANTED]) == worst
    assert set(ends(values, "bias_highest")[:PLANTED]) == best


def test_top_needs_a_ratings_file_and_ten_movies(tmp_path):
    with pytest.raises(LessonxlError, match="--top 50: ranks the movies of a ratings file"):
        LESSON.default_inputs(0, top=50)
    write_planted(tmp_path, users=40, movies=60, count=800, titles=False)
    with pytest.raises(LessonxlError, match="--top 5: give a whole number of at least 10"):
        LESSON.make(0, CPU, ratings=tmp_path / "u.data", top=5)


def test_generate_top_from_the_command_line(tmp_path):
    """--top through the command line; the same file made again is up to date (its titles compared too)."""
    write_planted(tmp_path / "ml", users=60, movies=90, count=2000)
    command = ("generate", "--device", "cpu", "--ratings", tmp_path / "ml" / "u.data", "--top", "20",
               "--out", tmp_path / "out", "collab_filter")
    first, again = run_cli(*command), run_cli(*command)
    assert first.stdout.startswith("wrote ") and again.stdout.startswith("up to date "), first.stderr + again.stderr
    refused = run_cli("generate", "--top", "20", "--out", tmp_path / "none", "collab_filter")
    assert refused.returncode == 2 and refused.stderr == (
        "lessonxl generate: --top 20: ranks the movies of a ratings file; give one with --ratings FILE\n")
    assert not (tmp_path / "none").exists()


def test_the_default_workbook_has_no_top_movies():
    assert TOP_MOVIES not in LESSON.specs and "top_movies" not in LESSON.sheets
    assert LESSON.key_of("bias_lowest") == "bias_lowest"
    assert LESSON.key_of("top_movies_pc1_lowest") == "top_movies!pc1_lowest"


def test_labels_compare_as_text_ignoring_case():
    area = reader.Area("s", 1, 1, 1, 1)
    truth = Truth(np.array([["Shawshank Redemption, The (1994)"]], dtype=object))
    for value, passed in (("shawshank redemption, the (1994)", True), ("Titanic (1997)", False), (3.0, False),
                          (None, False), ("#N/A", False)):
        assert compare({(1, 1): value}, area, "bias_highest", truth, 1e-9, 1e-9, {(1, 1)}).passed is passed
    typed = compare({(1, 1): "Shawshank Redemption, The (1994)"}, area, "bias_highest", truth, 1e-9, 1e-9, set())
    assert not typed.passed and typed.typed == ["s!A1"]
