"""Datasets page: a sweep over a whole dataset (evaluate, head importance, pruning curve, attribution), or a
result the command line wrote.

Thin: widgets -> `analysis.sweeps` (the same functions `workbench sweep ...` runs) -> plot builders
(`app.dataset_plots`, `app.head_plots`, `app.plots`). A run shows its progress and a Cancel button;
finished shards are kept on disk (content-addressed), so Run after Cancel resumes where it stopped.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import streamlit as st

from analysis.sweeps import (AttributionSweep, ColumnMap, EvaluateSweep, HeadImportanceSweep, LocalExecutor,
                             PruningCurveSpec, RayExecutor, SweepCancelled, agreement_matrix, importance_from_result,
                             read_dataset, read_result, read_uploaded, run_sweep, sweep_pruning_curve)
from analysis.sweeps.data import ROLES, detect_format, read_table
from analysis.attribution import METHODS as ATTRIBUTION_METHODS
from app.dataset_plots import pruning_curve_with_baseline, slice_bars, token_bars
from app.exports import frame_csv
from app.guard import shown_errors
from app.head_plots import importance_heatmap
from app.model_cache import get_model
from app.plots import matrix_heatmap
from app.sidebar import HUB, LOCAL, model_choices, selected_model_name

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_data"
SUFFIXES = (".csv", ".jsonl", ".parquet", ".txt")
NONE = "—"
SWEEPS = {"evaluate": "Evaluate (metrics, slices, agreement)", "head-importance": "Head importance (Michel et al.)",
          "pruning-curve": "Pruning curve (with random baseline)", "attribution": "Attribution per token"}
METRIC_ORDER = ["accuracy", "macro_f1", "perplexity", "wer", "exact_match"]
TEXT_METHODS = [k for k, m in ATTRIBUTION_METHODS.items() if "text" in m.modalities and k != "integrated_gradients"]


def parts_folder() -> Path:
    """Where finished shards wait (shared by sessions: the folder name is a hash of everything that decides them)."""
    return Path(os.environ.get("WORKBENCH_SWEEP_PARTS") or Path(tempfile.gettempdir()) / "transformer-workbench-sweeps")


def sample_files() -> list[str]:
    return sorted(str(p.relative_to(SAMPLES)) for p in SAMPLES.rglob("*")
                  if p.suffix in SUFFIXES and p.is_file() and "formats" not in p.parts)


def request_cancel() -> None:
    """Cancel's callback: the click itself stops the running script (Streamlit reruns); this leaves a note."""
    st.session_state["ds_cancelled"] = True


def show_result(result) -> None:
    meta = result.meta
    st.caption(f"{result.kind} on {meta.get('n_rows')} rows of {meta.get('data')} · models "
               f"{', '.join(meta.get('models', []))} · executor {meta.get('executor')}"
               + (f" ({meta['workers']} workers)" if meta.get("executor") == "ray" else "")
               + (f" · {meta['computed_shards']} shards computed, {meta['reused_shards']} reused"
                  if meta.get("reused_shards") else "")
               + (f" · {meta['seconds']:.1f} s" if "seconds" in meta else ""))
    if result.kind == "evaluate":
        metrics = result["metrics"].dropna(axis=1, how="all")
        st.subheader("Metrics")
        st.dataframe(metrics, hide_index=True, key="ds_metrics_table")
        slices = result["slices"]
        shown = [m for m in METRIC_ORDER if m in slices and slices[m].notna().any()]
        if len(slices) and shown:
            st.subheader("Slices")
            left, right = st.columns(2)
            column = left.selectbox("Slice by", list(dict.fromkeys(slices["slice"])), key="ds_slice_view")
            metric = right.selectbox("Metric", shown, key="ds_slice_metric")
            st.plotly_chart(slice_bars(slices, column, metric), key="ds_slice_chart")
            st.dataframe(slices[slices["slice"] == column].dropna(axis=1, how="all"), hide_index=True)
        agreement = result["agreement"]
        if len(agreement):
            st.subheader("Agreement")
            matrix = agreement_matrix(agreement)
            st.plotly_chart(matrix_heatmap(matrix.values, list(matrix.columns), list(matrix.index),
                                           title="Share of examples with the same answer", zmin=0, zmax=1,
                                           value_name="agreement"), key="ds_agreement_chart")
        elif len(result["metrics"]) > 1:
            st.caption("No agreement matrix: these models give no per-example answer to compare (language models "
                       "are scored by perplexity).")
    elif result.kind == "head-importance":
        importance = importance_from_result(result)
        st.plotly_chart(importance_heatmap(importance.scores.numpy(), "Gradient importance per head, over the dataset",
                                           "importance"), key="ds_heads_chart")
        st.dataframe(result["head_importance"], hide_index=True)
    elif result.kind == "pruning-curve":
        metric = st.radio("Metric", ["loss", "accuracy"], key="ds_curve_metric", horizontal=True)
        st.plotly_chart(pruning_curve_with_baseline(result["curve"], result["random_spread"], metric), key="ds_curve_chart")
        st.dataframe(result["curve"], hide_index=True)
    elif result.kind == "attribution":
        summary = result["summary"].iloc[0]
        st.caption(f"{ATTRIBUTION_METHODS[summary['method']].label} of the {summary['target']}, "
                   f"{summary['n_tokens']} tokens in {summary['n_examples']} examples.")
        st.plotly_chart(token_bars(result["tokens"]), key="ds_tokens_chart")
        st.dataframe(result["tokens"], hide_index=True)
    st.subheader("Export")
    columns = st.columns(max(1, len(result.sections)))
    for slot, (name, frame) in zip(columns, result.sections.items()):
        slot.download_button(f"{name}.csv", frame_csv(frame), file_name=f"{result.kind}-{name}.csv",
                             mime="text/csv", key=f"ds_csv_{name}")


def code_lines(kind: str, data_label: str, columns: ColumnMap, names: list[str], out: str) -> str:
    flags = " ".join(f"--{role}-column {column}" for role, column in columns.mapped().items())
    models_flag = f"--models {','.join(names)}" if kind == "evaluate" else f"--model {names[0]}"
    return f"workbench sweep {kind} {models_flag} --data {data_label} {flags} --executor local --out {out}"


st.header("Datasets")
st.caption("Run a sweep over a whole dataset, shard by shard, or open a result that `workbench sweep ... --out` wrote. "
           "Only aggregates are kept: counts, sums and tables per model, slice, head or token.")
source = st.radio("Data", ["Sample file", "Upload a file", "Open a result"], key="ds_source", horizontal=True)

# ---------------------------------------------------------------- open a result written by the command line
if source == "Open a result":
    uploaded = st.file_uploader("A Parquet result of `workbench sweep`", type=["parquet"], key="ds_result_file")
    path = st.text_input("… or its path on this machine", key="ds_result_path")
    opened = None
    with shown_errors("opening the result"):
        if uploaded is not None:
            target = Path(tempfile.gettempdir()) / f"workbench-upload-{os.getpid()}-{uploaded.file_id}.parquet"
            target.write_bytes(uploaded.getvalue())
            opened = read_result(target)
        elif path.strip():
            opened = read_result(Path(path.strip()).expanduser())
    if opened is not None:
        show_result(opened)
    st.stop()

# ---------------------------------------------------------------- the data and its columns
data = None
with shown_errors("reading the data"):
    if source == "Sample file":
        files = sample_files()
        chosen = st.selectbox("Sample file", files, key="ds_sample",
                              index=files.index("sentiment.csv") if "sentiment.csv" in files else 0)
        frame, _, label = read_table(SAMPLES / chosen)
    else:
        upload = st.file_uploader("A .csv, .jsonl, .parquet or .txt file", type=[s.strip(".") for s in SUFFIXES],
                                  key="ds_upload")
        if upload is None:
            st.info("Upload a file; image and audio paths in it are read relative to the folder the app runs in.")
            st.stop()
        frame, _, label = read_table(io.BytesIO(upload.getvalue()), detect_format(upload), name=upload.name)
    columns = list(map(str, frame.columns))
    st.caption(f"{label}: {len(frame)} rows; columns {', '.join(columns)}. Map each role to a column:")
    guess = ColumnMap.guess(frame).mapped()
    slots = st.columns(len(ROLES))
    chosen_roles = {}
    for slot, role in zip(slots, ROLES):
        key = f"ds_col_{role}_{label}"  # per file: a mapping for one file never leaks into another
        options = [NONE] + columns
        default = guess.get(role, NONE)
        chosen_roles[role] = slot.selectbox(role, options, index=options.index(default), key=key)
    mapping = ColumnMap(**{role: (None if c == NONE else c) for role, c in chosen_roles.items()})
    if source == "Sample file":
        data = read_dataset(SAMPLES / chosen, mapping)
    else:
        data = read_uploaded(upload.getvalue(), upload.name, mapping)
if data is None:
    st.stop()
with st.expander(f"The first rows of {data.source}"):
    st.dataframe(data.frame.head(20), hide_index=True)

# ---------------------------------------------------------------- the sweep
left, right = st.columns([2, 3])
kind = left.selectbox("Sweep", list(SWEEPS), format_func=SWEEPS.get, key="ds_sweep")
sidebar_model = selected_model_name()
offered = [n for n in model_choices() if n not in (LOCAL, HUB)]
if sidebar_model and sidebar_model not in offered:
    offered.append(sidebar_model)
if kind == "evaluate":
    names = right.multiselect("Models", offered, default=[sidebar_model] if sidebar_model in offered else [],
                              key="ds_models")
else:
    names = [sidebar_model] if sidebar_model else []
    right.caption(f"Model: **{sidebar_model or 'choose one in the sidebar'}** (the sidebar's).")
n_rows = st.slider("Rows", 1, len(data), min(len(data), 128), key="ds_rows")
options = st.columns(3)
params: dict = {}
if kind == "evaluate":
    candidates = (["label"] if data.columns.label else []) + (["length"] if data.columns.text or data.columns.reference else []) \
        + [c for c in map(str, data.frame.columns) if c not in data.columns.mapped().values()]
    params["slices"] = tuple(options[0].multiselect("Slices", candidates, default=candidates[:1], key="ds_slices"))
elif kind == "pruning-curve":
    params["step_fraction"] = options[0].select_slider("Heads per step", [0.05, 0.1, 0.2, 0.25], value=0.1,
                                                       key="ds_step", format_func=lambda f: f"{f:.0%}")
    params["seeds"] = tuple(range(options[1].number_input("Random-order seeds", 1, 10, 3, key="ds_seeds")))
elif kind == "attribution":
    params["method"] = options[0].selectbox("Method", TEXT_METHODS, key="ds_method",
                                            format_func=lambda k: ATTRIBUTION_METHODS[k].label)
    params["target"] = options[1].radio("Explain", ["prediction", "label"], key="ds_target", horizontal=True)
executor_name = options[2].radio("Executor", ["local", "ray"], key="ds_executor", horizontal=True)
workers, address = 2, None
if executor_name == "ray":
    workers = int(st.number_input("Ray workers", 1, 64, 2, key="ds_workers"))
    address = st.text_input("Ray address (empty: start a local Ray)", key="ds_address").strip() or None
    st.caption("Each Ray worker loads the models by name or folder: embedded names and folders work, models made "
               "in this session (pruned copies, new heads) do not.")
shard_size = 32

if st.session_state.pop("ds_cancelled", False):
    st.warning("Cancelled. The shards finished so far are kept: Run resumes from them.")

subset = data.head(n_rows)
if st.button("Run", key="ds_run", type="primary", disabled=not names):
    bar = st.progress(0.0, text="starting")
    cancel_slot = st.empty()
    cancel_slot.button("Cancel", key="ds_cancel", on_click=request_cancel)
    report = lambda fraction, message: bar.progress(min(max(fraction, 0.0), 1.0), text=message)
    with shown_errors(f"running {kind}"):
        executor = (LocalExecutor(loader=get_model) if executor_name == "local"
                    else RayExecutor(workers=workers, address=address))
        try:
            common = dict(executor=executor, shard_size=shard_size, parts_dir=parts_folder(), progress=report)
            if kind == "pruning-curve":
                result = sweep_pruning_curve(PruningCurveSpec(model=names[0], **params), subset, **common)
            else:
                sweep = {"evaluate": lambda: EvaluateSweep(models=tuple(names), **params),
                         "head-importance": lambda: HeadImportanceSweep(model=names[0]),
                         "attribution": lambda: AttributionSweep(model=names[0], **params)}[kind]()
                result = run_sweep(sweep, subset, **common)
            st.session_state["ds_result"] = result
        finally:
            executor.close()
    bar.empty()
    cancel_slot.empty()

result = st.session_state.get("ds_result")
if result is not None:
    show_result(result)
    with st.expander("The same sweep from a terminal"):
        st.code(code_lines(result.kind, f"sample_data/{chosen}" if source == "Sample file" else data.source,
                           data.columns, list(result.meta.get("models", [])), f"{result.kind}.parquet"), language="bash")
