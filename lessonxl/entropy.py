"""Softmax and cross-entropy (entropy_example.xlsx): torch arithmetic and sheet layout side by side.

The sheets follow the lesson's spreadsheet, with its two flaws fixed: the natural log (LN, as torch
uses) instead of LOG, and MATCH with match type 0 (exact) to find a class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .lesson import Lesson, SheetSpec, exact_match

if TYPE_CHECKING:  # the file writer: needed to generate, not to verify
    from .sheets import Block, Sheet

CLASSES = ("cat", "dog", "plane", "fish", "building")
SOFTMAX_EXAMPLES = ("image 1", "image 2")
N_BINARY, N_MULTICLASS = 8, 8


def softmax_parts(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """exp(z), the row sums, and exp(z) / sum: softmax as the sheet writes it."""
    exp = torch.exp(logits)
    total = exp.sum(dim=1, keepdim=True)
    return exp, total, exp / total


def binary_losses(y: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-(y ln p + (1-y) ln(1-p)), and the same loss picked by IF(y = 1, ...)."""
    formula = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
    picked = -torch.where(y == 1, torch.log(p), torch.log(1 - p))
    return formula, picked


def softmax_blocks(sheet: Sheet, top: int, logits: Block) -> tuple[Block, Block, Block]:
    """exp, sum and softmax of a logits block, to its right: the shape both sheets share."""
    n_classes = logits.cols
    place = sheet.across(top, logits.right + 1)
    exp = place.block("exp_logits", gap=1, caption="exp(z)", headers=[f"exp({c})" for c in CLASSES][:n_classes],
                      formula=lambda r, c: f"=EXP({logits.cell(r, c)})")
    total = place.block("sum_exp", gap=1, headers=["sum of exp"], formula=lambda r, c: f"=SUM({exp.row(r)})")
    probs = place.block("probs", gap=1, caption="softmax = exp / sum",
                        headers=[f"p({c})" for c in CLASSES][:n_classes], result=True,
                        formula=lambda r, c: f"={exp.cell(r, c)}/{total.cell(r, 0)}")
    return exp, total, probs


def softmax_values(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    """`softmax_blocks`' quantities, by name."""
    return dict(zip(("exp_logits", "sum_exp", "probs"), softmax_parts(logits)))


class Softmax(SheetSpec):
    name = "softmax"
    title = "Softmax: turn a row of logits into probabilities"
    subtitle = "softmax(z) = exp(z) / sum(exp(z)): every entry positive, each row sums to 1."
    teaches = "softmax = exp(z) / sum exp(z), rows sum to 1; sigmoid for a binary problem"
    inputs = ("classes", "logits", "binary_logit")
    text_inputs = frozenset({"classes"})

    def compute(self, values) -> dict[str, torch.Tensor]:
        out = softmax_values(values["logits"])
        z = values["binary_logit"]
        return {**out, "probs_sum": out["probs"].sum(dim=1, keepdim=True),
                "sigmoid": 1 / (1 + torch.exp(-z)),
                "softmax_z_0": torch.exp(z) / (torch.exp(z) + torch.exp(torch.zeros_like(z)))}

    def layout(self, sheet: Sheet) -> None:
        top = 5
        sheet.block("classes", top - 1, 1)  # the logits' header row, editable like any input
        logits = sheet.block("logits", top, 1, row_labels=SOFTMAX_EXAMPLES,
                             caption="logits z: the model's raw outputs, one per class")
        sheet.text(top - 1, 0, "example", "header")
        _, _, probs = softmax_blocks(sheet, top, logits)
        sheet.block("probs_sum", top, probs.right + 2, headers=["sum of p"],
                    formula=lambda r, c: f"=SUM({probs.row(r)})")
        top = 12
        sheet.text(top - 3, 0, "A binary problem needs one logit: sigmoid(z) = 1 / (1 + exp(-z)), "
                   "which is the softmax of the pair (z, 0).", "label")
        z = sheet.block("binary_logit", top, 1, headers=["logit z"], row_labels=SOFTMAX_EXAMPLES)
        place = sheet.across(top, z.right + 1)
        place.block("sigmoid", gap=1, headers=["sigmoid(z)"], result=True,
                    formula=lambda r, c: f"=1/(1+EXP(-{z.cell(r)}))")
        place.block("softmax_z_0", gap=1, headers=["softmax of (z, 0)"],
                    formula=lambda r, c: f"=EXP({z.cell(r)})/(EXP({z.cell(r)})+EXP(0))")


class BinaryXent(SheetSpec):
    name = "binary_xent"
    title = "Binary cross-entropy: the loss of a yes/no prediction"
    subtitle = ("Two ways to write the same loss; the original sheet's LOG (base 10) is shown "
                "for comparison: torch uses the natural log, LN.")
    teaches = "binary cross-entropy as a formula and as an IF lookup; LOG (base 10) vs LN"
    inputs = ("labels", "predicted")

    def compute(self, values) -> dict[str, torch.Tensor]:
        y, p = values["labels"], values["predicted"]
        formula, picked = binary_losses(y, p)
        log10 = -(y * torch.log10(p) + (1 - y) * torch.log10(1 - p))
        return {"loss": formula, "loss_if": picked, "loss_log10": log10,
                "mean_loss": formula.mean().reshape(1, 1), "mean_loss_if": picked.mean().reshape(1, 1),
                "mean_loss_log10": log10.mean().reshape(1, 1)}

    def layout(self, sheet: Sheet) -> None:
        top = 4
        examples = [f"example {i + 1}" for i in range(sheet.value("labels").shape[0])]
        place = sheet.across(top, 1)
        y = place.block("labels", headers=["label y"], row_labels=examples)
        p = place.block("predicted", headers=["predicted p"])
        loss = place.block("loss", gap=1, headers=["-(y ln p + (1-y) ln(1-p))"],
                           formula=lambda r, c: f"=-({y.cell(r)}*LN({p.cell(r)})"
                                                f"+(1-{y.cell(r)})*LN(1-{p.cell(r)}))")
        loss_if = place.block("loss_if", headers=["-IF(y=1, ln p, ln(1-p))"],
                              formula=lambda r, c: f"=-IF({y.cell(r)}=1,LN({p.cell(r)}),LN(1-{p.cell(r)}))")
        log10 = place.block("loss_log10", gap=1, headers=["with LOG (base 10): wrong"],
                            formula=lambda r, c: f"=-({y.cell(r)}*LOG({p.cell(r)})"
                                                 f"+(1-{y.cell(r)})*LOG(1-{p.cell(r)}))")
        mean_row = y.bottom + 2
        sheet.means(mean_row, {"mean_loss": loss, "mean_loss_if": loss_if, "mean_loss_log10": log10},
                    label_col=0, results=("mean_loss", "mean_loss_if"))
        sheet.text(mean_row + 2, 0, "LOG(x) = LN(x) / LN(10): the base-10 loss is the true loss divided "
                   "by 2.3026, so it matches no framework.", "label")


class MulticlassXent(SheetSpec):
    name = "multiclass_xent"
    title = "Multi-class cross-entropy: -log of the probability of the right class"
    subtitle = ("Written twice: as sum(one-hot x -log p), and as a lookup of -log p at the target's "
                "column (exact MATCH). torch: F.cross_entropy.")
    teaches = "cross-entropy as sum of one-hot x -log p and as an exact MATCH lookup"
    inputs = ("classes", "logits", "target")
    text_inputs = frozenset({"classes", "target"})

    def compute(self, values) -> dict[str, torch.Tensor]:
        logits = values["logits"]
        index = exact_match(values["target"], values["classes"], "multiclass_xent: the target")
        out = softmax_values(logits)
        log_probs = torch.log(out["probs"])
        index_t = torch.as_tensor(index, device=logits.device)
        one_hot = torch.nn.functional.one_hot(index_t, logits.shape[1]).to(logits.dtype)
        loss_one_hot = -(one_hot * log_probs).sum(dim=1, keepdim=True)
        loss_lookup = -log_probs.gather(1, index_t.reshape(-1, 1))
        return {**out, "log_probs": log_probs, "target_index": (index_t + 1).to(logits.dtype).reshape(-1, 1),
                "one_hot": one_hot, "loss_one_hot": loss_one_hot, "loss_lookup": loss_lookup,
                "mean_loss_one_hot": loss_one_hot.mean().reshape(1, 1),
                "mean_loss_lookup": loss_lookup.mean().reshape(1, 1)}

    def layout(self, sheet: Sheet) -> None:
        top = 5
        examples = [f"example {i + 1}" for i in range(sheet.value("logits").shape[0])]
        classes = sheet.block("classes", top - 1, 1)
        sheet.text(top - 1, 0, "example", "header")
        logits = sheet.block("logits", top, 1, row_labels=examples, caption="logits z")
        _, _, probs = softmax_blocks(sheet, top, logits)
        place = sheet.across(top, probs.right + 1)
        log_probs = place.block("log_probs", gap=1, caption="ln p", headers=[f"ln p({c})" for c in CLASSES],
                                formula=lambda r, c: f"=LN({probs.cell(r, c)})")
        target = place.block("target", gap=1, headers=["target"], caption="the right class")
        index = place.block("target_index", headers=["its column"],
                            formula=lambda r, c: f"=MATCH({target.cell(r)},{classes.ref},0)")
        one_hot = place.block("one_hot", gap=1, caption="one-hot of the target", headers=list(CLASSES),
                              formula=lambda r, c: f"=IF({target.cell(r)}={classes.cell(0, c, True)},1,0)")
        loss_one_hot = place.block("loss_one_hot", gap=1, headers=["-sum(one-hot x ln p)"],
                                   formula=lambda r, c: f"=-SUMPRODUCT({one_hot.row(r)},{log_probs.row(r)})")
        loss_lookup = place.block("loss_lookup", headers=["-INDEX(ln p, its column)"],
                                  formula=lambda r, c: f"=-INDEX({log_probs.row(r)},1,{index.cell(r)})")
        sheet.means(logits.bottom + 2, {"mean_loss_one_hot": loss_one_hot, "mean_loss_lookup": loss_lookup},
                    label_col=loss_one_hot.left - 1, results=("mean_loss_one_hot", "mean_loss_lookup"))


class Entropy(Lesson):
    """entropy_example.xlsx: softmax, binary and multi-class cross-entropy, each sheet a spec."""

    name = "entropy_example"
    title = "Softmax, binary and multi-class cross-entropy, with LN as torch uses"
    notes_title = "Softmax and cross-entropy"
    specs = (Softmax(), BinaryXent(), MulticlassXent())

    def notes(self, values) -> tuple[str, ...]:
        return NOTES

    def default_inputs(self, seed: int, **options) -> dict[str, np.ndarray]:
        gen = torch.Generator().manual_seed(seed)

        def rounded(t: torch.Tensor) -> np.ndarray:
            return np.round(t.double().numpy(), 2)

        classes = np.array([CLASSES], dtype=object)
        targets = torch.randint(len(CLASSES), (N_MULTICLASS,), generator=gen)
        return {
            "softmax!classes": classes,
            "softmax!logits": rounded(2 * torch.randn(len(SOFTMAX_EXAMPLES), len(CLASSES), generator=gen)),
            "softmax!binary_logit": rounded(2 * torch.randn(len(SOFTMAX_EXAMPLES), 1, generator=gen)),
            "binary_xent!labels": torch.randint(2, (N_BINARY, 1), generator=gen).double().numpy(),
            "binary_xent!predicted": rounded(0.05 + 0.9 * torch.rand(N_BINARY, 1, generator=gen)),
            "multiclass_xent!classes": classes,
            "multiclass_xent!logits": rounded(2 * torch.randn(N_MULTICLASS, len(CLASSES), generator=gen)),
            "multiclass_xent!target": np.array([[CLASSES[i]] for i in targets], dtype=object),
        }


NOTES = (
    "Softmax turns a model's raw outputs (logits) into probabilities: exp makes every number positive, "
    "dividing by the sum makes each row add up to 1. A bigger logit wins by more than it leads: "
    "exp amplifies differences.",
    "softmax: change a logit and watch every probability in its row move. Add 10 to all logits of a "
    "row: nothing changes (softmax only sees differences).",
    "binary_xent: the loss is -ln of the probability the model gave to the right answer. "
    "The IF form says exactly that; the long formula is the same number. Set p close to 0 for a "
    "label 1 and watch the loss explode.",
    "The 2019 sheet used LOG, which is base 10 in spreadsheets; torch uses the natural log (LN). "
    "The LOG column is the true loss divided by ln(10) = 2.3026.",
    "multiclass_xent: the one-hot row picks -ln p of the target class out of the sum; the lookup "
    "goes straight there with INDEX and an exact MATCH (match type 0: the original omitted it, "
    "which means 'approximate match on sorted data'). Both equal torch's F.cross_entropy(logits, target).",
    "Try: change a target (type another class name), a logit or a label, save, then run "
    "`lessonxl verify entropy_example.xlsx`: torch recomputes everything from your numbers and "
    "compares every formula cell.",
)
