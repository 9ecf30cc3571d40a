"""collab_filter's word_emb: the embedding lookup for words."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..lesson import SheetSpec, exact_match

if TYPE_CHECKING:  # the file writer: needed to generate, not to verify
    from ..sheets import Sheet

VOCAB = ("the", "a", "cat", "dog", "sat", "ran", "on", "mat", "rug", "fast")
SENTENCE = ("the", "cat", "sat", "on", "the", "mat")
WORD_DIMS = 4


class WordEmb(SheetSpec):
    """`word_emb`: the same lookup for words. A word's id is its row in the vocabulary (exact MATCH),
    its vector that row of the embedding matrix (INDEX); torch: nn.Embedding."""

    name = "word_emb"
    title = "Word embeddings: the same lookup for words"
    subtitle = ("A word's id is its row in the vocabulary (exact MATCH); its vector is that row of the "
                "embedding matrix (INDEX), as nn.Embedding returns.")
    teaches = "a sentence as word ids (MATCH) and as vectors (INDEX): nn.Embedding"
    inputs = ("vocab", "embedding", "sentence")
    params = frozenset({"embedding"})
    text_inputs = frozenset({"vocab", "sentence"})

    def compute(self, values) -> dict[str, torch.Tensor]:
        embedding = values["embedding"]
        ids = torch.tensor(exact_match(values["sentence"], values["vocab"], "word_emb: the word"),
                           device=embedding.device)
        with torch.no_grad():
            vectors = nn.Embedding.from_pretrained(embedding)(ids)
        return {"word_id": (ids + 1).to(embedding.dtype).reshape(-1, 1), "word_vectors": vectors}

    def layout(self, sheet: Sheet) -> None:
        dims = [f"dim {i + 1}" for i in range(sheet.value("embedding").shape[1])]
        place = sheet.across(5, 1)
        vocab = place.block("vocab", headers=["word"], caption="the vocabulary")
        embedding = place.block("embedding", headers=dims, caption="its embedding matrix")
        sentence = place.block("sentence", gap=2, headers=["sentence"], caption="a sentence, one word a row")
        word_id = place.block("word_id", headers=["word id"],
                              formula=lambda r, c: f"=MATCH({sentence.cell(r)},{vocab.ref},0)")
        place.block("word_vectors", gap=1, headers=dims, result=True,
                    caption="its vector: INDEX(embedding, word id, dim)",
                    formula=lambda r, c: f"=INDEX({embedding.ref},{word_id.cell(r)},{c + 1})")

    def defaults(self, seed: int) -> dict[str, np.ndarray]:
        gen = torch.Generator().manual_seed(seed)
        embedding = torch.randn(len(VOCAB), WORD_DIMS, generator=gen, dtype=torch.float64)
        return {self.key("vocab"): np.array(VOCAB, dtype=object).reshape(-1, 1),
                self.key("embedding"): np.round(embedding.numpy(), 2),
                self.key("sentence"): np.array(SENTENCE, dtype=object).reshape(-1, 1)}


WORDS = WordEmb()
