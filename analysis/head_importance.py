"""How much each attention head matters: gradient score, leave-one-out ablation, attention entropy.

- Gradient score, Michel, Levy & Neubig 2019, "Are Sixteen Heads Really Better than One?" (§4.1):
  each head's output is multiplied by a gate xi_h = 1, and I_h = E_x |dL(x)/dxi_h|, then
  divided by the l2 norm of its layer's scores (§4.2, following Molchanov et al. 2017). The
  gates are per example, so one backward pass gives every example's own gradient and the
  absolute value is taken per example, as the formula says.
- Leave-one-out ablation (Michel et al. §3.1): the change in the metric when one head is masked,
  every head in turn. Several heads share one forward pass: the batch is stacked once per head
  and each copy carries its own mask (per-example head scales).
- Attention entropy (Clark, Khandelwal, Levy & Manning 2019, "What Does BERT Look At?"): the
  mean entropy of each head's attention rows in nats; it describes a head, it needs no loss.

Scores come as a (n_layers, n_heads) table over the original head numbers, NaN where a head
was pruned, so a pruned model's scores line up with the full model's.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Sequence

import pandas as pd
import torch

from models.errors import InputError
from models.workbench_model import WorkbenchModel

from .metrics import HIGHER_IS_BETTER, METRICS, BatchScores, EvalSet, batch_scores, evaluate, summarize, check_task

# progress(fraction done in [0, 1], what is running): the app passes a progress bar's update
Progress = Callable[[float, str], None]

# batched ablation stacks copies of a batch up to about this many tokens per forward pass
ABLATION_TOKENS_PER_PASS = 8192


def no_progress(fraction: float, message: str) -> None:
    """The default progress callback: say nothing."""


@dataclass(frozen=True)
class HeadImportance:
    method: str                          # "gradient", "ablation" or "entropy"
    scores: torch.Tensor                 # (n_layers, n_heads) float64, higher = more important; NaN = pruned
    metric: str                          # what the score measures: "loss", "accuracy" or "entropy"
    n_examples: int
    baseline: float | None = None        # the metric with no head masked (ablation)
    details: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. unnormalised scores, masked metric

    @property
    def present(self) -> torch.Tensor:
        """(n_layers, n_heads) bool: heads that exist in the model that was scored."""
        return ~torch.isnan(self.scores)

    def table(self) -> pd.DataFrame:
        """Layers x heads, as the heatmap draws it."""
        frame = pd.DataFrame(self.scores.numpy(), columns=[f"head {h}" for h in range(self.scores.shape[1])])
        frame.index = pd.Index([f"layer {l}" for l in range(self.scores.shape[0])], name="layer")
        return frame

    def to_frame(self) -> pd.DataFrame:
        """One row per present head: layer, head, score, rank (1 = most important), and any details."""
        rows = []
        for layer, head in self.present.nonzero().tolist():
            row = {"layer": layer, "head": head, "score": float(self.scores[layer, head])}
            row.update({name: float(values[layer, head]) for name, values in self.details.items()})
            rows.append(row)
        frame = pd.DataFrame(rows, columns=["layer", "head", "score", *self.details])
        frame["rank"] = frame["score"].rank(ascending=False, method="first").astype(int)
        return frame.sort_values("rank").reset_index(drop=True)

    def least_important(self, count: int) -> dict[int, list[int]]:
        """The `count` present heads with the lowest scores, as {layer: [heads]} (ties: lower layer, head first)."""
        order = self.to_frame().sort_values(["score", "layer", "head"], kind="stable").head(count)
        chosen: dict[int, list[int]] = {}
        for layer, head in zip(order["layer"], order["head"]):
            chosen.setdefault(int(layer), []).append(int(head))
        return {layer: sorted(heads) for layer, heads in sorted(chosen.items())}


def _full_table(model: WorkbenchModel, per_layer: Sequence[torch.Tensor]) -> torch.Tensor:
    """(n_layers, n_heads) from per-layer values over the heads present; NaN for pruned heads."""
    table = torch.full((model.n_layers, model.n_heads), float("nan"), dtype=torch.float64)
    for layer, ids in enumerate(model.head_ids()):
        if ids:
            table[layer, ids] = per_layer[layer].double()
    return table


def normalize_per_layer(scores: torch.Tensor) -> torch.Tensor:
    """Divide each layer's scores by their l2 norm (Michel et al. 2019, §4.2); NaN (pruned) stays NaN."""
    norms = torch.sqrt(torch.nansum(scores ** 2, dim=1, keepdim=True))  # (n_layers, 1)
    return scores / norms.clamp_min(1e-20)


# ---------------------------------------------------------------- gradient score

def compute_gradient_importance(model: WorkbenchModel, data: EvalSet, normalize: bool = True,
                                progress: Progress = no_progress) -> HeadImportance:
    """I_h = E_x |dL(x)/dxi_h| over `data`, per-layer l2-normalised (Michel, Levy & Neubig 2019).

    One forward and one backward pass per batch, on the fast path; weights get no gradients.
    `details["raw"]` keeps the scores before normalisation.
    """
    check_task(model, data)
    head_ids = model.head_ids()
    sums = [torch.zeros(len(ids), dtype=torch.float64) for ids in head_ids]
    examples = 0
    for index, batch in enumerate(data.batches):
        progress(index / len(data.batches), f"gradient score: batch {index + 1} of {len(data.batches)}")
        # one gate per example and head: dL_b/dxi[b, h] is example b's own gradient
        gates = {layer: torch.ones(batch.size, len(ids), requires_grad=True)  # (B, H_layer)
                 for layer, ids in enumerate(head_ids) if ids}
        with torch.enable_grad():
            scores = batch_scores(model, batch, gates)
            counted = (scores.scored > 0).float()  # (B,) examples with something to score
            grads = torch.autograd.grad((scores.loss * counted).sum(), list(gates.values()))
        for layer, grad in zip(gates, grads):
            sums[layer] += grad.abs().sum(0).double()  # (H_layer,) uncounted examples have zero gradient
        examples += int(counted.sum())
    if examples == 0:
        raise InputError("Nothing to score: every example is too short.")
    raw = _full_table(model, [s / examples for s in sums])  # (n_layers, n_heads)
    progress(1.0, "gradient score: done")
    return HeadImportance(method="gradient", scores=normalize_per_layer(raw) if normalize else raw, metric="loss",
                          n_examples=examples, details={"raw": raw})


# ---------------------------------------------------------------- leave-one-out ablation

def compute_ablation_importance(model: WorkbenchModel, data: EvalSet, metric: str = "loss",
                                heads_per_pass: int | None = None,
                                progress: Progress = no_progress) -> HeadImportance:
    """How much worse `metric` gets when each head alone is masked (Michel et al. 2019, §3.1).

    score = masked loss - baseline loss, or baseline accuracy - masked accuracy: positive means
    the model needs the head. `heads_per_pass` copies of each batch run in one forward pass, each
    with a different head masked (default: as many as fit ABLATION_TOKENS_PER_PASS tokens).
    `details` holds the masked loss and accuracy of every head.
    """
    if metric not in METRICS:
        raise InputError(f"Metric {metric!r} is unknown; choose one of {', '.join(METRICS)}.")
    if heads_per_pass is not None and heads_per_pass < 1:
        raise InputError(f"heads_per_pass must be at least 1; got {heads_per_pass}.")
    check_task(model, data)
    base = evaluate(model, data)
    heads = [(layer, local) for layer, ids in enumerate(model.head_ids()) for local in range(len(ids))]
    parts: list[list[BatchScores]] = [[] for _ in heads]
    with torch.inference_mode():
        for index, batch in enumerate(data.batches):
            per_pass = heads_per_pass or max(1, ABLATION_TOKENS_PER_PASS // batch.input_ids.numel())
            for start in range(0, len(heads), per_pass):
                chunk = heads[start:start + per_pass]
                done = (index + start / len(heads)) / len(data.batches)
                progress(done, f"ablation: batch {index + 1} of {len(data.batches)}, heads {start + 1}-{start + len(chunk)}")
                stacked = batch.repeat(len(chunk))  # copy i masks chunk[i]
                scales: dict[int, torch.Tensor] = {}
                for copy, (layer, local) in enumerate(chunk):
                    if layer not in scales:
                        scales[layer] = torch.ones(stacked.size, len(model.head_ids()[layer]))  # (copies * B, H_layer)
                    scales[layer][copy * batch.size:(copy + 1) * batch.size, local] = 0.0
                scores = batch_scores(model, stacked, scales)
                for copy in range(len(chunk)):
                    rows = slice(copy * batch.size, (copy + 1) * batch.size)
                    parts[start + copy].append(BatchScores(scores.loss[rows], scores.correct[rows], scores.scored[rows]))
    masked = [summarize(p) for p in parts]
    per_layer: dict[str, list[list[float]]] = {"loss": [[] for _ in range(model.n_layers)],
                                               "accuracy": [[] for _ in range(model.n_layers)]}
    for (layer, _), evaluation in zip(heads, masked):
        per_layer["loss"][layer].append(evaluation.loss)
        per_layer["accuracy"][layer].append(evaluation.accuracy)
    tables = {name: _full_table(model, [torch.tensor(v, dtype=torch.float64) for v in values])
              for name, values in per_layer.items()}
    baseline = base.value(metric)
    drop = (baseline - tables[metric]) if HIGHER_IS_BETTER[metric] else (tables[metric] - baseline)
    progress(1.0, "ablation: done")
    return HeadImportance(method="ablation", scores=drop, metric=metric, n_examples=base.n_examples,
                          baseline=baseline, details={"masked_loss": tables["loss"], "masked_accuracy": tables["accuracy"]})


# ---------------------------------------------------------------- attention entropy

def attention_entropy_sums(attentions: Sequence[torch.Tensor], attention_mask: torch.Tensor
                           ) -> tuple[list[torch.Tensor], int]:
    """Per layer, the sum over real query rows of each head's row entropy (H_layer,), and the row count."""
    queries = attention_mask.bool()  # (B, T) rows of real tokens; padded rows are left out
    sums = []
    for pattern in attentions:  # (B, H, T, T)
        p = pattern.double()
        rows = -(p * torch.log(p.clamp_min(1e-30))).sum(-1)  # (B, H, T); 0 log 0 = 0, padded keys have p = 0
        sums.append((rows * queries[:, None, :]).sum(dim=(0, 2)))  # (H,)
    return sums, int(queries.sum())


def compute_attention_entropy(model: WorkbenchModel, data: EvalSet | Sequence[str], batch_size: int = 16,
                              progress: Progress = no_progress) -> HeadImportance:
    """Mean entropy (nats) of each head's attention rows over every real token of the texts.

    Low entropy: a head that looks at few tokens; log(n) would be uniform attention. Works on
    any model (no loss needed); an `EvalSet` contributes its texts, not its [MASK]ed inputs.
    """
    texts = list(data.texts) if isinstance(data, EvalSet) else [str(t) for t in data]
    if not texts:
        raise InputError("No text to measure attention on: give at least one sentence.")
    totals = [torch.zeros(len(ids), dtype=torch.float64) for ids in model.head_ids()]
    rows = 0
    n_batches = (len(texts) + batch_size - 1) // batch_size
    for index, start in enumerate(range(0, len(texts), batch_size)):
        progress(index / n_batches, f"attention entropy: batch {index + 1} of {n_batches}")
        trace = model.run(texts[start:start + batch_size])
        sums, count = attention_entropy_sums(trace.attentions, trace.attention_mask)
        totals = [t + s for t, s in zip(totals, sums)]
        rows += count
    progress(1.0, "attention entropy: done")
    return HeadImportance(method="entropy", scores=_full_table(model, [t / rows for t in totals]), metric="entropy",
                          n_examples=len(texts))


# ---------------------------------------------------------------- the methods, declared for the app

@dataclass(frozen=True)
class ImportanceMethod:
    key: str
    label: str
    reference: str
    summary: str                      # one line a person reads next to the choice
    needs_loss: bool                  # False: works on models without a task head
    compute: Callable[..., HeadImportance]
    options: dict[str, tuple] = field(default_factory=dict)  # choices the page offers: parameter -> values, default first


METHODS: dict[str, ImportanceMethod] = {m.key: m for m in [
    ImportanceMethod("gradient", "Gradient score", "Michel, Levy & Neubig 2019",
                     "|dLoss/d(head gate)| averaged over examples, normalised per layer: one backward pass.",
                     needs_loss=True, compute=compute_gradient_importance, options={"normalize": (True, False)}),
    ImportanceMethod("ablation", "Leave-one-out ablation", "Michel, Levy & Neubig 2019",
                     "How much worse the metric gets when only that head is masked: one pass per head.",
                     needs_loss=True, compute=compute_ablation_importance, options={"metric": METRICS}),
    ImportanceMethod("entropy", "Attention entropy", "Clark, Khandelwal, Levy & Manning 2019",
                     "Mean entropy of the head's attention rows (nats): low = focused. Needs no labels.",
                     needs_loss=False, compute=compute_attention_entropy),
]}


def compute_head_importance(model: WorkbenchModel, data: EvalSet | Sequence[str], method: str = "gradient",
                            progress: Progress = no_progress, **params) -> HeadImportance:
    """Score every head with one of `METHODS` ("gradient", "ablation", "entropy")."""
    if method not in METHODS:
        raise InputError(f"Unknown importance method {method!r}; choose one of {', '.join(METHODS)}.")
    spec = METHODS[method]
    accepted = [n for n in inspect.signature(spec.compute).parameters if n not in ("model", "data", "progress")]
    for name, value in params.items():
        if name not in accepted:
            raise InputError(f"{spec.label} takes no parameter {name!r}; it takes {', '.join(accepted) or 'none'}.")
        if name in spec.options and value not in spec.options[name]:
            raise InputError(f"{spec.label}: {name} must be one of {list(spec.options[name])}; got {value!r}.")
    if spec.needs_loss and not isinstance(data, EvalSet):
        raise InputError(f"{spec.label} needs an evaluation set with targets: build one with make_eval_set.")
    return spec.compute(model, data, progress=progress, **params)
