"""What masking some heads does to one input: the prediction, every head's attention, the hidden states.

Runs the text twice, without and with the mask (transformers 4.x `head_mask` semantics), and
compares. Masked heads report zero attention (as 4.x does under head_mask), heads in earlier
layers and elsewhere in the masked layers do not change at all, later layers do: the picture
shows how the removal propagates.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from models.head_selection import HeadSpec
from models.tokenization import TextInput
from models.trace import Trace
from models.workbench_model import WorkbenchModel


@dataclass(frozen=True)
class MaskingEffect:
    before: Trace
    after: Trace
    what: str                          # what the prediction is: "class", "next token after 'sat'", ...
    prediction: pd.DataFrame           # output, before, after, change (probabilities); empty without a task head
    kl_divergence: float | None        # KL(before || after) of the predicted distribution, nats
    attention_change: torch.Tensor     # (n_layers, n_heads) mean |after - before| over real query/key pairs; NaN pruned
    hidden_cosine: torch.Tensor        # (n_layers + 1,) mean cosine of each token's hidden state before/after


def masking_effect(model: WorkbenchModel, text: TextInput, spec: HeadSpec, top_k: int = 5) -> MaskingEffect:
    """Compare one input's run with and without the heads in `spec` masked."""
    before = model.run(text)
    with model.mask_heads(spec):
        after = model.run(text)
    n = before.lengths[0]
    table = torch.full((model.n_layers, model.n_heads), float("nan"), dtype=torch.float64)
    for layer, (a, b) in enumerate(zip(before.attentions, after.attentions)):
        ids = before.head_ids[layer]
        if ids:
            change = (b[0, :, :n, :n] - a[0, :, :n, :n]).abs().double().mean(dim=(-1, -2))  # (H_layer,)
            table[layer, ids] = change
    cosine = torch.stack([torch.nn.functional.cosine_similarity(a[0, :n].double(), b[0, :n].double(), dim=-1).mean()
                          for a, b in zip(before.hidden_states, after.hidden_states)])  # (n_layers + 1,)
    what, p_before, p_after, names = _distributions(model, before, after)
    prediction = pd.DataFrame(columns=["output", "before", "after", "change"])
    kl = None
    if p_before is not None:
        kl = float((p_before * (torch.log(p_before.clamp_min(1e-30)) - torch.log(p_after.clamp_min(1e-30)))).sum())
        shown = (torch.topk(p_before, min(top_k, len(p_before))).indices.tolist()
                 + torch.topk(p_after, min(top_k, len(p_after))).indices.tolist())
        rows = [{"output": names(i), "before": float(p_before[i]), "after": float(p_after[i]),
                 "change": float(p_after[i] - p_before[i])} for i in dict.fromkeys(shown)]  # order kept, no repeats
        prediction = pd.DataFrame(rows).sort_values("before", ascending=False).reset_index(drop=True)
    return MaskingEffect(before=before, after=after, what=what, prediction=prediction, kl_divergence=kl,
                         attention_change=table, hidden_cosine=cosine)


def _distributions(model: WorkbenchModel, before: Trace, after: Trace):
    """(what, p_before, p_after, id -> name) for the model's prediction on this input; Nones without a head."""
    if before.logits is None:
        return "final hidden states (no task head)", None, None, None
    if before.logits.dim() == 2:  # a classifier: one distribution per example
        names = lambda i: model.labels.get(i, f"LABEL_{i}")
        return "class", before.logits[0].double().softmax(-1), after.logits[0].double().softmax(-1), names
    tokens = before.tokens[0]
    position = _prediction_position(model, tokens)
    names = lambda i: model.tokenizer.id_to_token(i) if model.tokenizer else str(i)
    label = (f"next token after {tokens[position]!r}" if model.task == "causal-lm"
             else f"token at position {position} ({tokens[position]!r})")
    return (label, before.logits[0, position].double().softmax(-1), after.logits[0, position].double().softmax(-1),
            names)


def _prediction_position(model: WorkbenchModel, tokens: list[str]) -> int:
    """The last token for a causal LM; the first mask token, else the last non-special token, for a masked LM."""
    if model.task == "causal-lm" or model.tokenizer is None:
        return len(tokens) - 1
    mask_token = model.tokenizer.special.get("mask_token")
    if mask_token in tokens:
        return tokens.index(mask_token)
    special = set(model.tokenizer.special.values())
    ordinary = [i for i, t in enumerate(tokens) if t not in special]
    return ordinary[-1] if ordinary else len(tokens) - 1
