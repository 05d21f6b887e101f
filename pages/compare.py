"""Compare: several models or pipelines on one text, image or audio input, side by side with latency,
agreement between their answers, and a compact attention summary each; exportable as CSV."""
from __future__ import annotations

import os

import streamlit as st

from analysis.compare import SUMMARY_COLUMNS, attention_profile, comparison_table
from analysis.compare_report import (GENERATION_REPEATS, REPEAT_BUDGET_SECONDS, REPEATS, TIMING_COLUMNS,
                                     comparison_agreement, export_frame, is_transcript, reference_wer, run_comparison,
                                     truncation_warnings, with_timings, with_wer)
from app.exports import safe_frame_csv
from app.guard import shown_errors
from app.long_run import long_run, show_cancelled
from app.media_inputs import ROOT, audio_input, image_input, source_key, transcript_of
from app.modal_plots import agreement_figure, attention_profile_figure, latency_figure
from app.model_cache import get_model, model_recipe
from app.model_kinds import pipeline_pairs, pipeline_tasks_for
from app.reproduce import compare_code
from app.state import keep
from app.sidebar import example_sentences
from models.pipelines import pipeline

SEP = " · "  # an entry is "task · model name"
TIMING_DETAIL = [c for c in TIMING_COLUMNS if c not in ("latency_ms", "timing")]  # in the chart and the CSV
INPUT_SHOWN = 120  # characters of a text input in the caption above the results


def shorten(text: str) -> str:
    return text if len(text) <= INPUT_SHOWN else text[:INPUT_SHOWN] + "…"


def pipeline_loader(entry: str):
    """What gives the pipeline of a "task · model name" entry: the model from this session or the shared cache."""
    task_name, model_name = entry.split(SEP, 1)
    return lambda: pipeline(task_name, get_model(model_name))


st.header("Compare")
st.caption("Run several models or pipelines on the same input. Results, latency, agreement and an attention "
           "summary per model (speech scored against a reference transcript); download it all as CSV.")

kind = st.radio("Input", ["text", "image", "audio"], horizontal=True, **keep("cmp_kind"))
tasks = pipeline_tasks_for(kind)
# only what reads this kind of input: embedded defaults, this session's own models by their own modality, and
# the folders or hub ids added below under a task for this input
choices = [f"{task}{SEP}{name}" for task, name in pipeline_pairs(kind)]
extra = st.session_state.setdefault("cmp_extra", [])
choices += [c for c in extra if c.split(SEP)[0] in tasks and c not in choices]
picked = st.multiselect("Models", choices, default=choices[: min(2, len(choices))], **keep(f"cmp_models_{kind}"),
                        wrap=True)
with st.expander("Add a model (folder or hub id)"):
    col1, col2 = st.columns([1, 2])
    task = col1.selectbox("Task", tasks, key=f"cmp_add_task_{kind}")
    where = col2.text_input("Model", key=f"cmp_add_name_{kind}", placeholder="/path/to/model or owner/name")
    if st.button("Add", key=f"cmp_add_{kind}") and where.strip():
        extra.append(f"{task}{SEP}{where.strip()}")
        st.rerun()

if kind == "text":
    text = st.text_area("Text", example_sentences()[0], **keep("cmp_text"))
    source, label, digest = text, text, text
else:
    picked_input = image_input("cmp") if kind == "image" else audio_input("cmp")
    source, label = picked_input if picked_input else (None, "")
    digest = source_key(source)
reference = None
if kind == "audio" and source is not None:
    # the committed transcript of a sample clip (an upload has none, whatever its file name), or one typed here
    committed = transcript_of(label) if isinstance(source, str) else None
    typed = st.text_input("Reference transcript", committed or "", key=f"cmp_reference_{digest}",
                          placeholder="what is said in the clip, to score each transcript against",
                          help="Transcripts are scored by word error rate against this text (lower is better). "
                               "The sample clips come with theirs (sample_data/speech/transcripts.csv).")
    reference = typed.strip() or None

repeat_generation = st.checkbox(
    f"Time generating models in steady state too ({GENERATION_REPEATS} more calls each)",
    **keep("cmp_repeat_generation"),
    help="A model that generates (text, a transcript) is called once: its answer and its time come from that first "
         f"call. Tick to call it {GENERATION_REPEATS} more times for a steady-state median (and wait that much longer).")
run = st.button("Compare", type="primary", key="cmp_run", disabled=not picked or source is None)
comparing = st.container()  # drawn every run, so a status in one run does not move the results below
if run:
    # the answer is each model's first call (no warm-up run is thrown away); repeats, if any, give the steady state
    loaders = {entry: pipeline_loader(entry) for entry in picked}
    n = len(loaders)
    # Cancel stops before the next model; the comparison is kept only once every model has run
    with long_run(f"comparing {n} model{'s' if n != 1 else ''}", "cmp", keep_status=False,
                  container=comparing) as progress:
        results, timings, errors = run_comparison(loaders, source, repeat_generation, progress=progress)
    # summarised once here, so reruns (a download, a widget) redraw from the table and the traces, which can
    # hold hundreds of megabytes of encoder attention, are not kept in the session
    profile = attention_profile(results)
    table = with_timings(comparison_table(results, profile), timings)
    table.insert(1, "input", label)
    if kind == "text" or not isinstance(source, str):
        source_code = repr(source) if kind == "text" else f"{label!r}  # the uploaded file, saved under its name"
    else:
        source_code = repr(os.path.relpath(source, ROOT))  # a sample, from the repository root
    code_runs = [(entry, *entry.split(SEP, 1)) for entry in picked if entry in results]  # the ones that ran
    st.session_state["cmp_last"] = {
        "kind": kind, "input": digest, "input_text": label, "table": table, "profile": profile, "errors": errors,
        "order": list(picked), "warnings": truncation_warnings(results), "reference": reference,
        "transcripts": [entry for entry, result in results.items() if is_transcript(result)],
        "code": ([(entry, task_name, model_recipe(name)) for entry, task_name, name in code_runs], source_code,
                 repeat_generation)}
else:
    show_cancelled("cmp", comparing)

last = st.session_state.get("cmp_last")
if last and last["kind"] == kind:
    with shown_errors("comparing"):
        for entry, message in last["errors"].items():
            st.error(f"{entry}: {message}")
        for entry, said in last["warnings"].items():
            for warning in said:
                st.warning(f"{entry}: {warning} Its answer reads only that part of the input.")
        table, profile = last["table"], last["profile"]
        # the reference box scores the transcripts it is shown beside; results of another clip keep theirs
        scored_against = reference if last["input"] == digest else last["reference"]
        transcripts = {m: a for m, a in zip(table["model"], table["answer"]) if m in last["transcripts"]}
        wer = reference_wer(transcripts, scored_against) if scored_against and transcripts else None
        if len(table):
            st.subheader("Results")
            # the input once, above the table (the CSV carries it in full on every row)
            st.caption(f"Input: {shorten(last['input_text'])}")
            shown = with_wer(table, wer)
            answers = shown[[c for c in shown.columns if c not in SUMMARY_COLUMNS and c not in TIMING_DETAIL
                             and c != "input"]]
            # fixed widths, so a long generated text cannot push score, latency and timing out of view: the model
            # column as wide as its longest "task · name" (about 7 px a character), so no name is cut short, and
            # the answer gives up what the model column (and a WER column) take
            model_width = max(210, 7 * int(table["model"].str.len().max()) + 16)
            answer_width = max(160, 330 - (model_width - 210) - (60 if "wer" in answers else 0))
            st.dataframe(answers.round(4), hide_index=True, key="cmp_table",
                         column_config={"model": st.column_config.TextColumn("model", width=model_width),
                                        "answer": st.column_config.TextColumn("answer", width=answer_width),
                                        "score": st.column_config.NumberColumn("score", width=70, format="%.4f"),
                                        "wer": st.column_config.NumberColumn(
                                            "WER", width=60, format="%.2f",
                                            help="word error rate against the reference transcript"),
                                        "latency_ms": st.column_config.NumberColumn("latency (ms)", width=90,
                                                                                    format="%.1f"),
                                        "timing": st.column_config.TextColumn(
                                            "timing", width=140,
                                            help="which time the latency is: the first call (whose answer is "
                                                 "shown), or the median of the calls after it")})
            if wer is not None:
                st.caption(f"WER: word edits from the reference transcript to the model's, over the reference's "
                           f"{int(wer['reference_words'].iloc[0])} words (lower case, punctuation dropped). "
                           f"Reference: \"{scored_against}\"")
            agreement = comparison_agreement(table)
            export = export_frame(table, last["order"], last["errors"], last["input_text"], agreement,
                                  last["warnings"], scored_against, wer)
            st.download_button("Download CSV", safe_frame_csv(export), "comparison.csv", "text/csv", key="cmp_csv",
                               help="One row per model, failed ones with their error: the full input, answers, "
                                    "timing, attention summary, warnings, and the agreement matrix as columns")
            left, right = st.columns(2)
            with left:
                st.markdown("**Latency** (log scale)")
                st.plotly_chart(latency_figure(table), key="cmp_latency")
                st.caption(f"Load: getting the model (no bar when the server had it already). First call: the "
                           f"answer shown, with any one-time costs of a model's first use. Steady state: the "
                           f"median of up to {REPEATS} further calls within {REPEAT_BUDGET_SECONDS:g} s (whiskers: "
                           f"fastest to slowest). A model that generates is called once, so its latency is its first "
                           f"call, unless the box above is ticked. The table's *timing* column says which time each "
                           f"row's latency is.")
            with right:
                st.markdown("**Agreement** (1 − word error rate between answers)")
                st.plotly_chart(agreement_figure(agreement), key="cmp_agreement")
            st.subheader("Attention summary")
            st.caption("Mean entropy of the attention rows (nats; lower = more focused heads) in the first and last "
                       "layer, and the share of last-layer attention on the first position (an 'attention sink'). "
                       "Speech and image models are summarised by their encoder.")
            st.dataframe(table[["model", *SUMMARY_COLUMNS]].round(3), hide_index=True, key="cmp_attention")
            st.plotly_chart(attention_profile_figure(profile), key="cmp_profile")
            with st.expander("Code to reproduce"):
                runs, source_code, repeated = last["code"]
                st.code(compare_code(runs, source_code, scored_against, repeated), language="python")
elif not picked:
    st.info("Choose at least one model.")
