"""Expert routing: a sparse mixture of SwiGLU experts in place of a block's MLP (Shazeer et al. 2017, "Outrageously
Large Neural Networks"; Mixtral: Jiang et al. 2024; Qwen2-MoE), written once for every mixture-of-experts family.

A linear router scores every expert for each token; the softmax over all experts is taken in float32, the top k
are kept and, where the family says so (Mixtral always, Qwen2-MoE with `norm_topk_prob`), their weights are
renormalised to sum to 1. The output is the weighted sum of the k chosen experts, plus (Qwen2-MoE) a shared
expert that every token passes through, scaled by a sigmoid gate. Families plug `ExpertMLP` into
`TransformerModel(make_mlp=...)` and say which layers are sparse.

Two things are scoped to this thread's context, so a shared model is never mutated:
- `routing_recorded()`: while active, each expert layer files the router's choice (a `RouterChoice`) under its
  layer number; TransformerModel.forward reads it into `ForwardOutput.router`, and the trace into
  `trace.extras["router"]`.
- `experts_masked(network, {layer: [experts]})`: inside it, a masked expert's router logit is -inf before the
  softmax and the top-k, so it is never chosen and the softmax runs over the other experts alone.

Parts before the whole: settings -> the router's choice and its recording -> masks -> the module.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .block import MLP
from .errors import HeadIndexError
from .head_selection import as_index
from .hooks import HookPoint


@dataclass(frozen=True)
class ExpertSettings:
    n_experts: int                 # experts the router chooses among (E)
    top_k: int                     # experts each token is sent to (k)
    d_expert: int                  # hidden width of one expert's SwiGLU
    renormalise: bool              # the k weights are rescaled to sum to 1 (Mixtral; Qwen2-MoE's norm_topk_prob)
    d_shared: int | None = None    # Qwen2-MoE: width of the always-on shared expert; None: there is none
    activation: str = "silu"


# ---------------------------------------------------------------- what the router chose, and its recording

@dataclass
class RouterChoice:
    """One expert layer's routing for a batch; padding positions are routed too, as in transformers."""
    logits: torch.Tensor   # (B, T, E) the router's logits: transformers' `router_logits`, before any expert mask
    experts: torch.Tensor  # (B, T, k) chosen expert ids, highest weight first
    weights: torch.Tensor  # (B, T, k) the weight of each chosen expert's output in the sum

    @property
    def probabilities(self) -> torch.Tensor:
        """(B, T, E) the softmax over all experts (float32), as the router scores them before the top-k."""
        return F.softmax(self.logits, dim=-1, dtype=torch.float)


# layer -> RouterChoice of the forward running in this context; None: nobody is recording
_RECORDING: contextvars.ContextVar[dict[int, RouterChoice] | None] = contextvars.ContextVar(
    "workbench_routing", default=None)


@contextlib.contextmanager
def routing_recorded(enabled: bool = True) -> Iterator[dict[int, RouterChoice]]:
    """Collect each expert layer's choice ({layer: RouterChoice}) in the `with` body; `enabled=False` collects
    nothing (and stops an enclosing recording from seeing this body's layers, which belong to another forward)."""
    record: dict[int, RouterChoice] = {}
    token = _RECORDING.set(record if enabled else None)
    try:
        yield record
    finally:
        _RECORDING.reset(token)


def router_by_layer(record: Mapping[int, RouterChoice], n_layers: int) -> list[RouterChoice | None]:
    """Per layer the recorded choice, None for a dense MLP or a layer that did not run; [] if none was recorded."""
    return [record.get(layer) for layer in range(n_layers)] if record else []


# ---------------------------------------------------------------- expert masks

# id(ExpertMLP) -> expert ids masked for it in this context. Keyed by the module (the hook points' way): it is
# what runs, and a pruned or otherwise derived copy of the network has its own modules, so masks do not leak to it.
_MASKED: contextvars.ContextVar[dict[int, frozenset[int]]] = contextvars.ContextVar(
    "workbench_masked_experts", default={})


def expert_layers(network: nn.Module) -> dict[int, "ExpertMLP"]:
    """The layers of `network` whose MLP is a mixture of experts: {layer: ExpertMLP}."""
    return {layer: block.mlp for layer, block in enumerate(getattr(network, "blocks", ()))
            if isinstance(block.mlp, ExpertMLP)}


@contextlib.contextmanager
def experts_masked(network: nn.Module, spec: Mapping[object, Iterable[object]]) -> Iterator[None]:
    """Mask experts ({layer: [expert ids]}) of `network` inside the `with` body only; nested masks add up.

    A masked expert is never chosen: its router logit is -inf before the softmax and the top-k, so each token's
    k experts and their softmax come from the other experts (what a model without that expert would compute).
    Each layer must keep at least k experts unmasked."""
    layers = expert_layers(network)
    current = _MASKED.get()
    merged = dict(current)
    for key, experts in spec.items():
        layer = as_index(key, "An expert layer")
        if layer not in layers:
            sparse = ", ".join(map(str, layers)) or "none"
            raise HeadIndexError(f"Layer {layer} has no experts to mask; the layers with experts are: {sparse}.")
        mlp = layers[layer]
        ids = {as_index(e, f"An expert of layer {layer}") for e in experts}
        bad = sorted(e for e in ids if not 0 <= e < mlp.n_experts)
        if bad:
            raise HeadIndexError(f"Layer {layer} has experts 0..{mlp.n_experts - 1}; there is no expert {bad[0]}.")
        masked = merged.get(id(mlp), frozenset()) | ids  # with the masks of enclosing `with`s
        if mlp.n_experts - len(masked) < mlp.top_k:
            raise HeadIndexError(
                f"Layer {layer} sends each token to {mlp.top_k} of its {mlp.n_experts} experts; masking "
                f"{len(masked)} of them would leave fewer than {mlp.top_k} to choose from.")
        merged[id(mlp)] = frozenset(masked)
    token = _MASKED.set(merged)
    try:
        yield
    finally:
        _MASKED.reset(token)


# ---------------------------------------------------------------- the module

class ExpertMLP(nn.Module):
    """router -> softmax over all experts -> top-k (-> renormalise) -> sum of the chosen experts' outputs
    (+ sigmoid-gated shared expert). Each expert is the shared SwiGLU `MLP` (gate, fc_in = up, fc_out = down)."""

    def __init__(self, d_model: int, settings: ExpertSettings, layer: int) -> None:
        super().__init__()
        self.layer = layer  # files its routing under this number
        self.n_experts = settings.n_experts
        self.top_k = settings.top_k
        self.renormalise = settings.renormalise
        self.router = nn.Linear(d_model, settings.n_experts, bias=False)
        self.experts = nn.ModuleList(MLP(d_model, settings.d_expert, settings.activation, gated=True, bias=False)
                                     for _ in range(settings.n_experts))
        for expert in self.experts:  # an expert sees only the tokens routed to it, flattened
            expert.hook_post.shape = "(N, d_expert) after the nonlinearity, for the N tokens routed to this expert"
        if settings.d_shared is not None:
            self.shared = MLP(d_model, settings.d_shared, settings.activation, gated=True, bias=False)
            self.shared_gate = nn.Linear(d_model, 1, bias=False)
        else:
            self.shared = self.shared_gate = None
        self.hook_router_logits = HookPoint("(B, T, E) router logits, before any expert mask")
        self.hook_expert_ids = HookPoint("(B, T, k) chosen experts (long), highest first; a hook may reroute")
        self.hook_expert_weights = HookPoint("(B, T, k) weight of each chosen expert's output")
        self.hook_routed_out = HookPoint("(B, T, d) the weighted sum of the chosen experts' outputs")
        if self.shared is not None:
            self.hook_shared_out = HookPoint("(B, T, d) the shared expert's output, after its sigmoid gate")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        logits = self.hook_router_logits(self.router(x))  # (B, T, E)
        scores = logits.float()  # float32 softmax and top-k, as transformers routes
        masked = _MASKED.get().get(id(self))
        if masked:
            scores = scores.index_fill(-1, torch.tensor(sorted(masked), device=x.device), float("-inf"))
        probs = F.softmax(scores, dim=-1)  # (B, T, E)
        top = torch.topk(probs, self.top_k, dim=-1).indices  # (B, T, k)
        experts = self.hook_expert_ids(top)  # (B, T, k)
        # the weights are read at the (possibly rerouted) ids, so a hook that changes the choice stays consistent
        weights = probs.gather(-1, experts)  # (B, T, k)
        if self.renormalise:
            weights = weights / weights.sum(dim=-1, keepdim=True)
        weights = self.hook_expert_weights(weights.to(x.dtype))  # (B, T, k)

        flat = x.reshape(B * T, d)  # (N, d)
        flat_experts, flat_weights = experts.reshape(B * T, -1), weights.reshape(B * T, -1)  # (N, k)
        routed = torch.zeros_like(flat)  # (N, d)
        # one pass per expert over the tokens sent to it; experts in ascending order, as transformers adds them
        for e in torch.unique(flat_experts).tolist():
            rows, slot = (flat_experts == e).nonzero(as_tuple=True)  # (n,), (n,)
            out = self.experts[e](flat[rows]) * flat_weights[rows, slot, None]  # (n, d)
            routed.index_add_(0, rows, out.to(flat.dtype))
        out = self.hook_routed_out(routed.view(B, T, d))  # (B, T, d)
        if self.shared is not None:
            out = out + self.hook_shared_out(torch.sigmoid(self.shared_gate(x)) * self.shared(x))  # (B, T, d)

        record = _RECORDING.get()
        if record is not None:
            record[self.layer] = RouterChoice(logits=logits, experts=experts, weights=weights)
        return out
