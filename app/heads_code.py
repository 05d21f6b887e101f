"""The Python, on the core's and analysis' public API, that reproduces what the Heads page shows.

Researchers paste it into a notebook run from the repository root; a test executes it and
compares with the page. Values are written with ``repr`` so texts with quotes survive.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvalSource:
    """Where the page's evaluation sentences come from, as code."""
    labelled_csv: str | None        # e.g. "sample_data/sentiment.csv" for a classifier, else None
    split: str | None               # the labelled set's split used for scoring
    sentences_file: str | None      # e.g. "sample_data/sentences.txt" for language models and entropy
    n_examples: int
    batch_size: int = 16


def _data_lines(source: EvalSource, needs_loss: bool) -> list[str]:
    n = source.n_examples
    if source.labelled_csv:
        return [f"texts, labels = read_labelled_csv({source.labelled_csv!r}, split={source.split!r})",
                f"texts, labels = texts[:{n}], labels[:{n}]",
                f"data = make_eval_set(model, texts, labels, batch_size={source.batch_size})"]
    lines = [f"texts = [line.strip() for line in open({source.sentences_file!r}) if line.strip()][:{n}]"]
    if needs_loss:
        lines.append(f"data = make_eval_set(model, texts, batch_size={source.batch_size})  # the model's own LM loss")
    return lines


def heads_code(model_expression: str, source: EvalSource, method: str, params: dict, needs_loss: bool,
               text: object, mask: dict[int, list[int]], curve: dict | None = None) -> str:
    """Importance scores, the masking effect on one text, and (if shown) the pruning curve."""
    call_params = "".join(f", {k}={v!r}" for k, v in params.items())
    lines = [
        "from models import load_model",
        "from analysis.head_effect import masking_effect",
        "from analysis.head_importance import compute_head_importance",
        "from analysis.metrics import make_eval_set, read_labelled_csv",
    ]
    if curve:
        lines.append("from analysis.pruning_curve import compute_pruning_curve")
    lines += ["", f"model = {model_expression}", *_data_lines(source, needs_loss or bool(curve))]
    target = "data" if needs_loss else "texts"
    lines += [f"importance = compute_head_importance(model, {target}, {method!r}{call_params})",
              "importance.table()  # layers x heads, the heatmap; importance.to_frame() ranks them"]
    if mask:
        lines += [f"effect = masking_effect(model, {text!r}, {dict(mask)!r})",
                  "effect.prediction  # top outputs before and after masking",
                  "effect.attention_change  # (layers, heads) mean |change| of each head's attention",
                  f"pruned = model.prune_heads({dict(mask)!r})  # a new model; `model` is unchanged"]
    if curve:
        if source.labelled_csv:
            lines += [f"test_texts, test_labels = read_labelled_csv({source.labelled_csv!r}, split='test')",
                      f"held_out = make_eval_set(model, test_texts, test_labels, batch_size={source.batch_size})",
                      "curve = compute_pruning_curve(model, held_out, score_data=data"]
        else:
            lines.append("curve = compute_pruning_curve(model, data")
        lines[-1] += (f", method={curve['method']!r}, metric={curve['metric']!r}, "
                      f"step_fraction={curve['step_fraction']!r}, max_fraction={curve['max_fraction']!r})")
        lines.append("curve.table  # one row per step: heads pruned, loss, accuracy, parameters")
    return "\n".join(lines) + "\n"
