"""Attention page: bertviz views (offline), a heatmap, per-head statistics, rollout, exports, code.

Thin on purpose: widgets -> analysis call -> render. Numbers come from ``analysis.attention``
and ``analysis.rollout``, views from ``app.bertviz_offline`` / ``app.sparse_view`` chosen by
``app.view_plan``. A trace is computed once per (model, text, ablation) in this session.
"""
from __future__ import annotations

import streamlit as st

from analysis.attention import (MEAN_OF_LAYER, STAT_COLUMNS, dense_attentions, example_attentions, head_pattern,
                                head_statistics, rollout_per_layer, special_tokens_of)
from app.bertviz_offline import head_view_html, model_view_html, payload_size_bytes
from app.exports import figure_html, frame_csv, matrix_frame, matrix_png
from app.guard import shown_errors
from app.long_run import busy
from app.head_labels import head_label, parse_heads, pruned_label
from app.page_setup import selected_model_or_stop
from app.model_cache import get_model, keep_session_model, model_recipe
from app.plots import AUTO, COLOUR_SCALES, attention_heatmap, head_stat_grid, token_bar
from app.reproduce import attention_code, prune_recipe
from app.sidebar import text_input
from app.sparse_view import sparse_head_view_html
from app.model_kinds import is_text_to_text
from app.text_to_text_attention import render as render_text_to_text
from app.summaries import heatmap_summary, input_warnings
from app.token_display import display_tokens, is_byte_level, readable_token
from app.state import int_slider, keep, keep_per_model, keep_valid, session_memo
from app.view_plan import HEAD_VIEW, MODEL_VIEW, VIEWS, plan_view
from models.errors import WorkbenchError

MEAN_LABEL = "mean of layer"


def keep_pruned_copy(name: str, labels: list[str]) -> None:
    """Button callback: a pruned copy for this session only; the shared model is untouched."""
    spec = parse_heads(labels)
    try:
        pruned = get_model(name).prune_heads(spec)
    except WorkbenchError as error:
        st.session_state["attention_prune_error"] = str(error)
        return
    keep_session_model(pruned_label(name, spec), pruned, prune_recipe(model_recipe(name), spec))
    st.session_state["attention_ablate"] = []


st.header("Attention")
name, model = selected_model_or_stop()
if is_text_to_text(model):  # source box, generated output, cross-attention as an alignment
    render_text_to_text(name, model)
    st.stop()

text = text_input("attention", allow_pairs=not model.config.causal)

all_heads = [head_label(layer, head) for layer, ids in enumerate(model.head_ids()) for head in ids]
keep_per_model("attention_ablate", name, all_heads)
with st.expander("Ablate heads (this session only)"):
    ablate = st.multiselect("Heads to mask while running", all_heads, **keep("attention_ablate"),
                            help="Masked as transformers 4.x head_mask does: the head's output is zeroed. "
                                 "Later layers' attention changes; the masked head's own pattern does not.")
    st.button("Keep a pruned copy without these heads", key="attention_prune", disabled=not ablate,
              on_click=keep_pruned_copy, args=(name, list(ablate)),
              help="A new model for this session (pick it in the sidebar); other sessions never see it.")
    if st.session_state.get("attention_prune_error"):
        st.error(st.session_state.pop("attention_prune_error"))
mask = parse_heads(ablate)

trace = None
with shown_errors("running the model"):
    trace_key = (name, id(model), repr(text), repr(sorted(mask.items())))

    def run():
        if mask:
            with model.mask_heads(mask):
                return model.run(text)
        return model.run(text)

    # one trace per session: SmolLM2's attention at 512 tokens alone is ~280 MB
    with busy(f"Running {name} on the text"):  # a spinner with the time, if it takes more than half a second
        trace = session_memo("attention_trace", trace_key, run, max_entries=1)
if trace is None:
    st.stop()

for warning in input_warnings(trace.warnings, name, model.max_tokens, model.config.max_positions):
    st.warning(warning)
raw_tokens = trace.tokens[0]
tokens = display_tokens(raw_tokens)  # "Ġcat" -> "·cat", "âĢĻ" -> "’" on screen; the CSV exports get the raw tokens
view_tokens = [readable_token(t, is_byte_level(raw_tokens)) for t in raw_tokens]  # bertviz draws real spaces
n = len(tokens)
heads_per_layer = [len(ids) for ids in trace.head_ids]
pruned = [head_label(l, h) for (_, l), heads in sorted(model.config.pruned_heads.items()) for h in heads]
st.caption(f"{n} tokens · {model.n_layers} layers × {model.n_heads} heads"
           + (f" · pruned: {', '.join(pruned)}" if pruned else "")
           + (f" · masked: {', '.join(ablate)}" if ablate else ""))
st.write(" ".join(f"`{t}`" for t in tokens))

col_layer, col_head = st.columns(2)
layer = int_slider(col_layer, "Layer", 0, model.n_layers - 1, key="attention_layer", default=0)
head_options = [MEAN_LABEL] + trace.head_ids[layer]
keep_valid("attention_head", head_options, default=MEAN_LABEL)
head = col_head.selectbox("Head", head_options, **keep("attention_head"))
head_arg = MEAN_OF_LAYER if head == MEAN_LABEL else head
title = f"Layer {layer}, {'mean of heads' if head == MEAN_LABEL else f'head {head}'}"

# Only the open tab runs and is sent (issue 18): every tab drawn on each rerun cost the server its figures and the
# browser four plotly charts it did not show. A tab click reruns the page; the trace and views are memoised.
tab_view, tab_heatmap, tab_stats, tab_rollout, tab_code = st.tabs(
    ["Head & model view", "Heatmap", "Per-head statistics", "Rollout", "Code to reproduce"],
    key="attention_tab", on_change="rerun", bind="query-params")  # the open tab is part of a link's view

if tab_view.open:
    with tab_view, shown_errors("drawing the attention view"):
        left, right = st.columns([3, 1])
        requested = left.radio("View", VIEWS, horizontal=True, **keep("attention_view"))
        top_k = right.slider("Top-k keys per query (sparse view)", 1, 16, 5, **keep("attention_top_k"))
        plan = plan_view(requested, n, heads_per_layer, layer, top_k)
        st.caption(plan.reason)
        selected = None if head == MEAN_LABEL else [head]
        b_start = None
        if trace.token_type_ids is not None and int(trace.token_type_ids[0].max()) > 0:
            b_start = int((trace.token_type_ids[0] == 1).nonzero()[0])

        def build_view() -> str:
            if plan.view in (HEAD_VIEW, MODEL_VIEW):
                dense = dense_attentions(trace, model.n_heads)  # (1, H, n, n) per layer, heads at their numbers
                if plan.view == HEAD_VIEW:
                    return head_view_html(dense, view_tokens, sentence_b_start=b_start, layer=layer,
                                          heads=selected, include_layers=plan.include_layers)
                return model_view_html(dense, view_tokens, sentence_b_start=b_start, include_layers=plan.include_layers,
                                       display_mode="light")
            return sparse_head_view_html(example_attentions(trace)[layer], tokens, trace.head_ids[layer], layer,
                                         top_k=top_k, selected_heads=selected)

        view_key = (trace_key, plan, top_k, layer if plan.view != MODEL_VIEW else None, head, b_start)
        html = session_memo("attention_view_html", view_key, build_view)
        if plan.view == MODEL_VIEW:  # drawn to the frame's width (app.bertviz_offline): the frame sizes to its content
            height = "content"
        else:
            height = min(1000, 120 + (22 if plan.view == HEAD_VIEW or n <= 64 else 16) * n)
        st.iframe(html, height=height)
        st.caption(f"Sent to the browser: {payload_size_bytes(html) / 1e6:.2f} MB (libraries inlined, no network).")

scale = st.session_state.get("attention_scale", AUTO)  # the heatmap tab's choice, also when it is closed
if tab_heatmap.open:
    with tab_heatmap, shown_errors("drawing the heatmap"):
        weights = head_pattern(trace, layer, head_arg).numpy()  # (n, n)
        scale = st.radio("Colour scale", list(COLOUR_SCALES), format_func=COLOUR_SCALES.get, horizontal=True,
                         **keep("attention_scale"), help="At long inputs a few weights (often the first token) dwarf "
                                                         "the rest; clipped and log scales show the others. Also "
                                                         "used for the rollout.")
        fig = attention_heatmap(weights, tokens, title=title, scale=scale)
        st.plotly_chart(fig, key="attention_heatmap")
        st.caption(heatmap_summary(weights, tokens, title))
        st.caption(fig.layout.meta["note"])
        stem = f"attention_{name}_L{layer}_{'mean' if head == MEAN_LABEL else f'H{head}'}".replace("/", "_")
        c1, c2, c3 = st.columns(3)
        c1.download_button("Figure as PNG", lambda: matrix_png(weights, tokens, tokens, title, "key (attended to)",
                                                               "query (attending)"),
                           file_name=f"{stem}.png", mime="image/png", key="attention_png", on_click="ignore")
        c2.download_button("Figure as HTML", lambda: figure_html(fig), file_name=f"{stem}.html", mime="text/html",
                           key="attention_html", on_click="ignore")
        c3.download_button("Numbers as CSV", lambda: frame_csv(matrix_frame(weights, raw_tokens, raw_tokens), index=True),
                           file_name=f"{stem}.csv", mime="text/csv", key="attention_csv", on_click="ignore")

if tab_stats.open:
    with tab_stats, shown_errors("computing per-head statistics"):
        stats = session_memo("attention_stats", trace_key, lambda: head_statistics(
            trace, special_tokens_of(model), causal=model.config.causal))
        column = st.selectbox("Statistic", STAT_COLUMNS, **keep("attention_stat"))
        st.plotly_chart(head_stat_grid(stats, column, model.n_heads), key="attention_stat_grid")
        best = stats.loc[stats[column].idxmax()]
        st.caption(f"Highest {column}: L{int(best['layer'])}.H{int(best['head'])} ({best[column]:.3f}). "
                   "entropy in nats; mean_distance in tokens; to_special, to_previous, to_self are shares of attention.")
        st.dataframe(stats, key="attention_stats_table", hide_index=True,
                     column_config={c: st.column_config.NumberColumn(format="%.3f") for c in STAT_COLUMNS})
        st.download_button("Table as CSV", frame_csv(stats), file_name=f"head_statistics_{name}.csv".replace("/", "_"),
                           mime="text/csv", key="attention_stats_csv", on_click="ignore")

if tab_rollout.open:
    with tab_rollout, shown_errors("computing attention rollout"):
        st.caption("Attention rollout (Abnar & Zuidema 2020): each layer's head-mean attention mixed with the identity "
                   "for the residual connection, multiplied from the first layer up to the selected one.")
        residual = st.slider("Residual share", 0.0, 1.0, 0.5, 0.05, **keep("attention_rollout_residual"))
        rollouts = session_memo("attention_rollout", (trace_key, residual),
                                lambda: rollout_per_layer(example_attentions(trace), residual_weight=residual))
        rollout = rollouts[layer].numpy()  # (n, n)
        roll_fig = attention_heatmap(rollout, tokens, title=f"Rollout through layer {layer}", scale=scale)
        st.plotly_chart(roll_fig, key="attention_rollout_heatmap")
        st.caption(roll_fig.layout.meta["note"])
        query_default = n - 1 if model.config.causal else 0  # what a causal LM predicts from / BERT's [CLS]
        keep_valid("attention_rollout_query", range(n), default=query_default)
        query = st.selectbox("Position", list(range(n)), **keep("attention_rollout_query"),
                             format_func=lambda i: f"{i}: {tokens[i]}")
        st.plotly_chart(token_bar(rollout[query], tokens, title=f"How much each input token reaches {query}:{tokens[query]}"),
                        key="attention_rollout_bar")
        top = int(rollout[query].argmax())
        st.caption(f"Through layer {layer}, position {query}:{tokens[query]} draws most on {top}:{tokens[top]} "
                   f"({rollout[query, top]:.3f}).")
        stem = f"rollout_{name}_L{layer}".replace("/", "_")
        c1, c2, c3 = st.columns(3)
        c1.download_button("Figure as PNG", lambda: matrix_png(rollout, tokens, tokens, f"Rollout through layer {layer}",
                                                               "input token", "position"),
                           file_name=f"{stem}.png", mime="image/png", key="attention_rollout_png", on_click="ignore")
        c2.download_button("Figure as HTML", lambda: figure_html(roll_fig), file_name=f"{stem}.html", mime="text/html",
                           key="attention_rollout_html", on_click="ignore")
        c3.download_button("Numbers as CSV", lambda: frame_csv(matrix_frame(rollout, raw_tokens, raw_tokens), index=True),
                           file_name=f"{stem}.csv", mime="text/csv", key="attention_rollout_csv", on_click="ignore")

with tab_code:  # always drawn: text only, and scripts read the page's code without a click
    st.caption("Runs in a notebook from the repository root and gives the numbers shown on this page.")
    st.code(attention_code(model_recipe(name), text, layer, head_arg, mask,
                           residual_weight=st.session_state.get("attention_rollout_residual", 0.5)),
            language="python")
