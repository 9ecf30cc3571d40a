"""collab_filter's interpret: what the lesson's model learned. Movies ranked by learned bias, and the
first two principal components of the movie factors by repeated squaring of their covariance (power
iteration, 2^k steps at a time), in torch and in formulas."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..lesson import SheetSpec
from .crosstab import DOTPROD, INTERPRETED, factor_labels

if TYPE_CHECKING:  # the file writer: needed to generate, not to verify
    from ..sheets import Block, Cursor, Sheet

#: Squarings per component: the covariance raised to the power 2^12 = 4,096, so many power-iteration steps.
#: The error shrinks like (next variance / this one)^4096: below 1e-18 even where they are 1% apart, where
#: the 150 plain steps of releases before 0.5.0 (POWER_STEPS) left 2.7e-5 on real data (ratio 0.93).
SQUARINGS = 12
POWER_STEPS = 150  # power-iteration steps per component in files written before 0.5.0
RANKED = 5        # movies shown at each end of a ranking


def power_iteration(matrix: torch.Tensor, start: torch.Tensor, steps: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """`steps` power-iteration steps from the column `start`, as the sheet unrolls them: each step's
    product w = matrix x v and its normalised v = w / |w|, one column per step."""
    products, vectors = [], []
    v = start[:, 0]
    for _ in range(steps):
        w = v @ matrix  # the sheet's SUMPRODUCT(matrix column r, v): matrix is symmetric
        v = w / w.square().sum().sqrt()
        products.append(w)
        vectors.append(v)
    return torch.stack(products, 1), torch.stack(vectors, 1)


def repeated_squaring(matrix: torch.Tensor, start: torch.Tensor, squarings: int = SQUARINGS
                       ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Power iteration 2^k steps at a time, as the sheet writes it: M_0 = matrix, M_j = M_(j-1)^2 /
    SUMSQ(M_(j-1)) (the sum of squares of a symmetric matrix is the trace of its square, so every M_j has
    trace 1: no overflow), then M_k x start. M_j is matrix^(2^j) scaled, so M_k x start is the start after
    2^k power-iteration steps. The squares, and the product M_k x start (a column)."""
    squares, m = [], matrix
    for _ in range(squarings):
        m = m.T @ m / m.square().sum()  # each cell SUMPRODUCT of two columns of the symmetric matrix
        squares.append(m)
    return squares, m.T @ start


def fix_sign(v: torch.Tensor) -> torch.Tensor:
    """The vector or its negative, whichever has its largest-magnitude entry positive (on a tie
    between +x and -x, the vector as it is): IF(MAX(v) >= -MIN(v), 1, -1) * v."""
    return v * torch.where(v.max() >= -v.min(), 1.0, -1.0).to(v.dtype)


def ranking(values: torch.Tensor, movie_ids: torch.Tensor, n: int) -> tuple[torch.Tensor, ...]:
    """The n largest then the n smallest of a column (LARGE, SMALL), the 1-based position of each
    one's first occurrence (MATCH type 0) and that movie's id (INDEX): three columns of 2n."""
    column = values[:, 0]
    ordered = column.sort(descending=True).values
    picked = torch.cat([ordered[:n], ordered.flip(0)[:n]])
    hits = picked[:, None] == column[None, :]
    found = hits.any(dim=1)
    first = hits.to(column.dtype).argmax(dim=1)
    nan = torch.full_like(picked, torch.nan)
    position = torch.where(found, (first + 1).to(column.dtype), nan)
    ids = torch.where(found, movie_ids.reshape(-1)[first], nan)
    return picked.reshape(-1, 1), position.reshape(-1, 1), ids.reshape(-1, 1)


def deflated_name(pc: int) -> str:
    """The name of the covariance with the components before `pc` taken out: `deflated` for PC2 (as
    interpret has it), `deflated_3` for PC3 and so on."""
    return "deflated" if pc == 2 else f"deflated_{pc}"


def principal_components(centred: torch.Tensor, start: torch.Tensor, squaring: bool = True, components: int = 2
                         ) -> dict[str, torch.Tensor]:
    """The first `components` principal components of the rows of `centred`, as the sheet computes them:
    covariance, repeated squaring (`squaring`; else, as files before 0.5.0, POWER_STEPS plain power-iteration
    steps), sign fixed, variance (Rayleigh quotient), deflation (the component just found taken out), again.
    The components are the rows of `pc_loadings`."""
    covariance = centred.T @ centred / (centred.shape[0] - 1)
    out = {"covariance": covariance}
    matrix, loadings, variances = covariance, [], []
    for pc in range(1, components + 1):
        if pc > 1:
            matrix = matrix - variances[-1] * loadings[-1].T @ loadings[-1]
            out[deflated_name(pc)] = matrix
        if squaring:
            squares, product = repeated_squaring(matrix, start)
            out |= {f"pc{pc}_square_{j + 1}": square for j, square in enumerate(squares)}
            out[f"pc{pc}_product"] = product
            vector = product / product.square().sum().sqrt()
        else:
            out[f"pc{pc}_products"], out[f"pc{pc}_steps"] = power_iteration(matrix, start, POWER_STEPS)
            vector = out[f"pc{pc}_steps"][:, -1:]
        loadings.append(fix_sign(vector).T)
        variances.append(loadings[-1] @ matrix @ loadings[-1].T)
    out["pc_loadings"] = torch.cat(loadings, dim=0)
    out["pc_variance"] = torch.cat(variances, dim=0)
    out["variance_share"] = out["pc_variance"] / (centred.square().sum() / (centred.shape[0] - 1))
    out["pc_scores"] = centred @ out["pc_loadings"].T
    return out


def ranked_count(movies: int) -> int:
    """How many movies each ranking shows at the top and at the bottom."""
    return min(RANKED, movies // 2)


@dataclass(frozen=True)
class Interpret(SheetSpec):
    """`interpret`: what the lesson's model (bias_yrange) learned. Its movies ranked by learned bias,
    and the first two principal components of its movie factors, worked out in formulas: centred
    factors, covariance (MMULT), repeated squaring, the sign fixed, deflation; each movie's scores on
    the components, their rankings and a chart. `squaring=False`: the sheet of files before 0.5.0, which
    took POWER_STEPS plain power-iteration steps (`CollabFilter.specs_before`)."""

    squaring: bool = True
    name = "interpret"
    title = "Interpreting the embeddings: bias ranking and principal components"
    subtitle = (f"The lesson's model ({INTERPRETED.name}): movies ranked by learned bias, and the first two "
                f"principal components of the movie factors, by power iteration in formulas: the covariance "
                f"squared {SQUARINGS} times is {2 ** SQUARINGS:,} steps.")
    teaches = ("movies ranked by learned bias; principal components of the movie factors by power iteration "
               "(repeated squaring) in formulas")
    inputs = ("genre", "start")
    text_inputs = frozenset({"genre"})

    def compute(self, values) -> dict[str, torch.Tensor]:
        model = values.of(INTERPRETED.name)
        factors, bias = model["movie_factors"].T, model["movie_bias"].T
        movie_ids = values.of(DOTPROD.name)["movie_ids"]
        mean = factors.mean(dim=0, keepdim=True)
        centred = factors - mean
        out = {"movie_id": movie_ids.T, "movie_bias": bias, "factor_mean": mean, "centred": centred,
               **principal_components(centred, values["start"], self.squaring)}
        n = ranked_count(len(bias))
        for what, column in (("bias", bias), ("pc1", out["pc_scores"][:, :1]), ("pc2", out["pc_scores"][:, 1:])):
            for suffix, value in zip(("", "_movie", "_id"), ranking(column, movie_ids, n)):
                out[f"{what}_ranked{suffix}"] = value
        return out

    def layout(self, sheet: Sheet) -> None:
        """The movies with their bias and component scores, the chart and the rankings on top; below,
        the components worked out: centred factors, covariance, repeated squaring, sign, deflation."""
        movie_ids = sheet.block_on(DOTPROD.name, "movie_ids")
        model_bias = sheet.block_on(INTERPRETED.name, "movie_bias")
        titles = [str(t) for t in sheet.block_on(DOTPROD.name, "movie_titles").values.ravel()]
        movies = sheet.across(7, 1)
        movie_id = movies.block("movie_id", headers=["movie id"], row_labels=titles, num_format="0",
                                caption="the movies: id, genre, learned bias and scores on the two components",
                                formula=lambda r, c: f"=INDEX({movie_ids.ref},1,{r + 1})")
        movies.block("genre", headers=["genre"])
        bias = movies.block("movie_bias", headers=["bias"],
                            formula=lambda r, c: f"=INDEX({model_bias.ref},1,{r + 1})")
        scores = movies.area("pc_scores")
        n = ranked_count(len(titles))
        rank_labels = [f"top {k + 1}" for k in range(n)] + [f"bottom {k + 1}" for k in range(n)]
        rankings = sheet.across(movie_id.bottom + 5, 1)
        for name, column in (("bias", bias.ref), ("PC1", scores.column(0)), ("PC2", scores.column(1))):
            ranked = _ranking_blocks(rankings, name, column, movie_ids, n, rank_labels)
        sheet.text(ranked.top - 2, 1, "ranked by bias, PC1 and PC2: LARGE / SMALL, the movie's row above by "
                                      "exact MATCH, its id by INDEX")
        centred, loadings = component_blocks(sheet, sheet.block_on(INTERPRETED.name, "movie_factors"), titles,
                                             ranked.bottom + 6)
        sheet.block("pc_scores", scores.top, scores.left, headers=["PC1", "PC2"], result=True,
                    formula=lambda r, c: f"=SUMPRODUCT({centred.row(r)},{loadings.row(c)})")
        sheet.scatter_chart("The movies on the first two components", scores, scores, 3, 7, x_col=0, y_col=1,
                            x_title="PC1", y_title="PC2", point_labels=titles)


def _ranking_blocks(place: Cursor, what: str, column: str, movie_ids: Block, n: int, row_labels: list[str]) -> Block:
    """The n largest then the n smallest values of `column` (`<what>_ranked`, lower case), each one's
    position by exact MATCH (`<what>_ranked_movie`) and its movie id by INDEX (`<what>_ranked_id`),
    then a blank column. Returns the ranked values' block."""
    header, what = what, what.lower()
    ranked = place.block(
        f"{what}_ranked", headers=[header], row_labels=row_labels, result=True,
        formula=lambda r, c: f"=LARGE({column},{r + 1})" if r < n else f"=SMALL({column},{r - n + 1})")
    position = place.block(f"{what}_ranked_movie", headers=["movie #"], num_format="0",
                           formula=lambda r, c: f"=MATCH({ranked.cell(r)},{column},0)")
    place.block(f"{what}_ranked_id", headers=["movie id"], num_format="0",
                formula=lambda r, c: f"=INDEX({movie_ids.ref},1,{position.cell(r)})")
    place.skip(1)
    return ranked


def component_blocks(sheet: Sheet, movie_factors: Block, titles: list[str], top: int, components: int = 2,
                      movies_down: bool = False) -> tuple[Block, Block]:
    """The factors' mean, the centred factors, their covariance, the start vector, each component's
    squarings, the deflated covariances, the components and their variances, for `components` components of
    `movie_factors` (factors x movies, as the crosstab sheets show them; `movies_down`: movies x factors).
    Returns the centred factors and the components (`pc_loadings`)."""
    factor_names = factor_labels(movie_factors.cols if movies_down else movie_factors.rows)
    pcs = range(1, components + 1)

    def factor(c: int) -> str:
        return movie_factors.column(c) if movies_down else movie_factors.row(c)
    mean = sheet.block("factor_mean", top, 1, headers=factor_names, row_labels=["mean"],
                       caption=f"principal components of {movie_factors.sheet.name}'s movie factors: each "
                               "factor's mean over the movies",
                       formula=lambda r, c: f"=AVERAGE({factor(c)})")
    place = sheet.across(mean.bottom + 4, 1)
    centred = place.block(
        "centred", headers=factor_names, row_labels=titles, caption="the factors minus their mean",
        formula=(lambda r, c: f"={movie_factors.cell(r, c)}-{mean.cell(0, c)}") if movies_down else
        (lambda r, c: f"=INDEX({movie_factors.ref},{c + 1},{r + 1})-{mean.cell(0, c)}"))
    covariance = place.block(
        "covariance", gap=2, headers=factor_names, row_labels=factor_names,
        caption="covariance = centred^T x centred / (movies - 1): SUMPRODUCT of two columns",
        formula=centred.matmul(centred, transpose=True, scale=f"1/(ROWS({centred.ref})-1)"))
    start = place.block("start", gap=2, headers=["start"], row_labels=factor_names, caption="start vector (edit it)")
    products = [place.area(f"pc{pc}_product", gap=2 if pc == 1 else 0) for pc in pcs]
    loadings = place.area("pc_loadings", gap=2)
    variance = place.area("pc_variance", gap=1)
    matrices = [covariance]
    for pc in pcs[1:]:
        matrices.append(sheet.block(
            deflated_name(pc), matrices[-1].bottom + 5, covariance.left, headers=factor_names,
            row_labels=factor_names,
            caption="deflated = covariance - variance of PC1 x PC1 x PC1 transposed" if pc == 2 else
            f"deflated again: minus variance of PC{pc - 1} x PC{pc - 1} x PC{pc - 1} transposed",
            formula=lambda r, c, m=matrices[-1], k=pc - 2: f"={m.cell(r, c)}-{variance.cell(k)}*"
                                                           f"{loadings.cell(k, r)}*{loadings.cell(k, c)}"))
    squares_top = max(centred.bottom + 1, matrices[-1].bottom) + 5
    for pc, (matrix, product) in enumerate(zip(matrices, products), start=1):
        last = _squaring_blocks(sheet, pc, matrix, squares_top, 1 + (pc - 1) * (len(factor_names) + 2),
                                factor_names)
        products[pc - 1] = sheet.block(
            product.name, product.top, product.left, headers=[f"PC{pc} x start"],
            row_labels=factor_names if pc == 1 else None,
            caption="last square x start" if pc == 1 else None,
            formula=lambda r, c, last=last: f"=SUMPRODUCT({last.column(r)},{start.column(0)})")
    loadings = sheet.block(
        "pc_loadings", loadings.top, loadings.left, headers=factor_names, row_labels=[f"PC{pc}" for pc in pcs],
        caption="the components: each product over its length, its sign fixed",
        formula=lambda r, c: f"=INDEX({products[r].ref},{c + 1})/SQRT(SUMSQ({products[r].ref}))"
                             f"*IF(MAX({products[r].ref})>=-MIN({products[r].ref}),1,-1)")
    variance = sheet.block(
        "pc_variance", variance.top, variance.left, headers=["variance"],
        formula=lambda r, c: f"=SUMPRODUCT({loadings.row(r)},MMULT({loadings.row(r)},{matrices[r].ref}))")
    place.block("variance_share", headers=["share"], result=True,
                formula=lambda r, c: f"={variance.cell(r)}/(SUMSQ({centred.ref})/(ROWS({centred.ref})-1))")
    return centred, loadings


def _squaring_blocks(sheet: Sheet, pc: int, matrix: Block, top: int, left: int, factor_names) -> Block:
    """One component's repeated squaring, one matrix below the other from (top, left): M_j = M_(j-1) x
    M_(j-1) / SUMSQ(M_(j-1)), each cell a SUMPRODUCT of two columns of the symmetric M_(j-1). Returns the last."""
    what = "covariance" if pc == 1 else "deflated covariance"
    place, previous = sheet.down(top, left), matrix
    for j in range(1, SQUARINGS + 1):
        caption = (f"PC{pc}: the {what} squared, / SUMSQ: its power {2 ** j:,}, trace 1" if j == 1
                   else f"squared again: power {2 ** j:,}")
        previous = place.block(
            f"pc{pc}_square_{j}", gap=3 if j > 1 else 0, headers=factor_names,
            row_labels=factor_names if pc == 1 else None, caption=caption,
            formula=lambda r, c, m=previous: f"=SUMPRODUCT({m.column(r)},{m.column(c)})/SUMSQ({m.ref})")
    return previous


INTERPRET = Interpret()


def interpret_note(values) -> str:
    """What `interpret` shows, with the convergence and genre figures measured on this data."""
    variances = torch.linalg.eigvalsh(torch.as_tensor(values[INTERPRET.key("covariance")])).flip(0)
    ratios = [(variances[i + 1] / variances[i]).item() for i in range(min(2, len(variances) - 1))]
    steps = 2 ** SQUARINGS
    shrink = " and ".join(f"{ratio:.2f}^{steps:,} = {_power_of_ten(ratio, steps)}" for ratio in ratios)
    shrink = f", {shrink} here" if shrink else ""
    genres = genre_shares(values[INTERPRET.key("genre")].ravel(),
                          np.asarray(values[INTERPRET.key("pc_scores")])[:, 0],
                          ranked_count(len(values[INTERPRET.key("movie_bias")])))
    return (
        "interpret: what the model learned, read as the lesson reads it. The movie bias ranks the movies the "
        "model thinks good or bad whoever watches them (the top and bottom five by LARGE and SMALL, each "
        "one's row by exact MATCH, its id by INDEX). The factors have no names, but their principal "
        "components can be named: the sheet centres the movie factors, builds their covariance with MMULT, "
        "and finds the first component by power iteration (multiply a vector by the covariance, again and "
        f"again): squaring the covariance {SQUARINGS} times raises it to the power {steps:,} (each square "
        "divided by its sum of squares, so nothing overflows), and that times the start vector is "
        f"{steps:,} steps at once. The second component is found the same way after taking the first out "
        "(deflation); each component's sign makes its largest entry positive. That many steps are enough: "
        f"the error shrinks like the ratio of the next variance to this one per step{shrink} (the tests "
        "check the components against torch.linalg.eigh and svd). "
        + (f"Genres at the two ends of the first component ({genres}). " if genres else "")
        + "The chart puts every movie on the two components. Try: on bias_yrange, set one movie's bias to 3: "
        "it tops the bias ranking here. Or set the start vector to 1 in its first cell and 0 in the others: "
        "the product with the last square changes, the components do not."
    )


def _power_of_ten(ratio: float, power: int) -> str:
    """ratio^power in words a float cannot hold: 1e-442 for 0.78^4096."""
    if ratio <= 0:
        return "0"
    exponent = power * math.log10(ratio)
    return f"{ratio ** power:.0e}" if exponent > -300 else f"1e{round(exponent)}"


def genre_shares(genres, scores: np.ndarray, n: int) -> str:
    """How the (first-listed) genres of the n movies at each end of `scores` split, e.g. 'top 5 on PC1:
    5 action; bottom 5: 3 comedy, 2 romance'; empty when the genres are unknown."""
    first = [str(genre).split("|")[0] for genre in genres]
    if set(first) <= {"-"}:
        return ""
    order = np.argsort(-np.asarray(scores), kind="stable")

    def split(rows) -> str:
        counts = Counter(first[i] for i in rows)
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return ", ".join(f"{count} {genre}" for genre, count in ordered)
    return f"top {n} on PC1: {split(order[:n])}; bottom {n}: {split(order[len(order) - n:])}"
