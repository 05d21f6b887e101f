"""Activation patching and attribution patching: which activations *cause* an answer.

Activation patching (causal tracing; Meng et al. 2022, "Locating and Editing Factual Associations
in GPT"; Wang et al. 2022, "Interpretability in the Wild") runs a *corrupted* prompt with one
activation taken from the run of a *clean* prompt, and reads how much of the clean answer comes
back. The metric is the logit difference ``logit[answer] - logit[wrong]`` at the last position
(for a classifier: of the two label names), unnormalised.

Attribution patching (Nanda 2023, "Attribution Patching: Activation Patching At Industrial Scale";
Syed, Rager & Conmy 2023, "Attribution Patching Outperforms Automated Circuit Discovery")
approximates every patch at once to first order, from one forward and one backward pass of the
corrupted prompt: ``metric(patched) ~ metric(corrupted) + (a_clean - a_corrupted) . d metric / d a``.

Everything here runs on the core's hook points (``blocks.{i}.hook_resid_pre``, ``hook_attn_out``,
``hook_mlp_out``, ``attn.hook_z``) inside ``model.hooks(...)``, so nothing mutates a shared model.
Exact patching is batched: the patched runs of one layer share one forward, each row of the batch
carrying its own patch, and the part below that layer (the same corrupted run for every row) is
computed once, as one row that a hook fans out into the batch where the layer starts. An LM's head
unembeds only the read position.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch

from models.errors import HeadIndexError, InputError, UnsupportedArchitectureError
from models.tokenization import TextInput

SITES = ("resid_pre", "attn_out", "mlp_out", "head")
POSITION_SITES = ("resid_pre", "attn_out", "mlp_out")
SITE_HOOKS = {
    "resid_pre": "blocks.{layer}.hook_resid_pre",   # (B, T, d) block input
    "attn_out": "blocks.{layer}.hook_attn_out",     # (B, T, d) attention output after the projection
    "mlp_out": "blocks.{layer}.hook_mlp_out",       # (B, T, d) MLP output
    "head": "blocks.{layer}.attn.hook_z",           # (B, T, H, dh) each head's slice entering the projection
}
SITE_LABELS = {
    "resid_pre": "residual stream (block input)",
    "attn_out": "attention output",
    "mlp_out": "MLP output",
    "head": "attention heads (all positions)",
}
LM_TASKS = ("causal-lm", "masked-lm")
# largest intermediate a chunk of patched runs may hold, in floats (~128 MB of float32)
CHUNK_BUDGET = 32_000_000

Progress = Callable[[float, str], None]


# ---------------------------------------------------------------------------- inputs and the metric
@dataclass(frozen=True)
class PatchingSetup:
    """Checked inputs of a patching experiment: tokens, the two outputs compared, where they are read."""
    clean: TextInput
    corrupted: TextInput
    clean_tokens: list[str]
    corrupted_tokens: list[str]
    answer: str                      # as given
    wrong: str
    answer_id: int                   # vocabulary id (LM) or label index (classifier)
    wrong_id: int
    answer_label: str                # the token or label name as the model spells it
    wrong_label: str
    read_position: int | None        # LM: the position whose logits are read; None for a classifier

    @property
    def n_positions(self) -> int:
        return len(self.clean_tokens)

    @property
    def differing_positions(self) -> list[int]:
        return [i for i, (a, b) in enumerate(zip(self.clean_tokens, self.corrupted_tokens)) if a != b]


def prepare_patching(model, clean: TextInput, corrupted: TextInput, answer: str, wrong: str) -> PatchingSetup:
    """Tokenize both prompts and resolve ``answer`` and ``wrong``, or raise a clear error.

    The prompts must have the same number of tokens (a patch moves an activation between equal
    positions). For a language model ``answer`` and ``wrong`` are texts of one token each (" Paris",
    with its leading space where the tokenizer marks one), or a vocabulary token as spelled ("ĠParis");
    for a classifier they are label names (``model.labels``).
    """
    if model.task in LM_TASKS:
        if model.tokenizer is None:
            raise InputError(f"{_name(model)} has no tokenizer, so answers cannot be read as tokens.")
    elif model.task is None or model.task not in ("sequence-classification",):
        raise UnsupportedArchitectureError(
            f"{_name(model)} has no output to compare ({model.task or 'no task head'}): patching measures "
            "logit[answer] - logit[wrong] of a language model's next token or a classifier's labels. "
            "Pick a causal LM (e.g. smollm2) or a classifier (e.g. minilm-sentiment).")
    if not isinstance(answer, str) or not isinstance(wrong, str) or not answer.strip() or not wrong.strip():
        raise InputError("Give the answer and the wrong answer as non-empty text.")
    clean_enc, corrupted_enc = model.encode(clean), model.encode(corrupted)
    clean_tokens, corrupted_tokens = clean_enc.tokens[0], corrupted_enc.tokens[0]
    if len(clean_tokens) != len(corrupted_tokens):
        raise InputError(
            f"The clean and corrupted prompts must have the same number of tokens: the clean one has "
            f"{len(clean_tokens)} ({' '.join(clean_tokens)}), the corrupted one {len(corrupted_tokens)} "
            f"({' '.join(corrupted_tokens)}). Change words for words of the same token length.")
    if model.task in LM_TASKS:
        answer_id, answer_label = _one_token(model, answer, "answer")
        wrong_id, wrong_label = _one_token(model, wrong, "wrong answer")
        position = _read_position(model, clean_tokens)
    else:
        answer_id, answer_label = _label(model, answer, "answer")
        wrong_id, wrong_label = _label(model, wrong, "wrong answer")
        position = None
    if answer_id == wrong_id:
        raise InputError(f"The answer and the wrong answer are the same ({answer_label!r}): the metric would be 0.")
    return PatchingSetup(clean=clean, corrupted=corrupted, clean_tokens=list(clean_tokens),
                         corrupted_tokens=list(corrupted_tokens), answer=answer, wrong=wrong, answer_id=answer_id,
                         wrong_id=wrong_id, answer_label=answer_label, wrong_label=wrong_label,
                         read_position=position)


def _name(model) -> str:
    return getattr(model, "name", "") or "This model"


def _one_token(model, text: str, role: str) -> tuple[int, str]:
    pieces = model.tokenizer.encode_batch([text], max_length=10_000, add_special_tokens=False)
    tokens = pieces.tokens[0]
    if len(tokens) == 1:
        return int(pieces.input_ids[0, 0]), tokens[0]
    exact = model.tokenizer.token_to_id(text)  # a vocabulary token as spelled, e.g. "ĠParis"
    if exact is not None:
        return int(exact), text
    raise InputError(
        f"The {role} {text!r} is {len(tokens)} tokens ({' | '.join(tokens)}); the metric compares the logits of "
        "one token each. Pick a word the tokenizer keeps whole (often with a leading space, e.g. ' Paris').")


def class_labels(model, text: TextInput = "a") -> list[str]:
    """A classifier's label names in output order: ``model.labels``, else LABEL_i for each output of a run."""
    labels = dict(getattr(model, "labels", {}) or {})
    if labels:
        return [labels[i] for i in sorted(labels)]
    logits = model.run(text, capture=False).logits
    return [f"LABEL_{i}" for i in range(logits.shape[-1])]


def _label(model, text: str, role: str) -> tuple[int, str]:
    names = class_labels(model)
    wanted = text.strip()
    for index, name in enumerate(names):
        if name == text or name.lower() == wanted.lower():
            return index, name
    if wanted.isdigit() and int(wanted) < len(names):
        return int(wanted), names[int(wanted)]
    known = ", ".join(repr(n) for n in names)
    raise InputError(f"The {role} {text!r} is not one of the classifier's labels ({known}).")


def _read_position(model, tokens: list[str]) -> int:
    """The last position for a causal LM; the first mask token (else the last token) for a masked LM."""
    if model.task == "masked-lm":
        mask = (model.tokenizer.special or {}).get("mask_token")
        if mask in tokens:
            return tokens.index(mask)
    return len(tokens) - 1


def logit_difference(logits: torch.Tensor, setup: PatchingSetup) -> torch.Tensor:
    """(B,) the metric ``logit[answer] - logit[wrong]`` of a batch of outputs.

    ``logits`` is (B, labels) for a classifier, (B, T, vocab) for an LM, or (B, 1, vocab) when only the
    read position was computed."""
    if logits.dim() == 3:
        logits = logits[:, 0] if logits.shape[1] == 1 else logits[:, setup.read_position]  # (B, vocab)
    logits = logits.double()
    return logits[:, setup.answer_id] - logits[:, setup.wrong_id]  # (B,)


def _read_only_hooks(model, setup: PatchingSetup) -> list[tuple[str, Callable]]:
    """For an LM, unembed only the read position: the head's vocabulary matmul at every other position is
    never looked at (at 24 tokens of SmolLM2 it is a fifth of the forward)."""
    if setup.read_position is None or "hook_resid_final" not in model.hook_points:
        return []
    position = setup.read_position
    return [("hook_resid_final", lambda x, _name: x[:, position : position + 1])]  # (B, 1, d)


def _run_metric(model, text: TextInput, setup: PatchingSetup, n: int = 1,
                hooks: Sequence[tuple[str, Callable]] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """(metric (n,), logits) of ``n`` copies of ``text`` run together under ``hooks``."""
    with model.hooks(list(hooks) + _read_only_hooks(model, setup)):
        trace = model.run([text] * n, capture=False)
    return logit_difference(trace.logits, setup), trace.logits


# ---------------------------------------------------------------------------- sites and layers
def check_site(site: str) -> str:
    if site not in SITES:
        raise InputError(f"Unknown patching site {site!r}; choose one of {', '.join(SITES)}.")
    return site


def check_layers(model, layers: Sequence[int] | None) -> list[int]:
    n_layers = model.config.n_layers
    if layers is None:
        return list(range(n_layers))
    chosen = [int(layer) for layer in layers]
    bad = [layer for layer in chosen if not 0 <= layer < n_layers]
    if bad:
        raise HeadIndexError(f"Layer{'s' if len(bad) > 1 else ''} {bad} out of range: {_name(model)} has layers "
                             f"0..{n_layers - 1}.")
    if not chosen:
        raise InputError("No layers chosen: pick at least one.")
    return sorted(set(chosen))


def hook_name(site: str, layer: int) -> str:
    return SITE_HOOKS[check_site(site)].format(layer=layer)


def _capture(model, text: TextInput, setup: PatchingSetup, names: Sequence[str]) -> tuple[dict[str, torch.Tensor], float]:
    """Activations at ``names`` of one run of ``text`` (batch 1), and its metric."""
    kept: dict[str, torch.Tensor] = {}

    def keep(x: torch.Tensor, name: str) -> None:
        kept[name] = x.detach().clone()

    metric, _ = _run_metric(model, text, setup, hooks=[(name, keep) for name in names])
    return kept, float(metric[0])


def _n_heads(model, clean_acts: dict[str, torch.Tensor], layer: int) -> int:
    return clean_acts[hook_name("head", layer)].shape[2]


def _head_ids(model, layer: int, present: int) -> list[int]:
    """Original head numbers of the ``present`` heads of ``layer`` (a pruned model keeps its names)."""
    ids = getattr(model, "head_ids", None)
    if callable(ids):
        layer_ids = list(ids()[layer])
        if len(layer_ids) == present:
            return layer_ids
    return list(range(present))


# ---------------------------------------------------------------------------- exact patching
def activation_patching(model, clean: TextInput, corrupted: TextInput, site: str, answer: str, wrong: str, *,
                        layers: Sequence[int] | None = None, batch_size: int | None = None,
                        progress: Progress | None = None) -> torch.Tensor:
    """The metric ``logit[answer] - logit[wrong]`` (at the last position) of the corrupted prompt run once
    per patched activation, that one activation taken from the clean run.

    ``site`` "resid_pre", "attn_out" or "mlp_out": one (layer, position) per run, result (n_layers,
    n_positions). ``site`` "head": one head's output (the slice of ``attn.hook_z`` that enters the output
    projection) at every position per run, result (n_layers, n_heads). Float64; no normalisation.
    ``layers`` limits the layers patched (the others are NaN); a pruned head is NaN. Runs are batched,
    ``batch_size`` rows per forward (default: as many as fit ``CHUNK_BUDGET`` floats).
    """
    check_site(site)
    setup = prepare_patching(model, clean, corrupted, answer, wrong)
    return _activation_patching(model, setup, site, check_layers(model, layers), batch_size, progress)


def _activation_patching(model, setup: PatchingSetup, site: str, layers: list[int], batch_size: int | None,
                         progress: Progress | None, share_prefix: bool = True) -> torch.Tensor:
    names = [hook_name(site, layer) for layer in layers]
    clean_acts, _ = _capture(model, setup.clean, setup, names)
    n_layers, T = model.config.n_layers, setup.n_positions
    width = model.config.n_heads if site == "head" else T
    result = torch.full((n_layers, width), float("nan"), dtype=torch.float64)
    # one patched run per (layer, index): index is a position, or a head (present in that layer) for "head"
    runs = [(layer, index) for layer in layers
            for index in range(_n_heads(model, clean_acts, layer) if site == "head" else T)]
    chunk = batch_size or _auto_batch(model, T, len(runs))
    done = 0
    for layer, part in _chunks(runs, chunk):
        rows = [(row, index) for row, (_, index) in enumerate(part)]
        patch = (hook_name(site, layer), _patch_rows(clean_acts[hook_name(site, layer)], rows, site))
        metric = None
        if share_prefix:
            # every row of the chunk is the corrupted run up to this layer: run that prefix once (batch 1)
            # and fan out into one row per patch where the layer starts
            fan_out = (hook_name("resid_pre", layer), _fan_out(len(part)))
            try:
                metric, _ = _run_metric(model, setup.corrupted, setup, n=1, hooks=[fan_out, patch])
            except (RuntimeError, ValueError, IndexError):
                metric = None  # a model that cannot widen its batch mid-forward: run every row from the start
            if metric is None or metric.shape[0] != len(part):
                share_prefix, metric = False, None
        if metric is None:
            metric, _ = _run_metric(model, setup.corrupted, setup, n=len(part), hooks=[patch])
        for (_, index), value in zip(part, metric.tolist()):
            column = _head_ids(model, layer, _n_heads(model, clean_acts, layer))[index] if site == "head" else index
            result[layer, column] = value
        done += len(part)
        if progress is not None:
            progress(done / len(runs), f"{SITE_LABELS[site]}: {done} of {len(runs)} patched runs")
    return result


def _chunks(runs: Sequence[tuple[int, int]], size: int):
    """(layer, runs) groups of at most ``size`` runs, each within one layer (so they share the prefix below it)."""
    by_layer: dict[int, list[tuple[int, int]]] = {}
    for run in runs:
        by_layer.setdefault(run[0], []).append(run)
    for layer, group in by_layer.items():
        for start in range(0, len(group), size):
            yield layer, group[start : start + size]


def _fan_out(n: int) -> Callable:
    """A hook turning the one-row residual stream (1, T, d) into ``n`` identical rows (n, T, d)."""
    def fan_out(x: torch.Tensor, _name: str) -> torch.Tensor:
        return x.expand(n, *x.shape[1:]).clone() if x.shape[0] == 1 else x
    return fan_out


def _auto_batch(model, n_tokens: int, n_runs: int) -> int:
    """Rows per forward so the largest intermediate (MLP hidden ~4d, attention scores, logits) fits the budget."""
    cfg = model.config
    per_row = n_tokens * (4 * cfg.d_model + cfg.n_heads * n_tokens) + cfg.vocab_size
    return max(1, min(n_runs, CHUNK_BUDGET // max(1, per_row)))


def _patch_rows(clean: torch.Tensor, rows: list[tuple[int, int]], site: str) -> Callable:
    """A hook putting the clean activation (1, T, ...) into each listed row at its position (or head)."""
    def patch(x: torch.Tensor, _name: str) -> torch.Tensor:
        B = x.shape[0]
        if site == "head":  # x (B, T, H, dh): a row takes one head's output at every position
            take = torch.zeros(B, 1, x.shape[2], 1, dtype=torch.bool, device=x.device)  # (B, 1, H, 1)
        else:               # x (B, T, d): a row takes the whole vector at one position
            take = torch.zeros(B, x.shape[1], 1, dtype=torch.bool, device=x.device)  # (B, T, 1)
        for row, index in rows:
            take[(row, 0, index, 0) if site == "head" else (row, index, 0)] = True
        return torch.where(take, clean.to(x.dtype), x)
    return patch


@dataclass(frozen=True)
class PatchedRun:
    """One patched run: its metric and prediction, beside the clean and corrupted runs'."""
    site: str
    layer: int
    index: int | None                 # position, or head; None = every position (or every head) of the layer
    metric: float
    clean_metric: float
    corrupted_metric: float
    prediction: pd.DataFrame          # output, clean, corrupted, patched (probabilities)

    @property
    def restored(self) -> float:
        """(patched - corrupted) / (clean - corrupted): 1 = the clean answer fully back, 0 = no effect."""
        return normalised(self.metric, self.clean_metric, self.corrupted_metric)


def patched_run(model, clean: TextInput, corrupted: TextInput, site: str, answer: str, wrong: str, layer: int,
                index: int | None = None, top_k: int = 5) -> PatchedRun:
    """The corrupted prompt with the clean activation at ``site``/``layer`` and ``index`` (a position, or a head
    for "head"; None patches every position, or every head, of that layer): what does it predict?"""
    check_site(site)
    setup = prepare_patching(model, clean, corrupted, answer, wrong)
    check_layers(model, [layer])
    name = hook_name(site, layer)
    clean_acts, _ = _capture(model, setup.clean, setup, [name])
    act = clean_acts[name]
    if site == "head":
        ids = _head_ids(model, layer, act.shape[2])
        if index is not None and index not in ids:
            raise HeadIndexError(f"Head {index} is not in layer {layer} (heads {ids}).")
        local = list(range(act.shape[2])) if index is None else [ids.index(index)]
    else:
        if index is not None and not 0 <= index < setup.n_positions:
            raise InputError(f"Position {index} is outside the prompt (0..{setup.n_positions - 1}).")
        local = list(range(setup.n_positions)) if index is None else [index]
    hook = _patch_rows(act, [(0, i) for i in local], site)
    patched, patched_logits = _run_metric(model, setup.corrupted, setup, hooks=[(name, hook)])
    clean_metric, clean_logits = _run_metric(model, setup.clean, setup)
    corrupted_metric, corrupted_logits = _run_metric(model, setup.corrupted, setup)
    prediction = _prediction_table(model, setup, clean_logits, corrupted_logits, patched_logits, top_k)
    return PatchedRun(site=site, layer=layer, index=index, metric=float(patched[0]),
                      clean_metric=float(clean_metric[0]), corrupted_metric=float(corrupted_metric[0]),
                      prediction=prediction)


def _distribution(logits: torch.Tensor) -> torch.Tensor:
    row = logits[0, 0] if logits.dim() == 3 and logits.shape[1] == 1 else (logits[0, -1] if logits.dim() == 3 else logits[0])
    return row.double().softmax(-1)


def _prediction_table(model, setup, clean_logits, corrupted_logits, patched_logits, top_k: int) -> pd.DataFrame:
    if setup.read_position is not None and clean_logits.dim() == 3 and clean_logits.shape[1] != 1:
        pick = lambda l: l[:, setup.read_position : setup.read_position + 1]
        clean_logits, corrupted_logits, patched_logits = pick(clean_logits), pick(corrupted_logits), pick(patched_logits)
    p = {key: _distribution(l) for key, l in
         (("clean", clean_logits), ("corrupted", corrupted_logits), ("patched", patched_logits))}
    k = min(top_k, len(p["clean"]))
    shown = [setup.answer_id, setup.wrong_id]
    for key in ("patched", "clean", "corrupted"):
        shown += p[key].topk(k).indices.tolist()
    if setup.read_position is None:
        names = class_labels(model)
        name = lambda i: names[i] if i < len(names) else f"LABEL_{i}"
    else:
        name = model.tokenizer.id_to_token
    rows = [{"output": name(i), "id": int(i), "clean": float(p["clean"][i]), "corrupted": float(p["corrupted"][i]),
             "patched": float(p["patched"][i])} for i in dict.fromkeys(shown)]
    return pd.DataFrame(rows).sort_values("patched", ascending=False).reset_index(drop=True)


def normalised(value, clean_metric: float, corrupted_metric: float):
    """(value - corrupted) / (clean - corrupted); NaN when the two prompts give the same metric."""
    gap = clean_metric - corrupted_metric
    if abs(gap) < 1e-12:
        return value * float("nan")
    return (value - corrupted_metric) / gap


# ---------------------------------------------------------------------------- attribution patching
def attribution_patching(model, clean: TextInput, corrupted: TextInput, site: str, answer: str, wrong: str, *,
                         layers: Sequence[int] | None = None) -> torch.Tensor:
    """First-order estimate of ``activation_patching`` (same shape, same meaning: the patched metric), from one
    clean forward, one corrupted forward and one backward (Nanda 2023; Syed, Rager & Conmy 2023):
    ``metric(corrupted) + sum((a_clean - a_corrupted) * d metric / d a_corrupted)`` over the patched slice."""
    check_site(site)
    setup = prepare_patching(model, clean, corrupted, answer, wrong)
    return _attribution(model, setup, [site], check_layers(model, layers))[site]


def _attribution(model, setup: PatchingSetup, sites: Sequence[str], layers: list[int],
                 progress: Progress | None = None) -> dict[str, torch.Tensor]:
    names = [hook_name(site, layer) for site in sites for layer in layers]
    clean_acts, _ = _capture(model, setup.clean, setup, names)
    if progress is not None:  # the one point between the two passes where a caller may stop
        progress(0.5, "attribution patching: corrupted forward and backward")
    corrupted_acts, grads, corrupted_metric = _gradients(model, setup, names)
    n_layers, T = model.config.n_layers, setup.n_positions
    out: dict[str, torch.Tensor] = {}
    for site in sites:
        width = model.config.n_heads if site == "head" else T
        table = torch.full((n_layers, width), float("nan"), dtype=torch.float64)
        for layer in layers:
            name = hook_name(site, layer)
            delta = (clean_acts[name] - corrupted_acts[name]).double() * grads[name].double()  # (1, T, d) | (1, T, H, dh)
            if site == "head":
                per_head = delta[0].sum(dim=(0, 2))  # (H,)
                table[layer, _head_ids(model, layer, per_head.shape[0])] = per_head
            else:
                table[layer] = delta[0].sum(-1)  # (T,)
        out[site] = corrupted_metric + table
    return out


def _gradients(model, setup: PatchingSetup, names: Sequence[str]):
    """Activations at ``names`` of the corrupted run, d metric / d activation, and the corrupted metric."""
    kept: dict[str, torch.Tensor] = {}
    first = "blocks.0.hook_resid_pre"

    def keep(x: torch.Tensor, name: str):
        if name == first:
            # a leaf that needs a gradient where the stream starts, so the whole forward is on the graph
            # even when the weights do not require gradients (ids have none)
            x = x.detach().requires_grad_(True)
        if name in names:
            kept[name] = x
        return x

    enc = model.encode(setup.corrupted)
    hooks = [(name, keep) for name in dict.fromkeys([first, *names])]
    with torch.enable_grad(), model.hooks(hooks + _read_only_hooks(model, setup)):
        out = model.forward(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                            token_type_ids=enc.token_type_ids, capture=False)
        metric = logit_difference(out.logits, setup)[0]
        wanted = [kept[name] for name in names]
        grads = torch.autograd.grad(metric, wanted, allow_unused=True)
    gradients = {name: (g if g is not None else torch.zeros_like(kept[name])).detach() for name, g in zip(names, grads)}
    return {name: kept[name].detach() for name in names}, gradients, float(metric.detach())


# ---------------------------------------------------------------------------- both, for the page
@dataclass
class PatchingResult:
    """Exact and attribution patching of several sites on one pair of prompts."""
    setup: PatchingSetup
    clean_metric: float
    corrupted_metric: float
    layers: list[int]
    exact: dict[str, torch.Tensor] = field(default_factory=dict)        # site -> (n_layers, positions | heads)
    attribution: dict[str, torch.Tensor] = field(default_factory=dict)  # same shapes: estimated patched metric

    def normalised(self, values: torch.Tensor) -> torch.Tensor:
        return normalised(values, self.clean_metric, self.corrupted_metric)

    def correlation(self, site: str) -> float:
        """Pearson correlation of exact and attribution patching over the cells both have (NaN if too few)."""
        if site not in self.exact or site not in self.attribution:
            return float("nan")
        return pearson(self.exact[site], self.attribution[site])

    def to_frame(self) -> pd.DataFrame:
        """One row per site, layer and position (or head): exact and estimated metric, and both normalised."""
        rows = []
        tokens = self.setup.clean_tokens
        for site in SITES:
            exact, approx = self.exact.get(site), self.attribution.get(site)
            reference = exact if exact is not None else approx
            if reference is None:
                continue
            for layer in self.layers:
                for index in range(reference.shape[1]):
                    e = float(exact[layer, index]) if exact is not None else float("nan")
                    a = float(approx[layer, index]) if approx is not None else float("nan")
                    if math.isnan(e) and math.isnan(a):
                        continue  # a pruned head
                    rows.append({
                        "site": site, "layer": layer,
                        "position": index if site != "head" else None,
                        "clean_token": tokens[index] if site != "head" else None,
                        "corrupted_token": self.setup.corrupted_tokens[index] if site != "head" else None,
                        "head": index if site == "head" else None,
                        "patched_metric": e, "attribution_estimate": a,
                        "patched_normalised": normalised(e, self.clean_metric, self.corrupted_metric),
                        "attribution_normalised": normalised(a, self.clean_metric, self.corrupted_metric),
                    })
        columns = ["site", "layer", "position", "clean_token", "corrupted_token", "head", "patched_metric",
                   "attribution_estimate", "patched_normalised", "attribution_normalised"]
        frame = pd.DataFrame(rows, columns=columns)
        frame.attrs.update(clean_metric=self.clean_metric, corrupted_metric=self.corrupted_metric,
                           answer=self.setup.answer_label, wrong=self.setup.wrong_label)
        return frame


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation over the cells where both are finite."""
    x, y = a.flatten().double(), b.flatten().double()
    keep = torch.isfinite(x) & torch.isfinite(y)
    x, y = x[keep], y[keep]
    if x.numel() < 2:
        return float("nan")
    x, y = x - x.mean(), y - y.mean()
    denominator = float(x.norm() * y.norm())
    return float((x * y).sum()) / denominator if denominator > 0 else float("nan")


def patching_experiment(model, clean: TextInput, corrupted: TextInput, answer: str, wrong: str,
                        sites: Sequence[str] = SITES, *, exact: bool = True, attribution: bool = True,
                        layers: Sequence[int] | None = None, batch_size: int | None = None,
                        progress: Progress | None = None) -> PatchingResult:
    """Exact patching (if ``exact``) and attribution patching (if ``attribution``) of every site in ``sites``.

    ``progress(fraction, message)`` is called between passes (the clean and corrupted runs, the two passes of
    attribution patching, each chunk of patched runs): a caller may stop the work there by raising.
    """
    sites = [check_site(site) for site in sites]
    if not sites:
        raise InputError("No site chosen: pick at least one of " + ", ".join(SITES) + ".")
    setup = prepare_patching(model, clean, corrupted, answer, wrong)
    chosen = check_layers(model, layers)
    # the share of the bar before the patched runs: all of it when there are none, a sliver when there are
    before = 0.05 if exact else 1.0

    def report(fraction: float, message: str) -> None:
        if progress is not None:
            progress(fraction, message)

    report(0.0, "clean run")
    clean_metric = float(_run_metric(model, setup.clean, setup)[0][0])
    report(before / 4, "corrupted run")
    corrupted_metric = float(_run_metric(model, setup.corrupted, setup)[0][0])
    result = PatchingResult(setup=setup, clean_metric=clean_metric, corrupted_metric=corrupted_metric, layers=chosen)
    if attribution:
        report(before / 2, "attribution patching: clean forward")
        result.attribution = _attribution(model, setup, sites, chosen,
                                          lambda f, m: report(before * (0.5 + f / 2), m))
    if exact:
        for number, site in enumerate(sites):
            report(before + (1 - before) * number / len(sites), f"{SITE_LABELS[site]}: patched runs")
            result.exact[site] = _activation_patching(
                model, setup, site, chosen, batch_size,
                lambda f, m, n=number: report(before + (1 - before) * (n + f) / len(sites), m))
    return result


__all__ = ["SITES", "SITE_HOOKS", "SITE_LABELS", "class_labels", "PatchingSetup", "PatchingResult", "PatchedRun",
           "prepare_patching", "logit_difference", "activation_patching", "attribution_patching", "patched_run",
           "patching_experiment", "normalised", "pearson", "hook_name", "check_layers"]
