"""The Attention page for a text encoder-decoder: source in, generated target out, and its three attention stacks.

Cross-attention is drawn as an alignment (target tokens being written over source tokens) for one layer and head
or their mean, with every head of the layer beside it; encoder and decoder self-attention as ordinary heatmaps.
Numbers come from ``analysis.alignment``; the page module calls ``render`` when the model is of this kind.
"""
from __future__ import annotations

import streamlit as st

from analysis.alignment import alignment, stack_pattern, strongest_sources, written_tokens
from analysis.attention import MEAN_OF_LAYER
from models import WorkbenchModel

from .alignment_plots import alignment_grid, alignment_heatmap
from .exports import frame_csv, matrix_frame
from .guard import shown_errors
from .long_run import busy
from .model_cache import model_recipe
from .plots import COLOUR_SCALES, attention_heatmap
from .reproduce import text_to_text_attention_code
from .sidebar import LAST_TEXT, example_sentences
from .state import int_slider, keep, keep_valid, session_memo
from .summaries import heatmap_summary
from .token_display import display_tokens

MEAN_LABEL = "mean of layer"


def _head_arg(head: int | str) -> int | str:
    return MEAN_OF_LAYER if head == MEAN_LABEL else head


def _layer_and_head(stack: str, head_ids: list[list[int]]) -> tuple[int, int | str, str]:
    """A layer slider and a head box for one stack, each keeping its value across runs."""
    left, right = st.columns(2)
    layer = int_slider(left, "Layer", 0, len(head_ids) - 1, key=f"attention_{stack}_layer", default=0)
    options = [MEAN_LABEL] + head_ids[layer]
    keep_valid(f"attention_{stack}_head", options, default=MEAN_LABEL)
    head = right.selectbox("Head", options, **keep(f"attention_{stack}_head"))
    label = f"layer {layer}, {'mean of heads' if head == MEAN_LABEL else f'head {head}'}"
    return layer, _head_arg(head), label


def _alignment_tab(trace, heads: dict, sources: list[str], targets: list[str], raw_sources, raw_targets,
                   scale: str, name: str) -> None:
    st.caption("Each row is the decoding step that wrote that target token; its colours are how much of the "
               "step's cross-attention went to each source token. Rows sum to 1.")
    layer, head, label = _layer_and_head("cross", heads["cross"])
    weights = alignment(trace, layer, head, heads["cross"]).numpy()  # (written, source)
    title = f"Cross-attention, {label}"
    fig = alignment_heatmap(weights, targets, sources, title=title, scale=scale)
    st.plotly_chart(fig, key="attention_cross_heatmap")
    st.caption(fig.layout.meta["note"])
    pairs = [f"{targets[row]} ← {sources[col]}" for row, col in enumerate(strongest_sources(weights))]
    st.caption(f"Strongest source per written token ({label}): " + ", ".join(pairs) + ".")
    st.download_button("Numbers as CSV", frame_csv(matrix_frame(weights, raw_targets, raw_sources), index=True),
                       file_name=f"cross_attention_{name}_L{layer}_{head}.csv".replace("/", "_"), mime="text/csv",
                       key="attention_cross_csv", on_click="ignore")
    ids = heads["cross"][layer]
    if ids:
        every = [alignment(trace, layer, h, heads["cross"]).numpy() for h in ids]
        grid = alignment_grid(every + [weights if head == MEAN_OF_LAYER else
                                       alignment(trace, layer, MEAN_OF_LAYER, heads["cross"]).numpy()],
                              [f"head {h}" for h in ids] + ["mean"], targets, sources,
                              title=f"Every head of cross-attention layer {layer} (linear scale 0 to 1)")
        st.plotly_chart(grid, key="attention_cross_grid")


def _self_attention_tab(trace, stack: str, heads: dict, tokens: list[str], scale: str) -> None:
    what = {"encoder": "Encoder self-attention over the source", "decoder": "Decoder self-attention over "
            "[start] + the target (causal: each position sees itself and the ones before)"}[stack]
    st.caption(what + ". Rows attend to columns.")
    layer, head, label = _layer_and_head(stack, heads[stack])
    weights = stack_pattern(trace, stack, layer, head, heads[stack]).numpy()
    title = f"{stack.capitalize()} self-attention, {label}"
    fig = attention_heatmap(weights, tokens, title=title, scale=scale)
    st.plotly_chart(fig, key=f"attention_{stack}_heatmap")
    st.caption(heatmap_summary(weights, tokens, title))
    st.caption(fig.layout.meta["note"])


def render(name: str, model: WorkbenchModel) -> None:
    """The whole page for a text-to-text model (the caller has drawn the header and loaded the model)."""
    default = st.session_state.get(LAST_TEXT) or st.session_state.get("_link_text") or example_sentences()[0]
    source = st.text_area("Source text", default, height=80, **keep("attention_source"),
                          help="The encoder reads this; the decoder writes the output greedily, one token a step.")
    st.session_state[LAST_TEXT] = source

    trace = None
    with shown_errors("running the model"):
        with busy(f"Running {name} on the source"):
            trace = session_memo("attention_trace", (name, id(model), repr(source)), lambda: model.run(source),
                                 max_entries=1)
    if trace is None:
        st.stop()
    for warning in trace.warnings:
        st.warning(warning)

    raw_sources, raw_decoder = trace.extras["source_tokens"][0], trace.tokens[0]
    sources, decoder_tokens = display_tokens(raw_sources), display_tokens(raw_decoder)
    raw_targets = written_tokens(trace)
    targets = display_tokens(raw_targets)
    unknown = model.tokenizer.special.get("unk_token") if model.tokenizer is not None else None
    if unknown and unknown in raw_sources:
        st.warning(f"{raw_sources.count(unknown)} of the {len(raw_sources)} source tokens are {unknown}: the "
                   "tokenizer does not know them, so the model reads them all as one and the same token.")
    heads = model.stack_head_ids()
    st.caption(f"{len(raw_sources)} source tokens · {len(raw_targets)} written · encoder "
               f"{len(heads['encoder'])} layers, decoder {len(heads['decoder'])} layers × {model.n_heads} heads")
    st.markdown("**Source:** " + " ".join(f"`{t}`" for t in sources))
    st.markdown("**Output:** " + (trace.extras["outputs"][0] or "(nothing)") + "  \n"
                + "**Written tokens:** " + " ".join(f"`{t}`" for t in targets))

    scale = st.radio("Colour scale", list(COLOUR_SCALES), format_func=COLOUR_SCALES.get, horizontal=True,
                     **keep("attention_scale"))
    tab_cross, tab_encoder, tab_decoder, tab_code = st.tabs(
        ["Cross-attention (alignment)", "Encoder self-attention", "Decoder self-attention", "Code to reproduce"])
    with tab_cross, shown_errors("drawing the cross-attention"):
        _alignment_tab(trace, heads, sources, targets, raw_sources, raw_targets, scale, name)
    with tab_encoder, shown_errors("drawing the encoder self-attention"):
        _self_attention_tab(trace, "encoder", heads, sources, scale)
    with tab_decoder, shown_errors("drawing the decoder self-attention"):
        _self_attention_tab(trace, "decoder", heads, decoder_tokens, scale)
    with tab_code:
        st.caption("Runs in a notebook from the repository root and gives the numbers shown on this page.")
        chosen = {stack: (st.session_state.get(f"attention_{stack}_layer", 0),
                          _head_arg(st.session_state.get(f"attention_{stack}_head", MEAN_LABEL)))
                  for stack in ("cross", "encoder", "decoder")}
        st.code(text_to_text_attention_code(model_recipe(name), source, *chosen["cross"], encoder=chosen["encoder"],
                                            decoder=chosen["decoder"]), language="python")
