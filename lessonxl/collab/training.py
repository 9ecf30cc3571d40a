"""collab_filter's gd_steps: training inside the workbook, full-batch gradient descent unrolled in formulas."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from .. import optim
from ..lesson import SheetSpec
from .crosstab import crosstab_labels, factor_labels, labelled_ratings
from .models import EmbeddingDotBias, all_pairs, initial_weights, model_from_sheet, sheet_weights

if TYPE_CHECKING:  # the file writer: needed to generate, not to verify
    from ..sheets import Block, Cursor, Sheet

GD_STEPS, GD_LR = 12, 1.0


class GdSteps(SheetSpec):
    """`gd_steps`: full-batch gradient descent on the bias model, unrolled in formulas. One band of
    rows per step: its weights (the inputs at step 0, else the last step's weights - lr x their
    gradients), the masked error and the gradients of the MSE; the RMSE per step and its chart on
    top. torch takes the same steps with autograd and torch.optim.SGD."""

    name = "gd_steps"
    title = "Training in the workbook: gradient descent, unrolled"
    subtitle = (f"{GD_STEPS} full-batch steps on the bias model; the gradients of the mean squared error "
                "written as spreadsheet math; torch: autograd and torch.optim.SGD.")
    teaches = "gradient descent unrolled in formulas, checked against autograd and torch.optim.SGD"
    weights = ("user_factors", "movie_factors", "user_bias", "movie_bias")
    inputs = ("ratings", "lr", *weights)
    params = frozenset(weights)
    blank_inputs = frozenset({"ratings"})

    def compute(self, values) -> dict[str, torch.Tensor]:
        ratings = values["ratings"]
        model = model_from_sheet(*(values[name] for name in self.weights))
        params, lr = list(model.parameters()), values["lr"].reshape(())
        users, movies = all_pairs(*ratings.shape, ratings.device)
        rated = ~torch.isnan(ratings)
        out = {"n_rated": rated.sum().to(ratings.dtype).reshape(1, 1)}
        rmse = []
        for step in range(GD_STEPS + 1):
            if step:
                out |= {f"{name}_{step}": w for name, w in sheet_weights(model).items()}
            predictions = model(users, movies).reshape(ratings.shape)
            error = torch.where(rated, predictions - ratings, torch.zeros_like(ratings))
            loss = F.mse_loss(predictions[rated], ratings[rated])
            out[f"dot_{step}"] = model.dot(users, movies).detach().reshape(ratings.shape)
            out[f"error_{step}"] = error.detach()
            rmse.append(loss.detach().sqrt())
            if step < GD_STEPS:
                for param in params:
                    param.grad = None
                loss.backward()
                out |= {f"grad_{name}_{step}": g for name, g in sheet_weights(model, grad=True).items()}
                with torch.no_grad():
                    for param in params:
                        param.copy_(optim.SGD.step(param, param.grad, {}, step + 1, lr=lr)[0])
        out["rmse"] = torch.stack(rmse).reshape(-1, 1)
        return out

    def layout(self, sheet: Sheet) -> None:
        """lr, the number of rated cells and the RMSE per step on top, the chart beside them; below
        them the ratings, then one band of rows per step."""
        left = sheet.value("user_factors").shape[1] + 3  # as on the crosstab sheets
        lr = sheet.labelled("lr", 3, 1, "lr")
        rmse = sheet.area("rmse", 8, 1)
        chart_bottom = 20  # the chart's rows: 3 to 19
        ratings = labelled_ratings(sheet, max(rmse.bottom + 1, chart_bottom) + 3, left)
        n_rated = sheet.labelled("n_rated", 4, 1, "rated cells", num_format="0", formula=f"=COUNT({ratings.ref})")
        top = ratings.bottom + 3
        previous, errors = None, []
        for step in range(GD_STEPS + 1):
            weights, error, grads = self._band(sheet, step, top, previous, ratings, lr, n_rated)
            errors.append(error)
            previous = weights, grads
            top = weights["user_factors"].bottom + 3
        rmse = sheet.block("rmse", rmse.top, rmse.left, headers=["RMSE"], result=True,
                           row_labels=[str(step) for step in range(GD_STEPS + 1)], caption="RMSE after each step",
                           formula=lambda r, c: f"=SQRT(SUMSQ({errors[r].ref})/{n_rated.ref})")
        sheet.text(rmse.top - 1, 0, "step", "header")
        sheet.line_chart("RMSE per gradient-descent step", [("RMSE", rmse)], 3, left, y_title="RMSE")

    def _band(self, sheet: Sheet, step: int, top: int, previous: tuple[dict, dict] | None, ratings: Block,
              lr: Block, n_rated: Block) -> tuple[dict[str, Block], Block, dict[str, Block] | None]:
        """One step's rows: its weights (inputs at step 0, else the last step's weights - lr x their
        gradients, from `previous`), the masked error and, before the last step, the gradients.
        Returns (weight blocks, error block, gradient blocks or None)."""
        user_labels, movie_labels = crosstab_labels(sheet)
        factor_names = factor_labels(sheet.value("user_factors").shape[1])
        suffix = f"_{step}" if step else ""
        sheet.text(top, 0, f"step {step}: " + ("the starting weights (edit them)" if not step
                                                else f"weights = step {step - 1}'s weights - lr x gradient"),
                   "title")

        def weight(place: Cursor, name: str, **decoration) -> Block:
            if previous is None:
                return place.block(name, **decoration)
            old, grad = previous[0][name], previous[1][name]
            return place.block(name + suffix, **decoration,
                               formula=lambda r, c: f"={old.cell(r, c)}-{lr.ref}*{grad.cell(r, c)}")

        movies = sheet.down(top + 3, ratings.left)  # below the step's title and a caption
        weights = {"movie_factors": weight(movies, "movie_factors", row_labels=factor_names,
                                           caption="movie factors"),
                   "movie_bias": weight(movies, "movie_bias", row_labels=["bias"])}
        users = sheet.across(movies.skip(2), 1)  # below a caption and the headers
        weights["user_factors"] = weight(users, "user_factors", headers=factor_names, row_labels=user_labels,
                                         caption="user factors")
        weights["user_bias"] = weight(users, "user_bias", headers=["bias"])
        dot = users.block(f"dot_{step}", gap=1, headers=movie_labels, row_labels=user_labels,
                          formula=weights["user_factors"].matmul(weights["movie_factors"]))
        sheet.text(dot.top - 2, dot.left, "dot product (MMULT)")
        error = users.block(
            f"error_{step}", gap=1, headers=movie_labels,
            formula=lambda r, c: f'=IF({ratings.cell(r, c)}="",0,{dot.cell(r, c)}'
                                 f'+{weights["user_bias"].cell(r)}+{weights["movie_bias"].cell(0, c)}'
                                 f'-{ratings.cell(r, c)})')
        sheet.text(error.top - 2, error.left, "error = prediction - rating (0 where not rated)")
        if step == GD_STEPS:
            return weights, error, None
        two_over_n = f"2/{n_rated.ref}"
        movie_grads = sheet.down(weights["movie_factors"].top, error.left)
        grads = {
            "movie_factors": movie_grads.block(
                f"grad_movie_factors_{step}", caption="gradients of the MSE",
                formula=weights["user_factors"].matmul(error, transpose=True, scale=two_over_n)),
            "movie_bias": movie_grads.block(f"grad_movie_bias_{step}",
                                            formula=lambda r, c: f"={two_over_n}*SUM({error.column(c)})"),
            "user_factors": users.block(
                f"grad_user_factors_{step}", gap=1, headers=factor_names,
                caption="gradients: 2/n error x movie factors^T (SUMPRODUCT of an error row and a factor row)",
                formula=error.matmul(weights["movie_factors"], transpose_other=True, scale=two_over_n)),
            "user_bias": users.block(f"grad_user_bias_{step}", headers=["bias"],
                                     formula=lambda r, c: f"={two_over_n}*SUM({error.row(r)})"),
        }
        return weights, error, grads

    def defaults(self, ratings: np.ndarray, factors: int, seed: int) -> dict[str, np.ndarray]:
        """gd_steps starts where the torch training starts (to 2 decimals), with lr = GD_LR."""
        start = EmbeddingDotBias(**initial_weights(seed, *ratings.shape, factors))
        return {self.key("ratings"): ratings, self.key("lr"): np.array([[GD_LR]]),
                **{self.key(name): np.round(w.numpy(), 2) for name, w in sheet_weights(start).items()}}


GD = GdSteps()
