"""Which attention view the page draws, and with how much data, so the browser stays responsive.

bertviz draws one SVG line per (head, query, key) of the layer shown (head view), or of every
layer and head shown (model view), and ships the full matrices of every included layer. In
headless Chromium on this project's 2-core machines the head view took 1.2 s to draw 49k lines
(64 tokens x 12 heads), 2.4 s at 110k and 6.6 s at 197k (128 tokens); the model view 1.5 s at
73k (32 tokens, 6 x 12 heads). The budgets below keep a view under about two seconds; past
them the page uses the sparse top-k view of ``app.sparse_view``, which draws heads x tokens x k
lines (1.0 s at 512 tokens x 12 heads x 5). The page prints ``ViewPlan.reason``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

AUTO, HEAD_VIEW, MODEL_VIEW, SPARSE_VIEW = "Auto", "Head view (bertviz)", "Model view (bertviz)", "Sparse head view (top-k)"
VIEWS = [AUTO, HEAD_VIEW, MODEL_VIEW, SPARSE_VIEW]

LINE_BUDGET = 80_000        # SVG lines drawn at once
NUMBER_BUDGET = 600_000     # attention weights shipped to the browser (~3 MB of rounded JSON)


@dataclass(frozen=True)
class ViewPlan:
    view: str                        # HEAD_VIEW, MODEL_VIEW or SPARSE_VIEW
    include_layers: tuple[int, ...]  # layers shipped (bertviz views)
    include_heads: tuple[int, ...] | None  # heads shipped (model view); None = all
    reason: str                      # one sentence for the page


def plan_view(requested: str, n_tokens: int, heads_per_layer: Sequence[int], layer: int, top_k: int) -> ViewPlan:
    """Pick the view and what it ships for ``n_tokens`` tokens and the given heads per layer.

    ``layer`` is the layer selected on the page; a bertviz view that cannot ship every layer
    ships that one (the page's layer slider switches layers).
    """
    n_layers = len(heads_per_layer)
    heads = max(heads_per_layer) if heads_per_layer else 0
    squared = n_tokens * n_tokens
    head_view_lines = heads * squared
    sparse = ViewPlan(SPARSE_VIEW, (layer,), None,
                      f"Sparse view: layer {layer}, each query's {top_k} strongest keys "
                      f"({heads * n_tokens * min(top_k, n_tokens):,} lines).")
    if requested == SPARSE_VIEW:
        return sparse
    if requested in (AUTO, HEAD_VIEW):
        if head_view_lines > LINE_BUDGET:
            why = (f"bertviz's head view would draw {head_view_lines:,} lines at {n_tokens} tokens "
                   f"(budget {LINE_BUDGET:,}); showing the sparse view instead. ")
            return ViewPlan(SPARSE_VIEW, (layer,), None, why + sparse.reason)
        all_layers = sum(heads_per_layer) * squared <= NUMBER_BUDGET
        layers = tuple(range(n_layers)) if all_layers else (layer,)
        shipped = "every layer" if all_layers else f"layer {layer} only (switch layers with the slider)"
        return ViewPlan(HEAD_VIEW, layers, None, f"bertviz head view, {shipped}, weights rounded to 3 decimals.")
    # model view: as many layers around the selected one as the line budget allows
    per_layer = heads * squared
    fit = LINE_BUDGET // per_layer if per_layer else n_layers
    if fit < 1:
        why = (f"bertviz's model view would draw {per_layer:,} lines for a single layer at {n_tokens} tokens "
               f"(budget {LINE_BUDGET:,}); showing the sparse view instead. ")
        return ViewPlan(SPARSE_VIEW, (layer,), None, why + sparse.reason)
    count = min(fit, n_layers)
    start = min(max(0, layer - count // 2), n_layers - count)
    layers = tuple(range(start, start + count))
    if count == n_layers:
        return ViewPlan(MODEL_VIEW, layers, None, "bertviz model view: every layer and head.")
    return ViewPlan(MODEL_VIEW, layers, None,
                    f"bertviz model view of layers {layers[0]}–{layers[-1]} ({count} of {n_layers}: "
                    f"{count * per_layer:,} lines within the budget of {LINE_BUDGET:,}).")


__all__ = ["plan_view", "ViewPlan", "VIEWS", "AUTO", "HEAD_VIEW", "MODEL_VIEW", "SPARSE_VIEW",
           "LINE_BUDGET", "NUMBER_BUDGET"]
