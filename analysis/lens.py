"""The logit lens: read every layer's residual stream through the model's own unembedding.

nostalgebraist 2020, "interpreting GPT: the logit lens" (LessWrong): apply the final norm and
the LM head to the residual stream after each block, as if the model stopped there, and see
which tokens each layer already predicts. The core computes logits from every position, so
any layer and position can be read; the last layer reproduces the model's own logits.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from models.errors import HeadIndexError, InputError, UnsupportedArchitectureError
from models.trace import Trace
from models.workbench_model import WorkbenchModel

from .hidden_states import residual_stream

LM_TASKS = ("causal-lm", "masked-lm")


def has_lm_head(model: WorkbenchModel) -> bool:
    """True if the model maps hidden states to the vocabulary (a causal or masked LM head)."""
    return model.task in LM_TASKS and model.network.head is not None


@dataclass
class LogitLens:
    """Top tokens per layer and position. Layer 0 is the embedding output; layer l the output of block l - 1."""
    layers: list[int]                 # residual-stream states read, 0..n_layers
    positions: list[int]              # input positions read
    input_tokens: list[str]           # the input token at each position
    top_ids: torch.Tensor             # (layers, positions, k) long
    top_tokens: list[list[list[str]]]  # [layer][position][rank]
    top_probs: torch.Tensor           # (layers, positions, k) softmax probabilities
    target_ids: torch.Tensor | None   # (positions,) the token the model is trained to predict there, -1 if none
    target_probs: torch.Tensor | None  # (layers, positions) probability each layer gives that token
    target_ranks: torch.Tensor | None  # (layers, positions) its rank (0 = top), -1 where there is no target

    def to_frame(self) -> pd.DataFrame:
        """Long form for export: one row per (layer, position, rank)."""
        rows = []
        for li, layer in enumerate(self.layers):
            for pi, position in enumerate(self.positions):
                for rank, token in enumerate(self.top_tokens[li][pi]):
                    rows.append({"layer": layer, "position": position, "input_token": self.input_tokens[pi],
                                 "rank": rank, "token": token, "prob": float(self.top_probs[li, pi, rank])})
        return pd.DataFrame(rows, columns=["layer", "position", "input_token", "rank", "token", "prob"])

    def top1_table(self) -> pd.DataFrame:
        """Layers as rows, positions as columns, the top token in each cell: the classic lens picture."""
        columns = [f"{p}:{t}" for p, t in zip(self.positions, self.input_tokens)]
        cells = [[self.top_tokens[li][pi][0] for pi in range(len(self.positions))] for li in range(len(self.layers))]
        return pd.DataFrame(cells, index=pd.Index(self.layers, name="layer"), columns=columns)


@torch.no_grad()
def unembed(model: WorkbenchModel, resid: torch.Tensor) -> torch.Tensor:
    """(..., T, vocab) logits of residual-stream states (..., T, d): final norm, then the LM head."""
    if not has_lm_head(model):
        raise UnsupportedArchitectureError(
            f"{model.name or model.family} has no language-modelling head, so there is no vocabulary to read "
            "the residual stream in. The logit lens needs a causal or masked LM (e.g. smollm2).")
    network = model.network
    x = resid[None] if resid.dim() == 2 else resid  # (B, T, d)
    final = network.final_norm(x) if network.final_norm is not None else x  # (B, T, d)
    mask = torch.ones(final.shape[:2], dtype=torch.long)  # (B, T)
    return network.head(final, {}, mask)  # (B, T, vocab)


@torch.no_grad()
def logit_lens(model: WorkbenchModel, trace: Trace, positions: Sequence[int] | None = None, top_k: int = 5,
               layers: Sequence[int] | None = None, example: int = 0) -> LogitLens:
    """Top-``top_k`` tokens of every layer (or ``layers``) at ``positions`` (default all) of one example.

    The target at a position is the next input token for a causal LM (the model's training
    target) and the token itself for a masked LM; its probability and rank per layer show where
    in depth the prediction forms. Layers are computed one at a time to bound memory (a full
    lens of SmolLM2 at 512 tokens would be 31 x 512 x 49,152 floats).
    """
    if top_k < 1:
        raise InputError(f"top_k must be at least 1; got {top_k}.")
    states = residual_stream(trace, example)  # (L+1, n, d)
    n = states.shape[1]
    positions = list(range(n)) if positions is None else [int(p) for p in positions]
    if not positions:
        raise InputError("No positions to read: pick at least one token.")
    bad = [p for p in positions if not 0 <= p < n]
    if bad:
        raise InputError(f"Positions {bad} are outside the input (0..{n - 1}).")
    layers = list(range(states.shape[0])) if layers is None else [int(l) for l in layers]
    bad = [l for l in layers if not 0 <= l < states.shape[0]]
    if bad:
        raise HeadIndexError(f"Layers {bad} are out of range: the residual stream has states 0..{states.shape[0] - 1}.")
    ids = trace.input_ids[example, :n]  # (n,)
    index = torch.tensor(positions)  # (P,)
    if model.config.causal:
        shifted = torch.cat([ids[1:], torch.tensor([-1])])  # (n,) next token; none after the last
        targets = shifted[index]  # (P,)
    else:
        targets = ids[index]  # (P,) a masked LM predicts the token at its own position
    top_ids, top_probs, target_probs, target_ranks = [], [], [], []
    for layer in layers:
        logits = unembed(model, states[layer, index])[0].float()  # (P, vocab)
        probs = logits.softmax(-1)  # (P, vocab)
        p, i = probs.topk(min(top_k, probs.shape[-1]), dim=-1)  # (P, k)
        top_probs.append(p)
        top_ids.append(i)
        safe = targets.clamp_min(0)  # (P,)
        target_p = probs.gather(-1, safe[:, None])[:, 0]  # (P,)
        rank = (probs > target_p[:, None]).sum(-1)  # (P,) tokens strictly more likely than the target
        target_probs.append(torch.where(targets >= 0, target_p, torch.zeros_like(target_p)))
        target_ranks.append(torch.where(targets >= 0, rank, torch.full_like(rank, -1)))
    top_ids_t = torch.stack(top_ids)  # (layers, P, k)
    token_of = model.tokenizer.id_to_token if model.tokenizer is not None else (lambda i: str(i))
    tokens = [[[token_of(int(t)) for t in row] for row in layer_ids] for layer_ids in top_ids_t]
    return LogitLens(layers=layers, positions=positions, input_tokens=[trace.tokens[example][p] for p in positions],
                     top_ids=top_ids_t, top_tokens=tokens, top_probs=torch.stack(top_probs), target_ids=targets,
                     target_probs=torch.stack(target_probs), target_ranks=torch.stack(target_ranks))


@torch.no_grad()
def token_by_layer(model: WorkbenchModel, trace: Trace, position: int, token_id: int,
                   example: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities, ranks), each (n_layers + 1,): what every layer's lens gives one chosen token at one position.

    The lens's own target is the next input token; a lesson asks about a token not in the input yet (the answer).
    Rank 0 is the layer's top guess.
    """
    states = residual_stream(trace, example)  # (L+1, n, d)
    if not 0 <= position < states.shape[1]:
        raise InputError(f"Position {position} is outside the input (0..{states.shape[1] - 1}).")
    probs = unembed(model, states[:, position])[0].float().softmax(-1)  # (L+1, vocab)
    chosen = probs[:, token_id]  # (L+1,)
    return chosen, (probs > chosen[:, None]).sum(-1)


__all__ = ["logit_lens", "LogitLens", "has_lm_head", "token_by_layer", "unembed", "LM_TASKS"]
