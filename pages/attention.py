"""Attention page: the tokens and one head's (or a layer's mean) attention as a heatmap."""
from __future__ import annotations

import streamlit as st

from app.guard import shown_errors
from app.model_cache import get_model
from app.plots import attention_heatmap
from app.sidebar import selected_model_name, text_input

st.header("Attention")
name = selected_model_name()
if name is None:
    st.info("Type a folder or hub id in the sidebar.")
    st.stop()

with shown_errors(f"loading {name}"):
    model = get_model(name)
    text = text_input("attention", allow_pairs=not model.config.causal)
    trace = model.run(text)
    for warning in trace.warnings:
        st.warning(warning)
    tokens = trace.tokens[0]
    st.caption(f"{len(tokens)} tokens · {model.n_layers} layers × {model.n_heads} heads")
    st.write(" ".join(f"`{t}`" for t in tokens))
    col_layer, col_head = st.columns(2)
    layer = col_layer.slider("Layer", 0, model.n_layers - 1, 0, key="attention_layer")
    heads = trace.head_ids[layer]
    head_options = ["mean of layer"] + heads
    head = col_head.selectbox("Head", head_options, key="attention_head")
    pattern = trace.attentions[layer][0]  # (H, T, T)
    if head == "mean of layer":
        weights = pattern.mean(0)
    else:
        weights = pattern[heads.index(head)]
    st.plotly_chart(attention_heatmap(weights.numpy(), tokens, title=f"Layer {layer}, head {head}"),
                    key="attention_heatmap")
