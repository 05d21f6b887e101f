"""What a head-importance study measures: the model's own loss, and accuracy, on a fixed evaluation set.

Michel, Levy & Neubig 2019 ("Are Sixteen Heads Really Better than One?") score heads with the
loss the model was trained on: the language-modelling loss for a model with an LM head, the
task loss for a classifier on a labelled set. An `EvalSet` fixes that data once (tokenized,
batched, with [MASK]ed positions drawn from a seed), so every score and every point of a
pruning curve is measured on exactly the same inputs.

Per-example losses are differentiable and accept per-example head scales, so one backward pass
gives each example's gradient with respect to every head (see `analysis.head_importance`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from models.errors import InputError
from models.labelled_data import read_labelled_texts
from models.workbench_model import WorkbenchModel

IGNORE = -100  # target of a position that is not scored, as in transformers' losses


@dataclass(frozen=True)
class EvalBatch:
    input_ids: torch.Tensor                 # (B, T) right-padded
    attention_mask: torch.Tensor            # (B, T) 1 real token, 0 padding
    token_type_ids: torch.Tensor | None     # (B, T) or None
    targets: torch.Tensor                   # (B,) class ids, or (B, T) token ids with IGNORE where not scored

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])

    def repeat(self, copies: int) -> "EvalBatch":
        """`copies` copies stacked on the batch axis: (copies * B, ...), copy-major, for batched ablation."""
        tile = lambda t: None if t is None else t.repeat(copies, *([1] * (t.dim() - 1)))
        return EvalBatch(tile(self.input_ids), tile(self.attention_mask), tile(self.token_type_ids), tile(self.targets))


@dataclass(frozen=True)
class EvalSet:
    task: str                               # the model task the targets are for
    batches: tuple[EvalBatch, ...]
    texts: tuple[str, ...]                  # the sentences, in batch order

    @property
    def n_examples(self) -> int:
        return sum(b.size for b in self.batches)


@dataclass(frozen=True)
class BatchScores:
    loss: torch.Tensor       # (B,) mean loss of each example over its scored positions (differentiable)
    correct: torch.Tensor    # (B,) correct predictions per example (tokens for LMs, 0 or 1 for classifiers)
    scored: torch.Tensor     # (B,) positions scored per example (1 for classifiers; 0 = nothing to score)


# ---------------------------------------------------------------- building evaluation sets

def read_labelled_csv(path: str | Path, split: str | None = None) -> tuple[list[str], list[str]]:
    """(texts, labels) of a text,label[,split] CSV such as sample_data/sentiment.csv, optionally one split.

    Reading and checking the file is `models.labelled_data`'s job; this picks the split.
    """
    data = read_labelled_texts(path)
    if split is not None:
        data = data.split(split)
        if len(data) == 0:
            raise InputError(f"{Path(path).name} has no rows in split {split!r}.")
    return list(data.texts), list(data.labels)


def label_ids(model: WorkbenchModel, labels: Sequence[object]) -> torch.Tensor:
    """Class ids for labels given as names (the model's id2label) or as ids."""
    n_classes = _n_classes(model)
    by_name = {name: i for i, name in model.labels.items()}
    ids = []
    for label in labels:
        if isinstance(label, str) and label in by_name:
            ids.append(by_name[label])
        elif isinstance(label, int) or (isinstance(label, str) and label.strip().lstrip("-").isdigit()):
            ids.append(int(label))
        else:
            known = ", ".join(repr(n) for n in by_name.values()) or "none (the model's labels are numbers)"
            raise InputError(f"Label {label!r} is not one of {model.name or 'the model'}'s labels: {known}.")
        if not 0 <= ids[-1] < n_classes:
            raise InputError(f"Label {label!r} is out of range: the classifier has classes 0..{n_classes - 1}.")
    return torch.tensor(ids, dtype=torch.long)


def make_eval_set(model: WorkbenchModel, texts: Sequence[str], labels: Sequence[object] | None = None,
                  batch_size: int = 16, max_length: int = 128, mask_fraction: float = 0.15,
                  seed: int = 0) -> EvalSet:
    """Tokenize and batch `texts` with the targets the model's task is scored on.

    causal-lm: every next token. masked-lm: `mask_fraction` of each example's real tokens (at
    least one) replaced by the mask token, drawn from `seed`. sequence-classification: `labels`.
    """
    task = model.task
    if task not in SUPPORTED_TASKS:
        raise InputError(
            f"{model.name or 'This model'} has no head to measure a loss with (task {task!r}); head importance "
            f"needs one of: {', '.join(SUPPORTED_TASKS)}. Choose a model with a language-modelling or "
            "classification head, or use attention entropy, which needs no loss.")
    texts = [str(t) for t in texts]
    if not texts:
        raise InputError("No evaluation text: give at least one sentence.")
    if batch_size < 1:
        raise InputError(f"Batch size must be at least 1; got {batch_size}.")
    if task == "sequence-classification":
        if labels is None or len(labels) != len(texts):
            raise InputError("A classifier is scored on labelled sentences: give one label per text.")
        all_targets = label_ids(model, labels)
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for start in range(0, len(texts), batch_size):
        enc = model.encode(texts[start:start + batch_size], max_length=max_length)
        if task == "sequence-classification":
            targets = all_targets[start:start + batch_size]
            batches.append(EvalBatch(enc.input_ids, enc.attention_mask, enc.token_type_ids, targets))
        else:
            batches.append(TARGET_BUILDERS[task](model, enc, mask_fraction, generator))
    return EvalSet(task=task, batches=tuple(batches), texts=tuple(texts))


def _causal_targets(model, enc, mask_fraction, generator) -> EvalBatch:
    # position t predicts token t + 1; the shift happens in the loss
    targets = enc.input_ids.masked_fill(enc.attention_mask == 0, IGNORE)  # (B, T)
    return EvalBatch(enc.input_ids, enc.attention_mask, enc.token_type_ids, targets)


def _masked_targets(model, enc, mask_fraction, generator) -> EvalBatch:
    tokenizer = model.tokenizer
    mask_token = tokenizer.special.get("mask_token") if tokenizer else None
    mask_id = tokenizer.token_to_id(mask_token) if mask_token else None
    if mask_id is None:
        raise InputError(f"{model.name or 'This model'} has a masked-LM head but its tokenizer has no mask token.")
    special = set(tokenizer.special.values())
    input_ids = enc.input_ids.clone()
    targets = torch.full_like(input_ids, IGNORE)  # (B, T)
    for row, tokens in enumerate(enc.tokens):
        candidates = [i for i, tok in enumerate(tokens) if tok not in special]
        if not candidates:
            continue
        count = max(1, round(mask_fraction * len(candidates)))
        chosen = torch.tensor(candidates)[torch.randperm(len(candidates), generator=generator)[:count]]
        targets[row, chosen] = input_ids[row, chosen]
        input_ids[row, chosen] = mask_id
    return EvalBatch(input_ids, enc.attention_mask, enc.token_type_ids, targets)


# language-modelling tasks score the text itself; a classifier is scored on the caller's labels
TARGET_BUILDERS: dict[str, Callable] = {"causal-lm": _causal_targets, "masked-lm": _masked_targets}
SUPPORTED_TASKS = (*TARGET_BUILDERS, "sequence-classification")


# ---------------------------------------------------------------- scoring

def batch_scores(model: WorkbenchModel, batch: EvalBatch, head_scales: dict[int, torch.Tensor] | None = None
                 ) -> BatchScores:
    """Per-example loss, correct count and scored count; differentiable in `head_scales`.

    Runs the fast path (no capture). `head_scales` may be (H_layer,) or per example (B, H_layer).
    """
    out = model.forward(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                        token_type_ids=batch.token_type_ids, head_scales=head_scales, capture=False)
    if out.logits is None:
        raise InputError(f"{model.name or 'This model'} returned no logits: it has no task head to score with.")
    # losses in at least float32 (half-precision logits lose the small differences ablation measures)
    logits = out.logits.to(torch.promote_types(out.logits.dtype, torch.float32))
    if batch.targets.dim() == 1:  # classification: one label per example
        loss = F.cross_entropy(logits, batch.targets, reduction="none")  # (B,)
        correct = (logits.argmax(-1) == batch.targets).float()  # (B,)
        return BatchScores(loss, correct, torch.ones_like(loss))
    targets = batch.targets
    if model.task == "causal-lm":
        logits, targets = logits[:, :-1], targets[:, 1:]  # (B, T-1, V), (B, T-1): position t predicts t + 1
    token_loss = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")  # (B, T')
    scored_mask = targets != IGNORE  # (B, T')
    scored = scored_mask.sum(-1).float()  # (B,)
    loss = token_loss.sum(-1) / scored.clamp_min(1)  # (B,) mean over each example's own scored tokens
    correct = ((logits.argmax(-1) == targets) & scored_mask).sum(-1).float()  # (B,)
    return BatchScores(loss, correct, scored)


@dataclass(frozen=True)
class Evaluation:
    loss: float       # mean over examples of each example's mean loss
    accuracy: float   # correct predictions over scored positions (tokens for LMs, examples for classifiers)
    n_examples: int

    def value(self, metric: str) -> float:
        return {"loss": self.loss, "accuracy": self.accuracy}[metric]


METRICS = ("loss", "accuracy")
HIGHER_IS_BETTER = {"loss": False, "accuracy": True}


def summarize(parts: Sequence[BatchScores]) -> Evaluation:
    """Dataset-level loss and accuracy from per-batch scores (examples with nothing to score are left out)."""
    loss = torch.cat([p.loss.detach() for p in parts])
    correct = torch.cat([p.correct for p in parts])
    scored = torch.cat([p.scored for p in parts])
    counted = scored > 0
    if not counted.any():
        raise InputError("Nothing to score: every example is too short (a causal LM needs at least two tokens).")
    return Evaluation(loss=float(loss[counted].mean()), accuracy=float(correct.sum() / scored.sum()),
                      n_examples=int(counted.sum()))


@torch.inference_mode()
def evaluate(model: WorkbenchModel, data: EvalSet) -> Evaluation:
    """Loss and accuracy of `model` (with any masks active in this context) on `data`."""
    check_task(model, data)
    return summarize([batch_scores(model, batch) for batch in data.batches])


def check_task(model: WorkbenchModel, data: EvalSet) -> None:
    if model.task != data.task:
        raise InputError(f"This evaluation set was made for a {data.task} model; {model.name or 'the model'} "
                         f"is {model.task or 'without a task head'}. Rebuild it with make_eval_set.")


def _n_classes(model: WorkbenchModel) -> int:
    head = model.network.head
    classifier = getattr(head, "classifier", None)
    if classifier is None:
        raise InputError(f"{model.name or 'This model'} has no classification head, so labels cannot be scored.")
    return int(classifier.out_features)
