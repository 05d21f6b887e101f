"""The views a lesson step sets up: each computes from the live model with an analysis function and draws one chart.

A view is ``view(name, model, params) -> facts``: it draws its main chart with the key ``CHART`` and returns the
numbers the step's text quotes ({best}, {on_key:.0%}, ...). Traces are kept per session (app.state.session_memo),
so moving back and forth between steps does not run the model again.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from analysis.alignment import alignment, strongest_sources, written_tokens
from analysis.attention import MEAN_OF_LAYER, head_pattern
from analysis.head_importance import compute_head_importance
from analysis.head_kinds import (attention_between, find_token, head_kind_scores, repeated_random_tokens, score_grid,
                                 top_heads)
from analysis.hidden_states import residual_norms
from analysis.lens import logit_lens, token_by_layer
from analysis.metrics import make_eval_set, read_labelled_csv
from analysis.modal_attention import (MEAN, audio_self_attention, cross_attention_alignment, patch_attention_map,
                                      patch_rollout_map, token_times)
from analysis.pruning_curve import compute_pruning_curve
from models import WorkbenchModel
from models.preprocessing import load_image

from ..alignment_plots import alignment_heatmap
from ..head_labels import head_label
from ..head_plots import importance_heatmap, pruning_curve_figure
from ..long_run import long_run, show_cancelled, start_again, was_cancelled
from ..media_inputs import IMAGES, SPEECH
from ..modal_plots import alignment_figure, audio_attention_figure, patch_overlay
from ..plots import attention_heatmap, lens_figure, matrix_heatmap, norms_figure, token_bar
from ..state import memo_lookup, session_memo
from ..token_display import display_token, display_tokens, is_byte_level

CHART = "lesson_chart"          # the key of every step's main chart
MEMO = "lesson_results"
ROOT = Path(__file__).resolve().parents[2]
SENTIMENT = ROOT / "sample_data" / "sentiment.csv"
INK = 0.25                      # a patch "has ink" when its mean darkness is above this share of the darkest's

Facts = dict[str, Any]
View = Callable[[str, WorkbenchModel, dict], Facts]


def _trace(name: str, model: WorkbenchModel, what: tuple, run: Callable):
    return session_memo(MEMO, (name, id(model), *what), run, max_entries=6)


def _chart(fig: go.Figure) -> None:
    st.plotly_chart(fig, key=CHART)


# ---------------------------------------------------------------- "it" and what it refers to
def token_attention(name: str, model: WorkbenchModel, p: dict) -> Facts:
    """Attention from one word to another: a head's pattern, the per-head grid, or one row as bars."""
    def best_head(text: str) -> tuple[int, int, float, Any]:
        trace = _trace(name, model, ("text", text), lambda: model.run(text))
        query, key = find_token(trace.tokens[0], p["query"]), find_token(trace.tokens[0], p["key"])
        between = attention_between(trace, query, key)
        layer, head, weight = top_heads(between, "weight", 1)[0]
        return layer, head, weight, between

    trace = _trace(name, model, ("text", p["text"]), lambda: model.run(p["text"]))
    raw = trace.tokens[0]
    tokens = display_tokens(raw)
    query, key = find_token(raw, p["query"]), find_token(raw, p["key"])
    other = find_token(raw, p["other"])
    best_layer, best_head_, best_weight, between = best_head(p.get("best_text", p["text"]))
    facts: Facts = dict(query=p["query"], key=p["key"], other=p["other"], best=head_label(best_layer, best_head_),
                        best_weight=best_weight, over_half=int((between["weight"] > 0.5).sum()),
                        n_heads_total=len(between))
    if p["show"] == "grid":
        grid = score_grid(between, "weight", model.n_layers, model.n_heads).numpy()
        _chart(matrix_heatmap(grid, [str(h) for h in range(model.n_heads)], [str(l) for l in range(model.n_layers)],
                              title=f"Share of “{p['query']}”'s attention on “{p['key']}”, per head",
                              x_title="head", y_title="layer", colorscale="Blues", zmin=0, zmax=1, value_name="share"))
        return facts
    layer, head = (best_layer, best_head_) if p.get("head") == "best" else (int(p.get("layer", 0)), p.get("head"))
    head_arg = MEAN_OF_LAYER if head == "mean" else head
    weights = head_pattern(trace, layer, head_arg).numpy()  # (n, n)
    row = weights[query]
    most = int(row.argmax())
    facts.update(layer=layer, on_key=float(row[key]), on_other=float(row[other]), most=tokens[most],
                 most_weight=float(row[most]))
    if p.get("best_text"):  # the same head on the sentence it was found on, for comparison
        before = _trace(name, model, ("text", p["best_text"]), lambda: model.run(p["best_text"]))
        first = head_pattern(before, layer, head_arg).numpy()
        b_query = find_token(before.tokens[0], p["query"])
        facts.update(before_key=float(first[b_query, find_token(before.tokens[0], p["key"])]),
                     before_other=float(first[b_query, find_token(before.tokens[0], p["other"])]))
    what = "mean of heads" if head == "mean" else f"head {head_label(layer, head)}"
    if p["show"] == "row":
        _chart(token_bar(row, tokens, title=f"Where “{p['query']}” looks, {what}", value_name="attention"))
    else:
        _chart(attention_heatmap(weights, tokens, title=f"Layer {layer}, {what}"))
    return facts


# ---------------------------------------------------------------- previous-token, first-token, induction heads
def repeated_sequence(model: WorkbenchModel, length: int, seed: int):
    """(ids (1, T), offset): a BOS if the tokenizer has one, then ``length`` random tokens twice."""
    tokenizer = model.tokenizer
    specials = [tokenizer.token_to_id(t) for t in tokenizer.special.values()]
    bos = tokenizer.token_to_id(tokenizer.special["bos_token"]) if "bos_token" in tokenizer.special else None
    prefix = [bos] if bos is not None else []
    ids = repeated_random_tokens(tokenizer.vocab_size, length, seed, prefix, [s for s in specials if s is not None])
    return ids, len(prefix)


COLUMN_TITLES = {"previous_token": "Previous-token score", "first_token": "First-token score",
                 "induction": "Induction score (second copy)"}


def head_kinds(name: str, model: WorkbenchModel, p: dict) -> Facts:
    ids, offset = repeated_sequence(model, p["length"], p["seed"])
    trace = _trace(name, model, ("repeat", p["length"], p["seed"]), lambda: model.run(input_ids=ids))
    scores = head_kind_scores(trace, p["length"], offset)
    column = p["column"]
    top = top_heads(scores, column, 3)
    layer, head, score = top[0]
    facts: Facts = dict(length=p["length"], best=head_label(layer, head), best_score=score,
                        top=", ".join(f"{head_label(l, h)} ({s:.0%})" for l, h, s in top))
    if p["show"] == "grid":
        grid = score_grid(scores, column, model.n_layers, model.n_heads).numpy()
        _chart(matrix_heatmap(grid, [str(h) for h in range(model.n_heads)], [str(l) for l in range(model.n_layers)],
                              title=f"{COLUMN_TITLES[column]} per head", x_title="head", y_title="layer",
                              colorscale="Blues", zmin=0, zmax=1, value_name="score"))
    else:
        tokens = display_tokens(trace.tokens[0])
        _chart(attention_heatmap(head_pattern(trace, layer, head).numpy(), tokens,
                                 title=f"Head {head_label(layer, head)} on the repeated tokens"))
    return facts


# ---------------------------------------------------------------- logit lens and the residual stream
def answer_id(model: WorkbenchModel, answer: str) -> int:
    """The first token of ``answer`` as the model writes it after a text (" Rome": one token for most tokenizers)."""
    return int(model.tokenizer.backend.encode(answer, add_special_tokens=False).ids[0])


def logit_lens_view(name: str, model: WorkbenchModel, p: dict) -> Facts:
    trace = _trace(name, model, ("text", p["text"]), lambda: model.run(p["text"]))
    raw = trace.tokens[0]
    byte_level = is_byte_level(raw)
    last = len(raw) - 1
    target = answer_id(model, p["answer"])
    probs, ranks = token_by_layer(model, trace, last, target)
    top_layers = [l for l, r in enumerate(ranks.tolist()) if r == 0]
    final_logits = trace.logits[0, last].float().softmax(-1)
    final = int(final_logits.argmax())
    facts: Facts = dict(answer=p["answer"].strip(), final=display_token(model.tokenizer.id_to_token(final), byte_level),
                        final_prob=float(final_logits[final]), final_prob_answer=float(probs[-1]),
                        first_top=top_layers[0] if top_layers else "none (never the top guess)")
    if p["show"] == "lens":
        positions = list(range(max(0, len(raw) - p.get("window", 8)), len(raw)))
        lens = session_memo(MEMO, (name, id(model), "lens", p["text"], tuple(positions)),
                            lambda: logit_lens(model, trace, positions=positions, top_k=3), max_entries=6)
        top1 = [[display_token(cell[0], byte_level) for cell in row] for row in lens.top_tokens]
        _chart(lens_figure(top1, lens.top_probs[..., 0].numpy(), lens.layers, lens.positions,
                           display_tokens(lens.input_tokens)))
    elif p["show"] == "answer":
        fig = go.Figure(go.Scatter(x=list(range(len(probs))), y=probs.numpy(), mode="lines+markers",
                                   customdata=ranks.numpy(), name=facts["answer"],
                                   hovertemplate="layer %{x}: %{y:.3f} (rank %{customdata})<extra></extra>"))
        fig.update_layout(title=f"Probability of “{facts['answer']}” after the last token, layer by layer",
                          xaxis_title="layer (0 = embeddings)", yaxis_title="probability", yaxis_range=[0, 1],
                          height=380, margin=dict(l=10, r=10, t=40, b=10))
        _chart(fig)
    else:
        norms = residual_norms(trace).numpy()  # (L+1, n)
        facts.update(first_norm=float(np.median(norms[0])), last_norm=float(np.median(norms[-1])))
        _chart(norms_figure(norms))
    return facts


# ---------------------------------------------------------------- pruning heads
def pruning_data(model: WorkbenchModel, p: dict):
    """(scoring set, held-out set) from the labelled sample: the first ``n_score`` training and ``n_test`` test rows."""
    train, train_labels = read_labelled_csv(SENTIMENT, split="train")
    test, test_labels = read_labelled_csv(SENTIMENT, split="test")
    return (make_eval_set(model, train[:p["n_score"]], train_labels[:p["n_score"]]),
            make_eval_set(model, test[:p["n_test"]], test_labels[:p["n_test"]]))


def pruning(name: str, model: WorkbenchModel, p: dict) -> Facts:
    score_set, held_out = pruning_data(model, p)
    facts: Facts = dict(n_score=p["n_score"], n_test=p["n_test"], step=p["step"])
    slot = st.container()  # the status of a long run, drawn every run so the chart below keeps its place
    if p["show"] == "importance":
        key = (name, id(model), "importance", p["n_score"])
        importance = memo_lookup(MEMO, key)
        if importance is None:
            with long_run(f"scoring every head on {p['n_score']} sentences", "lesson_importance",
                          container=slot) as progress:
                importance = session_memo(MEMO, key, lambda: compute_head_importance(
                    model, score_set, "gradient", progress=progress), max_entries=6)
        top = importance.to_frame().iloc[0]
        facts["best"] = head_label(int(top["layer"]), int(top["head"]))
        _chart(importance_heatmap(importance.scores.numpy(), "Gradient importance per head", "importance"))
        return facts
    key = (name, id(model), "curve", p["n_score"], p["n_test"], p["step"], p["limit"])
    curve = memo_lookup(MEMO, key)
    if curve is None:
        if was_cancelled("lesson_curve"):  # Cancel was clicked: wait for a click instead of starting again
            show_cancelled("lesson_curve", slot)
            slot.button("Compute the pruning curve again", key="lesson_curve_again", on_click=start_again,
                        args=("lesson_curve",))
            return {**facts, **{k: float("nan") for k in ("start_accuracy", "end_accuracy", "end_pruned")},
                    "start_parameters": 0, "end_parameters": 0}
        with long_run(f"pruning curve: {p['step']:.0%} of the heads per step up to {p['limit']:.0%}, accuracy after "
                      "each", "lesson_curve", container=slot) as progress:
            curve = session_memo(MEMO, key, lambda: compute_pruning_curve(
                model, held_out, score_data=score_set, step_fraction=p["step"], max_fraction=p["limit"],
                method="gradient", metric="accuracy", progress=progress), max_entries=6)
    table = curve.table
    facts.update(start_accuracy=float(table["accuracy"].iloc[0]), end_accuracy=float(table["accuracy"].iloc[-1]),
                 end_pruned=float(table["fraction_pruned"].iloc[-1]), start_parameters=int(table["parameters"].iloc[0]),
                 end_parameters=int(table["parameters"].iloc[-1]))
    if p["show"] == "curve":
        _chart(pruning_curve_figure(table, "accuracy", "Accuracy as heads are pruned"))
    else:
        fig = go.Figure(go.Scatter(x=table["parameters"], y=table["accuracy"], mode="lines+markers",
                                   customdata=table["fraction_pruned"] * 100,
                                   hovertemplate="%{x:,} parameters (%{customdata:.0f}% of heads pruned)<br>"
                                                 "accuracy %{y:.3f}<extra></extra>"))
        fig.update_layout(title="Accuracy against the parameters left", xaxis_title="parameters",
                          yaxis_title="accuracy", height=380, margin=dict(l=10, r=10, t=40, b=10))
        _chart(fig)
    return facts


# ---------------------------------------------------------------- ViT patches
def ink_mask(image, rows: int, cols: int) -> np.ndarray:
    """(rows, cols) bool: patches whose mean darkness (the digit's strokes) is a real share of the darkest patch's."""
    grey = np.asarray(image.convert("L").resize((cols * 8, rows * 8)), dtype=float) / 255.0
    darkness = 1.0 - grey if grey.mean() > 0.5 else grey  # strokes are the minority colour
    per_patch = darkness.reshape(rows, 8, cols, 8).mean((1, 3))
    return per_patch > INK * max(per_patch.max(), 1e-9)


def vit_patches(name: str, model: WorkbenchModel, p: dict) -> Facts:
    path = str(IMAGES / p["image"])
    trace = _trace(name, model, ("image", p["image"]), lambda: model.run(images=[path]))
    if p["mode"] == "rollout":
        weights, layer, title = patch_rollout_map(trace), None, "Attention rollout from [CLS]"
    else:
        layer = trace.n_layers - 1 if p["layer"] == "last" else int(p["layer"])
        weights, title = patch_attention_map(trace, layer, MEAN), f"[CLS] attention, layer {layer}, mean of heads"
    image = load_image(path)
    ink = ink_mask(image, *weights.shape)
    peak_row, peak_col = np.unravel_index(int(weights.argmax()), weights.shape)
    label = model.labels.get(int(trace.logits[0].argmax()), "?") if trace.logits is not None else "?"
    _chart(patch_overlay(image, weights, f"{title} ({p['image']})", size=400))
    return dict(layer=layer, label=label, ink_patches=int(ink.sum()),
                ink_share=float(weights[ink].sum() / max(weights.sum(), 1e-12)), peak_row=int(peak_row),
                peak_col=int(peak_col))


# ---------------------------------------------------------------- Whisper: words and sound
def whisper_alignment(name: str, model: WorkbenchModel, p: dict) -> Facts:
    path = str(SPEECH / p["clip"])
    trace = _trace(name, model, ("audio", p["clip"]), lambda: model.run(audio=[path]))
    wave, rate = trace.extras["waveforms"][0], trace.extras["sampling_rate"]
    if p["show"] == "encoder":
        layer = int(p.get("layer", 0))
        weights, seconds = audio_self_attention(trace, layer, MEAN)
        _chart(audio_attention_figure(weights, seconds, f"Encoder layer {layer}, mean of heads"))
        return dict(layer=layer, seconds=len(wave) / rate)
    heads = getattr(model, "generation_config", {}).get("alignment_heads")
    aligned = cross_attention_alignment(trace, p["heads"], heads)
    peaks = token_times(aligned)["peak_s"].to_numpy()
    _chart(alignment_figure(aligned.weights, display_tokens(aligned.tokens), aligned.seconds, wave, rate,
                            "Written tokens x audio time (cross-attention)"))
    return dict(transcript=trace.extras["transcripts"][0].strip(), steps=max(len(peaks) - 1, 0),
                forward=int((np.diff(peaks) >= 0).sum()))


# ---------------------------------------------------------------- text-to-text: which source token each word reads
def translation_alignment(name: str, model: WorkbenchModel, p: dict) -> Facts:
    trace = _trace(name, model, ("text", p["text"]), lambda: model.run(p["text"]))
    heads = model.stack_head_ids()["cross"]
    layer = len(heads) - 1 if p["layer"] == "last" else int(p["layer"])
    head = MEAN_OF_LAYER if p["head"] == "mean" else int(p["head"])
    weights = alignment(trace, layer, head, heads).numpy()  # (written, source)
    sources = display_tokens(trace.extras["source_tokens"][0])
    targets = display_tokens(written_tokens(trace))
    pairs = [f"{targets[row]} ← {sources[col]}" for row, col in enumerate(strongest_sources(weights))]
    label = "mean of heads" if head == MEAN_OF_LAYER else f"head {head}"
    _chart(alignment_heatmap(weights, targets, sources, title=f"Cross-attention, layer {layer}, {label}"))
    return dict(output=trace.extras["outputs"][0], layer=layer, pairs=", ".join(pairs))


VIEWS: dict[str, View] = {
    "token_attention": token_attention,
    "head_kinds": head_kinds,
    "logit_lens": logit_lens_view,
    "pruning": pruning,
    "vit_patches": vit_patches,
    "whisper_alignment": whisper_alignment,
    "translation_alignment": translation_alignment,
}
