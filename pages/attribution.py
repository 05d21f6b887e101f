"""Attribution page: which part of the input made the model decide, by several methods side by side.

Thin on purpose: widgets (built from each method's declared parameters) -> `analysis.attribution`
-> views from `app.attribution_plots` and `analysis.attribution.render`. Results are kept per
(model, input, target, methods, settings) in this session, so going back to an input is instant.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from analysis.attribution import (DEFAULT_METHODS, METHODS, attribute_text, method_summary, rank_correlation,
                                  report_frame, report_html)
from analysis.attribution.audio import AUDIO_DEFAULT_METHODS, attribute_audio
from analysis.attribution.image import attribute_image
from analysis.attribution.render import token_html
from analysis.attribution.text_inputs import SUPPORTED_TASKS
from app.attribution_plots import correlation_heatmap, image_heatmap, methods_token_heatmap, waveform_heatmap
from app.exports import frame_csv
from app.guard import shown_errors
from app.long_run import long_run, show_cancelled
from app.media_inputs import audio_input, image_input, source_key
from app.model_kinds import names_for
from app.page_setup import selected_model_or_stop, stop_if_text_to_text
from app.model_cache import model_recipe
from app.reproduce import attribution_code
from app.sidebar import text_input
from app.state import keep, keep_valid, keep_valid_many, memo_lookup, session_memo
from app.token_display import display_tokens

RESULTS = "attribution_results"
MAX_RESULTS = 8
PREDICTED = "predicted"
# the heads whose decision attribution explains, by what the model reads (speech: Whisper's transcript)
EXPLAINED = {"text": SUPPORTED_TASKS, "image": ("image-classification",),
             "audio": ("automatic-speech-recognition", "audio-classification")}


def switch_model(name: str) -> None:
    """Button callback: callbacks run before the sidebar is drawn, so the model choice may change here."""
    st.session_state["model_choice"] = name


def suggest_models(modality: str, reason: str) -> None:
    st.warning(reason)
    offered = names_for(modality, EXPLAINED[modality]) + names_for("text", EXPLAINED["text"])
    for candidate in dict.fromkeys(offered):
        st.button(f"Use {candidate}", key=f"attribution_use_{candidate}", on_click=switch_model, args=(candidate,))
    st.stop()


def target_widget(model, modality: str):
    """The class, or for language models the token, to explain; None means the model's own prediction."""
    if modality == "text" and model.task in ("causal-lm", "masked-lm"):
        where = "next token" if model.task == "causal-lm" else "token at [MASK]"
        typed = st.text_input(f"Target {where} (empty: the predicted one)", **keep("attribution_target_token"),
                              help="A token as the tokenizer writes it (e.g. 'Ġmat' for GPT-2-style BPE), or a token id.")
        typed = typed.strip()
        if not typed:
            return None
        return int(typed) if typed.lstrip("-").isdigit() else typed
    if modality == "audio" and model.is_encoder_decoder:  # Whisper: outputs are the transcript's tokens
        chosen = st.number_input("Target: 0 = the whole transcript, j = its j-th token", min_value=0, max_value=448,
                                 value=0, step=1, **keep("attribution_target_output"),
                                 help="Log-probabilities of the model's own transcript: their sum, or one token's.")
        return int(chosen)
    labels = model.labels or {}
    n_classes = len(labels) or getattr(getattr(model.network.head, "classifier", None), "out_features", 2)
    options = [PREDICTED] + list(range(n_classes))
    keep_valid("attribution_target", options, default=PREDICTED)
    chosen = st.selectbox("Target class", options, **keep("attribution_target"),
                          format_func=lambda c: "the predicted class" if c == PREDICTED else f"{c}: {labels.get(c, f'class {c}')}")
    return None if chosen == PREDICTED else int(chosen)


def method_widgets(modality: str, patch: int = 1) -> tuple[list[str], dict[str, dict]]:
    options = [k for k, spec in METHODS.items() if modality in spec.modalities]
    defaults = AUDIO_DEFAULT_METHODS if modality == "audio" else DEFAULT_METHODS
    if st.session_state.get("attribution_methods_for") != modality:  # a new kind of input: its own defaults
        st.session_state["attribution_methods_for"] = modality
        st.session_state["attribution_methods"] = [k for k in defaults if k in options]
    keep_valid_many("attribution_methods", options)
    methods = st.multiselect("Methods", options, **keep("attribution_methods"), format_func=lambda k: METHODS[k].label)
    params: dict[str, dict] = {}
    with st.expander("Method settings"):
        for key in methods:
            spec = METHODS[key]
            st.caption(f"**{spec.label}** ({spec.reference}): {spec.summary}")
            for p in spec.params:
                widget_key = f"attribution_{key}_{p.name}"
                default = p.default
                if modality in ("image", "audio") and key == "occlusion":
                    default = max(p.minimum, min(p.maximum, patch))  # a patch / a few frames, not one pixel
                value = st.number_input(f"{p.name}", min_value=p.kind(p.minimum), max_value=p.kind(p.maximum),
                                        value=p.kind(default), step=p.kind(1) if p.kind is int else 0.05,
                                        key=widget_key, help=p.help)
                params.setdefault(key, {})[p.name] = value
    return methods, params


def run_attribution(model, modality: str, source, methods, target, params, progress):
    if modality == "image":
        return attribute_image(model, source, methods=methods, target=target, params=params, progress=progress)
    if modality == "audio":
        return attribute_audio(model, source, methods=methods, target=target, params=params, progress=progress)
    return attribute_text(model, source, methods=methods, target=target, params=params, progress=progress)


def show_text(report) -> None:
    shown = display_tokens(report.units)
    keys = list(report.results)
    st.plotly_chart(methods_token_heatmap(shown, [report.results[k].scores.numpy() for k in keys],
                                          [METHODS[k].label for k in keys], [report.results[k].signed for k in keys],
                                          report.special), key="attribution_heatmap")
    for key in keys:
        result = report.results[key]
        st.markdown(f"**{METHODS[key].label}**" + ("" if result.signed else " (magnitude)"))
        st.markdown(token_html(report.units, result.scores.numpy(), result.signed, report.special),
                    unsafe_allow_html=True)


def show_image(report) -> None:
    keys = list(report.results)
    columns = st.columns(min(3, len(keys)))
    for i, key in enumerate(keys):
        result = report.results[key]
        columns[i % len(columns)].plotly_chart(
            image_heatmap(report.extras.get("image"), result.scores.numpy(), result.signed, METHODS[key].label),
            key=f"attribution_image_{key}")


def show_audio(report) -> None:
    wave = report.extras.get("waveform")
    rate = report.extras.get("sampling_rate") or 16000
    for key, result in report.results.items():
        st.plotly_chart(waveform_heatmap(wave if wave is not None else np.zeros(0), rate, result.scores.numpy(),
                                         report.unit_seconds or 0.01, result.signed, METHODS[key].label),
                        key=f"attribution_audio_{key}")


def show_completeness(report) -> None:
    ig = report.results.get("integrated_gradients")
    if ig is None:
        return
    text = (f"Integrated gradients: convergence delta {ig.convergence_delta:+.3g} after {ig.n_steps} steps, "
            f"{ig.relative_delta:.1%} of F(input) − F(baseline) = {ig.output_difference:+.4g}")
    if ig.converged:
        st.caption(text + " (completeness holds within 5%" + (f"; {ig.notes[0]}" if ig.notes else "") + ").")
    else:
        st.warning(text + f": still above 5% at the limit of {ig.n_steps} steps. Raise max_steps in the settings.")


st.header("Attribution")
st.caption("Which part of the input made the model decide. Green pushed the target up, magenta pushed it down; "
           "magnitude-only methods (saliency, rollout, attention x gradient) say how much, not which way, and are "
           "drawn in blue on the tokens.")
name, model = selected_model_or_stop()
stop_if_text_to_text(name, model, "Attribution")

modality = model.modality
if modality == "audio" and not model.is_encoder_decoder and model.task != "audio-classification":
    suggest_models("audio", f"{name} has {'no task head' if model.task is None else f'a {model.task} head'}: "
                            "attribution explains Whisper transcripts and audio classifiers.")
if modality == "text" and model.task not in SUPPORTED_TASKS:
    suggest_models("text", f"{name} has {'no task head' if model.task is None else f'a {model.task} head'}, so there "
                           "is no decision to explain. Attribution needs a classifier or a language model:")
if modality == "image" and model.task != "image-classification":
    suggest_models("image", f"{name} has no classification head, so there is no decision to explain.")

if modality == "text":
    source = text_input("attribution", allow_pairs=not model.config.causal and model.task == "sequence-classification")
    input_key, description = repr(source), source
else:
    picked = image_input("attribution") if modality == "image" else audio_input("attribution")
    if picked is None:
        st.info(f"Upload {'an image' if modality == 'image' else 'a recording'} to begin.")
        st.stop()
    source, description = picked
    input_key = source_key(source)
    if modality == "audio":
        st.audio(source)
target = target_widget(model, modality)
# occlusion's default window: one ViT patch for images, 5 frames (50 ms of Whisper features) for audio
patch = model.network.embed.patch_size[0] if modality == "image" else (5 if modality == "audio" else 1)
methods, params = method_widgets(modality, patch)
key = (name, id(model), input_key, repr(target), tuple(methods), repr(sorted(params.items())))

report = memo_lookup(RESULTS, key)
clicked = st.button("Explain", key="attribution_run", type="primary", disabled=not methods)
explaining = st.container()  # drawn every run: a status in one run only would move the tabs below
if report is None and clicked:
    with shown_errors("computing attributions"), long_run(
            f"explaining {description if modality != 'text' else 'the text'} with "
            f"{', '.join(METHODS[m].label for m in methods)}", "attribution", container=explaining) as progress:
        report = session_memo(RESULTS, key, lambda: run_attribution(
            model, modality, source, methods, target, params, progress=progress), MAX_RESULTS)
elif report is None:
    show_cancelled("attribution", explaining)
if report is None:
    if methods:
        st.info("Press Explain to compute the attributions (kept for this input while the session lasts).")
    st.stop()

t = report.target
st.subheader(f"Explaining “{t.label}”")
if report.modality == "audio" and model.is_encoder_decoder:  # Whisper: log-probabilities of its transcript
    st.caption(f"Output {t.index}: log-probability {t.score:.4g}, teacher-forced on the model's own transcript.")
else:
    st.caption(f"{'Chosen' if t.chosen else 'Predicted'} target {t.index}: logit {t.score:.4g}, "
               f"probability {t.probability:.3f}" + (f", read at position {t.position}" if t.position is not None else ""))
show_completeness(report)

tab_views, tab_agreement, tab_export, tab_code = st.tabs(["Views", "Agreement", "Export", "Code to reproduce"])
with tab_views, shown_errors("drawing the attributions"):
    if report.modality == "image":
        show_image(report)
    elif report.modality == "audio":
        show_audio(report)
    else:
        show_text(report)

with tab_agreement, shown_errors("comparing methods"):
    if len(report.results) < 2:
        st.info("Choose two methods or more to compare them.")
    else:
        mode = st.radio("Rank", ["by magnitude |score|", "by signed score"], horizontal=True, **keep("attribution_rank_mode"),
                        help="Magnitude asks whether methods agree on which units matter; saliency and rollout have no sign.")
        corr = rank_correlation(report, magnitude=mode.startswith("by magnitude"))
        st.plotly_chart(correlation_heatmap(corr, "Spearman rank correlation between methods"),
                        key="attribution_correlation")
        over = {"text": "the words (special tokens are left out: every baseline keeps them).",
                "image": "every pixel.", "audio": "every frame of the clip."}[report.modality]
        st.caption("Computed over " + over)
    st.dataframe(method_summary(report), hide_index=True, key="attribution_summary")

with tab_export:
    stem = f"attribution_{name}".replace("/", "_")
    c1, c2 = st.columns(2)
    c1.download_button("Scores as CSV", lambda: frame_csv(report_frame(report)), file_name=f"{stem}.csv",
                       mime="text/csv", key="attribution_csv", on_click="ignore")
    c2.download_button("Report as HTML", lambda: report_html(report).encode("utf-8"), file_name=f"{stem}.html",
                       mime="text/html", key="attribution_html", on_click="ignore")
    st.caption("The HTML report opens offline: coloured tokens or heatmaps, completeness and agreement tables.")

with tab_code:
    st.caption("Runs in a notebook from the repository root and gives the numbers shown on this page.")
    shown_source = description if modality == "text" else (source if isinstance(source, str) else description)
    st.code(attribution_code(model_recipe(name), modality, shown_source, methods, target, params), language="python")
