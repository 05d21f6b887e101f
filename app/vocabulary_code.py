"""The Python, on the core's public API, that reproduces the Vocabulary and Task heads pages.

Values are written with ``repr`` so texts with quotes survive; tests execute the code and compare.
"""
from __future__ import annotations

from collections.abc import Sequence


def vocabulary_code(model_expression: str, tokens: Sequence[str], special: bool, init: str, seed: int,
                    text: str) -> str:
    return "\n".join([
        "from models import load_model",
        "from analysis.vocabulary import compare_tokenization, nearest_neighbours, prediction_change",
        "",
        f"model = {model_expression}",
        f"grown = model.add_tokens({list(tokens)!r}, special={special!r}, init={init!r}, seed={seed!r})",
        "print(grown.vocabulary_change.summary())",
        f"text = {text!r}",
        "change = compare_tokenization(model, grown, text)  # .before / .after tokens",
        "neighbours = nearest_neighbours(grown, grown.vocabulary_change.added, k=5)",
        "predictions = prediction_change(model, grown, text)",
        "grown.save_pretrained('grown-model/')  # transformers' AutoTokenizer and AutoModel load it",
    ]) + "\n"


def task_head_code(model_expression: str, task: str, labels: Sequence[str] | None) -> str:
    labels_arg = f", labels={list(labels)!r}" if labels else ""
    return "\n".join([
        "from models import load_model",
        "from models.task_heads import head_is_trained",
        "",
        f"model = {model_expression}.with_head({task!r}{labels_arg})",
        "print(model.task, model.labels, 'trained' if head_is_trained(model) else 'untrained')",
        "model.save_pretrained('with-head/')  # loads in transformers' AutoModelFor...",
    ]) + "\n"


def training_code(model_expression: str, task: str, data_path: str, trainable: Sequence[str], epochs: int,
                  learning_rate: float, seed: int, validation_from_train: bool) -> str:
    reader = "read_labelled_texts" if task == "sequence-classification" else "read_labelled_tokens"
    split = ("fit, validation = split_off(data.split('train'), 0.15, seed={seed!r})".format(seed=seed)
             if validation_from_train else "fit, validation = data.split('train'), data.split('validation')")
    return "\n".join([
        "from models import load_model",
        f"from models.labelled_data import {reader}, split_off",
        "from models.training import TrainingConfig, evaluate, train",
        "",
        f"data = {reader}({data_path!r})",
        split,
        f"model = {model_expression}.with_head({task!r}, labels=data.label_names)",
        f"config = TrainingConfig(epochs={epochs!r}, learning_rate={learning_rate!r}, trainable={tuple(trainable)!r}, "
        f"seed={seed!r})",
        "result = train(model, fit, validation, config)",
        "print(result.to_frame())",
        "print('held-out accuracy', evaluate(result.model, data.split('test')).accuracy)",
        "result.model.save_pretrained('trained/')",
    ]) + "\n"
