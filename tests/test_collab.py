"""collab_filter.xlsx, torch side: embeddings (lookup = one-hot matmul), training, data, the sheets'
quantities and the workbook's names and functions. The workbook-wide checks (verify, mutations,
edited inputs, determinism) live in test_workbooks.py."""

from __future__ import annotations

import re

import numpy as np
import openpyxl
import pytest
import torch
import torch.nn.functional as F

from lessonxl import collab
from lessonxl.collab import (CROSSTAB_MODELS, GD_STEPS, MAX_ONE_HOT_CELLS, VALID_SHARE, CollabFilter, crosstab_recipe,
                             EmbeddingDot, EmbeddingDotBias, OneHotCap, Recipe, all_pairs, fit_one_cycle,
                             held_out_cells, lesson_weights, lookup, match_ids, model_from_sheet, new_model,
                             rated_pairs, sheet_weights, train)
from lessonxl.errors import LessonxlError
from lessonxl.movielens import load_ratings, synthetic_ratings, top_crosstab

from conftest import CPU, run_cli
from test_portability import formulas, lint_formula

LESSON = CollabFilter()


def _models(seed: int = 0, users: int = 7, movies: int = 9, factors: int = 4):
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    uf, mf, ub, mb = rand(users, factors), rand(movies, factors), rand(users), rand(movies)
    return [EmbeddingDot(uf, mf), EmbeddingDotBias(uf, mf, ub, mb),
            EmbeddingDotBias(uf, mf, ub, mb, y_range=(0.0, 5.5))]


# ---------------------------------------------------------------- embeddings

def test_one_hot_matmul_selects_rows():
    weight = torch.randn(11, 3, dtype=torch.float64)
    index = torch.tensor([0, 4, 4, 10, 2])
    assert torch.equal(F.one_hot(index, 11).double() @ weight, weight[index])
    embedding = torch.nn.Embedding.from_pretrained(weight)
    assert torch.equal(lookup(embedding, index, one_hot=True), lookup(embedding, index))


@pytest.mark.parametrize("which", ["dot", "bias", "bias_yrange"])
def test_lookup_and_one_hot_paths_agree_forward_and_backward(which):
    model = _models()[["dot", "bias", "bias_yrange"].index(which)]
    users, movies = torch.tensor([0, 3, 6, 3, 1]), torch.tensor([8, 0, 2, 2, 5])
    ratings = torch.tensor([4.0, 3.5, 1.0, 5.0, 2.5], dtype=torch.float64)
    grads = []
    for one_hot in (False, True):
        model.zero_grad()
        prediction = model(users, movies, one_hot=one_hot)
        F.mse_loss(prediction, ratings).backward()
        grads.append((prediction.detach(), [p.grad.clone() for p in model.parameters()]))
    (pred_a, grad_a), (pred_b, grad_b) = grads
    torch.testing.assert_close(pred_a, pred_b, rtol=0, atol=1e-12)
    for a, b in zip(grad_a, grad_b):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert any(g.abs().sum() > 0 for g in grad_a)


def test_y_range_keeps_predictions_inside():
    model = _models()[2]
    users, movies = all_pairs(7, 9, CPU)
    with torch.no_grad():
        x = model.dot(users, movies) + 100 * model.user_bias(users)[:, 0]
        prediction = model(users, movies)
    assert prediction.min() > 0 and prediction.max() < 5.5
    assert x.abs().max() > 10  # the range does work


# ---------------------------------------------------------------- training

def test_training_is_seeded_and_lowers_the_loss(collab_defaults):
    ratings = torch.tensor(collab_defaults["dotprod!ratings"])
    recipe = Recipe(epochs=20, lr=1e-2)
    model_a, losses = train(ratings, 5, seed=3, y_range=(0.0, 5.5), recipe=recipe)
    model_b, _ = train(ratings, 5, seed=3, y_range=(0.0, 5.5), recipe=recipe)
    assert len(losses) == 20 and losses[-1] < 0.5 * losses[0]
    assert all(torch.equal(a, b) for a, b in zip(model_a.parameters(), model_b.parameters()))


def test_weights_start_as_fastai_draws_them():
    """trunc_normal_(std=0.01): normal, fmod 2, times 0.01; every embedding, the biases too."""
    weights = lesson_weights(0, 400, 500, 40)
    for name, weight in weights.items():
        assert weight.abs().max() <= 0.02 and 0.0085 < weight.std() < 0.0095, name  # truncation narrows N(0, 0.01)
    gen = torch.Generator().manual_seed(0)
    torch.testing.assert_close(weights["user_factors"], torch.randn(400, 40, generator=gen, dtype=torch.float64)
                               .fmod(2) * 0.01, rtol=0, atol=0)


def _reference_fit(model, users, movies, ratings, recipe: Recipe, seed: int) -> None:
    """The lesson's training in plain torch (no fastai): torch.optim.AdamW with fastai's betas and eps,
    torch.optim.lr_scheduler.OneCycleLR with fit_one_cycle's pct_start, div and div_final (momentum cycled
    between 0.95 and 0.85), MSE of shuffled minibatches, stepped after every batch."""
    adamw = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.95, 0.99), eps=1e-5, weight_decay=recipe.wd)
    steps = recipe.epochs * -(-len(ratings) // recipe.bs)
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(
        adamw, max_lr=recipe.lr, total_steps=steps, pct_start=0.25, div_factor=25.0, final_div_factor=1e5 / 25.0,
        base_momentum=0.85, max_momentum=0.95, anneal_strategy="cos", three_phase=False)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(recipe.epochs):
        for batch in torch.randperm(len(ratings), generator=gen).split(recipe.bs):
            loss = F.mse_loss(model(users[batch], movies[batch]), ratings[batch])
            adamw.zero_grad()
            loss.backward()
            adamw.step()
            one_cycle.step()


@pytest.mark.parametrize("torch_optim", [False, True])
@pytest.mark.parametrize("bias, y_range", [(False, None), (True, None), (True, (0.0, 5.5))])
def test_the_lessons_recipe_is_torch_adamw_with_one_cycle(bias, y_range, torch_optim):
    """`fit_one_cycle` (our AdamW step and schedule, no torch.optim; or torch.optim's fused AdamW, as the
    full-data fit) takes the steps torch.optim.AdamW and OneCycleLR take: 3 epochs of 13 batches (the last
    one short), every weight within 1e-13."""
    users, movies = torch.randint(0, 30, (200,), generator=torch.Generator().manual_seed(1)), \
        torch.randint(0, 40, (200,), generator=torch.Generator().manual_seed(2))
    ratings = torch.randint(1, 11, (200,), generator=torch.Generator().manual_seed(3)).double() / 2
    recipe = Recipe(epochs=3, lr=2e-2, bs=16)
    ours, theirs = (new_model(30, 40, 4, seed=5, bias=bias, y_range=y_range) for _ in range(2))
    losses = fit_one_cycle(ours, users, movies, ratings, recipe, seed=7, torch_optim=torch_optim)
    _reference_fit(theirs, users, movies, ratings, recipe, seed=7)
    assert losses.shape == (3,) and losses[-1] < losses[0]
    start = new_model(30, 40, 4, seed=5, bias=bias, y_range=y_range)
    for mine, torchs, first in zip(ours.parameters(), theirs.parameters(), start.parameters()):
        torch.testing.assert_close(mine, torchs, rtol=1e-12, atol=1e-13)
        assert (mine - first).abs().max() > 1e-3  # training moved every weight


def test_held_out_cells_are_a_seeded_share_of_the_rated_ones(collab_defaults):
    ratings = collab_defaults["dotprod!ratings"]
    mask = held_out_cells(ratings, VALID_SHARE, 0)
    rated = ~np.isnan(ratings)
    held = mask == 1
    assert np.isnan(mask[~held]).all() and not held[~rated].any()  # blank (trained on) but where held out
    assert held.sum() == round(VALID_SHARE * rated.sum())
    np.testing.assert_array_equal(mask, held_out_cells(ratings, VALID_SHARE, 0))
    assert not np.array_equal(mask, held_out_cells(ratings, VALID_SHARE, 1), equal_nan=True)
    for sheet in ("dotprod", "bias", "bias_yrange", "gd_steps"):
        np.testing.assert_array_equal(collab_defaults[f"{sheet}!valid"], mask)


def test_the_crosstab_models_train_on_the_cells_not_held_out(collab_defaults):
    """Changing a held-out rating changes nothing the training did; changing a trained-on one does."""
    ratings = torch.tensor(collab_defaults["bias_yrange!ratings"])
    mask = torch.tensor(collab_defaults["bias_yrange!valid"])
    recipe = Recipe(epochs=5, lr=1e-2)
    before, _ = train(ratings, 5, 0, True, (0.0, 5.5), recipe, mask)
    for held, moves in ((1, False), (0, True)):
        edited = ratings.clone()
        cell = tuple(torch.nonzero((torch.nan_to_num(mask) == held) & ~torch.isnan(ratings))[0])
        edited[cell] = 5.5 - edited[cell]
        after, _ = train(edited, 5, 0, True, (0.0, 5.5), recipe, mask)
        same = all(torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters()))
        assert same != moves, (held, cell)


def test_gd_steps_are_autograd_and_torch_optim_sgd_on_the_cells_trained_on(collab_defaults, collab_results):
    for wd in (0.0, 0.1):
        values = {name: torch.tensor(collab_defaults[f"gd_steps!{name}"])
                  for name in ("user_factors", "movie_factors", "user_bias", "movie_bias")}
        model = model_from_sheet(*values.values())
        ratings = torch.tensor(collab_defaults["gd_steps!ratings"])
        train_cells = ~torch.isnan(ratings) & torch.isnan(torch.tensor(collab_defaults["gd_steps!valid"]))
        sgd = torch.optim.SGD(model.parameters(), lr=float(collab_defaults["gd_steps!lr"][0, 0]), weight_decay=wd)
        users, movies = all_pairs(*ratings.shape, CPU)
        inputs = dict(collab_defaults, **{"gd_steps!wd": np.array([[wd]])})
        results = collab_results if wd == collab_defaults["gd_steps!wd"][0, 0] else LESSON.evaluate(inputs, CPU)
        for step in range(GD_STEPS):
            loss = F.mse_loss(model(users, movies).reshape(ratings.shape)[train_cells], ratings[train_cells])
            sgd.zero_grad()
            loss.backward()
            sgd.step()
            for name, weight in sheet_weights(model).items():
                np.testing.assert_allclose(results[f"gd_steps!{name}_{step + 1}"], weight, rtol=1e-12,
                                           atol=1e-12, err_msg=f"{name} after step {step + 1}, wd {wd}")


def test_the_workbook_holds_the_trained_weights(collab_defaults, collab_results):
    ratings = torch.tensor(collab_defaults["bias!ratings"])
    held_out = torch.tensor(collab_defaults["bias!valid"])
    n_train = int((~torch.isnan(ratings) & torch.isnan(held_out)).sum())
    assert crosstab_recipe(n_train).epochs == 100  # 3 batches an epoch, 300 steps
    model, losses = train(ratings, 5, seed=0, bias=True, recipe=crosstab_recipe(n_train), held_out=held_out)
    np.testing.assert_allclose(collab_defaults["bias!movie_factors"], model.movie_factors.weight.detach().T,
                               atol=5e-7)  # rounded to 6 decimals
    with torch.no_grad():
        trained = F.mse_loss(model(*rated_pairs(ratings)[:2]), rated_pairs(ratings)[2]).sqrt().item()
    assert collab_results["bias!rmse"][0, 0] == pytest.approx(trained, abs=1e-5)


def test_every_model_beats_the_training_mean_on_held_out_ratings(collab_defaults, collab_results):
    """The default workbook's point: on ratings no model saw, each predicts better than the training mean,
    and the lesson's model (bias_yrange) best; each sheet's figures are what numpy makes of its cells."""
    ratings = collab_defaults["dotprod!ratings"]
    rated, held = ~np.isnan(ratings), collab_defaults["dotprod!valid"] == 1
    known = np.nan_to_num(ratings)
    mean = known[rated & ~held].mean()
    mean_rmse = np.sqrt(((known - mean) ** 2)[rated & held].mean())
    valid = {}
    for model in CROSSTAB_MODELS:
        squared = (collab_results[model.key("predictions")] - known) ** 2
        for name, cells in (("train_rmse", rated & ~held), ("valid_rmse", rated & held)):
            assert collab_results[model.key(name)][0, 0] == pytest.approx(np.sqrt(squared[cells].mean()), rel=1e-12)
        assert collab_results[model.key("train_mean")][0, 0] == pytest.approx(mean, rel=1e-12)
        assert collab_results[model.key("mean_rmse")][0, 0] == pytest.approx(mean_rmse, rel=1e-12)
        valid[model.name] = collab_results[model.key("valid_rmse")][0, 0]
        assert valid[model.name] < mean_rmse, model.name
    assert min(valid, key=valid.get) == "bias_yrange"
    assert collab_results["bias_yrange!valid_rmse"][0, 0] < 0.7 * mean_rmse


def test_bias_beats_the_plain_dot_product(collab_results):
    dot, bias, y_range = (collab_results[model.key("rmse")][0, 0] for model in CROSSTAB_MODELS)
    assert bias < dot and y_range < dot
    assert 0 < y_range < 1


def test_the_held_out_rmse_weighs_cells_as_the_formulas_do(collab_defaults):
    """valid = 0.5 counts a cell half in training and half held out; all 0 (or blank) leaves valid_rmse nan
    (#DIV/0!)."""
    edited = {key: np.array(value, copy=True) for key, value in collab_defaults.items()}
    edited["dotprod!valid"][:] = 0.5
    results = LESSON.evaluate(edited, CPU)
    assert results["dotprod!train_rmse"][0, 0] == pytest.approx(results["dotprod!rmse"][0, 0], rel=1e-12)
    assert results["dotprod!valid_rmse"][0, 0] == pytest.approx(results["dotprod!rmse"][0, 0], rel=1e-12)
    for nothing_held_out in (0.0, np.nan):
        edited["dotprod!valid"][:] = nothing_held_out
        results = LESSON.evaluate(edited, CPU)
        assert np.isnan(results["dotprod!valid_rmse"][0, 0])
        assert results["dotprod!train_rmse"][0, 0] == pytest.approx(results["dotprod!rmse"][0, 0], rel=1e-12)


# ---------------------------------------------------------------- the sheets' quantities

def test_one_hot_and_lookup_sheets_equal_dotprod(collab_results):
    results = collab_results
    for sheet in ("movielens_1hot", "movielens_emb"):
        assert results[f"{sheet}!rmse"] == pytest.approx(results["dotprod!rmse"], abs=1e-12)
        # each rated pair's prediction is the crosstab's at that user's row and that movie's column
        users, movies = (results[f"{sheet}!{which}_index"][:, 0].astype(int) - 1 for which in ("user", "movie"))
        np.testing.assert_allclose(results[f"{sheet}!prediction"][:, 0], results["dotprod!predictions"][users, movies],
                                   rtol=0, atol=1e-12, err_msg=sheet)
    for which in ("user", "movie"):
        np.testing.assert_allclose(results[f"movielens_1hot!{which}_activations"],
                                   results[f"movielens_emb!{which}_embedding"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(results["movielens_emb!user_embedding"],
                                  results["movielens_emb!user_embedding_offset"])
    one_hot = results["movielens_1hot!movie_onehot"]
    assert set(np.unique(one_hot)) == {0.0, 1.0} and (one_hot.sum(axis=1) == 1).all()


def test_predictions_cover_every_cell_and_rmse_only_rated_ones(collab_defaults, collab_results):
    ratings = collab_defaults["dotprod!ratings"]
    assert np.isnan(ratings).any()
    predictions = collab_results["dotprod!predictions"]
    product = collab_defaults["dotprod!user_factors"] @ collab_defaults["dotprod!movie_factors"]
    np.testing.assert_allclose(predictions, product, atol=1e-12)
    rated = ~np.isnan(ratings)
    assert collab_results["dotprod!rmse"][0, 0] == pytest.approx(
        np.sqrt(np.mean((predictions - ratings)[rated] ** 2)), abs=1e-12)


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_gd_steps_equal_the_spreadsheet_gradient_formulas(collab_defaults, collab_results, wd):
    """The sheet's gradient formulas, written out in numpy, equal torch's: each cell weighed by its
    training weight (0 where held out), weight decay added to the gradient in the update."""
    ratings = collab_defaults["gd_steps!ratings"]
    rated = ~np.isnan(ratings)
    valid = np.nan_to_num(collab_defaults["gd_steps!valid"])  # blank: trained on
    train_weight = np.where(rated, 1 - valid, 0.0)
    held = np.where(rated, valid, 0.0)
    n = train_weight.sum()
    uf, mf = collab_defaults["gd_steps!user_factors"], collab_defaults["gd_steps!movie_factors"]
    ub, mb = collab_defaults["gd_steps!user_bias"], collab_defaults["gd_steps!movie_bias"]
    lr = collab_defaults["gd_steps!lr"][0, 0]
    results = LESSON.evaluate(dict(collab_defaults, **{"gd_steps!wd": np.array([[wd]])}), CPU)
    np.testing.assert_array_equal(results["gd_steps!train_mask"], train_weight)
    assert results["gd_steps!n_train"][0, 0] == n and results["gd_steps!n_valid"][0, 0] == held.sum() > 0
    rmse, valid_rmse = [], []
    for step in range(GD_STEPS + 1):
        error = np.where(rated, uf @ mf + ub + mb - np.nan_to_num(ratings), 0.0)
        rmse.append(np.sqrt((train_weight * error ** 2).sum() / n))
        valid_rmse.append(np.sqrt((held * error ** 2).sum() / held.sum()))
        np.testing.assert_allclose(results[f"gd_steps!error_{step}"], error, atol=1e-11)
        if step < GD_STEPS:
            weighted = train_weight * error
            grads = 2 / n * weighted @ mf.T, 2 / n * uf.T @ weighted, 2 / n * weighted.sum(1, keepdims=True), \
                2 / n * weighted.sum(0, keepdims=True)
            for name, grad in zip(("user_factors", "movie_factors", "user_bias", "movie_bias"), grads):
                np.testing.assert_allclose(results[f"gd_steps!grad_{name}_{step}"], grad, atol=1e-11)
            uf, mf, ub, mb = (w - lr * (g + wd * w) for w, g in zip((uf, mf, ub, mb), grads))
            np.testing.assert_allclose(results[f"gd_steps!user_factors_{step + 1}"], uf, atol=1e-11)
    np.testing.assert_allclose(results["gd_steps!rmse"].ravel(), rmse, atol=1e-11)
    np.testing.assert_allclose(results["gd_steps!valid_rmse"].ravel(), valid_rmse, atol=1e-11)
    assert rmse[-1] < 0.4 * rmse[0]
    if wd == 0:
        assert (np.diff(rmse) < 0).all()  # with decay the training RMSE turns up again after a few steps
    if wd == collab_defaults["gd_steps!wd"][0, 0]:
        np.testing.assert_array_equal(results["gd_steps!rmse"], collab_results["gd_steps!rmse"])


def test_computed_from_the_workbooks_inputs(collab_defaults, collab_results):
    edited = {k: v.copy() for k, v in collab_defaults.items()}
    edited["gd_steps!lr"] = edited["gd_steps!lr"] * 0.5
    edited["bias!user_factors"][0, 0] += 1
    edited["dotprod!ratings"][0, :] = np.nan
    after = LESSON.evaluate(edited, CPU)
    changed = {k for k in collab_results if not np.allclose(collab_results[k], after[k], equal_nan=True)}
    assert {"gd_steps!rmse", "gd_steps!user_factors_1", "bias!rmse", "bias!predictions",
            "dotprod!rmse"} <= changed
    assert "movielens_emb!rmse" not in changed  # the pair sheets keep their own ratings


def test_match_ids_is_exact_and_reports_missing_ids():
    table = torch.tensor([5.0, 2.0, 9.0, 2.0])
    assert match_ids(torch.tensor([2.0, 9.0]), table, "id").tolist() == [1, 2]
    with pytest.raises(LessonxlError, match="id 3 is not in"):
        match_ids(torch.tensor([3.0]), table, "id")


def test_word_vectors_equal_nn_embedding(collab_defaults, collab_results):
    vocab = list(collab_defaults["word_emb!vocab"].ravel())
    ids = torch.tensor([vocab.index(w) for w in collab_defaults["word_emb!sentence"].ravel()])
    embedding = torch.nn.Embedding.from_pretrained(torch.tensor(collab_defaults["word_emb!embedding"]))
    np.testing.assert_array_equal(collab_results["word_emb!word_vectors"], embedding(ids).numpy())
    np.testing.assert_array_equal(collab_results["word_emb!word_id"].ravel(), ids.numpy() + 1)
    edited = dict(collab_defaults, **{"word_emb!sentence": np.array([["the"], ["unicorn"]], dtype=object)})
    with pytest.raises(LessonxlError, match="unicorn"):
        LESSON.evaluate(edited, CPU)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu(collab_defaults, collab_results):
    on_cuda = LESSON.compute(LESSON.tensors(collab_defaults, torch.device("cuda")))
    assert on_cuda.keys() == collab_results.keys()
    for key, value in on_cuda.items():
        assert value.device.type == "cuda", key
        np.testing.assert_allclose(value.cpu().numpy(), collab_results[key], rtol=1e-12, atol=1e-12, err_msg=key)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_the_full_data_fit_on_cuda_equals_cpu():
    """top_movies' fit (`generate --ratings FILE --device cuda`) learns on the GPU what it learns on the CPU:
    the same seeded batches and AdamW steps, the weights equal up to the devices' rounding."""
    from lessonxl.collab.top_movies import fit_all_ratings

    table = synthetic_ratings(2, 60, 80, count=1500)
    (ids, factors, bias), (cuda_ids, cuda_factors, cuda_bias) = (fit_all_ratings(table, 8, 0, device)
                                                                  for device in ("cpu", "cuda"))
    np.testing.assert_array_equal(ids, cuda_ids)
    torch.testing.assert_close(cuda_factors, factors, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(cuda_bias, bias, rtol=1e-9, atol=1e-11)


# ---------------------------------------------------------------- data

def test_synthetic_ratings_look_like_movielens():
    table = synthetic_ratings(7)
    assert table.equals(synthetic_ratings(7)) and not table.equals(synthetic_ratings(8))
    assert set(table["rating"]) <= set(np.arange(1, 11) / 2)
    assert not table.duplicated(["userId", "movieId"]).any()
    users, movies, grid = top_crosstab(table, 15, 15)
    assert grid.shape == (15, 15) and 0 < np.isnan(grid).mean() < 0.4


def test_top_crosstab_takes_the_most_active_users_and_most_rated_movies():
    import pandas as pd
    table = pd.DataFrame({"userId": [1, 1, 1, 2, 2, 3, 4, 4], "movieId": [10, 20, 30, 10, 20, 10, 30, 10],
                          "rating": [1.0, 2, 3, 4, 5, 1, 2, 3]})
    users, movies, grid = top_crosstab(table, 2, 2)
    assert users.tolist() == [1, 2] and movies.tolist() == [10, 20]
    np.testing.assert_array_equal(grid, [[1, 2], [4, 5]])
    with pytest.raises(LessonxlError, match="4 users have ratings, 5 are needed"):
        top_crosstab(table, 5, 2)


def _write_u_data(path, users=20, movies=20):
    rows = synthetic_ratings(1, users, movies, count=users * movies // 2)
    lines = [f"{u}\t{m}\t{int(max(1, r))}\t881250949" for u, m, r in rows.itertuples(index=False)]
    path.write_text("\n".join(lines) + "\n")
    return rows


def test_both_movielens_formats_load_the_same_table(tmp_path):
    rows = _write_u_data(tmp_path / "u.data")
    csv = tmp_path / "ratings.csv"
    table_100k = load_ratings(tmp_path / "u.data")
    table_100k.assign(timestamp=964982703).to_csv(csv, index=False)
    table_csv = load_ratings(csv)
    assert len(table_100k) == len(rows)
    np.testing.assert_array_equal(table_100k.to_numpy(), table_csv.to_numpy())


def test_a_users_file_becomes_the_workbooks_data(tmp_path):
    _write_u_data(tmp_path / "u.data")
    inputs = LESSON.default_inputs(0, ratings=tmp_path / "u.data", users=6, movies=8, factors=3)
    assert inputs["dotprod!ratings"].shape == (6, 8)
    assert inputs["bias!user_factors"].shape == (6, 3) and inputs["bias!movie_factors"].shape == (3, 8)
    ratings = inputs["dotprod!ratings"]
    assert set(np.unique(ratings[~np.isnan(ratings)])) <= {1, 2, 3, 4, 5}
    results = LESSON.evaluate(inputs, CPU)
    assert results["gd_steps!user_factors_1"].shape == (6, 3)


@pytest.mark.parametrize("content, message", [
    (None, "no such ratings file"),
    ("", "empty"),
    ("\n\n", "empty"),
    ("name,price\napple,3\n", "not a MovieLens ratings file"),
    ("1\t2\tgood\t3\n", "not a MovieLens ratings file"),
    ("userId,movieId,rating,timestamp\n", "holds no ratings"),
])
def test_unusable_files_are_one_line_usage_errors(tmp_path, content, message):
    path = tmp_path / "ratings.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(LessonxlError, match=message) as error:
        LESSON.default_inputs(0, ratings=path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


CLEAN_U_DATA = "1\t10\t4\t881250949\n2\t20\t3\t881250950\n3\t10\t5\t881250951\n"
CLEAN_CSV = "userId,movieId,rating,timestamp\n1,10,4,1\n2,20,3,2\n3,10,5,3\n"


@pytest.mark.parametrize("name, content", [
    ("u.data", CLEAN_U_DATA.replace("\n", "\t\n")),                      # a tab at the end of each line
    ("u.data", CLEAN_U_DATA.replace("\n", "\r\n")),                      # Windows line ends
    ("u.data", "\ufeff" + CLEAN_U_DATA),                                  # a byte-order mark
    ("u.data", "\n" + CLEAN_U_DATA.replace("\n", "\n\n") + "\n\n"),      # blank lines
    ("u.data", CLEAN_U_DATA.replace("\n", "  \n").replace("2\t20", " 2\t20")),  # spaces around
    ("u.data", CLEAN_U_DATA.replace("\t881250949", "").replace("\t881250950", "").replace("\t881250951", "")),
    ("ratings.csv", "\ufeff" + CLEAN_CSV.replace("\n", "\r\n")),          # Excel's "CSV UTF-8"
    ("ratings.csv", CLEAN_CSV.replace("\n", ",\n")),                      # a comma at the end of each line
    ("ratings.csv", CLEAN_CSV.replace("2,20,3,2\n", "2, 20 ,3,2,\n\n")),  # one line with spaces, a comma, blanks
    ("ratings.csv", CLEAN_CSV.replace("userId,movieId", "userId , movieId")),
])
def test_ratings_files_are_read_as_people_have_them(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8"))
    table = load_ratings(path)
    assert table.to_numpy(np.float64).tolist() == [[1, 10, 4], [2, 20, 3], [3, 10, 5]]


@pytest.mark.parametrize("name, content, line", [
    ("u.data", CLEAN_U_DATA.replace("\t3\t", "\tthree\t"), '2 is not a rating: "2\\t20\\tthree\\t881250950"'),
    ("u.data", CLEAN_U_DATA + "4\t30\n", '4 is not a rating: "4\\t30"'),
    ("u.data", "\n\n" + CLEAN_U_DATA + "4\t30\t5\t1\t9\n", '6 is not a rating: "4\\t30\\t5\\t1\\t9"'),
    ("ratings.csv", CLEAN_CSV.replace("2,20,3,2", "2,20,,2"), '3 is not a rating: "2,20,,2"'),
    ("ratings.csv", CLEAN_CSV.replace("\r", "").replace("3,10,5,3", "3;10;5;3"), '4 is not a rating: "3;10;5;3"'),
    ("ratings.csv", CLEAN_CSV.replace("\n", "\r\n") + "x,1,1,1\r\n", '5 is not a rating: "x,1,1,1"'),
])
def test_a_line_that_is_not_a_rating_is_named_with_its_number_and_content(tmp_path, name, content, line):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8"))
    with pytest.raises(LessonxlError) as error:
        load_ratings(path)
    message = str(error.value)
    assert message.startswith(f"{path}: line {line} (expected ") and "\n" not in message, message


def test_too_few_users_or_bad_sizes_are_usage_errors(tmp_path):
    _write_u_data(tmp_path / "u.data", users=10, movies=30)
    with pytest.raises(LessonxlError, match=r"u\.data: \d+ users have ratings, 15 are needed"):
        LESSON.default_inputs(0, ratings=tmp_path / "u.data")
    with pytest.raises(LessonxlError, match="--factors 0"):
        LESSON.default_inputs(0, factors=0)


# ---------------------------------------------------------------- the workbook

@pytest.fixture(scope="module")
def workbook(generated) -> openpyxl.Workbook:
    return openpyxl.load_workbook(generated["collab_filter"])


def test_sheets_and_their_names(workbook):
    """SPEC's names of each sheet, as the workbook's names sheet_name (Google Sheets has no sheet scope)."""
    assert workbook.sheetnames == list(LESSON.sheets)
    common = {"ratings", "user_factors", "movie_factors", "rmse"}
    for sheet, names in {"dotprod": common, "bias": common | {"user_bias", "movie_bias"},
                         "bias_yrange": common | {"y_lo", "y_hi", "user_bias", "movie_bias"},
                         "gd_steps": {"lr", "rmse", f"user_factors_{GD_STEPS}", "grad_movie_bias_0"},
                         "movielens_emb": {"user_embedding", "user_embedding_offset", "rmse"}}.items():
        assert {f"{sheet}_{name}" for name in names} <= set(workbook.defined_names), sheet
        assert not workbook[sheet].defined_names, sheet


def test_formulas_use_portable_functions_only_and_the_lessons_own(generated):
    """test_portability's lint (its one list of portable functions), and the functions the lesson is about."""
    used, problems = set(), []
    for where, formula in formulas(generated["collab_filter"]):
        problems += [f"{where} {formula}: {problem}" for problem in lint_formula(formula)]
        used |= set(re.findall(r"([A-Z][A-Z0-9.]*)\(", re.sub(r'"(?:[^"]|"")*"', '""', formula)))
    assert not problems, "\n".join(problems[:20])
    assert {"MMULT", "INDEX", "OFFSET", "MATCH", "SUMPRODUCT"} <= used


# ---------------------------------------------------------------- the size cap

def test_the_one_hot_sheet_shows_the_pairs_whose_rows_fit_under_the_cap():
    """pairs x (users + movies) one-hot cells: up to the cap every rated pair, one more and the sheet
    shows the first MAX_ONE_HOT_CELLS // (users + movies)."""
    users, movies = 100, 120
    pairs = MAX_ONE_HOT_CELLS // (users + movies)
    assert pairs < users * movies
    ratings = np.full((users, movies), np.nan)
    ratings.flat[:pairs] = 4.0
    assert OneHotCap.of(ratings) == OneHotCap(pairs, pairs, 220) and not OneHotCap.of(ratings).capped
    ratings.flat[pairs:pairs + 5] = 4.0
    cap = OneHotCap.of(ratings)
    assert cap == OneHotCap(pairs, pairs + 5, 220) and cap.capped and cap.cells == (pairs + 5) * 220
    assert "\n" not in cap.note()
    for needle in (f"first {pairs:,} of {pairs + 5:,} rated pairs", f"{(pairs + 5) * 220:,} cells",
                   f"{MAX_ONE_HOT_CELLS:,}", "movielens_emb holds them all"):
        assert needle in cap.note() and needle in cap.sheet_line()


def test_the_default_workbook_shows_every_pair_on_both_sheets(collab_defaults):
    rated = int((~np.isnan(collab_defaults["dotprod!ratings"])).sum())
    for sheet in ("movielens_1hot", "movielens_emb"):
        assert collab_defaults[f"{sheet}!rating"].shape == (rated, 1)
    assert LESSON.generate_notes(collab_defaults) == ()


@pytest.fixture(scope="module")
def capped(tmp_path_factory):
    """A 6 x 7 workbook made with a test-only cap of 10 pairs' one-hot rows: (inputs, path)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(collab.pairs, "MAX_ONE_HOT_CELLS", 10 * (6 + 7) + 3)
        options = {"users": 6, "movies": 7, "factors": 3}
        inputs = LESSON.default_inputs(0, **options)
        path = LESSON.write(tmp_path_factory.mktemp("capped"), 0, CPU, **options).path
    return inputs, path


def test_above_the_cap_only_the_one_hot_sheet_shrinks_and_says_so(capped):
    inputs, path = capped
    ratings = inputs["dotprod!ratings"]
    rated = int((~np.isnan(ratings)).sum())
    assert rated > 10
    users, movies, values = rated_pairs(torch.tensor(ratings))
    everything = [inputs["dotprod!user_ids"][users.numpy(), 0], inputs["dotprod!movie_ids"][0, movies.numpy()],
                  values.numpy()]
    for sheet, shown in (("movielens_1hot", 10), ("movielens_emb", rated)):
        for name, column in zip(("user_id", "movie_id", "rating"), everything):
            np.testing.assert_array_equal(inputs[f"{sheet}!{name}"][:, 0], column[:shown])
    results = LESSON.evaluate(inputs, CPU)
    assert results["movielens_emb!rmse"][0, 0] == pytest.approx(results["dotprod!rmse"][0, 0], rel=1e-12)
    one_hot = np.sqrt(np.mean(results["movielens_emb!sq_error"][:10]))
    assert results["movielens_1hot!rmse"][0, 0] == pytest.approx(one_hot, rel=1e-12)
    assert results["movielens_1hot!user_onehot"].shape == (10, 6)

    book = openpyxl.load_workbook(path)
    line = f"the first 10 of {rated} rated pairs: one-hot rows of all {rated} would be {rated * 13} cells"
    assert book["movielens_1hot"]["A3"].value.startswith(line)
    assert "movielens_emb holds them all" in book["movielens_1hot"]["A3"].value
    assert "over these 10 pairs only" in book["movielens_1hot"]["C4"].value
    assert book["movielens_emb"]["A3"].value == f"all {rated} rated pairs (movielens_1hot shows the first 10)"
    notes = " ".join(cell.value for cell in book["notes"]["A"] if isinstance(cell.value, str))
    assert "Both sheets reach dotprod's RMSE" not in notes
    assert f"movielens_emb holds all {rated} rated pairs and reaches dotprod's RMSE exactly" in notes
    assert "so its RMSE is over those 10 pairs only" in notes
    (note,) = LESSON.generate_notes(inputs)
    assert note.startswith(f"movielens_1hot shows the first 10 of {rated} rated pairs") and "\n" not in note


def test_a_capped_workbook_verifies(capped):
    """verify needs no cap: it recalculates the pairs the sheet holds (here without the test's cap)."""
    result = run_cli("verify", "--device", "cpu", capped[1])
    assert result.returncode == 0 and result.stdout.startswith("PASS"), result.stdout + result.stderr


def test_generate_says_when_it_cut_the_one_hot_sheet(tmp_path, monkeypatch, capsys):
    from lessonxl.cli import main

    monkeypatch.setattr(collab.pairs, "MAX_ONE_HOT_CELLS", 10 * (6 + 7) + 3)
    assert main(["generate", "--device", "cpu", "--users", "6", "--movies", "7", "--factors", "3",
                 "--out", str(tmp_path), "collab_filter"]) == 0
    lines = capsys.readouterr().out.splitlines()
    path = tmp_path / "collab_filter.xlsx"
    assert lines[0] == f"wrote {path}"
    assert lines[1].startswith(f"note: {path}: movielens_1hot shows the first 10 of ") and len(lines) == 2


@pytest.mark.parametrize("flags, message", [
    (["--users", "201", "--movies", "200"], "--users 201 --movies 200: a crosstab of 40,200 cells is more than the "
                                            "40,000 (200 x 200) a workbook is made for"),
    (["--users", "2", "--movies", "20001"], "a crosstab of 40,002 cells is more than"),
    (["--factors", "51"], "--factors 51: a workbook is made for at most 50 factors"),
])
def test_a_workbook_too_big_to_open_is_refused_in_one_line(tmp_path, capsys, flags, message):
    from lessonxl.cli import main

    assert main(["generate", "--device", "cpu", "--out", str(tmp_path), *flags, "collab_filter"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())
