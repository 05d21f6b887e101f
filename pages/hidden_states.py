"""Hidden states page: the residual stream layer by layer.

Logit lens (for models with an LM head), residual norms, cosine similarity between layers and
between tokens, and a 2-D PCA of token states across layers. Thin: widgets -> analysis -> render.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import streamlit as st

from analysis.hidden_states import (layer_cosine_similarity, norms_frame, pca_projection, residual_norms,
                                    token_cosine_similarity)
from analysis.lens import logit_lens
from app.exports import figure_html, frame_csv, matrix_frame, matrix_png
from app.guard import shown_errors
from app.long_run import busy
from app.page_setup import selected_model_or_stop, stop_if_text_to_text
from app.model_cache import model_recipe
from app.model_kinds import for_example
from app.plots import lens_figure, matrix_heatmap, norms_figure, pca_figure
from app.reproduce import hidden_states_code
from app.sidebar import text_input
from app.token_display import display_token, display_tokens, is_byte_level
from app.state import int_slider, keep, keep_valid, session_memo

LENS_WINDOW = 16   # positions read at once: a wider lens table is unreadable and costs a vocab matmul per cell
MEAN_OVER_TOKENS = "mean over tokens"

st.header("Hidden states")
name, model = selected_model_or_stop()
stop_if_text_to_text(name, model, "Hidden states")

text = text_input("hidden", allow_pairs=not model.config.causal)
trace = None
with shown_errors("running the model"):
    trace_key = (name, id(model), repr(text))
    # this page reads the residual stream only: drop the attention patterns (~280 MB for SmolLM2
    # at 512 tokens) instead of keeping them in the session
    with busy(f"Running {name} on the text"):  # a spinner with the time, if it takes more than half a second
        trace = session_memo("hidden_trace", trace_key,
                             lambda: dataclasses.replace(model.run(text), attentions=()), max_entries=1)
if trace is None:
    st.stop()

for warning in trace.warnings:  # worded by the core: whose limit cut the text
    st.warning(warning)
raw_tokens = trace.tokens[0]
tokens = display_tokens(raw_tokens)  # for the eye; CSV exports keep the raw tokens
byte_level = is_byte_level(raw_tokens)  # the lens's predicted tokens are read the same way
n = len(tokens)
depth = model.n_layers + 1  # residual-stream states: embeddings, then after each block
st.caption(f"{n} tokens · {depth} residual-stream states (embeddings + {model.n_layers} blocks) · "
           f"d_model {model.config.d_model}")
layer_labels = [str(l) for l in range(depth)]
token_labels = [f"{i}:{t}" for i, t in enumerate(tokens)]

tab_lens, tab_norms, tab_cosine, tab_pca, tab_code = st.tabs(
    ["Logit lens", "Norms", "Cosine similarity", "PCA", "Code to reproduce"])

lens_positions: list[int] | None = None
lens_top_k = 3
with tab_lens, shown_errors("computing the logit lens"):
    if not model.has_lm_head:
        st.info(f"{name} has no language-modelling head, so there is no vocabulary to read its residual stream in: "
                f"the logit lens needs a causal or masked LM{for_example('text', ('causal-lm', 'masked-lm'))}. "
                "Pick one in the sidebar to see it.")
    else:
        left, right = st.columns(2)
        start = int_slider(left, "First position", 0, n - 1, key="hidden_lens_start", default=max(0, n - LENS_WINDOW))
        lens_top_k = right.slider("Top-k tokens per cell (hover)", 1, 10, 3, **keep("hidden_lens_top_k"))
        lens_positions = list(range(start, min(n, start + LENS_WINDOW)))
        lens = session_memo("hidden_lens", (trace_key, tuple(lens_positions), lens_top_k),
                            lambda: logit_lens(model, trace, positions=lens_positions, top_k=lens_top_k))
        hover = [[" · ".join(f"{display_token(t, byte_level)} {p:.2f}" for t, p in zip(lens.top_tokens[li][pi], lens.top_probs[li, pi].tolist()))
                  for pi in range(len(lens.positions))] for li in range(len(lens.layers))]
        top1 = [[display_token(cell[0], byte_level) for cell in row] for row in lens.top_tokens]
        shown_inputs = display_tokens(lens.input_tokens)
        fig = lens_figure(top1, lens.top_probs[..., 0].numpy(), lens.layers, lens.positions, shown_inputs, hover)
        st.plotly_chart(fig, key="hidden_lens_figure")
        last = lens.positions[-1]
        st.caption(f"Positions {lens.positions[0]}–{last} of {n} ({LENS_WINDOW} at a time). At the last layer, "
                   f"position {last}:{tokens[last]} predicts {display_token(lens.top_tokens[-1][-1][0], byte_level)!r} "
                   f"({float(lens.top_probs[-1, -1, 0]):.3f}).")
        if model.config.causal and lens.target_probs is not None:
            target = pd.DataFrame(lens.target_probs.numpy(), index=pd.Index(lens.layers, name="layer"),
                                  columns=[f"{p}:{t}" for p, t in zip(lens.positions, shown_inputs)])
            st.markdown("Probability each layer gives the **actual next token**:")
            st.dataframe(target, key="hidden_lens_target", column_config={
                c: st.column_config.NumberColumn(format="%.3f") for c in target.columns})
        st.download_button("Lens as CSV", frame_csv(lens.to_frame()), file_name=f"logit_lens_{name}.csv".replace("/", "_"),
                           mime="text/csv", key="hidden_lens_csv", on_click="ignore")

with tab_norms, shown_errors("computing residual norms"):
    norms = residual_norms(trace).numpy()  # (L+1, n)
    norm_fig = norms_figure(norms)
    st.plotly_chart(norm_fig, key="hidden_norms_figure")
    st.caption(f"Median residual norm: {np.median(norms[0]):.2f} after the embeddings, {np.median(norms[-1]):.2f} "
               f"after the last block (before the final norm). Largest: {norms.max():.2f} at layer "
               f"{int(norms.max(1).argmax())}, token {int(norms.max(0).argmax())}:{tokens[int(norms.max(0).argmax())]}.")
    st.plotly_chart(matrix_heatmap(norms, token_labels, layer_labels, title="Norm per layer and token",
                                   x_title="token", y_title="layer", value_name="norm"), key="hidden_norms_heatmap")
    c1, c2 = st.columns(2)
    c1.download_button("Norms as CSV", frame_csv(norms_frame(trace)), file_name=f"residual_norms_{name}.csv".replace("/", "_"),
                       mime="text/csv", key="hidden_norms_csv", on_click="ignore")
    c2.download_button("Figure as HTML", lambda: figure_html(norm_fig), file_name="residual_norms.html",
                       mime="text/html", key="hidden_norms_html", on_click="ignore")

cosine_layer, cosine_position = 0, None
with tab_cosine, shown_errors("computing cosine similarities"):
    left, right = st.columns(2)
    position_options = [MEAN_OVER_TOKENS] + list(range(n))
    keep_valid("hidden_cos_position", position_options, default=MEAN_OVER_TOKENS)
    chosen = left.selectbox("Between layers, for", position_options, **keep("hidden_cos_position"),
                            format_func=lambda p: p if p == MEAN_OVER_TOKENS else f"token {p}:{tokens[p]}")
    cosine_position = None if chosen == MEAN_OVER_TOKENS else int(chosen)
    between_layers = layer_cosine_similarity(trace, position=cosine_position).numpy()  # (L+1, L+1)
    left.plotly_chart(matrix_heatmap(between_layers, layer_labels, layer_labels, title="Cosine similarity between layers",
                                     x_title="layer", y_title="layer", zmin=-1, zmax=1, colorscale="RdBu",
                                     value_name="cosine"), key="hidden_cos_layers")
    cosine_layer = int_slider(right, "Between tokens, at layer", 0, depth - 1, key="hidden_cos_layer", default=depth - 1)
    between_tokens = token_cosine_similarity(trace, cosine_layer).numpy()  # (n, n)
    right.plotly_chart(matrix_heatmap(between_tokens, token_labels, token_labels,
                                      title=f"Cosine similarity between tokens at layer {cosine_layer}",
                                      zmin=-1, zmax=1, colorscale="RdBu", value_name="cosine"), key="hidden_cos_tokens")
    off_diagonal = between_tokens[~np.eye(n, dtype=bool)] if n > 1 else np.array([1.0])
    st.caption(f"Mean cosine between different tokens at layer {cosine_layer}: {off_diagonal.mean():.3f} "
               f"(near 1 = every token points the same way: anisotropy, Ethayarajh 2019). "
               f"Layer 0 vs last layer: {between_layers[0, -1]:.3f}.")
    c1, c2, c3 = st.columns(3)
    c1.download_button("Layers × layers as CSV", frame_csv(pd.DataFrame(between_layers, index=layer_labels,
                                                                        columns=layer_labels), index=True),
                       file_name="cosine_layers.csv", mime="text/csv", key="hidden_cos_layers_csv", on_click="ignore")
    c2.download_button("Tokens × tokens as CSV", frame_csv(matrix_frame(between_tokens, raw_tokens, raw_tokens), index=True),
                       file_name=f"cosine_tokens_L{cosine_layer}.csv", mime="text/csv", key="hidden_cos_tokens_csv",
                       on_click="ignore")
    c3.download_button("Tokens × tokens as PNG", lambda: matrix_png(between_tokens, tokens, tokens,
                                                                    f"Cosine similarity at layer {cosine_layer}",
                                                                    cmap="RdBu", vmin=-1, vmax=1),
                       file_name=f"cosine_tokens_L{cosine_layer}.png", mime="image/png", key="hidden_cos_png",
                       on_click="ignore")

pca_layers, pca_normalize = list(range(depth)), True
with tab_pca, shown_errors("projecting token states"):
    left, right = st.columns([3, 1])
    if "hidden_pca_layers" in st.session_state:
        low, high = st.session_state["hidden_pca_layers"]
        fixed = (min(low, depth - 1), min(high, depth - 1))
        if fixed != (low, high):
            st.session_state["hidden_pca_layers"] = fixed
    else:
        st.session_state["hidden_pca_layers"] = (0, depth - 1)
    low, high = left.slider("Layers", 0, depth - 1, **keep("hidden_pca_layers"))
    pca_normalize = right.checkbox("Unit length first", value=True, **keep("hidden_pca_normalize"),
                                   help="Compare directions, not norms: norms grow with depth and a few tokens "
                                        "carry huge ones.")
    pca_layers = list(range(low, high + 1))
    if len(pca_layers) * n < 2:
        st.info("Pick at least two layers for a one-token input.")
    else:
        projection = session_memo("hidden_pca", (trace_key, low, high, pca_normalize),
                                  lambda: pca_projection(trace, layers=pca_layers, normalize=pca_normalize))
        pca_fig = pca_figure(projection.frame, projection.explained_variance_ratio)
        st.plotly_chart(pca_fig, key="hidden_pca_figure")
        ratio = projection.explained_variance_ratio
        st.caption(f"{len(projection.frame)} states ({len(pca_layers)} layers × {n} tokens); PC1 and PC2 explain "
                   f"{ratio[0]:.1%} and {ratio[1]:.1%} of their variance.")
        c1, c2 = st.columns(2)
        c1.download_button("Points as CSV", frame_csv(projection.frame), file_name="pca_token_states.csv",
                           mime="text/csv", key="hidden_pca_csv", on_click="ignore")
        c2.download_button("Figure as HTML", lambda: figure_html(pca_fig), file_name="pca_token_states.html",
                           mime="text/html", key="hidden_pca_html", on_click="ignore")

with tab_code:
    st.caption("Runs in a notebook from the repository root and gives the numbers shown on this page.")
    st.code(hidden_states_code(model_recipe(name), text, lens_positions, lens_top_k, cosine_layer, cosine_position,
                               pca_layers, pca_normalize), language="python")
