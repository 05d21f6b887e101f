"""Images & audio: a ViT's attention drawn on the picture, zero-shot labels scored by an image-text model
(CLIP) with both towers' attention, Whisper's cross-attention as an alignment of output tokens with audio
time, and encoder self-attention over the recording."""
from __future__ import annotations

import streamlit as st

from analysis.modal_attention import (MEAN, audio_self_attention, cross_attention_alignment, patch_attention_map,
                                      patch_rollout_map, token_times)
from app.guard import shown_errors
from app.long_run import long_run
from app.media_inputs import audio_input, image_input, source_key, transcript_of
from app.modal_plots import alignment_figure, audio_attention_figure, patch_overlay
from app.plots import attention_heatmap
from app.token_display import display_tokens
from app.model_cache import get_model
from app.model_kinds import modality_of, names_for
from app.sidebar import selected_model_name
from app.state import int_slider, keep, keep_valid, memo_lookup, session_memo
from models.pipelines.zero_shot_image import DEFAULT_TEMPLATE
from models.preprocessing import load_image

ZERO_SHOT = "zero-shot-image-classification"  # the pipeline a two-tower image-text model serves

st.header("Images & audio")
st.caption("Attention over image patches, and over time in speech. Pick a model and a sample, or upload your own.")

options = names_for("image") + names_for("audio")  # embedded and this session's own, by what they read
sidebar_choice = selected_model_name()
if sidebar_choice and modality_of(sidebar_choice) is None:  # a folder or hub id: what it reads shows once loaded
    options.append(sidebar_choice)
keep_valid("va_model", options, options[0])
name = st.selectbox("Model", options, **keep("va_model"))


def zero_shot_choices() -> dict:
    """The candidate labels a zero-shot model ranks, and the sentence each is written into, as the user types them."""
    typed = st.text_input("Candidate labels, comma-separated", "a flower, a city, a handwritten digit, a cat",
                          **keep("va_labels"))
    template = st.text_input("Sentence each label is written into ({} is the label)", DEFAULT_TEMPLATE,
                             **keep("va_template"))
    return {"candidate_labels": [label.strip() for label in typed.split(",") if label.strip()],
            "hypothesis_template": template}


def traced(model, kind: str, source, label: str, slot, options: dict):
    """The model's trace on this image or clip: kept per (model, input) in this session; a new one runs with a
    status drawn in ``slot``, where the last results were, so they never stand there as if they were these."""
    key = (name, source_key(source), tuple(options.get("candidate_labels", ())), options.get("hypothesis_template"))
    keep_last = 3 if kind == "image" else 2
    trace = memo_lookup(f"va_{kind}", key)
    if trace is None:
        with long_run(f"running {name} on {label}", "va_run", cancellable=False, keep_status=False, container=slot):
            run = ((lambda: model.run(images=[source], **options)) if kind == "image"
                   else (lambda: model.run(audio=[source])))
            trace = session_memo(f"va_{kind}", key, run, max_entries=keep_last)
    return trace


def text_tower_view(trace) -> None:
    """A two-tower model's text side: each candidate sentence's self-attention, per layer and head."""
    tower = trace.extras["text_tower"]
    st.subheader("Text tower attention")
    sentences = trace.extras["sentences"]
    keep_valid("va_sentence", list(range(len(sentences))), 0)
    row = st.selectbox("Sentence", list(range(len(sentences))), format_func=lambda i: sentences[i],
                       **keep("va_sentence"))
    n_layers = len(tower["attentions"])
    layer = int_slider(st, "Text layer", 0, n_layers - 1, key="va_text_layer", default=n_layers - 1)
    heads = tower["head_ids"][layer]
    keep_valid("va_text_head", [MEAN] + heads, MEAN)
    head = st.selectbox("Text head", [MEAN] + heads, **keep("va_text_head"))
    n = int(tower["attention_mask"][row].sum())
    pattern = tower["attentions"][layer][row, :, :n, :n]  # (H, n, n) without padding
    weights = pattern.mean(0) if head == MEAN else pattern[heads.index(head)]
    tokens = display_tokens(tower["tokens"][row])
    st.plotly_chart(attention_heatmap(weights.float().numpy(), tokens,
                                      f"Text layer {layer}, {'mean of heads' if head == MEAN else f'head {head}'}"),
                    key="va_text_attention")
    st.caption("The text tower reads each sentence left to right (causal attention) and is pooled at its end "
               "token; the image is scored against that vector.")


def image_view(model, trace, source, label: str) -> None:
    image = load_image(source)
    if "text_tower" in trace.extras:  # zero-shot: the typed labels, scored by image-text similarity
        probs = trace.logits[0].float().softmax(-1)
        order = probs.argsort(descending=True)
        labels = trace.extras["candidate_labels"]
        st.subheader("Zero-shot prediction")
        st.dataframe({"label": [labels[int(i)] for i in order], "score": [round(float(probs[i]), 4) for i in order],
                      "similarity": [round(float(trace.logits[0, i]), 3) for i in order]},
                     hide_index=True, key="va_prediction")
    elif trace.logits is not None:
        probs = trace.logits[0].float().softmax(-1)
        best = probs.topk(min(5, probs.shape[-1]))
        st.subheader("Prediction")
        st.dataframe({"label": [model.labels.get(int(i), str(int(i))) for i in best.indices],
                      "score": [round(float(v), 4) for v in best.values]}, hide_index=True, key="va_prediction")
    mode = st.radio("Show", ["one head", "layer mean", "rollout"], horizontal=True, **keep("va_image_mode"))
    if mode == "rollout":
        weights = patch_rollout_map(trace)
        title = f"Attention rollout from [CLS] over {trace.n_layers} layers ({label})"
    else:
        layer = int_slider(st, "Layer", 0, trace.n_layers - 1, key="va_image_layer", default=trace.n_layers - 1)
        head = MEAN
        if mode == "one head":
            heads = trace.head_ids[layer]
            keep_valid("va_image_head", heads, heads[0])
            head = st.selectbox("Head", heads, **keep("va_image_head"))
        weights = patch_attention_map(trace, layer, head)
        title = f"[CLS] attention, layer {layer}, {'mean of heads' if head == MEAN else f'head {head}'} ({label})"
    plain, overlaid = st.columns([1, 2])
    plain.image(image.convert("RGB"), caption=label, width=220)
    overlaid.plotly_chart(patch_overlay(image, weights, title), key="va_patch_overlay")
    st.caption(f"The image is cut into a {weights.shape[0]} x {weights.shape[1]} grid of patches. The redder and "
               "denser a patch's colour, the more attention it receives from the [CLS] position, which the "
               "classifier reads; patches with almost none are left uncoloured.")


def audio_view(model, trace, source, label: str) -> None:
    wave, rate = trace.extras["waveforms"][0], trace.extras["sampling_rate"]
    st.audio(wave, sample_rate=rate)
    if "transcripts" in trace.extras:
        st.subheader("Transcript")
        st.write(trace.extras["transcripts"][0])
        reference = transcript_of(label)
        if reference:
            st.caption(f"Spoken text: {reference}")
        which = st.radio("Cross-attention heads", ["alignment", "all"], horizontal=True, **keep("va_align_heads"),
                         help="Whisper's checkpoint names the heads that follow time (alignment heads).")
        alignment = cross_attention_alignment(trace, which, getattr(model, "generation_config", {}).get("alignment_heads"))
        st.plotly_chart(alignment_figure(alignment.weights, alignment.tokens, alignment.seconds, wave, rate,
                                         "Output tokens x audio time (cross-attention)"), key="va_alignment")
        st.dataframe(token_times(alignment).round(3), hide_index=True, key="va_token_times")
    layers = len(trace.encoder_attentions)
    st.subheader("Encoder self-attention")
    layer = int_slider(st, "Encoder layer", 0, layers - 1, key="va_audio_layer", default=layers - 1)
    n_heads = trace.encoder_attentions[layer].shape[1]
    keep_valid("va_audio_head", [MEAN] + list(range(n_heads)), MEAN)
    head = st.selectbox("Head", [MEAN] + list(range(n_heads)), **keep("va_audio_head"))
    weights, seconds = audio_self_attention(trace, layer, head)
    st.plotly_chart(audio_attention_figure(weights, seconds, f"Encoder layer {layer}, "
                                           f"{'mean of heads' if head == MEAN else f'head {head}'}"), key="va_audio_attention")


pickers = st.container()  # the input, above this model's results
results = st.empty()      # a load or a run shows its status here first: the last model's results go at once
with shown_errors("running the model"):
    model = get_model(name, container=results)
    if model.modality not in ("image", "audio"):
        results.info(f"{name} reads text; choose an image or audio model here, or use the Attention page.")
        st.stop()
    with pickers:  # a digits classifier starts on a digit
        picked = (image_input("va", labels=model.labels.values()) if model.modality == "image"
                  else audio_input("va"))
    if picked is None:
        results.info(f"Upload {'an image' if model.modality == 'image' else 'a recording'} to begin.")
        st.stop()
    with pickers:
        options = zero_shot_choices() if ZERO_SHOT in model.tasks else {}
    source, label = picked
    trace = traced(model, model.modality, source, label, results, options)
    with results.container():
        (image_view if model.modality == "image" else audio_view)(model, trace, source, label)
        if "text_tower" in trace.extras:
            text_tower_view(trace)
