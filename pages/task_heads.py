"""Task heads page: put another head on the body, train it on a labelled CSV, download the result.

Thin on purpose: widgets -> `model.with_head`, `models.training.train` -> render. The new and the
trained models belong to this session; the shared model is never changed.
"""
from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
import streamlit as st

from app.guard import shown_errors
from app.long_run import long_run, show_cancelled
from app.page_setup import selected_model_or_stop
from app.model_cache import keep_session_model, model_recipe
from app.reproduce import task_head_code, training_code, with_head_recipe
from app.sidebar import example_sentences
from app.state import keep, keep_valid, session_memo
from app.training_plots import loss_curve
from models.labelled_data import read_labelled_texts, read_labelled_tokens, split_off
from models.task_heads import LABELLED_TASKS, available_heads, head_is_trained
from models.training import TRAINABLE_TASKS, TrainingConfig, evaluate, train

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = {"sequence-classification": ROOT / "sample_data" / "sentiment.csv",
           "token-classification": ROOT / "sample_data" / "ner.csv"}
TASK_TITLES = {"masked-lm": "masked language modelling", "causal-lm": "causal language modelling",
               "sequence-classification": "sequence classification", "token-classification": "token classification",
               "question-answering": "extractive question answering"}
PRESETS = {  # what to train -> TrainingConfig.trainable
    "head only": ("head",),
    "head + pooler": ("head", "pooler"),
    "last layer + pooler + head (how the embedded sentiment classifier was trained)": ("head", "pooler", "last_layer"),
    "last layer + head": ("head", "last_layer"),
    "everything (full fine-tuning)": ("all",),
}
LEARNING_RATES = [1e-5, 3e-5, 1e-4, 2e-4, 3e-4, 1e-3, 3e-3, 1e-2]


def zipped_folder(model, card_metrics: dict | None = None) -> bytes:
    """save_pretrained into a temporary folder (its README.md model card included), as the bytes of a zip of it."""
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder, **({"card_metrics": card_metrics} if card_metrics else {}))
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(folder).iterdir()):
                archive.write(path, arcname=path.name)
    return buffer.getvalue()


def training_metrics(kept: dict) -> dict:
    """What the model card states about the training run shown on this page."""
    result, held_out, data_name = kept["result"], kept["held_out"], kept["key"][3]
    metrics = {"held-out accuracy": f"{held_out.accuracy:.1%}" if held_out else "no test split"}
    if held_out:
        metrics["held-out examples"] = held_out.n
    metrics |= {"training data": data_name, "trained": kept["key"][5],
                "best epoch": f"{result.best_epoch} of {len(result.history)}",
                "trained parameters": f"{result.trained_parameters:,}"}
    return metrics


def read_data(task: str, upload):
    reader = read_labelled_texts if task == "sequence-classification" else read_labelled_tokens
    if upload is not None:
        return reader(io.BytesIO(upload.getvalue())), upload.name
    return reader(SAMPLES[task]), f"sample_data/{SAMPLES[task].name}"


def show_outputs(model, text: str) -> None:
    """The head's answer on one text, in the head's own terms."""
    trace = model.run(text)
    logits = trace.logits[0]
    if model.task == "sequence-classification":
        probs = logits.softmax(-1)
        frame = pd.DataFrame({"label": [model.labels.get(i, str(i)) for i in range(len(probs))],
                              "probability": probs.tolist()})
    elif model.task == "token-classification":
        best = logits.softmax(-1).max(-1)
        frame = pd.DataFrame({"token": trace.tokens[0], "label": [model.labels.get(int(i), str(int(i)))
                                                                  for i in best.indices],
                              "probability": best.values.tolist()})
    elif model.task == "question-answering":
        frame = pd.DataFrame({"token": trace.tokens[0], "start score": logits[:, 0].tolist(),
                              "end score": logits[:, 1].tolist()})
    else:  # language models: the top tokens at the first mask (masked LM) or after the text (causal LM)
        where, column = len(trace.tokens[0]) - 1, "next token"
        if model.task == "masked-lm":
            mask = model.tokenizer.special.get("mask_token", "[MASK]")
            if mask not in trace.tokens[0]:
                st.caption(f"Put {mask} in the text to see what the masked-LM head predicts there.")
                return
            where, column = trace.tokens[0].index(mask), f"at {mask}"
        probs = logits[where].softmax(-1)
        top = probs.topk(min(5, len(probs)))
        frame = pd.DataFrame({column: [model.tokenizer.id_to_token(int(i)) for i in top.indices],
                              "probability": top.values.tolist()})
    st.dataframe(frame, hide_index=True, key="heads_outputs")


st.header("Task heads")
name, model = selected_model_or_stop()
tasks = available_heads(model.family)
if not tasks:
    st.info(f"No task heads are registered for the {model.family} family yet.")
    st.stop()
status = head_is_trained(model)
st.caption(f"{name}: {model.family} body, {model.n_layers} layers; head: "
           + (f"{model.task} ({'trained' if status else 'untrained'})" if model.task else "none"))

# ------------------------------------------------------------------ 1. swap
st.subheader("1 · Put a head on the body")
# a body without a head starts on the classifier, the head this page can also train
own_head = model.task if model.task in tasks else next((t for t in tasks if t in TRAINABLE_TASKS), tasks[0])
if st.session_state.get("heads_model") != name:  # another model: start from its own head
    st.session_state["heads_model"], st.session_state["heads_task"] = name, own_head
keep_valid("heads_task", tasks, own_head)
task = st.selectbox("Head", tasks, **keep("heads_task"), format_func=lambda t: f"{t} — {TASK_TITLES.get(t, t)}")
labels = None
if task in LABELLED_TASKS:
    raw = st.text_input("Labels, separated by commas (empty: keep the checkpoint's, or LABEL_0, LABEL_1)",
                        **keep("heads_labels"))
    labels = [part.strip() for part in raw.split(",")] if raw.strip() else None
is_text = model.modality == "text"
text = st.text_input("Text to try the head on", example_sentences()[0], **keep("heads_text")) if is_text else None

swapped = None
with shown_errors("swapping the head"):
    swapped = session_memo("heads_swapped", (name, id(model), task, tuple(labels or ())),
                           lambda: model.with_head(task, labels=labels), max_entries=1)
if swapped is None:
    st.stop()
trained_flag = head_is_trained(swapped)
kept = st.session_state.get("heads_result")  # a head trained below, on this body and task, is what this section shows
trained_here = kept["result"] if kept and kept["key"][:3] == (name, id(model), task) else None
head_parameters = sum(p.numel() for p in swapped.network.head.parameters()
                      if p is not swapped.network.embed.word.weight)
left, middle, right = st.columns(3)
left.metric("Head", swapped.task)
middle.metric("Head parameters", f"{head_parameters:,}")
right.metric("Status", "trained" if trained_flag or trained_here else "untrained",
             help="Trained below, in this session." if trained_here and not trained_flag else None)
if trained_here is not None:
    st.caption(f"Trained below in {trained_here.seconds:.1f} s: the outputs here are the trained head's.")
elif not trained_flag:
    st.warning("This head starts from random weights (as transformers initialises them): its outputs mean nothing "
               "until it is trained below.")
if is_text:
    with shown_errors("running both models"):
        before, after = model.run(text), swapped.run(text)
        drift = max(float((a - b).abs().max()) for a, b in zip(before.hidden_states, after.hidden_states))
        st.caption(f"The body is unchanged: the largest difference in any hidden state is {drift:g}.")
        show_outputs(trained_here.model if trained_here is not None else swapped, text)
else:
    st.caption(f"{name} reads {model.modality}: keep this model for the session and try it on the Images & audio page.")
st.button("Keep this model for the session", key="heads_keep_swapped", on_click=keep_session_model,
          args=(f"{name} + {task} head", swapped, with_head_recipe(model_recipe(name), task, labels)))
with st.expander("Code to reproduce"):
    st.code(task_head_code(model_recipe(name), task, labels), language="python")

# ------------------------------------------------------------------ 2. train
st.subheader("2 · Train it")
if task not in TRAINABLE_TASKS:
    st.info(f"Training here covers {' and '.join(TRAINABLE_TASKS)} heads, from a labelled CSV.")
else:
    layout = "text,label,split" if task == "sequence-classification" else "tokens,tags,split (space-separated)"
    upload = st.file_uploader(f"A CSV with columns {layout}; empty: the sample set", type=["csv"], key="heads_upload")
    presets = [p for p, groups in PRESETS.items()
               if "pooler" not in groups or swapped.network.pooler is not None]
    keep_valid("heads_trainable", presets, presets[2] if len(presets) > 2 else presets[0])
    preset = st.selectbox("What to train", presets, **keep("heads_trainable"))
    c1, c2, c3 = st.columns(3)
    # defaults: the recipe that trained minilm-sentiment (bench/train_sentiment.py)
    epochs = int(c1.number_input("Epochs", 1, 50, 10, **keep("heads_epochs")))
    keep_valid("heads_lr", LEARNING_RATES, 2e-4)
    learning_rate = c2.select_slider("Learning rate", LEARNING_RATES, **keep("heads_lr"))
    seed = int(c3.number_input("Seed", 0, 10_000, 0, **keep("heads_seed")))

    data = None
    with shown_errors("reading the data"):
        data, data_name = read_data(task, upload)
    if data is not None:
        counts = {s: sum(1 for x in data.splits if x == s) for s in ("train", "validation", "test")}
        st.caption(f"{data_name}: {counts['train']} train, {counts['validation']} validation, {counts['test']} test "
                   f"examples; labels {', '.join(data.label_names)}. Early stopping watches the validation split "
                   "(15% of train when the file has none); the test split is scored once, at the end.")
        run_key = (name, id(model), task, data_name, len(data), preset, epochs, learning_rate, seed)
        clicked = st.button("Train", key="heads_train", type="primary")
        training = st.container()  # drawn every run: the status, then the live loss, in one place
        if clicked:
            with shown_errors("training"), long_run(f"training the {task} head: {epochs} epochs, {preset}",
                                                    "heads_training", container=training) as progress:
                base = model.with_head(task, labels=data.label_names)
                has_validation = counts["validation"] > 0
                fit, validation = ((data.split("train"), data.split("validation")) if has_validation
                                   else split_off(data.split("train"), 0.15, seed=seed))
                config = TrainingConfig(epochs=epochs, learning_rate=learning_rate, trainable=PRESETS[preset],
                                        seed=seed)
                progress(0.0, "computing the frozen layers once")
                live = training.empty()
                losses: list[float] = []

                def on_progress(p):
                    if p.epoch_result is None:  # a step (epoch ends report their mean loss again)
                        losses.append(p.loss)
                    progress(p.step / p.total_steps, f"epoch {p.epoch}, step {p.step}/{p.total_steps}, loss {p.loss:.3f}")
                    if p.epoch_result is not None or p.step % 5 == 0:
                        live.line_chart(pd.DataFrame({"train loss": losses}), height=220)

                result = train(base, fit, validation, config, callback=on_progress)
                progress(1.0, "scoring the test split")
                held_out = evaluate(result.model, data.split("test")) if counts["test"] else None
                live.empty()
                st.session_state["heads_result"] = {
                    "key": run_key, "result": result, "held_out": held_out,
                    "steps_per_epoch": -(-len(fit) // config.batch_size),
                    "code": training_code(model_recipe(name), task, str(SAMPLES[task].relative_to(ROOT))
                                          if upload is None else data_name, config.trainable, epochs,
                                          learning_rate, seed, not has_validation)}
                st.rerun()  # redraw from the top: section 1 now shows the trained head, not "untrained"
        else:
            show_cancelled("heads_training", training)
        kept = st.session_state.get("heads_result")
        if kept and kept["key"] == run_key:
            result, held_out = kept["result"], kept["held_out"]
            a, b, c = st.columns(3)
            a.metric("Held-out accuracy", f"{held_out.accuracy:.1%}" if held_out else "no test split")
            b.metric("Best epoch", f"{result.best_epoch} of {len(result.history)}")
            c.metric("Trained parameters", f"{result.trained_parameters:,}")
            history = result.to_frame()
            st.plotly_chart(loss_curve(result.step_losses, history, kept["steps_per_epoch"]), key="heads_loss_curve")
            st.dataframe(history, hide_index=True, key="heads_history")
            st.caption(f"Trained in {result.seconds:.1f} s" + (" (stopped early)" if result.stopped_early else ""))
            st.button("Keep the trained model for the session", key="heads_keep_trained", on_click=keep_session_model,
                      args=(f"{name} + {task} (trained)", result.model, None))  # its code is below, not one expression
            with st.expander("Code to reproduce"):
                st.code(kept["code"], language="python")

# ------------------------------------------------------------------ 3. save
st.subheader("3 · Save in Hugging Face format")
kept = st.session_state.get("heads_result")
trained_here = bool(kept) and kept["key"][:3] == (name, id(model), task)
to_save = kept["result"].model if trained_here else swapped
architecture = to_save.family_record.head(to_save.task).architecture_for(to_save.config)
st.caption(f"Saves {'the trained' if to_save is not swapped else 'this'} model: config.json (architectures "
           f"{architecture}" + (", id2label" if to_save.labels else "") + "), model.safetensors, the tokenizer and a "
           "README.md model card (what was changed" + (", the held-out accuracy" if trained_here else "") + "); "
           "transformers' AutoModelFor… loads it.")
if st.button("Prepare the download", key="heads_prepare"):
    with shown_errors("saving"):
        card_metrics = training_metrics(kept) if trained_here else None
        st.session_state["heads_zip"] = (id(to_save), zipped_folder(to_save, card_metrics))
prepared = st.session_state.get("heads_zip")
if prepared and prepared[0] == id(to_save):
    st.download_button("Download the model (.zip)", prepared[1], file_name=f"{name}-{task}.zip".replace("/", "_"),
                       mime="application/zip", key="heads_download")
