"""Interventions page: which activations cause an answer (patching), push the model along a direction
(steering), and watch generation one token at a time.

Thin: widgets -> analysis (`patching`, `steering`, `generation`) -> plot builders
(`app.intervention_plots`). Every intervention runs inside `model.hooks(...)`: the shared cached
model is never changed.
"""
from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import streamlit as st

from analysis.generation import STRATEGIES, Sampling, decode, is_finished, next_step, start_generation
from analysis.patching import (SITE_LABELS, SITES, class_labels, normalised, patched_run, patching_experiment, pearson,
                               prepare_patching)
from analysis.steering import (REDUCTIONS, check_vector, compare_steering, steered_prediction, steering_hooks, steering_vector,
                               steering_vector_bytes, steering_vector_from_bytes)
from app.exports import frame_csv
from app.guard import shown_errors
from app.long_run import long_run, show_cancelled, was_cancelled
from app.intervention_plots import (lens_line, next_token_bars, patched_prediction_bars, patching_heatmap,
                                    selected_cells)
from app.model_cache import model_recipe
from app.model_kinds import for_example
from app.page_setup import selected_model_or_stop, stop_if_text_to_text
from app.plots import matrix_heatmap
from app.reproduce import GenerationCode, PatchingCode, SteeringCode, interventions_code
from app.state import int_slider, keep_valid, memo_lookup, session_memo
from app.token_display import display_token, display_tokens

KEPT_RESULTS = 4           # exact patching runs and steered generations this session keeps
RESULTS = "iv_results"
RAW, NORMALISED = "logit difference", "normalised (0 = corrupted, 1 = clean)"
LM_EXAMPLE = ("When John and Mary went to the shops, John gave the bag to",
              "When John and Mary went to the shops, Mary gave the bag to", " Mary", " John")
CLASSIFIER_EXAMPLE = ("I loved this film, it was wonderful.", "I hated this film, it was terrible.")
STEER_POSITIVE = "I love this. It is wonderful and makes me happy.\nWhat a great, joyful day."
STEER_NEGATIVE = "I hate this. It is awful and makes me sad.\nWhat a terrible, miserable day."
STEER_PROMPT = "I think that the weather today is"


def column_labels(site: str, setup, n_heads: int) -> list[str]:
    if site == "head":
        return [f"H{h}" for h in range(n_heads)]
    return [f"{i}:{display_token(a)}" + (f"→{display_token(b)}" if a != b else "")
            for i, (a, b) in enumerate(zip(setup.clean_tokens, setup.corrupted_tokens))]


st.header("Interventions")
name, model = selected_model_or_stop()
stop_if_text_to_text(name, model, "Interventions")
if model.modality != "text":
    st.info(f"{name} reads {model.modality}; this page intervenes on text models. Pick a text model.")
    st.stop()
is_lm = model.has_lm_head
is_classifier = model.task == "sequence-classification"
generates = model.can_generate
# known models that fit, for the messages below
fitting_models = for_example("text", ("causal-lm", "masked-lm", "sequence-classification"))
generating_models = for_example("text", ("causal-lm",))
labels = class_labels(model) if is_classifier else []

tab_patch, tab_steer, tab_generate, tab_code = st.tabs(
    ["Activation patching", "Steering", "Generation", "Code to reproduce"])

# ============================================================================ activation patching
def patching_section() -> PatchingCode | None:
    """The patching tab; returns what the code snippet needs (None when nothing was computed)."""
    if not (is_lm or is_classifier):
        st.info(f"{name} has no output to compare ({model.task or 'no task head'}). Patching measures "
                "logit[answer] − logit[wrong] of a language model's next token or a classifier's labels: pick "
                f"a language model or a classifier{fitting_models}.")
        return None
    st.caption("Run the **corrupted** prompt with one activation taken from the **clean** run and read "
               "logit[answer] − logit[wrong] at the last position (Meng et al. 2022; Wang et al. 2022). "
               "Attribution patching estimates every cell at once from one forward and one backward pass "
               "(Nanda 2023; Syed, Rager & Conmy 2023).")
    left, right = st.columns(2)
    example = LM_EXAMPLE if is_lm else CLASSIFIER_EXAMPLE
    clean = left.text_area("Clean prompt", example[0], key="iv_clean", height=80)
    corrupted = right.text_area("Corrupted prompt (same number of tokens)", example[1], key="iv_corrupted", height=80)
    if is_lm:
        answer = left.text_input("Answer (one token; the clean prompt's)", LM_EXAMPLE[2], key="iv_answer")
        wrong = right.text_input("Wrong answer (one token; the corrupted prompt's)", LM_EXAMPLE[3], key="iv_wrong")
    else:
        keep_valid("iv_answer_label", labels, default=labels[-1] if labels else None)
        keep_valid("iv_wrong_label", labels, default=labels[0] if labels else None)
        answer = left.selectbox("Answer (label)", labels, key="iv_answer_label")
        wrong = right.selectbox("Wrong answer (label)", labels, key="iv_wrong_label")
    setup = None
    with shown_errors("checking the prompts"):
        setup = prepare_patching(model, clean, corrupted, answer, wrong)
    if setup is None:
        return None
    differing = setup.differing_positions
    st.caption(f"{setup.n_positions} tokens; they differ at position{'s' if len(differing) != 1 else ''} "
               + (", ".join(f"{i} ({display_token(setup.clean_tokens[i])} → "
                            f"{display_token(setup.corrupted_tokens[i])})" for i in differing) or "none")
               + f". Metric: logit[{display_token(setup.answer_label)}] − logit[{display_token(setup.wrong_label)}]"
               + (f" at position {setup.read_position}." if setup.read_position is not None else " of the classifier."))

    c1, c2, c3 = st.columns([3, 3, 2])
    st.session_state["iv_sites"] = [s for s in st.session_state.get("iv_sites", list(SITES)) if s in SITES]
    sites = c1.multiselect("Sites", list(SITES), key="iv_sites", format_func=lambda s: SITE_LABELS[s])
    n_layers = model.config.n_layers
    if n_layers > 1:
        low, high = st.session_state.get("iv_layers", (0, n_layers - 1))
        st.session_state["iv_layers"] = (min(low, n_layers - 1), min(high, n_layers - 1))
        low, high = c2.slider("Layers", 0, n_layers - 1, key="iv_layers")
    else:
        low, high = 0, 0
    layers = list(range(low, high + 1))
    scale = c3.radio("Show", [RAW, NORMALISED], key="iv_scale")
    if not sites:
        st.info("Pick at least one site.")
        return None
    n_runs = sum(len(layers) * (model.config.n_heads if s == "head" else setup.n_positions) for s in sites)
    base_key = (name, id(model), repr(clean), repr(corrupted), answer, wrong, tuple(layers))
    estimate_key = (base_key, tuple(sites))
    estimating = st.container()  # drawn every run, so a status in one run does not move what follows
    estimate = memo_lookup("iv_attribution", estimate_key)
    # the estimate runs by itself, unless Cancel stopped it: then it waits for this button
    if estimate is None and was_cancelled("iv_attribution") and not estimating.button(
            "Estimate by attribution patching", key="iv_estimate"):
        show_cancelled("iv_attribution", estimating)
        return None
    if estimate is None:
        with shown_errors("computing attribution patching"), long_run(
                f"attribution patching: {len(sites)} site{'s' if len(sites) != 1 else ''} × {len(layers)} "
                f"layer{'s' if len(layers) != 1 else ''}", "iv_attribution", keep_status=False,
                container=estimating) as progress:
            estimate = session_memo("iv_attribution", estimate_key, lambda: patching_experiment(
                model, clean, corrupted, answer, wrong, sites=sites, exact=False, layers=layers, progress=progress),
                max_entries=2)
    if estimate is None:
        return None
    exact_key = ("exact", base_key, tuple(sites))
    exact = memo_lookup(RESULTS, exact_key)
    clicked = exact is None and st.button(f"Run exact patching ({n_runs:,} patched runs)", key="iv_run",
                                          type="primary")
    patching = st.container()  # drawn every run, as `estimating`
    if clicked:
        with shown_errors("patching"), long_run(f"exact patching: {n_runs:,} patched runs", "iv_exact",
                                                container=patching) as progress:
            exact = session_memo(RESULTS, exact_key, lambda: patching_experiment(
                model, clean, corrupted, answer, wrong, sites=sites, layers=layers, exact=True,
                attribution=False, progress=progress), KEPT_RESULTS)
    elif exact is None:
        show_cancelled("iv_exact", patching)
    st.caption(f"Clean run: {estimate.clean_metric:.4f}; corrupted run: {estimate.corrupted_metric:.4f}. "
               + ("" if exact is not None else "Showing the attribution estimate; run exact patching for the real "
                                               "patched runs and their correlation with it."))
    show = (lambda v: normalised(v, estimate.clean_metric, estimate.corrupted_metric)) if scale == NORMALISED \
        else (lambda v: v)
    zmid = 0.0 if scale == NORMALISED else estimate.corrupted_metric
    cell = tuple(st.session_state.get(k) for k in ("iv_cell_site", "iv_cell_layer", "iv_cell_index"))
    signature = zlib.crc32(repr(cell).encode())
    clicked = None
    for site in sites:
        st.subheader(SITE_LABELS[site])
        x_title = "head" if site == "head" else "position (clean→corrupted)"
        x_labels = column_labels(site, setup, model.config.n_heads)
        selected = (cell[1], cell[2]) if cell[0] == site else None
        maps = [("attribution", estimate.attribution[site], "Attribution patching (first-order estimate)")]
        if exact is not None:
            maps.insert(0, ("exact", exact.exact[site], "Exact: metric of each patched run"))
        for column, (kind, values, title) in zip(st.columns(len(maps)), maps):
            event = column.plotly_chart(
                patching_heatmap(show(values.numpy()), x_labels, title, scale, x_title, selected, zmid),
                key=f"iv_{kind}_{site}_{signature:08x}", on_select="rerun", selection_mode=("points",))
            points = selected_cells(event.selection.points) if event and event.selection else []
            if points and clicked is None:
                clicked = (site, *points[0])
        if exact is not None:
            st.caption(f"Correlation of exact and attribution patching ({SITE_LABELS[site]}): "
                       f"{pearson(exact.exact[site], estimate.attribution[site]):.3f} over "
                       f"{int(np.isfinite(exact.exact[site].numpy()).sum())} cells.")
    if clicked is not None and clicked != cell:
        st.session_state["iv_cell_site"], st.session_state["iv_cell_layer"] = clicked[0], clicked[1]
        st.session_state["iv_cell_index"] = clicked[2]
        st.rerun()  # redraw the maps with the new outline (and a fresh selection)

    st.subheader("One patched run")
    st.caption("Click a cell of any map, or pick it here.")
    s1, s2, s3 = st.columns(3)
    keep_valid("iv_cell_site", sites, default=sites[0])
    cell_site = s1.selectbox("Site", sites, key="iv_cell_site", format_func=lambda s: SITE_LABELS[s])
    keep_valid("iv_cell_layer", layers, default=layers[-1])
    cell_layer = s2.selectbox("Layer", layers, key="iv_cell_layer")
    indices = list(range(model.config.n_heads if cell_site == "head" else setup.n_positions))
    keep_valid("iv_cell_index", indices, default=indices[-1] if cell_site != "head" else 0)
    index_labels = column_labels(cell_site, setup, model.config.n_heads)
    cell_index = s3.selectbox("Head" if cell_site == "head" else "Position", indices, key="iv_cell_index",
                              format_func=lambda i: index_labels[i])
    with shown_errors("running the patched prompt"):
        run = session_memo("iv_patched_run", (base_key, cell_site, cell_layer, cell_index),
                           lambda: patched_run(model, clean, corrupted, cell_site, answer, wrong, layer=cell_layer,
                                               index=cell_index), max_entries=4)
        what = (f"head {cell_index} of layer {cell_layer}" if cell_site == "head"
                else f"{SITE_LABELS[cell_site]} of layer {cell_layer} at position {index_labels[cell_index]}")
        st.plotly_chart(patched_prediction_bars(run.prediction.assign(
            output=[display_token(str(o)) for o in run.prediction["output"]]),
            f"Corrupted prompt with the clean {what}"), key="iv_patched_prediction")
        top = run.prediction.iloc[0]
        st.caption(f"Patched run with the clean {what}: metric {run.metric:.4f} (clean {run.clean_metric:.4f}, corrupted "
                   f"{run.corrupted_metric:.4f}; restored {run.restored:.1%}). It predicts "
                   f"{display_token(str(top.output))!r} ({top.patched:.3f}).")
    combined = dataclasses.replace(exact, attribution=estimate.attribution) if exact is not None else estimate
    st.download_button("Patching results as CSV", frame_csv(combined.to_frame()),
                       file_name=f"patching_{name}.csv".replace("/", "_"), mime="text/csv", key="iv_csv",
                       on_click="ignore")
    return PatchingCode(clean=clean, corrupted=corrupted, answer=answer, wrong=wrong, sites=list(sites),
                        layers=None if layers == list(range(n_layers)) else layers, exact=exact is not None,
                        cell=(cell_site, cell_layer, cell_index))


with tab_patch:
    patching_code = patching_section()

# ============================================================================ steering
steering_code: SteeringCode | None = None
vector = None
alpha = 0.0
with tab_steer:
    if not (generates or is_lm or is_classifier):
        st.info(f"{name} has no output to steer: pick a causal LM or a classifier{fitting_models}.")
    else:
        st.caption("A steering vector is the difference of mean residual streams entering a block over two sets "
                   "of prompts (Turner et al. 2023; Rimsky et al. 2024); α·v is added at every position while "
                   "the model runs.")
        left, right = st.columns(2)
        positive = left.text_area("Positive prompts (one per line)", STEER_POSITIVE, key="iv_pos", height=110)
        negative = right.text_area("Negative prompts (one per line)", STEER_NEGATIVE, key="iv_neg", height=110)
        c1, c2, c3 = st.columns(3)
        steer_layer = int_slider(c1, "Layer (block input)", 0, model.config.n_layers - 1, key="iv_steer_layer",
                                 default=model.config.n_layers // 2)
        reduce = c2.radio("Each prompt as", REDUCTIONS, key="iv_steer_reduce", horizontal=True,
                          format_func=lambda r: "mean over its tokens" if r == "mean" else "its last token")
        upload = c3.file_uploader("…or load a vector (.safetensors)", type=["safetensors"], key="iv_steer_upload")
        uploaded_name = None
        with shown_errors("building the steering vector"):
            if upload is not None:
                vector = steering_vector_from_bytes(upload.getvalue(), where=upload.name)
                uploaded_name = upload.name
                check_vector(model, vector)
            else:
                pos = [line for line in positive.splitlines() if line.strip()]
                neg = [line for line in negative.splitlines() if line.strip()]
                vector = session_memo("iv_vector", (name, id(model), tuple(pos), tuple(neg), steer_layer, reduce),
                                      lambda: steering_vector(model, pos, neg, steer_layer, reduce), max_entries=2)
        if vector is not None and vector.d_model == model.config.d_model:
            st.caption(f"‖v‖ = {vector.norm:.3f} at blocks.{vector.layer}.hook_resid_pre"
                       + (f", loaded from {uploaded_name}" if uploaded_name else f", from {len(vector.positive)} "
                          f"positive and {len(vector.negative)} negative prompts") + ".")
            st.download_button("Vector as safetensors", steering_vector_bytes(vector),
                               file_name=f"steering_L{vector.layer}.safetensors", mime="application/octet-stream",
                               key="iv_steer_download", on_click="ignore")
            alpha = st.slider("Strength α", -20.0, 20.0, 4.0, 0.5, key="iv_alpha")
            prompt = st.text_input("Prompt", STEER_PROMPT if generates else CLASSIFIER_EXAMPLE[0], key="iv_steer_prompt")
            if generates:
                tokens = st.slider("New tokens", 1, 60, 20, key="iv_steer_tokens")
                steer_key = ("steer", name, id(model), repr(prompt), tokens, float(alpha), vector.layer,
                             hash(vector.vector.numpy().tobytes()))
                clicked = st.button("Generate plain and steered", key="iv_steer_run")
                steering_status = st.container()  # drawn every run
                if clicked:
                    with shown_errors("generating"), long_run(
                            f"generating {tokens} tokens plain and steered (α = {alpha:g})", "iv_steer",
                            container=steering_status) as progress:
                        session_memo(RESULTS, steer_key, lambda: compare_steering(
                            model, prompt, vector, alpha, max_new_tokens=tokens, progress=progress), KEPT_RESULTS)
                else:
                    show_cancelled("iv_steer", steering_status)
                comparison = memo_lookup(RESULTS, steer_key)
                if comparison is not None:
                    a, b = st.columns(2)
                    a.markdown("**Plain**")
                    a.text(prompt + comparison.plain_text)
                    b.markdown(f"**Steered (α = {comparison.alpha:g})**")
                    b.text(prompt + comparison.steered_text)
                    where = comparison.first_difference
                    st.caption("The two continuations are the same." if where is None
                               else f"They part at new token {where}.")
                steering_code = SteeringCode(positive=list(vector.positive), negative=list(vector.negative),
                                             layer=vector.layer, reduce=vector.reduce, alpha=float(alpha),
                                             prompt=prompt, max_new_tokens=tokens, uploaded=uploaded_name)
            else:
                with shown_errors("running the steered prompt"):
                    table = steered_prediction(model, prompt, vector, alpha)
                    st.dataframe(table, key="iv_steer_table", hide_index=True)
                steering_code = SteeringCode(positive=list(vector.positive), negative=list(vector.negative),
                                             layer=vector.layer, reduce=vector.reduce, alpha=float(alpha),
                                             prompt=prompt, max_new_tokens=0, uploaded=uploaded_name, generates=False)

# ============================================================================ generation
generation_code: GenerationCode | None = None
with tab_generate:
    if not generates:
        st.info(f"{name} does not generate text; stepping through generation needs a causal LM{generating_models}.")
    else:
        prompt = st.text_input("Prompt", "The cat sat on the", key="iv_gen_prompt")
        c1, c2, c3, c4 = st.columns(4)
        strategy = c1.radio("Choose the next token by", STRATEGIES, key="iv_gen_strategy",
                            format_func=lambda s: "greedy (most likely)" if s == "greedy" else "sampling")
        sampled = strategy == "sample"
        temperature = c2.slider("Temperature", 0.1, 2.0, 1.0, 0.1, key="iv_gen_temperature", disabled=not sampled,
                                help="Divides the logits: below 1 sharpens the distribution, above 1 flattens it.")
        top_k = c3.number_input("Top-k (0 = all)", 0, 1000, 0, key="iv_gen_top_k", disabled=not sampled,
                                help="Sample only among the k most likely tokens.")
        seed = c4.number_input("Seed", 0, 10_000, 0, key="iv_gen_seed", disabled=not sampled)
        steer = st.checkbox(f"Add α·v from the steering tab (α = {alpha:g})", key="iv_gen_steer",
                            disabled=vector is None or vector.d_model != model.config.d_model)
        steer = bool(steer and vector is not None and vector.d_model == model.config.d_model)
        sampling = Sampling(strategy, float(temperature), int(top_k) or None, int(seed)) if sampled else Sampling()
        view_key = (name, id(model), prompt, sampling, steer, float(alpha) if steer else None,
                    hash(vector.vector.numpy().tobytes()) if steer else None)
        if st.session_state.get("iv_gen_key") != view_key:
            st.session_state["iv_gen_key"] = view_key
            st.session_state.pop("iv_gen_view", None)
        b1, b2, b3 = st.columns([1, 1, 4])
        more = 1 if b1.button("Next token", key="iv_gen_next", type="primary") else 0
        more = 5 if b2.button("+5 tokens", key="iv_gen_more") else more
        if b3.button("Reset", key="iv_gen_reset"):
            st.session_state.pop("iv_gen_view", None)
        view = None
        generating = st.container()  # drawn every run
        with shown_errors("generating"):
            view = st.session_state.get("iv_gen_view") or start_generation(model, prompt, sampling)
            st.session_state["iv_gen_view"] = view
            if more:
                # steps go to a copy, kept only once every one is done: a cancelled "+5" shows none of them
                grown = dataclasses.replace(view, steps=list(view.steps))
                hooks = steering_hooks(model, vector, alpha) if steer else {}
                with long_run(f"generating {more} token{'s' if more != 1 else ''}", "iv_gen", keep_status=False,
                              container=generating) as progress, model.hooks(hooks):
                    for done in range(more):
                        progress(done / more, f"token {done + 1} of {more}")
                        if is_finished(model, grown):
                            break
                        next_step(model, grown)
                view = st.session_state["iv_gen_view"] = grown
            else:
                show_cancelled("iv_gen", generating)
        if view is not None:
            st.markdown("**Tokens so far:** " + " ".join(
                [f"`{prompt}`"] + [f"`{display_token(s.token)}`" for s in view.steps]))
            if view.steps:
                st.caption("Decoded: " + prompt + decode(model, view.new_ids))
            if not view.steps:
                st.info("Press **Next token** to generate one token and see how the model chose it.")
            else:
                if more:  # show the newest step after generating
                    st.session_state["iv_gen_step"] = len(view.steps) - 1
                chosen_step = int_slider(st, "Inspect step", 0, len(view.steps) - 1, key="iv_gen_step",
                                         default=len(view.steps) - 1)
                step = view.steps[chosen_step]
                context = display_tokens(step.context_tokens)
                st.caption(f"Step {step.index}: position {step.position} ({context[-1]!r}) chose "
                           f"{display_token(step.token)!r} — model probability {step.probability:.3f}"
                           + (f", sampler probability {step.sampling_probability:.3f}" if sampled else "")
                           + (f"; decided at layer {step.decided_at} of {model.config.n_layers}."
                              if step.decided_at is not None else "; no layer had it on top."))
                top = step.top.assign(token=[display_token(t) for t in step.top["token"]])
                st.plotly_chart(next_token_bars(top, display_token(step.token), "Top next-token probabilities",
                                                sampled), key="iv_gen_top")
                left, right = st.columns(2)
                left.plotly_chart(lens_line(step.lens_token_probs.tolist(), step.lens_top_probs.tolist(),
                                            [display_token(t) for t in step.lens_top_tokens], display_token(step.token),
                                            step.decided_at), key="iv_gen_lens")
                attention = step.attention.numpy()  # (layers, heads, context)
                x_labels = [f"{i}:{t}" for i, t in enumerate(context)]
                right.plotly_chart(matrix_heatmap(np.nanmean(attention, axis=1), x_labels,
                                                  [f"L{l}" for l in range(attention.shape[0])],
                                                  title="Attention of the new position (mean over heads)",
                                                  x_title="context token", y_title="layer", colorscale="Blues", zmin=0,
                                                  value_name="weight"), key="iv_gen_attention_layers")
                gen_layer = int_slider(st, "Layer for per-head attention", 0, model.config.n_layers - 1,
                                       key="iv_gen_layer", default=model.config.n_layers - 1)
                st.plotly_chart(matrix_heatmap(attention[gen_layer], x_labels,
                                               [f"H{h}" for h in range(attention.shape[1])],
                                               title=f"Layer {gen_layer}: each head's attention from position "
                                                     f"{step.position}", x_title="context token", y_title="head",
                                               colorscale="Blues", zmin=0, value_name="weight"),
                                key="iv_gen_attention_heads")
                steps_frame = view.to_frame()
                st.dataframe(steps_frame.assign(token=[display_token(t) for t in steps_frame["token"]]),
                             key="iv_gen_steps", hide_index=True)
                st.download_button("Steps as CSV", frame_csv(steps_frame), file_name="generation_steps.csv",
                                   mime="text/csv", key="iv_gen_csv", on_click="ignore")
            generation_code = GenerationCode(prompt=prompt, n_steps=max(1, len(view.steps)), strategy=strategy,
                                             temperature=float(temperature), top_k=int(top_k) or None, seed=int(seed),
                                             steered=steer)

# ============================================================================ code
with tab_code:
    st.caption("Runs in a notebook from the repository root and gives the numbers shown on this page.")
    st.code(interventions_code(model_recipe(name), patching_code, steering_code, generation_code), language="python")
