"""Heads page: score every attention head, mask heads by clicking, see the effect, prune a copy, draw the curve.

Thin: widgets -> analysis (`head_importance`, `head_effect`, `pruning_report`, `pruning_curve`)
-> plot builders (`app.head_plots`). The shared cached model is never changed: masks are
context-scoped, and pruning makes a new model that belongs to this session only.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import streamlit as st

from analysis.attention import head_pattern
from analysis.head_effect import masking_effect
from analysis.head_importance import METHODS, compute_head_importance
from analysis.metrics import METRICS, SUPPORTED_TASKS, make_eval_set, read_labelled_csv
from analysis.pruning_curve import CURVE_METHODS, compute_pruning_curve
from analysis.pruning_report import compare_pruned
from app.exports import frame_csv
from app.guard import shown_errors
from app.head_labels import head_label, head_list_label, parse_heads, pruned_label
from app.page_setup import selected_model_or_stop, stop_if_text_to_text
from app.head_plots import importance_heatmap, prediction_bars, pruning_curve_figure, selected_heads
from app.long_run import long_run, show_cancelled, was_cancelled
from app.model_cache import keep_session_model, model_recipe
from app.plots import attention_heatmap, matrix_heatmap
from app.reproduce import EvalSource, heads_code, prune_recipe
from app.sidebar import example_sentences, text_input
from app.summaries import importance_summary, scores_are_equal
from app.state import int_slider, keep, keep_per_model, keep_valid, memo_lookup, session_memo
from app.token_display import display_token, display_tokens, is_byte_level

ROOT = Path(__file__).resolve().parent.parent
SENTIMENT = ROOT / "sample_data" / "sentiment.csv"
SENTENCES = ROOT / "sample_data" / "sentences.txt"
SPEED_TEXTS = 16          # sentences the prune button times both models on
KEPT_RESULTS = 6          # importance scores and curves this session keeps (slow ones are worth keeping)
RESULTS = "heads_results"
VALUE_NAMES = {"gradient": "importance", "ablation": "metric drop", "entropy": "entropy (nats)"}


def set_mask(labels: list[str]) -> None:
    """Button callback: replace the masked heads (callbacks run before the multiselect is drawn)."""
    st.session_state["heads_mask"] = list(labels)


def request_prune(name: str, labels: list[str]) -> None:
    """Button callback: prune these heads of this model in the run it starts (with a status and Cancel)."""
    st.session_state["heads_prune_request"] = (name, list(labels))


def prune_and_time(name: str, model, labels: list[str], texts: list[str], container) -> None:
    """A pruned copy for this session, its parameters and measured speed-up; the sidebar picks it on the rerun."""
    spec = parse_heads(labels)
    count = sum(len(h) for h in spec.values())
    with long_run(f"pruning {count} head{'s' if count != 1 else ''} of {name} and timing both models",
                  "heads_prune", container=container) as progress:
        pruned = model.prune_heads(spec)
        report = compare_pruned(model, pruned, texts[:SPEED_TEXTS], progress=progress)
    new_name = keep_session_model(pruned_label(name, spec), pruned, prune_recipe(model_recipe(name), spec),
                                  select="next run")  # the copy's own mask starts empty (keep_per_model)
    st.session_state["heads_prune_report"] = (name, new_name, report)
    st.rerun()


st.header("Heads")
name, model = selected_model_or_stop()
stop_if_text_to_text(name, model, "Heads")
if model.modality != "text":
    st.info(f"{name} reads {model.modality}; this page scores the heads of text models. Pick a text model.")
    st.stop()

# ---------------------------------------------------------------- evaluation data and importance
has_loss = model.task in SUPPORTED_TASKS
labelled = model.task == "sequence-classification"
texts, labels = None, None
with shown_errors("reading the evaluation sentences"):
    if labelled:
        texts, labels = read_labelled_csv(SENTIMENT, split="train")
        source_text = f"{SENTIMENT.name}, train split"
    else:
        texts = example_sentences()
        source_text = f"{SENTENCES.name}" + (" (the model's own language-modelling loss)" if has_loss else "")
if texts is None:
    st.stop()

methods = [key for key, spec in METHODS.items() if has_loss or not spec.needs_loss]
keep_valid("heads_method", methods, default=methods[0])
left, middle, right = st.columns([2, 2, 3])
method = left.selectbox("Score heads by", methods, **keep("heads_method"), format_func=lambda k: METHODS[k].label)
params: dict = {}
if method == "ablation":
    params["metric"] = middle.radio("Metric", METRICS, **keep("heads_metric"), horizontal=True,
                                    index=METRICS.index("accuracy") if labelled else 0)
elif method == "gradient":
    params["normalize"] = middle.checkbox("Normalise per layer (l2)", value=True, **keep("heads_normalize"))
n_examples = int_slider(right, "Evaluation sentences", min(4, len(texts)), len(texts), key="heads_examples",
                        default=min(32, len(texts)))
spec = METHODS[method]
st.caption(f"{spec.summary} ({spec.reference}). Data: the first {n_examples} sentences of {source_text}.")
if not has_loss:
    st.caption(f"{name} has no language-modelling or classification head, so only attention entropy can be "
               "scored; gradient and ablation scores need a loss (try a model with a task head).")

data = None
importance = None
scoring = st.container()  # its button, status or note change from run to run; what follows keeps its place
with shown_errors("scoring the heads"):
    data_key = (name, id(model), n_examples)
    if has_loss:
        data = make_eval_set(model, texts[:n_examples], labels[:n_examples] if labelled else None)
    key = ("importance", data_key, method, tuple(sorted(params.items())))
    importance = memo_lookup(RESULTS, key)
    if importance is None:
        # scores come at once, except leave-one-out (one pass per head) and anything cancelled: those on a click
        heads_total = sum(len(h) for h in model.head_ids())
        waiting = method == "ablation" or was_cancelled("heads_importance")
        clicked = waiting and scoring.button(f"Run the ablation ({heads_total} heads × {n_examples} sentences)"
                                             if method == "ablation" else f"Score the heads ({spec.label})",
                                             key="heads_run")
        if waiting and not clicked:
            show_cancelled("heads_importance", scoring)
        else:
            with long_run(f"scoring {heads_total} heads by {spec.label.lower()} on {n_examples} sentences",
                          "heads_importance", container=scoring) as progress:
                importance = session_memo(RESULTS, key, lambda: compute_head_importance(
                    model, data if spec.needs_loss else texts[:n_examples], method, **params, progress=progress),
                    KEPT_RESULTS)

# ---------------------------------------------------------------- heatmap: click heads to mask them
all_heads = [head_label(layer, head) for layer, ids in enumerate(model.head_ids()) for head in ids]
keep_per_model("heads_mask", name, all_heads)  # one source for the box, the crosses, the effect and Prune
if importance is not None:
    masked_now = [(l, h) for l, heads in parse_heads(st.session_state["heads_mask"]).items() for h in heads]
    fig = importance_heatmap(importance.scores.numpy(), f"{spec.label} per head", VALUE_NAMES[method], masked_now)
    # keyed by the mask: after each change the chart starts with nothing selected, so every click is
    # a fresh selection that toggles exactly the heads it names (plotly would deselect on a second click)
    signature = zlib.crc32("|".join(sorted(st.session_state["heads_mask"])).encode())
    event = st.plotly_chart(fig, key=f"heads_heatmap_{signature:08x}", on_select="rerun", selection_mode=("points",))
    clicked = selected_heads(event.selection.points) if event and event.selection else []
    chosen = list(st.session_state["heads_mask"])
    for label in dict.fromkeys(head_label(layer, head) for layer, head in clicked):
        if label in all_heads:
            chosen.remove(label) if label in chosen else chosen.append(label)
    if chosen != st.session_state["heads_mask"]:
        st.session_state["heads_mask"] = chosen
        st.rerun()  # redraw the heatmap with the new crosses (and a fresh selection)
    st.caption("Click a cell to mask or unmask that head. " + importance_summary(
        importance.to_frame(), VALUE_NAMES[method], importance.n_examples, importance.metric, importance.baseline,
        method))

col_mask, col_k, col_buttons = st.columns([4, 1, 2])
masked_labels = col_mask.multiselect("Masked heads", all_heads, **keep("heads_mask"),
                                     help="Masked as transformers 4.x head_mask: each head's output is zeroed before "
                                          "the output projection, for this page's runs only.")
k = col_k.number_input("k", 1, max(1, len(all_heads) - 1), min(3, max(1, len(all_heads) - 1)), **keep("heads_least_k"))
if importance is not None:
    least = importance.least_important(int(k))
    tied = scores_are_equal(importance.to_frame()["score"])  # then "lowest" would only be the first k in order
    col_buttons.button(f"Mask the {int(k)} lowest-scoring", key="heads_mask_least", on_click=set_mask,
                       args=([head_label(l, h) for l, heads in least.items() for h in heads],), disabled=tied,
                       help="Every head scores the same: none is lower than another." if tied else None)
col_buttons.button("Unmask all", key="heads_mask_clear", on_click=set_mask, args=([],), disabled=not masked_labels)
mask = parse_heads(masked_labels)

tab_effect, tab_prune, tab_curve, tab_scores, tab_code = st.tabs(
    ["Effect of the mask", "Prune", "Pruning curve", "Scores", "Code to reproduce"])

text = None
with tab_effect:
    text = text_input("heads", allow_pairs=not model.config.causal)
    if not mask:
        st.info("Mask heads (click the heatmap, pick them above, or mask the lowest-scoring) to see what changes.")
    else:
        with shown_errors("running the model with heads masked"):
            effect = masking_effect(model, text, mask)
            tokens = display_tokens(effect.before.tokens[0])
            byte_level = is_byte_level(effect.before.tokens[0])
            if not effect.prediction.empty:  # outputs are tokens (language models) or labels: shown readable
                shown = effect.prediction.assign(output=[display_token(str(o), byte_level)
                                                         for o in effect.prediction["output"]])
                st.plotly_chart(prediction_bars(shown, f"Prediction: {effect.what}"), key="heads_prediction")
                first = shown.iloc[0]
                st.caption(f"{effect.what}: {first.output!r} {first.before:.3f} → {first.after:.3f}; "
                           f"KL(before ‖ masked) = {effect.kl_divergence:.4f} nats.")
            else:
                st.caption(f"{name} has no task head: the final hidden states move to cosine "
                           f"{float(effect.hidden_cosine[-1]):.4f} of their unmasked selves.")
            st.plotly_chart(matrix_heatmap(effect.attention_change.numpy(), [str(h) for h in range(model.n_heads)],
                                           [str(l) for l in range(model.n_layers)],
                                           title="How much each head's attention changed (mean |Δ|)",
                                           x_title="head", y_title="layer", colorscale="Reds", zmin=0,
                                           value_name="mean |Δ attention|"), key="heads_change_grid")
            st.caption(f"Masked heads report zero attention (as transformers 4.x does); the other heads of layers "
                       f"0..{min(mask)} keep their patterns, later layers change. Hidden-state cosine with the "
                       "unmasked run, per layer: " + ", ".join(f"{float(c):.3f}" for c in effect.hidden_cosine) + ".")
            layer = int_slider(st, "Layer", 0, model.n_layers - 1, key="heads_effect_layer",
                               default=min(model.n_layers - 1, max(mask)))
            head_ids = effect.before.head_ids[layer]
            if head_ids:
                keep_valid("heads_effect_head", head_ids, default=head_ids[0])
                head = st.selectbox("Head", head_ids, **keep("heads_effect_head"))
                before_col, after_col = st.columns(2)
                before_col.plotly_chart(attention_heatmap(head_pattern(effect.before, layer, head).numpy(), tokens,
                                                          f"L{layer}.H{head} before"), key="heads_attn_before")
                after_col.plotly_chart(attention_heatmap(head_pattern(effect.after, layer, head).numpy(), tokens,
                                                         f"L{layer}.H{head} with heads masked"), key="heads_attn_after")
            else:
                st.caption(f"Layer {layer} has no heads left.")

with tab_prune:
    st.caption("Pruning removes the masked heads for real (their query, key and value rows and output-projection "
               "columns): a new model for this session, picked in the sidebar; other sessions never see it.")
    st.button(f"Prune the {len(masked_labels)} masked head{'s' if len(masked_labels) != 1 else ''}",
              key="heads_prune", disabled=not masked_labels, on_click=request_prune, args=(name, list(masked_labels)))
    pruning = st.container()  # drawn every run, as `scoring` above
    prune_request = st.session_state.pop("heads_prune_request", None)
    if prune_request is not None and prune_request[0] == name:
        with shown_errors("pruning"):
            prune_and_time(name, model, prune_request[1], list(texts), pruning)
    else:
        show_cancelled("heads_prune", pruning)
    report_entry = st.session_state.get("heads_prune_report")
    if report_entry is not None and name in report_entry[:2]:  # about this model or its copy, never a third one
        source_name, pruned_name, report = report_entry
        st.success(f"{pruned_name}: a pruned copy of {source_name}, "
                   + ("now selected in the sidebar." if name == pruned_name else
                      "kept for this session: pick it in the sidebar to use it."))
        a, b, c = st.columns(3)
        a.metric("Parameters removed", f"{report.parameters_removed:,}",
                 f"-{report.parameters_removed / report.parameters_before:.2%}", delta_color="off")
        b.metric("Heads", f"{report.heads_after} of {report.heads_before}")
        low, high = report.speedup_range
        c.metric("Speed-up", f"{report.speedup:.2f}×", f"{low:.2f}–{high:.2f}× pair to pair", delta_color="off",
                 help="Median forward time before divided by median forward time after, as the caption says.")
        st.caption(f"On {min(SPEED_TEXTS, len(texts))} sentences: {report.summary()} "
                   "Small models on short text gain little: most time is outside attention.")

curve = None
curve_settings = None
with tab_curve:
    if not has_loss:
        st.info("A pruning curve measures a loss or accuracy as heads go: it needs a model with a language-modelling "
                "or classification head.")
    else:
        c1, c2, c3, c4 = st.columns(4)
        curve_method = c1.radio("Rank heads by", CURVE_METHODS, **keep("heads_curve_method"),
                                format_func=lambda k: METHODS[k].label)
        curve_metric = c2.radio("Metric", METRICS, **keep("heads_curve_metric"), index=METRICS.index("accuracy") if labelled else 0)
        step = c3.slider("Prune per step (% of heads)", 5, 50, 10, 5, **keep("heads_curve_step"))
        limit = c4.slider("Stop at (% pruned)", 10, 100, 90, 10, **keep("heads_curve_max"))
        curve_settings = dict(method=curve_method, metric=curve_metric, step_fraction=step / 100,
                              max_fraction=limit / 100)
        held_out = None
        with shown_errors("preparing the held-out set"):
            if labelled:
                test_texts, test_labels = read_labelled_csv(SENTIMENT, split="test")
                held_out = make_eval_set(model, test_texts, test_labels)
                st.caption(f"Michel et al. 2019's procedure: heads are scored on the {n_examples} training sentences, "
                           f"the least important {step}% pruned, and {curve_metric} measured on the "
                           f"{len(test_texts)} test sentences; repeat.")
            else:
                held_out = data
                st.caption(f"Michel et al. 2019's procedure on the {n_examples} sentences: score, prune the least "
                           f"important {step}%, measure the {curve_metric}; repeat.")
        curve_key = ("curve", data_key, tuple(sorted(curve_settings.items())))
        clicked = held_out is not None and st.button("Compute the pruning curve", key="heads_curve_run")
        computing = st.container()  # drawn every run, as `scoring` above
        if clicked:
            with shown_errors("computing the pruning curve"), long_run(
                    f"pruning curve: {step}% of the heads per step up to {limit}%, {curve_metric} after each",
                    "heads_curve", container=computing) as progress:
                session_memo(RESULTS, curve_key, lambda: compute_pruning_curve(
                    model, held_out, score_data=data, **curve_settings, progress=progress), KEPT_RESULTS)
        else:
            show_cancelled("heads_curve", computing)
        curve = memo_lookup(RESULTS, curve_key)
        if curve is not None:
            table = curve.table.assign(pruned_now=curve.table["pruned_now"].map(head_list_label))  # L0.H10, not 0.10
            st.plotly_chart(pruning_curve_figure(table, curve.metric, f"{curve.metric} as heads are pruned"),
                            key="heads_curve_chart")
            last = table.iloc[-1]
            st.caption(f"{curve.metric}: {table[curve.metric].iloc[0]:.4f} with every head, "
                       f"{last[curve.metric]:.4f} with {int(last.heads_pruned)} pruned ({last.fraction_pruned:.0%}); "
                       f"parameters {int(table.parameters.iloc[0]):,} → {int(last.parameters):,}.")
            st.dataframe(table, key="heads_curve_table", hide_index=True)
            st.download_button("Curve as CSV", frame_csv(table), file_name=f"pruning_curve_{name}.csv".replace("/", "_"),
                               mime="text/csv", key="heads_curve_csv", on_click="ignore")

with tab_scores:
    if importance is None:
        st.info("No scores yet: run the ablation above.")
    else:
        scores_frame = importance.to_frame()
        st.dataframe(scores_frame, key="heads_scores_table", hide_index=True)
        st.download_button("Scores as CSV", frame_csv(scores_frame),
                           file_name=f"head_importance_{method}_{name}.csv".replace("/", "_"), mime="text/csv",
                           key="heads_scores_csv", on_click="ignore")

with tab_code:
    st.caption("Runs in a notebook from the repository root and gives the numbers shown on this page.")
    source = EvalSource(labelled_csv=f"sample_data/{SENTIMENT.name}" if labelled else None,
                        split="train" if labelled else None,
                        sentences_file=None if labelled else f"sample_data/{SENTENCES.name}", n_examples=n_examples)
    st.code(heads_code(model_recipe(name), source, method, params, spec.needs_loss, text, mask,
                       curve_settings if curve is not None else None), language="python")
