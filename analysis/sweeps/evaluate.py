"""Evaluate models on a dataset: one metric family per kind of model, slices, and agreement between models.

- classifiers (text, image or audio): accuracy and macro-F1 over the gold labels;
- causal language models: perplexity, exp(total negative log-likelihood / scored tokens), over the
  text; and, when a reference column is mapped, exact match of the greedy continuation;
- masked language models: the same over `mask_fraction` of the tokens, masked with a seed per shard;
- speech recognition: corpus word error rate against the reference transcripts
  (word edits / reference words, after lower-casing and dropping punctuation);
- text-to-text models (an encoder-decoder on text): exact match against the reference.

Partials are counts and sums per (model, slice, value): a confusion table, NLL and token sums,
word edits, matches; agreement counts per pair of models. Nothing per example leaves a shard.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Callable

import pandas as pd
import torch

from models.errors import InputError

from ..compare import _edit_distance, _words
from ..metrics import batch_scores, make_eval_set
from .base import Partial, Sweep, add_up, check_labels, label_lookup, require
from .data import LENGTH_BUCKETS, Dataset, Shard, slice_values
from .executors import ModelFacts, WorkerModels

ALL = "all"  # the slice column and value of the whole dataset
METRIC_COLUMNS = ["accuracy", "macro_f1", "perplexity", "loss", "tokens", "wer", "exact_match"]


# ---------------------------------------------------------------- pure metrics

def normalize_answer(text: str) -> str:
    """Lower case, punctuation dropped, spaces collapsed: what exact match and WER compare."""
    return " ".join(_words(str(text)))


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edits from reference to hypothesis, reference words), on normalised words."""
    ref, hyp = _words(str(reference)), _words(str(hypothesis))
    return _edit_distance(ref, hyp), len(ref)


def classification_metrics(confusion: pd.DataFrame) -> tuple[float, float]:
    """(accuracy, macro-F1) from rows (true, pred, count); classes are those seen as truth or prediction,
    as scikit-learn's f1_score(average="macro") takes them."""
    total = confusion["count"].sum()
    if total == 0:
        return math.nan, math.nan
    correct = confusion.loc[confusion["true"] == confusion["pred"], "count"].sum()
    classes = sorted(set(confusion["true"]) | set(confusion["pred"]))
    scores = []
    for c in classes:
        tp = confusion.loc[(confusion["true"] == c) & (confusion["pred"] == c), "count"].sum()
        fp = confusion.loc[(confusion["true"] != c) & (confusion["pred"] == c), "count"].sum()
        fn = confusion.loc[(confusion["true"] == c) & (confusion["pred"] != c), "count"].sum()
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(correct / total), float(sum(scores) / len(scores))


# ---------------------------------------------------------------- kinds of model

@dataclass(frozen=True)
class EvalKind:
    key: str
    needs: tuple[str, ...]                              # roles the dataset must map
    metrics: tuple[str, ...]
    applies: Callable[[ModelFacts], bool]
    answers: bool                                       # produces an answer per example (for agreement)


def _is_classifier(f: ModelFacts) -> bool:
    return f.task in ("sequence-classification", "image-classification", "audio-classification")


KINDS: dict[str, EvalKind] = {k.key: k for k in [
    EvalKind("classification", ("label",), ("accuracy", "macro_f1"), _is_classifier, True),
    EvalKind("causal-lm", ("text",), ("perplexity", "loss", "tokens"), lambda f: f.task == "causal-lm", False),
    EvalKind("masked-lm", ("text",), ("perplexity", "loss", "tokens"), lambda f: f.task == "masked-lm", False),
    EvalKind("speech", ("audio", "reference"), ("wer",),
             lambda f: f.task in ("automatic-speech-recognition", "ctc"), True),
    EvalKind("text-to-text", ("text", "reference"), ("exact_match",),
             lambda f: f.modality == "text" and f.can_generate and f.task not in ("causal-lm",), True),
]}


def kind_of(facts: ModelFacts) -> EvalKind:
    for kind in KINDS.values():
        if kind.applies(facts):
            return kind
    raise InputError(f"{facts.name} ({facts.task or 'no task head'}) has nothing to be evaluated with here: "
                     "evaluation covers classifiers, causal and masked language models, speech recognition "
                     "and text-to-text models.")


# ---------------------------------------------------------------- the sweep

@dataclass(frozen=True)
class EvaluateSweep(Sweep):
    models: tuple[str, ...]
    slices: tuple[str, ...] = ()            # "label", "length" or any column name
    batch_size: int = 16
    max_length: int = 128
    max_new_tokens: int = 32                # greedy continuation, for exact match of a causal LM
    mask_fraction: float = 0.15             # masked LMs
    seed: int = 0
    length_buckets: tuple[int, ...] = LENGTH_BUCKETS
    kind = "evaluate"
    label = "evaluate"

    def __post_init__(self) -> None:
        names = tuple(self.models) if not isinstance(self.models, str) else (self.models,)
        if not names:
            raise InputError("Evaluate at least one model.")
        if len(set(names)) != len(names):
            raise InputError(f"A model is named twice: {', '.join(names)}.")
        object.__setattr__(self, "models", names)
        object.__setattr__(self, "slices", tuple(dict.fromkeys(self.slices)))

    def model_names(self) -> tuple[str, ...]:
        return self.models

    def check(self, data: Dataset, facts: dict[str, ModelFacts]) -> None:
        for name in self.models:
            kind = kind_of(facts[name])
            roles = kind.needs
            if kind.key == "classification":
                roles = (*roles, {"text": "text", "image": "image", "audio": "audio"}[facts[name].modality])
            require(data, roles, f"Evaluating {name} ({kind.key})")
            if kind.key == "classification":
                check_labels(data, facts[name])
        for spec in self.slices:
            slice_values(data.frame.head(1), data.columns, spec, self.length_buckets, data.source)

    # -------------------------------------------------------------- per shard
    def run_shard(self, models: WorkerModels, shard: Shard) -> Partial:
        groups = {ALL: pd.Series([ALL] * len(shard))}
        for spec in self.slices:
            groups[spec] = slice_values(shard.frame, shard.columns, spec, self.length_buckets).reset_index(drop=True)
        confusion, sums, answers = [], [], {}
        for name in self.models:
            model = models.get(name)
            facts = ModelFacts.of(name, model)
            kind = kind_of(facts)
            outcome = RUNNERS[kind.key](self, model, facts, shard)  # per example, this shard only
            if "answer" in outcome:
                answers[name] = outcome["answer"]
            for spec, values in groups.items():
                frame = outcome.assign(slice=spec, value=values.values, model=name)
                if kind.key == "classification":
                    counts = frame.groupby(["model", "slice", "value", "true", "pred"]).size().rename("count").reset_index()
                    confusion.append(counts)
                stats = frame.groupby(["model", "slice", "value"])[[c for c in SUM_COLUMNS if c in frame]].sum()
                sums.append(stats.assign(examples=frame.groupby(["model", "slice", "value"]).size()).reset_index())
        partial = {"sums": _fill(pd.concat(sums, ignore_index=True), SUM_COLUMNS + ["examples"])}
        if confusion:
            partial["confusion"] = pd.concat(confusion, ignore_index=True)
        partial["agreement"] = _agreement_counts(answers)
        return partial

    # -------------------------------------------------------------- all shards
    def reduce(self, partials: list[Partial], data: Dataset, facts: dict[str, ModelFacts]) -> dict[str, pd.DataFrame]:
        keys = ["model", "slice", "value"]
        sums = add_up(partials, "sums", keys)
        confusion = add_up(partials, "confusion", keys + ["true", "pred"], ["count"])
        rows = []
        for _, row in sums.iterrows():
            kind = kind_of(facts[row["model"]])
            out = {"model": row["model"], "kind": kind.key, "slice": row["slice"], "value": row["value"],
                   "n_examples": int(row["examples"]), **{m: math.nan for m in METRIC_COLUMNS}}
            if kind.key == "classification":
                mine = confusion[(confusion["model"] == row["model"]) & (confusion["slice"] == row["slice"])
                                 & (confusion["value"] == row["value"])]
                out["accuracy"], out["macro_f1"] = classification_metrics(mine)
            elif kind.key in ("causal-lm", "masked-lm"):
                out["tokens"] = float(row["tokens"])
                out["loss"] = float(row["nll"] / row["tokens"]) if row["tokens"] else math.nan
                out["perplexity"] = math.exp(out["loss"]) if row["tokens"] else math.nan
                if row["references"]:
                    out["exact_match"] = float(row["matches"] / row["references"])
            elif kind.key == "speech":
                out["wer"] = float(row["word_errors"] / row["reference_words"]) if row["reference_words"] else math.nan
            else:
                out["exact_match"] = float(row["matches"] / row["references"]) if row["references"] else math.nan
            rows.append(out)
        table = pd.DataFrame(rows, columns=["model", "kind", "slice", "value", "n_examples", *METRIC_COLUMNS])
        order = {name: i for i, name in enumerate(self.models)}
        table = table.sort_values(["slice", "value"], key=lambda s: s.map(lambda v: (v != ALL, v)), kind="stable")
        table = table.sort_values("model", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
        overall = table[table["slice"] == ALL].drop(columns=["slice", "value"]).reset_index(drop=True)
        slices = table[table["slice"] != ALL].reset_index(drop=True)
        agreement = _agreement_table(add_up(partials, "agreement", ["model_a", "model_b"]), self.models)
        return {"metrics": overall, "slices": slices, "agreement": agreement,
                "confusion": confusion[confusion["slice"] == ALL].drop(columns=["slice", "value"]).reset_index(drop=True)}


SUM_COLUMNS = ["nll", "tokens", "matches", "references", "word_errors", "reference_words"]


def _fill(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    for column in columns:
        if column not in frame:
            frame[column] = 0
    frame[columns] = frame[columns].fillna(0)
    frame["nll"] = frame["nll"].astype("float64")
    for column in columns:
        if column != "nll":
            frame[column] = frame[column].astype("int64")
    return frame


# ---------------------------------------------------------------- per kind: one row per example of the shard

def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _text_inputs(shard: Shard) -> list:
    texts = [str(t) for t in shard.values("text")]
    if shard.has("pair"):
        return list(zip(texts, [str(p) for p in shard.values("pair")]))
    return texts


@torch.inference_mode()
def _run_classifier(sweep: EvaluateSweep, model: Any, facts: ModelFacts, shard: Shard) -> pd.DataFrame:
    lookup = label_lookup(facts)
    names = facts.labels
    preds: list[str] = []
    if facts.modality == "text":
        for batch in _batches(_text_inputs(shard), sweep.batch_size):
            enc = model.encode(batch, max_length=sweep.max_length)
            out = model.forward(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                                token_type_ids=enc.token_type_ids, capture=False)
            preds += [names.get(int(i), str(int(i))) for i in out.logits.argmax(-1)]
    else:
        role = facts.modality
        for batch in _batches(shard.values(role), sweep.batch_size):
            trace = model.run(**{"images" if role == "image" else "audio": list(batch)}, capture=False)
            preds += [names.get(int(i), str(int(i))) for i in trace.logits.argmax(-1)]
    true = [lookup[str(v)] for v in shard.values("label")]
    return pd.DataFrame({"true": true, "pred": preds, "answer": preds})


@torch.inference_mode()
def _run_language_model(sweep: EvaluateSweep, model: Any, facts: ModelFacts, shard: Shard) -> pd.DataFrame:
    texts = [str(t) for t in shard.values("text")]
    data = make_eval_set(model, texts, batch_size=sweep.batch_size, max_length=sweep.max_length,
                         mask_fraction=sweep.mask_fraction, seed=sweep.seed + shard.index)
    nll, tokens = [], []
    for batch in data.batches:
        scores = batch_scores(model, batch)
        nll += (scores.loss.double() * scores.scored.double()).tolist()  # per example: sum over its scored tokens
        tokens += scores.scored.long().tolist()
    frame = pd.DataFrame({"nll": nll, "tokens": tokens})
    if shard.has("reference") and facts.can_generate:
        answers = []
        for text in texts:
            new = model.generate(text, max_new_tokens=sweep.max_new_tokens)
            answers.append(model.tokenizer.decode(new) if model.tokenizer else "")
        refs = [str(r) for r in shard.values("reference")]
        frame["answer"] = answers
        frame["matches"] = [int(_continuation_matches(a, r)) for a, r in zip(answers, refs)]
        frame["references"] = 1
    return frame


def _continuation_matches(generated: str, reference: str) -> bool:
    """A causal LM matches when its continuation starts with the reference (it may go on after it)."""
    got, want = normalize_answer(generated), normalize_answer(reference)
    return got == want or got.startswith(want + " ")


def _run_speech(sweep: EvaluateSweep, model: Any, facts: ModelFacts, shard: Shard) -> pd.DataFrame:
    from models import pipeline
    recognise = pipeline("automatic-speech-recognition", model=model)
    answers = [recognise(str(path))["text"] for path in shard.values("audio")]
    counts = [word_errors(ref, hyp) for ref, hyp in zip(shard.values("reference"), answers)]
    return pd.DataFrame({"answer": answers, "word_errors": [c[0] for c in counts],
                         "reference_words": [c[1] for c in counts]})


def _run_text_to_text(sweep: EvaluateSweep, model: Any, facts: ModelFacts, shard: Shard) -> pd.DataFrame:
    from models import pipeline
    task = next((t for t in facts.tasks if t in ("text2text-generation", "translation", "summarization")), None)
    if task is None:
        raise InputError(f"{facts.name} generates text but offers no text-to-text pipeline ({', '.join(facts.tasks)}).")
    run = pipeline(task, model=model)
    answers = [str(next(iter(run(str(t))[0].values()))) for t in shard.values("text")]
    refs = [str(r) for r in shard.values("reference")]
    return pd.DataFrame({"answer": answers, "matches": [int(normalize_answer(a) == normalize_answer(r))
                                                        for a, r in zip(answers, refs)], "references": 1})


RUNNERS = {"classification": _run_classifier, "causal-lm": _run_language_model, "masked-lm": _run_language_model,
           "speech": _run_speech, "text-to-text": _run_text_to_text}


# ---------------------------------------------------------------- agreement

def _agreement_counts(answers: dict[str, pd.Series]) -> pd.DataFrame:
    rows = []
    for a, b in combinations(list(answers), 2):
        same = errors = words = 0
        for x, y in zip(answers[a], answers[b]):
            wx, wy = _words(str(x)), _words(str(y))
            same += int(wx == wy)
            errors += _edit_distance(wx, wy)
            words += max(len(wx), len(wy), 1)
        rows.append({"model_a": a, "model_b": b, "same": same, "n": len(answers[a]), "word_edits": errors,
                     "words": words})
    return pd.DataFrame(rows, columns=["model_a", "model_b", "same", "n", "word_edits", "words"])


def _agreement_table(counts: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    """Long form, both orders and the diagonal: share of examples with the same answer, and 1 - word edits / words."""
    rows = []
    answered = set(counts["model_a"]) | set(counts["model_b"]) if len(counts) else set()
    for name in names:
        if name in answered:
            rows.append({"model_a": name, "model_b": name, "agreement": 1.0, "word_agreement": 1.0, "n": -1})
    for _, row in counts.iterrows():
        agreement = float(row["same"] / row["n"]) if row["n"] else math.nan
        word = 1.0 - float(row["word_edits"] / row["words"]) if row["words"] else math.nan
        for a, b in ((row["model_a"], row["model_b"]), (row["model_b"], row["model_a"])):
            rows.append({"model_a": a, "model_b": b, "agreement": agreement, "word_agreement": word, "n": int(row["n"])})
    table = pd.DataFrame(rows, columns=["model_a", "model_b", "agreement", "word_agreement", "n"])
    n_total = int(counts["n"].max()) if len(counts) else 0
    table.loc[table["n"] == -1, "n"] = n_total
    return table.astype({"n": "int64"})


def agreement_matrix(agreement: pd.DataFrame, column: str = "agreement") -> pd.DataFrame:
    """The long agreement table of an evaluate result as a square model x model matrix."""
    if agreement.empty:
        return pd.DataFrame()
    order = list(dict.fromkeys(agreement["model_a"]))
    return agreement.pivot(index="model_a", columns="model_b", values=column).reindex(index=order, columns=order)
