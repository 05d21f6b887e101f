"""The few lines of Python, on the core's public API, that reproduce what a page shows.

Researchers paste them into a notebook; tests execute them and compare with the page. Every
value is written with ``repr`` so texts with quotes or newlines survive.
"""
from __future__ import annotations

from collections.abc import Sequence

from models.head_selection import HeadSpec


def _run_lines(model_expression: str, text: object, mask: HeadSpec | None) -> list[str]:
    lines = [f"model = {model_expression}", f"text = {text!r}"]
    if mask:
        lines += [f"with model.mask_heads({dict(mask)!r}):  # heads ablated for this run only",
                  "    trace = model.run(text)"]
    else:
        lines.append("trace = model.run(text)")
    return lines


def attention_code(model_expression: str, text: object, layer: int, head: int | str,
                   mask: HeadSpec | None = None, residual_weight: float = 0.5) -> str:
    """Code for the Attention page: the heatmap, the per-head table and the rollout."""
    lines = [
        "from models import load_model",
        "from analysis.attention import head_pattern, head_statistics, rollout_per_layer, special_tokens_of",
        "",
        *_run_lines(model_expression, text, mask),
        f"weights = head_pattern(trace, layer={layer}, head={head!r})  # (tokens, tokens): rows attend to columns",
        "stats = head_statistics(trace, special_tokens_of(model), causal=model.config.causal)  # one row per head",
        f"rollout = rollout_per_layer(trace.attentions, residual_weight={residual_weight})[{layer}]"
        f"  # Abnar & Zuidema 2020, through layer {layer}",
        "",
        "# bertviz's head view as a file that opens offline:",
        "# from app.bertviz_offline import head_view_html",
        "# open('head_view.html', 'w').write(head_view_html(trace.attentions, trace.tokens[0]))",
    ]
    return "\n".join(lines) + "\n"


def hidden_states_code(model_expression: str, text: object, lens_positions: Sequence[int] | None,
                       lens_top_k: int, cosine_layer: int, cosine_position: int | None,
                       pca_layers: Sequence[int], pca_normalize: bool) -> str:
    """Code for the Hidden states page: logit lens (when there is an LM head), norms, cosines, PCA."""
    lines = [
        "from models import load_model",
        "from analysis.hidden_states import layer_cosine_similarity, pca_projection, residual_norms, token_cosine_similarity",
    ]
    if lens_positions is not None:
        lines.append("from analysis.lens import logit_lens")
    lines += ["", *_run_lines(model_expression, text, None)]
    if lens_positions is not None:
        first, last = lens_positions[0], lens_positions[-1]
        lines += [f"lens = logit_lens(model, trace, positions=range({first}, {last + 1}), top_k={lens_top_k})",
                  "lens.top1_table()  # layers x positions: each layer's top token"]
    lines += [
        "norms = residual_norms(trace)  # (layers + 1, tokens): L2 norm of the residual stream",
        f"layer_cos = layer_cosine_similarity(trace, position={cosine_position!r})  # (layers + 1, layers + 1)",
        f"token_cos = token_cosine_similarity(trace, layer={cosine_layer})  # (tokens, tokens)",
        f"projection = pca_projection(trace, layers=range({pca_layers[0]}, {pca_layers[-1] + 1}), "
        f"normalize={pca_normalize})",
        "projection.frame  # layer, position, token, pc1, pc2",
    ]
    return "\n".join(lines) + "\n"


__all__ = ["attention_code", "hidden_states_code"]
