"""What adding tokens changes: the tokenization, where the new rows sit among the old, and the predictions.

Pure functions over a model before and after `add_tokens`; the Vocabulary page renders them.
Nearest neighbours are by cosine similarity of input-embedding rows, the usual way to read an
embedding space (Mikolov et al. 2013, "Distributed Representations of Words and Phrases").
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

from models.errors import InputError
from models.workbench_model import WorkbenchModel


@dataclass(frozen=True)
class TokenizationChange:
    before: list[str]
    after: list[str]
    before_ids: list[int]
    after_ids: list[int]

    @property
    def saved(self) -> int:
        """How many fewer tokens the text takes now."""
        return len(self.before) - len(self.after)


def compare_tokenization(before: WorkbenchModel, after: WorkbenchModel, text: str) -> TokenizationChange:
    """The text's tokens and ids under the old and the new tokenizer (special tokens included)."""
    old, new = before.encode(text), after.encode(text)
    return TokenizationChange(old.tokens[0], new.tokens[0], old.input_ids[0].tolist(), new.input_ids[0].tolist())


@torch.no_grad()
def nearest_neighbours(model: WorkbenchModel, token_ids: dict[str, int] | list[int], k: int = 8) -> pd.DataFrame:
    """For each token id, the `k` other tokens whose input embeddings are closest by cosine similarity.

    Columns: token, id, rank (1 = closest), neighbour, neighbour_id, cosine.
    """
    if k < 1:
        raise InputError(f"k must be at least 1; got {k}.")
    named = token_ids if isinstance(token_ids, dict) else {_token(model, i): int(i) for i in token_ids}
    weight = model.network.embed.word.weight  # (V, d)
    rows = []
    for token, index in named.items():
        if not 0 <= index < weight.shape[0]:
            raise InputError(f"Token id {index} is outside the embedding's {weight.shape[0]} rows.")
        cosine = F.cosine_similarity(weight[index][None, :], weight, dim=-1)  # (V,)
        cosine[index] = -2.0  # never its own neighbour
        scores, ids = cosine.topk(min(k, weight.shape[0] - 1))
        for rank, (score, other) in enumerate(zip(scores.tolist(), ids.tolist()), start=1):
            rows.append({"token": token, "id": index, "rank": rank, "neighbour": _token(model, other),
                         "neighbour_id": other, "cosine": score})
    return pd.DataFrame(rows, columns=["token", "id", "rank", "neighbour", "neighbour_id", "cosine"])


@torch.no_grad()
def prediction_change(before: WorkbenchModel, after: WorkbenchModel, text: str, top_k: int = 5) -> pd.DataFrame:
    """How the model's output on `text` moves when the vocabulary grows.

    - sequence classification: every label's probability before and after;
    - masked LM: the top tokens at the first mask token, before and after;
    - causal LM: the top next tokens after the text;
    - no head (a sentence encoder): the cosine similarity of the mean-pooled sentence vectors.
    Columns: output, before, after, change.
    """
    old, new = before.run(text), after.run(text)
    if after.task == "sequence-classification":
        p_old, p_new = old.logits[0].softmax(-1), new.logits[0].softmax(-1)  # (labels,)
        outputs = [(after.labels.get(i, str(i)), float(p_old[i]), float(p_new[i])) for i in range(len(p_new))]
    elif after.task in ("masked-lm", "causal-lm"):
        if after.task == "masked-lm":
            mask_id = after.tokenizer.token_to_id(after.tokenizer.special.get("mask_token", "")) if after.tokenizer else None
            where_old = _first(old.input_ids[0], mask_id)
            where_new = _first(new.input_ids[0], mask_id)
            if where_old is None or where_new is None:
                raise InputError(f"Put the mask token {after.tokenizer.special.get('mask_token', '[MASK]')} in the "
                                 "text to see the masked-LM predictions there.")
        else:
            where_old, where_new = old.lengths[0] - 1, new.lengths[0] - 1
        p_old = old.logits[0, where_old].softmax(-1)  # (V_old,)
        p_new = new.logits[0, where_new].softmax(-1)  # (V_new,): the new tokens compete for probability too
        top = list(dict.fromkeys(p_new.topk(top_k).indices.tolist() + p_old.topk(top_k).indices.tolist()))
        outputs = [(_token(after, i), 0.0 if _is_new(before, after, i, len(p_old)) else float(p_old[i]), float(p_new[i]))
                   for i in top]
    else:
        vec_old, vec_new = _mean_pooled(old), _mean_pooled(new)
        outputs = [("sentence vector cosine(before, after)", 1.0, float(F.cosine_similarity(vec_old, vec_new, dim=0)))]
    frame = pd.DataFrame(outputs, columns=["output", "before", "after"])
    frame["change"] = frame["after"] - frame["before"]
    return frame


def _token(model: WorkbenchModel, index: int) -> str:
    return model.tokenizer.id_to_token(int(index)) if model.tokenizer is not None else str(int(index))


def _is_new(before: WorkbenchModel, after: WorkbenchModel, index: int, old_rows: int) -> bool:
    """Whether id `index` is a token only the new tokenizer has: it had probability 0 before.

    A new id can fall inside the old output rows: checkpoints often carry more embedding rows than
    their tokenizer has tokens (padded vocabularies), and `add_tokens` gives the next free id, whose
    unused row the old model still scored.
    """
    if index >= old_rows:
        return True
    if before.tokenizer is None or after.tokenizer is None:
        return False
    return before.tokenizer.backend.id_to_token(index) is None and after.tokenizer.backend.id_to_token(index) is not None


def _first(ids: torch.Tensor, value: int | None) -> int | None:
    if value is None:
        return None
    hits = (ids == value).nonzero()
    return int(hits[0, 0]) if len(hits) else None


def _mean_pooled(trace) -> torch.Tensor:
    """Mean of the last hidden states over real tokens: how sentence-transformers reads MiniLM."""
    n = trace.lengths[0]
    return trace.hidden_states[-1][0, :n].mean(0)  # (d,)
