"""collab_filter's gd_steps: training inside the workbook, full-batch gradient descent unrolled in formulas."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .. import optim
from ..lesson import SheetSpec
from .crosstab import crosstab_labels, factor_labels, held_out_mask, labelled_ratings
from .models import EmbeddingDotBias, all_pairs, initial_weights, model_from_sheet, sheet_weights

if TYPE_CHECKING:  # the file writer: needed to generate, not to verify
    from ..sheets import Block, Cursor, Sheet

GD_STEPS, GD_LR = 12, 1.0
GD_WD = 0.0  # the notes' experiment sets it to 0.1


@dataclass(frozen=True)
class GdSteps(SheetSpec):
    """`gd_steps`: full-batch gradient descent on the bias model, unrolled in formulas. One band of
    rows per step: its weights (the inputs at step 0, else the last step's weights - lr x (their
    gradients + wd x themselves)), the masked error and the gradients of the MSE over the cells trained on;
    the RMSE per step over those cells and over the held-out ones, and their chart, on top. torch takes the
    same steps with autograd and torch.optim.SGD(lr, weight_decay=wd).

    Files written before 0.5.0 have neither held-out cells nor weight decay: `held_out=False` is their
    sheet (every rated cell trains, wd is 0, no held-out RMSE; `CollabFilter.specs_before`)."""

    held_out: bool = True  # the input `valid` (1 = held out of training), the held-out RMSE and wd
    name = "gd_steps"
    title = "Training in the workbook: gradient descent, unrolled"
    subtitle = (f"{GD_STEPS} full-batch steps on the bias model; the gradients of the mean squared error over the "
                "cells trained on, written as spreadsheet math, and weight decay; the held-out cells' RMSE per "
                "step; torch: autograd and torch.optim.SGD.")
    teaches = "gradient descent unrolled in formulas, with weight decay and held-out ratings, checked against " \
              "autograd and torch.optim.SGD"
    weights = ("user_factors", "movie_factors", "user_bias", "movie_bias")

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("ratings", "valid", "lr", "wd", *self.weights) if self.held_out else ("ratings", "lr", *self.weights)

    @property
    def params(self) -> frozenset[str]:
        return frozenset(self.weights)

    @property
    def blank_inputs(self) -> frozenset[str]:
        """Unrated cells are blank, and so are the cells of `valid` not held out."""
        return frozenset({"ratings", "valid"} if self.held_out else {"ratings"})

    def compute(self, values) -> dict[str, torch.Tensor]:
        ratings = values["ratings"]
        model = model_from_sheet(*(values[name] for name in self.weights))
        params, lr = list(model.parameters()), values["lr"].reshape(())
        wd = values["wd"].reshape(()) if self.held_out else torch.zeros_like(lr)
        valid = torch.nan_to_num(values["valid"]) if self.held_out else torch.zeros_like(ratings)
        users, movies = all_pairs(*ratings.shape, ratings.device)
        rated = ~torch.isnan(ratings)
        known = torch.nan_to_num(ratings)
        train = torch.where(rated, 1 - valid, torch.zeros_like(ratings))
        held = torch.where(rated, valid, torch.zeros_like(ratings))
        out = ({"train_mask": train, "n_train": train.sum().reshape(1, 1), "n_valid": held.sum().reshape(1, 1)}
               if self.held_out else {"n_rated": rated.sum().to(ratings.dtype).reshape(1, 1)})
        rmse, valid_rmse = [], []
        for step in range(GD_STEPS + 1):
            if step:
                out |= {f"{name}_{step}": w for name, w in sheet_weights(model).items()}
            predictions = model(users, movies).reshape(ratings.shape)
            error = torch.where(rated, predictions - known, torch.zeros_like(ratings))
            loss = (train * error ** 2).sum() / train.sum()
            out[f"dot_{step}"] = model.dot(users, movies).detach().reshape(ratings.shape)
            out[f"error_{step}"] = error.detach()
            rmse.append(loss.detach().sqrt())
            valid_rmse.append(((held * error.detach() ** 2).sum() / held.sum()).sqrt())
            if step < GD_STEPS:
                for param in params:
                    param.grad = None
                loss.backward()
                out |= {f"grad_{name}_{step}": g for name, g in sheet_weights(model, grad=True).items()}
                with torch.no_grad():
                    for param in params:
                        param.copy_(optim.SGD.step(param, param.grad + wd * param, {}, step + 1, lr=lr)[0])
        out["rmse"] = torch.stack(rmse).reshape(-1, 1)
        if self.held_out:
            out["valid_rmse"] = torch.stack(valid_rmse).reshape(-1, 1)
        return out

    def layout(self, sheet: Sheet) -> None:
        """lr, wd, the counts of cells trained on and held out, and the RMSE per step over each on top, the
        chart beside them; below them the ratings, the held-out cells and the training mask, then one band of
        rows per step."""
        left = sheet.value("user_factors").shape[1] + 3  # as on the crosstab sheets
        lr = sheet.labelled("lr", 3, 1, "lr")
        wd = sheet.labelled("wd", 4, 1, "wd")
        rmse = sheet.area("rmse", 9, 1)
        chart_bottom = 22  # the chart's rows: 3 to 21
        ratings = labelled_ratings(sheet, max(rmse.bottom + 1, chart_bottom) + 3, left)
        valid = held_out_mask(sheet, ratings)
        _, movie_labels = crosstab_labels(sheet)
        train = sheet.block("train_mask", ratings.top, valid.right + 2, headers=movie_labels, num_format="0",
                            caption="weight in training: 1 where rated and not held out, else 0",
                            formula=lambda r, c: f'=IF({ratings.cell(r, c)}="",0,1-{valid.cell(r, c)})')
        n_train = sheet.labelled("n_train", 5, 1, "cells trained on", num_format="0", widen=True,
                                 formula=f"=SUM({train.ref})")
        n_valid = sheet.labelled("n_valid", 6, 1, "held-out cells", num_format="0", widen=True,
                                 formula=f'=SUMPRODUCT(({ratings.ref}<>"")*{valid.ref})')
        top = ratings.bottom + 3
        previous, errors = None, []
        for step in range(GD_STEPS + 1):
            weights, error, grads = self._band(sheet, step, top, previous, ratings, train, lr, wd, n_train)
            errors.append(error)
            previous = weights, grads
            top = weights["user_factors"].bottom + 3
        steps = [str(step) for step in range(GD_STEPS + 1)]
        rmse = sheet.block("rmse", rmse.top, rmse.left, headers=["train RMSE"], row_labels=steps,
                           caption="RMSE after each step",
                           formula=lambda r, c: f"=SQRT(SUMPRODUCT({errors[r].ref},{errors[r].ref},{train.ref})"
                                                f"/{n_train.ref})")
        held = sheet.block("valid_rmse", rmse.top, rmse.right + 1, headers=["valid RMSE"], result=True,
                           formula=lambda r, c: f"=SQRT(SUMPRODUCT({errors[r].ref},{errors[r].ref},{valid.ref})"
                                                f"/{n_valid.ref})")
        sheet.text(rmse.top - 1, 0, "step", "header")
        sheet.line_chart("RMSE per gradient-descent step", [("cells trained on", rmse), ("held-out cells", held)],
                         3, held.right + 2, y_title="RMSE")

    def _band(self, sheet: Sheet, step: int, top: int, previous: tuple[dict, dict] | None, ratings: Block,
              train: Block, lr: Block, wd: Block, n_train: Block
              ) -> tuple[dict[str, Block], Block, dict[str, Block] | None]:
        """One step's rows: its weights (inputs at step 0, else the last step's weights - lr x (their
        gradients + wd x themselves), from `previous`), the masked error and, before the last step, the
        gradients of the MSE over the cells trained on (`train`: each cell's weight).
        Returns (weight blocks, error block, gradient blocks or None)."""
        user_labels, movie_labels = crosstab_labels(sheet)
        factor_names = factor_labels(sheet.value("user_factors").shape[1])
        suffix = f"_{step}" if step else ""
        sheet.text(top, 0, f"step {step}: " + (
            "the starting weights (edit them)" if not step
            else f"weights = step {step - 1}'s weights - lr x (gradient + wd x weights)"), "title")

        def weight(place: Cursor, name: str, **decoration) -> Block:
            if previous is None:
                return place.block(name, **decoration)
            old, grad = previous[0][name], previous[1][name]
            return place.block(name + suffix, **decoration,
                               formula=lambda r, c: f"={old.cell(r, c)}-{lr.ref}*({grad.cell(r, c)}"
                                                    f"+{wd.ref}*{old.cell(r, c)})")

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
        two_over_n = f"2/{n_train.ref}"
        user_factors, movie_factors = weights["user_factors"], weights["movie_factors"]
        movie_grads = sheet.down(movie_factors.top, error.left)
        grads = {
            "movie_factors": movie_grads.block(
                f"grad_movie_factors_{step}", caption="gradients of the MSE over the cells trained on",
                formula=lambda r, c: f"={two_over_n}*SUMPRODUCT({user_factors.column(r)},{error.column(c)},"
                                     f"{train.column(c)})"),
            "movie_bias": movie_grads.block(
                f"grad_movie_bias_{step}",
                formula=lambda r, c: f"={two_over_n}*SUMPRODUCT({error.column(c)},{train.column(c)})"),
            "user_factors": users.block(
                f"grad_user_factors_{step}", gap=1, headers=factor_names,
                caption="gradients: 2/n (error x training weight) x movie factors^T (SUMPRODUCT of rows)",
                formula=lambda r, c: f"={two_over_n}*SUMPRODUCT({error.row(r)},{train.row(r)},"
                                     f"{movie_factors.row(c)})"),
            "user_bias": users.block(
                f"grad_user_bias_{step}", headers=["bias"],
                formula=lambda r, c: f"={two_over_n}*SUMPRODUCT({error.row(r)},{train.row(r)})"),
        }
        return weights, error, grads

    def defaults(self, ratings: np.ndarray, valid: np.ndarray, factors: int, seed: int) -> dict[str, np.ndarray]:
        """gd_steps starts from the lesson's RAND(): factors U(0, 1) to 2 decimals, biases 0; lr = GD_LR,
        wd = GD_WD; the crosstab sheets' held-out cells."""
        start = EmbeddingDotBias(**initial_weights(seed, *ratings.shape, factors))
        return {self.key("ratings"): ratings, self.key("valid"): valid, self.key("lr"): np.array([[GD_LR]]),
                self.key("wd"): np.array([[GD_WD]]),
                **{self.key(name): np.round(w.numpy(), 2) for name, w in sheet_weights(start).items()}}


GD = GdSteps()
