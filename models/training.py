"""A small, deterministic trainer for task heads, in the spirit of transformers' `Trainer`.

AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization") with a linear warm-up
and linear decay, weight decay on matrices only (as `Trainer` excludes biases and norms),
evaluation after every epoch, early stopping with the best epoch's weights restored, and a
callback after every step for progress bars and live loss curves.

What is trained is a choice, from head-only to full fine-tuning (`TrainingConfig.trainable`).
When the first layers are frozen, their output is computed once and reused every epoch (the
body has no dropout, so it is the same every time): head-only training on MiniLM costs one
forward pass over the data plus a few milliseconds per epoch.

Training never changes the model it is given: it trains a copy and returns it.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F

from .errors import InputError
from .labelled_data import LabelledData, LabelledTexts
from .workbench_model import WorkbenchModel

IGNORE = -100  # label of positions the loss skips: special tokens, padding, a word's later pieces (as transformers)

TRAINABLE_GROUPS = {
    "head": "the task head",
    "pooler": "BERT's pooler, the dense layer on [CLS] that a sequence classifier reads",
    "last_layer": "the last transformer block",
    "norms": "every LayerNorm or RMSNorm",
    "biases": "every bias",
    "all": "every parameter (full fine-tuning)",
}
TRAINABLE_TASKS = ("sequence-classification", "token-classification")


@dataclass
class TrainingConfig:
    epochs: int = 10
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 0.01               # on weight matrices only
    warmup_ratio: float = 0.1                # fraction of all steps spent warming the learning rate up from 0
    # what to train: group names from TRAINABLE_GROUPS and/or parameter-name prefixes such as "blocks.5."
    trainable: tuple[str, ...] = ("head",)
    seed: int = 0                            # shuffling, dropout and nothing else: same seed, same model
    early_stopping_patience: int | None = 3  # epochs without a better evaluation before stopping; None: never
    max_length: int = 128                    # longer texts are truncated
    group_by_length: bool = True             # batch texts of similar length (less padding), batches in random order
    max_seconds: float | None = None         # stop (after evaluating) once training has run this long


@dataclass(frozen=True)
class EpochResult:
    epoch: int
    train_loss: float                         # mean over the epoch's steps
    eval_loss: float | None
    eval_accuracy: float | None
    seconds: float                            # since training started


@dataclass(frozen=True)
class TrainingProgress:
    """Handed to the callback after every step, and once more at the end of every epoch (with `epoch_result`)."""
    step: int
    total_steps: int
    epoch: int
    loss: float
    learning_rate: float
    epoch_result: EpochResult | None = None


@dataclass
class TrainingResult:
    model: WorkbenchModel                     # the trained copy, with the best epoch's weights
    history: list[EpochResult]
    step_losses: list[float]
    best_epoch: int
    stopped_early: bool
    seconds: float
    trained_parameters: int
    trained_parameter_names: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([vars(e) for e in self.history])


@dataclass(frozen=True)
class Evaluation:
    loss: float
    accuracy: float                           # of examples, or of labelled words for token classification
    n: int
    predictions: list                         # label names: one per text, or a list per sentence of words


# ---------------------------------------------------------------------------- public

def train(model: WorkbenchModel, train_data: LabelledData, eval_data: LabelledData | None = None,
          config: TrainingConfig | None = None,
          callback: Callable[[TrainingProgress], bool | None] | None = None) -> TrainingResult:
    """Train a copy of `model` on `train_data`, evaluating on `eval_data` after each epoch.

    The callback may return True to stop after the current step (a Cancel button).
    """
    config = config or TrainingConfig()
    _check_config(config)
    label_ids = _label_ids(model, train_data, eval_data)
    started = time.perf_counter()
    trained = _copy(model)
    network = trained.network
    params = select_parameters(trained, config.trainable)
    start = _first_trainable_layer(params, trained.n_layers)
    train_batches = _Batches(trained, encode_examples(trained, train_data, label_ids, config.max_length), start)
    eval_batches = (_Batches(trained, encode_examples(trained, eval_data, label_ids, config.max_length), start)
                    if eval_data is not None and len(eval_data) else None)

    n = len(train_data)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = round(config.warmup_ratio * total)
    history: list[EpochResult] = []
    step_losses: list[float] = []
    best: tuple[float, float] | None = None
    best_state, best_epoch, stale, stopped_early, cancelled = None, 0, 0, False, False
    try:
        for p in network.parameters():
            p.requires_grad_(False)
        for p in params.values():
            p.requires_grad_(True)
        # fused: one kernel for all parameters; the per-tensor loop costs more than the backward pass on CPU
        optimizer = torch.optim.AdamW(_parameter_groups(params, config.weight_decay), lr=config.learning_rate,
                                      fused=True)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(warmup, total))
        with torch.random.fork_rng(devices=[]):  # dropout draws from the global generator: seed it, then put it back
            torch.manual_seed(config.seed)
            order_generator = torch.Generator().manual_seed(config.seed)
            step = 0
            for epoch in range(1, config.epochs + 1):
                network.train()
                epoch_losses = []
                for rows in epoch_batches(train_batches.lengths, config.batch_size, order_generator,
                                          config.group_by_length):
                    logits, labels = train_batches.logits(rows)
                    loss = _loss(logits, labels)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    step += 1
                    epoch_losses.append(loss.item())
                    step_losses.append(loss.item())
                    if callback is not None and callback(TrainingProgress(
                            step, total, epoch, loss.item(), scheduler.get_last_lr()[0])):
                        cancelled = True
                        break
                    if config.max_seconds is not None and time.perf_counter() - started > config.max_seconds:
                        cancelled = True
                        break
                network.eval()
                evaluation = _evaluate_batches(eval_batches, trained.labels) if eval_batches else None
                result = EpochResult(epoch, sum(epoch_losses) / len(epoch_losses),
                                     evaluation.loss if evaluation else None,
                                     evaluation.accuracy if evaluation else None, time.perf_counter() - started)
                history.append(result)
                if callback is not None:
                    callback(TrainingProgress(step, total, epoch, result.train_loss, scheduler.get_last_lr()[0], result))
                if evaluation is not None:
                    score = (evaluation.accuracy, -evaluation.loss)  # accuracy first; lower loss breaks ties
                    if best is None or score > best:
                        best, best_epoch, stale = score, epoch, 0
                        best_state = {k: p.detach().clone() for k, p in params.items()}
                    else:
                        stale += 1
                if cancelled:
                    break
                if config.early_stopping_patience is not None and stale >= config.early_stopping_patience:
                    stopped_early = epoch < config.epochs
                    break
        if best_state is not None:
            with torch.no_grad():
                for k, p in params.items():
                    p.copy_(best_state[k])
        else:
            best_epoch = len(history)
    finally:
        for p in network.parameters():
            p.requires_grad_(True)  # as a loaded model's parameters are
        network.eval()
    network.head.trained = True
    base = (model.name or model.family).removesuffix(" (trained)")
    trained.name = f"{base} (trained)"
    return TrainingResult(trained, history, step_losses, best_epoch, stopped_early or cancelled,
                          time.perf_counter() - started, sum(p.numel() for p in params.values()), sorted(params))


@torch.no_grad()
def evaluate(model: WorkbenchModel, data: LabelledData, batch_size: int = 32, max_length: int = 128) -> Evaluation:
    """Loss, accuracy and predicted labels of `model` on `data` (a full forward pass, no caching)."""
    label_ids = _label_ids(model, data, None)
    batches = _Batches(model, encode_examples(model, data, label_ids, max_length), start=None, batch_size=batch_size)
    return _evaluate_batches(batches, model.labels)


def select_parameters(model: WorkbenchModel, trainable: tuple[str, ...] | list[str]) -> dict[str, torch.nn.Parameter]:
    """Parameters by name for group names (TRAINABLE_GROUPS) and name prefixes; shared (tied) ones once."""
    if isinstance(trainable, str):
        trainable = (trainable,)
    network = model.network
    if network.head is None:
        raise InputError(f"{model.name or model.family} has no task head to train; add one with model.with_head(task).")
    norms = {id(p) for m in network.modules() if "norm" in type(m).__name__.lower() for p in m.parameters(recurse=False)}
    last = f"blocks.{model.n_layers - 1}."
    tests = {
        "head": lambda name, p: name.startswith("head."),
        "pooler": lambda name, p: name.startswith("pooler."),
        "last_layer": lambda name, p: name.startswith(last),
        "norms": lambda name, p: id(p) in norms,
        "biases": lambda name, p: name.endswith(".bias"),
        "all": lambda name, p: True,
    }
    chosen: dict[str, torch.nn.Parameter] = {}
    for entry in trainable:
        test = tests.get(entry) or (lambda name, p, prefix=entry: name.startswith(prefix))
        matched = {name: p for name, p in network.named_parameters() if test(name, p)}
        if not matched:
            raise InputError(f"Nothing to train matches {entry!r}: use {', '.join(TRAINABLE_GROUPS)} or a parameter "
                             "name prefix such as 'blocks.5.'.")
        chosen.update(matched)
    return chosen


def linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    """Learning-rate factor: 0 -> 1 over `warmup` steps, then 1 -> 0 at `total` (transformers' linear schedule)."""
    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor


def epoch_batches(lengths: torch.Tensor, batch_size: int, generator: torch.Generator,
                  group_by_length: bool = True) -> list[torch.Tensor]:
    """One epoch's batches of example indices: a random order, or with `group_by_length` random groups of
    similar length (transformers' LengthGroupedSampler: sort within mega-batches of 50 batches), shuffled."""
    order = torch.randperm(len(lengths), generator=generator)
    if not group_by_length:
        return list(order.split(batch_size))
    batches = []
    for mega in order.split(50 * batch_size):
        by_length = mega[torch.argsort(lengths[mega], descending=True, stable=True)]
        batches += list(by_length.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def reads_first_position_only(model: WorkbenchModel) -> bool:
    """True when the head sees nothing but the last block's first position (BERT's pooled classifier)."""
    return bool(getattr(model.network.head, "needs_pooler", False))


def run_from_layer(model: WorkbenchModel, x: torch.Tensor, attention_mask: torch.Tensor, start: int,
                   first_position_only: bool = False) -> torch.Tensor:
    """Task-head logits from the residual stream `x` (B, T, d) entering block `start`: the network's own forward
    cut at `start`, so frozen early layers are run once. With `first_position_only` (a pooled classifier) the last
    block computes the first position alone (its keys and values still come from every position)."""
    return model.forward(resid_in=x, attention_mask=attention_mask, start_layer=start, capture=False,
                         read_positions=[0] if first_position_only else None).logits


def run_to_layer(model: WorkbenchModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 token_type_ids: torch.Tensor | None, stop: int) -> torch.Tensor:
    """The residual stream (B, T, d) entering block `stop`: the network's forward stopped there."""
    return model.forward(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                         stop_layer=stop, capture=False).resid[-1]


# ---------------------------------------------------------------------------- encoding

@dataclass
class Encoded:
    input_ids: torch.Tensor        # (N, T) right-padded
    attention_mask: torch.Tensor   # (N, T)
    token_type_ids: torch.Tensor   # (N, T)
    labels: torch.Tensor           # (N,) label ids, or (N, T) with IGNORE where no word starts
    words: list[list[int | None]] | None = None  # token -> word index, for token classification


def encode_examples(model: WorkbenchModel, data: LabelledData, label_ids: dict[str, int], max_length: int) -> Encoded:
    """Token ids and label ids; for words, the label goes on each word's first piece (as transformers' examples)."""
    if model.tokenizer is None:
        raise InputError(f"{model.name or model.family} has no tokenizer to read the training text with.")
    if isinstance(data, LabelledTexts):
        enc = model.tokenizer.encode_batch(list(data.texts), max_length)
        labels = torch.tensor([label_ids[label] for label in data.labels], dtype=torch.long)
        return Encoded(enc.input_ids, enc.attention_mask, enc.token_type_ids, labels)
    tokenizer = model.tokenizer
    encodings = tokenizer.backend.encode_batch([list(w) for w in data.words], is_pretokenized=True)
    rows, word_maps = [], []
    for enc, tags in zip(encodings, data.tags):
        if len(enc.ids) > max_length:
            enc.truncate(max_length)
        words = list(enc.word_ids)
        labels, previous = [], None
        for w in words:
            labels.append(label_ids[tags[w]] if w is not None and w != previous else IGNORE)
            previous = w
        rows.append((enc.ids, enc.type_ids, labels))
        word_maps.append(words)
    width = max(len(ids) for ids, _, _ in rows)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    N = len(rows)
    input_ids = torch.full((N, width), pad, dtype=torch.long)
    types = torch.zeros((N, width), dtype=torch.long)
    mask = torch.zeros((N, width), dtype=torch.long)
    labels = torch.full((N, width), IGNORE, dtype=torch.long)
    for i, (ids, type_ids, row_labels) in enumerate(rows):
        n = len(ids)
        input_ids[i, :n], types[i, :n], mask[i, :n] = torch.tensor(ids), torch.tensor(type_ids), 1
        labels[i, :n] = torch.tensor(row_labels)
    return Encoded(input_ids, mask, types, labels, word_maps)


class _Batches:
    """Logits for any subset of examples; with a frozen prefix (`start`), its output is computed once here."""

    def __init__(self, model: WorkbenchModel, encoded: Encoded, start: int | None, batch_size: int = 64) -> None:
        self.model, self.encoded, self.start, self.batch_size = model, encoded, start, batch_size
        self.cache = None
        if start is not None:
            N, T = encoded.input_ids.shape
            self.cache = torch.zeros(N, T, model.config.d_model)  # (N, T, d) entering block `start`
            with torch.no_grad():
                # similar lengths together: each chunk is trimmed to its longest text, so little padding is computed
                for rows in torch.argsort(self.lengths, descending=True).split(batch_size):
                    width = int(self.lengths[rows].max())
                    self.cache[rows, :width] = run_to_layer(model, encoded.input_ids[rows, :width],
                                                            encoded.attention_mask[rows, :width],
                                                            encoded.token_type_ids[rows, :width], start)

    def __len__(self) -> int:
        return len(self.encoded.labels)

    @property
    def lengths(self) -> torch.Tensor:
        return self.encoded.attention_mask.sum(1)  # (N,) real tokens per example

    def logits(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, labels) for `rows`, trimmed to the longest of them (right padding only wastes work)."""
        e = self.encoded
        width = int(e.attention_mask[rows].sum(1).max())
        labels = e.labels[rows] if e.labels.dim() == 1 else e.labels[rows, :width]
        if self.cache is None:
            trimmed = Encoded(e.input_ids[rows, :width], e.attention_mask[rows, :width],
                              e.token_type_ids[rows, :width], labels)
            logits = self.model.forward(input_ids=trimmed.input_ids, attention_mask=trimmed.attention_mask,
                                        token_type_ids=trimmed.token_type_ids, capture=False).logits
        else:
            logits = run_from_layer(self.model, self.cache[rows, :width], e.attention_mask[rows, :width], self.start,
                                    first_position_only=reads_first_position_only(self.model))
        return logits, labels


def _loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)


@torch.no_grad()
def _evaluate_batches(batches: _Batches, id2label: dict[int, str]) -> Evaluation:
    total_loss, counted, correct, predictions = 0.0, 0, 0, []
    for rows in torch.arange(len(batches)).split(batches.batch_size):
        logits, labels = batches.logits(rows)
        scored = labels != IGNORE
        n = int(scored.sum())
        total_loss += _loss(logits, labels).item() * n
        predicted = logits.argmax(-1)
        correct += int((predicted[scored] == labels[scored]).sum())
        counted += n
        if labels.dim() == 1:
            predictions += [id2label[int(i)] for i in predicted]
        else:
            predictions += [[id2label[int(i)] for i, keep in zip(row, mask) if keep] for row, mask in zip(predicted, scored)]
    return Evaluation(total_loss / max(1, counted), correct / max(1, counted), len(batches), predictions)


# ---------------------------------------------------------------------------- checks and helpers

def _check_config(config: TrainingConfig) -> None:
    problems = []
    if config.epochs < 1:
        problems.append("epochs must be at least 1")
    if config.batch_size < 1:
        problems.append("batch_size must be at least 1")
    if not config.learning_rate > 0:
        problems.append("learning_rate must be positive")
    if not 0 <= config.warmup_ratio < 1:
        problems.append("warmup_ratio must lie in [0, 1)")
    if config.weight_decay < 0:
        problems.append("weight_decay cannot be negative")
    if config.early_stopping_patience is not None and config.early_stopping_patience < 1:
        problems.append("early_stopping_patience must be at least 1 (or None)")
    if problems:
        raise InputError("Bad training settings: " + "; ".join(problems) + ".")


def _label_ids(model: WorkbenchModel, train_data: LabelledData, eval_data: LabelledData | None) -> dict[str, int]:
    if model.task not in TRAINABLE_TASKS:
        raise InputError(f"{model.name or model.family} has a {model.task or 'no'} head; training here needs a "
                         f"{' or '.join(TRAINABLE_TASKS)} head (model.with_head(task, labels=...)).")
    for data in (train_data, eval_data):
        if data is None:
            continue
        if data.task != model.task:
            kind = "labelled sentences" if isinstance(data, LabelledTexts) else "tagged words"
            raise InputError(f"These are {kind}, for a {data.task} head; the model has a {model.task} head.")
    if not len(train_data):
        raise InputError("No training examples: the train split is empty.")
    label_ids = {name: i for i, name in model.labels.items()}
    seen = set(train_data.labels) | (set(eval_data.labels) if eval_data is not None else set())
    unknown = sorted(seen - set(label_ids))
    if unknown:
        raise InputError(f"The data has labels the model's head does not know: {', '.join(map(repr, unknown))}; "
                         f"the head's labels are {', '.join(map(repr, label_ids))}. Make a head with these labels: "
                         "model.with_head(task, labels=data.label_names).")
    return label_ids


def _copy(model: WorkbenchModel) -> WorkbenchModel:
    return model.derive(copy.deepcopy(model.network), copy.deepcopy(model.config),
                        tokenizer=copy.deepcopy(model.tokenizer))


def _first_trainable_layer(params: dict[str, torch.nn.Parameter], n_layers: int) -> int | None:
    """The first block with a trained parameter (n_layers if only the head, pooler or final norm); None if embeddings train."""
    if any(name.startswith("embed.") for name in params):
        return None
    blocks = [int(name.split(".")[1]) for name in params if name.startswith("blocks.")]
    return min(blocks) if blocks else n_layers


def _parameter_groups(params: dict[str, torch.nn.Parameter], weight_decay: float) -> list[dict]:
    decay = [p for p in params.values() if p.dim() >= 2]
    no_decay = [p for p in params.values() if p.dim() < 2]  # biases and norm weights, as transformers' Trainer
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
