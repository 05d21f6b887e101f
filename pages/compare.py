"""Compare: several models or pipelines on one text, image or audio input, side by side with latency,
agreement between their answers, and a compact attention summary each; exportable as CSV."""
from __future__ import annotations

import streamlit as st

from analysis.compare import SUMMARY_COLUMNS, answer_agreement, attention_profile, comparison_table
from app.guard import shown_errors
from app.media_inputs import audio_input, image_input, source_key
from app.modal_plots import agreement_figure, attention_profile_figure, latency_figure
from app.model_cache import get_model
from app.model_kinds import pipeline_pairs, pipeline_tasks_for
from app.state import keep
from app.sidebar import example_sentences
from models.errors import WorkbenchError
from models.pipelines import pipeline

SEP = " · "  # an entry is "task · model name"

st.header("Compare")
st.caption("Run several models or pipelines on the same input. Results, latency, agreement and an attention "
           "summary per model; download the table as CSV.")

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
    source, label, digest = text, text[:40], text
else:
    picked_input = image_input("cmp") if kind == "image" else audio_input("cmp")
    source, label = picked_input if picked_input else (None, "")
    digest = source_key(source)

run = st.button("Compare", type="primary", key="cmp_run", disabled=not picked or source is None)
if run:
    results, errors = {}, {}
    progress = st.progress(0.0, text="Running…")
    for i, entry in enumerate(picked):
        task_name, model_name = entry.split(SEP, 1)
        try:
            pipe = pipeline(task_name, get_model(model_name))
            pipe(source)  # warm-up: the first call pays one-time costs (allocations, lazy imports)
            results[entry] = pipe(source)
        except WorkbenchError as error:
            errors[entry] = str(error)
        except Exception as error:  # one model failing must not take the comparison down
            errors[entry] = f"{type(error).__name__}: {error}"
        progress.progress((i + 1) / len(picked), text=f"{entry} done")
    progress.empty()
    # summarised once here, so reruns (a download, a widget) redraw from the table and the traces, which can
    # hold hundreds of megabytes of encoder attention, are not kept in the session
    profile = attention_profile(results)
    table = comparison_table(results, profile)
    table.insert(1, "input", label)
    st.session_state["cmp_last"] = {"kind": kind, "input": digest, "table": table, "profile": profile,
                                    "errors": errors}

last = st.session_state.get("cmp_last")
if last and last["kind"] == kind:
    with shown_errors("comparing"):
        for entry, message in last["errors"].items():
            st.error(f"{entry}: {message}")
        table, profile = last["table"], last["profile"]
        if len(table):
            st.subheader("Results")
            answers = table[[c for c in table.columns if c not in SUMMARY_COLUMNS]]
            # fixed widths, so a long generated text cannot push score and latency out of view: the model column
            # as wide as its longest "task · name" (about 7 px a character), so no name is cut short, and the
            # answer gives up what the model column takes
            model_width = max(210, 7 * int(table["model"].str.len().max()) + 16)
            answer_width = max(180, 330 - (model_width - 210))
            st.dataframe(answers.round(4), hide_index=True, key="cmp_table",
                         column_config={"model": st.column_config.TextColumn("model", width=model_width),
                                        "input": st.column_config.TextColumn("input", width=150),
                                        "answer": st.column_config.TextColumn("answer", width=answer_width),
                                        "score": st.column_config.NumberColumn("score", width=70, format="%.4f"),
                                        "latency_ms": st.column_config.NumberColumn("latency (ms)", width=90,
                                                                                    format="%.1f")})
            st.download_button("Download CSV", table.to_csv(index=False).encode(), "comparison.csv", "text/csv",
                               key="cmp_csv", help="Results and the attention summary, one row per model")
            left, right = st.columns(2)
            with left:
                st.markdown("**Latency** (one call, after a warm-up call)")
                st.plotly_chart(latency_figure(list(table["model"]), list(table["latency_ms"])), key="cmp_latency")
            with right:
                st.markdown("**Agreement** (1 − word error rate between answers)")
                agreement = answer_agreement(dict(zip(table["model"], table["answer"])))
                st.plotly_chart(agreement_figure(agreement), key="cmp_agreement")
            st.subheader("Attention summary")
            st.caption("Mean entropy of the attention rows (nats; lower = more focused heads) in the first and last "
                       "layer, and the share of last-layer attention on the first position (an 'attention sink'). "
                       "Speech and image models are summarised by their encoder.")
            st.dataframe(table[["model", *SUMMARY_COLUMNS]].round(3), hide_index=True, key="cmp_attention")
            st.plotly_chart(attention_profile_figure(profile), key="cmp_profile")
elif not picked:
    st.info("Choose at least one model.")
